"""Four short reference trainings, run through `python train.py` exactly as a user runs it, each printed as a hash
of its weights and of its record: the check that a refactor changed nothing that training produces.

    python scripts/reference_runs.py --save before.json     # on the code before the change
    python scripts/reference_runs.py --compare before.json  # after it: exit 1 on any difference

Each run is `--deterministic` on one thread, so on one machine the same code gives the same hashes; across
machines (another CPU, another torch) they differ, so the hashes are compared only on the machine that made them.
The layer-spec run writes out its whole recipe, so it means the same run whatever a layer spec's defaults are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--train-limit", "2000", "--deterministic", "--device", "cpu"]
RUNS = {
    "default": ["--epochs", "4"],
    "tiny-clean-epochs": ["--model", "tiny", "--epochs", "6"],
    "micro-ema": ["--model", "micro", "--epochs", "3", "--clean-epochs", "1", "--ema", "0.9"],
    "flatten-no-batchnorm-constant": [
        "--model", "8,M,16,M,16", "--head", "flatten", "--no-batchnorm", "--schedule", "constant", "--lr", "0.05",
        "--val-size", "0", "--epochs", "3", "--elastic", "0", "--label-smoothing", "0.1", "--dropout", "0.05",
    ],
}  # fmt: skip
VARYING = ("seconds", "train_seconds", "seconds_per_epoch", "date", "machine", "resumed")


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def weights_hash(checkpoint: Path) -> str:
    """sha256 of every tensor of the saved weights, in order (the file itself also holds the date)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    sha = hashlib.sha256()
    for name, tensor in state.items():
        sha.update(name.encode() + tensor.cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def record_hash(metrics: Path) -> str:
    """sha256 of metrics.json without what changes from run to run (times, date, machine)."""
    record = json.loads(metrics.read_text())
    meta = {key: value for key, value in record["meta"].items() if key not in VARYING}
    history = [{key: value for key, value in epoch.items() if key not in VARYING} for epoch in record["history"]]
    return digest([meta, history])


def run(name: str, flags: list[str], folder: Path) -> dict[str, str]:
    out = folder / name
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, "train.py", *QUICK, *flags, "--out-dir", str(out)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return dict(weights=weights_hash(out / "mnist_model.pth"), record=record_hash(out / "metrics.json"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--save", type=Path, help="write the hashes to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with hashes saved earlier; exit 1 on a difference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        hashes = {}
        for name, flags in RUNS.items():
            hashes[name] = run(name, flags, Path(folder))
            print(f"{name:32s} weights {hashes[name]['weights']}  record {hashes[name]['record']}", flush=True)
    if args.save:
        args.save.write_text(json.dumps(hashes, indent=2) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = [name for name in RUNS if before.get(name) != hashes[name]]
        print("bit-identical to " + str(args.compare) if not differ else f"differ from {args.compare}: {differ}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
