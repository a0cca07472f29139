"""Files written whole or not at all, and read back safely.

Every write goes to a temporary file in the target folder and is renamed over the target only when complete, so an
interrupted or failed save never leaves a broken file behind. Checkpoints load with `weights_only=True`, which
refuses to unpickle arbitrary objects, and every way a file can be wrong is one clear `UserError`. A picture records
in its PNG the files it was made from, each by a short sha256, and the command that makes it again, so that a test
can tell a picture that no longer shows what it says.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from compact_mnist.cli import UserError

ROOT = Path(__file__).resolve().parent.parent


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
    except BaseException as error:  # Ctrl-C during the write too: no temporary file is left behind
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if not isinstance(error, OSError):
            raise
        reason = error.strerror or error
        raise UserError(f"could not write {path} ({reason}); the previous file is unchanged") from None


def write_report(report: Any, markdown: str, path: Path) -> None:
    """A results file: `report` as JSON at `path`, and `markdown`, its tables for people, beside it (.md)."""
    write_atomic((json.dumps(report, indent=2) + "\n").encode(), path)
    write_atomic(markdown.encode(), path.with_suffix(".md"))


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` that never leaves a half-written file at `path`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(buffer.getvalue(), path)


def fingerprint(path: Path) -> str:
    """A short hash of a checkpoint file, recorded in what is made from it (ONNX files, the README's tables),
    so that a test can tell an export of this checkpoint from one of an earlier training."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_checkpoint(path: Path, required: tuple[str, ...] = ("state_dict", "meta")) -> dict[str, Any]:
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


def save_figure(figure: Any, path: Path) -> None:
    """Save a matplotlib figure as a PNG at `path`, and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    write_atomic(buffer.getvalue(), path)


def name(path: Path) -> str:
    """A path as the stamp records it: relative to the project where it lies inside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def stamp(picture: Path, made_from: list[Path], made_by: str) -> None:
    """Record in the PNG `picture` the files it was made from and the command that makes it (rewritten atomically;
    its pixels are unchanged)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("made-from", "; ".join(f"{name(path)} {fingerprint(Path(path))}" for path in made_from))
    info.add_text("made-by", made_by)
    with Image.open(picture) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
    write_atomic(buffer.getvalue(), Path(picture))
