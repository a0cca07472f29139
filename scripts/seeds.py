"""Train the same recipe over several seeds and report the spread.

    python scripts/seeds.py --seeds 0 1 2 3 4                  # default preset
    python scripts/seeds.py --seeds 0 1 2 3 4 --name tiny -- --model tiny
    python scripts/seeds.py --seeds 0 1 2 --name lr0.1 --report reports/sweep.json -- --lr 0.1
    python scripts/seeds.py --seeds 0 1 2 --name lr0.1 --compare default --report reports/sweep.json -- --lr 0.1
    python scripts/seeds.py --seeds 0 1 2 --name micro-distilled --teacher models/mnist_model.pth -- --model micro
    python scripts/seeds.py --seeds 0 1 2 --name shared --repeats 3 -- --model 4,8s,M,15s,M,15s,15s,15s

Everything after `--` goes to train.py unchanged. Each seed trains into runs/NAME/seed-S/; a seed
whose run already finished with the same recipe (and method: for students, the same teacher, temperature and
weight) is read back instead of retrained, so an interrupted sweep resumes. `--jobs N` trains N seeds at once,
splitting the CPU threads between them.
The report (JSON plus a markdown table beside it) keeps one entry per NAME: the committed
reports/seeds.json for a NAME that is a preset, runs/seeds.json for any other, unless --report says.
`--compare OTHER` adds the mean validation gain over the entry OTHER (of this report, or of
`--compare-report`), paired by seed: seeds share their data order and initial weights, so a paired
difference sees a change that the seed-to-seed spread would hide. `--teacher CHECKPOINT` trains each seed as that
model's student (scripts/distill.py, with its --temperature and --weight), and the entry says what the teacher is
and cost; `--repeats N` trains each seed's network with its last N blocks as one block applied N times
(scripts/shared_weights.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from compact_mnist.cli import ArgumentParser, UsageError, UserError, positive_int, run_cli
from compact_mnist.cli import seed as seed_value
from compact_mnist.files import write_report
from compact_mnist.goals import TARGET_ACCURACY, preset_of
from compact_mnist.recipe import Recipe
from model import PRESETS, parse_spec
from scripts.distill import Teaching, add_teaching_arguments, teaching_of
from scripts.launch import METHODS, RunFailed, finished_run, train_run
from scripts.shared_weights import Sharing, add_sharing_argument, shared_network

ROOT = Path(__file__).resolve().parent.parent


def run_seed(seed: int, args: argparse.Namespace, threads: int) -> dict:
    """Train one seed (unless its finished run is already on disk) and return its figures."""
    out = args.runs / args.name / f"seed-{seed}"
    train_args = ["--seed", str(seed), *args.train_args]
    metrics = finished_run(train_args, out, args.method)
    if metrics:
        print(f"[{args.name}] seed {seed}: already trained, reading {out}/metrics.json")
    else:
        print(f"[{args.name}] seed {seed}: training, log in {out}.log", flush=True)
        try:
            metrics = train_run(train_args, out, threads, method=args.method)
        except RunFailed as error:
            raise UserError(f"seed {seed} failed: {error}") from None
    meta, history = metrics["meta"], metrics["history"]
    first = next((h["epoch"] for h in history if h["test_acc"] >= TARGET_ACCURACY), None)
    return dict(
        seed=seed,
        val_acc=meta["val_accuracy"],
        test_acc=meta["test_accuracy"],
        plain_val_acc=meta.get("plain_val_accuracy"),
        plain_test_acc=meta.get("plain_test_accuracy"),
        raw_val_acc=meta.get("raw_val_accuracy"),
        raw_test_acc=meta.get("raw_test_accuracy"),
        first_epoch_at_target=first,
        seconds=round(meta["train_seconds"], 1),
        seconds_per_epoch=round(meta["seconds_per_epoch"], 2),
        threads=meta["threads"],
        params=meta["params"],
        device=meta["device"],
    ) | {record: meta[record] for _, record in METHODS.values() if record in meta}


def paired_gain(pairs: list[tuple[float, float]]) -> dict | None:
    """Mean of `a - b` over (a, b) accuracies from the same seeds, with its standard error; None below 2 pairs."""
    gains = [a - b for a, b in pairs]
    if len(gains) < 2:
        return None
    return dict(
        mean=statistics.mean(gains), standard_error=statistics.stdev(gains) / len(gains) ** 0.5, seeds=len(gains)
    )


def spread(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation (0 for one value), minimum and maximum."""
    return dict(
        mean=statistics.mean(values),
        std=statistics.stdev(values) if len(values) > 1 else 0.0,
        min=min(values),
        max=max(values),
    )


