"""The specification: each preset within its parameter budget; BatchNorm, Dropout, a global average pool and a
linear layer; (N, 10) log-probabilities out; the committed model at least 99.40% on all 10,000 test images, as it
reads and, where it reads with test-time views, without them too; at most 20 epochs of SGD; one short training run
that learns. The rest of the suite is in tests/, by subject.

Data tests read MNIST from $MNIST_DATA_DIR (default data/); `pytest --checkpoint PATH` tests another model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from compact_mnist.checkpoint import COMMITTED_MODEL, load_model
from compact_mnist.files import load_checkpoint
from compact_mnist.goals import GOALS, PARAMETER_LIMIT, TARGET_ACCURACY
from conftest import train_into
from model import PRESETS, Net, count_parameters
from train import evaluate, make_optimizer, parse_args

ROOT = Path(__file__).resolve().parent


# The model


@pytest.mark.parametrize("preset", PRESETS)
def test_parameter_count_is_within_budget(preset):
    params, budget = count_parameters(Net(preset)), GOALS[preset].budget
    assert params < PARAMETER_LIMIT and params <= budget, f"{preset}: {params:,} parameters, budget {budget:,}"


def test_model_has_batchnorm_dropout_gap_and_linear():
    kinds = {type(module) for module in Net().modules()}
    assert nn.BatchNorm2d in kinds
    assert kinds & {nn.Dropout, nn.Dropout2d}
    assert nn.AdaptiveAvgPool2d in kinds
    assert nn.Linear in kinds


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_output_is_n_by_10_log_probabilities(preset, batch):
    output = Net(preset).eval()(torch.randn(batch, 1, 28, 28))
    assert output.shape == (batch, 10)
    torch.testing.assert_close(output.exp().sum(1), torch.ones(batch))


def test_default_recipe_is_at_most_20_epochs_of_sgd_with_one_cycle():
    recipe = parse_args([]).recipe
    assert recipe.epochs <= 20
    optimizer, scheduler = make_optimizer(Net(), recipe, steps_per_epoch=10)
    assert isinstance(optimizer, torch.optim.SGD)
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)


def test_the_model_loads_safely_and_matches_its_parameter_count(model_under_test):
    checkpoint = torch.load(model_under_test, map_location="cpu", weights_only=True)
    model = Net(checkpoint["meta"]["spec"])
    model.load_state_dict(checkpoint["state_dict"])
    assert checkpoint["meta"]["params"] == count_parameters(model)
    if model_under_test == COMMITTED_MODEL:
        assert checkpoint["meta"]["model"] == "default", "the committed model is the default preset"


def below_target(accuracy: float, meta: dict, path: Path) -> str:
    """What a user whose retrained model missed the target needs: the measurement, what was trained, how the
    recipe does over seeds, and what to do that is not fishing for a passing seed on the test set."""
    recipe = ", ".join(f"{key} {value}" for key, value in meta.get("hyperparameters", {}).items())
    report = json.loads((ROOT / "reports" / "seeds.json").read_text())
    entry = next((entry for entry in report.values() if meta.get("spec") in " ".join(entry["train_args"])), None)
    entry = entry or report.get(meta.get("model"))
    spread = "reports/seeds.json has no entry for this network"
    if entry:
        test = entry["summary"]["test_acc"]
        spread = (
            f"over {len(entry['runs'])} seeds this network gives mean {test['mean']:.2f}%, worst "
            f"{test['min']:.2f}%, std {test['std']:.3f} (reports/seeds.json)"
        )
    return (
        f"measured {accuracy:.2f}% on the 10,000 test images, under the {TARGET_ACCURACY:.2f}% target. The checkpoint "
        f"{path} is --model {meta.get('model')} ({meta.get('spec')}), --seed {meta.get('seed')}, "
        f"{meta.get('epochs')} epochs, {recipe}; {spread}. One seed lands anywhere in that spread, and retraining "
        "until one passes would choose the model on the test set: report the recipe over seeds instead "
        "(python scripts/seeds.py), and restore the committed model with: git checkout models/"
    )


def test_the_model_reaches_target_on_the_full_test_set(mnist, model_under_test):
    model, meta = load_model(model_under_test)
    assert len(mnist.test_labels) == 10_000
    _, accuracy = evaluate(model, mnist.test_images, mnist.test_labels)
    assert accuracy >= TARGET_ACCURACY, below_target(accuracy, meta, model_under_test)
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=0.02), "metadata disagrees with the measurement"


def test_a_model_that_reads_with_views_reaches_target_without_them_too(mnist, model_under_test):
    model, meta = load_model(model_under_test)
    if not model.views:
        pytest.skip("this model reads without test-time views: the test above measured it")
    model.views = False
    _, accuracy = evaluate(model, mnist.test_images, mnist.test_labels)
    assert accuracy >= TARGET_ACCURACY, "the network alone: " + below_target(accuracy, meta, model_under_test)
    assert accuracy == pytest.approx(meta["plain_test_accuracy"], abs=0.02), "metadata disagrees with the measurement"


def test_a_model_under_target_is_told_what_was_trained_how_seeds_vary_and_what_to_do():
    meta = load_checkpoint(COMMITTED_MODEL)["meta"]
    message = below_target(99.31, meta, COMMITTED_MODEL)
    assert message.startswith(f"measured 99.31% on the 10,000 test images, under the {TARGET_ACCURACY:.2f}% target")
    assert f"--seed {meta['seed']}" in message and f"lr {meta['hyperparameters']['lr']}" in message
    assert "seeds this network gives mean" in message and "scripts/seeds.py" in message
    assert "another --seed" not in message, "retraining until a seed passes is choosing on the test set"
    assert "git checkout models/" in message


def test_the_metrics_beside_the_model_describe_it(model_under_test):
    metrics = json.loads((model_under_test.parent / "metrics.json").read_text())
    meta = load_checkpoint(model_under_test)["meta"]
    assert metrics["meta"] == meta
    assert len(metrics["history"]) == meta["epochs"]
    plain = "plain_test_accuracy" if meta["hyperparameters"].get("views") else "test_accuracy"
    assert metrics["history"][-1]["test_acc"] == meta[plain], "each epoch's figures are the network's alone"


@pytest.mark.slow
def test_short_training_run_saves_a_loadable_model(tmp_path, data_dir):
    code = train_into(tmp_path, data_dir, "--epochs 2 --train-limit 8000 --batch-size 128")
    assert code == 0
    model, meta = load_model(tmp_path / "mnist_model.pth")
    assert meta["epochs"] == 2 and meta["params"] == count_parameters(model)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    # Two epochs on 8,000 images are far from converged, but a broken loop stays near 10%.
    assert meta["test_accuracy"] >= 95.0
