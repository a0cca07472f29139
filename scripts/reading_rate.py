"""How well the model reads digits as they reach a user: every picture written to a file the way a device
saves it and read back through predict.py's own loader and preprocessing.

    python scripts/reading_rate.py                  # writes reports/reading_rate.json and .md
    python scripts/reading_rate.py --against 283574d --out /tmp/rates.json   # also an older revision's path

Rows made from MNIST digits (the first 1,000 of the validation split, which the committed model never
trained on; not test digits, since the preprocessing is chosen on these rows), each beside the model's
accuracy on the same digits as they are and as plain 8-bit PNG files, so a row shows what its journey costs,
not how hard the digits were:
  low resolution  the digit's box down-sampled to 8x8 or 16x16 with 17 grey levels, then up-sampled to
                  64 px with bilinear filtering (scanners, thumbnails, old forms);
  pen width       strokes thinned or thickened by grey-level erosion or dilation at 4x resolution;
  paper photo     dark ink on light paper, uneven lighting, sensor noise, a few degrees of rotation, the
                  digit off centre in a larger frame, saved as a JPEG of quality 30;
  sideways photo  that photo stored turned, with the EXIF orientation (3, 6 or 8) that shows it upright;
  16-bit scan     grey (pencil) ink on paper in a 16-bit greyscale PNG;
  transparent     black or white strokes on a transparent canvas (an RGBA PNG, as drawing apps export);
  ruled, squared  the digit in pen on lined or squared paper, a form box: a printed frame around it;
  large photo     the paper photo as a 4032x3024 JPEG (12 megapixels, a phone's default);
  number          2 to 6 digits side by side, read with predict.py --number: right if every digit is.
Line spacing, colours, frame widths and positions are drawn from a generator seeded by --seed: the
preprocessing was tuned with --seed 1 and the committed report uses --seed 0.
Rows of our own: drawn digits (stroke templates with random rotation, size, position and stroke width,
drawn as round-capped black lines on a white 420x420 canvas, as the sketchpad does) and typed digits (the
fonts that matplotlib ships, so every machine has them, at two sizes).
`--against REV` also reads every row through predict.py's loader and preprocessing at git revision REV.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from compact_mnist import files, preprocess
from compact_mnist.checkpoint import add_model_arguments, load_model, network_alone
from compact_mnist.cli import ArgumentParser, UserError, positive_int, run_cli
from compact_mnist.data import add_data_dir_argument, normalize, resolve_data_dir
from compact_mnist.drawings import (
    CANVAS,
    FONTS,
    PNG,
    drawn_digits,
    mnist_rows,
    number_row,
    plain_file,
    typed_digits,
    validation_sample,
    write,
)
from compact_mnist.files import fingerprint, write_report
from model import predict

ROOT = Path(__file__).resolve().parent.parent


MOVED_MODULES = ("checkpoint", "data", "errors", "flags", "plots")  # top-level modules until they moved


def preprocessing_at(revision: str):
    """The loader and preprocessing as they were at a git revision (compact_mnist/preprocess.py, or before that
    predict.py), to compare them on the same rows."""
    source = None
    for path in ("compact_mnist/preprocess.py", "predict.py"):  # where the preprocessing lived, newest first
        try:
            source = subprocess.run(
                ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
            break
        except (OSError, subprocess.CalledProcessError):
            continue
    if source is None:
        raise UserError(f"--against {revision}: no preprocessing at that revision of this git checkout") from None
    # Revisions from before the internals moved into compact_mnist import them by their old top-level names.
    aliases = [name for name in MOVED_MODULES if name not in sys.modules]
    sys.modules.update({name: importlib.import_module(f"compact_mnist.{name}") for name in aliases})
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"predict_{revision}.py"
            path.write_text(source)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    finally:
        for name in aliases:
            del sys.modules[name]
    return module


def read_file(module, path: Path, number: bool) -> tuple[torch.Tensor, bool]:
    """A file through a predict.py's whole path: its loader, then its preprocessing; with `number`, one input per
    digit (a revision without --number reads the picture as one digit). Also whether predict.py would add its
    note suggesting --number."""
    loaded = module.load_image(path)
    image = loaded[0] if isinstance(loaded, tuple) else loaded  # revisions before the notes returned the image
    if not hasattr(module, "ink_of"):
        return module.to_mnist(image)[None], False
    ink = module.ink_of(image)
    if number:
        return module.number_inputs(ink), False
    return module.mnist_digit(ink)[None], module.several_digits(ink)


def reading_rate(
    model: torch.nn.Module,
    files: list[tuple[str, Path, dict]],
    module,
    number: bool = False,
    alone: torch.nn.Module | None = None,
) -> dict:
    """Percentage read correctly (a file the path refuses counts as misread), the labels misread, how many
    files were refused with an error, and how many got the note suggesting --number; with `alone`, the network of a
    model that reads with test-time views, the percentage that it reads correctly without them too."""
    wrong, refused, noted, wrong_alone = [], 0, 0, 0

    def digits(network: torch.nn.Module, inputs: torch.Tensor) -> str:
        return "".join(map(str, predict(network, inputs).argmax(1).tolist()))

    for label, path, _ in files:
        try:
            inputs, note = read_file(module, path, number)
        except Exception:  # what predict.py prints as an error line for this file
            wrong.append(label)
            refused += 1
            continue
        noted += note
        if digits(model, inputs) != label:
            wrong.append(label)
        if alone is not None and digits(alone, inputs) != label:
            wrong_alone += 1
    rate = 100 * (len(files) - len(wrong)) / len(files)
    by_length = {n: sum(len(w) == n for w in wrong) for n in sorted({len(w) for w in wrong})}
    result = dict(read_correctly=rate, refused=refused, noted=noted, misread=len(wrong), misread_by_length=by_length)
    if alone is not None:
        result["read_correctly_without_views"] = 100 * (len(files) - refused - wrong_alone) / len(files)
    return result


def controls(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, folder: Path) -> torch.Tensor:
    """Whether each validation digit is read right as a plain file (the control of every file row)."""
    files = write(
        [(str(label), plain_file(image), PNG) for label, image in zip(labels.tolist(), images, strict=True)], folder
    )
    inputs = torch.cat([read_file(preprocess, path, False)[0] for _, path, _ in files])
    return predict(model, inputs).argmax(1) == labels


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    add_data_dir_argument(parser)
    parser.add_argument("--drawn", type=positive_int, default=1000, help="drawn digits to try")
    parser.add_argument("--mnist", type=positive_int, default=1000, help="validation digits in each MNIST-made row")
    parser.add_argument("--numbers", type=positive_int, default=1000, help="numbers to try")
    parser.add_argument("--seed", type=int, default=0, help="the pictures' generator (default: 0, the report's)")
    parser.add_argument(
        "--against",
        nargs="+",
        default=[],
        metavar="REV",
        help="also read every row through predict.py at these git revisions",
    )
    parser.add_argument(
        "--against-at-most",
        type=positive_int,
        default=None,
        metavar="N",
        help="read only the first N files of each row through the older revisions, whose path takes "
        "seconds on a large photo (default: every file)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "reading_rate.json",
        help="results file, with .md beside it (default: the committed reports/reading_rate.json)",
    )
    return parser.parse_args(argv)


def picture_rows(images: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> dict[str, tuple]:
    """Every row of the report: its name, how its pictures were made, and the pictures with their labels."""
    return mnist_rows(images, labels, args.seed) | {
        "number": number_row(images, labels, args.numbers, args.seed),
        "drawn": (
            f"sketchpad-style strokes 4-40 px wide, digits 20-90% of a {CANVAS}px canvas high, tilted and moved",
            [(str(digit), image, PNG) for digit, image in drawn_digits(args.drawn)],
        ),
        "typed": (
            f"{len(FONTS)} fonts shipped with matplotlib, two sizes",
            [(str(digit), image, PNG) for digit, image in typed_digits()],
        ),
    }


def read_rows(model, rows: dict, paths: dict, images, labels, at_most: int | None) -> dict[str, dict]:
    """Each row's pictures written as files and read back through every revision's preprocessing (`paths`), with
    the same digits as MNIST has them and as plain files beside them for comparison; a model that reads with
    test-time views is also read without them, through today's path."""
    alone = network_alone(model)
    as_they_are = (predict(model, normalize(images)).argmax(1) == labels).tolist()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        plain = controls(model, images, labels, Path(folder) / "control").tolist()
        for name, (how, samples) in rows.items():
            files = write(samples, Path(folder) / name.replace(" ", "-").replace(",", ""))
            if name == "number":  # right as plain files if every one of its digits is
                same = [all(plain[i] for i in save["digits"]) for _, _, save in files]
                mnist_same = [all(as_they_are[i] for i in save["digits"]) for _, _, save in files]
            else:
                same, mnist_same = (plain, as_they_are) if name in ROWS_FROM_MNIST or "photo" in name else (None, None)
            row = dict(how=how, samples=len(files), mnist_as_they_are=percent(mnist_same), plain_files=percent(same))
            if name == "number":
                row["lengths"] = {n: sum(len(label) == n for label, _, _ in files) for n in range(2, 7)}
            for label, module in paths.items():
                read = files if label == "now" else files[:at_most]
                without = alone if label == "now" else None
                row[label] = reading_rate(model, read, module, name == "number", without) | dict(files=len(read))
                print(
                    f"{name} ({label}): {row[label]['read_correctly']:.1f}% of {len(read):,} read correctly, "
                    f"{row[label]['refused']} refused",
                    flush=True,
                )
            results[name] = row
            shutil.rmtree(files[0][1].parent)  # a thousand large photos take gigabytes
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, meta = load_model(args.checkpoint, args.model)
    paths = {"now": preprocess} | {revision: preprocessing_at(revision) for revision in args.against}
    images, labels = validation_sample(resolve_data_dir(args.data_dir), args.mnist)
    results = read_rows(model, picture_rows(images, labels, args), paths, images, labels, args.against_at_most)
    report = dict(
        checkpoint=files.name(args.checkpoint),
        checkpoint_sha256=fingerprint(args.checkpoint),
        model=meta.get("model"),
        fonts=FONTS,
        against=args.against,
        against_at_most=args.against_at_most,
        seed=args.seed,
        mnist_sample=dict(split="validation", count=args.mnist),
        rows=results,
    )
    write_report(report, markdown(report), args.out)
    return 0


