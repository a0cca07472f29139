"""Fixtures shared by the test files: the MNIST folder and the data set loaded once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from data import MnistTensors, load_mnist, resolve_data_dir


def pytest_report_header() -> str:
    """Say which device the tests saw, so a CI log on macOS shows whether MPS was there."""
    from train import pick_device

    auto = pick_device("auto", argparse.ArgumentParser())
    return f"device: train.py --device auto picks {auto} here (the tests that train pass --device cpu)"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The MNIST folder; a missing data set fails the test with the place it looked, never skips it."""
    folder = resolve_data_dir(None)
    if not (folder / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.fail(f"MNIST not found in {folder.resolve()}/MNIST/raw; set MNIST_DATA_DIR to the folder holding MNIST/")
    return folder


@pytest.fixture(scope="session")
def mnist(data_dir) -> MnistTensors:
    return load_mnist(data_dir, torch.device("cpu"), download=False)
