"""The accuracy-size-speed frontier of the confirmed presets, from reports/seeds.json.

    python scripts/frontier.py              # writes reports/frontier.json, .md and .png

One point per preset confirmed with scripts/seeds.py: parameters (log axis) against mean test accuracy,
with bars from the worst to the best seed, and the CPU seconds per epoch its runs took; a preset that reads
with test-time views has its network alone beside, a hollow point.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from compact_mnist.cli import ArgumentParser, UserError, run_cli
from compact_mnist.files import stamp, write_report
from compact_mnist.goals import GOALS

ROOT = Path(__file__).resolve().parent.parent

ORDER = sorted(GOALS, key=lambda name: GOALS[name].budget)  # smallest first


def points(report: dict) -> list[dict]:
    rows = []
    for name in ORDER:
        if name not in report:
            continue
        entry = report[name]
        test, val, plain = (
            entry["summary"]["test_acc"],
            entry["summary"]["val_acc"],
            entry["summary"].get("plain_test_acc"),
        )
        per_epoch = [run["seconds_per_epoch"] for run in entry["runs"] if run.get("seconds_per_epoch")]
        rows.append(
            dict(
                preset=name,
                params=entry["params"],
                seeds=len(entry["runs"]),
                train_args=entry["train_args"],
                test_mean=test["mean"],
                test_min=test["min"],
                test_max=test["max"],
                test_std=test["std"],
                # A preset that reads with test-time views: its network alone, beside (None: it reads plain).
                plain_test_mean=plain["mean"] if plain else None,
                plain_test_min=plain["min"] if plain else None,
                val_mean=val["mean"],
                seconds_per_epoch=statistics.median(per_epoch) if per_epoch else None,
                threads=sorted({run.get("threads") for run in entry["runs"]} - {None}),
            )
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| preset | parameters | reads | seeds | test mean | test min | test max | test std | without views: mean, min "
        "| val mean | CPU s / epoch |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        seconds = f"{row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] else "n/a"
        views = row["plain_test_mean"] is not None
        plain = f"{row['plain_test_mean']:.2f}%, {row['plain_test_min']:.2f}%" if views else "(the same)"
        lines.append(
            f"| {row['preset']} | {row['params']:,} | {'with views' if views else 'plain'} | {row['seeds']} "
            f"| **{row['test_mean']:.2f}%** | {row['test_min']:.2f}% | {row['test_max']:.2f}% | {row['test_std']:.3f} "
            f"| {plain} | {row['val_mean']:.2f}% | {seconds} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds-report", type=Path, default=ROOT / "reports" / "seeds.json", help="seeds.py's report")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "frontier.json",
        help="results file, with .md and .png beside it (default: the committed reports/frontier.json)",
    )
    args = parser.parse_args(argv)
    if not args.seeds_report.is_file():
        raise UserError(f"{args.seeds_report} not found; confirm presets first with scripts/seeds.py")
    rows = points(json.loads(args.seeds_report.read_text()))
    if not rows:
        raise UserError(f"{args.seeds_report} has no entry named {', '.join(GOALS)}")
    report = dict(points=rows)
    write_report(report, markdown(rows), args.out)
    from compact_mnist.plots import frontier  # matplotlib: only once there is something to draw

    frontier(rows, args.out.with_suffix(".png"))
    stamp(args.out.with_suffix(".png"), [args.seeds_report], "python scripts/frontier.py")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    run_cli(main)
