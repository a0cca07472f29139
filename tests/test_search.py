"""scripts/search.py: an Optuna study that continues, is shared between processes, respects a parameter
budget, records failures and never reads the test set."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from compact_mnist.cli import UserError
from conftest import cli
from scripts import search

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--", "--epochs", "1", "--train-limit", "1000", "--device", "cpu"]


def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'study.db').as_posix()}"


def study_flags(study: str, tmp_path: Path) -> list[str]:
    """A study of one seed per trial in this test's own database and runs folder."""
    return ["--study", study, "--seeds", "1", "--storage", storage_url(tmp_path), "--runs", str(tmp_path / "runs")]


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


@pytest.fixture(scope="module")
def shared_study(tmp_path_factory) -> Path:
    """A study of three trials: one from a first call, then one each from two processes that continue it at once,
    then a call that only writes the report. Its folder holds study.db and reports/."""
    folder = tmp_path_factory.mktemp("shared")
    base = study_flags("shared", folder)
    with contextlib.redirect_stdout(io.StringIO()):  # a search in this process prints: keep it off the test's output
        assert search.main([*base, "--trials", "1", *TINY]) == 0
    command = [sys.executable, "scripts/search.py", *base, "--trials", "1", *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    with contextlib.redirect_stdout(io.StringIO()):
        assert search.main([*base, "--trials", "0", "--report", "--report-dir", str(folder / "reports"), *TINY]) == 0
    return folder


@pytest.mark.slow
def test_a_second_call_and_two_processes_at_once_continue_one_study(shared_study):
    trials = complete(optuna.load_study(study_name="shared", storage=storage_url(shared_study)))
    assert sorted(trial.number for trial in trials) == [0, 1, 2]
    for trial in trials:
        val_acc, params, seconds = trial.values
        assert 0 <= val_acc <= 100 and params == trial.user_attrs["params"] and seconds > 0


@pytest.mark.slow
def test_the_report_holds_only_validation_and_the_studys_pace(shared_study):
    trials = complete(optuna.load_study(study_name="shared", storage=storage_url(shared_study)))
    reports = shared_study / "reports"
    report = json.loads((reports / "search-shared.json").read_text())
    assert report["pareto_front"] and {row["trial"] for row in report["pareto_front"]} <= {t.number for t in trials}
    assert "test" not in json.dumps(report).replace("--train-limit", "")
    assert report["trained_trials"] == 3 and report["wall_clock_hours"] > 0, "the study's pace is measured"
    assert (reports / "search-shared.png").stat().st_size > 0
    assert "3 trials trained in" in (reports / "search-shared.md").read_text()
    assert "| layer spec |" in (reports / "search-shared.md").read_text()


@pytest.mark.slow
def test_a_study_refuses_trials_of_another_kind(shared_study, capsys):
    base = [*study_flags("shared", shared_study), "--trials", "1"]
    code, stderr = cli(search.main, [*base, "--", "--epochs", "2", "--train-limit", "1000", "--device", "cpu"], capsys)
    assert code == 2
    assert "trains other trials (epochs 1 there, 2 here)" in stderr
    assert "(`-- --epochs 1 --train-limit 1000 --device cpu`)" in stderr
    assert len(complete(optuna.load_study(study_name="shared", storage=storage_url(shared_study)))) == 3


def test_an_architecture_over_budget_is_rejected_without_training(tmp_path):
    args = search.parse_args(["--max-params", "1000", "--runs", str(tmp_path / "runs")])
    widths = {f"stage{s}_width{i}": 16 for s in (1, 2, 3) for i in (1, 2)}
    kinds = {"stage2_kind": "", "stage3_kind": "", "stage1_downsampling": "pool", "head_1x1": 0}
    trial = optuna.trial.FixedTrial({"stage1_convs": 2, "stage2_convs": 2, "stage3_convs": 2, **widths, **kinds})
    with pytest.raises(optuna.TrialPruned):
        search.objective(trial, args, epochs=1, threads=1)
    assert trial.user_attrs["params"] > 1000 and "not trained" in trial.user_attrs["error"]
    assert not (tmp_path / "runs").exists()


def test_the_first_stage_halves_the_map_by_a_pool_or_by_a_stride_in_its_last_convolution():
    widths = {f"stage{s}_width{i}": 16 for s in (1, 2, 3) for i in (1, 2)}
    shape = {
        "stage1_convs": 2,
        "stage2_convs": 2,
        "stage3_convs": 1,
        "stage2_kind": "s",
        "stage3_kind": "",
        "head_1x1": 0,
        **widths,
    }
    pooled = search.suggest_spec(optuna.trial.FixedTrial({**shape, "stage1_downsampling": "pool"}))
    strided = search.suggest_spec(optuna.trial.FixedTrial({**shape, "stage1_downsampling": "stride"}))
    assert pooled == "16,16,M,16s,16s,M,16"
    assert strided == "16,16d,16s,16s,M,16"
    assert search.spec_params(strided) == search.spec_params(pooled)  # a stride costs no parameters


@pytest.mark.slow
def test_a_failing_training_is_recorded_as_failed_and_the_study_goes_on(tmp_path, capsys, monkeypatch):
    for variable in ("HTTPS_PROXY", "HTTP_PROXY"):  # a refusing proxy: no machine downloads MNIST here
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    argv = [
        "--study",
        "broken",
        "--seeds",
        "1",
        "--trials",
        "2",
        "--storage",
        storage_url(tmp_path),
        "--runs",
        str(tmp_path / "runs"),
        *TINY,
        "--data-dir",
        str(tmp_path / "no-mnist"),
    ]
    code, _ = cli(search.main, argv, capsys)
    assert code == 0
    study = optuna.load_study(study_name="broken", storage=storage_url(tmp_path))
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert "MNIST not found" in study.trials[0].user_attrs["error"]


def test_a_trial_behind_every_smaller_finished_trial_is_pruned_from_mid_schedule():
    study = optuna.create_study(directions=search.DIRECTIONS)
    curve = {str(epoch): 98.0 + epoch / 10 for epoch in range(1, 11)}  # JSON keys, as the storage returns them
    for params in (3000, 4000, 5000, 9000):
        attrs = {"params": params, "val_curve": curve}
        study.add_trial(optuna.trial.create_trial(values=[99.0, params, 5.0], user_attrs=attrs))
    on_epoch = search.make_pruner(study.ask(), params=6000, epochs=10)
    assert not on_epoch(2, 50.0), "too early in the schedule to judge"
    assert not on_epoch(6, 98.7), "as good as a smaller trial at epoch 6"
    assert on_epoch(6, 98.5), "behind all three smaller trials at epoch 6"
    assert not search.make_pruner(study.ask(), params=3500, epochs=10)(6, 90.0), "fewer than 3 smaller rivals"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--storage", "not-a-url", "--trials", "1"], "cannot open the study database"),
        (["--storage", "postgresql://me:pw-1234@[bad/db", "--trials", "1"], "cannot open the study database"),
        (["--storage", "postgresql+nodriver://me:pw-1234@host/db", "--trials", "1"], "postgresql+nodriver://me:***@"),
        (["--study", "nope", "--report"], "no study 'nope'"),
        (["--max-params", "100", "--trials", "1"], "no architecture in the search space is that small"),
        (["--trials", "1", "--", "--momentum", "3"], "train.py refuses the flags after --: argument --momentum"),
        (["--trials", "1", "--", "--lr", "0.1"], "--lr after -- is set by the search itself"),
        (["--trials", "1", "--", "--mod", "tiny"], "unrecognized arguments: --mod tiny"),
        (["--trials", "-1"], "--trials: must be at least 0"),
        (["--jobs", "0"], "--jobs: must be greater than 0"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    if not any(arg == "--storage" for arg in argv):
        argv = ["--storage", storage_url(tmp_path), *argv]
    code, stderr = cli(search.main, argv, capsys)
    assert code == 2
    assert message in stderr.strip().splitlines()[-1] and "Traceback" not in stderr
    assert "pw-1234" not in stderr, "a password is never shown"


def test_the_storage_url_comes_from_the_environment_and_is_shown_masked(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://me:pw-1234@db-host:5432/optuna")
    assert search.storage_url(None) == "postgresql://me:pw-1234@db-host:5432/optuna"
    assert search.storage_url(storage_url(tmp_path)) == storage_url(tmp_path), "--storage wins"
    assert search.masked(search.storage_url(None)) == "postgresql://me:***@db-host:5432/optuna"
    monkeypatch.delenv("OPTUNA_STORAGE")
    assert search.storage_url(None) == search.default_storage()


class StoredStudy:
    """What check_same_trials reads and writes of an Optuna study: its user attributes."""

    def __init__(self, **user_attrs) -> None:
        self.user_attrs = user_attrs

    def set_user_attr(self, key: str, value) -> None:
        self.user_attrs[key] = value


def test_a_study_compares_recipes_not_flags_and_an_older_one_trained_specs_without_elastic():
    flags = ["--epochs", "1", "--device", "cpu"]
    args = argparse.Namespace(study="old", seeds=1, train_args=flags)
    older = StoredStudy(train_args=flags, seeds=1)  # stored before the recipe was: its specs trained elastic 0
    with pytest.raises(UserError, match="elastic 0.0 there, 1.25 here"):
        search.check_same_trials(older, args)
    search.check_same_trials(older, argparse.Namespace(study="old", seeds=1, train_args=[*flags, "--elastic", "0"]))
    new = StoredStudy()
    search.check_same_trials(new, args)
    assert new.user_attrs["recipe"]["elastic"] == 1.25 and new.user_attrs["train_args"] == flags
    refused = StoredStudy(train_args=flags, seeds=1)
    with pytest.raises(UserError, match="with the study's recipe \\(`-- --epochs 1 --device cpu --elastic 0`\\)"):
        search.check_same_trials(refused, args)
    assert refused.user_attrs["recipe"]["elastic"] == 0, "an older study's recipe is stored as it trained"
    search.check_same_trials(new, argparse.Namespace(study="new", seeds=1, train_args=[*flags, "--elastic", "1.25"]))