def summarize(runs: list[dict]) -> dict:
    """Mean, standard deviation, minimum and maximum of the validation and test accuracies; for runs with --views
    the plain network's too, for runs with --ema the raw weights', each with the saved model's mean gain over them on
    validation and its standard error."""
    result = {}
    for key in ("val_acc", "test_acc", "plain_val_acc", "plain_test_acc", "raw_val_acc", "raw_test_acc"):
        values = [run[key] for run in runs if run.get(key) is not None]
        if not values:  # plain_* exist only for runs with --views, raw_* for runs with --ema
            continue
        result[key] = spread(values)
    # Paired by seed within each run: the saved model read with views against its network alone, and the average
    # against the raw weights, both read alone (with --views, raw_val_acc is read without them).
    gains = dict(
        views_val_gain=[(run["val_acc"], run["plain_val_acc"]) for run in runs if run.get("plain_val_acc") is not None],
        averaging_val_gain=[
            (read_alone(run), run["raw_val_acc"]) for run in runs if run.get("raw_val_acc") is not None
        ],
    )
    return result | {name: gain for name, pairs in gains.items() if (gain := paired_gain(pairs))}


def read_alone(run: dict) -> float:
    """A run's validation accuracy without test-time views: the network's alone."""
    return run["val_acc"] if run.get("plain_val_acc") is None else run["plain_val_acc"]


def compare(runs: list[dict], baseline: dict, name: str) -> dict:
    """The validation gain of `runs` over the report entry `baseline` (`name` says which), paired by seed, each read
    without test-time views: a recipe's change, not a reading's. Where both read with views, their gain so read
    beside it."""
    baseline_val = {run["seed"]: read_alone(run) for run in baseline["runs"]}
    gain = paired_gain([(read_alone(run), baseline_val[run["seed"]]) for run in runs if run["seed"] in baseline_val])
    if gain is None:
        raise UserError(f"--compare {name}: fewer than 2 of these seeds are in that entry; train the same seeds")
    with_views = {run["seed"]: run["val_acc"] for run in baseline["runs"] if run.get("plain_val_acc") is not None}
    read_so = [run for run in runs if run.get("plain_val_acc") is not None and run["seed"] in with_views]
    views = paired_gain([(run["val_acc"], with_views[run["seed"]]) for run in read_so])
    return dict(name=name, val_gain=gain) | (dict(views_val_gain=views) if views else {})


def trained_recipe(train_args: list[str]) -> Recipe:
    """The recipe that train.py trains with these flags; a flag that it refuses is refused here, before any run."""
    import train

    try:
        return train.parse_args(train_args, exit_on_error=False).recipe
    except UsageError as error:
        raise UserError(f"train.py refuses the flags after --: {error}") from None
    except SystemExit:  # --help: it printed train.py's flags
        raise UserError("--help after -- trains nothing; train.py's flags are listed above") from None


def entry_name(name: str | None, train_args: list[str]) -> str:
    """The report entry's name: as given, else the preset trained. A preset's name is only for that preset's whole
    recipe, so that a sweep of another network or recipe never overwrites the committed entry."""
    recipe = trained_recipe(train_args)
    spec, preset = ",".join(parse_spec(recipe.model)), preset_of(recipe)
    what = f"{spec} with a recipe of no preset's" if spec in PRESETS.values() else f"{spec}, which is no preset"
    if name is None and preset is None:
        raise UserError(f"the flags after -- train {what}: give the entry a --name")
    if name in PRESETS and name != preset:
        raise UserError(
            f"--name {name} is the {name} preset's entry, but the flags after -- train {spec}; "
            f"choose another --name, or train --model {name}"
        )
    return name or preset


