"""How a training run is launched and read back, shared by scripts/seeds.py and scripts/search.py.

A run is train.py's `main` in a worker process of its own (`python scripts/launch.py TRAIN_FLAGS --out-dir OUT`),
so that runs go in parallel on their own threads and Ctrl-C or a pruned trial stops one cleanly; with a method's
flags and `--` first (scripts/distill.py's: a student; scripts/shared_weights.py's), the run trains by that method,
from outside the kit. It writes what `python train.py` writes into OUT, its output for people into OUT.log, and its
messages for the parent as JSON lines on its stdout: {"epoch": record} after every epoch, {"metrics": metrics.json's
content} once saved. A run whose OUT/metrics.json records the recipe that the same flags resolve to today (and the
same method) is read back instead of retrained, so an interrupted sweep or search resumes where it stopped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from compact_mnist.cli import UsageError, UserError, run_cli
from compact_mnist.goals import recorded_recipe
from compact_mnist.recipe import Recipe

ROOT = Path(__file__).resolve().parent.parent
# The methods that train from outside the kit: the flag that starts a method's command line, its script (whose
# `main(argv, on_epoch)` the worker calls), and the field of the run's record that says how the run trained.
METHODS = {"--teacher": ("scripts.distill", "distillation"), "--repeats": ("scripts.shared_weights", "shared_weights")}


class Method(Protocol):
    """A way of training from outside the kit, as its script's flags and as its run's record holds it
    (scripts/distill.py's `Teaching`, scripts/shared_weights.py's `Sharing`)."""

    record: ClassVar[str]

    def flags(self) -> list[str]: ...

    def recorded(self) -> dict[str, Any]: ...


# train.py's exit code after Ctrl-C; killed by SIGINT; Windows' STATUS_CONTROL_C_EXIT.
INTERRUPTED = {130, -2, 0xC000013A}


class RunFailed(Exception):
    """train.py exited with an error; the message names the exit code, the last line and the log."""


class RunStopped(Exception):
    """`on_epoch` asked to stop the run early (a pruned trial)."""


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def wanted_recipe(train_args: list[str]) -> Recipe | None:
    """What train.py would train with these flags today, its model as a layer spec; None if it would refuse them
    (the run must then be launched for its message to be seen)."""
    from train import parse_args, trained_recipe

    try:
        return recorded_recipe(trained_recipe(parse_args(train_args, exit_on_error=False).recipe))
    except (UsageError, SystemExit):  # SystemExit: --help, which trains nothing
        return None


def finished_run(train_args: list[str], out: Path, method: Method | None = None) -> dict | None:
    """The metrics of a run that already finished in `out` with the recipe these train.py flags resolve to now, and
    trained by `method` where given, as it says (a student: the same teacher, by fingerprint, temperature and
    weight), else None.
    The flags alone are not enough: after a preset or a default changes, the same flags train something else. Where
    it was trained does not matter: a finished run's folder can be moved."""
    path = out / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
        recorded = recorded_recipe(metrics["meta"])
    except (ValueError, KeyError, TypeError):  # not written by train.py, or cut short: train again
        return None
    if any("changed_on_resume" in record for record in metrics.get("history", [])):
        return None  # resumed with another recipe part of the way: not a run of either
    meta = metrics["meta"]
    if [record for _, record in METHODS.values() if meta.get(record)] != ([method.record] if method else []):
        return None  # a method's run for a plain one, or the other way round
    if method and any(meta[method.record].get(key) != value for key, value in method.recorded().items()):
        return None  # the same method, otherwise applied
    return metrics if recorded == wanted_recipe(train_args) else None


