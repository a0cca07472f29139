"""How a training run is launched and read back, shared by scripts/seeds.py and scripts/search.py.

A run is `python train.py ARGS --out-dir OUT` in a subprocess, its output in `OUT.log`. A run that
already finished in OUT with the same arguments, and the same network and recipe behind them, is read
back instead of retrained, so an interrupted sweep or search resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from compact_mnist.checkpoint import write_atomic

ROOT = Path(__file__).resolve().parent.parent

# train.py prints one such line per epoch: "epoch  3/20  train loss ... val  99.12%  test ..."
EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/\d+\s.*\bval\s+([\d.]+)%")


# train.py's exit code after Ctrl-C; killed by SIGINT; Windows' STATUS_CONTROL_C_EXIT.
INTERRUPTED = {130, -2, 0xC000013A}


class RunFailed(Exception):
    """train.py exited with an error; the message names the exit code, the last line and the log."""


class RunStopped(Exception):
    """`on_epoch` asked to stop the run early (a pruned trial)."""


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def resolved_recipe(train_args: list[str]) -> dict | None:
    """What train.py would train with these flags today (see train.trained_recipe); None if it would refuse them."""
    from train import parse_args, trained_recipe  # imports torch: only when a finished run is there to check

    try:
        return trained_recipe(parse_args(train_args))
    except SystemExit:  # a usage error: the run must be launched for its message to be seen
        return None


def finished_run(train_args: list[str], out: Path) -> dict | None:
    """The metrics of a run that already finished in `out` with these train.py flags and the network and recipe
    they resolve to now, else None. The flags alone are not enough: after a preset or a default changes, the
    same flags train something else. Where it was trained does not matter: a finished run's folder can be moved."""
    path = out / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    command = metrics.get("command", [])
    if "--out-dir" in command:
        at = command.index("--out-dir")
        command = command[:at] + command[at + 2 :]
    if not metrics or command != train_args:
        return None
    trained = {key: metrics["meta"].get(key) for key in ("spec", "epochs", "seed", "hyperparameters")}
    # Through JSON, as metrics.json stores it, so that a tuple and a list, or 5e-4 and 0.0005, compare equal.
    return metrics if trained == json.loads(json.dumps(resolved_recipe(train_args))) else None


def train_run(
    train_args: list[str],
    out: Path,
    threads: int,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> dict:
    """Train once (unless this exact run already finished in `out`) and return its metrics.json.

    `on_epoch(epoch, val_accuracy)` is called after every epoch; when it returns True the run is
    stopped and `RunStopped` raised.
    """
    finished = finished_run(train_args, out)
    if finished:
        return finished
    arguments = [*train_args, "--out-dir", str(out)]
    log = out.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    command = [sys.executable, str(ROOT / "train.py"), *arguments]
    with open(log, "w", encoding="utf-8") as file:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            cwd=ROOT,
        )
        try:
            for line in process.stdout:
                file.write(line)
                file.flush()  # the log shows progress while the run goes on
                epoch = EPOCH_LINE.match(line)
                if epoch and on_epoch and on_epoch(int(epoch[1]), float(epoch[2])):
                    raise RunStopped(f"stopped after epoch {epoch[1]}")
            process.wait()
        finally:
            if process.poll() is None:  # stopped early, or Ctrl-C here (train.py got it too)
                process.terminate()
                process.wait()
    if process.returncode in INTERRUPTED:  # Ctrl-C reached train.py too: stop, do not record a failure
        raise KeyboardInterrupt
    if process.returncode != 0:
        raise RunFailed(f"train.py exited with {process.returncode}: {last_line(log)} (log: {log})")
    if not (out / "metrics.json").is_file():  # a flag such as --help made train.py exit without training
        raise RunFailed(f"train.py exited without training ({last_line(log)}; log: {log})")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["command"] = arguments
    write_atomic((json.dumps(metrics, indent=2) + "\n").encode(), out / "metrics.json")
    return metrics
