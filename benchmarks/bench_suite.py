"""How long the test suite takes: `pytest -v` and `pytest -m "not slow"`, each run several times in the project's
folder, with their medians, their outcome lines, and the slowest tests of the first run; `--baseline REV` runs the
suite of an earlier revision (a clone of it, with this checkout's web/node_modules) in turn with today's, so that
their ratio compares runs of one session; `--coverage` also measures each side's line coverage once (coverage.py,
every process the suite starts included, as pyproject.toml's [tool.coverage] says).

    python benchmarks/bench_suite.py --repeats 3                                # writes benchmarks/suite.json and .md
    python benchmarks/bench_suite.py --repeats 3 --baseline 28ed477 --coverage  # and an earlier revision beside it
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from compact_mnist.cli import ArgumentParser, positive_int, run_cli
from compact_mnist.files import write_report
from train import machine_name

ROOT = Path(__file__).resolve().parent.parent
SUITES = {"pytest -v": [], 'pytest -m "not slow"': ["-m", "not slow"]}


def environment(folder: Path) -> dict[str, str]:
    """The suite's environment for the checkout in `folder`: its own modules first, in every process it starts."""
    return dict(os.environ, PYTHONPATH=str(folder))


def run(folder: Path, flags: list[str]) -> dict:
    """One run of the suite in `folder`: wall seconds, the outcome line, the slowest tests."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=15", *flags]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=environment(folder), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = result.stdout.splitlines()
    outcome = next((line.strip("= ") for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    slowest = [line for line in lines if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line)]
    return dict(seconds=round(seconds, 1), outcome=outcome, exit_code=result.returncode, slowest=slowest)


def coverage(folder: Path) -> dict:
    """`coverage run -m pytest` once in `folder`: the project's lines, those the suite ran, and their share. Both sides
    are measured as today's pyproject.toml says, so that an older revision is measured alike."""
    env = dict(
        environment(folder), COVERAGE_FILE=str(folder / ".coverage"), COVERAGE_RCFILE=str(ROOT / "pyproject.toml")
    )
    for stale in folder.glob(".coverage*"):
        stale.unlink()
    subprocess.run([sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                   cwd=folder, env=env, capture_output=True)  # fmt: skip
    subprocess.run([sys.executable, "-m", "coverage", "combine", "-q"], cwd=folder, env=env, check=True)
    report = folder / "coverage.json"
    subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(report)], cwd=folder, env=env, check=True)
    totals = json.loads(report.read_text())["totals"]
    report.unlink()
    return dict(statements=totals["num_statements"], covered=totals["covered_lines"], percent=totals["percent_covered"])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs of each suite")
    parser.add_argument("--baseline", help="a git revision whose suite runs in turn with today's")
    parser.add_argument("--coverage", action="store_true", help="also measure each side's line coverage once")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "suite.json", help="results file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folders = {"today": ROOT}
        if args.baseline:
            subprocess.run(["git", "clone", "-q", str(ROOT), folder], check=True)
            subprocess.run(["git", "-C", folder, "checkout", "-q", args.baseline], check=True)
            if (ROOT / "web" / "node_modules").is_dir():  # the page's build, which the browser tests need
                (Path(folder) / "web" / "node_modules").symlink_to(ROOT / "web" / "node_modules")
            folders["baseline"] = Path(folder)
        runs: dict = {side: {suite: [] for suite in SUITES} for side in folders}
        for repeat in range(args.repeats):
            for suite, flags in SUITES.items():
                for side, path in folders.items():  # in turn, so that both see the machine alike
                    runs[side][suite].append(run(path, flags))
                    print(f"{side} {suite} #{repeat + 1}: {runs[side][suite][-1]['seconds']} s", flush=True)
        covered = {side: coverage(path) for side, path in folders.items()} if args.coverage else {}
    results = {
        side: {
            suite: dict(
                median_seconds=statistics.median(r["seconds"] for r in each),
                seconds=[r["seconds"] for r in each],
                outcome=each[0]["outcome"],
                all_passed=all(r["exit_code"] == 0 for r in each),
                slowest=each[0]["slowest"],
            )
            for suite, each in sides.items()
        }
        for side, sides in runs.items()
    }
    for side, figures in covered.items():
        results[side]["coverage"] = figures
    results["revision"] = {"today": "working tree", "baseline": args.baseline}
    results["machine"] = f"{machine_name(torch.device('cpu'))}, {os.cpu_count()} cores"
    write_report(results, markdown(results), args.out)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = ["| suite | revision | median seconds | runs | outcome |", "|---|---|---:|---|---|"]
    sides = [side for side in ("today", "baseline") if side in results]
    for side in sides:
        for suite in SUITES:
            row, name = results[side][suite], results["revision"][side]
            runs = ", ".join(f"{seconds:.0f}" for seconds in row["seconds"])
            lines.append(f"| `{suite}` | {name} | {row['median_seconds']:.0f} | {runs} | {row['outcome']} |")
    for side in sides:
        if "coverage" in results[side]:
            figures = results[side]["coverage"]
            lines.append(
                f"\nLine coverage, {results['revision'][side]}: {figures['percent']:.1f}% "
                f"({figures['covered']:,} of {figures['statements']:,} statements)"
            )
    for side in sides:
        slowest = results[side]["pytest -v"]["slowest"]
        lines.append(f"\nThe slowest tests of `pytest -v`, {results['revision'][side]} (first run):\n")
        lines += [f"    {line}" for line in slowest]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
