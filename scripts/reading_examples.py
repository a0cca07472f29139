"""A picture of what predict.py reads and where it still fails: reports/reading_examples.png.

    python scripts/reading_examples.py

One example of each kind of file in the reading table (made by scripts/reading_rate.py's generators from a
validation digit, written to a file and read back through predict.py's loader), shown as the loader sees it
in greyscale, with the 28x28 input the model received and its reading; then pictures it still misreads:
digits that touch (read with --number), a word written beside a digit, ruled paper photographed at an angle.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from compact_mnist import preprocess
from compact_mnist.checkpoint import add_model_arguments, load_model
from compact_mnist.cli import ArgumentParser, run_cli
from compact_mnist.data import MEAN, STD, add_data_dir_argument, resolve_data_dir
from compact_mnist.drawings import (
    as_image,
    large_photo,
    magnified,
    number_picture,
    on_paper,
    paper_photo,
    scan_16bit,
    sideways,
    transparent,
    validation_sample,
)
from compact_mnist.files import stamp
from compact_mnist.plots import reading_examples
from model import predict

ROOT = Path(__file__).resolve().parent.parent


def failures(images: torch.Tensor, rng: random.Random) -> dict[str, tuple[Image.Image, bool]]:
    """Pictures outside what the preprocessing handles: name -> (picture, read with --number)."""
    left, right = magnified(images[0]), magnified(images[1])
    touching = torch.zeros(112, 172)  # two digits 60 px apart: with MNIST's margins, their strokes meet
    touching[:, :112] = left
    touching[:, 60:] = torch.maximum(touching[:, 60:], right)
    page = as_image(torch.zeros(200, 360)).convert("RGB")
    font = ImageFont.truetype(str(Path(__import__("matplotlib").get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), 40)
    ImageDraw.Draw(page).text((20, 80), "No.", fill="black", font=font)
    page.paste(as_image(magnified(images[2])).convert("RGB"), (110, 44))
    tilted = on_paper(images[3], rng, "ruled").rotate(4, resample=Image.Resampling.BILINEAR, fillcolor="white")
    return {
        "two digits touching (--number)": (as_image(touching), True),
        "a word beside the digit": (page, False),
        "ruled paper turned 4 degrees": (tilted, False),
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    add_data_dir_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "reading_examples.png",
        help="the picture (default: the committed reports/reading_examples.png)",
    )
    args = parser.parse_args(argv)
    model, _ = load_model(args.checkpoint, args.model)
    images, labels = validation_sample(resolve_data_dir(args.data_dir), 12)
    rng = random.Random(0)
    stored, exif = sideways(paper_photo(images[4], rng), 6)
    stored.info["exif"] = exif.tobytes()
    kinds = {
        "paper photo, stored turned (EXIF 6)": (stored, "JPEG", False),
        "16-bit scan, pencil": (scan_16bit(images[5], rng), "PNG", False),
        "white ink, transparent canvas": (transparent(images[6], rng, white=True), "PNG", False),
        "ruled paper": (on_paper(images[7], rng, "ruled"), "PNG", False),
        "squared paper": (on_paper(images[8], rng, "squared"), "PNG", False),
        "form box": (on_paper(images[9], rng, "box"), "PNG", False),
        "large photo (4032x3024)": (large_photo(images[10], rng), "JPEG", False),
        "a number (--number)": (number_picture([images[i] for i in (11, 1, 2, 3)], rng), "PNG", True),
    } | {name: (picture, "PNG", number) for name, (picture, number) in failures(images, rng).items()}
    panels = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, (picture, kind, number)) in enumerate(kinds.items()):
            path = Path(folder) / f"{index}.{kind.lower()}"
            picture.save(path, format=kind, exif=picture.info.get("exif", b""))
            loaded, _ = preprocess.load_image(path)
            ink = preprocess.ink_of(loaded)
            inputs = preprocess.number_inputs(ink) if number else preprocess.mnist_digit(ink)[None]
            confidence, digits = predict(model, inputs).exp().max(1)
            reading = "".join(map(str, digits.tolist())) + f" ({confidence.min().item():.0%})"
            shown = np.asarray(preprocess.greyscale(loaded))
            panels.append((name, shown, (inputs * STD + MEAN).clamp(0, 1), reading))
    reading_examples(panels, args.out)
    stamp(args.out, [args.checkpoint], "python scripts/reading_examples.py")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
