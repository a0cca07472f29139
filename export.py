"""Export the trained model to ONNX and prove the export computes the same thing.

    python export.py            # models/mnist_model.pth -> models/mnist_model.onnx (replaces the committed file)
    python export.py --int8     # also models/mnist_model.int8.onnx, quantized to 8-bit integers

The ONNX file takes a batch of any size of normalized `(N, 1, 28, 28)` images and returns `(N, 10)`
log-probabilities, read as the checkpoint reads (with test-time views, all five are in the graph). Before writing
it, the script runs it with onnxruntime on real test images and refuses (exit 2) if any output differs from
PyTorch's by more than --tolerance or any prediction differs.
Beside it go the Hugging Face Hub's files, `model.safetensors` and `config.json` (hub_model.py loads them),
the same weights converted, not retrained; all of them record the checkpoint's hash.
The exporter already folds each BatchNorm into the convolution before it; the file keeps the graph, its
weights and names, and drops the exporter's per-node metadata (stack traces) and intermediate shapes,
which no runtime needs and which made up half the file.

`--int8` quantizes with onnxruntime's static quantization: QDQ format (QuantizeLinear/DequantizeLinear
pairs around float operators, which any ONNX runtime reads and integer-only hardware can fuse), int8
weights with a scale per output channel, uint8 activations calibrated on training images (never test
images). It refuses to write a file whose accuracy on the 10,000 test images is more than INT8_MAX_DROP
points below the float file's.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from compact_mnist.checkpoint import add_model_arguments, load_model
from compact_mnist.cli import ArgumentParser, UserError, positive_float, run_cli
from compact_mnist.data import (
    add_data_dir_argument,
    load_test_split,
    normalize,
    read_split,
    resolve_data_dir,
    split_indices,
)
from compact_mnist.files import fingerprint, write_atomic
from compact_mnist.recipe import Recipe
from model import predict

CALIBRATION_IMAGES = 1_000  # training images that set the int8 activations' ranges
INT8_MAX_DROP = 0.1  # accuracy points on the test set that quantization may cost


def export_onnx(model: torch.nn.Module) -> bytes:
    """The model as an ONNX file (bytes) with a variable batch dimension."""
    example = torch.zeros(2, 1, 28, 28)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        input_names=["images"],
        output_names=["log_probs"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,
    )
    return compact(program.model_proto)


def stamp(onnx_bytes: bytes, checkpoint: Path) -> bytes:
    """The ONNX model with the checkpoint it was exported from recorded in its metadata (files.fingerprint)."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    onnx.helper.set_model_props(proto, {"checkpoint_sha256": fingerprint(checkpoint)})
    return proto.SerializeToString()


def hub_files(model: torch.nn.Module, meta: dict, checkpoint: Path) -> tuple[bytes, bytes]:
    """The Hugging Face Hub's layout of the model: `model.safetensors` (the weights, no pickle) and `config.json`
    (the arguments that rebuild the network, test-time views included), each recording the checkpoint's fingerprint."""
    from safetensors.torch import save

    stamp = fingerprint(checkpoint)
    weights = save(model.state_dict(), metadata={"checkpoint_sha256": stamp})
    recipe = Recipe.recorded(meta["hyperparameters"])
    config = dict(
        spec=meta["spec"],
        dropout=recipe.dropout,
        batchnorm=recipe.batchnorm,
        head=recipe.head,
        views=recipe.views,
        checkpoint_sha256=stamp,
    )
    return weights, (json.dumps(config, indent=2) + "\n").encode()


def exported_from(onnx_bytes: bytes) -> str | None:
    """The fingerprint of the checkpoint an ONNX file written by this script was exported from."""
    import onnx

    props = {prop.key: prop.value for prop in onnx.load_from_string(onnx_bytes).metadata_props}
    return props.get("checkpoint_sha256")


def compact(proto) -> bytes:
    """The ONNX model without per-node metadata, doc strings and intermediate shapes (value_info)."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]
    return proto.SerializeToString()


def quantize_int8(onnx_bytes: bytes, calibration: torch.Tensor, operator_form: bool = False) -> bytes:
    """Static int8 quantization of an ONNX model: per-channel int8 weights, uint8 activations whose ranges are
    calibrated on `calibration` images; QDQ format, or `operator_form` for QLinearConv-style operators."""
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError as error:
        raise UserError(
            f"--int8 needs onnxruntime's quantization tools ({error}); pip install onnxruntime onnx"
        ) from None

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"images": batch.numpy()} for batch in calibration.split(100))

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(onnx_bytes)
        logging.disable(logging.WARNING)  # its advice to pre-process: the exporter has already folded the graph
        try:
            quantize_static(
                source,
                target,
                Images(),
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                quant_format=QuantFormat.QOperator if operator_form else QuantFormat.QDQ,
            )
        finally:
            logging.disable(logging.NOTSET)
        return compact(onnx.load(target))


def initializer_bytes(onnx_bytes: bytes) -> int:
    """Bytes of an ONNX model's stored tensors: weights, biases, scales and zero points."""
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    return sum(onnx.numpy_helper.to_array(tensor).nbytes for tensor in graph.initializer)