def train_run(
    train_args: list[str],
    out: Path,
    threads: int,
    on_epoch: Callable[[int, float | None], bool] | None = None,
    method: Method | None = None,
) -> dict:
    """Train once (unless this exact run already finished in `out`) and return its metrics.json; with `method`,
    by that method.

    `on_epoch(epoch, val_accuracy)` is called after every epoch; when it returns True the run is
    stopped and `RunStopped` raised.
    """
    finished = finished_run(train_args, out, method)
    if finished:
        return finished
    log = out.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    before = [*method.flags(), "--"] if method else []
    command = [sys.executable, str(Path(__file__).resolve()), *before, *train_args, "--out-dir", str(out)]
    metrics = None
    with open(log, "w", encoding="utf-8") as file:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=file, text=True, encoding="utf-8", env=env, cwd=ROOT
        )
        try:
            for line in process.stdout:
                try:
                    message = json.loads(line)
                except ValueError:  # only a worker killed halfway through a line writes one
                    raise RunFailed(f"train.py sent a broken message: {line[:80]!r} (log: {log})") from None
                record = message.get("epoch")
                if record and on_epoch and on_epoch(record["epoch"], printed(record["val_acc"])):
                    raise RunStopped(f"stopped after epoch {record['epoch']}")
                metrics = message.get("metrics", metrics)
            process.wait()
        finally:
            if process.poll() is None:  # stopped early, or Ctrl-C here (the worker got it too)
                process.terminate()
                process.wait()
    if process.returncode in INTERRUPTED:  # Ctrl-C reached the worker too: stop, do not record a failure
        raise KeyboardInterrupt
    if process.returncode != 0:
        raise RunFailed(f"train.py exited with {process.returncode}: {last_line(log)} (log: {log})")
    if metrics is None:  # a flag such as --help made train.py exit without training
        raise RunFailed(f"train.py exited without training ({last_line(log)}; log: {log})")
    return metrics


def method_run(train_args: list[str], what: str, start: Callable[[argparse.Namespace], int]) -> int:
    """A run of a method from outside the kit (`what`, such as "a student"), trained by `start(train.py's args)`:
    into an --out-dir of its own, from the start. It is never resumed, as its resume file does not hold the method
    (`train.py --resume` would continue without it): a run stopped by Ctrl-C loses its resume file."""
    import train

    args = train.parse_args(train_args)
    if "--out-dir" not in train_args or args.resume:
        raise UserError(f"{what} trains into an --out-dir of its own (after --), from the start: drop --resume")
    if (args.out_dir / "resume.pth").exists():
        raise UserError(
            f"{args.out_dir / 'resume.pth'} holds an unfinished run; {what} is not resumed (its resume file does not "
            "hold its method): delete it to train it again, or choose another --out-dir"
        )
    code = start(args)
    if code == 130 and (args.out_dir / "resume.pth").exists():  # Ctrl-C: `train.py --resume` would drop the method
        (args.out_dir / "resume.pth").unlink()
        print(f"removed {args.out_dir / 'resume.pth'}: {what} is not resumed; train it again with the same command")
    return code


def printed(accuracy: float | None) -> float | None:
    """An accuracy as train.py prints it, to 2 decimals: the pruner compares a study's curves, and those of trials
    recorded before the worker sent full precision were read from the printed line."""
    return None if accuracy is None else float(f"{accuracy:.2f}")


def worker(argv: list[str]) -> int:
    """The worker process: train.py's `main`, sending its messages as JSON lines on stdout. Everything else that
    writes to stdout, print or C library alike, is sent to stderr, the log, so that stdout carries only messages."""
    sys.argv[0] = str(ROOT / "train.py")  # its usage errors name the command the user knows
    messages = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(message: dict) -> None:
        messages.write(json.dumps(message) + "\n")
        messages.flush()

    import train

    def on_epoch(record: dict) -> None:
        send({"epoch": record})

    if argv[:1] and argv[0] in METHODS:
        code = importlib.import_module(METHODS[argv[0]][0]).main(argv, on_epoch)
        argv = argv[argv.index("--") + 1 :]
    else:
        code = train.main(argv, on_epoch=on_epoch)
    if code == 0:
        send({"metrics": json.loads((train.parse_args(argv).out_dir / "metrics.json").read_text())})
    return code


if __name__ == "__main__":
    run_cli(lambda: worker(sys.argv[1:]))
