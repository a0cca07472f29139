"""What an install costs: the kit alone (`pip install -e ".[test]"`) against everything (`pip install -r
requirements.txt`), each into a new virtual environment: distributions, megabytes, seconds, and what torch itself
weighs of it.

    python benchmarks/bench_install.py                              # writes benchmarks/install.json and .md
    python benchmarks/bench_install.py --cpu-wheel torch-X+cpu-....whl   # adds a CPU-only torch wheel's size

pip takes its packages from wherever it is configured to (an index, a local wheel store, its cache): the seconds
say how long the install took here, with that configuration. The CUDA libraries that a default Linux torch brings
are counted apart, since a CPU-only wheel has none.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compact_mnist.cli import ArgumentParser, run_cli
from compact_mnist.files import write_report

ROOT = Path(__file__).resolve().parent.parent
INSTALLS = {"kit": ["-e", ".[test]"], "everything": ["-r", "requirements.txt"]}
# Read inside the new environment: every distribution with its files' bytes.
MEASURE = """
import json, importlib.metadata as m
dists = {}
for dist in m.distributions():
    files = [f for f in dist.files or [] if not str(f).endswith(".pyc")]
    dists[dist.metadata["Name"].lower()] = sum(f.locate().stat().st_size for f in files if f.locate().is_file())
print(json.dumps(dists))
"""
TOOLS = {"pip", "setuptools", "wheel"}  # what every new environment has


def measure(name: str, arguments: list[str]) -> dict:
    """Install into a new virtual environment and measure it."""
    with tempfile.TemporaryDirectory() as folder:
        python = Path(folder) / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
        subprocess.run([sys.executable, "-m", "venv", folder], check=True)
        started = time.perf_counter()
        subprocess.run([python, "-m", "pip", "install", "-q", *arguments], cwd=ROOT, check=True)
        seconds = time.perf_counter() - started
        sizes = json.loads(subprocess.run([python, "-c", MEASURE], capture_output=True, text=True, check=True).stdout)
    sizes = {dist: size for dist, size in sizes.items() if dist not in TOOLS}
    cuda = {dist: size for dist, size in sizes.items() if dist.startswith(("nvidia-", "triton", "cuda-"))}
    return dict(
        command=f"pip install {' '.join(arguments)}",
        seconds=round(seconds, 1),
        distributions=len(sizes),
        megabytes=round(sum(sizes.values()) / 1e6, 1),
        torch_megabytes=round(sizes.get("torch", 0) / 1e6, 1),
        cuda_libraries=len(cuda),
        cuda_megabytes=round(sum(cuda.values()) / 1e6, 1),
        not_torch_megabytes=round((sum(sizes.values()) - sizes.get("torch", 0) - sum(cuda.values())) / 1e6, 1),
        extras=sorted(dist for dist in sizes if dist not in cuda),
    )


def markdown(results: dict) -> str:
    lines = [
        "| install | command | distributions | MB in all | torch | its CUDA libraries | the rest | seconds here |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["installs"].items():
        lines.append(
            f"| {name} | `{row['command']}` | {row['distributions']} | {row['megabytes']:,.0f} | "
            f"{row['torch_megabytes']:,.0f} | {row['cuda_megabytes']:,.0f} ({row['cuda_libraries']}) | "
            f"{row['not_torch_megabytes']:,.0f} | {row['seconds']:.0f} |"
        )
    wheel = results.get("cpu_wheel")
    if wheel:
        lines.append(f"\nA CPU-only torch wheel (`{wheel['name']}`) is {wheel['megabytes']:,.0f} MB as downloaded.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-wheel", type=Path, help="a CPU-only torch wheel file, whose size is recorded")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "install.json", help="results file")
    args = parser.parse_args(argv)
    results: dict = {"python": sys.version.split()[0], "installs": {}}
    for name, arguments in INSTALLS.items():
        results["installs"][name] = measure(name, arguments)
        print(f"{name}: {results['installs'][name]['distributions']} distributions", flush=True)
    if args.cpu_wheel:
        results["cpu_wheel"] = dict(name=args.cpu_wheel.name, megabytes=round(args.cpu_wheel.stat().st_size / 1e6, 1))
    write_report(results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    run_cli(main)
