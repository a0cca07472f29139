"""What the presets are held to: the pass mark every retrained model must reach, the parameter limit, and each
preset's own parameter budget and stricter goals over seeds (the lowest seed's and the mean test accuracy); and
which preset, if any, a recipe or a run's record is."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from compact_mnist.recipe import Recipe, for_model
from model import PRESETS, parse_spec

TARGET_ACCURACY = 99.40  # what every retrained model must reach on the 10,000 test images (test_model.py)
PARAMETER_LIMIT = 20_000  # every preset stays under it
# What decides the run but not the recipe's identity: a seed sweep varies the seed, a reproduction asks for bits.
NOT_THE_RECIPE = ("seed", "deterministic")


@dataclass(frozen=True)
class Goal:
    """A preset's parameter budget and the test accuracy its seeds must reach: the lowest seed's (0: no such goal)
    and the mean."""

    budget: int
    least_min: float
    least_mean: float


GOALS = {
    "default": Goal(19_999, 99.45, 99.55),
    "small": Goal(8_000, 0.0, 99.50),
    "tiny": Goal(4_000, 0.0, 99.40),
    "micro": Goal(1_000, 0.0, 99.00),
}


def preset_of(recipe: Recipe) -> str | None:
    """The name of the preset whose whole recipe `recipe` is (its model a name or the layer spec), seed aside; None
    if there is none: a preset's network trained with another recipe is not that preset."""
    spec = ",".join(parse_spec(recipe.model))
    for name in PRESETS:
        same = dataclasses.replace(recipe, model=name, **{field: getattr(Recipe(), field) for field in NOT_THE_RECIPE})
        if spec == PRESETS[name] and same == for_model(name):
            return name
    return None


def recorded_recipe(meta: dict[str, Any]) -> Recipe:
    """The recipe that a metrics.json "meta" records (train.trained_recipe), its model as the layer spec; a field
    that it lacks takes the value that training had before the field existed."""
    values = dict(meta.get("hyperparameters", {}), model=meta["spec"], epochs=meta["epochs"], seed=meta["seed"])
    return Recipe.recorded(values)
