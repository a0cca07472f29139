"""Whether a network can train on a device: its memory estimated from the layer spec alone, before any tensor is
allocated, against the memory the device has, so that too wide a network is refused in one line, not killed."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from model import IMAGE_SIZE, KERNEL, layer_kind, output_size, parse_spec


def training_memory_bytes(items: list[str], batch_size: int) -> int:
    """A lower bound on the memory (float32 bytes) that training `items` at `batch_size` needs.

    Computed from the spec alone, before any tensor is allocated: each block keeps its convolutions'
    outputs and its BatchNorm's output for the backward pass, each pool its output; weights have a
    gradient and momentum.
    """
    channels, size, params, floats_per_image = 1, IMAGE_SIZE, 0, 0
    for item in items:
        kind, width = layer_kind(item)
        size = output_size(kind, size)
        if kind == "pool":
            floats_per_image += channels * size * size
            continue
        if kind == "separable":
            params += 9 * channels
            floats_per_image += channels * size * size
        params += KERNEL[kind] ** 2 * channels * width + 2 * width
        channels = width
        floats_per_image += 2 * channels * size * size
    return 4 * (3 * params + batch_size * floats_per_image)


def memory_bytes(device: torch.device) -> int | None:
    """Memory that training on `device` can use, or None where it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "mps":
        return torch.mps.recommended_max_memory()
    if sys.platform == "win32":  # no sysconf: ask the kernel directly
        return windows_memory_bytes()
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def windows_memory_bytes() -> int | None:
    """Physical memory on Windows (GlobalMemoryStatusEx), or None if it cannot be read."""
    if sys.platform != "win32":
        return None
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
