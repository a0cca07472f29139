"""Saving and loading checkpoints safely.

Every write goes to a temporary file in the target folder and is renamed over the target only
when complete, so an interrupted or failed save never leaves a broken file behind. Loading uses
`weights_only=True`, which refuses to unpickle arbitrary objects, and turns every way a file can be
wrong into one clear `UserError`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from compact_mnist.errors import UserError
from compact_mnist.flags import model_spec
from compact_mnist.recipe import Recipe
from model import Net

# The committed model, found from the project wherever the command is run from.
COMMITTED_MODEL = Path(__file__).resolve().parent.parent / "models" / "mnist_model.pth"


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(data: bytes, path: Path) -> None:
    """Write `data` to `path` via a temporary file and `os.replace`; the old file survives a failure."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would, or the old file's.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as error:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        reason = error.strerror or error
        raise UserError(f"could not write {path} ({reason}); the previous file is unchanged") from None


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` that never leaves a half-written file at `path`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(buffer.getvalue(), path)


def fingerprint(path: Path) -> str:
    """A short hash of a checkpoint file, recorded in what is made from it (ONNX files, the README's tables),
    so that a test can tell an export of this checkpoint from one of an earlier training."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_checkpoint(path: Path, required: tuple[str, ...] = ("state_dict", "meta")) -> dict:
    """Load a checkpoint dict written by train.py, refusing anything else with a `UserError`."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; train one with: python train.py")
    try:
        # Damaged files can make torch warn before failing; the error below says all the user needs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise UserError(
            f"{path} is not a readable checkpoint (truncated, damaged or not a PyTorch file); "
            "retrain with: python train.py"
        ) from None
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        raise UserError(f"{path} is not a checkpoint written by train.py (keys missing: {', '.join(required)})")
    return checkpoint


def load_weights(model: torch.nn.Module, state_dict: dict, path: Path) -> None:
    """Load `state_dict` into `model`, naming the mismatching layers if the architecture differs."""
    expected = model.state_dict()
    details = {}
    for name in list(expected) + [name for name in state_dict if name not in expected]:
        saved, wanted = state_dict.get(name), expected.get(name)
        saved_shape = tuple(saved.shape) if isinstance(saved, torch.Tensor) else None
        wanted_shape = tuple(wanted.shape) if wanted is not None else None
        if saved_shape != wanted_shape:
            details.setdefault(name.rsplit(".", 1)[0], f"{name}: saved {saved_shape}, model {wanted_shape}")
    if details:
        layers = list(details)
        shown = ", ".join(layers[:5]) + (f" and {len(layers) - 5} more" if len(layers) > 5 else "")
        raise UserError(
            f"{path} was saved for a different architecture: layers {shown} differ "
            f"(first: {details[layers[0]]}); pass the matching --model or retrain"
        )
    model.load_state_dict(state_dict)


def load_model(path: Path, spec: str | None = None, network: type[Net] = Net) -> tuple[Net, dict]:
    """Load a checkpoint into the architecture it records (or into `spec`, to insist on one), built as `network`
    (`Net`, or a subclass of it such as the Hub entry's).

    Returns the model in eval mode and the checkpoint's metadata.
    """
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    try:
        recipe = Recipe().updated(meta.get("hyperparameters", {}))  # older checkpoints lack the later fields
        model = network(
            spec or meta.get("spec") or meta.get("model", "default"), batchnorm=recipe.batchnorm, head=recipe.head
        )
    except (ValueError, TypeError):
        raise UserError(
            f"{path} records an unknown architecture ({meta.get('spec')!r}); retrain with: python train.py"
        ) from None
    load_weights(model, checkpoint["state_dict"], path)
    return model.eval(), meta


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The --checkpoint and --model flags shared by evaluate.py, predict.py and export.py."""
    add = parser.add_argument
    add(
        "--checkpoint",
        type=Path,
        default=COMMITTED_MODEL,
        help="trained model (default: the project's committed models/mnist_model.pth)",
    )
    add(
        "--model",
        type=model_spec,
        default=None,
        help="architecture to insist on, a preset or layer spec (default: what the checkpoint records)",
    )
