"""Evaluate a trained model on the MNIST test set: accuracy, per-class figures and pictures.

    python evaluate.py --checkpoint models/mnist_model.pth      # writes into reports/

Prints test accuracy, per-class accuracy, precision and recall, and the confusion matrix; writes
evaluation.json, confusion_matrix.txt, confusion_matrix.png and misclassified.png. A model that reads with
test-time views is measured as it reads, and the network alone beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from compact_mnist.checkpoint import add_model_arguments, load_model, network_alone
from compact_mnist.cli import ArgumentParser, run_cli
from compact_mnist.data import add_data_dir_argument, load_test_split, normalize, resolve_data_dir
from compact_mnist.files import fingerprint, stamp, write_atomic
from model import Net, predict


def confusion(true: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """10x10 counts: row = true digit, column = predicted digit."""
    return torch.bincount(true * 10 + predicted, minlength=100).reshape(10, 10)


def class_report(matrix: torch.Tensor) -> list[dict[str, Any]]:
    """Per digit: support, accuracy (= recall) and precision, in percent."""
    rows = []
    for digit in range(10):
        hits, support, predicted = (
            matrix[digit, digit].item(),
            matrix[digit].sum().item(),
            matrix[:, digit].sum().item(),
        )
        rows.append(
            dict(
                digit=digit,
                support=support,
                recall=100 * hits / support,
                precision=100 * hits / predicted if predicted else 0.0,
            )
        )
    return rows


def plain_accuracy(model: Net, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Accuracy in percent of `model`'s network alone, without the test-time views that it reads with; None for a
    model that reads plain."""
    alone = network_alone(model)
    if alone is None:
        return None
    return (predict(alone, images).argmax(1) == labels).sum().item() * 100 / len(labels)


def matrix_text(matrix: torch.Tensor) -> str:
    header = "true\\pred" + "".join(f"{digit:>6}" for digit in range(10))
    return "\n".join(
        [header] + [f"{digit:>9}" + "".join(f"{int(n):>6}" for n in row) for digit, row in enumerate(matrix)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    add_data_dir_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="folder for the report files (default: reports/, replacing the committed reports)",
    )
    args = parser.parse_args(argv)
    from compact_mnist.plots import (  # matplotlib: only once there is something to draw
        confusion_matrix,
        misclassified_grid,
    )

    model, meta = load_model(args.checkpoint, args.model)
    raw_images, labels = load_test_split(resolve_data_dir(args.data_dir))
    images = normalize(raw_images)
    confidence, predicted = predict(model, images).exp().max(1)
    matrix = confusion(labels, predicted)
    correct = matrix.trace().item()
    accuracy = correct * 100 / len(labels)
    classes = class_report(matrix)
    plain = plain_accuracy(model, images, labels)  # the network alone, beside

    print(f"{args.checkpoint}: {meta['model']} model, {meta['params']:,} parameters")
    views = f", read with test-time views (the network alone: {plain:.2f}%)" if plain is not None else ""
    print(f"test accuracy: {accuracy:.2f}% ({correct:,} of {len(labels):,}){views}\n")
    print("digit  support  accuracy/recall  precision")
    for row in classes:
        print(f"{row['digit']:>5}  {row['support']:>7}  {row['recall']:>14.2f}%  {row['precision']:>8.2f}%")
    print(f"\nconfusion matrix (rows: true digit, columns: predicted)\n{matrix_text(matrix)}")

    wrong = (predicted != labels).nonzero().squeeze(1)
    wrong = wrong[confidence[wrong].argsort(descending=True)][:60]  # the most confident mistakes first
    results = dict(
        checkpoint=str(args.checkpoint),
        checkpoint_sha256=fingerprint(args.checkpoint),
        test_accuracy=accuracy,
        views=model.views,
        plain_test_accuracy=plain,
        per_class=classes,
        confusion_matrix=matrix.tolist(),
        misclassified=len(labels) - correct,
    )
    write_atomic((json.dumps(results, indent=2) + "\n").encode(), args.out / "evaluation.json")
    write_atomic((matrix_text(matrix) + "\n").encode(), args.out / "confusion_matrix.txt")
    confusion_matrix(matrix, args.out / "confusion_matrix.png")
    misclassified_grid(
        raw_images[wrong],
        labels[wrong].tolist(),
        predicted[wrong].tolist(),
        confidence[wrong].tolist(),
        args.out / "misclassified.png",
    )
    for picture in ("confusion_matrix.png", "misclassified.png"):
        stamp(args.out / picture, [args.checkpoint], "python evaluate.py")
    print(f"\nwrote evaluation.json, confusion_matrix.txt, confusion_matrix.png, misclassified.png to {args.out}/")
    return 0


if __name__ == "__main__":
    run_cli(main)
