"""Start-up time of every script: `--help` and a bad flag, against a bare `import torch`.

    python benchmarks/bench_startup.py              # about a minute on 2 CPU cores

Heavy libraries (torchvision, matplotlib, onnxruntime, Optuna, Gradio) are imported only where they
are used, so asking a script for help or giving it a bad flag should cost little more than importing
torch. Each command runs once to warm the disk cache, then --repeats times, interleaved with the
baseline so that drift on a shared machine hits both alike; the medians and their ratio to the
baseline go to benchmarks/startup.json and benchmarks/startup.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from compact_mnist.cli import ArgumentParser, positive_int, run_cli
from compact_mnist.files import write_report

ROOT = Path(__file__).resolve().parent.parent

BASELINE = ["-c", "import torch"]
SCRIPTS = ["train.py", "evaluate.py", "predict.py", "export.py", "app.py", "scripts/seeds.py", "scripts/search.py"]
TARGET_RATIO = 1.5


def wall_seconds(arguments: list[str]) -> float:
    """Wall-clock seconds of one `python ARGUMENTS` process (its output discarded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs of each command")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "startup.json",
        help="results file, with .md beside it (default: the committed benchmarks/startup.json)",
    )
    options = parser.parse_args()
    commands = {'-c "import torch"': BASELINE}
    for script in SCRIPTS:
        if (ROOT / script).is_file():
            commands[f"{script} --help"] = [script, "--help"]
            commands[f"{script} --no-such-flag"] = [script, "--no-such-flag"]

    timings: dict[str, list[float]] = {name: [] for name in commands}
    for repeat in range(options.repeats + 1):  # repeat 0 warms the disk cache and is not counted
        for name, arguments in commands.items():
            seconds = wall_seconds(arguments)
            if repeat:
                timings[name].append(seconds)
        print(f"repeat {repeat} of {options.repeats} done", flush=True)

    baseline = statistics.median(timings['-c "import torch"'])
    rows = {
        name: dict(median_seconds=statistics.median(runs), ratio=statistics.median(runs) / baseline, runs=runs)
        for name, runs in timings.items()
    }
    results = dict(python=sys.version.split()[0], repeats=options.repeats, target_ratio=TARGET_RATIO, commands=rows)
    write_report(results, markdown(results), options.out)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = [
        f"Median of {results['repeats']} runs each, interleaved, after a warm-up run; the ratio is to a bare "
        f'`python -c "import torch"` in the same run (target: at most {results["target_ratio"]}x).',
        "",
        "| command | median seconds | ratio to `import torch` |",
        "|---|---:|---:|",
    ]
    for name, row in results["commands"].items():
        lines.append(f"| `python {name}` | {row['median_seconds']:.2f} | {row['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