def percent(flags: list[bool] | None) -> float | None:
    return 100 * sum(flags) / len(flags) if flags is not None else None


ROWS_FROM_MNIST = (
    "plain file",
    "low resolution 8x8",
    "low resolution 16x16",
    "thin pen",
    "thick pen",
    "16-bit scan",
    "transparent, black ink",
    "transparent, white ink",
    "ruled paper",
    "squared paper",
    "form box",
)


def markdown(report: dict) -> str:
    """The reading table: a row per way digits arrive, a column per revision's path, errors and notes counted."""
    labels = ["now", *report["against"]]
    titles = ["read correctly"] + [f"with predict.py at {revision}" for revision in report["against"]]
    views = all("read_correctly_without_views" in row["now"] for row in report["rows"].values())
    titles[1:1] = ["without test-time views"] if views else []
    lines = [
        "| digits | how they were made | count | MNIST digits as they are | as plain files | "
        + " | ".join(titles)
        + " | refused | --number note |",
        "|---|---|---:|---:|---:|" + "---:|" * len(titles) + "---:|---:|",
    ]
    for name, row in report["rows"].items():
        same = [f"{row[key]:.1f}%" if row[key] is not None else "" for key in ("mnist_as_they_are", "plain_files")]
        rates = [
            f"{row[label]['read_correctly']:.1f}%"
            + (f" ({row[label]['refused']} refused)" if row[label]["refused"] and label != "now" else "")
            + (f" of {row[label]['files']:,}" if row[label]["files"] < row["samples"] else "")
            for label in labels
        ]
        rates[0] = f"**{rates[0]}**"
        rates[1:1] = [f"{row['now']['read_correctly_without_views']:.1f}%"] if views else []
        note = "" if name == "number" else str(row["now"]["noted"])
        lines.append(
            f"| {name} | {row['how']} | {row['samples']:,} | {same[0]} | {same[1]} | "
            + " | ".join(rates)
            + f" | {row['now']['refused']} | {note} |"
        )
    number = report["rows"].get("number")
    if number:
        misread, lengths = number["now"]["misread_by_length"], number["lengths"]
        rates = ", ".join(
            f"{n} digits {100 * (1 - misread.get(str(n), misread.get(n, 0)) / count):.1f}%"
            for n, count in lengths.items()
        )
        lines.append(f"\nNumbers read whole, by length: {rates}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
