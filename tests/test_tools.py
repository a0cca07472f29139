"""The tools around training: evaluate.py, predict.py and export.py on the committed model, the
benchmark, the multi-seed script, and the README's generated tables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

import evaluate
import export
import model as model_module
import predict
import train
from compact_mnist import preprocess
from compact_mnist.checkpoint import load_model
from compact_mnist.cli import UserError, run_cli
from compact_mnist.data import MEAN, STD, normalize, read_split, split_indices
from compact_mnist.drawings import HARD_CASES, hard_case
from compact_mnist.files import fingerprint, load_checkpoint
from conftest import require_current
from model import PRESETS, Net, count_parameters, layer_table

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_PATH)[0]


def test_evaluate_writes_every_report_and_agrees_with_the_test_suite(tmp_path, data_dir, mnist, model, capsys):
    assert evaluate.main(["--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    for name in ("evaluation.json", "confusion_matrix.txt", "confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = json.loads((tmp_path / "evaluation.json").read_text())
    _, accuracy = train.evaluate(model, mnist.test_images, mnist.test_labels)
    assert report["test_accuracy"] == accuracy
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    assert report["misclassified"] == round(10_000 * (100 - accuracy) / 100)
    assert f"test accuracy: {accuracy:.2f}%" in capsys.readouterr().out


def styled(digit: np.ndarray, style: str) -> Image.Image:
    """One 28x28 MNIST digit as a user might photograph or draw it."""
    image = Image.fromarray(digit)
    if style == "inverted":  # dark ink on white paper
        return Image.fromarray(255 - digit)
    if style == "larger":
        return image.resize((150, 150), Image.Resampling.BILINEAR)
    if style == "off-centre":
        canvas = Image.new("L", (100, 70))
        canvas.paste(image, (65, 3))
        return canvas
    if style == "rgb":  # blue ink on white, as a colour scan
        ink = 255 - digit
        return Image.merge("RGB", [Image.fromarray(ink), Image.fromarray(ink), Image.fromarray(255 - digit // 3)])
    raise ValueError(style)


def test_predict_reads_digits_in_every_style(tmp_path, data_dir, mnist, model, capsys):
    images, labels = read_split(data_dir, train=False)
    # Digits the model gets right with confidence in MNIST form, so the test measures the conversion.
    confident = model_module.predict(model, normalize(images[:40])).exp().max(1)
    chosen = [i for i in range(40) if confident.indices[i] == labels[i] and confident.values[i] > 0.8][:8]
    expected = {}
    for i in chosen:
        for style in ("inverted", "larger", "off-centre", "rgb"):
            path = tmp_path / f"{i}-{style}.{'jpg' if style == 'rgb' else 'png'}"
            styled(images[i].numpy(), style).save(path)
            expected[str(path)] = int(labels[i])
    assert predict.main([str(tmp_path), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(expected) == 32
    for line in lines:
        path, guesses = line.split(": ", 1)
        assert guesses.startswith(f"{expected[path]} ("), line
        assert guesses.count("%") == 3


def test_predict_reports_each_bad_file_and_still_predicts_the_rest(tmp_path, data_dir, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(read_split(data_dir, train=False)[0][0].numpy()).save(good)
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    missing = tmp_path / "missing.png"
    assert predict.main([str(good), str(tmp_path / "notes.png"), str(tmp_path / "blank.png"), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: 7 (")
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "not a readable image" in errors[0] and "no digit" in errors[1] and "no such file" in errors[2]


@pytest.mark.parametrize("kind", HARD_CASES)
def test_no_stroke_is_thinned_away_or_divided_by_zero(kind):
    digit = preprocess.to_mnist(hard_case(kind))
    assert digit.shape == (1, 28, 28) and torch.isfinite(digit).all()
    ink = digit * STD + MEAN
    assert ink.max() > 0.5, "the stroke survived"


def test_thin_and_soft_ones_are_read_as_ones_without_error_lines(tmp_path, model, capsys):
    for kind in HARD_CASES:
        hard_case(kind).save(tmp_path / f"{kind}.png")
    assert predict.main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    readings = dict(line.split(": ", 1) for line in captured.out.strip().splitlines())
    for kind in ("one-pixel 1", "soft 1", "diagonal hairline"):
        assert readings[str(tmp_path / f"{kind}.png")].startswith("1 ("), (kind, readings)


def test_stroke_width_counts_the_border_as_an_edge_and_soft_edges_by_their_ink():
    bar = torch.zeros(100, 40)
    bar[10:90, 15:25] = 1  # 10 pixels wide
    assert preprocess.stroke_width(bar) == pytest.approx(10, rel=0.15)
    assert preprocess.stroke_width(torch.ones(80, 10)) == pytest.approx(10, rel=0.15), "a bar that fills its crop"
    soft = torch.nn.functional.avg_pool2d(bar[None, None], 5, stride=1, padding=2)[0, 0]
    assert preprocess.stroke_width(soft / soft.max()) == pytest.approx(10, rel=0.15), "blurred, the same pen"


def test_stroke_width_band_is_mnists_own(data_dir):
    images, _ = read_split(data_dir, train=True)
    widths = []
    for image in images[split_indices(len(images))[1][:2000]]:
        ink = preprocess.crop(image.float() / 255)
        widths.append(preprocess.stroke_width(ink) * 20 / max(ink.shape))
    measured = torch.tensor(widths).quantile(torch.tensor([0.05, 0.5, 0.95]))
    torch.testing.assert_close(measured, torch.tensor(preprocess.STROKE_WIDTHS), atol=0.05, rtol=0)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_predict_refuses_what_pillow_counts_as_a_decompression_bomb_in_one_line(tmp_path, monkeypatch, capsys, suffix):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)  # refused past twice the limit
    Image.new("L", (101, 100), 255).save(tmp_path / f"huge.{suffix}")
    Image.new("L", (100, 100), 255).save(tmp_path / f"at-the-limit.{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's warning between the limit and twice it must not reach stderr
        assert predict.main([str(tmp_path / f"huge.{suffix}"), str(tmp_path / f"at-the-limit.{suffix}")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "huge" in errors[0] and "too large to decode safely" in errors[0], errors
    assert "at-the-limit" in errors[1] and "the image is blank" in errors[1], errors


def test_export_writes_onnx_that_matches_pytorch(tmp_path, data_dir, mnist, model):
    output = tmp_path / "model.onnx"
    assert export.main(["--output", str(output), "--data-dir", str(data_dir)]) == 0
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for batch in (1, 37):  # the batch dimension is free
        images = mnist.test_images[:batch]
        onnx_output = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
        torch.testing.assert_close(onnx_output, model_module.predict(model, images), atol=1e-4, rtol=0)


def committed_export(name: str) -> bytes:
    """A committed ONNX file, current with models/mnist_model.pth (skipped after a user's retrain, as the README's
    `python train.py` does: a stale export, not a broken one)."""
    onnx_bytes = (ROOT / "models" / name).read_bytes()
    changed = [] if export.exported_from(onnx_bytes) == fingerprint(MODEL_PATH) else ["models/mnist_model.pth"]
    require_current(f"models/{name}", changed, "python export.py --int8")
    return onnx_bytes


def test_committed_onnx_file_is_the_committed_model(mnist, model):
    difference, differing = export.max_difference(committed_export("mnist_model.onnx"), model, mnist.test_images[:500])
    assert difference < 1e-4 and differing == 0


def onnx_ops(onnx_bytes: bytes) -> set[tuple[str, str]]:
    import onnx

    return {(node.domain or "ai.onnx", node.op_type) for node in onnx.load_from_string(onnx_bytes).graph.node}


def test_int8_export_keeps_the_accuracy_in_two_fifths_of_the_weights(tmp_path, data_dir, mnist):
    assert export.main(["--output", str(tmp_path / "m.onnx"), "--int8", "--data-dir", str(data_dir)]) == 0
    float_bytes, int8_bytes = (tmp_path / "m.onnx").read_bytes(), (tmp_path / "m.int8.onnx").read_bytes()
    float_accuracy = export.onnx_accuracy(float_bytes, mnist.test_images, mnist.test_labels)
    int8_accuracy = export.onnx_accuracy(int8_bytes, mnist.test_images, mnist.test_labels)
    assert int8_accuracy >= float_accuracy - export.INT8_MAX_DROP
    assert export.initializer_bytes(int8_bytes) <= 0.4 * export.initializer_bytes(float_bytes)
    float_ops, int8_ops = onnx_ops(float_bytes), onnx_ops(int8_bytes)
    assert not {op for _, op in float_ops | int8_ops} & {"BatchNormalization"}, "BatchNorm folded into the convs"
    assert ("ai.onnx", "QuantizeLinear") in int8_ops and {domain for domain, _ in int8_ops} == {"ai.onnx"}


def test_committed_int8_file_is_the_committed_model_within_its_bound(mnist):
    meta = load_checkpoint(MODEL_PATH)["meta"]
    int8 = committed_export("mnist_model.int8.onnx")
    accuracy = export.onnx_accuracy(int8, mnist.test_images, mnist.test_labels)
    assert accuracy >= meta["test_accuracy"] - export.INT8_MAX_DROP


def test_int8_is_refused_past_its_accuracy_bound_and_nothing_is_written(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setattr(export, "INT8_MAX_DROP", -100.0)  # no quantization can gain 100 points
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: export.main(["--output", str(tmp_path / "m.onnx"), "--int8", "--data-dir", str(data_dir)]))
    assert exit_info.value.code == 2, "a refusal exits 2, like every other"
    assert not (tmp_path / "m.int8.onnx").exists() and (tmp_path / "m.onnx").exists()
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "not written" in errors[0]


def test_int8_without_the_quantization_tools_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # as if onnxruntime lacked them
    with pytest.raises(UserError, match="--int8 needs onnxruntime's quantization tools"):
        export.quantize_int8(b"", torch.zeros(1, 1, 28, 28))


HUB_ENTRIES = ["compact_mnist", "compact_mnist_small", "compact_mnist_tiny", "compact_mnist_micro"]


@pytest.mark.parametrize("entry", HUB_ENTRIES)
def test_every_hub_entry_loads_from_a_clone_with_its_preprocessing(entry):
    model = torch.hub.load(str(ROOT), entry, source="local", pretrained=False)
    assert not model.training and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.to_mnist is preprocess.to_mnist


def test_the_pretrained_hub_model_scores_the_committed_accuracy(mnist):
    model = torch.hub.load(str(ROOT), "compact_mnist", source="local", pretrained=True)
    _, accuracy = train.evaluate(model, mnist.test_images, mnist.test_labels)
    assert accuracy == pytest.approx(load_checkpoint(MODEL_PATH)["meta"]["test_accuracy"], abs=0.011)
    digit = Image.fromarray(255 - (mnist.test_images[0, 0] * STD + MEAN).mul(255).clamp(0, 255).byte().numpy())
    assert model(model.to_mnist(digit)[None]).argmax(1).item() == mnist.test_labels[0].item()


def committed_hub_files() -> Path:
    """models/, holding the Hugging Face Hub's files of the committed checkpoint, or a skip after a retrain."""
    config = json.loads((ROOT / "models" / "config.json").read_text())
    changed = [] if config["checkpoint_sha256"] == fingerprint(MODEL_PATH) else ["models/mnist_model.pth"]
    require_current("models/model.safetensors", changed, "python export.py")
    return ROOT / "models"


