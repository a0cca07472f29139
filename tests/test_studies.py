"""The studies: the seed sweep and its report, the run cache that reads a finished run back, and the ablation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
