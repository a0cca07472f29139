"""Train the compact MNIST CNN: SGD + OneCycleLR, data and augmentation on the device.

    python train.py                      # 20 epochs, default preset, saves models/mnist_model.pth
    python train.py --model tiny --seed 3 --out-dir runs/tiny3

Model choice and hyperparameters are made on a 5,000-image validation split carved from the
training set; the test set is only reported. The saved model is the final-epoch model.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from tqdm import tqdm

from compact_mnist.checkpoint import load_checkpoint, load_weights, save_atomic, write_atomic
from compact_mnist.data import (
    VAL_SIZE,
    add_data_dir_argument,
    augment,
    batches_per_epoch,
    load_mnist,
    resolve_data_dir,
    shuffled_batches,
)
from compact_mnist.errors import UserError, run_cli
from compact_mnist.flags import (
    ArgumentParser,
    check_fits,
    fraction,
    model_spec,
    number,
    positive_float,
    positive_int,
    seed,
)
from compact_mnist.stamps import stamp
from evaluate import evaluate
from model import HEADS, PRESETS, Net, count_parameters, parse_spec

# Where a preset trains best with other values than the flags' defaults (chosen on validation: docs/experiments.md).
PRESET_RECIPES: dict[str, dict] = {
    "default": dict(elastic=1.25),
    "tiny": dict(label_smoothing=0.0, clean_epochs=5),
    "micro": dict(label_smoothing=0.0, dropout=0.0, weight_decay=1e-4, clean_epochs=5),
}
BATCHNORM_IMAGES = 10_000  # training images that set an averaged model's BatchNorm statistics
# Everything that decides what training produces; stored in the checkpoint and restored by --resume.
RECIPE = (
    "model", "dropout", "epochs", "batch_size", "lr", "momentum", "weight_decay", "label_smoothing",
    "augment", "augment_strength", "elastic", "clean_epochs", "ema", "val_size", "seed", "train_limit", "deterministic",
    "batchnorm", "head", "schedule",
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--epochs", type=positive_int, default=20, help="training epochs (default: 20)")
    add(
        "--batch-size",
        type=number(int, at_least=2),
        default=256,
        help="images per step; BatchNorm needs at least 2 (default: 256)",
    )
    add("--lr", type=positive_float, default=0.4, help="peak learning rate of OneCycleLR (default: 0.4)")
    add("--momentum", type=fraction, default=0.9, help="SGD momentum (default: 0.9)")
    add("--weight-decay", type=number(float, at_least=0), default=5e-4, help="SGD weight decay (default: 5e-4)")
    add("--label-smoothing", type=fraction, default=0.1, help="label smoothing (default: 0.1)")
    add("--dropout", type=fraction, default=0.05, help="dropout before the linear layer (default: 0.05)")
    add(
        "--model",
        type=model_spec,
        default="default",
        help=f"a preset ({', '.join(f'{k} = {v}' for k, v in PRESETS.items())}) or a layer spec "
        'such as "8,M,16,M,16"; a preset also brings its own recipe (default: the preset default)',
    )
    add("--no-augment", dest="augment", action="store_false", help="train without random affine augmentation")
    add(
        "--no-batchnorm",
        dest="batchnorm",
        action="store_false",
        help="no BatchNorm after each convolution, a bias instead (for the ablation study)",
    )
    add(
        "--head",
        choices=HEADS,
        default="gap",
        help="gap: a global average pool before the linear layer; flatten: every pixel of the last map into it "
        "(default: gap)",
    )
    add(
        "--schedule",
        choices=("onecycle", "constant"),
        default="onecycle",
        help="onecycle: OneCycleLR up to --lr and down; constant: --lr throughout (default: onecycle)",
    )
    add(
        "--augment-strength",
        type=number(float, at_least=0, at_most=3),
        default=1.0,
        help="scales the rotation (10 degrees), shift (2 px) and zoom (10%%) of augmentation (default: 1)",
    )
    add(
        "--elastic",
        type=number(float, at_least=0, at_most=4),
        default=0.0,
        help="elastic distortion: a smooth random displacement of up to this many pixels, added to the "
        "affine augmentation (default: 0, off)",
    )
    add(
        "--clean-epochs",
        type=number(int, at_least=0),
        default=0,
        help="train the last N epochs on un-augmented images, as the test images are (default: 0)",
    )
    add(
        "--ema",
        type=number(float, at_least=0, below=1),
        default=0.0,
        help="evaluate and save an exponential moving average of the weights with this decay per step, "
        "its BatchNorm statistics recomputed on training images (default: 0, off)",
    )
    add(
        "--val-size",
        type=number(int, at_least=0, at_most=50_000),
        default=VAL_SIZE,
        help="training images held out for validation; 0 trains on all 60,000 and reports no validation "
        "figure (default: 5000)",
    )
    add("--seed", type=seed, default=1, help="random seed (default: 1)")
    add("--deterministic", action="store_true", help="bit-reproducible runs (same machine and threads)")
    add(
        "--train-limit",
        type=number(int, at_least=2),
        default=None,
        help="use only this many training images (quick checks)",
    )
    add(
        "--device",
        default="auto",
        choices=["auto", "cuda", "mps", "cpu"],
        help="auto picks CUDA, then MPS, then CPU (default: auto)",
    )
    add_data_dir_argument(parser)
    add(
        "--out-dir",
        type=Path,
        default=Path("models"),
        help="where the model and metrics go (default: models/, replacing the committed model)",
    )
    add("--resume", type=Path, default=None, help="continue an interrupted run from its resume checkpoint")
    for action in parser._actions:  # each flag's help names the presets that train with another value
        own = [f"{name} {recipe[action.dest]:g}" for name, recipe in PRESET_RECIPES.items() if action.dest in recipe]
        if own:
            action.help += f"; the presets' own: {', '.join(own)}"
    args = parser.parse_args(argv)
    if args.model in PRESET_RECIPES:  # a preset's own hyperparameters, unless a flag says otherwise
        parser.set_defaults(**PRESET_RECIPES[args.model])
        args = parser.parse_args(argv)
    if args.augment and args.augment_strength > 0 and args.clean_epochs >= args.epochs:
        source = f" ({args.model}'s recipe)" if "clean_epochs" in PRESET_RECIPES.get(args.model, {}) else ""
        parser.error(
            f"--clean-epochs {args.clean_epochs}{source} leaves no augmented epoch of --epochs "
            f"{args.epochs}; pass --clean-epochs below {args.epochs}, or --no-augment to train without "
            "augmentation"
        )
    args.device = pick_device(args.device, parser)
    train_size = min(args.train_limit or 60_000 - args.val_size, 60_000 - args.val_size)
    if args.batch_size > train_size:
        limit = " (--train-limit)" if args.train_limit else ""
        parser.error(
            f"--batch-size {args.batch_size} is larger than the {train_size:,} training images{limit}, "
            f"so every epoch would be one step; use at most {train_size}"
        )
    try:
        check_fits(args.model, args.batch_size, args.device)
    except argparse.ArgumentTypeError as error:
        parser.error(f"argument --model: {error}")
    return args


def pick_device(name: str, parser: argparse.ArgumentParser) -> torch.device:
    """The requested device, or the best available one for "auto"; a usage error if absent."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name == "auto":
        name = next((device for device, ok in available.items() if ok), "cpu")
    elif name != "cpu" and not available[name]:
        parser.error(f"--device {name} was asked for but is not available here; use --device cpu or auto")
    return torch.device(name)


