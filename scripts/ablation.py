"""Why the default works: take away one of its parts at a time and measure what that costs.

    python scripts/ablation.py          # about 90 minutes on 2 CPU cores; writes reports/ablation.json and .md
    python scripts/ablation.py --entries plain-convolutions   # retrain one entry, keep the others' accuracies

Each entry trains the default recipe with one change, on the same seeds (0 to 3, one thread each, two at a
time) through scripts/seeds.py, beside the default itself, so that validation accuracy is compared seed by
seed (finished runs are read back, so an interrupted study resumes). Speed is measured apart, after the
training, on a quiet machine: every entry's training steps on one thread (benchmarks/bench_train.time_ours),
in --rounds interleaved rounds, the median reported against the default's. The rule, fixed before the runs: a part
earns its place where taking it away loses validation accuracy by more than two standard errors of the paired
difference, or where it buys speed; a difference within two standard errors is no finding. The constant
learning rate is 0.2, the mean rate of the default's OneCycleLR schedule (peak 0.4), so that the two take
steps of the same total size. A change that makes training diverge is reported as such.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.bench_train import EPOCH_IMAGES, time_ours
from compact_mnist.cli import ArgumentParser, UserError, positive_int, run_cli
from compact_mnist.data import load_mnist, resolve_data_dir
from compact_mnist.files import write_atomic
from model import PRESETS
from scripts import seeds
from scripts.seeds import read_report
from train import parse_args

ROOT = Path(__file__).resolve().parent.parent

SEEDS = ["0", "1", "2", "3"]
# name -> (what is taken away, train.py flags that take it away)
ABLATIONS = {
    "default": ("nothing: the default recipe", []),
    "no-batchnorm": ("BatchNorm (each convolution gets a bias instead)", ["--no-batchnorm"]),
    "flatten-head": ("global average pooling (the last map flattened into the linear layer)", ["--head", "flatten"]),
    "plain-convolutions": (
        "depthwise-separable convolutions (plain 3x3 ones of the same widths)",
        ["--model", PRESETS["default"].replace("s", "")],
    ),
    "constant-lr": (
        "OneCycleLR (a constant learning rate of 0.2, its mean)",
        ["--schedule", "constant", "--lr", "0.2"],
    ),
    "no-label-smoothing": ("label smoothing (0.1)", ["--label-smoothing", "0"]),
    "no-augmentation": ("augmentation (affine and elastic)", ["--no-augment"]),
}


def train_args(name: str) -> list[str]:
    """train.py's flags for an entry, as its seeds train it and the report records it."""
    return [*ABLATIONS[name][1], "--device", "cpu"]


def train_entry(name: str, report: Path, runs: Path) -> str | None:
    """Train one entry's seeds into the report; the reason if its training failed (a diverging loss, say)."""
    compare = [] if name == "default" else ["--compare", "default"]
    argv = ["--seeds", *SEEDS, "--jobs", "2", "--name", name, *compare, "--report", str(report), "--runs", str(runs)]
    try:
        seeds.main([*argv, "--", *train_args(name)])
    except UserError as error:
        return str(error)
    return None


def epoch_seconds(rounds: int, images: int) -> dict[str, list[float]]:
    """Each entry's seconds per epoch of training steps (55,000 images) on one thread in each of `rounds` interleaved
    rounds of `images` images, after a warm-up round."""
    import torch

    torch.set_num_threads(1)  # as each training run had
    data = load_mnist(resolve_data_dir(None), torch.device("cpu"))
    recipes = {name: parse_args(train_args(name)).recipe for name in ABLATIONS}
    times: dict[str, list[float]] = {name: [] for name in recipes}
    for round_index in range(rounds + 1):
        for name, recipe in recipes.items():
            seconds = time_ours(data, recipe, images)
            if round_index:  # round 0 warms up
                times[name].append(round(seconds * EPOCH_IMAGES / images, 2))
    return times


