"""The studies: the seed sweep and its report, the run cache that reads a finished run back, the ablation and the
test-time views screen, distillation and shared weights."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from compact_mnist.cli import UserError
from model import PRESETS, Net, count_parameters

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


def test_seed_report_gives_the_views_gain_and_compares_the_average_with_the_raw_weights_both_read_alone():
    from scripts.seeds import markdown, summarize

    runs = [  # read with views; the same weights alone (plain); the raw weights, which are always read alone
        dict(seed=0, val_acc=99.6, test_acc=99.5, plain_val_acc=99.5, plain_test_acc=99.4, raw_val_acc=99.4),
        dict(seed=1, val_acc=99.7, test_acc=99.6, plain_val_acc=99.5, plain_test_acc=99.5, raw_val_acc=99.3),
    ]
    summary = summarize(runs)
    assert summary["views_val_gain"]["mean"] == pytest.approx(0.15)
    assert summary["averaging_val_gain"]["mean"] == pytest.approx(0.15), "plain against raw, not views against raw"
    assert summary["plain_test_acc"]["min"] == 99.4
    rows = [dict(run, raw_test_acc=None, first_epoch_at_target=3, seconds=60, device="cpu") for run in runs]
    text = markdown({"default": dict(train_args=[], params=10, runs=rows, summary=summary)})
    assert "| seed | val acc | test acc | plain val | plain test | raw val |" in text
    assert "The views' validation gain over the same runs' plain network, paired by seed: +0.150%" in text


def test_seed_report_compares_two_entries_on_the_seeds_they_share():
    from scripts.seeds import compare

    baseline = dict(runs=[dict(seed=0, val_acc=99.4), dict(seed=1, val_acc=99.5), dict(seed=2, val_acc=99.0)])
    runs = [dict(seed=0, val_acc=99.5), dict(seed=1, val_acc=99.8), dict(seed=7, val_acc=90.0)]
    gain = compare(runs, baseline, "before")
    assert gain["name"] == "before" and gain["val_gain"]["seeds"] == 2
    assert gain["val_gain"]["mean"] == pytest.approx(0.2) and gain["val_gain"]["standard_error"] == pytest.approx(0.1)
    assert "views_val_gain" not in gain, "neither reads with views"
    with pytest.raises(UserError, match="fewer than 2 of these seeds"):
        compare(runs[2:], baseline, "before")


def test_seed_report_compares_two_entries_that_read_with_views_both_ways():
    from scripts.seeds import compare, comparison_text

    baseline = dict(runs=[dict(seed=s, val_acc=99.5 + s / 10, plain_val_acc=99.4) for s in (0, 1, 2)])
    runs = [dict(seed=0, val_acc=99.7, plain_val_acc=99.5), dict(seed=1, val_acc=99.7, plain_val_acc=99.6)]
    compared = compare(runs, baseline, "before")
    assert compared["val_gain"]["mean"] == pytest.approx(0.15), "the networks alone"
    assert compared["views_val_gain"]["mean"] == pytest.approx(0.15) and compared["views_val_gain"]["seeds"] == 2
    assert compared["views_val_gain"]["standard_error"] == pytest.approx(0.05)
    assert "both read with test-time views: +0.150% (standard error 0.050%)." in comparison_text(compared)[1]


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
        assert changed == named, (name, changed, named)


def test_the_ablation_refuses_to_retrain_some_entries_beside_missing_or_dependent_ones(tmp_path, capsys):
    from conftest import cli
    from scripts import ablation

    out = ["--out", str(tmp_path / "ablation.json")]
    code, stderr = cli(ablation.main, ["--entries", "flatten-head", *out], capsys)
    assert code == 2 and "holds no entry default, no-batchnorm" in stderr and "(--entries)" in stderr
    code, stderr = cli(ablation.main, ["--entries", "default", *out], capsys)
    assert code == 2 and "retrain them all with it" in stderr
    report = json.loads((ROOT / "reports" / "ablation.json").read_text())
    report["flatten-head"]["train_args"] = ["--head", "flatten", "--elastic", "0", "--device", "cpu"]
    (tmp_path / "ablation.json").write_text(json.dumps(report))
    code, stderr = cli(ablation.main, ["--entries", "plain-convolutions", *out], capsys)
    assert code == 2 and "trained flatten-head with flags of another day" in stderr


def seeds_of_the_committed_model(folder: Path, seeds: list[int], **changed: object) -> list[str]:
    """Copies of the committed model recorded as trained with each of `seeds` (and `changed` hyperparameters)."""
    checkpoint = torch.load(MODEL_PATH, weights_only=True)
    paths = []
    for seed in seeds:
        meta = dict(checkpoint["meta"], seed=seed)
        meta["hyperparameters"] = dict(meta["hyperparameters"], **changed)
        paths.append(str(folder / f"seed-{seed}.pth"))
        torch.save(dict(checkpoint, meta=meta), paths[-1])
    return paths


@pytest.mark.slow
def test_the_views_screen_pairs_the_gain_by_model_and_times_both_readings(tmp_path, data_dir, monkeypatch):
    from conftest import load_fewer
    from scripts import views

    monkeypatch.setattr(views, "load_mnist", load_fewer)  # the first 1,000 validation images
    # Two models whose readings differ a lot but whose views gain the same on validation: paired, the gain is
    # certain. Each model is read on validation, then on test: plain, then with views.
    readings = iter([98.0, 98.2, 99.5, 99.3, 99.0, 99.2, 99.3, 99.6])
    monkeypatch.setattr(views, "accuracy", lambda *_, views: next(readings))
    out = tmp_path / "views.json"
    argv = [*seeds_of_the_committed_model(tmp_path, [3, 4]), "--rounds", "1", "--test", "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert views.main(argv) == 0
    report = json.loads(out.read_text())
    assert [(row["seed"], row["val_plain"], row["val_views"]) for row in report["models"]] == [
        (3, 98.0, 98.2),
        (4, 99.0, 99.2),
    ]
    assert report["test"]["plain"]["min"] == 99.3 and report["test"]["plain"]["at_target"] == 1
    assert report["test"]["views"]["mean"] == pytest.approx(99.45) and report["test"]["views"]["at_target"] == 1
    assert report["test_images"] == 1_000 and "| views | 99.450% |" in out.with_suffix(".md").read_text()
    assert report["val_gain"]["mean"] == pytest.approx(0.2) and report["val_gain"]["standard_error"] < 1e-9
    assert report["adopt"] and report["val_images"] == 1_000
    assert report["seconds_per_image"]["views"] > report["seconds_per_image"]["plain"] > 0
    assert "+0.200%" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize(
    "seeds, changed, message",
    [
        ([3], {}, "two or more models of one recipe"),
        ([3, 3], {}, "seeds 3, 3"),
        ([3, 4], {"val_size": 0}, "--val-size 0"),
    ],
)
def test_the_views_screen_refuses_what_it_cannot_pair(seeds, changed, message, tmp_path, capsys):
    from conftest import cli
    from scripts import views

    code, stderr = cli(views.main, seeds_of_the_committed_model(tmp_path, seeds, **changed), capsys)
    assert code == 2 and message in stderr


def test_the_views_screen_refuses_models_of_two_recipes(tmp_path, capsys):
    from conftest import cli
    from scripts import views

    paths = seeds_of_the_committed_model(tmp_path, [3]) + seeds_of_the_committed_model(tmp_path, [4], dropout=0.0)
    code, stderr = cli(views.main, paths, capsys)
    assert code == 2 and "(here 2 recipes, seeds 3, 4)" in stderr


class Fixed(torch.nn.Module):
    """A teacher that gives these log-probabilities whatever it reads."""

    def __init__(self, log_probs: torch.Tensor) -> None:
        super().__init__()
        self.log_probs = log_probs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.log_probs


def test_the_students_loss_is_the_softened_kl_from_its_teacher_plus_the_labels_share():
    from scripts.distill import Distillation

    teacher = torch.log_softmax(torch.tensor([[4.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), dim=1)
    student = torch.log_softmax(torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0]]), dim=1)
    labels = torch.tensor([0, 1])
    for temperature, weight in ((4.0, 0.9), (1.0, 0.5)):
        loss = Distillation(Fixed(teacher), 0.0, temperature, weight)(student, torch.zeros(2, 1, 28, 28), labels)
        p = torch.softmax(teacher / temperature, dim=1)  # the teacher's softened probabilities
        q = torch.softmax(student / temperature, dim=1)
        kl = (p * (p / q).log()).sum(1).mean()  # KL(teacher || student), per image
        hard = -student[torch.arange(2), labels].mean()
        expected = weight * temperature**2 * kl.item() + (1 - weight) * hard.item()
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_a_training_step_of_the_student_leaves_its_teacher_as_it_was():
    from compact_mnist.recipe import for_model
    from scripts.distill import Distillation
    from train import make_optimizer, network, train_step

    torch.manual_seed(0)
    teacher, student = network(for_model("micro")), network(for_model("micro"))
    teacher.train()(torch.randn(16, 1, 28, 28))  # BatchNorm statistics of its own
    before = {name: value.clone() for name, value in teacher.state_dict().items()}
    optimizer, scheduler = make_optimizer(student, for_model("micro"), steps_per_epoch=1)
    images, labels = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    student_before = [parameter.clone() for parameter in student.parameters()]
    student.train()
    train_step(student, images, labels, optimizer, scheduler, Distillation(teacher, 0.0, temperature=4, weight=0.9))
    assert not teacher.training
    assert all(torch.equal(value, before[name]) for name, value in teacher.state_dict().items())
    assert all(parameter.grad is None for parameter in teacher.parameters())
    learned = [not torch.equal(a, b) for a, b in zip(student.parameters(), student_before, strict=True)]
    assert any(learned), "the step trained the student"


def test_a_students_run_is_read_back_only_as_a_student_of_the_same_teacher(tmp_path):
    from scripts.distill import Teaching
    from scripts.launch import finished_run
    from train import parse_args, trained_recipe

    flags, teaching = ["--epochs", "1", "--device", "cpu"], Teaching(MODEL_PATH)
    meta = trained_recipe(parse_args(flags).recipe)
    (tmp_path / "metrics.json").write_text(json.dumps({"meta": meta}))
    assert finished_run(flags, tmp_path, teaching) is None, "a plain run is no student"
    meta["distillation"] = dict(teacher="elsewhere/mnist_model.pth", **teaching.recorded())
    (tmp_path / "metrics.json").write_text(json.dumps({"meta": meta}))
    assert finished_run(flags, tmp_path, teaching), "the same teacher, wherever it lay"
    assert finished_run(flags, tmp_path) is None, "a student is no plain run"
    assert finished_run(flags, tmp_path, Teaching(MODEL_PATH, temperature=1.0)) is None, "another temperature"
    other = tmp_path / "other.pth"
    other.write_bytes(MODEL_PATH.read_bytes() + b"\0")
    assert finished_run(flags, tmp_path, Teaching(other)) is None, "another teacher"


@pytest.mark.slow
def test_a_seed_sweep_trains_students_and_says_what_their_teacher_cost(tmp_path, capsys):
    from scripts import seeds

    sweep = ["--seeds", "0", "1", "--name", "students", "--runs", str(tmp_path), "--teacher", str(MODEL_PATH)]
    sweep += ["--temperature", "2", "--weight", "0.5"]
    sweep += ["--report", str(tmp_path / "seeds.json"), "--", "--model", "tiny", "--epochs", "1"]
    sweep += ["--clean-epochs", "0", "--train-limit", "1500", "--device", "cpu"]
    assert seeds.main(sweep) == 0
    entry = json.loads((tmp_path / "seeds.json").read_text())["students"]
    about = entry["distillation"]
    assert about["teacher_params"] == 10_002 and about["teacher_seconds"] > 0
    assert (about["temperature"], about["weight"]) == (2.0, 0.5)
    assert all(run["distillation"] == about for run in entry["runs"])
    checkpoint = torch.load(tmp_path / "students" / "seed-0" / "mnist_model.pth", weights_only=True)
    assert checkpoint["meta"]["distillation"] == about, "the checkpoint says how it was trained"
    assert "student of `mnist_model.pth`" in (tmp_path / "seeds.md").read_text()
    capsys.readouterr()
    assert seeds.main(sweep) == 0
    assert capsys.readouterr().out.count("already trained") == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--name", "micro"], "not the micro preset's recipe"),
        (["--name", "micro-students", "--teacher", "nowhere.pth"], "no such checkpoint"),
    ],
)
def test_a_sweep_of_students_refuses_a_presets_entry_and_a_missing_teacher(flags, message, tmp_path):
    from scripts import seeds

    teacher = [] if "--teacher" in flags else ["--teacher", str(MODEL_PATH)]
    with pytest.raises(UserError, match=message):
        seeds.main([*flags, *teacher, "--runs", str(tmp_path), "--", "--model", "micro", "--device", "cpu"])


def test_a_student_trains_into_a_folder_of_its_own_from_the_start(tmp_path):
    from scripts.distill import Teaching, train_student

    with pytest.raises(UserError, match="an --out-dir of its own"):
        train_student(Teaching(MODEL_PATH), ["--model", "micro", "--device", "cpu"])
    with pytest.raises(UserError, match="holds the teacher"):
        flags = ["--model", "micro", "--device", "cpu", "--out-dir", str(MODEL_PATH.parent)]
        train_student(Teaching(MODEL_PATH), flags)
    (tmp_path / "resume.pth").write_bytes(b"")
    with pytest.raises(UserError, match="a student is not resumed"):
        train_student(Teaching(MODEL_PATH), ["--model", "micro", "--device", "cpu", "--out-dir", str(tmp_path)])


def test_a_student_stopped_by_ctrl_c_leaves_no_resume_file_that_would_continue_it_without_its_teacher(
    tmp_path, monkeypatch
):
    import train
    from scripts.distill import Teaching, train_student

    def stopped(argv, on_epoch=None, loss_fn=None, trained_with=None):
        (tmp_path / "resume.pth").write_bytes(b"epoch 3")
        return 130

    monkeypatch.setattr(train, "main", stopped)
    flags = ["--model", "micro", "--device", "cpu", "--out-dir", str(tmp_path)]
    assert train_student(Teaching(MODEL_PATH), flags) == 130
    assert not (tmp_path / "resume.pth").exists()


def test_softening_flattens_the_teachers_targets_toward_one_in_ten(data_dir):
    from scripts.distill import Teaching, softness

    tops = softness(Teaching(MODEL_PATH, temperature=8.0), data_dir, images=200)
    assert list(tops) == [1.0, 2.0, 4.0, 8.0]
    values = list(tops.values())
    assert 0.5 < values[0] <= 1 and all(a > b > 0.1 for a, b in zip(values, values[1:], strict=False))


SHARED_SPEC = "4,8s,M,15s,M,15s,15s,15s"  # the screened network: its last three blocks one block applied three times


def test_shared_weights_apply_one_blocks_convolutions_again_each_time_with_a_batchnorm_of_its_own():
    from scripts.shared_weights import shared

    model = shared(Net(SHARED_SPEC), 3)
    layers = list(model.features)
    blocks = [layers[start : start + 4] for start in (13, 17, 21)]  # depthwise, 1x1, BatchNorm, ReLU after the pool
    for depthwise, pointwise, norm, _ in blocks[1:]:
        assert depthwise is blocks[0][0] and pointwise is blocks[0][1]
        assert norm is not blocks[0][2]
    assert count_parameters(model) == 960 and count_parameters(Net(SHARED_SPEC)) == 1_680
    assert count_parameters(shared(Net("4,8s,M,15,M,15s,15s"), 2)) == count_parameters(Net("4,8s,M,15,M,15s")) + 30


def test_a_network_with_shared_weights_is_read_from_its_checkpoint_as_its_unshared_spec(tmp_path):
    from compact_mnist.checkpoint import load_model
    from scripts.shared_weights import shared

    torch.manual_seed(0)
    model = shared(Net(SHARED_SPEC), 3)
    for norm in (module for module in model.features if isinstance(module, torch.nn.BatchNorm2d)):
        for value in (norm.weight, norm.bias, norm.running_mean, norm.running_var):  # each application's own
            value.data = torch.rand_like(value) + 0.5
    torch.save({"state_dict": model.state_dict(), "meta": dict(spec=SHARED_SPEC)}, tmp_path / "shared.pth")
    loaded, _ = load_model(tmp_path / "shared.pth")  # as evaluate.py, predict.py and the exports load it
    images = torch.randn(6, 1, 28, 28)
    assert torch.equal(loaded(images), model.eval()(images))
    assert count_parameters(loaded) == 1_680, "rebuilt unshared: each application's copy"


@pytest.mark.parametrize(
    "spec, repeats",
    [("micro", 2), (SHARED_SPEC, 4), ("4,8s,M,15s,M,15,15", 2), ("4,8s,M,15s,M,15s,15s,15s", 1)],
)
def test_shared_weights_refuse_a_network_that_does_not_end_in_repeats_of_one_separable_block(spec, repeats):
    from scripts.shared_weights import shared

    with pytest.raises(UserError, match=f"--repeats {repeats}: the --model spec must end in {repeats} separable"):
        shared(Net(spec), repeats)


def test_a_run_with_shared_weights_is_read_back_only_for_the_same_sharing(tmp_path):
    from scripts.distill import Teaching
    from scripts.launch import finished_run
    from scripts.shared_weights import Sharing
    from train import parse_args, trained_recipe

    flags = ["--model", SHARED_SPEC, "--epochs", "1", "--device", "cpu"]
    meta = trained_recipe(parse_args(flags).recipe) | dict(shared_weights=dict(repeats=3, unshared_params=1_680))
    (tmp_path / "metrics.json").write_text(json.dumps({"meta": meta}))
    assert finished_run(flags, tmp_path, Sharing(3))
    assert finished_run(flags, tmp_path, Sharing(2)) is None, "shared otherwise"
    assert finished_run(flags, tmp_path) is None, "shared weights are no plain run"
    assert finished_run(flags, tmp_path, Teaching(MODEL_PATH)) is None, "nor a student"
    (tmp_path / "metrics.json").write_text(json.dumps({"meta": trained_recipe(parse_args(flags).recipe)}))
    assert finished_run(flags, tmp_path, Sharing(3)) is None, "a plain run did not share"


def test_each_method_is_started_by_its_first_flag_and_recorded_under_its_own_name():
    import importlib
    import inspect

    from scripts.distill import Teaching
    from scripts.launch import METHODS
    from scripts.shared_weights import Sharing

    for method in (Teaching(MODEL_PATH), Sharing(3)):
        script, record = METHODS[method.flags()[0]]
        assert record == method.record
        assert "on_epoch" in inspect.signature(importlib.import_module(script).main).parameters, "the worker passes it"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--name", "micro", "--repeats", "3"], "--repeats shares weights, not the micro preset's recipe"),
        (["--name", "both", "--repeats", "3", "--teacher", str(MODEL_PATH)], "two methods: screen each on its own"),
        (["--name", "once", "--repeats", "1"], "argument --repeats: must be at least 2"),
        (["--name", "unshared", "--repeats", "3"], "--repeats 3: the --model spec must end in 3 separable blocks"),
    ],
)
def test_a_sweep_with_shared_weights_refuses_a_presets_entry_a_second_method_and_a_network_it_cannot_share(
    flags, message, tmp_path, capsys
):
    from conftest import cli
    from scripts import seeds

    argv = [*flags, "--runs", str(tmp_path), "--", "--model", "micro", "--device", "cpu"]
    code, stderr = cli(seeds.main, argv, capsys)
    assert code == 2 and message in stderr


@pytest.mark.slow
def test_a_seed_sweep_with_shared_weights_trains_them_shared_and_says_so(tmp_path, capsys):
    from scripts import seeds

    sweep = ["--seeds", "0", "1", "--name", "shared", "--runs", str(tmp_path), "--repeats", "3"]
    sweep += ["--report", str(tmp_path / "seeds.json"), "--", "--model", SHARED_SPEC, "--epochs", "1"]
    sweep += ["--train-limit", "1500", "--device", "cpu"]
    assert seeds.main(sweep) == 0
    entry = json.loads((tmp_path / "seeds.json").read_text())["shared"]
    assert entry["params"] == 960 and entry["shared_weights"] == dict(repeats=3, unshared_params=1_680)
    assert all(run["shared_weights"] == entry["shared_weights"] for run in entry["runs"])
    checkpoint = torch.load(tmp_path / "shared" / "seed-0" / "mnist_model.pth", weights_only=True)
    assert checkpoint["meta"]["shared_weights"] == entry["shared_weights"], "the checkpoint says how it was trained"
    weights = checkpoint["state_dict"]  # each application's copy: features.{15,19,23} are the three BatchNorms
    pointwise = [weights[f"features.{index}.weight"] for index in (14, 18, 22)]
    norms = [weights[f"features.{index}.weight"] for index in (15, 19, 23)]
    assert torch.equal(pointwise[0], pointwise[1]) and torch.equal(pointwise[0], pointwise[2]), "trained as one"
    assert not torch.equal(norms[0], norms[1]), "each application's BatchNorm trained on its own"
    assert "applied 3 times, each with a BatchNorm of its own" in (tmp_path / "seeds.md").read_text()
    capsys.readouterr()
    assert seeds.main(sweep) == 0
    assert capsys.readouterr().out.count("already trained") == 2


def test_a_run_with_shared_weights_trains_into_a_folder_of_its_own_from_the_start(tmp_path, monkeypatch):
    import train
    from scripts.shared_weights import Sharing, train_shared

    flags = ["--model", SHARED_SPEC, "--device", "cpu"]
    with pytest.raises(UserError, match="a run with shared weights trains into an --out-dir of its own"):
        train_shared(Sharing(3), flags)
    with pytest.raises(UserError, match="must end in 3 separable blocks"):
        train_shared(Sharing(3), ["--model", "micro", "--device", "cpu", "--out-dir", str(tmp_path)])

    def stopped(argv, on_epoch=None, trained_with=None, network_fn=None):
        assert count_parameters(network_fn(train.parse_args(argv).recipe)) == 960, "train.py builds it shared"
        (tmp_path / "resume.pth").write_bytes(b"epoch 3")
        return 130

    monkeypatch.setattr(train, "main", stopped)
    assert train_shared(Sharing(3), [*flags, "--out-dir", str(tmp_path)]) == 130
    assert not (tmp_path / "resume.pth").exists(), "train.py --resume would continue it unshared"
    (tmp_path / "resume.pth").write_bytes(b"")
    with pytest.raises(UserError, match="a run with shared weights is not resumed"):
        train_shared(Sharing(3), [*flags, "--out-dir", str(tmp_path)])
