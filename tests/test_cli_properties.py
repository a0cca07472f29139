"""Property test: whatever command line a user types, a script exits 0 or 2, never with a traceback,
and a refused command (exit 2) leaves models/ untouched.

hypothesis generates each script's flags from valid and invalid values, odd layer specs included; valid
command lines use tiny data so that they finish in seconds. The examples are derandomized, so CI sees the
same ones every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import exporting_once

import evaluate
import train
from compact_mnist.cli import UsageError, run_cli
from compact_mnist.data import augment
from compact_mnist.recipe import FIELDS
from conftest import fewer_images

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SPECS = [
    "default",
    "tiny",
    "4",
    "4,M,6",
    "4d,6s",
    "8,M,M,M,M,8",
    "8,M,M,M,M,M,8",
    "8d,8d,8d,8d,8d,8d",
    "0",
    "8,X",
    "",
    "M",
    "99999,99999",
]
CHECKPOINTS = [str(MODELS / "mnist_model.pth"), "no-such.pth", str(ROOT / "README.md")]


def numbers(valid: st.SearchStrategy, invalid: list[str]) -> st.SearchStrategy[str]:
    """Flag values: mostly valid ones, sometimes a known-bad one or junk text."""
    return st.one_of(valid.map(str), st.sampled_from(invalid), st.text(max_size=4))


def command_lines(flags: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    """Up to three of `flags`, each with a generated value."""
    chosen = st.lists(st.sampled_from(sorted(flags)), max_size=3, unique=True)
    return chosen.flatmap(
        lambda names: st.tuples(*[flags[name].map(lambda value, n=name: [n, value]) for name in names])
    )


def models_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(MODELS.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def run(main, argv: list[str]) -> tuple[int, str]:
    """Run a script's main as its command line does; any exception other than SystemExit fails the test."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            run_cli(lambda: main(argv))
        except SystemExit as exit_info:
            code = exit_info.code
    return code, stderr.getvalue()


def check(main, argv: list[str]) -> None:
    before = models_fingerprint()
    code, stderr = run(main, argv)
    assert code in (0, 2), (argv, code, stderr)
    assert "Traceback" not in stderr, (argv, stderr)
    if code == 2:
        assert stderr.strip(), argv
        assert models_fingerprint() == before, f"{argv} exited 2 but changed models/"


PROPERTY = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

TRAIN_FLAGS = {
    "--epochs": numbers(st.integers(1, 2), ["0", "-1", "1.5"]),
    "--batch-size": numbers(st.integers(2, 300), ["1", "0", "100000"]),
    "--lr": numbers(st.floats(1e-3, 2.0), ["0", "-1", "nan", "inf"]),
    "--momentum": numbers(st.floats(0, 0.99), ["-1", "1", "2"]),
    "--weight-decay": numbers(st.floats(0, 1e-2), ["-5", "nan"]),
    "--label-smoothing": numbers(st.floats(0, 0.5), ["2", "-0.1", "1"]),
    "--dropout": numbers(st.floats(0, 0.9), ["1.5", "1", "-1"]),
    "--model": st.sampled_from(SPECS),
    "--train-limit": numbers(st.integers(2, 400), ["0", "1", "-5"]),
    "--seed": numbers(st.integers(0, 2**32 - 1), ["-1", "2.5"]),
}


