"""How well the model reads digits as they reach a user, all through predict.py's preprocessing.

    python scripts/reading_rate.py                  # writes reports/reading_rate.json and .md
    python scripts/reading_rate.py --against 283574d --out /tmp/rates.json   # also an older preprocessing

Rows made from MNIST digits (the first 1,000 of the validation split, which the committed model never
trained on; not test digits, since the preprocessing is chosen on these rows), each beside the model's
accuracy on the same digits as they are, so a row shows what the journey costs, not how hard the digits were:
  low resolution  the digit's box down-sampled to 8x8 or 16x16 with 17 grey levels, then up-sampled to
                  64 px with bilinear filtering (scanners, thumbnails, old forms);
  pen width       strokes thinned or thickened by grey-level erosion or dilation at 4x resolution;
  paper photo     dark ink on light paper, uneven lighting, sensor noise, a few degrees of rotation, the
                  digit off centre in a larger frame, saved as a JPEG of quality 30.
Rows of our own: drawn digits (stroke templates with random rotation, size, position and stroke width,
drawn as round-capped black lines on a white 420x420 canvas, as the sketchpad does) and typed digits (the
fonts that matplotlib ships, so every machine has them, at two sizes). The preprocessing is judged on
all rows at once: the MNIST-made rows were never used to tune it.
`--against REV` also reads every row through predict.py's preprocessing at git revision REV.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from checkpoint import add_model_arguments, load_model, write_atomic  # noqa: E402
from data import add_data_dir_argument, ensure_downloaded, normalize, read_split, resolve_data_dir, split_indices  # noqa: E402
from errors import UserError, run_cli  # noqa: E402
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


def as_image(ink: torch.Tensor) -> Image.Image:
    """Ink in [0, 1] (2-D) -> dark ink on white paper, 8-bit greyscale, as a scanner or a printout shows it."""
    return Image.fromarray(((1 - ink.clamp(0, 1)) * 255).round().byte().numpy())


def low_resolution(digit: torch.Tensor, side: int) -> Image.Image:
    """The digit's box, made square, down-sampled to side x side with 17 grey levels, up-sampled to 64 px."""
    ink = digit.float() / 255
    rows, columns = (ink > 0).nonzero(as_tuple=True)
    box = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    height, width = box.shape
    square = max(height, width) + 2  # a pixel of paper around the box
    top, left = (square - height) // 2, (square - width) // 2
    box = F.pad(box, (left, square - width - left, top, square - height - top))[None, None]
    small = (F.interpolate(box, size=(side, side), mode="area") * 16).round() / 16
    return as_image(F.interpolate(small, size=(64, 64), mode="bilinear", align_corners=False)[0, 0])


def pen_width(digit: torch.Tensor, radius: int) -> Image.Image:
    """Strokes made thicker (radius > 0, grey-level dilation) or thinner (erosion) at 4x resolution."""
    ink = F.interpolate(digit.float()[None, None] / 255, scale_factor=4, mode="bilinear", align_corners=False)
    kernel = 2 * abs(radius) + 1
    if radius > 0:
        ink = F.max_pool2d(ink, kernel, stride=1, padding=radius)
    else:
        ink = -F.max_pool2d(-ink, kernel, stride=1, padding=-radius)
    return as_image(ink[0, 0])


def paper_photo(digit: torch.Tensor, rng: random.Random) -> Image.Image:
    """A phone photo of the digit written on paper: dark ink on light, unevenly lit paper, a few degrees of
    rotation, off centre in a frame twice its size, sensor noise, and a JPEG of quality 30."""
    ink = Image.fromarray(digit.numpy()).resize((112, 112), Image.Resampling.BILINEAR)
    ink = ink.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BILINEAR)
    frame = Image.new("L", (224, 224), 0)
    frame.paste(ink, (rng.randint(0, 112), rng.randint(0, 112)))
    ink = torch.from_numpy(np.asarray(frame, dtype=np.float32)) / 255
    angle = rng.uniform(0, 2 * math.pi)  # the light falls off across the page in a random direction
    ramp = torch.linspace(-0.5, 0.5, 224)
    light = 1 - rng.uniform(0.1, 0.3) * (math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None] + 0.5)
    paper, pen = rng.uniform(0.8, 0.95), rng.uniform(0.05, 0.25)
    noise = torch.randn(224, 224, generator=torch.Generator().manual_seed(rng.randrange(2**31))) * 0.03
    grey = (paper - (paper - pen) * ink) * light + noise
    buffer = io.BytesIO()
    as_image(1 - grey).convert("RGB").save(buffer, format="JPEG", quality=30)
    return Image.open(io.BytesIO(buffer.getvalue()))


