"""The pictures of the tools: confusion matrix, misclassified digits, the search's front, the frontier and reading
examples (train.py draws its own training curves)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import torch

from compact_mnist.files import save_figure
from compact_mnist.goals import TARGET_ACCURACY


def confusion_matrix(matrix: torch.Tensor, path: Path) -> None:
    """Counts of (true, predicted) pairs, shaded on a log scale, each non-zero count written in its cell."""
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    image = axis.imshow(matrix.log1p().numpy(), cmap="Blues")
    for true in range(10):
        for predicted in range(10):
            count = int(matrix[true, predicted])
            if count:
                color = "white" if true == predicted else "black"
                axis.text(predicted, true, str(count), ha="center", va="center", fontsize=7, color=color)
    axis.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title="confusion matrix (test set)")
    figure.colorbar(image, ax=axis, label="log(1 + count)")
    save_figure(figure, path)


def misclassified_grid(
    images: torch.Tensor, true: list[int], predicted: list[int], confidence: list[float], path: Path, columns: int = 10
) -> None:
    """The given digits in a grid, each titled `true -> predicted (confidence)`."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.5), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].squeeze(0).numpy(), cmap="gray")
            axis.set_title(f"{true[index]}->{predicted[index]} ({confidence[index]:.0%})", fontsize=8)
    figure.suptitle("misclassified test digits: true -> predicted (confidence)")
    save_figure(figure, path)


def pareto_front(points: list[tuple[int, float, float, bool]], title: str, path: Path) -> None:
    """Search trials as (parameters, validation accuracy, seconds per epoch, on the Pareto front):
    parameters on a log axis, colour for time, the front's points ringed and joined."""
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    params, accuracy, seconds = ([point[i] for point in points] for i in range(3))
    dots = axis.scatter(params, accuracy, c=seconds, cmap="viridis", s=28, zorder=2)
    front = sorted((p, a) for p, a, _, best in points if best)
    if front:
        axis.plot(*zip(*front, strict=True), "o", mfc="none", mec="crimson", ms=11, label="Pareto front", zorder=3)
        axis.legend(loc="lower right")
    if points:
        figure.colorbar(dots, ax=axis, label="seconds per epoch")
    axis.set(xscale="log", xlabel="parameters (log)", ylabel="mean validation accuracy (%)", title=title)
    axis.grid(alpha=0.3, which="both")
    save_figure(figure, path)


def frontier(points: list[dict], path: Path) -> None:
    """Confirmed presets: parameters (log) against mean test accuracy with min-max bars, each labelled with
    its CPU seconds per epoch; a preset read with test-time views has its network alone's mean beside, hollow."""
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    for index, point in enumerate(points):
        low, high = point["test_mean"] - point["test_min"], point["test_max"] - point["test_mean"]
        axis.errorbar(point["params"], point["test_mean"], yerr=[[low], [high]], fmt="o", capsize=4, color="tab:blue")
        if point.get("plain_test_mean") is not None:  # read with test-time views: the network alone, hollow
            axis.plot(point["params"], point["plain_test_mean"], "o", mfc="none", color="tab:blue")
        seconds = f", {point['seconds_per_epoch']:.1f} s/epoch" if point["seconds_per_epoch"] else ""
        axis.annotate(
            f"{point['preset']} ({point['seeds']} seeds{seconds})",
            (point["params"], point["test_mean"]),
            textcoords="offset points",
            xytext=(8, -12 if index % 2 else 8),
            fontsize=8,
        )
    axis.axhline(TARGET_ACCURACY, color="grey", lw=0.8, ls="--")
    axis.set(
        xscale="log",
        xlabel="parameters (log)",
        ylabel="test accuracy (%): mean, min-max over seeds (hollow: without views)",
        title="accuracy against size, final-epoch models, nothing chosen on test",
    )
    axis.grid(alpha=0.3, which="both")
    save_figure(figure, path)


def reading_examples(panels: list[tuple[str, object, torch.Tensor, str]], path: Path, columns: int = 4) -> None:
    """Pictures as the loader sees them, each above the 28x28 inputs the model received and what it read.
    A panel is (title, PIL picture, inputs `(N, 1, 28, 28)` in [0, 1], reading)."""
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        2 * rows,
        columns,
        figsize=(columns * 3.2, rows * 4.6),
        squeeze=False,
        gridspec_kw=dict(height_ratios=[2.2, 1] * rows),
    )
    for axis in axes.flat:
        axis.axis("off")
    for index, (title, picture, inputs, reading) in enumerate(panels):
        top, bottom = axes[2 * (index // columns), index % columns], axes[2 * (index // columns) + 1, index % columns]
        top.imshow(picture, cmap="gray", vmin=0, vmax=255)
        top.set_title(title, fontsize=9)
        bottom.imshow(torch.cat(list(inputs[:, 0]), dim=1).numpy(), cmap="gray", vmin=0, vmax=1)
        bottom.set_title(f"read: {reading}", fontsize=9)
    save_figure(figure, path)
