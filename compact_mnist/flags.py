"""Command-line value checks shared by every script, so bad input stops at the usage line, and train.py's recipe
flags, generated from `Recipe`'s fields.

Each check here is an argparse `type`: it turns the text into a value or raises
`argparse.ArgumentTypeError`, which argparse prints as one line naming the flag, with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable

import torch

from compact_mnist.errors import UsageError
from compact_mnist.recipe import PRESETS, Recipe, for_model
from model import parse_spec, training_memory_bytes


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, as the code has it: " (default: V)" after the help of a flag whose default
    is a number or a word and whose help does not already say what its default is (a path, a list, or a value with
    a reason given in words)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        shown = isinstance(action.default, int | float | str) and not isinstance(action.default, bool)
        if not shown or "default" in (action.help or "") or action.default == argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with this project's three rules: no abbreviated flags (`--mod` is no `--model`), each
    flag's default shown in --help from the code (`DefaultsFormatter`), and a usage error is one line naming the
    flag and pointing at --help, exit code 2 (argparse's own prints its usage block first). With
    `exit_on_error=False` every usage error is a `UsageError` instead, for a script that checks another command's
    flags before running it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, formatter_class=DefaultsFormatter, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        try:
            return super().parse_known_args(args, namespace)
        except argparse.ArgumentError as error:  # raised, not reported, only under exit_on_error=False
            raise UsageError(str(error)) from None

    def error(self, message: str):
        if not self.exit_on_error:
            raise UsageError(message)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def number(
    kind: type,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> Callable[[str], float]:
    """argparse type: a finite number of `kind` within the given bounds, e.g. `number(float, at_least=0, below=1)`."""
    bounds = [
        (above, lambda value: value > above, f"greater than {above}"),
        (at_least, lambda value: value >= at_least, f"at least {at_least}"),
        (below, lambda value: value < below, f"below {below}"),
        (at_most, lambda value: value <= at_most, f"at most {at_most}"),
    ]
    bounds = [(check, words) for bound, check, words in bounds if bound is not None]
    allowed = " and ".join(words for _, words in bounds)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None
        if not math.isfinite(value) or not all(check(value) for check, _ in bounds):
            raise argparse.ArgumentTypeError(f"must be {allowed or 'a finite number'}, got {text}")
        return value

    return parse


positive_int = number(int, above=0)
positive_float = number(float, above=0)
seed = number(int, at_least=0, below=2**32)


def memory_bytes(device: torch.device) -> int | None:
    """Memory that training on `device` can use, or None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps":
        return torch.mps.recommended_max_memory()
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf: ask the kernel directly
        return windows_memory_bytes()


def windows_memory_bytes() -> int | None:
    """Physical memory on Windows (GlobalMemoryStatusEx), or None elsewhere or if it cannot be read."""
    try:
        import ctypes

        class MemoryStatus(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong)] + [
                (name, ctypes.c_ulonglong)
                for name in ("total", "free", "page_total", "page_free", "virtual_total", "virtual_free", "extended")
            ]

        status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
        return status.total if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)) else None
    except (AttributeError, OSError):  # not Windows
        return None


def check_fits(spec: str, batch_size: int, device: torch.device) -> None:
    """Refuse a model that could not train at `batch_size` in the device's memory, with the estimate."""
    needed, available = training_memory_bytes(parse_spec(spec), batch_size), memory_bytes(device)
    if available is not None and needed > available:
        raise argparse.ArgumentTypeError(
            f"{spec!r} needs about {needed / 2**30:,.1f} GiB to train at batch size {batch_size}, more than the "
            f"{available / 2**30:,.1f} GiB of {device.type} memory here; use narrower layers or a smaller batch"
        )


def model_spec(text: str) -> str:
    """argparse type: a preset name or a layer spec that model.py accepts and that fits in memory for one image."""
    try:
        check_fits(text, 1, torch.device("cpu"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_help(item: dataclasses.Field) -> str:
    """The end of a recipe flag's help: its default, and the presets and layer specs that train with other values."""
    if item.name == "model":
        return f" (default: the preset {item.default})"
    if isinstance(item.default, bool) or item.default is None:
        return ""
    ours = getattr(for_model(), item.name)
    others: dict = {}  # value -> who trains with it
    for name in PRESETS:
        value = getattr(for_model(name), item.name)
        if value != ours:
            others.setdefault(value, []).append(name)
    if item.default != ours:
        others.setdefault(item.default, []).append("a layer spec")
    rest = "".join(f"; {', '.join(names)}: {shown(value)}" for value, names in others.items())
    return f" (default: {shown(ours)}{rest})"


def add_recipe_flag(parser: argparse.ArgumentParser, item: dataclasses.Field) -> None:
    """The flag of one Recipe field: --no-NAME or --NAME for a switch, else --NAME VALUE checked as the field says.
    Its default is left out of the namespace, so that parse_args knows which values were given."""
    check = dict(item.metadata)
    words = check.pop("help").format(presets=", ".join(f"{name} = {preset.spec}" for name, preset in PRESETS.items()))
    options = dict(dest=item.name, default=argparse.SUPPRESS, help=(words + default_help(item)).replace("%", "%%"))
    name = item.name.replace("_", "-")
    if isinstance(item.default, bool):
        action = "store_false" if item.default else "store_true"
        parser.add_argument(f"--no-{name}" if item.default else f"--{name}", action=action, **options)
    elif "choices" in check:
        parser.add_argument(f"--{name}", choices=check["choices"], **options)
    else:
        kind = check.pop("kind")
        parser.add_argument(f"--{name}", type=model_spec if kind == "spec" else number(kind, **check), **options)


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """train.py's flags for what it trains: one per `Recipe` field, in the fields' order."""
    for item in dataclasses.fields(Recipe):
        add_recipe_flag(parser, item)


def given_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe a command line asks for: the --model preset's own (`for_model`), with the recipe flags given on
    top. Those flags are taken out of `args`."""
    given = {item.name: vars(args).pop(item.name) for item in dataclasses.fields(Recipe) if item.name in args}
    return for_model(**given)
