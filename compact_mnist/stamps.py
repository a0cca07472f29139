"""Reading what a picture records it was made from (`files.stamp` writes it): a test compares the recorded hashes
with the files as they are, so a picture that no longer shows what it says cannot go unnoticed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image

from compact_mnist.files import ROOT, fingerprint


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
