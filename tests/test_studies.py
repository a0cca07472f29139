"""The studies: the seed sweep and its report, the run cache that reads a finished run back, and the ablation."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from compact_mnist.cli import UserError
from model import PRESETS

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


@pytest.mark.slow
def test_seed_sweep_reports_each_seed_and_resumes_finished_ones(tmp_path, capsys):
    from scripts import seeds

    sweep = ["--seeds", "3", "4", "--name", "quick", "--jobs", "2", "--runs", str(tmp_path / "runs")]
    sweep += [
        "--report",
        str(tmp_path / "seeds.json"),
        "--",
        "--epochs",
        "1",
        "--train-limit",
        "1500",
        "--device",
        "cpu",
    ]
    assert seeds.main(sweep) == 0
    entry = json.loads((tmp_path / "seeds.json").read_text())["quick"]
    assert [run["seed"] for run in entry["runs"]] == [3, 4]
    assert set(entry["summary"]["test_acc"]) == {"mean", "std", "min", "max"}
    assert "| **mean** |" in (tmp_path / "seeds.md").read_text()
    capsys.readouterr()
    assert seeds.main(sweep) == 0
    assert capsys.readouterr().out.count("already trained") == 2


def test_a_finished_run_is_read_back_only_for_the_recipe_it_trained(tmp_path):
    from scripts.launch import finished_run
    from train import parse_args, trained_recipe

    flags = ["--epochs", "1", "--device", "cpu"]
    (tmp_path / "metrics.json").write_text(json.dumps({"meta": trained_recipe(parse_args(flags).recipe)}))
    assert finished_run(flags, tmp_path)
    assert finished_run([*flags, "--model", "default", "--lr", "0.4"], tmp_path), "the same recipe, spelled out"
    assert finished_run([*flags, "--model", PRESETS["default"]], tmp_path), "the default's spec trains its recipe"
    assert finished_run([*flags, "--model", "small"], tmp_path) is None
    assert finished_run([*flags, "--lr", "0.3"], tmp_path) is None
    assert finished_run(["--epochs", "0"], tmp_path) is None, "flags that train.py refuses"


def test_seed_entries_go_to_the_committed_report_only_for_presets():
    from scripts.seeds import default_report

    assert default_report("tiny") == ROOT / "reports" / "seeds.json"
    assert default_report("candidate") == ROOT / "runs" / "seeds.json", "an ad-hoc name never touches reports/"


def test_seed_report_compares_averaged_and_raw_weights_seed_by_seed():
    from scripts.seeds import summarize

    averaged = [
        dict(val_acc=99.5, test_acc=99.4, raw_val_acc=99.4, raw_test_acc=99.3),
        dict(val_acc=99.6, test_acc=99.5, raw_val_acc=99.3, raw_test_acc=99.5),
    ]
    gain = summarize(averaged)["averaging_val_gain"]
    assert gain["mean"] == pytest.approx(0.2) and gain["standard_error"] == pytest.approx(0.1)
    plain = [dict(val_acc=99.5, test_acc=99.4), dict(val_acc=99.6, test_acc=99.5)]
    assert set(summarize(plain)) == {"val_acc", "test_acc"}


def test_seed_report_compares_two_entries_on_the_seeds_they_share():
    from scripts.seeds import compare

    baseline = dict(runs=[dict(seed=0, val_acc=99.4), dict(seed=1, val_acc=99.5), dict(seed=2, val_acc=99.0)])
    runs = [dict(seed=0, val_acc=99.5), dict(seed=1, val_acc=99.8), dict(seed=7, val_acc=90.0)]
    gain = compare(runs, baseline, "before")
    assert gain["name"] == "before" and gain["val_gain"]["seeds"] == 2
    assert gain["val_gain"]["mean"] == pytest.approx(0.2) and gain["val_gain"]["standard_error"] == pytest.approx(0.1)
    with pytest.raises(UserError, match="fewer than 2 of these seeds"):
        compare(runs[2:], baseline, "before")


def test_every_ablation_is_a_recipe_train_py_accepts_and_changes_only_what_its_flags_name():
    from scripts.ablation import ABLATIONS
    from train import parse_args, trained_recipe

    def values(flags: list[str]) -> dict:  # every recipe value, the model as its layer spec
        trained = trained_recipe(parse_args([*flags, "--device", "cpu"]).recipe)
        return dict(model=trained["spec"], epochs=trained["epochs"], seed=trained["seed"], **trained["hyperparameters"])

    default = values([])
    for name, (_, flags) in ABLATIONS.items():
        recipe = values(flags)
        changed = {field for field in default if recipe[field] != default[field]}
        named = {flag.removeprefix("--").removeprefix("no-").replace("-", "_") for flag in flags if flag[:2] == "--"}
        assert bool(changed) == (name != "default") and changed <= named, (name, changed)


def test_the_ablation_retrains_some_entries_only_beside_the_others_figures(tmp_path, capsys):
    from conftest import cli
    from scripts import ablation

    out = ["--out", str(tmp_path / "ablation.json")]
    code, stderr = cli(ablation.main, ["--entries", "flatten-head", *out], capsys)
    assert code == 2 and "holds no entry default, no-batchnorm" in stderr and "(--entries)" in stderr
    code, stderr = cli(ablation.main, ["--entries", "default", *out], capsys)
    assert code == 2 and "retrain them all with it" in stderr


def test_a_view_moves_the_digit_one_pixel_and_the_edge_that_comes_in_repeats_the_old_one():
    import torch

    from scripts.views import SHIFTS, shifted

    images = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    assert torch.equal(shifted(images, 0, 0), images)
    right, down = shifted(images, 1, 0), shifted(images, 0, 1)
    assert torch.equal(right[..., 1:], images[..., :-1]) and torch.equal(right[..., 0], images[..., 0])
    assert torch.equal(down[..., 1:, :], images[..., :-1, :]) and torch.equal(down[..., 0, :], images[..., 0, :])
    assert torch.equal(shifted(images, -1, 0)[..., :-1], images[..., 1:])
    assert len(set(SHIFTS)) == 5 and (0, 0) in SHIFTS


@pytest.mark.slow
def test_the_views_screen_pairs_the_gain_by_model_and_times_both_readings(tmp_path, data_dir, monkeypatch):
    from conftest import load_fewer
    from scripts import views

    monkeypatch.setattr(views, "load_mnist", load_fewer)  # the first 1,000 validation images
    out = tmp_path / "views.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert views.main([str(MODEL_PATH), str(MODEL_PATH), "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    seed = torch.load(MODEL_PATH, weights_only=True)["meta"]["seed"]
    assert [row["seed"] for row in report["models"]] == [seed, seed]
    first, second = report["models"]
    gain = first["val_views"] - first["val_plain"]
    assert report["val_gain"] == dict(mean=gain, standard_error=0, seeds=2), "one model twice: the same gain twice"
    assert report["adopt"] == (gain > 0) and first == second
    assert report["seconds_per_image"]["views"] > report["seconds_per_image"]["plain"] > 0
    assert f"{gain:+.3f}%" in out.with_suffix(".md").read_text()
