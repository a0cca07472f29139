"""The exported model on the CPU: file size, test accuracy and batch-1 latency, float against int8.

    python benchmarks/bench_onnx.py         # about a minute; after python export.py --int8

Times one image at a time, as an app reading one picture sees them, on one thread: PyTorch, the
float ONNX file and the int8 file with onnxruntime, and the int8 model in onnxruntime's other form
(QLinearConv-style operators instead of QuantizeLinear/DequantizeLinear pairs), quantized here the same
way as export.py does, to show why the QDQ form ships. A model that reads with test-time views is timed beside
its network alone, in PyTorch and as a float ONNX file exported here. Each is timed in --rounds interleaved rounds of
--images images after a warm-up; the median of the rounds' per-image times is reported. Accuracy is on
all 10,000 test images. The results go to benchmarks/onnx.json and benchmarks/onnx.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import onnxruntime
import torch

from compact_mnist.checkpoint import load_model, network_alone
from compact_mnist.cli import ArgumentParser, UserError, positive_int, run_cli
from compact_mnist.data import add_data_dir_argument, load_test_split, normalize, resolve_data_dir
from compact_mnist.files import write_report
from export import calibration_images, export_onnx, initializer_bytes, onnx_accuracy, quantize_int8
from model import predict
from train import machine_name

ROOT = Path(__file__).resolve().parent.parent


def onnx_runner(onnx_bytes: bytes):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    return lambda image: session.run(None, {"images": image.numpy()})[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "mnist_model.pth", help="PyTorch model")
    add_data_dir_argument(parser)
    parser.add_argument("--rounds", type=positive_int, default=7, help="interleaved timing rounds")
    parser.add_argument("--images", type=positive_int, default=300, help="images per round")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "onnx.json",
        help="results file, with .md beside it (default: the committed benchmarks/onnx.json)",
    )
    return parser.parse_args(argv)


def seconds_per_image(runners: dict, sample: torch.Tensor, rounds: int) -> dict[str, list[float]]:
    """Each runner's seconds per single image, one figure per round; the runners take turns within a round, so
    that a slower spell of the machine falls on all of them alike."""
    for run in runners.values():  # warm-up
        for image in sample[:50].split(1):
            run(image)
    per_image: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for image in sample.split(1):
                run(image)
            per_image[name].append((time.perf_counter() - start) / len(sample))
    return per_image


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    float_path, int8_path = args.checkpoint.with_suffix(".onnx"), args.checkpoint.with_suffix(".int8.onnx")
    for path in (float_path, int8_path):
        if not path.is_file():
            raise UserError(f"{path} not found; write it with: python export.py --int8")
    torch.set_num_threads(1)
    model, meta = load_model(args.checkpoint)
    data_dir = resolve_data_dir(args.data_dir)
    images, labels = load_test_split(data_dir)
    images = normalize(images)
    plain = network_alone(model)  # timed beside in the same rounds: what the views cost
    files = {"onnx float": float_path.read_bytes()}
    files |= {"onnx float, without views": export_onnx(plain)} if plain is not None else {}
    files["onnx int8 (QDQ, shipped)"] = int8_path.read_bytes()
    files["onnx int8 (operators)"] = quantize_int8(
        files["onnx float"], calibration_images(data_dir), operator_form=True
    )
    models = {"pytorch": model} | ({"pytorch, without views": plain} if plain is not None else {})
    runners = {name: partial(predict, network) for name, network in models.items()} | {
        name: onnx_runner(data) for name, data in files.items()
    }
    per_image = seconds_per_image(runners, images[: args.images], args.rounds)
    rows = []
    for name in runners:
        data = files.get(name)
        accuracy = (
            onnx_accuracy(data, images, labels)
            if data
            else 100 * (predict(models[name], images).argmax(1) == labels).float().mean().item()
        )
        rows.append(
            dict(
                name=name,
                file_bytes=len(data) if data else args.checkpoint.stat().st_size,
                tensor_bytes=initializer_bytes(data) if data else sum(t.nbytes for t in model.state_dict().values()),
                test_accuracy=accuracy,
                microseconds_per_image=1e6 * statistics.median(per_image[name]),
            )
        )
    float_row = next(row for row in rows if row["name"] == "onnx float")
    for row in rows:
        row["tensor_share_of_float"] = row["tensor_bytes"] / float_row["tensor_bytes"]
        row["latency_vs_float"] = row["microseconds_per_image"] / float_row["microseconds_per_image"]
    results = dict(
        machine=machine_name(torch.device("cpu")),
        system=platform.system(),
        threads=1,
        onnxruntime=onnxruntime.__version__,
        torch=str(torch.__version__),
        model=meta["model"],
        params=meta["params"],
        rounds=args.rounds,
        images_per_round=args.images,
        rows=rows,
    )
    write_report(results, markdown(results), args.out)
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = [
        f"Measured on {results['machine']}, one thread, onnxruntime {results['onnxruntime']}; {results['model']} model "
        f"({results['params']:,} parameters); latency is the median of {results['rounds']} rounds of "
        f"{results['images_per_round']} single images; accuracy on all 10,000 test images.",
        "",
        "| model | file | stored tensors | share of float | test accuracy | latency per image (batch 1) | vs float |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['name']} | {row['file_bytes'] / 1024:.1f} KiB | {row['tensor_bytes'] / 1024:.1f} KiB | "
            f"{row['tensor_share_of_float']:.0%} | {row['test_accuracy']:.2f}% | "
            f"{row['microseconds_per_image']:.0f} µs | {row['latency_vs_float']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
