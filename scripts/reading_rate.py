"""How well the model reads digits that are not MNIST's: mouse strokes like the demo's sketchpad draws,
and typed digits in several fonts, all through predict.py's preprocessing.

    python scripts/reading_rate.py                  # writes reports/reading_rate.json and .md

Drawn digits: every stroke template below, with random rotation, size, position and stroke width,
drawn as round-capped black lines on a white 420x420 canvas, as the sketchpad does. Typed digits: each
digit in the fonts that matplotlib ships (so every machine has them), at two sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from checkpoint import add_model_arguments, load_model, write_atomic  # noqa: E402
from errors import run_cli  # noqa: E402
from evaluate import predict  # noqa: E402
from flags import positive_int  # noqa: E402
from predict import to_mnist  # noqa: E402

CANVAS = 420  # the demo's canvas size
FONTS = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf",
]  # fmt: skip

Stroke = list[tuple[float, float]]  # points in the unit square, x to the right, y down


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 24) -> Stroke:
    """Points along an ellipse from angle `start` to `end` in degrees (0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in (start + (end - start) * i / (points - 1) for i in range(points))
    ]


# One or more ways to draw each digit, each a list of pen strokes.
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [[arc(0.5, 0.5, 0.3, 0.45, -90, 270)], [arc(0.5, 0.5, 0.36, 0.42, -100, 265)]],
    1: [[[(0.5, 0.05), (0.5, 0.95)]], [[(0.32, 0.22), (0.55, 0.05), (0.55, 0.95)]]],
    2: [[arc(0.5, 0.3, 0.3, 0.25, 200, 390) + [(0.15, 0.95), (0.85, 0.95)]]],
    3: [[arc(0.48, 0.27, 0.28, 0.22, 200, 450) + arc(0.48, 0.72, 0.32, 0.23, -90, 160)[1:]]],
    4: [[[(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.65, 0.35), (0.65, 0.95)]],
        [[(0.25, 0.05), (0.2, 0.55), (0.8, 0.55)], [(0.75, 0.05), (0.75, 0.95)]]],
    5: [[[(0.8, 0.05), (0.3, 0.05), (0.26, 0.45)] + arc(0.5, 0.68, 0.3, 0.27, -125, 150)]],
    6: [[[(0.7, 0.05), (0.4, 0.3), (0.25, 0.62)] + arc(0.5, 0.7, 0.25, 0.24, 180, 540)]],
    7: [[[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)]],
        [[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)], [(0.35, 0.5), (0.8, 0.5)]]],
    8: [[arc(0.5, 0.27, 0.22, 0.22, 90, 450), arc(0.5, 0.72, 0.28, 0.23, -90, 270)]],
    9: [[arc(0.48, 0.3, 0.27, 0.25, 0, 360), [(0.75, 0.3), (0.7, 0.95)]],
        [arc(0.48, 0.3, 0.27, 0.25, 0, 360), [(0.75, 0.3), (0.75, 0.6)] + arc(0.5, 0.6, 0.25, 0.35, 0, 110)]],
}  # fmt: skip


def place(strokes: list[Stroke], rng: random.Random) -> list[Stroke]:
    """The strokes in canvas pixels, randomly rotated (up to 12 degrees), sized (20-90% of the canvas
    height) and moved, each point shaken by about 2 pixels like a hand on a mouse."""
    angle = math.radians(rng.uniform(-12, 12))
    height = rng.uniform(0.2, 0.9) * CANVAS
    width = height * rng.uniform(0.55, 0.8)
    cx, cy = (rng.uniform(0.5 - margin, 0.5 + margin) * CANVAS for margin in [0.45 - height / CANVAS / 2] * 2)
    placed = []
    for stroke in strokes:
        points = []
        for x, y in stroke:
            dx, dy = (x - 0.5) * width + rng.gauss(0, 2), (y - 0.5) * height + rng.gauss(0, 2)
            cos, sin = math.cos(angle), math.sin(angle)
            points.append((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos))
        placed.append(points)
    return placed


def draw(strokes: list[Stroke], width: int) -> Image.Image:
    """Round-capped black lines on a white canvas, as the sketchpad draws them."""
    image = Image.new("RGB", (CANVAS, CANVAS), "white")
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(stroke, fill="black", width=width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill="black")
    return image


def typed(digit: int, font: str, size: int) -> Image.Image:
    """`digit` in `font` (one of matplotlib's), black on white."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font
    image = Image.new("RGB", (CANVAS, CANVAS), "white")
    ImageDraw.Draw(image).text((CANVAS / 2, CANVAS / 2), str(digit), fill="black", anchor="mm",
                               font=ImageFont.truetype(str(path), size))  # fmt: skip
    return image


def drawn_digits(count: int, seed: int = 0) -> list[tuple[int, Image.Image]]:
    """`count` random sketchpad-style drawings, cycling through the digits."""
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        digit = index % 10
        strokes = place(rng.choice(TEMPLATES[digit]), rng)
        samples.append((digit, draw(strokes, width=rng.randint(4, 40))))
    return samples


def typed_digits() -> list[tuple[int, Image.Image]]:
    return [(digit, typed(digit, font, size)) for font in FONTS for size in (120, 260) for digit in range(10)]


def reading_rate(model: torch.nn.Module, samples: list[tuple[int, Image.Image]]) -> tuple[float, list[int]]:
    """Percentage read correctly, and the digits that were misread."""
    images = torch.stack([to_mnist(image) for _, image in samples])
    predicted = predict(model, images).argmax(1).tolist()
    wrong = [digit for (digit, _), guess in zip(samples, predicted, strict=True) if digit != guess]
    return 100 * (len(samples) - len(wrong)) / len(samples), wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--drawn", type=positive_int, default=1000, help="drawn digits to try (default: 1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "reading_rate.json", help="results file")
    args = parser.parse_args(argv)
    model, meta = load_model(args.checkpoint, args.model)
    results = {}
    for name, samples in (("drawn", drawn_digits(args.drawn)), ("typed", typed_digits())):
        rate, wrong = reading_rate(model, samples)
        results[name] = dict(samples=len(samples), read_correctly=rate, misread={d: wrong.count(d) for d in range(10)})
        print(f"{name}: {rate:.1f}% of {len(samples):,} read correctly; misread per digit: {results[name]['misread']}")
    report = dict(checkpoint=str(args.checkpoint), model=meta.get("model"), fonts=FONTS, **results)
    write_atomic((json.dumps(report, indent=2) + "\n").encode(), args.out)
    lines = [
        "| digits | how they were made | count | read correctly |",
        "|---|---|---:|---:|",
        f"| drawn | sketchpad-style strokes 4-40 px wide, digits 20-90% of a {CANVAS}px canvas high, tilted and moved "
        f"| {results['drawn']['samples']:,} | **{results['drawn']['read_correctly']:.1f}%** |",
        f"| typed | {len(FONTS)} fonts shipped with matplotlib, two sizes "
        f"| {results['typed']['samples']:,} | **{results['typed']['read_correctly']:.1f}%** |",
    ]
    write_atomic(("\n".join(lines) + "\n").encode(), args.out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    run_cli(main)
