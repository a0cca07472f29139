"""What each committed picture was made from, kept in the PNG itself: the files it shows (a checkpoint, a results
file), each by a short sha256, and the command that makes it again. A test compares the recorded hashes with
the files as they are, so a picture that no longer shows what it says cannot go unnoticed."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from PIL import Image, PngImagePlugin

from compact_mnist.checkpoint import fingerprint, write_atomic

ROOT = Path(__file__).resolve().parent.parent


def name(path: Path) -> str:
    """A path as the stamp records it: relative to the project where it lies inside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def stamp(picture: Path, made_from: list[Path], made_by: str) -> None:
    """Record in the PNG `picture` the files it was made from and the command that makes it (rewritten atomically;
    its pixels are unchanged)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("made-from", "; ".join(f"{name(path)} {fingerprint(Path(path))}" for path in made_from))
    info.add_text("made-by", made_by)
    with Image.open(picture) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
    write_atomic(buffer.getvalue(), Path(picture))


def read(picture: Path) -> tuple[dict[str, str], str] | None:
    """A picture's stamp: {file: recorded sha256 prefix} and the command that makes it; None if it has none."""
    with Image.open(picture) as image:
        text = getattr(image, "text", {})
    if "made-from" not in text:
        return None
    made_from = dict(item.rsplit(" ", 1) for item in text["made-from"].split("; "))
    return made_from, text.get("made-by", "")


def stale(made_from: dict[str, str]) -> list[str]:
    """The recorded files whose contents have changed since the picture was made (or that are gone)."""
    return [
        path
        for path, recorded in made_from.items()
        if not (ROOT / path).is_file() or fingerprint(ROOT / path) != recorded
    ]


def committed(path: str) -> bool | None:
    """Whether a file is as the last commit has it (no retrain since); None outside a git checkout."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", path], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return status.stdout.strip() == ""