def default_report(name: str) -> Path:
    """The committed multi-seed report for a preset's entry; an untracked one under runs/ for any other."""
    return ROOT / ("reports" if name in PRESETS else "runs") / "seeds.json"


def read_report(path: Path) -> dict:
    """A report's entries by name; empty if the file does not exist yet."""
    return json.loads(path.read_text()) if path.is_file() else {}


def read_baseline(name: str, path: Path) -> dict:
    """The entry `name` of the report at `path`, read before any training so that a typo fails at once."""
    report = read_report(path)
    if name not in report:
        raise UserError(f"--compare {name}: no such entry in {path}; entries: {', '.join(report) or 'none'}")
    return report[name]


def pct(value: float | None, digits: int = 2) -> str:
    return f"{value:.{digits}f}%" if value is not None else "n/a"


def gain_text(gain: dict) -> str:
    """A paired gain as the reports print it: "+0.032% (standard error 0.017%)"."""
    return f"{gain['mean']:+.3f}% (standard error {gain['standard_error']:.3f}%)"


def teacher_text(about: dict, runs: list[dict]) -> str:
    """What distilled runs were students of, and what the teacher cost beside them."""
    student = statistics.mean(run["seconds"] for run in runs)
    trained = (
        f"{about['teacher_epochs']} epochs in {about['teacher_seconds']:.0f} s on {about['teacher_threads']} threads"
        if about.get("teacher_seconds") is not None
        else "its training time unrecorded"
    )
    return (
        f"Each seed trained as the student of `{Path(about['teacher']).name}` (fingerprint "
        f"{about['teacher_fingerprint']}; {about['teacher_spec']}, {about['teacher_params']:,} parameters, {trained}, "
        f"paid once for all students), temperature {about['temperature']:g}, weight {about['weight']:g} on the "
        f"teacher's term (scripts/distill.py). The students' {student:.0f} s (mean) include the teacher's reading of "
        "every batch they train on."
    )


def comparison_text(other: dict) -> list[str]:
    """The report's lines on an entry's validation gain over another (`compare`'s result)."""
    gain, where = other["val_gain"], f" in `{other['report']}`" if "report" in other else ""
    text = f"Validation gain over `{other['name']}`{where}, paired by seed ({gain['seeds']} seeds): {gain_text(gain)}"
    views = other.get("views_val_gain")
    return ["", text + (f"; both read with test-time views: {gain_text(views)}." if views else ".")]


def method_text(entry: dict) -> list[str]:
    """The report's lines on how an entry's runs trained from outside the kit, if they did."""
    if Teaching.record in entry:
        return ["", teacher_text(entry[Teaching.record], entry["runs"])]
    if Sharing.record in entry:
        repeats, unshared = entry[Sharing.record]["repeats"], entry[Sharing.record]["unshared_params"]
        return [
            "",
            f"The network's last {repeats} blocks are one block applied {repeats} times, each with a BatchNorm of its "
            f"own (scripts/shared_weights.py): {entry['params']:,} parameters, {unshared:,} unshared.",
        ]
    return []


