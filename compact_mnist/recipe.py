"""What training produces, as one typed value, and the one table of presets with the goals each is held to.

A `Recipe` holds everything that decides what `python train.py` trains: the network and every hyperparameter.
train.py generates its flags from these fields (their defaults, help and bounds), stores the recipe in each
checkpoint so that --resume rebuilds it, and records it in metrics.json so that a finished run is recognised.
A preset is a layer spec, the recipe values it trains with where they differ from the fields' defaults
(chosen on validation: docs/experiments.md), its parameter budget and its accuracy goals over seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from compact_mnist.data import ROTATION_DEGREES, SHIFT_PIXELS, TRAIN_IMAGES, VAL_SIZE, ZOOM

TARGET_ACCURACY = 99.40  # what every retrained model must reach on the 10,000 test images (test_model.py)
PARAMETER_LIMIT = 20_000  # every preset stays under it
HEADS = ("gap", "flatten")  # a global average pool before the linear layer, or every pixel of the last map
SCHEDULES = ("onecycle", "constant")


def option(default, help: str, **check):
    """A recipe field: its default, its flag's --help text, and how its flag checks a value (`kind` and bounds as
    flags.number takes them, or `choices`). A switch that defaults to True has the flag --no-NAME, which the help
    text describes."""
    return field(default=default, metadata=dict(help=help, **check))


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what training produces. The defaults are a layer spec's; `for_model` gives a
    preset its own values. Fields in the order of train.py's --help."""

    epochs: int = option(20, "training epochs", kind=int, above=0)
    batch_size: int = option(256, "images per step; BatchNorm needs at least 2", kind=int, at_least=2)
    lr: float = option(0.4, "peak learning rate of OneCycleLR", kind=float, above=0)
    momentum: float = option(0.9, "SGD momentum", kind=float, at_least=0, below=1)
    weight_decay: float = option(5e-4, "SGD weight decay", kind=float, at_least=0)
    label_smoothing: float = option(0.1, "label smoothing", kind=float, at_least=0, below=1)
    dropout: float = option(0.05, "dropout before the linear layer", kind=float, at_least=0, below=1)
    model: str = option(
        "default",
        'a preset ({presets}) or a layer spec such as "8,M,16,M,16"; a preset also brings its own recipe',
        kind="spec",
    )
    augment: bool = option(True, "train without random affine augmentation")
    batchnorm: bool = option(True, "no BatchNorm after each convolution, a bias instead (for the ablation study)")
    head: str = option(
        "gap",
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
    )
    elastic: float = option(
        0.0,
        "elastic distortion: a smooth random displacement of up to this many pixels, added to the affine "
        "augmentation; 0 is off",
        kind=float,
        at_least=0,
        at_most=4,
    )
    clean_epochs: int = option(
        0, "train the last N epochs on un-augmented images, as the test images are", kind=int, at_least=0
    )
    ema: float = option(
        0.0,
        "evaluate and save an exponential moving average of the weights with this decay per step, its BatchNorm "
        "statistics recomputed on training images; 0 is off",
        kind=float,
        at_least=0,
        below=1,
    )
    val_size: int = option(
        VAL_SIZE,
        "training images held out for validation; 0 trains on all 60,000 and reports no validation figure",
        kind=int,
        at_least=0,
        at_most=50_000,
    )
    seed: int = option(1, "random seed", kind=int, at_least=0, below=2**32)
    deterministic: bool = option(False, "bit-reproducible runs (same machine and threads)")
    train_limit: int | None = option(None, "use only this many training images (quick checks)", kind=int, at_least=2)

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
        return min(self.train_limit or TRAIN_IMAGES - self.val_size, TRAIN_IMAGES - self.val_size)

    def problems(self) -> list[str]:
        """What makes this recipe untrainable, each naming the flag to change; empty when it trains."""
        found = []
        if self.augmenting and self.clean_epochs >= self.epochs:
            source = f" ({self.model}'s recipe)" if "clean_epochs" in own_values(self.model) else ""
            found.append(
                f"--clean-epochs {self.clean_epochs}{source} leaves no augmented epoch of --epochs {self.epochs}; "
                f"pass --clean-epochs below {self.epochs}, or --no-augment to train without augmentation"
            )
        if self.batch_size > self.train_size:
            limit = " (--train-limit)" if self.train_limit else ""
            found.append(
                f"--batch-size {self.batch_size} is larger than the {self.train_size:,} training images{limit}, "
                f"so every epoch would be one step; use at most {self.train_size}"
            )
        return found

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def updated(self, values: dict) -> Recipe:
        """This recipe with the fields that `values` holds (`as_dict`'s output, or a checkpoint's); other keys are
        ignored, and a field that `values` lacks (saved before the field existed) keeps this recipe's value."""
        names = {item.name for item in dataclasses.fields(self)}
        return dataclasses.replace(self, **{key: value for key, value in values.items() if key in names})

    @classmethod
    def from_record(cls, record: dict) -> Recipe:
        """The recipe that metrics.json's "meta" records (train.trained_recipe): `model` as its layer spec."""
        return cls().updated(
            dict(record.get("hyperparameters", {}), model=record["spec"], epochs=record["epochs"], seed=record["seed"])
        )


@dataclass(frozen=True)
class Preset:
    """A named network: its layer spec (model.py), the recipe values it trains with where they differ from
    `Recipe`'s defaults, its parameter budget, and the test accuracy its seeds must reach: the lowest seed's
    (0: no such goal) and the mean."""

    spec: str
    recipe: dict
    budget: int
    least_min: float
    least_mean: float


PRESETS: dict[str, Preset] = {
    "default": Preset("8d,16,16,16s,M,32s,48s,48s", dict(elastic=1.25), 19_999, 99.45, 99.55),
    "small": Preset("8d,16,16,16s,M,24s,32s,32s", dict(), 8_000, 0.0, 99.50),
    "tiny": Preset("8,M,12,12s,12s,M,24s,24s,24s", dict(label_smoothing=0.0, clean_epochs=5), 4_000, 0.0, 99.40),
    "micro": Preset(
        "4,8s,M,12s,M,12s,11s", dict(label_smoothing=0.0, dropout=0.0, weight_decay=1e-4, clean_epochs=5),
        1_000, 0.0, 99.00,
    ),
}  # fmt: skip


def own_values(model: str) -> dict:
    """The recipe values that the preset `model` trains with instead of the fields' defaults; none for a layer spec."""
    return PRESETS[model].recipe if model in PRESETS else {}


def preset_of(spec: str) -> str | None:
    """The name of the preset whose layer spec is `spec`, or None."""
    return next((name for name, preset in PRESETS.items() if preset.spec == spec), None)


def for_model(model: str = "default", **changes) -> Recipe:
    """The recipe that `python train.py --model MODEL` trains, with `changes` on top: a preset's own values,
    or the fields' defaults for a layer spec."""
    return Recipe(model=model, **{**own_values(model), **changes})
