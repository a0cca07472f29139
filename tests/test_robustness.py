"""Bad input never crashes with a traceback and never loses work: one test per row of the
README's troubleshooting table."""

from __future__ import annotations

import errno
import importlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evaluate
import train
from compact_mnist.cli import UserError
from compact_mnist.data import batches_per_epoch, read_split
from compact_mnist.files import load_checkpoint, write_atomic
from conftest import cli, fewer_images, of_its_layer

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"
QUICK = ["--train-limit", "1000", "--batch-size", "128", "--device", "cpu", "--deterministic"]


def take_ctrl_c_as_a_terminal_does() -> None:
    # A background job (`pytest &`, some CI runners) ignores SIGINT and its children inherit that, so
    # the Ctrl-C test would see training run to the end; a terminal delivers Ctrl-C to the foreground job.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_process(*flags: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *flags],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        preexec_fn=None if sys.platform == "win32" else take_ctrl_c_as_a_terminal_does,
    )


def assert_one_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# Data


@pytest.mark.parametrize("command", [of_its_layer(name) for name in ("train", "evaluate", "export")])
def test_missing_data_without_network_names_the_folder_and_both_settings(command, tmp_path, monkeypatch, capsys):
    refused = "http://127.0.0.1:9"  # a proxy that refuses connections: no network, and never a download
    for variable, value in (
        ("MNIST_DATA_DIR", str(tmp_path / "nowhere")),
        ("HTTPS_PROXY", refused),
        ("HTTP_PROXY", refused),
    ):
        monkeypatch.setenv(variable, value)
    output_flag = {"train": "--out-dir", "evaluate": "--out", "export": "--output"}[command]
    code, stderr = cli(importlib.import_module(command).main, [output_flag, str(tmp_path / "out")], capsys)
    assert code == 2
    assert_one_line(stderr, str(tmp_path / "nowhere"), "--data-dir", "MNIST_DATA_DIR")


def test_damaged_mnist_file_is_named(tmp_path, data_dir, capsys):
    shutil.copytree(data_dir / "MNIST" / "raw", tmp_path / "MNIST" / "raw")
    damaged = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:1_000_000])
    code, stderr = cli(train.main, ["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")], capsys)
    assert code == 2
    assert_one_line(stderr, str(damaged), "damaged")


def test_mnist_is_read_as_torchvision_reads_it(data_dir):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for train_split, prefix in ((True, "train"), (False, "t10k")):
        images, labels = read_split(data_dir, train=train_split)
        raw = data_dir / "MNIST" / "raw"
        assert torch.equal(images, read_image_file(str(raw / f"{prefix}-images-idx3-ubyte")))
        assert torch.equal(labels, read_label_file(str(raw / f"{prefix}-labels-idx1-ubyte")).long())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.one_of(st.binary(max_size=3000), st.binary(max_size=3000).map(lambda b: b"\x00\x00\x08\x01" + b)))
