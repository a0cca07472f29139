"""How long the test suite takes: `pytest -v` and `pytest -m "not slow"`, each run several times in the project's
folder, with their medians, their outcome lines, and the slowest tests of the first run; `--baseline REV` runs the
suite of an earlier revision (a clone of it beside this checkout's data) in turn with today's, so that their ratio
compares runs of one session.

    python benchmarks/bench_suite.py --repeats 3                     # writes benchmarks/suite.json and .md
    python benchmarks/bench_suite.py --repeats 3 --baseline 71b2d8e  # and the same for an earlier revision
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compact_mnist.cli import ArgumentParser, positive_int, run_cli
from compact_mnist.files import write_report

ROOT = Path(__file__).resolve().parent.parent
SUITES = {"pytest -v": [], 'pytest -m "not slow"': ["-m", "not slow"]}


def run(folder: Path, flags: list[str]) -> dict:
    """One run of the suite in `folder`: wall seconds, the outcome line, the slowest tests."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=15", *flags]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = result.stdout.splitlines()
    outcome = next((line.strip("= ") for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    slowest = [line for line in lines if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line)]
    return dict(seconds=round(seconds, 1), outcome=outcome, exit_code=result.returncode, slowest=slowest)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs of each suite")
    parser.add_argument("--baseline", help="a git revision whose suite runs in turn with today's")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "suite.json", help="results file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folders = {"today": ROOT}
        if args.baseline:
            subprocess.run(["git", "clone", "-q", str(ROOT), folder], check=True)
            subprocess.run(["git", "-C", folder, "checkout", "-q", args.baseline], check=True)
            folders["baseline"] = Path(folder)
        runs: dict = {side: {suite: [] for suite in SUITES} for side in folders}
        for repeat in range(args.repeats):
            for suite, flags in SUITES.items():
                for side, path in folders.items():  # in turn, so that both see the machine alike
                    runs[side][suite].append(run(path, flags))
                    print(f"{side} {suite} #{repeat + 1}: {runs[side][suite][-1]['seconds']} s", flush=True)
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
    results["revision"] = {"today": "working tree", "baseline": args.baseline}
    write_report(results, markdown(results), args.out)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = ["| suite | revision | median seconds | runs | outcome |", "|---|---|---:|---|---|"]
    for side in ("today", "baseline"):
        for suite, row in results.get(side, {}).items():
            name = results["revision"][side]
            runs = ", ".join(f"{seconds:.0f}" for seconds in row["seconds"])
            lines.append(f"| `{suite}` | {name} | {row['median_seconds']:.0f} | {runs} | {row['outcome']} |")
    slowest = results["today"]["pytest -v"]["slowest"]
    return (
        "\n".join(lines)
        + "\n\nThe slowest tests of `pytest -v` (first run):\n\n"
        + "\n".join(f"    {line}" for line in slowest)
        + "\n"
    )


if __name__ == "__main__":
    run_cli(main)
