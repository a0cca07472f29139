"""Command-line value checks shared by every script, so bad input stops at the usage line.

Each function here is an argparse `type`: it turns the text into a value or raises
`argparse.ArgumentTypeError`, which argparse prints as one line naming the flag, with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

import torch

from model import parse_spec, training_memory_bytes


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with this project's two rules: no abbreviated flags (`--mod` is no `--model`), and a
    usage error is one line naming the flag and pointing at --help, exit code 2 (argparse's own prints its
    usage block first)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
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
fraction = number(float, at_least=0, below=1)  # dropout, label smoothing, momentum
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
