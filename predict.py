"""Predict the digit in your own images.

    python predict.py my_digit.png photos/ --top-k 3

Accepts any size, colour or greyscale, dark ink on light paper or the reverse. Each image is
converted the way MNIST was made: greyscale, white digit on black, the digit scaled to fit a 20x20
box and placed in a 28x28 image so that its centre of mass is at the centre. A file that cannot be
read gets one error line; the others are still predicted, and the exit code is 2 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from checkpoint import add_model_arguments, load_model
from data import MEAN, STD
from errors import UserError, run_cli
from evaluate import predict

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs long before they fill memory
# MNIST's stroke widths in its 20x20 digit box, 5th to 95th percentile of the training digits, measured
# with stroke_width() below; drawings outside that range are brought into it.
STROKE_WIDTHS = (2.0, 3.6)


def load_image(path: Path) -> Image.Image:
    """Open an image file, refusing one too large to decode safely."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise UserError(f"{path}: {image.width}x{image.height} is too large (limit {MAX_PIXELS:,} pixels)")
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UserError(f"{path}: not a readable image") from None


def greyscale(image: Image.Image) -> Image.Image:
    """8-bit greyscale, any transparency flattened onto white (how a drawing on a canvas looks)."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    return image.convert("L")


def stroke_width(ink: torch.Tensor) -> float:
    """Mean stroke width in pixels: twice the inked area over the inked boundary (a stroke has two edges)."""
    mask = (ink > 0.2).float()[None, None]
    inner = -F.max_pool2d(-mask, 3, stride=1, padding=1)
    return 2 * mask.sum().item() / max((mask - inner).sum().item(), 1.0)


def match_stroke_width(ink: torch.Tensor, scale: float) -> torch.Tensor:
    """Thicken or thin the strokes of a cropped digit so that, once scaled by `scale` into MNIST's 20x20
    box, they are as wide as MNIST's pen strokes (the model reads a hairline or a blob poorly)."""
    width = stroke_width(ink) * scale
    target = min(max(width, STROKE_WIDTHS[0]), STROKE_WIDTHS[1])
    radius = round((target - width) / scale / 2)
    if radius == 0:
        return ink
    kernel, pad = 2 * abs(radius) + 1, abs(radius)
    padded = F.pad(ink, (pad,) * 4)[None, None]
    if radius > 0:  # dilate
        return F.max_pool2d(padded, kernel, stride=1)[0, 0]
    return -F.max_pool2d(-padded, kernel, stride=1)[0, 0]  # erode


def to_mnist(image: Image.Image) -> torch.Tensor:
    """A picture of one digit (any size and mode) -> a normalized `(1, 28, 28)` tensor in MNIST's convention.

    The one preprocessing for files (predict.py) and the demo's canvas and uploads (app.py).
    Raises ValueError when there is no digit to find.
    """
    pixels = torch.from_numpy(np.asarray(greyscale(image), dtype=np.float32)) / 255
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = border.median()
    if background > 0.5:  # dark ink on light paper: make it light ink on black, like MNIST
        pixels, background = 1 - pixels, 1 - background
    ink = (pixels - background).clamp(min=0)
    if ink.max() < 0.1:
        raise ValueError("no digit found (the image is blank)")
    ink = ink / ink.max()
    rows, columns = (ink > 0.2).nonzero(as_tuple=True)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    ink = match_stroke_width(ink, 20 / max(ink.shape))

    # Fit the digit's longer side to 20 pixels, keeping its aspect ratio, as MNIST did.
    height, width = ink.shape
    scale = 20 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray((ink * 255).byte().numpy()).resize(size, Image.Resampling.LANCZOS)
    digit = torch.from_numpy(np.asarray(digit, dtype=np.float32)) / 255

    # Place it so that its centre of mass lands on the centre of the 28x28 canvas.
    total = digit.sum()
    centre_y = (digit.sum(1) * torch.arange(size[1])).sum() / total
    centre_x = (digit.sum(0) * torch.arange(size[0])).sum() / total
    top = int(round(13.5 - centre_y.item()))
    left = int(round(13.5 - centre_x.item()))
    top, left = min(max(top, 0), 28 - size[1]), min(max(left, 0), 28 - size[0])
    canvas = torch.zeros(28, 28)
    canvas[top : top + size[1], left : left + size[0]] = digit
    return ((canvas - MEAN) / STD).unsqueeze(0)


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the image files directly inside them."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    add_model_arguments(parser)
    parser.add_argument(
        "--top-k", type=int, default=1, choices=range(1, 11), metavar="K", help="show the K likeliest digits"
    )
    args = parser.parse_args(argv)
    model, _ = load_model(args.checkpoint, args.model)
    files = expand(args.images)
    if not files:
        raise UserError("no image files found in " + ", ".join(map(str, args.images)))
    failed = 0
    for path in files:
        try:
            if not path.is_file():
                raise UserError(f"{path}: no such file")
            image = to_mnist(load_image(path))
        except (UserError, ValueError) as error:
            message = str(error) if isinstance(error, UserError) else f"{path}: {error}"
            print(f"error: {message}", file=sys.stderr)
            failed += 1
            continue
        probabilities = predict(model, image.unsqueeze(0))[0].exp()
        top = probabilities.topk(args.top_k)
        guesses = ", ".join(
            f"{digit} ({p:.1%})" for p, digit in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        print(f"{path}: {guesses}")
    return 2 if failed else 0


if __name__ == "__main__":
    run_cli(main)
