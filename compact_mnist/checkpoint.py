"""A trained model loaded for use: the checkpoint's weights in the architecture it records, and the flags that
choose them in evaluate.py, predict.py and export.py."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import torch

from compact_mnist.cli import UserError
from compact_mnist.files import load_checkpoint
from compact_mnist.memory import model_spec
from compact_mnist.recipe import Recipe
from model import Net

# The committed model, found from the project wherever the command is run from.
COMMITTED_MODEL = Path(__file__).resolve().parent.parent / "models" / "mnist_model.pth"


def load_weights(model: torch.nn.Module, state_dict: dict[str, Any], path: Path) -> None:
    """Load `state_dict` into `model`, naming the mismatching layers if the architecture differs."""
    expected = model.state_dict()
    details: dict[str, str] = {}
    for name in list(expected) + [name for name in state_dict if name not in expected]:
        saved, wanted = state_dict.get(name), expected.get(name)
        saved_shape = tuple(saved.shape) if isinstance(saved, torch.Tensor) else None
        wanted_shape = tuple(wanted.shape) if wanted is not None else None
        if saved_shape != wanted_shape:
            details.setdefault(name.rsplit(".", 1)[0], f"{name}: saved {saved_shape}, model {wanted_shape}")
    if details:
        layers = list(details)
        shown = ", ".join(layers[:5]) + (f" and {len(layers) - 5} more" if len(layers) > 5 else "")
        raise UserError(
            f"{path} was saved for a different architecture: layers {shown} differ "
            f"(first: {details[layers[0]]}); pass the matching --model or retrain"
        )
    model.load_state_dict(state_dict)


def load_model(path: Path, spec: str | None = None, network: type[Net] = Net) -> tuple[Net, dict[str, Any]]:
    """Load a checkpoint into the architecture it records (or into `spec`, to insist on one), built as `network`
    (`Net`, or a subclass of it such as the Hub entry's), reading with test-time views if it was saved so.

    Returns the model in eval mode and the checkpoint's metadata.
    """
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    try:
        recipe = Recipe.recorded(meta.get("hyperparameters", {}))
        model = network(
            spec or meta.get("spec") or meta.get("model", "default"),
            batchnorm=recipe.batchnorm,
            head=recipe.head,
            views=recipe.views,
        )
    except (ValueError, TypeError):
        raise UserError(
            f"{path} records an unknown architecture ({meta.get('spec')!r}); retrain with: python train.py"
        ) from None
    load_weights(model, checkpoint["state_dict"], path)
    return model.eval(), meta


def network_alone(model: Net) -> Net | None:
    """For a model that reads with test-time views, its network read without them, to measure beside it: a copy that
    shares the weights and has a views switch of its own (use both in eval mode: `.eval()` on either switches the
    shared layers). None for a model that reads plain."""
    if not model.views:
        return None
    alone = copy.copy(model)
    alone.views = False
    return alone


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The --checkpoint and --model flags shared by evaluate.py, predict.py and export.py."""
    add = parser.add_argument
    add(
        "--checkpoint",
        type=Path,
        default=COMMITTED_MODEL,
        help="trained model (default: the project's committed models/mnist_model.pth)",
    )
    add(
        "--model",
        type=model_spec,
        default=None,
        help="architecture to insist on, a preset or layer spec (default: what the checkpoint records)",
    )
