"""Export the trained model to ONNX and prove the export computes the same thing.

    python export.py                      # models/mnist_model.pth -> models/mnist_model.onnx

The ONNX file takes a batch of any size of normalized `(N, 1, 28, 28)` images and returns `(N, 10)`
log-probabilities. After writing it, the script runs it with onnxruntime on real test images and
fails (exit 1) if any output differs from PyTorch's by more than --tolerance or any prediction differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from checkpoint import add_model_arguments, load_model, write_atomic
from data import add_data_dir_argument, load_test_split, normalize, resolve_data_dir
from errors import UserError, run_cli
from evaluate import predict
from flags import positive_float


def export_onnx(model: torch.nn.Module) -> bytes:
    """The model as an ONNX file (bytes) with a variable batch dimension."""
    example = torch.zeros(2, 1, 28, 28)
    program = torch.onnx.export(
        model.eval(), (example,), input_names=["images"], output_names=["log_probs"],
        dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
    )  # fmt: skip
    return program.model_proto.SerializeToString()


def max_difference(onnx_bytes: bytes, model: torch.nn.Module, images: torch.Tensor) -> tuple[float, int]:
    """Largest absolute output difference and number of differing predictions, ONNX vs PyTorch."""
    import onnxruntime  # a heavy import, needed only here

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_output = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    torch_output = predict(model, images)
    differing = (onnx_output.argmax(1) != torch_output.argmax(1)).sum().item()
    return (onnx_output - torch_output).abs().max().item(), differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    add_model_arguments(parser)
    parser.add_argument("--output", type=Path, default=None, help="ONNX file (default: the checkpoint's name, .onnx)")
    add_data_dir_argument(parser)
    parser.add_argument("--tolerance", type=positive_float, default=1e-4, help="largest allowed output difference")
    args = parser.parse_args(argv)
    output = args.output or args.checkpoint.with_suffix(".onnx")

    model, meta = load_model(args.checkpoint, args.model)
    images = normalize(load_test_split(resolve_data_dir(args.data_dir))[0][:1000])
    try:
        onnx_bytes = export_onnx(model)
    except Exception as error:
        raise UserError(f"ONNX export failed: {error}") from None
    difference, differing = max_difference(onnx_bytes, model, images)
    print(f"onnxruntime vs PyTorch on {len(images):,} test images: largest difference {difference:.2e}, "
          f"{differing} differing predictions")  # fmt: skip
    if difference > args.tolerance or differing:
        print(
            f"error: the export does not match PyTorch (tolerance {args.tolerance}); {output} not written",
            file=sys.stderr,
        )
        return 1
    write_atomic(onnx_bytes, output)
    print(f"wrote {output} ({len(onnx_bytes) / 1024:.0f} KiB, {meta['model']} model, any batch size)")
    return 0


if __name__ == "__main__":
    run_cli(main)
