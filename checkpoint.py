"""Saving and loading checkpoints safely.

Every write goes to a temporary file in the target folder and is renamed over the target only
when complete, so an interrupted or failed save never leaves a broken file behind. Loading uses
`weights_only=True`, which refuses to unpickle arbitrary objects, and turns every way a file can be
wrong into one clear `UserError`.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from errors import UserError
from model import Net


def write_atomic(data: bytes, path: Path) -> None:
    """Write `data` to `path` via a temporary file and `os.replace`; the old file survives a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"could not write {path} ({error.strerror}); the previous file is unchanged") from None


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` that never leaves a half-written file at `path`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(buffer.getvalue(), path)


def load_checkpoint(path: Path, required: tuple[str, ...] = ("state_dict", "meta")) -> dict:
    """Load a checkpoint dict written by train.py, refusing anything else with a `UserError`."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; train one with: python train.py")
    try:
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
    problems = [f"{name} missing" for name in expected if name not in state_dict]
    problems += [f"{name} unexpected" for name in state_dict if name not in expected]
    problems += [
        f"{name} {tuple(state_dict[name].shape)} vs model {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state_dict and getattr(state_dict[name], "shape", None) != tensor.shape
    ]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise UserError(f"{path} was saved for a different architecture: {shown}")
    model.load_state_dict(state_dict)


def load_model(path: Path, spec: str | None = None) -> tuple[Net, dict]:
    """Build the model a checkpoint was trained as (or `spec`, if given), load it, return it in eval mode."""
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    model = Net(spec or meta.get("model", "default"))
    load_weights(model, checkpoint["state_dict"], path)
    return model.eval(), meta