def machine_name(device: torch.device) -> str:
    """The GPU's or CPU's model name, for the record of where a run's timings come from."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if sys.platform == "darwin":
        brand = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        return brand.stdout.strip() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def check_writable(folder: Path) -> None:
    """Fail before training, not after it, if results cannot be saved."""
    try:
        write_atomic(b"", folder / ".write-test")
        (folder / ".write-test").unlink()
    except (OSError, UserError):
        raise UserError(f"cannot write to {folder}/; choose another folder with --out-dir") from None


def build_model(args: argparse.Namespace) -> Net:
    """The network to train, on its device. On a CPU it is stored channels-last (NHWC), where PyTorch runs
    its depthwise and 1x1 convolutions faster (benchmarks/results.md measures by how much). GPUs keep PyTorch's
    default layout, where it was not measured."""
    model = Net(args.model, args.dropout, args.batchnorm, args.head).to(args.device)
    return model.to(memory_format=torch.channels_last) if args.device.type == "cpu" else model


def make_optimizer(model: torch.nn.Module, args: argparse.Namespace, steps_per_epoch: int):
    """SGD with Nesterov momentum, driven by a OneCycleLR schedule stepped once per batch."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, nesterov=True, weight_decay=args.weight_decay
    )
    if args.schedule == "constant":
        return optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    return optimizer, scheduler