@pytest.mark.slow
@PROPERTY
@given(flags=command_lines(TRAIN_FLAGS))
def test_train_command_lines_exit_cleanly(flags, tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("train")
    base = ["--epochs", "1", "--train-limit", "300", "--device", "cpu", "--data-dir", str(data_dir)]
    with fewer_images():
        check(train.main, [*base, *[item for pair in flags for item in pair], "--out-dir", str(out)])


TOOL_FLAGS = {
    "--checkpoint": st.sampled_from(CHECKPOINTS),
    "--model": st.sampled_from(SPECS),
}


@pytest.mark.needs("predict")
@pytest.mark.slow
@PROPERTY
@given(flags=command_lines({**TOOL_FLAGS, "--top-k": numbers(st.integers(1, 10), ["0", "11", "x"])}))
def test_predict_command_lines_exit_cleanly(flags, tmp_path_factory):
    import predict

    image = tmp_path_factory.mktemp("predict") / "digit.png"
    if not image.exists():
        from PIL import Image, ImageDraw

        canvas = Image.new("L", (60, 60), "white")
        ImageDraw.Draw(canvas).line([(30, 10), (30, 50)], fill="black", width=6)
        canvas.save(image)
    check(predict.main, [str(image), *[item for pair in flags for item in pair]])


@pytest.mark.slow
@PROPERTY
@given(flags=command_lines(TOOL_FLAGS))
def test_evaluate_command_lines_exit_cleanly(flags, tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("evaluate")
    with fewer_images():
        check(
            evaluate.main, ["--data-dir", str(data_dir), *[item for pair in flags for item in pair], "--out", str(out)]
        )


@pytest.mark.needs("export")
@pytest.mark.slow
@settings(PROPERTY, max_examples=6)
@given(flags=command_lines({**TOOL_FLAGS, "--tolerance": numbers(st.floats(1e-4, 1.0), ["0", "-1", "nan"])}))
def test_export_command_lines_exit_cleanly(flags, tmp_path_factory, data_dir):
    import export

    output = tmp_path_factory.mktemp("export") / "model.onnx"
    with exporting_once():
        check(
            export.main,
            ["--data-dir", str(data_dir), *[item for pair in flags for item in pair], "--output", str(output)],
        )


@pytest.mark.needs("search")
@PROPERTY
@given(
    seed_values=st.lists(numbers(st.integers(0, 9), ["-1", "x"]), max_size=3),
    jobs=st.sampled_from(["0", "-2", "x", ""]),
)
def test_seeds_refusals_exit_cleanly(seed_values, jobs, tmp_path_factory):
    from scripts import seeds

    # Only refusals (a bad --jobs always): a valid sweep trains for minutes.
    argv = [*(["--seeds", *seed_values] if seed_values else []), "--jobs", jobs]
    code, stderr = run(seeds.main, [*argv, "--runs", str(tmp_path_factory.mktemp("runs"))])
    assert code == 2 and "Traceback" not in stderr, (argv, stderr)


@pytest.mark.needs("demo")
@PROPERTY
@given(
    port=st.sampled_from(["0", "-1", "65536", "http", ""]),
    checkpoint=st.sampled_from(CHECKPOINTS),
    host=st.sampled_from(["127.0.0.1", "localhost"]),
)
def test_app_refusals_exit_cleanly(port, checkpoint, host):
    import app

    # Only refusals (a bad --port always): a valid command line starts a server that runs until stopped.
    code, stderr = run(app.main, ["--port", port, "--checkpoint", checkpoint, "--host", host])
    assert code == 2 and "Traceback" not in stderr and "error: " in stderr.strip().splitlines()[-1], stderr


@pytest.mark.needs("search")
@PROPERTY
@given(
    flags=command_lines(
        {
            "--trials": numbers(st.integers(0, 3), ["-1", "x"]),
            "--seeds": numbers(st.integers(1, 3), ["0", "-2"]),
            "--max-params": numbers(st.integers(100, 20_000), ["0", "-5", "1e3"]),
            "--study": st.text(max_size=8),
        }
    ),
    jobs=st.sampled_from(["0", "-2", "x", ""]),
)
def test_search_refusals_exit_cleanly(flags, jobs, tmp_path_factory):
    from scripts import search

    # Only refusals (a bad --jobs always): a valid search trains.
    storage = f"sqlite:///{(tmp_path_factory.mktemp('study') / 'study.db').as_posix()}"
    argv = [*[item for pair in flags for item in pair], "--jobs", jobs, "--storage", storage]
    code, stderr = run(search.main, argv)
    assert code == 2 and "Traceback" not in stderr, (argv, stderr)


def bound_edges(item) -> list[str]:
    """A recipe flag's values at and beside each of its bounds, 0, and junk: what a user may type at the edges."""
    meta = item.metadata
    if "choices" in meta:
        return [*meta["choices"], "neither"]
    kind, values = meta["kind"], ["0", "-1", "nan", "text"]
    for bound, step in (("above", 1), ("at_least", 0), ("below", -1), ("at_most", 0)):
        if meta.get(bound) is not None:
            edge = meta[bound]
            nudge = step if kind is int else step * 1e-6 * max(1, abs(edge))
            values += [str(kind(edge)), str(kind(edge + nudge)), str(kind(edge - nudge + 2 * step * (step == 0)))]
    return sorted(set(values))


RECIPE_FLAGS = [
    ([f"--{item.name.replace('_', '-')}", value] if value is not None else [f"--{'no-' * item.default}{item.name}"])
    for item in FIELDS
    if item.name != "model"
    for value in ([None] if isinstance(item.default, bool) else bound_edges(item))
]


def one_training_step(argv: list[str]) -> str:
    """Parse train.py's flags as it does; where they are accepted, build the recipe's network and optimizer and take
    one real step (augmented as the first epoch is) on a small batch. Returns "trained" or the refusal's one line."""
    small = ["--train-limit", "64", "--batch-size", "16", "--val-size", "0", "--device", "cpu"]
    try:
        recipe = train.parse_args([*small, *argv], exit_on_error=False).recipe
    except UsageError as error:
        assert "\n" not in str(error).strip(), argv
        return str(error)
    model = train.build_model(recipe, torch.device("cpu"))
    optimizer, scheduler = train.make_optimizer(model, recipe, steps_per_epoch=4)
    generator = torch.Generator().manual_seed(recipe.seed)
    images, labels = torch.randn(min(recipe.batch_size, 16), 1, 28, 28), torch.arange(min(recipe.batch_size, 16)) % 10
    if recipe.augmented(1):
        images = augment(images, generator, strength=recipe.augment_strength, elastic=recipe.elastic)
    averaged = train.weight_average(model, recipe.ema) if recipe.ema else None
    train.train_step(model, images, labels, optimizer, scheduler, train.cross_entropy(recipe.label_smoothing), averaged)
    return "trained"


@pytest.mark.parametrize("argv", RECIPE_FLAGS, ids=" ".join)
def test_every_recipe_flag_at_its_bounds_trains_one_step_or_is_refused_in_one_line(argv):
    outcome = one_training_step(argv)
    assert outcome == "trained" or argv[0] in outcome, (argv, outcome)


@PROPERTY
@given(values=st.data())
def test_recipe_flags_drawn_within_their_bounds_train_one_step(values):
    argv = []
    for item in values.draw(st.lists(st.sampled_from([f for f in FIELDS if "kind" in f.metadata]), max_size=4)):
        meta = item.metadata
        if meta["kind"] == "spec":
            argv += ["--model", values.draw(st.sampled_from(SPECS[:6]))]
            continue
        low = meta.get("at_least", meta.get("above"))
        high = meta.get("at_most", meta.get("below"))
        draw = st.integers if meta["kind"] is int else st.floats
        value = values.draw(draw(low if low is not None else 0, high if high is not None else 10**6))
        argv += [f"--{item.name.replace('_', '-')}", str(value)]
    outcome = one_training_step(argv)
    assert outcome == "trained" or "--" in outcome, (argv, outcome)
