"""train.py's recipe and loop: presets bring their own recipe, every recipe field is a flag, a recipe survives the
checkpoint, clean epochs, deterministic runs, weight averaging and a final fit on all 60,000 images."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

import train
from compact_mnist.checkpoint import load_model
from compact_mnist.data import load_mnist
from compact_mnist.goals import recorded_recipe
from compact_mnist.recipe import Recipe, for_model
from conftest import FEWER, load_fewer, train_into
from model import PRESETS, Net
from train import evaluate, make_optimizer, parse_args, trained_recipe


def test_a_preset_brings_its_own_recipe_and_a_flag_still_wins():
    assert parse_args([]).recipe.label_smoothing == 0.1
    assert parse_args(["--model", "tiny"]).recipe.label_smoothing == 0.0
    assert parse_args(["--model", "tiny", "--label-smoothing", "0.05"]).recipe.label_smoothing == 0.05
    assert parse_args(["--model", "4,6,M,8,10,M,10,12"]).recipe.label_smoothing == 0.1, "a spec is not a preset"


def test_a_layer_spec_trains_the_default_recipe_so_the_defaults_spec_trains_the_default():
    assert Recipe() == for_model() == parse_args([]).recipe, "one default: the type's, the command line's"
    spec = parse_args(["--model", PRESETS["default"]]).recipe
    assert dataclasses.replace(spec, model="default") == parse_args([]).recipe, "--model SPEC changes the network only"


def test_every_recipe_field_is_a_flag_and_its_help_gives_each_presets_own_value(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for item in dataclasses.fields(Recipe):
        name = item.name.replace("_", "-")
        assert (f"--no-{name}" if item.default is True else f"--{name}") in text, item.name
    assert "affine augmentation; 0 is off (default: 1.25; small, tiny, micro: 0)" in text


def test_a_recipe_survives_the_checkpoint_and_metrics_json():
    recipe = for_model("tiny", lr=0.3, train_limit=500)
    assert Recipe.recorded(recipe.as_dict()) == recipe, "the checkpoint's dict rebuilds it for --resume"
    recorded = recorded_recipe(json.loads(json.dumps(trained_recipe(recipe))))
    assert recorded == dataclasses.replace(recipe, model=PRESETS["tiny"]), "metrics.json records the layer spec"
    older = {key: value for key, value in recipe.as_dict().items() if key not in ("elastic", "views")}
    assert Recipe.recorded(older).elastic == 0, "a record from before elastic existed trained without it"
    assert not Recipe.recorded(older).views, "a model saved before test-time views existed reads without them"


def test_every_preset_reads_with_views_and_a_flag_turns_them_off_or_on():
    from model import PRESETS

    assert all(parse_args(["--model", name]).recipe.views for name in PRESETS)
    assert not parse_args(["--model", "tiny", "--no-views"]).recipe.views
    assert not parse_args(["--no-views"]).recipe.views
    assert parse_args(["--model", "micro", "--views"]).recipe.views, "commands recorded with --views still run"


def test_clean_epochs_train_the_last_epochs_on_unaugmented_images(monkeypatch):
    recipe = parse_args(
        ["--epochs", "3", "--clean-epochs", "1", "--batch-size", "8", "--model", "micro", "--device", "cpu"]
    ).recipe
    data = SimpleNamespace(train_images=torch.randn(16, 1, 28, 28), train_labels=torch.randint(0, 10, (16,)))
    model = Net(recipe.model)
    optimizer, scheduler = make_optimizer(model, recipe, steps_per_epoch=2)
    augmented_in = []
    monkeypatch.setattr(train, "augment", lambda images, generator, **_: augmented_in.append(epoch) or images)
    for epoch in (1, 2, 3):
        train.train_one_epoch(model, data, optimizer, scheduler, torch.Generator(), recipe, epoch)
    assert augmented_in == [1, 1, 2, 2]


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical_and_seeds_matter(data_dir):
    data = load_fewer(data_dir, torch.device("cpu"), train_limit=2000)

    def weights(seed: int) -> dict:
        recipe = parse_args(["--epochs", "1", "--train-limit", "2000", "--deterministic", "--seed", str(seed)]).recipe
        return train.fit(recipe, data, torch.device("cpu"))[0].state_dict()

    try:
        first, again, other_seed = weights(0), weights(0), weights(1)
    finally:
        torch.use_deterministic_algorithms(False)  # the recipe's switch is process-wide: leave it as the tests had it
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other_seed[name]) for name in first)


@pytest.mark.slow
def test_weight_averaging_saves_the_average_and_reports_the_raw_weights_beside_it(tmp_path, data_dir, mnist):
    code = train_into(tmp_path, data_dir, "--epochs 1 --train-limit 3000 --batch-size 128 --ema 0.9")
    assert code == 0
    model, meta = load_model(tmp_path / "mnist_model.pth")
    _, accuracy = evaluate(model, mnist.test_images[:FEWER], mnist.test_labels[:FEWER])
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=0.011), "the saved weights are the evaluated ones"
    assert meta["raw_test_accuracy"] is not None and meta["raw_test_accuracy"] != meta["test_accuracy"]
    assert "raw_val_acc" in json.loads((tmp_path / "metrics.json").read_text())["history"][0]


@pytest.mark.slow
def test_views_save_a_model_that_reads_with_them_and_the_plain_networks_figures_beside(tmp_path, data_dir, mnist):
    code = train_into(tmp_path, data_dir, "--epochs 1 --train-limit 3000 --batch-size 128 --views")
    assert code == 0
    model, meta = load_model(tmp_path / "mnist_model.pth")
    images, labels = mnist.test_images[:FEWER], mnist.test_labels[:FEWER]
    assert model.views and evaluate(model, images, labels)[1] == pytest.approx(meta["test_accuracy"], abs=0.011)
    model.views = False
    assert evaluate(model, images, labels)[1] == pytest.approx(meta["plain_test_accuracy"], abs=0.011)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert history[-1]["test_acc"] == meta["plain_test_accuracy"], "each epoch's figures are the network's alone"
    assert meta["plain_val_accuracy"] == history[-1]["val_acc"]
    model.views = True
    val_images, val_labels = mnist.val_images[:FEWER], mnist.val_labels[:FEWER]
    assert evaluate(model, val_images, val_labels)[1] == pytest.approx(meta["val_accuracy"], abs=0.011)


@pytest.mark.slow
def test_a_final_fit_trains_on_all_60000_images_and_claims_no_validation_figure(tmp_path, data_dir):
    data = load_mnist(data_dir, torch.device("cpu"), download=False, val_size=0)
    assert len(data.train_labels) == 60_000 and len(data.val_labels) == 0
    code = train_into(tmp_path, data_dir, "--epochs 1 --train-limit 3000 --val-size 0")
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["meta"]["val_accuracy"] is None and metrics["history"][0]["val_acc"] is None
    assert metrics["meta"]["test_accuracy"] > 10


def test_the_curves_say_what_the_training_loss_was_measured_on(tmp_path, monkeypatch):
    titles = []
    monkeypatch.setattr(train, "save_figure", lambda figure, path: titles.append(figure.axes[0].get_title()))
    history = [dict(epoch=1, lr=0.1, train_loss=1.0, train_acc=90.0, val_loss=0.5, val_acc=95.0)]
    history[0] |= dict(test_loss=0.5, test_acc=95.0)
    train.save_curves(history, tmp_path / "curves.png", for_model("default"))
    train.save_curves(history, tmp_path / "curves.png", for_model("micro"))
    train.save_curves(history, tmp_path / "curves.png", for_model("micro", augment=False), own_loss=False)
    assert titles == [
        "loss (train: augmented, label-smoothed)",
        "loss (train: augmented but the last 5 epochs, cross-entropy)",
        "loss (train: un-augmented, the method's loss)",
    ]