def test_the_safetensors_weights_are_the_checkpoints_converted():
    from safetensors import safe_open

    with safe_open(committed_hub_files() / "model.safetensors", framework="pt") as weights:
        assert weights.metadata()["checkpoint_sha256"] == fingerprint(MODEL_PATH)
        converted = {name: weights.get_tensor(name) for name in weights.keys()}
    original = load_checkpoint(MODEL_PATH)["state_dict"]
    assert converted.keys() == original.keys() and all(torch.equal(converted[k], original[k]) for k in original)


def test_torch_hub_from_pretrained_and_the_checkpoint_give_identical_outputs(mnist):
    from hub_model import CompactMnistCNN

    images = mnist.test_images[:256]
    through_hub = torch.hub.load(str(ROOT), "compact_mnist", source="local", pretrained=True)
    through_huggingface = CompactMnistCNN.from_pretrained(committed_hub_files()).eval()
    through_checkpoint = load_model(MODEL_PATH)[0]
    outputs = [model_module.predict(model, images) for model in (through_hub, through_huggingface, through_checkpoint)]
    assert torch.equal(outputs[0], outputs[2]) and torch.equal(outputs[1], outputs[2])
    assert isinstance(through_huggingface, Net)


def test_hub_refusals_say_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="no committed weights for the 'tiny' preset.*python train.py --model tiny"):
        torch.hub.load(str(ROOT), "compact_mnist_tiny", source="local", pretrained=True)
    with pytest.raises(RuntimeError, match="Cannot find callable compact_mnist_huge"):
        torch.hub.load(str(ROOT), "compact_mnist_huge", source="local")
    import hubconf

    monkeypatch.setattr(hubconf, "_WEIGHTS", tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match="not found; train one with: python train.py"):
        hubconf.compact_mnist()


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_budget_and_writes_well_formed_results_for_the_model_asked(tmp_path):
    spec = "8d,M,16s"  # a small model, so that the benchmark's one whole epoch of train.py is quick
    result = run_script(
        "benchmarks/bench_train.py",
        "--images",
        "512",
        "--repeats",
        "1",
        "--model",
        spec,
        "--out",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["model"] == dict(preset=spec, spec=spec, params=count_parameters(Net(spec)))
    for path in ("ours", "classic", "ours_recipe", "ours_nchw", "ours_data_only", "classic_data_only"):
        assert results["paths"][path]["images_per_second"] > 0 and len(results["paths"][path]["repeats"]) == 1
    forward_flops = 2 * sum(row["macs"] for row in layer_table(Net(spec)))
    assert results["speedup_vs_classic"] > 0 and results["training_flops_per_image"] == 3 * forward_flops
    assert 0 < results["gflops_per_second"] < results["matmul_gflops_per_second"], "no rate above the machine's peak"
    peak = results["peak_memory_mb_one_epoch"]  # None where the OS cannot say (Windows)
    assert (peak is None and sys.platform == "win32") or 0 < peak < 24_000
    assert "| path | images / s |" in (tmp_path / "r.md").read_text()


@pytest.mark.slow
def test_seed_sweep_reports_each_seed_and_resumes_finished_ones(tmp_path):
    sweep = [
        "scripts/seeds.py",
        "--seeds",
        "3",
        "4",
        "--name",
        "quick",
        "--jobs",
        "2",
        "--runs",
        str(tmp_path / "runs"),
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
    first = run_script(*sweep)
    assert first.returncode == 0, first.stderr
    entry = json.loads((tmp_path / "seeds.json").read_text())["quick"]
    assert [run["seed"] for run in entry["runs"]] == [3, 4]
    assert set(entry["summary"]["test_acc"]) == {"mean", "std", "min", "max"}
    assert "| **mean** |" in (tmp_path / "seeds.md").read_text()
    again = run_script(*sweep)
    assert again.stdout.count("already trained") == 2


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
    from compact_mnist.cli import UserError
    from scripts.seeds import compare

    baseline = dict(runs=[dict(seed=0, val_acc=99.4), dict(seed=1, val_acc=99.5), dict(seed=2, val_acc=99.0)])
    runs = [dict(seed=0, val_acc=99.5), dict(seed=1, val_acc=99.8), dict(seed=7, val_acc=90.0)]
    gain = compare(runs, baseline, "before")
    assert gain["name"] == "before" and gain["val_gain"]["seeds"] == 2
    assert gain["val_gain"]["mean"] == pytest.approx(0.2) and gain["val_gain"]["standard_error"] == pytest.approx(0.1)
    with pytest.raises(UserError, match="fewer than 2 of these seeds"):
        compare(runs[2:], baseline, "before")


def test_readme_tables_match_the_committed_results():
    described = re.search(r"<!-- models/mnist_model.pth sha256 (\w+) -->", (ROOT / "README.md").read_text("utf-8"))
    changed = [] if described and described.group(1) == fingerprint(MODEL_PATH) else ["models/mnist_model.pth"]
    require_current("README.md", changed, "python scripts/render_readme.py")
    result = run_script("scripts/render_readme.py", "--check")
    assert result.returncode == 0, result.stdout


def test_every_ablation_is_a_recipe_train_py_accepts_and_differs_from_the_default():
    from scripts.ablation import ABLATIONS
    from train import parse_args, trained_recipe

    default = trained_recipe(parse_args(["--device", "cpu"]).recipe)
    for name, (_, flags) in ABLATIONS.items():
        recipe = trained_recipe(parse_args([*flags, "--device", "cpu"]).recipe)
        assert (recipe == default) == (name == "default"), name
