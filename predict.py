"""Predict the digit (or, with --number, the number) in your own images.

    python predict.py my_digit.png photos/ --top-k 3
    python predict.py sticky_note.jpg --number

Accepts pictures as devices save them: any size up to a 200-megapixel photo, colour or greyscale, 8 or 16 bits,
stored sideways with an EXIF orientation, a drawing on a transparent canvas, dark ink on light paper or the
reverse, on ruled or squared paper or inside a printed box. Each digit is converted the way MNIST was made:
greyscale, white digit on black, scaled to fit a 20x20 box and placed in a 28x28 image so that its centre of
mass is at the centre. A file that cannot be read gets one error line; the others are still predicted, and
the exit code is 2 if any failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from compact_mnist.checkpoint import add_model_arguments, load_model
from compact_mnist.cli import ArgumentParser, UserError, run_cli
from compact_mnist.preprocess import ink_of, load_image, mnist_digit, number_inputs, several_digits
from model import predict

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the image files directly inside them."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


def reading(model: torch.nn.Module, ink: torch.Tensor, number: bool, top_k: int) -> str:
    """What predict.py prints for one picture's ink: the top-k digits with their probabilities, or with `number`
    the number followed by each digit with its probability."""
    if number:
        confidence, digits = predict(model, number_inputs(ink)).exp().max(1)
        pairs = zip(digits.tolist(), confidence.tolist(), strict=True)
        return "".join(map(str, digits.tolist())) + " = " + " ".join(f"{d} ({p:.1%})" for d, p in pairs)
    top = predict(model, mnist_digit(ink).unsqueeze(0))[0].exp().topk(top_k)
    line = ", ".join(f"{d} ({p:.1%})" for p, d in zip(top.values.tolist(), top.indices.tolist(), strict=True))
    return line + ("; several digits side by side? read them with --number" if several_digits(ink) else "")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    add_model_arguments(parser)
    parser.add_argument(
        "--top-k",
        type=int,
        default=1,
        choices=range(1, 11),
        metavar="K",
        help="show the K likeliest digits (with --number, each digit shows its likeliest)",
    )
    parser.add_argument(
        "--number", action="store_true", help="read a number: digits side by side, each read on its own"
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
            picture, note = load_image(path)
            ink = ink_of(picture)
        except (UserError, ValueError) as error:
            message = str(error) if isinstance(error, UserError) else f"{path}: {error}"
            print(f"error: {message}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {reading(model, ink, args.number, args.top_k)}" + (f" ({note})" if note else ""))
    return 2 if failed else 0


if __name__ == "__main__":
    run_cli(main)
