"""export.py's ONNX and int8 files against PyTorch, the committed exports, and the PyTorch Hub and Hugging Face Hub
entries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnxruntime
import pytest
import torch
from PIL import Image
from support import exporting_once

import export
import model as model_module
import train
from compact_mnist import preprocess
from compact_mnist.checkpoint import load_model
from compact_mnist.cli import UserError, run_cli
from compact_mnist.data import MEAN, STD
from compact_mnist.files import fingerprint, load_checkpoint
from conftest import require_current
from model import Net

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir) -> Path:
    """`python export.py --int8` into a folder of its own: model.onnx, model.int8.onnx and the Hub's files."""
    output = tmp_path_factory.mktemp("export") / "model.onnx"
    with exporting_once():
        assert export.main(["--output", str(output), "--int8", "--data-dir", str(data_dir)]) == 0
    return output


@pytest.mark.slow
def test_export_writes_onnx_that_matches_pytorch(exported, mnist, model):
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
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


@pytest.mark.slow
def test_int8_export_keeps_the_accuracy_in_two_fifths_of_the_weights(exported, mnist):
    float_bytes, int8_bytes = exported.read_bytes(), exported.with_suffix(".int8.onnx").read_bytes()
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


@pytest.mark.slow
def test_int8_is_refused_past_its_accuracy_bound_and_nothing_is_written(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setattr(export, "INT8_MAX_DROP", -100.0)  # no quantization can gain 100 points
    with exporting_once(), pytest.raises(SystemExit) as exit_info:
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
