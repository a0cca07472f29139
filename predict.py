"""Predict the digit in your own images.

    python predict.py my_digit.png photos/ --top-k 3

Accepts any size, colour or greyscale, dark ink on light paper or the reverse. Each image is
converted the way MNIST was made: greyscale, white digit on black, the digit scaled to fit a 20x20
box and placed in a 28x28 image so that its centre of mass is at the centre. A file that cannot be
read gets one error line; the others are still predicted, and the exit code is 2 if any failed.
"""

from __future__ import annotations

import argparse
import math
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
# MNIST's stroke widths in its 20x20 digit box, measured with stroke_width() below on its training digits
# (test_model.py checks them): 5th percentile, median, 95th percentile. A drawing whose strokes fall outside
# the 5-95% band is brought to the median width; one inside is left as it is.
STROKE_WIDTHS = (1.93, 2.18, 3.11)


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


def edge_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """The pixels along the image's four sides: paper, in a picture of one digit."""
    return torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


def above_the_paper(edge: torch.Tensor) -> float:
    """The brightest the paper along the edge gets: its median plus five times its median deviation, which
    ink on up to half of the edge does not move."""
    median = edge.median()
    return (median + 5 * (edge - median).abs().median()).item()


def noise_level(pixels: torch.Tensor) -> float:
    """The standard deviation of pixel noise: the median deviation of each pixel from its 3x3 neighbourhood's
    mean, which the smooth parts of paper and strokes (most of any picture) leave at zero without noise."""
    smooth = F.avg_pool2d(F.pad(pixels[None, None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0, 0]
    return 1.4826 * (pixels - smooth).abs().median().item()


def paper_level(pixels: torch.Tensor) -> torch.Tensor:
    """The paper's brightness under each pixel, for unevenly lit photos. The image is cut into 16 blocks a side;
    each block's median (ink is a minority of almost every block), then the darkest of its neighbours' (so
    that a block filled by a thick stroke takes the paper beside it), smoothed and brought back to full size."""
    height, width = pixels.shape
    block = max(1, math.ceil(max(height, width) / 16))
    rows, columns = math.ceil(height / block), math.ceil(width / block)
    padded = F.pad(pixels[None, None], (0, columns * block - width, 0, rows * block - height), mode="replicate")
    blocks = padded.unfold(2, block, block).unfold(3, block, block).reshape(rows, columns, -1).median(-1).values
    darkest = -F.max_pool2d(-blocks[None, None], 3, stride=1, padding=1)
    smooth = F.avg_pool2d(F.pad(darkest, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return F.interpolate(smooth, size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def stroke_width(ink: torch.Tensor) -> float:
    """Mean stroke width in pixels: twice the ink over the length of the stroke's edges (a stroke has two).
    The ink is counted in grey levels, so a soft, anti-aliased edge adds what it is worth; the edge is the
    half-intensity outline, where the image's border counts as an edge too."""
    mask = (ink > 0.5).float()[None, None]
    inner = -F.max_pool2d(-F.pad(mask, (1, 1, 1, 1)), 3, stride=1)  # zero padding: the border is an edge
    edge = (mask - inner).sum().item()
    return 2 * ink.sum().item() / edge if edge else 0.0


def match_stroke_width(ink: torch.Tensor, scale: float) -> torch.Tensor:
    """Thicken a hairline or thin a blob so that, once scaled by `scale` into MNIST's 20x20 box, its strokes are
    as wide as MNIST's median pen stroke (the model reads both poorly). Strokes within MNIST's own range are
    left alone, and a digit is never thinned away."""
    width = stroke_width(ink) * scale
    low, median, high = STROKE_WIDTHS
    radius = 0 if low <= width <= high else round((median - width) / scale / 2)
    if radius == 0:
        return ink
    kernel, pad = 2 * abs(radius) + 1, abs(radius)
    if radius > 0:  # dilate, into a margin wide enough to keep the grown strokes
        return F.max_pool2d(F.pad(ink, (2 * pad,) * 4)[None, None], kernel, stride=1)[0, 0]
    thinner = -F.max_pool2d(-F.pad(ink, (pad,) * 4)[None, None], kernel, stride=1)[0, 0]
    return thinner if thinner.max() > 0.5 else ink  # a digit thinner than the erosion keeps its width


def crop(ink: torch.Tensor) -> torch.Tensor:
    """The box around the ink (pixels above 0.2 of the brightest, which is 1)."""
    rows, columns = (ink > 0.2).nonzero(as_tuple=True)
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def to_mnist(image: Image.Image) -> torch.Tensor:
    """A picture of one digit (any size and mode) -> a normalized `(1, 28, 28)` tensor in MNIST's convention.

    The one preprocessing for files (predict.py) and the demo's canvas and uploads (app.py).
    Raises ValueError when there is no digit to find.
    """
    pixels = torch.from_numpy(np.asarray(greyscale(image), dtype=np.float32)) / 255
    if edge_pixels(pixels).median() > 0.5:  # dark ink on light paper: make it light ink on black, like MNIST
        pixels = 1 - pixels
    # The paper under the ink, never brighter than the paper along the image's edge (a digit that fills the
    # picture would otherwise be taken for paper); a tight crop's edge holds some ink, hence the median.
    paper = paper_level(pixels).clamp(max=above_the_paper(edge_pixels(pixels)))
    ink = (pixels - paper).clamp(min=0)
    # Sensor noise and JPEG artefacts: specks within four times the noise's standard deviation.
    ink = (ink - 4 * noise_level(pixels)).clamp(min=0)
    if ink.max() < 0.1:
        raise ValueError("no digit found (the image is blank)")
    ink = crop(ink / ink.max())
    ink = crop(match_stroke_width(ink, 20 / max(ink.shape)))  # a dilated digit has grown into its margin

    # Fit the digit's longer side to 20 pixels, keeping its aspect ratio, as MNIST did.
    height, width = ink.shape
    scale = 20 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray((ink * 255).byte().numpy()).resize(size, Image.Resampling.LANCZOS)
    digit = torch.from_numpy(np.asarray(digit, dtype=np.float32)) / 255

    # Place it so that its centre of mass lands on the centre of the 28x28 canvas (a hairline that
    # resampling has faded to nothing is centred by its box instead).
    total = digit.sum()
    if total > 0:
        centre_y = ((digit.sum(1) * torch.arange(size[1])).sum() / total).item()
        centre_x = ((digit.sum(0) * torch.arange(size[0])).sum() / total).item()
    else:
        centre_y, centre_x = (size[1] - 1) / 2, (size[0] - 1) / 2
    top = int(round(13.5 - centre_y))
    left = int(round(13.5 - centre_x))
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
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
