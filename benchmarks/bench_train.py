"""Training speed, side by side: our tensor-resident path against the classic DataLoader pipeline.

    python benchmarks/bench_train.py            # a few minutes on 2 CPU cores
    python benchmarks/bench_train.py --full     # also times a whole default `python train.py`
    python benchmarks/bench_train.py --model 8d,16,16s,M,32s,32s,32s,32s --out /tmp/shape.json  # another model

Both paths train the same model (train.build_model: channels-last on a CPU; the default preset, or the
preset or layer spec given with --model, with train.py's recipe for it) with the same optimizer, batch
size and number of steps, in one process, on the same threads:
  ours     train.train_one_epoch: images held as tensors, batched affine augmentation
  classic  torchvision.datasets.MNIST + RandomAffine + ToTensor + Normalize per image, DataLoader(2 workers)
then our path with the model in PyTorch's default NCHW layout, to show what the layout is worth, and
each data path alone (batches produced, no model), to show where the remaining time goes.
Each path runs once to warm up, then --repeats times; the medians are reported. The results go to
benchmarks/results.json and benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

from compact_mnist.cli import ArgumentParser, positive_int, run_cli
from compact_mnist.data import (
    MEAN,
    ROTATION_DEGREES,
    SHIFT_PIXELS,
    STD,
    TRAIN_IMAGES,
    VAL_SIZE,
    ZOOM,
    MnistTensors,
    augment,
    batches_per_epoch,
    ensure_downloaded,
    load_mnist,
    resolve_data_dir,
    shuffled_batches,
)
from compact_mnist.files import write_report
from compact_mnist.memory import model_spec
from compact_mnist.recipe import Recipe
from model import Net, count_parameters, layer_table, parse_spec
from train import (
    build_model,
    cross_entropy,
    machine_name,
    make_optimizer,
    network,
    parse_args,
    train_one_epoch,
    train_step,
    weight_average,
)

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

EPOCH_IMAGES = TRAIN_IMAGES - VAL_SIZE  # an epoch of train.py


def time_ours(data: MnistTensors, recipe: Recipe, images: int, channels_last: bool = True) -> float:
    """Seconds for `images` training images through train.train_one_epoch; `channels_last=False` trains
    the model in PyTorch's default NCHW layout instead of the one train.py uses."""
    subset = dataclasses.replace(data, train_images=data.train_images[:images], train_labels=data.train_labels[:images])
    model = build_model(recipe, CPU) if channels_last else network(recipe)
    optimizer, scheduler = make_optimizer(model, recipe, steps_per_epoch=batches_per_epoch(images, recipe.batch_size))
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    averaged = weight_average(model, recipe.ema) if recipe.ema else None  # the recipe's weight averaging, if any
    train_one_epoch(model, subset, optimizer, scheduler, generator, recipe, epoch=1, averaged=averaged)
    return time.perf_counter() - start


def classic_loader(data_dir: Path, batch_size: int) -> DataLoader:
    """The usual pipeline: PIL images, per-image RandomAffine + ToTensor + Normalize, 2 workers."""
    transform = transforms.Compose(
        [
            transforms.RandomAffine(
                degrees=ROTATION_DEGREES, translate=(SHIFT_PIXELS / 28,) * 2, scale=(1 - ZOOM, 1 + ZOOM)
            ),
            transforms.ToTensor(),
            transforms.Normalize((MEAN,), (STD,)),
        ]
    )
    dataset = torchvision.datasets.MNIST(str(data_dir), train=True, transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=2)


