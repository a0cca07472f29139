"""Fixtures shared by the test files: the MNIST folder and the data set loaded once."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

import pytest
import torch

from compact_mnist.checkpoint import COMMITTED_MODEL
from compact_mnist.cli import UserError, run_cli
from compact_mnist.data import MnistTensors, ensure_downloaded, load_mnist, resolve_data_dir


def cli(main, argv: list[str], capsys) -> tuple[int, str]:
    """Run a script's main as its command line does; return the exit code and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr().err


def missing_program(message: str) -> NoReturn:
    """A test that needs a program this machine lacks (a browser, a database server, Node): skipped with
    `message`, except under CI, which installs them, where that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run these tests)")
    pytest.skip(message)


def chromium(playwright):
    """A headless Chromium for the browser tests (compact_mnist.webpage.launch_chromium). Where there is none the
    test is skipped, except under CI, where that is a failure."""
    from compact_mnist.webpage import NoBrowser, launch_chromium

    try:
        return launch_chromium(playwright)
    except NoBrowser as error:
        missing_program(str(error))


def require_current(what: str, changed: list[str], refresh: str) -> None:
    """Pass when nothing `what` was made from has `changed`. Where a changed file differs from the last commit (a
    user's own retrain) the test is skipped with the command that refreshes `what`; where every changed file is
    as committed, `what` was committed stale, and the test fails."""
    from compact_mnist.stamps import committed

    if not changed:
        return
    message = f"{what} was made from an earlier {', '.join(changed)}; {refresh} refreshes it"
    if all(committed(path) for path in changed):
        pytest.fail(message)
    pytest.skip(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--checkpoint",
        type=Path,
        default=None,
        help="the model whose accuracy and metrics test_model.py checks (default: $MNIST_CHECKPOINT, else the "
        "committed models/mnist_model.pth)",
    )


@pytest.fixture(scope="session")
def model_under_test(request) -> Path:
    """The checkpoint the accuracy tests measure: `pytest --checkpoint runs/mine/mnist_model.pth` after a
    retrain with --out-dir, else $MNIST_CHECKPOINT, else the committed model."""
    return request.config.getoption("--checkpoint") or Path(os.environ.get("MNIST_CHECKPOINT") or COMMITTED_MODEL)


def pytest_report_header() -> str:
    """Say which device the tests saw, so a CI log on macOS shows whether MPS was there."""
    from train import pick_device

    auto = pick_device("auto", argparse.ArgumentParser())
    return f"device: train.py --device auto picks {auto} here (the tests that train pass --device cpu)"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The MNIST folder ($MNIST_DATA_DIR, else data/), downloaded there first as train.py does when it is missing;
    a data set that can be neither found nor downloaded fails the test with train.py's message, never skips it."""
    folder = resolve_data_dir(None)
    try:
        ensure_downloaded(folder)
    except UserError as error:
        pytest.fail(str(error))
    return folder


@pytest.fixture(scope="session")
def mnist(data_dir) -> MnistTensors:
    return load_mnist(data_dir, torch.device("cpu"), download=False)
