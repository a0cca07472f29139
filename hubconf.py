"""PyTorch Hub entry points: the compact MNIST CNN, each preset, and the preprocessing for your own images.

    import torch
    model = torch.hub.load("OWNER/REPO", "compact_mnist", pretrained=True)   # the committed weights, eval mode
    digit = model.to_mnist(PIL.Image.open("digit.png"))                         # (1, 28, 28), normalized
    print(model(digit[None]).argmax(1))                                          # log-probabilities -> digit

The committed weights read with test-time views, as they were saved (the mean over the image and its four
one-pixel shifts; `model.views = False` reads the image alone). Only the default preset has committed weights
(models/mnist_model.pth); the others load untrained with pretrained=False, to be trained with
`python train.py --model NAME`, and read with test-time views in eval mode, as their recipes save them.
"""

from pathlib import Path as _Path

from compact_mnist.checkpoint import load_model as _load_model
from compact_mnist.cli import UserError as _UserError
from compact_mnist.goals import GOALS as _GOALS
from compact_mnist.preprocess import to_mnist  # an entry point too: the preprocessing on its own
from compact_mnist.recipe import for_model as _for_model
from model import Net as _Net

dependencies = ["torch", "numpy", "PIL", "scipy"]

_WEIGHTS = _Path(__file__).resolve().parent / "models" / "mnist_model.pth"


class _HubNet(_Net):
    """`model.Net` with the preprocessing that predict.py and the demo use beside it: `model.to_mnist(image)`."""

    to_mnist = staticmethod(to_mnist)


def _build(preset: str, pretrained: bool) -> _HubNet:
    if pretrained and preset != "default":
        raise ValueError(
            f"no committed weights for the {preset!r} preset (only the default has them, in models/); "
            f"load it with pretrained=False and train it with: python train.py --model {preset}"
        )
    if not pretrained:
        recipe = _for_model(preset)  # the network as its recipe trains and reads it
        return _HubNet(preset, recipe.dropout, recipe.batchnorm, recipe.head, recipe.views).eval()
    try:
        return _load_model(_WEIGHTS, preset, network=_HubNet)[0]
    except _UserError as error:  # missing, damaged, or retrained into another architecture
        raise RuntimeError(str(error)) from None


def _documented(preset: str):
    """Name the preset's parameter budget, from the one preset table, in an entry point's docstring."""

    def document(entry):
        if entry.__doc__:  # None under python -OO
            entry.__doc__ = entry.__doc__.format(budget=f"{_GOALS[preset].budget:,}")
        return entry

    return document


@_documented("default")
def compact_mnist(pretrained: bool = True):
    """The default compact CNN (at most {budget} parameters), with the committed weights unless pretrained=False.
    In eval mode; `(N, 1, 28, 28)` normalized images in, `(N, 10)` log-probabilities out; `model.to_mnist(image)`
    turns a PIL picture of one digit into such an input."""
    return _build("default", pretrained)


@_documented("small")
def compact_mnist_small(pretrained: bool = False):
    """The `small` preset (at most {budget} parameters), untrained: no weights are committed for it."""
    return _build("small", pretrained)


@_documented("tiny")
def compact_mnist_tiny(pretrained: bool = False):
    """The `tiny` preset (at most {budget} parameters), untrained: no weights are committed for it."""
    return _build("tiny", pretrained)


@_documented("micro")
def compact_mnist_micro(pretrained: bool = False):
    """The `micro` preset (at most {budget} parameters), untrained: no weights are committed for it."""
    return _build("micro", pretrained)
