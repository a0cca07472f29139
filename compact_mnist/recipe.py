"""What training produces, as one typed value, each preset's own, and train.py's flags made from it.

A `Recipe` holds everything that decides what `python train.py` trains: the network and every hyperparameter.
`Recipe()` is the default preset's recipe, and a layer spec given with --model trains with it too, so that
`--model SPEC` changes the network and nothing else. The other presets change a few values (chosen on validation:
docs/experiments.md). Each field carries its flag's help and bounds; train.py stores the recipe in each checkpoint,
so that --resume rebuilds it, and in metrics.json, so that a finished run is recognised.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from compact_mnist.cli import number
from compact_mnist.data import ROTATION_DEGREES, SHIFT_PIXELS, TRAIN_IMAGES, VAL_SIZE, ZOOM
from model import HEADS, PRESETS, Net, parse_spec

SCHEDULES = ("onecycle", "constant")
MOMENTUM = 0.9  # the middle of the range OneCycleLR cycles momentum over
NET = inspect.signature(Net).parameters  # the network's own defaults are the recipe's
# What each preset trains with where it differs from Recipe(), the default's recipe.
PRESET_RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "small": dict(elastic=0.0),
    "tiny": dict(elastic=0.0, label_smoothing=0.0, clean_epochs=5),
    "micro": dict(elastic=0.0, label_smoothing=0.0, dropout=0.0, weight_decay=1e-4, clean_epochs=5),
}


def option(default: Any, help: str, before: Any = None, resume: bool = False, both: bool = False, **check: Any) -> Any:
    """A recipe field: its default and its flag's help; how its flag checks a value (`kind` and `number`'s bounds,
    or `choices`); `before`, the value that a record saved without this field was trained with, where that is not
    the default; `resume`, whether --resume may change it; `both`, a switch taking --NAME as well as --no-NAME."""
    return field(default=default, metadata=dict(help=help, before=before, resume=resume, both=both, **check))


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what training produces; the defaults are the default preset's. Fields in the order
    of train.py's --help."""

    epochs: int = option(20, "training epochs", kind=int, above=0, at_most=1000)
    batch_size: int = option(256, "images per step; BatchNorm needs at least 2", kind=int, at_least=2, at_most=60_000)
    lr: float = option(0.4, "peak learning rate of OneCycleLR", kind=float, above=0, at_most=1000)
    momentum: float = option(
        MOMENTUM,
        "SGD's Nesterov momentum, 0 for none; OneCycleLR cycles it from 0.95 to 0.85 and back itself",
        kind=float,
        at_least=0,
        below=1,
    )
    weight_decay: float = option(5e-4, "SGD weight decay", kind=float, at_least=0, at_most=1)
    label_smoothing: float = option(0.1, "label smoothing", kind=float, at_least=0, below=1, resume=True)
    dropout: float = option(NET["dropout"].default, "dropout before the linear layer", kind=float, at_least=0, below=1)
    model: str = option("default", 'a preset ({presets}) or a layer spec such as "8,M,16,M,16"', kind="spec")
    augment: bool = option(True, "train without augmentation (affine and elastic)", resume=True)
    batchnorm: bool = option(NET["batchnorm"].default, "no BatchNorm after each convolution, a bias instead")
    head: str = option(
        NET["head"].default,
        "gap: a global average pool before the linear layer; flatten: every pixel of the last map into it",
        choices=HEADS,
    )
    schedule: str = option(
        "onecycle", "onecycle: OneCycleLR up to --lr and down; constant: --lr throughout", choices=SCHEDULES
    )
    augment_strength: float = option(
        1.0,
        f"scales the rotation ({ROTATION_DEGREES:g} degrees), shift ({SHIFT_PIXELS:g} px) and zoom ({ZOOM:.0%}) "
        "of augmentation",
        kind=float,
        at_least=0,
        at_most=3,
        resume=True,
    )
    elastic: float = option(
        1.25,
        "elastic distortion: a smooth random displacement of up to this many pixels, added to the affine "
        "augmentation; 0 is off",
        before=0.0,
        kind=float,
        at_least=0,
        at_most=4,
        resume=True,
    )
    clean_epochs: int = option(
        0, "train the last N epochs on un-augmented images, as the test images are", kind=int, at_least=0, at_most=1000
    )
    ema: float = option(
        0.0,
        "evaluate and save an exponential moving average of the weights with this decay per step, its BatchNorm "
        "statistics recomputed on training images; 0 is off",
        kind=float,
        at_least=0,
        below=1,
    )
    views: bool = option(
        True,
        "the saved model reads each image as the mean of its probabilities over the image and its four one-pixel "
        "shifts (test-time views; on unless --no-views); training is unchanged",
        before=False,
        resume=True,
        both=True,
    )
    val_size: int = option(
        VAL_SIZE,
        "training images held out for validation; 0 trains on all 60,000 and reports no validation figure",
        kind=int,
        at_least=0,
        at_most=50_000,
    )
    seed: int = option(1, "random seed", kind=int, at_least=0, below=2**32)
    deterministic: bool = option(False, "bit-reproducible runs (same machine and threads)", resume=True)
    train_limit: int | None = option(
        None, "use only this many training images (quick checks)", kind=int, at_least=2, at_most=TRAIN_IMAGES
    )

    @property
    def augmenting(self) -> bool:
        """Whether any epoch is augmented."""
        return self.augment and self.augment_strength > 0

    def augmented(self, epoch: int) -> bool:
        """Whether epoch `epoch` (from 1) trains on augmented images: the last `clean_epochs` do not."""
        return self.augmenting and epoch <= self.epochs - self.clean_epochs

    @property
    def train_size(self) -> int:
        """Training images per epoch."""
        return min(self.train_limit or TRAIN_IMAGES, TRAIN_IMAGES - self.val_size)

    def problems(self) -> list[str]:
        """What makes this recipe untrainable, each naming the flag to change; empty when it trains."""
        found = []
        if self.augmenting and self.clean_epochs >= self.epochs:
            source = f" ({self.model}'s recipe)" if "clean_epochs" in PRESET_RECIPES.get(self.model, {}) else ""
            found.append(
                f"--clean-epochs {self.clean_epochs}{source} leaves no augmented epoch of --epochs {self.epochs}; "
                f"pass --clean-epochs below {self.epochs}, or --no-augment to train without augmentation"
            )
        if self.schedule == "onecycle" and self.momentum not in (0, MOMENTUM):
            found.append(
                f"--momentum {self.momentum} has no effect under OneCycleLR, which cycles momentum from 0.95 to 0.85 "
                "and back itself; pass --schedule constant to set it, or --momentum 0 for none"
            )
        if self.batch_size > self.train_size:
            limit = " (--train-limit)" if self.train_limit else ""
            found.append(
                f"--batch-size {self.batch_size} is larger than the {self.train_size:,} training images{limit}, "
                f"so every epoch would be one step; use at most {self.train_size}"
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def recorded(cls, values: dict[str, Any]) -> Recipe:
        """The recipe that a checkpoint or a record holds (`as_dict`'s output); a field it lacks, saved before the
        field existed, takes the value that training had then."""
        before = {item.name: item.metadata["before"] for item in FIELDS if item.metadata["before"] is not None}
        names = {item.name for item in FIELDS}
        return cls(**{**before, **{key: value for key, value in values.items() if key in names}})


FIELDS = dataclasses.fields(Recipe)


def for_model(model: str = "default", **changes: Any) -> Recipe:
    """The recipe that `python train.py --model MODEL` trains, with `changes` on top: a preset's own, or the
    default's for a layer spec."""
    return Recipe(model=model, **{**PRESET_RECIPES.get(model, {}), **changes})


def spec_type(text: str) -> str:
    """argparse type: a preset name or a layer spec that model.py accepts."""
    try:
        parse_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def default_help(item: dataclasses.Field[Any]) -> str:
    """The end of a recipe flag's help: its default, and the presets that train with other values."""
    if item.name == "model":
        return f" (default: the preset {item.default})"
    others: dict[Any, list[str]] = {}  # value -> the presets that train with it
    for name in PRESETS:
        value = getattr(for_model(name), item.name)
        if value != item.default:
            others.setdefault(value, []).append(name)
    if item.default is None or (isinstance(item.default, bool) and not others):
        return ""
    rest = "".join(f"; {', '.join(names)}: {shown(value)}" for value, names in others.items())
    return f" (default: {shown(item.default)}{rest})"


def shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag(name: str, value: Any, bare: bool = False) -> str:
    """A recipe value as the flag that gives it ("--lr 0.1", "--no-batchnorm"), or with `bare` just the value."""
    option = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{option}" if value else f"--no-{option}"
    return str(value) if bare else f"--{option} {value}"


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Recipe field, in the fields' order: --no-NAME or --NAME for a switch (both where presets differ
    on it), else --NAME VALUE checked as the field says. Defaults are left out of the namespace, so that
    `given_values` knows what was given."""
    for item in FIELDS:
        check = {key: value for key, value in item.metadata.items() if key not in ("help", "before", "resume", "both")}
        words = item.metadata["help"].format(presets=", ".join(f"{name} = {spec}" for name, spec in PRESETS.items()))
        options = dict(dest=item.name, default=argparse.SUPPRESS, help=(words + default_help(item)).replace("%", "%%"))
        name = item.name.replace("_", "-")
        if isinstance(item.default, bool) and (default_help(item) or item.metadata["both"]):  # --NAME and --no-NAME
            parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, **options)
        elif isinstance(item.default, bool):
            action = "store_false" if item.default else "store_true"
            parser.add_argument(flag(item.name, not item.default), action=action, **options)
        elif "choices" in check:
            parser.add_argument(f"--{name}", choices=check["choices"], **options)
        else:
            kind = check.pop("kind")
            parser.add_argument(f"--{name}", type=spec_type if kind == "spec" else number(kind, **check), **options)


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe values given on the command line, taken out of `args`."""
    return {item.name: vars(args).pop(item.name) for item in FIELDS if item.name in args}