def summary(report: dict, failures: dict[str, str], rounds: dict[str, list[float]]) -> list[dict]:
    """One row per entry: parameters, validation mean, paired gain over the default, seconds per epoch (the median of
    the timing rounds, and each round's)."""
    seconds = {name: statistics.median(values) for name, values in rounds.items()}
    rows = []
    for name, (taken, flags) in ABLATIONS.items():
        row = dict(name=name, taken_away=taken, flags=flags, failed=failures.get(name))
        if name in report and not row["failed"]:
            entry = report[name]
            row |= dict(
                params=entry["params"],
                val_mean=entry["summary"]["val_acc"]["mean"],
                test_mean=entry["summary"]["test_acc"]["mean"],
                seconds_per_epoch=seconds[name],
                seconds_per_epoch_rounds=rounds[name],
                time_vs_default=seconds[name] / seconds["default"],
                val_gain=entry.get("compared_with", {}).get("val_gain"),
            )
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        f"Seeds {', '.join(SEEDS)}, one thread each, two at a time, 20 epochs, final-epoch models "
        "(`python scripts/ablation.py`). The change is in validation accuracy against the default, paired by seed, "
        "with its standard error; a change within two standard errors is no finding. Seconds per epoch are training "
        "steps on one thread, timed apart in interleaved rounds (no evaluation): the median, and the fastest and "
        "slowest round. Test means decide nothing.",
        "",
        "| taken away | train.py flags | parameters | val mean | val change (SE) | s / epoch (rounds) "
        "| time vs default | test mean |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        flags = f"`{' '.join(row['flags'])}`" if row["flags"] else ""
        if row["failed"]:
            lines.append(f"| {row['taken_away']} | {flags} | | failed: {row['failed']} | | | | |")
            continue
        gain = row["val_gain"]
        change = f"{gain['mean']:+.3f}% ({gain['standard_error']:.3f}%)" if gain else "baseline"
        lines.append(
            f"| {row['taken_away']} | {flags} | {row['params']:,} | {row['val_mean']:.2f}% | {change} "
            f"| {row['seconds_per_epoch']:.1f} ({min(row['seconds_per_epoch_rounds']):.1f}-"
            f"{max(row['seconds_per_epoch_rounds']):.1f}) | {row['time_vs_default']:.2f}x | {row['test_mean']:.2f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablation", help="folder for the runs")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved timing rounds")
    parser.add_argument("--images", type=positive_int, default=12_800, help="images per timing round")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "ablation.json",
        help="the seeds report the entries go into, with ablation.md beside it (default: reports/ablation.json)",
    )
    parser.add_argument(
        "--entries",
        nargs="+",
        choices=list(ABLATIONS),
        default=list(ABLATIONS),
        metavar="NAME",
        help=f"entries to train; the others keep their accuracies in --out, and every entry is timed again "
        f"(default: all of {', '.join(ABLATIONS)})",
    )
    args = parser.parse_args(argv)
    summary_path = args.out.with_name("ablation-summary.json")
    kept = [name for name in ABLATIONS if name not in args.entries]
    failures = {
        row["name"]: row["failed"]
        for row in read_report(summary_path).get("rows", [])
        if row["name"] in kept and row["failed"]
    }
    if kept and "default" in args.entries:
        raise UserError("every entry's change is measured against the default: retrain them all with it")
    report = read_report(args.out)
    if missing := [name for name in kept if name not in report and name not in failures]:
        raise UserError(f"{args.out} holds no entry {', '.join(missing)}: train it too (--entries)")
    if stale := [name for name in kept if name in report and report[name]["train_args"] != train_args(name)]:
        raise UserError(f"{args.out} trained {', '.join(stale)} with flags of another day: train it too (--entries)")
    for name in [name for name in ABLATIONS if name in args.entries]:  # the default first: the others compare with it
        if reason := train_entry(name, args.out, args.runs):
            failures[name] = reason
            if name == "default":
                raise UserError(f"the default itself failed to train: {reason}")
    rows = summary(json.loads(args.out.read_text()), failures, epoch_seconds(args.rounds, args.images))
    write_atomic(
        (json.dumps(dict(seeds=SEEDS, rows=rows), indent=2) + "\n").encode(),
        summary_path,
    )
    write_atomic(markdown(rows).encode(), args.out.with_suffix(".md"))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    run_cli(main)