def test_random_bytes_as_an_mnist_file_give_only_the_clean_error(data_dir, junk):
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        images = (data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").resolve()
        try:
            (raw / images.name).symlink_to(images)
        except OSError:  # Windows allows links only to administrators or in developer mode
            shutil.copyfile(images, raw / images.name)
        (raw / "t10k-labels-idx1-ubyte").write_bytes(junk)
        with pytest.raises(UserError, match="t10k-labels-idx1-ubyte is damaged"):
            read_split(Path(folder), train=False)


# Checkpoints


class RunsCodeWhenUnpickled:
    """A malicious 'checkpoint': unpickling it would create a file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def bad_checkpoint(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.pth"
    if kind == "truncated":
        path.write_bytes(MODEL_PATH.read_bytes()[:5000])
    elif kind == "random-bytes":  # starting like a pickle of an unknown protocol, which makes torch warn
        path.write_bytes(b"\x80\x4a" + os.urandom(20_000))
    elif kind == "not-a-checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "arbitrary-code":
        torch.save({"state_dict": RunsCodeWhenUnpickled(folder / "pwned"), "meta": {}}, path)
    return path  # "missing": never written


@pytest.mark.parametrize("kind", ["missing", "truncated", "random-bytes", "not-a-checkpoint", "arbitrary-code"])
@pytest.mark.parametrize("command", [of_its_layer(name) for name in ("evaluate", "predict", "export")])
def test_bad_checkpoint_is_one_line_and_never_unpickles_code(command, kind, tmp_path, capsys):
    path = bad_checkpoint(kind, tmp_path)
    argv = ["--checkpoint", str(path)] + ([str(tmp_path)] if command == "predict" else [])
    main = importlib.import_module(command).main
    with warnings.catch_warnings(record=True) as warned:  # a warning would be a second line on a terminal
        warnings.simplefilter("always")
        code, stderr = cli(main, argv, capsys)
    assert code == 2
    assert_one_line(stderr, str(path))
    assert not [str(warning.message) for warning in warned]
    assert not (tmp_path / "pwned").exists()


@settings(max_examples=60, deadline=None)
@given(junk=st.one_of(st.binary(max_size=5000), st.binary(max_size=5000).map(lambda b: b"PK\x03\x04" + b)))
def test_random_bytes_as_a_checkpoint_give_only_the_clean_error(junk):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "junk.pth"
        path.write_bytes(junk)
        with pytest.raises(UserError, match="junk.pth"):
            load_checkpoint(path)


def test_checkpoint_of_another_architecture_names_the_layers(capsys):
    code, stderr = cli(evaluate.main, ["--checkpoint", str(MODEL_PATH), "--model", "micro"], capsys)
    assert code == 2
    assert_one_line(stderr, "different architecture", "features.0", "saved (8, 1, 3, 3), model (4, 1, 3, 3)")


def test_resume_refuses_a_model_checkpoint(tmp_path, capsys):
    code, stderr = cli(train.main, ["--resume", str(MODEL_PATH), "--out-dir", str(tmp_path)], capsys)
    assert code == 2
    assert_one_line(stderr, str(MODEL_PATH), "resume")


# Flags


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs"), (["--epochs", "-3"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
        (["--lr", "0"], "--lr"), (["--lr", "-0.1"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "fast"], "--lr"),
        (["--device", "tpu"], "--device"), (["--model", "8,X"], "--model"),
        (["--momentum", "-1"], "--momentum: must be at least 0 and below 1"),
        (["--momentum", "0.95"], "--momentum 0.95 has no effect under OneCycleLR"),
        (["--weight-decay", "-5"], "--weight-decay: must be at least 0"),
        (["--dropout", "1.5"], "--dropout: must be at least 0 and below 1"),
        (["--label-smoothing", "2"], "--label-smoothing: must be at least 0 and below 1"),
        (["--model", "8,M,M,M,M,M,8"], "max-pool 5 would shrink the 1x1 feature map below 1x1"),
        (["--model", "8d,8d,8d,8d,8d,8d"], "strided convolution 6 would shrink the 1x1 feature map below 1x1"),
        (["--model", "999999"], "GiB to train at batch size 256"),
        (["--batch-size", "1000", "--train-limit", "500"], "--batch-size 1000 is larger than the 500 training"),
        (["--batch-size", "100000"], "--batch-size: must be at least 2 and at most 60000"),
        (["--batch-size", "1"], "--batch-size: must be at least 2"),
        (["--seed", "-1"], "--seed"),
        (["--clean-epochs", "-1"], "--clean-epochs: must be at least 0"),
    ],
)  # fmt: skip
def test_bad_flag_is_a_usage_error_before_anything_starts(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*flags, "--out-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


COMMANDS = ["train", "predict", "evaluate", "export", "app", "scripts.seeds", "scripts.search", "scripts.frontier"]
COMMANDS += ["scripts.reading_rate", "scripts.reading_examples", "benchmarks.bench_onnx", "benchmarks.bench_demo"]
COMMANDS += ["scripts.ablation", "scripts.views"]


@pytest.mark.parametrize("module", [of_its_layer(name) for name in COMMANDS])
def test_every_command_answers_a_usage_error_in_one_line_that_points_at_help(module, monkeypatch, capsys):
    """What `python train.py --no-such-flag` runs (the script's `__main__` block), in this process."""
    path = ROOT / (module.replace(".", "/") + ".py")
    positional = {"predict": ["digit.png"], "scripts.views": ["model.pth"]}.get(module, [])  # what it requires
    monkeypatch.setattr(sys, "argv", [str(path), *positional, "--no-such-flag"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(path), run_name="__main__")
    assert exit_info.value.code == 2
    assert_one_line(capsys.readouterr().err, "error: ", "--no-such-flag", "(see --help)")


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_absent_accelerator_is_a_usage_error(device, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--device", device])
    assert exit_info.value.code == 2
    assert f"--device {device} was asked for but is not available" in capsys.readouterr().err


# Saving


def test_unwritable_output_folder_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, stderr = cli(train.main, ["--out-dir", str(blocker / "models")], capsys)
    assert code == 2
    assert_one_line(stderr, "cannot write to", "--out-dir")
    assert "epoch" not in capsys.readouterr().out


def test_unwritable_report_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, stderr = cli(evaluate.main, ["--out", str(blocker / "reports")], capsys)
    assert code == 2
    assert_one_line(stderr, "could not write", str(blocker / "reports"))


@pytest.mark.needs("search")
def test_comparing_with_an_entry_the_report_lacks_is_refused_before_training(tmp_path, capsys):
    from scripts import seeds

    args = ["--compare", "nosuch", "--report", str(tmp_path / "r.json"), "--runs", str(tmp_path / "runs")]
    code, stderr = cli(seeds.main, args, capsys)
    assert code == 2
    assert_one_line(stderr, "--compare nosuch: no such entry", "r.json")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--name", "default", "--", "--model", "tiny"], "--name default is the default preset's entry"),
        (["--", "--model", "8,M,16s"], "which is no preset: give the entry a --name"),
        (["--", "--model", "tiny", "--lr", "0.3"], "train 8,M,12,12s,12s,M,24s,24s,24s with a recipe of no preset's"),
        (
            ["--name", "small", "--", "--model", "small", "--elastic", "1.25"],
            "--name small is the small preset's entry",
        ),
    ],
)
@pytest.mark.needs("search")
def test_a_seeds_entry_named_after_a_preset_must_train_that_preset(flags, message, tmp_path, capsys):
    from scripts import seeds

    args = ["--report", str(tmp_path / "r.json"), "--runs", str(tmp_path / "runs"), *flags]
    code, stderr = cli(seeds.main, args, capsys)
    assert code == 2
    assert_one_line(stderr, message)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r.json").exists()


def test_disk_full_while_saving_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "mnist_model.pth"
    target.write_bytes(b"previous model")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(UserError, match="No space left on device.*previous file is unchanged"):
        write_atomic(b"new model" * 1000, target)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["mnist_model.pth"], "the temporary file was left behind"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX's")
def test_written_files_get_the_usual_permissions_not_private_ones(tmp_path):
    mask = os.umask(0o027)
    try:
        write_atomic(b"report", tmp_path / "new.json")
        existing = tmp_path / "shared.json"
        existing.write_bytes(b"old")
        existing.chmod(0o664)
        write_atomic(b"new", existing)
    finally:
        os.umask(mask)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640, "a new file: 0666 less the umask, as open() does"
    assert existing.stat().st_mode & 0o777 == 0o664, "a replaced file keeps its mode"


@pytest.mark.slow
def test_diverging_loss_stops_naming_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path, data_dir, capsys):
    previous = tmp_path / "mnist_model.pth"
    previous.write_bytes(b"last good model")
    argv = ["--lr", "1000", "--schedule", "constant", "--epochs", "2", "--train-limit", "4000", *QUICK[2:]]
    argv += ["--data-dir", str(data_dir)]
    with fewer_images():
        code, stderr = cli(train.main, [*argv, "--out-dir", str(tmp_path)], capsys)
    torch.use_deterministic_algorithms(False)  # the recipe's switch is process-wide: leave it as the tests had it
    assert code == 2
    assert_one_line(stderr, "loss became nan at epoch 1, step", "--lr")
    assert previous.read_bytes() == b"last good model"


@pytest.mark.slow
def test_a_loss_diverging_after_the_first_epoch_removes_the_resume_file_that_could_only_diverge_again(
    tmp_path, data_dir, capsys
):
    steps_per_epoch, calls = batches_per_epoch(4000, 128), []  # QUICK's batch size

    def diverges_in_epoch_2(output, images, labels):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(output, labels)
        return loss * float("nan") if len(calls) > steps_per_epoch else loss

    (tmp_path / "mnist_model.pth").write_bytes(b"last good model")
    argv = [
        "--epochs",
        "3",
        "--train-limit",
        "4000",
        *QUICK[2:],
        "--data-dir",
        str(data_dir),
        "--out-dir",
        str(tmp_path),
    ]
    with fewer_images():
        code, stderr = cli(lambda args: train.main(args, loss_fn=diverges_in_epoch_2), argv, capsys)
    torch.use_deterministic_algorithms(False)
    assert code == 2
    assert_one_line(stderr, "loss became nan at epoch 2, step 1", "--lr")
    assert not (tmp_path / "resume.pth").exists(), "epoch 1's resume file would only continue into the same loss"
    assert (tmp_path / "mnist_model.pth").read_bytes() == b"last good model"


# Interrupting and resuming


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX's; Windows ends a process with TerminateProcess")
def test_a_run_killed_after_an_epoch_resumes_from_it_bit_identical_to_an_uninterrupted_run(tmp_path, data_dir, capsys):
    common = ["--epochs", "3", *QUICK, "--data-dir", str(data_dir)]
    killed = train_process(*common, "--out-dir", str(tmp_path / "resumed"))
    for line in killed.stdout:
        if line.startswith("epoch  1/3"):
            killed.send_signal(signal.SIGKILL)  # no handler runs: only what was on disk survives
            break
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    resume_file = tmp_path / "resumed" / "resume.pth"
    assert load_checkpoint(resume_file, ("state_dict", "resume"))["resume"]["epoch"] >= 1
    assert not (tmp_path / "resumed" / "mnist_model.pth").exists(), "a half-trained model replaced the real one"

    resume = ["--resume", str(resume_file), "--device", "cpu", "--data-dir", str(data_dir)]
    with fewer_images():  # evaluating fewer images changes no weights
        assert train.main([*resume, "--out-dir", str(tmp_path / "resumed")]) == 0
        assert "removed" in capsys.readouterr().out and not resume_file.exists(), "a finished run says it removed it"
        assert train.main([*common, "--out-dir", str(tmp_path / "straight")]) == 0
    torch.use_deterministic_algorithms(False)  # the recipe's switch is process-wide: leave it as the tests had it
    expected = torch.load(tmp_path / "straight" / "mnist_model.pth", weights_only=True)["state_dict"]
    actual = torch.load(tmp_path / "resumed" / "mnist_model.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, data_dir) -> Path:
    """A run stopped by Ctrl-C after its first epoch of two: its folder, holding resume.pth."""
    out = tmp_path_factory.mktemp("stopped")

    def ctrl_c(record: dict) -> None:
        raise KeyboardInterrupt

    argv = ["--epochs", "2", "--train-limit", "500", "--val-size", "500", *QUICK[2:], "--data-dir", str(data_dir)]
    with fewer_images():
        assert train.main([*argv, "--out-dir", str(out)], on_epoch=ctrl_c) == 130
    torch.use_deterministic_algorithms(False)
    return out


@pytest.mark.slow
def test_ctrl_c_keeps_the_last_epoch_and_says_how_to_continue(stopped_run, capsys):
    state = load_checkpoint(stopped_run / "resume.pth", ("state_dict", "resume"))["resume"]
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert not (stopped_run / "mnist_model.pth").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "30"], "--epochs 30 (the run has 2)"),
        (["--lr", "0.1", "--model", "tiny"], "--lr 0.1 (the run has 0.4), --model tiny (the run has default)"),
        (["--seed", "7"], "--seed 7 (the run has 1)"),
    ],
)
def test_resume_refuses_in_one_line_a_flag_that_cannot_change_a_run_in_progress(flags, message, stopped_run, capsys):
    code, stderr = cli(train.main, ["--resume", str(stopped_run / "resume.pth"), *flags], capsys)
    assert code == 2
    assert_one_line(stderr, message, "cannot change a run in progress", "OneCycleLR")