def time_classic(data_dir: Path, recipe: Recipe, images: int) -> float:
    """Seconds for `images` training images through the classic pipeline and the same model and `train_step`."""
    model = build_model(recipe, CPU)
    steps = -(-images // recipe.batch_size)
    optimizer, scheduler = make_optimizer(model, recipe, steps_per_epoch=steps)
    averaged = weight_average(model, recipe.ema) if recipe.ema else None
    model.train()
    start = time.perf_counter()
    for step, (batch, labels) in enumerate(classic_loader(data_dir, recipe.batch_size)):
        if step == steps:
            break
        train_step(model, batch, labels, optimizer, scheduler, cross_entropy(recipe.label_smoothing), averaged)
    return time.perf_counter() - start


def time_ours_data_only(data: MnistTensors, recipe: Recipe, images: int) -> float:
    """Seconds to produce `images` training images as batches, augmented as `recipe` says, without the model."""
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for index in shuffled_batches(images, recipe.batch_size, generator):
        augment(data.train_images[index], generator, strength=recipe.augment_strength, elastic=recipe.elastic)
    return time.perf_counter() - start


def time_classic_data_only(data_dir: Path, batch_size: int, images: int) -> float:
    """Seconds for the classic DataLoader to deliver `images` augmented images, without the model."""
    steps = -(-images // batch_size)
    start = time.perf_counter()
    for step, _ in enumerate(classic_loader(data_dir, batch_size)):
        if step + 1 == steps:
            break
    return time.perf_counter() - start


def training_flops_per_image(model: Net) -> float:
    """Forward plus backward FLOPs of one training image, from the layer table's multiply-accumulates: a
    forward pass does 2 FLOPs per MAC, and the backward pass computes the gradients of both the inputs and the
    weights, twice the forward's work. (PyTorch's FlopCounterMode counts a depthwise convolution's weight
    gradient as a dense convolution's, five times this for the default.)"""
    return 6 * sum(row["macs"] for row in layer_table(model))


def matmul_gflops(side: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 arithmetic peak on the same threads: the best of `repeats` large matrix products."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * side**3 / best / 1e9


def peak_child_memory_mb() -> int | None:
    """Peak resident memory of the largest child process so far, in MiB; None where the OS has no
    `resource` module (Windows). Linux reports ru_maxrss in KiB, macOS in bytes."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak // 2**20 if sys.platform == "darwin" else peak // 2**10


def run_train(flags: list[str]) -> tuple[float, int | None, dict]:
    """Wall seconds, peak resident memory (MB) and metrics of a train.py subprocess."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "train.py"), "--out-dir", out, *flags],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        seconds = time.perf_counter() - start
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return seconds, peak_child_memory_mb(), metrics


def parse_options() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=positive_int, default=25_600, help="training images per timed repeat")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed repeats of each path")
    parser.add_argument("--full", action="store_true", help="also time a whole python train.py")
    parser.add_argument(
        "--model",
        type=model_spec,
        default="default",
        help="preset or layer spec to train, as train.py's --model",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results.json",
        help="results file, with .md beside it (default: the committed benchmarks/results.json)",
    )
    return parser.parse_args()


def whole_runs(model_flags: list[str], full: bool) -> tuple[int | None, dict | None]:
    """The peak memory of a one-epoch `python train.py`, and with `full` a whole run's time, accuracy and memory.
    They run before anything else: RUSAGE_CHILDREN would otherwise also count the DataLoader's workers."""
    _, peak_mb, _ = run_train(["--epochs", "1", *model_flags])
    if not full:
        return peak_mb, None
    seconds, full_peak_mb, metrics = run_train(model_flags)
    return peak_mb, dict(
        wall_seconds=seconds,
        epochs=metrics["meta"]["epochs"],
        test_accuracy=metrics["meta"]["test_accuracy"],
        peak_memory_mb=full_peak_mb,
    )


def time_paths(recipe: Recipe, images: int, repeats: int) -> dict[str, dict]:
    """Every path's median seconds, images per second and seconds per 55,000-image epoch, interleaved repeats
    after a warm-up. Like with like: the classic pipeline has only the affine augmentation, so ours is timed with
    it alone; the recipe's own elastic distortion, what python train.py runs, is a row of its own."""
    affine = dataclasses.replace(recipe, elastic=0.0)
    data_dir = resolve_data_dir(None)
    data = load_mnist(data_dir, CPU)
    timers = {
        "ours": lambda: time_ours(data, affine, images),
        "classic": lambda: time_classic(data_dir, affine, images),
        "ours_recipe": lambda: time_ours(data, recipe, images),
        "ours_nchw": lambda: time_ours(data, affine, images, channels_last=False),
        "ours_data_only": lambda: time_ours_data_only(data, affine, images),
        "ours_recipe_data_only": lambda: time_ours_data_only(data, recipe, images),
        "classic_data_only": lambda: time_classic_data_only(data_dir, recipe.batch_size, images),
    }
    timings: dict[str, list[float]] = {name: [] for name in timers}
    for repeat in range(repeats + 1):  # repeat 0 is the warm-up
        for name, timer in timers.items():
            seconds = timer()
            print(f"{name:18s} {'warm-up' if repeat == 0 else f'repeat {repeat}'}: {seconds:6.2f} s", flush=True)
            if repeat:
                timings[name].append(seconds)
    paths = {}
    for name, seconds in timings.items():
        median = statistics.median(seconds)
        paths[name] = dict(
            median_seconds=median,
            images_per_second=images / median,
            seconds_per_epoch=median * EPOCH_IMAGES / images,
            repeats=seconds,
        )
    return paths


def main() -> int:
    options = parse_options()
    model_flags = ["--model", options.model, "--device", "cpu"]
    recipe = parse_args(model_flags).recipe  # train.py's recipe for this model, as a real run trains it
    ensure_downloaded(resolve_data_dir(None))  # before the measured runs, so that no download is timed
    peak_mb, full_run = whole_runs(model_flags, options.full)
    paths = time_paths(recipe, options.images, options.repeats)

    def speedup(slow: str, fast: str) -> float:
        return paths[slow]["median_seconds"] / paths[fast]["median_seconds"]

    flops, peak = training_flops_per_image(Net(recipe.model)), matmul_gflops()
    results = dict(
        machine=dict(
            cpu=machine_name(CPU),
            cores=torch.get_num_threads(),
            python=platform.python_version(),
            torch=torch.__version__,
        ),
        model=dict(
            preset=options.model, spec=",".join(parse_spec(recipe.model)), params=count_parameters(Net(recipe.model))
        ),
        batch_size=recipe.batch_size,
        images_per_repeat=options.images,
        paths=paths,
        elastic=recipe.elastic,
        speedup_vs_classic=speedup("classic", "ours"),
        recipe_speedup_vs_classic=speedup("classic", "ours_recipe"),
        nchw_speedup_vs_classic=speedup("classic", "ours_nchw"),
        channels_last_speedup=speedup("ours_nchw", "ours"),
        data_path_speedup=speedup("classic_data_only", "ours_data_only"),
        training_flops_per_image=flops,
        gflops_per_second=flops * paths["ours"]["images_per_second"] / 1e9,
        matmul_gflops_per_second=peak,
        peak_memory_mb_one_epoch=peak_mb,
    )
    if full_run:
        results["full_run"] = full_run
    write_report(results, markdown(results), options.out)
    print(markdown(results))
    return 0


def megabytes(value: int | None) -> str:
    return f"{value:,} MB" if value is not None else "not measured on this OS"


def path_rows(results: dict) -> list[str]:
    """The table: one row per path, each with its ratio against the classic row that does the same work."""
    paths = results["paths"]
    classic, classic_data = paths["classic"]["median_seconds"], paths["classic_data_only"]["median_seconds"]
    elastic = results["elastic"]
    rows = [  # (what the row runs, its timings, which classic row it is compared with, bold)
        ("ours: tensors on the device, batched affine augmentation", "ours", classic, True),
        (
            "classic: per-image RandomAffine + DataLoader (2 workers), the same affine augmentation",
            "classic",
            classic,
            False,
        ),
        (
            f"ours as python train.py runs it: affine and elastic ({elastic:g} px) augmentation",
            "ours_recipe",
            classic,
            False,
        ),
        ("ours, affine augmentation, model in PyTorch's default NCHW layout", "ours_nchw", classic, False),
        ("ours, data only (shuffle + affine augmentation, no model)", "ours_data_only", classic_data, True),
        (f"ours, data only, affine and elastic ({elastic:g} px)", "ours_recipe_data_only", classic_data, False),
        ("classic, data only (DataLoader, no model)", "classic_data_only", classic_data, False),
    ]
    lines = ["| path | images / s | seconds / epoch (55,000 images) | against classic |", "|---|---:|---:|---:|"]
    for label, key, baseline, bold in rows:
        path = paths[key]
        ratio = f"{baseline / path['median_seconds']:.1f}x" if key not in ("classic", "classic_data_only") else "1.0x"
        digits = 2 if "data_only" in key else 1
        lines.append(
            f"| {label} | {path['images_per_second']:,.0f} | {path['seconds_per_epoch']:.{digits}f} | "
            + (f"**{ratio}**" if bold else ratio)
            + " |"
        )
    return lines


def markdown(results: dict) -> str:
    paths, machine = results["paths"], results["machine"]
    model_flag = "" if results["model"]["preset"] == "default" else f" --model {results['model']['preset']}"
    flops, achieved = results["training_flops_per_image"], results["gflops_per_second"]
    peak = results["matmul_gflops_per_second"]
    lines = [
        f"Measured on {machine['cpu']}, {machine['cores']} threads, torch {machine['torch']}; "
        f"{results['model']['preset']} model ({results['model']['params']:,} parameters), batch "
        f"{results['batch_size']}, median of {len(paths['ours']['repeats'])} repeats of "
        f"{results['images_per_repeat']:,} images after a warm-up. Seconds per epoch are training steps alone "
        "(no evaluation); each ratio is against the classic row that does the same work.",
        "",
        *path_rows(results),
        "",
        f"- the channels-last layout makes our epoch {results['channels_last_speedup']:.2f}x faster than NCHW; "
        "the other rows of ours train it channels-last, as train.py does on a CPU",
        f"- {flops / 1e6:.2f} MFLOP per training image (forward + backward: 6 FLOPs per multiply-accumulate of "
        f"`model.layer_table`), {achieved:.1f} GFLOP/s achieved by our affine row, {achieved / peak:.0%} of this "
        f"machine's {peak:.0f} GFLOP/s on a 2048x2048 float32 matrix product with the same threads, measured in the "
        "same run",
        f"- peak resident memory of `python train.py --epochs 1{model_flag}`: "
        f"{megabytes(results['peak_memory_mb_one_epoch'])}",
    ]
    if "full_run" in results:
        full = results["full_run"]
        lines.append(
            f"- a whole `python train.py{model_flag}` run in this benchmark ({full['epochs']} epochs, start-up and "
            f"evaluation included; not the committed model's run): {full['wall_seconds']:.0f} s, test accuracy "
            f"{full['test_accuracy']:.2f}%, peak memory {megabytes(full['peak_memory_mb'])}"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