def onnx_accuracy(onnx_bytes: bytes, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy (%) of an ONNX model run by onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = np.concatenate([session.run(None, {"images": batch.numpy()})[0] for batch in images.split(1000)])
    return 100 * float((outputs.argmax(1) == labels.numpy()).mean())


def calibration_images(data_dir: Path) -> torch.Tensor:
    """Normalized training images (not validation, never test) for the int8 calibration."""
    images, _ = read_split(data_dir, train=True)
    return normalize(images[split_indices(len(images))[1][:CALIBRATION_IMAGES]])


def max_difference(onnx_bytes: bytes, model: torch.nn.Module, images: torch.Tensor) -> tuple[float, int]:
    """Largest absolute output difference and number of differing predictions, ONNX vs PyTorch."""
    import onnxruntime  # a heavy import, needed only here

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_output = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    torch_output = predict(model, images)
    differing = (onnx_output.argmax(1) != torch_output.argmax(1)).sum().item()
    return (onnx_output - torch_output).abs().max().item(), differing


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="ONNX file (default: the checkpoint's name with .onnx, models/mnist_model.onnx: the committed file)",
    )
    add_data_dir_argument(parser)
    parser.add_argument("--tolerance", type=positive_float, default=1e-4, help="largest allowed output difference")
    parser.add_argument(
        "--int8", action="store_true", help="also write an int8 copy, NAME.int8.onnx (replaces the committed one)"
    )
    args = parser.parse_args(argv)
    output = args.output or args.checkpoint.with_suffix(".onnx")

    model, meta = load_model(args.checkpoint, args.model)
    data_dir = resolve_data_dir(args.data_dir)
    test_images, test_labels = load_test_split(data_dir)
    images = normalize(test_images[:1000])
    try:
        onnx_bytes = export_onnx(model)
    except Exception as error:
        raise UserError(f"ONNX export failed: {error}") from None
    difference, differing = max_difference(onnx_bytes, model, images)
    print(
        f"onnxruntime vs PyTorch on {len(images):,} test images: largest difference {difference:.2e}, "
        f"{differing} differing predictions"
    )
    if difference > args.tolerance or differing:
        raise UserError(f"the export does not match PyTorch (tolerance {args.tolerance}); {output} not written")
    onnx_bytes = stamp(onnx_bytes, args.checkpoint)
    write_atomic(onnx_bytes, output)
    print(f"wrote {output} ({len(onnx_bytes) / 1024:.0f} KiB, {meta['model']} model, any batch size)")
    weights, config = hub_files(model, meta, args.checkpoint)
    write_atomic(weights, output.parent / "model.safetensors")
    write_atomic(config, output.parent / "config.json")
    print(f"wrote {output.parent / 'model.safetensors'} and config.json (the Hugging Face Hub's layout)")
    if args.int8:
        int8_output = output.with_suffix(".int8.onnx")
        return write_int8(onnx_bytes, int8_output, data_dir, normalize(test_images), test_labels, args.checkpoint)
    return 0


def write_int8(
    onnx_bytes: bytes, output: Path, data_dir: Path, images: torch.Tensor, labels: torch.Tensor, checkpoint: Path
) -> int:
    """Quantize, compare with the float model on every test image, and write only within INT8_MAX_DROP."""
    int8_bytes = quantize_int8(onnx_bytes, calibration_images(data_dir))
    float_accuracy, int8_accuracy = onnx_accuracy(onnx_bytes, images, labels), onnx_accuracy(int8_bytes, images, labels)
    print(f"int8 against float on {len(labels):,} test images: {int8_accuracy:.2f}% against {float_accuracy:.2f}%")
    if float_accuracy - int8_accuracy > INT8_MAX_DROP:
        raise UserError(f"quantization costs more than {INT8_MAX_DROP} points; {output} not written")
    int8_bytes = stamp(int8_bytes, checkpoint)
    write_atomic(int8_bytes, output)
    print(f"wrote {output} ({len(int8_bytes) / 1024:.0f} KiB against {len(onnx_bytes) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    run_cli(main)