def rng_states(generator: torch.Generator) -> dict:
    """Every random state that training draws from, so a resumed run continues identically."""
    states = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, generator: torch.Generator) -> None:
    """Restore what `rng_states` saved."""
    torch.set_rng_state(states["torch"])
    generator.set_state(states["data"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def validate(model: torch.nn.Module, data) -> tuple[float | None, float | None]:
    """Validation loss and accuracy; None for both when training used every image (--val-size 0)."""
    if len(data.val_labels) == 0:
        return None, None
    return evaluate(model, data.val_images, data.val_labels)


def percent(value: float | None) -> str:
    return f"{value:6.2f}%" if value is not None else "    n/a"


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `model`'s weights. BatchNorm buffers are not averaged: a running
    mean of running means is stale, so `refresh_batchnorm` recomputes them before each evaluation."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def refresh_batchnorm(averaged: AveragedModel, images: torch.Tensor) -> torch.nn.Module:
    """Recompute the averaged model's BatchNorm statistics on un-augmented training images; return it."""
    update_bn(images[:BATCHNORM_IMAGES].split(500), averaged)
    return averaged.module


def train_step(
    model, images, labels, optimizer, scheduler, label_smoothing: float, averaged=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a batch, the scheduler's step and the average's update; returns output and loss."""
    output = model(images)
    # cross_entropy re-applies log_softmax, which leaves log-probabilities unchanged.
    loss = F.cross_entropy(output, labels, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    if averaged is not None:
        averaged.update_parameters(model)
    return output, loss


def train_one_epoch(
    model, data, optimizer, scheduler, generator, args, epoch: int, averaged=None
) -> tuple[float, float]:
    """One pass over the training images; returns mean loss and accuracy (%) on the batches as trained.
    `averaged`, if given, is updated after every step."""
    model.train()
    augmenting = args.augment and args.augment_strength > 0 and epoch <= args.epochs - args.clean_epochs
    count = len(data.train_labels)
    steps = batches_per_epoch(count, args.batch_size)
    losses = torch.zeros(steps, device=args.device)
    correct = torch.zeros((), device=args.device)
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{args.epochs}", leave=False, disable=None)
    for step, index in enumerate(shuffled_batches(count, args.batch_size, generator)):
        images, labels = data.train_images[index], data.train_labels[index]
        if augmenting:
            images = augment(images, generator, strength=args.augment_strength, elastic=args.elastic)
        output, loss = train_step(model, images, labels, optimizer, scheduler, args.label_smoothing, averaged)
        # Accumulate on the device; reading values back every step would stall a GPU.
        losses[step] = loss.detach()
        correct += (output.argmax(1) == labels).sum()
        if step % 25 == 0 or step == steps - 1:
            if not math.isfinite(loss.item()):
                first = int((~torch.isfinite(losses[: step + 1])).nonzero()[0])
                raise UserError(
                    f"loss became {losses[first].item()} at epoch {epoch}, step {first + 1}; "
                    f"try a lower --lr (now {args.lr}). Nothing was saved; earlier files are unchanged"
                )
            seen = min((step + 1) * args.batch_size, count)
            bar.set_postfix(
                loss=f"{loss.item():.3f}", acc=f"{correct.item() / seen:.2%}", lr=f"{scheduler.get_last_lr()[0]:.4f}"
            )
            bar.update(step + 1 - bar.n)
    bar.close()
    return losses.mean().item(), correct.item() / min(steps * args.batch_size, count) * 100


def trained_recipe(args: argparse.Namespace) -> dict:
    """What a run trains, resolved from its flags: the layer spec, epochs, seed and every other recipe value.
    Saved in metrics.json; scripts/launch.py compares it before reusing a finished run."""
    return dict(
        spec=",".join(parse_spec(args.model)),
        epochs=args.epochs,
        seed=args.seed,
        hyperparameters={key: getattr(args, key) for key in RECIPE if key not in ("model", "epochs", "seed")},
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    resume = load_checkpoint(args.resume, ("state_dict", "resume")) if args.resume else None
    if resume:
        try:
            recipe = resume["resume"]["recipe"]
            vars(args).update({key: recipe.get(key, getattr(args, key)) for key in RECIPE})
            next_epoch = resume["resume"]["epoch"] + 1
        except (KeyError, TypeError):
            raise UserError(f"{args.resume} is not a resume checkpoint written by train.py (no recipe)") from None
        print(f"resuming {args.resume} at epoch {next_epoch} of {args.epochs}")
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    check_writable(args.out_dir)
    started = time.perf_counter()
    data = load_mnist(resolve_data_dir(args.data_dir), args.device, args.train_limit, val_size=args.val_size)

    # Imported here, not at the top, so that --help and usage errors answer at the speed of `import torch`.
    import torchvision
    from torchsummary import summary

    from compact_mnist.plots import training_curves

    # torchsummary runs a forward pass in train mode on random input: show a throwaway copy.
    summary(Net(args.model, args.dropout, args.batchnorm, args.head), (1, 28, 28), device="cpu")
    torch.manual_seed(args.seed)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    model = build_model(args)
    params = count_parameters(model)
    print(f"model {args.model}: {params:,} trainable parameters, training on {args.device}")
    optimizer, scheduler = make_optimizer(
        model, args, steps_per_epoch=batches_per_epoch(len(data.train_labels), args.batch_size)
    )
    averaged = weight_average(model, args.ema) if args.ema else None
    history: list[dict] = []
    start_epoch = 0
    if resume:
        load_weights(model, resume["state_dict"], args.resume)
        try:
            if averaged is not None:
                averaged.load_state_dict(resume["resume"]["averaged"])
            optimizer.load_state_dict(resume["resume"]["optimizer"])
            scheduler.load_state_dict(resume["resume"]["scheduler"])
            set_rng_states(resume["resume"]["rng"], generator)
            history, start_epoch = resume["resume"]["history"], resume["resume"]["epoch"]
        except (KeyError, TypeError, ValueError, RuntimeError):
            raise UserError(f"{args.resume} is a damaged resume checkpoint; start again without --resume") from None

    def snapshot(epoch: int) -> dict:
        """Everything needed to continue after `epoch` completed epochs."""
        state = dict(
            epoch=epoch,
            history=copy.deepcopy(history),
            rng=rng_states(generator),
            recipe={key: getattr(args, key) for key in RECIPE},
            optimizer=copy.deepcopy(optimizer.state_dict()),
            scheduler=scheduler.state_dict(),
            averaged=copy.deepcopy(averaged.state_dict()) if averaged is not None else None,
        )
        return {"state_dict": copy.deepcopy(model.state_dict()), "resume": state}

    last_complete = snapshot(start_epoch)
    final_model = model if averaged is None else averaged.module  # replaced after every epoch
    try:
        for epoch in range(start_epoch + 1, args.epochs + 1):
            epoch_start = time.perf_counter()
            lr = scheduler.get_last_lr()[0]
            train_loss, train_acc = train_one_epoch(model, data, optimizer, scheduler, generator, args, epoch, averaged)
            # The model that is evaluated and saved: the raw weights, or their average.
            final_model = model if averaged is None else refresh_batchnorm(averaged, data.train_images)
            val_loss, val_acc = validate(final_model, data)
            test_loss, test_acc = evaluate(final_model, data.test_images, data.test_labels)
            record = dict(
                epoch=epoch,
                lr=lr,
                train_loss=train_loss,
                train_acc=train_acc,
                val_loss=val_loss,
                val_acc=val_acc,
                test_loss=test_loss,
                test_acc=test_acc,
            )
            if averaged is not None:  # the raw weights too: the same run answers whether averaging helps
                record["raw_val_acc"] = validate(model, data)[1]
                record["raw_test_acc"] = evaluate(model, data.test_images, data.test_labels)[1]
            record["seconds"] = time.perf_counter() - epoch_start
            history.append(record)
            last_complete = snapshot(epoch)  # before the line below, so Ctrl-C after it keeps this epoch
            print(
                f"epoch {epoch:2d}/{args.epochs}  train loss {train_loss:.4f} acc {train_acc:6.2f}%  "
                f"val {percent(val_acc)}  test {test_acc:6.2f}%  lr {lr:.4f}  {record['seconds']:5.1f}s",
                flush=True,
            )
    except KeyboardInterrupt:
        path = args.out_dir / "resume.pth"
        save_atomic(last_complete, path)
        done = last_complete["resume"]["epoch"]
        print(
            f"\ninterrupted; saved {path} after epoch {done}. "
            f"Continue with: python train.py --resume {path} --out-dir {args.out_dir}"
        )
        return 130

    total_seconds = time.perf_counter() - started
    final = history[-1]
    meta = dict(
        model=args.model,
        **trained_recipe(args),
        params=params,
        val_accuracy=final["val_acc"],
        test_accuracy=final["test_acc"],
        raw_val_accuracy=final.get("raw_val_acc"),
        raw_test_accuracy=final.get("raw_test_acc"),
        train_seconds=total_seconds,
        seconds_per_epoch=sum(h["seconds"] for h in history) / len(history),
        device=str(args.device),
        machine=machine_name(args.device),
        threads=torch.get_num_threads(),
        torch_version=str(torch.__version__),
        torchvision_version=str(torchvision.__version__),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        resumed=bool(resume),
    )
    model_path = args.out_dir / "mnist_model.pth"
    save_atomic({"state_dict": final_model.state_dict(), "meta": meta}, model_path)
    metrics = json.dumps({"meta": meta, "history": history}, indent=2) + "\n"
    write_atomic(metrics.encode(), args.out_dir / "metrics.json")
    training_curves(history, args.out_dir / "training_curves.png")
    stamp(args.out_dir / "training_curves.png", [args.out_dir / "metrics.json"], "python train.py")
    print(
        f"saved {model_path}: {params:,} parameters, val {percent(final['val_acc']).strip()}, "
        f"test {final['test_acc']:.2f}%, {total_seconds:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