def markdown(report: dict) -> str:
    """One table per entry: a row per seed, then the summary rows. Runs with --views also show the plain network's
    figures from the same run, runs with --ema the raw weights', so the two can be compared seed by seed."""
    lines = []
    titles = dict(
        val_acc="val acc",
        test_acc="test acc",
        plain_val_acc="plain val",
        plain_test_acc="plain test",
        raw_val_acc="raw val",
        raw_test_acc="raw test",
    )
    for name, entry in report.items():
        flags = " ".join(entry["train_args"]) or "(defaults)"
        keys = [key for key in titles if key in entry["summary"]]
        lines += [
            f"### {name}: {entry['params']:,} parameters, train.py {flags}",
            "",
            "| seed | "
            + " | ".join(titles[key] for key in keys)
            + f" | first epoch test >= {TARGET_ACCURACY}% | seconds | device |",
            "|---:|" + "---:|" * len(keys) + "---:|---:|---|",
        ]
        for run in entry["runs"]:
            lines.append(
                f"| {run['seed']} | "
                + " | ".join(pct(run.get(key)) for key in keys)
                + f" | {run['first_epoch_at_target'] or 'never'} | {run['seconds']:.0f} | {run['device']} |"
            )
        for stat in ("mean", "std", "min", "max"):
            values = [entry["summary"].get(key, {}).get(stat) for key in keys]
            lines.append(f"| **{stat}** | " + " | ".join(pct(value, 3) for value in values) + " | | | |")
        gain = entry["summary"].get("views_val_gain")
        if gain:
            lines += [
                "",
                "Read with test-time views (val acc, test acc) and by the network alone (plain). The views' validation "
                f"gain over the same runs' plain network, paired by seed: {gain_text(gain)}. The first epoch at "
                f"{TARGET_ACCURACY}% is the plain network's: each epoch's figures are.",
            ]
        gain = entry["summary"].get("averaging_val_gain")
        if gain:
            lines += [
                "",
                f"Weight averaging's validation gain over the same runs' raw weights, paired by seed: "
                f"{gain_text(gain)}.",
            ]
        lines += method_text(entry)
        lines += comparison_text(entry["compared_with"]) if "compared_with" in entry else []
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seeds", type=seed_value, nargs="+", default=[0, 1, 2, 3, 4], help="seeds (default: 0 1 2 3 4)"
    )
    parser.add_argument("--name", help="name of this entry in the report (default: the preset trained)")
    parser.add_argument("--compare", metavar="OTHER", help="report the validation gain over entry OTHER, by seed")
    parser.add_argument("--compare-report", type=Path, help="the report that holds OTHER (default: --report)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="seeds trained at once")
    add_teaching_arguments(parser, required=False)  # --teacher CHECKPOINT: each seed trains as its student
    add_sharing_argument(parser, required=False)  # --repeats N: each seed's last N blocks share their weights
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder for the runs (default: runs/)")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="report file (default: the committed reports/seeds.json, which it updates, for an entry "
        "named after a preset; runs/seeds.json for any other name)",
    )
    parser.add_argument("train_args", nargs="*", help="train.py flags, after --")
    args = parser.parse_args(argv)
    args.name = entry_name(args.name, args.train_args)
    if args.teacher and args.repeats:
        raise UserError("--teacher and --repeats are two methods: screen each on its own")
    if (args.teacher or args.repeats) and args.name in PRESETS:
        method = "--teacher trains students" if args.teacher else "--repeats shares weights"
        raise UserError(f"{method}, not the {args.name} preset's recipe: give another --name")
    args.method = teaching_of(args) if args.teacher else Sharing(args.repeats) if args.repeats else None
    if args.repeats:  # a network that cannot share fails here, before any run
        shared_network(args.repeats)(trained_recipe(args.train_args))
    args.report = args.report or default_report(args.name)
    baseline = read_baseline(args.compare, args.compare_report or args.report) if args.compare else None
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda seed: run_seed(seed, args, threads), args.seeds))

    report = read_report(args.report)  # read now: another sweep may have written it while these seeds trained
    entry = dict(train_args=args.train_args, params=runs[0]["params"], runs=runs, summary=summarize(runs))
    if args.method:
        entry[args.method.record] = runs[0][args.method.record]
    if baseline is not None:
        entry["compared_with"] = compare(runs, baseline, args.compare)
        if args.compare_report:
            entry["compared_with"]["report"] = args.compare_report.as_posix()
    report[args.name] = entry
    write_report(report, markdown(report), args.report)
    print(markdown({args.name: report[args.name]}))
    return 0


if __name__ == "__main__":
    run_cli(main)