@pytest.mark.slow
def test_resume_applies_a_flag_that_a_run_in_progress_can_take(stopped_run):
    resume = ["--resume", str(stopped_run / "resume.pth")]
    recipe = train.parse_args([*resume, "--elastic", "0", "--epochs", "2", "--deterministic"]).recipe
    assert (recipe.elastic, recipe.epochs, recipe.train_limit) == (0, 2, 500), "the run's own recipe, --elastic applied"


@pytest.mark.slow
def test_a_run_saved_on_another_device_resumes_on_a_new_random_stream(stopped_run, data_dir, tmp_path, capsys):
    checkpoint = load_checkpoint(stopped_run / "resume.pth", ("state_dict", "resume"))
    # What a CUDA run saves: its data generator's state, which a CPU generator cannot take.
    checkpoint["resume"]["rng"] |= dict(device="cuda", data=torch.zeros(16, dtype=torch.uint8))
    torch.save(checkpoint, tmp_path / "cuda.pth")
    argv = ["--resume", str(tmp_path / "cuda.pth"), "--device", "cpu", "--data-dir", str(data_dir), "--elastic", "0"]
    with fewer_images():
        assert train.main(argv) == 0, "the resume file's folder is the run's"
    out = capsys.readouterr().out
    assert "resuming on cpu a run saved on cuda" in out and "cuda.pth, which it continued from, is as it was" in out
    assert (tmp_path / "mnist_model.pth").is_file() and not (tmp_path / "resume.pth").exists()
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert history[-1]["changed_on_resume"] == {"elastic": [1.25, 0.0]}, "the record says what the resume changed"


@pytest.mark.slow
def test_a_new_run_never_replaces_an_unfinished_runs_resume_file(stopped_run, capsys):
    code, stderr = cli(train.main, ["--out-dir", str(stopped_run)], capsys)
    assert code == 2
    assert_one_line(stderr, "resume.pth holds an unfinished run", "--resume")
    assert load_checkpoint(stopped_run / "resume.pth", ("state_dict", "resume"))["resume"]["epoch"] == 1