def validation_sample(data_dir: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images (uint8) and labels of train.py's validation split: digits the committed model
    never trained on and, unlike the test set, ones that choices may be made on."""
    ensure_downloaded(data_dir)
    images, labels = read_split(data_dir, train=True)
    chosen = split_indices(len(images))[0][:count]
    return images[chosen], labels[chosen]


def mnist_rows(images: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[str, list[tuple[int, Image.Image]]]]:
    """The rows made from MNIST test digits: name -> (how they were made, samples)."""
    rng = random.Random(0)
    pairs = list(zip(labels.tolist(), images, strict=True))
    return {
        "low resolution 8x8": ("digit box down-sampled to 8x8, 17 grey levels, bilinear up to 64 px",
                               [(label, low_resolution(image, 8)) for label, image in pairs]),
        "low resolution 16x16": ("digit box down-sampled to 16x16, 17 grey levels, bilinear up to 64 px",
                                 [(label, low_resolution(image, 16)) for label, image in pairs]),
        "thin pen": ("strokes eroded by 3 px at 4x resolution (about 1.5 px thinner)",
                     [(label, pen_width(image, -3)) for label, image in pairs]),
        "thick pen": ("strokes dilated by 4 px at 4x resolution (about 2 px thicker)",
                      [(label, pen_width(image, 4)) for label, image in pairs]),
        "paper photo": ("dark ink on uneven light paper, noise, rotated up to 5 degrees, off centre, JPEG quality 30",
                        [(label, paper_photo(image, rng)) for label, image in pairs]),
    }  # fmt: skip


def preprocessing_at(revision: str) -> Callable[[Image.Image], torch.Tensor]:
    """predict.to_mnist as it was at a git revision, to compare preprocessings on the same rows."""
    try:
        source = subprocess.run(["git", "show", f"{revision}:predict.py"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        raise UserError(f"--against {revision}: no predict.py at that revision of this git checkout") from None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"predict_{revision}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.to_mnist


def reading_rate(
    model: torch.nn.Module, samples: list[tuple[int, Image.Image]], preprocess: Callable = to_mnist
) -> tuple[float, list[int], int]:
    """Percentage read correctly (an image the preprocessing refuses counts as misread), the digits that
    were misread, and how many images the preprocessing refused with an error."""
    inputs, refused = [], set()
    for index, (_, image) in enumerate(samples):
        try:
            inputs.append(preprocess(image))
        except Exception:  # what predict.py would print as an error line for this image
            inputs.append(torch.zeros(1, 28, 28))
            refused.add(index)
    predicted = predict(model, torch.stack(inputs)).argmax(1).tolist()
    wrong = [digit for index, ((digit, _), guess) in enumerate(zip(samples, predicted, strict=True))
             if index in refused or digit != guess]  # fmt: skip
    return 100 * (len(samples) - len(wrong)) / len(samples), wrong, len(refused)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    add_model_arguments(parser)
    add_data_dir_argument(parser)
    parser.add_argument("--drawn", type=positive_int, default=1000, help="drawn digits to try (default: 1000)")
    parser.add_argument("--mnist", type=positive_int, default=1000,
                        help="validation digits in each MNIST-made row (default: 1000)")  # fmt: skip
    parser.add_argument("--against", nargs="+", default=[], metavar="REV",
                        help="also read every row with predict.py's preprocessing at these git revisions")  # fmt: skip
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "reading_rate.json",
        help="results file, with .md beside it (default: the committed reports/reading_rate.json)",
    )
    args = parser.parse_args(argv)
    model, meta = load_model(args.checkpoint, args.model)
    preprocessings = {"now": to_mnist} | {revision: preprocessing_at(revision) for revision in args.against}
    images, labels = validation_sample(resolve_data_dir(args.data_dir), args.mnist)
    as_they_are = 100 * (predict(model, normalize(images)).argmax(1) == labels).float().mean().item()
    rows = mnist_rows(images, labels) | {
        "drawn": (f"sketchpad-style strokes 4-40 px wide, digits 20-90% of a {CANVAS}px canvas high, tilted and moved",
                  drawn_digits(args.drawn)),
        "typed": (f"{len(FONTS)} fonts shipped with matplotlib, two sizes", typed_digits()),
    }  # fmt: skip
    results = {}
    for name, (how, samples) in rows.items():
        row = dict(how=how, samples=len(samples), mnist_as_they_are=as_they_are if name in ROWS_FROM_MNIST else None)
        for label, preprocess in preprocessings.items():
            rate, wrong, refused = reading_rate(model, samples, preprocess)
            row[label] = dict(read_correctly=rate, refused=refused, misread={d: wrong.count(d) for d in range(10)})
            print(f"{name} ({label}): {rate:.1f}% of {len(samples):,} read correctly, {refused} refused")
        results[name] = row
    report = dict(checkpoint=str(args.checkpoint), model=meta.get("model"), fonts=FONTS, against=args.against,
                  mnist_sample=dict(split="validation", count=args.mnist), rows=results)  # fmt: skip
    write_atomic((json.dumps(report, indent=2) + "\n").encode(), args.out)
    write_atomic(markdown(report).encode(), args.out.with_suffix(".md"))
    return 0


ROWS_FROM_MNIST = ("low resolution 8x8", "low resolution 16x16", "thin pen", "thick pen", "paper photo")


def markdown(report: dict) -> str:
    """The reading table: a row per way digits arrive, a column per preprocessing, errors counted."""
    labels = ["now", *report["against"]]
    titles = ["read correctly"] + [f"with predict.py at {revision}" for revision in report["against"]]
    lines = [
        "| digits | how they were made | count | MNIST digits as they are | " + " | ".join(titles) + " | refused |",
        "|---|---|---:|---:|" + "---:|" * len(titles) + "---:|",
    ]
    for name, row in report["rows"].items():
        same = f"{row['mnist_as_they_are']:.1f}%" if row["mnist_as_they_are"] is not None else ""
        rates = [f"{row[label]['read_correctly']:.1f}%" + (f" ({row[label]['refused']} refused)"
                 if row[label]["refused"] and label != "now" else "") for label in labels]  # fmt: skip
        rates[0] = f"**{rates[0]}**"
        lines.append(f"| {name} | {row['how']} | {row['samples']:,} | {same} | " + " | ".join(rates)
                     + f" | {row['now']['refused']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
