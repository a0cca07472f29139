"""Test-time views, screened on validation: each trained model reads the validation images plain and as the mean
of its probabilities over the image and its four one-pixel shifts (`Net.views`, model.SHIFTS); the gain is paired
by model.

    python scripts/views.py runs/views/default/seed-*/mnist_model.pth   # writes reports/views-screen.json and .md
    python scripts/views.py runs/views/default/seed-*/mnist_model.pth --test --out reports/views-seeds.json

The models must be seeds of one recipe (docs/experiments.md, "test-time views", trains them and states the rule);
the cost of the views is measured beside it, seconds per image on one thread, plain and with views. Only --test,
for views already adopted on validation, evaluates the models on the test set, plain and with views; it decides
nothing.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from compact_mnist.checkpoint import load_model
from compact_mnist.cli import ArgumentParser, UserError, positive_int, run_cli
from compact_mnist.data import MnistTensors, add_data_dir_argument, load_mnist, resolve_data_dir
from compact_mnist.files import write_atomic
from compact_mnist.goals import TARGET_ACCURACY, recorded_recipe
from model import SHIFTS, Net, predict
from scripts.seeds import paired_gain, spread
from train import evaluate

ROOT = Path(__file__).resolve().parent.parent

TIMED_IMAGES = 1_000  # validation images each timing round reads


def accuracy(model: Net, images: torch.Tensor, labels: torch.Tensor, views: bool) -> float:
    """Accuracy in percent of `model` read with test-time views (model.SHIFTS) or without them."""
    model.views = views
    return evaluate(model, images, labels)[1]


def seconds_per_image(model: Net, images: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median seconds per image of each reading on one thread, over `rounds` interleaved rounds after a warm-up."""
    times: dict[str, list[float]] = {"plain": [], "views": []}
    for round_index in range(rounds + 1):
        for name in times:
            start = time.perf_counter()
            model.views = name == "views"
            predict(model, images)
            if round_index:  # round 0 warms up
                times[name].append((time.perf_counter() - start) / len(images))
    return {name: statistics.median(values) for name, values in times.items()}


def one_recipe(metas: list[dict]) -> int:
    """The validation size of models that are distinct seeds of one recipe (read with views or not: the screen reads
    both ways), which a paired screen needs; a UserError otherwise, or where they held no validation images out."""
    recipes = [dataclasses.replace(recorded_recipe(meta), views=False) for meta in metas]
    seeds = [recipe.seed for recipe in recipes]
    kinds = {dataclasses.replace(recipe, seed=0) for recipe in recipes}
    if len(metas) < 2 or len(kinds) > 1 or len(set(seeds)) < len(seeds):
        raise UserError(
            f"give two or more models of one recipe, each of its own seed (here {len(kinds)} recipes, seeds "
            f"{', '.join(map(str, seeds))}): the gain is paired by model"
        )
    if not recipes[0].val_size:
        raise UserError("these models trained on every image (--val-size 0): no validation images to screen on")
    return recipes[0].val_size


def readings_on_test(model: Net, data: MnistTensors) -> dict[str, float]:
    return dict(
        test_plain=accuracy(model, data.test_images, data.test_labels, views=False),
        test_views=accuracy(model, data.test_images, data.test_labels, views=True),
    )


def spread_on_test(values: list[float]) -> dict[str, float]:
    """The seeds' spread, and how many reach the pass mark."""
    return dict(spread(values), at_target=sum(value >= TARGET_ACCURACY for value in values))


def lines_on_test(report: dict) -> list[str]:
    """The test figures of --test: each reading's mean, spread and seeds at the pass mark."""
    lines = ["", f"Test ({report['test_images']:,} images), which decided nothing:", ""]
    lines += [
        f"| reading | mean | std | worst seed | best seed | seeds >= {TARGET_ACCURACY}% |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("plain", "views"):
        figures = report["test"][name]
        lines.append(
            f"| {name} | {figures['mean']:.3f}% | {figures['std']:.3f}% | {figures['min']:.2f}% "
            f"| {figures['max']:.2f}% | {figures['at_target']} of {len(report['models'])} |"
        )
    return lines


def markdown(report: dict) -> str:
    gain = report["val_gain"]
    cost = report["seconds_per_image"]
    lines = [
        f"Validation ({report['val_images']:,} images, `{report['spec']}`), each model read plain and averaged over "
        f"{len(SHIFTS)} views (the image and its four one-pixel shifts), paired by model (`python scripts/views.py`); "
        "the rule, adopt the views if the mean gain exceeds two standard errors, is in docs/experiments.md.",
        "",
        "| model | seed | val plain | val with views | gain |" + " test plain | test with views |" * ("test" in report),
        "|---|---:|---:|---:|---:|" + "---:|---:|" * ("test" in report),
    ]
    for row in report["models"]:
        lines.append(
            f"| `{row['checkpoint']}` | {row['seed']} | {row['val_plain']:.2f}% | {row['val_views']:.2f}% "
            f"| {row['val_views'] - row['val_plain']:+.2f}% |"
            + (f" {row['test_plain']:.2f}% | {row['test_views']:.2f}% |" if "test" in report else "")
        )
    lines += [
        "",
        f"Mean gain {gain['mean']:+.3f}% (standard error {gain['standard_error']:.3f}%, {gain['seeds']} models): "
        f"{'adopt' if report['adopt'] else 'no finding'}. Cost on one thread: {cost['plain'] * 1e6:.0f} us per image "
        f"plain, {cost['views'] * 1e6:.0f} us with views ({cost['views'] / cost['plain']:.1f}x).",
    ]
    if "test" in report:
        lines += lines_on_test(report)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="trained models, one per seed of one recipe")
    add_data_dir_argument(parser)
    parser.add_argument("--rounds", type=positive_int, default=5, help="interleaved timing rounds")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "views-screen.json",
        help="report file, with .md beside it (default: reports/views-screen.json)",
    )
    parser.add_argument(
        "--test", action="store_true", help="also read the test set, plain and with views (once adopted on validation)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    loaded = [(path, *load_model(path)) for path in args.checkpoints]
    val_size = one_recipe([meta for _, _, meta in loaded])
    data = load_mnist(resolve_data_dir(args.data_dir), torch.device("cpu"), val_size=val_size)
    rows = [
        dict(
            checkpoint=path.as_posix(),
            seed=meta["seed"],
            val_plain=accuracy(model, data.val_images, data.val_labels, views=False),  # as each epoch records it
            val_views=accuracy(model, data.val_images, data.val_labels, views=True),
            **(readings_on_test(model, data) if args.test else {}),
        )
        for path, model, meta in loaded
    ]
    gain = paired_gain([(row["val_views"], row["val_plain"]) for row in rows])
    assert gain is not None  # one_recipe asked for two models at least
    report = dict(
        spec=loaded[0][2]["spec"],
        val_images=len(data.val_labels),
        shifts=SHIFTS,
        models=rows,
        val_gain=gain,
        adopt=gain["mean"] > 2 * gain["standard_error"],
        **(
            dict(
                test_images=len(data.test_labels),
                test={name: spread_on_test([row[f"test_{name}"] for row in rows]) for name in ("plain", "views")},
            )
            if args.test
            else {}
        ),
        seconds_per_image=seconds_per_image(loaded[0][1], data.val_images[:TIMED_IMAGES], args.rounds),
    )
    write_atomic((json.dumps(report, indent=2) + "\n").encode(), args.out)
    write_atomic(markdown(report).encode(), args.out.with_suffix(".md"))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    run_cli(main)
