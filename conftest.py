"""The kit's fixtures (the MNIST folder, the data set and the committed model, each loaded once) and the rule for a
test of a layer whose extra is not installed: skipped with one line naming the extra, or failed where every test
must run ($COMPACT_MNIST_TEST_ALL, which .ci/run and the workflow set). The layers' own helpers (Chromium, servers)
are in tests/support.py."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
import torch

from compact_mnist.checkpoint import COMMITTED_MODEL, load_model
from compact_mnist.cli import UserError, run_cli
from compact_mnist.data import VAL_SIZE, MnistTensors, ensure_downloaded, load_mnist, load_test_split, resolve_data_dir
from compact_mnist.layers import LAYERS, ROOT, missing_packages, part_of
from model import Net


def cli(main, argv: list[str], capsys) -> tuple[int, str]:
    """Run a script's main as its command line does; return the exit code and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr().err


EVERYTHING = "COMPACT_MNIST_TEST_ALL"  # set (to 1) where nothing may be skipped for want of a package or program


def missing(message: str, module_level: bool = False) -> NoReturn:
    """A test that needs what this machine lacks (a layer's packages, a browser, a database server, Node): skipped
    with `message`, except where $COMPACT_MNIST_TEST_ALL is set, where that is a failure."""
    if os.environ.get(EVERYTHING):
        pytest.fail(f"{message} (${EVERYTHING} is set: every test must run)", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)


def needs(layer: str, module_level: bool = False) -> None:
    """Go on only where the packages of `layer` (compact_mnist/layers.py) and of the layers it builds on are
    installed; else `missing`, naming the extra to install."""
    absent = missing_packages(layer)
    if absent:
        missing(f'needs the {layer} extra ({", ".join(absent)}): pip install -e ".[{layer}]"', module_level)


class LayerTests(pytest.Module):
    """The test file of a layer: collected only where the layer's extra is installed (its imports need it)."""

    def __init__(self, *args: Any, layer: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layer = layer

    def collect(self) -> Any:
        needs(self.layer, module_level=True)
        return super().collect()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    layer = next((name for name, layer in LAYERS.items() if module_path.name in layer.tests), None)
    return LayerTests.from_parent(parent, path=module_path, layer=layer) if layer else None


def of_its_layer(command: str) -> Any:
    """A parameter naming a command ("export", "export.py", "scripts.seeds") that needs its layer's extra where the
    command belongs to a layer."""
    part = part_of(command.removesuffix(".py"))
    return command if part == "kit" else pytest.param(command, marks=pytest.mark.needs(part))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs("export")`: the test needs that layer's extra."""
    for mark in item.iter_markers("needs"):
        for layer in mark.args:
            needs(layer)


FEWER = 1_000  # validation and test images that a quick run evaluates after each epoch, instead of 5,000 and 10,000


@functools.cache
def mnist_once(data_dir: Path, val_size: int) -> MnistTensors:
    return load_mnist(data_dir, torch.device("cpu"), download=False, val_size=val_size)


def load_fewer(
    data_dir: Path,
    device: torch.device,
    train_limit: int | None = None,
    download: bool = True,
    val_size: int = VAL_SIZE,
) -> MnistTensors:
    """train.py's load_mnist, read once per session, keeping only the first FEWER validation and test images."""
    full = mnist_once(data_dir, val_size)
    return MnistTensors(
        full.train_images[:train_limit], full.train_labels[:train_limit],
        full.val_images[:FEWER], full.val_labels[:FEWER], full.test_images[:FEWER], full.test_labels[:FEWER],
    )  # fmt: skip


@functools.cache
def test_split_once(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return load_test_split(data_dir)


@contextlib.contextmanager
def fewer_images() -> Any:
    """train.py and evaluate.py in this process evaluate FEWER images: for a test that needs "it evaluates", not the
    figure. The training images are those train.py takes, so weights are as a full run's."""
    import evaluate
    import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "load_mnist", load_fewer)
        patch.setattr(evaluate, "load_test_split", lambda data_dir: tuple(t[:FEWER] for t in test_split_once(data_dir)))
        yield


def train_into(folder: Path, data_dir: Path, flags: str) -> int:
    """train.py's exit code for `flags`, training on the CPU into `folder`, in this process, evaluating FEWER images."""
    import train

    with fewer_images():
        return train.main([*flags.split(), "--device", "cpu", "--data-dir", str(data_dir), "--out-dir", str(folder)])


def run_script(*args: str) -> subprocess.CompletedProcess:
    """A project script run as its command line runs it, from the project's folder."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)


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
    return mnist_once(data_dir, VAL_SIZE)


@pytest.fixture(scope="session")
def model() -> Net:
    """The committed model, in eval mode."""
    return load_model(COMMITTED_MODEL)[0]
