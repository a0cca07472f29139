"""Fill the generated sections of README.md from the committed results.

    python scripts/render_readme.py          # rewrite README.md
    python scripts/render_readme.py --check  # exit 1 if README.md is out of date

Each section sits between `<!-- BEGIN name -->` and `<!-- END name -->` and is rebuilt from
models/metrics.json, reports/seeds.json, reports/sweep.json, benchmarks/results.md or the
model itself, so no number
in the README is typed by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import PRESETS, Net, count_parameters, layer_table  # noqa: E402

README = ROOT / "README.md"


def results() -> str:
    """The committed model's row: parameters, accuracies, epochs and time, with the machine."""
    meta = json.loads((ROOT / "models" / "metrics.json").read_text())["meta"]
    return "\n".join([
        "| model | parameters | val accuracy | test accuracy | epochs | seconds / epoch | whole run | machine |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| `models/mnist_model.pth` ({meta['model']}) | {meta['params']:,} | {meta['val_accuracy']:.2f}% "
        f"| **{meta['test_accuracy']:.2f}%** | {meta['epochs']} | {meta['seconds_per_epoch']:.1f} "
        f"| {meta['train_seconds']:.0f} s | {meta['machine']}, {meta['threads']} threads, torch {meta['torch_version']} |",
    ])  # fmt: skip


def seeds() -> str:
    """Mean, min and std over seeds for each preset, from the multi-seed report."""
    report = json.loads((ROOT / "reports" / "seeds.json").read_text())
    lines = [
        "| preset | parameters | seeds | test mean | test min | test std | val mean | device |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, entry in report.items():
        test, val = entry["summary"]["test_acc"], entry["summary"]["val_acc"]
        devices = ", ".join(sorted({run["device"] for run in entry["runs"]}))
        lines.append(
            f"| {name} | {entry['params']:,} | {len(entry['runs'])} | **{test['mean']:.2f}%** | {test['min']:.2f}% "
            f"| {test['std']:.3f} | {val['mean']:.2f}% | {devices} |"
        )
    return "\n".join(lines)


def sweep() -> str:
    """Validation results of the design sweep (3 seeds per setting), best first."""
    report = json.loads((ROOT / "reports" / "sweep.json").read_text())
    lines = [
        "| setting | parameters | train.py flags | val mean | val min | test mean |",
        "|---|---:|---|---:|---:|---:|",
    ]
    ranked = sorted(report.items(), key=lambda item: -item[1]["summary"]["val_acc"]["mean"])
    for name, entry in ranked:
        val, test = entry["summary"]["val_acc"], entry["summary"]["test_acc"]
        lines.append(
            f"| {name} | {entry['params']:,} | `{' '.join(entry['train_args'])}` | **{val['mean']:.2f}%** "
            f"| {val['min']:.2f}% | {test['mean']:.2f}% |"
        )
    return "\n".join(lines)


def architecture() -> str:
    """The layer table of each preset, computed from the model."""
    parts = []
    for preset, spec in PRESETS.items():
        model = Net(preset)
        parts += [
            f"**{preset}** (`{spec}`, {count_parameters(model):,} parameters)", "",
            "| layer | output shape | parameters | receptive field |", "|---|---|---:|---:|",
        ]  # fmt: skip
        for row in layer_table(model):
            shape = "x".join(map(str, row["shape"]))
            parts.append(f"| {row['layer']} | {shape} | {row['params']:,} | {row['rf']} |")
        parts.append("")
    return "\n".join(parts).rstrip()


def benchmark() -> str:
    return (ROOT / "benchmarks" / "results.md").read_text().strip()


SECTIONS = {
    "results": results, "seeds": seeds, "sweep": sweep, "architecture": architecture, "benchmark": benchmark,
}  # fmt: skip


def render(text: str) -> str:
    """README text with every generated section rebuilt."""

    def fill(match: re.Match) -> str:
        name = match.group(1)
        return f"<!-- BEGIN {name} -->\n{SECTIONS[name]()}\n<!-- END {name} -->"

    return re.sub(r"<!-- BEGIN (\w+) -->.*?<!-- END \1 -->", fill, text, flags=re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args()
    current = README.read_text()
    rendered = render(current)
    if args.check:
        if rendered != current:
            print("README.md is out of date: run python scripts/render_readme.py")
            return 1
        return 0
    README.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
