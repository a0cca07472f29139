"""Train the compact MNIST CNN: SGD + OneCycleLR, data and augmentation on the device.

    python train.py                      # 20 epochs, default preset, saves models/mnist_model.pth
    python train.py --model tiny --seed 3 --out-dir runs/tiny3

Model choice and hyperparameters are made on a 5,000-image validation split carved from the
training set; the test set is only reported. The saved model is the final-epoch model.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from tqdm import tqdm

from compact_mnist.checkpoint import load_checkpoint, load_weights, save_atomic, write_atomic
from compact_mnist.data import (
    MnistTensors,
    add_data_dir_argument,
    augment,
    batches_per_epoch,
    load_mnist,
    resolve_data_dir,
    shuffled_batches,
)
from compact_mnist.errors import UserError, run_cli
from compact_mnist.flags import ArgumentParser, add_recipe_flags, check_fits, given_recipe
from compact_mnist.recipe import Recipe
from compact_mnist.stamps import stamp
from evaluate import evaluate
from model import Net, count_parameters, parse_spec

BATCHNORM_IMAGES = 10_000  # training images that set an averaged model's BatchNorm statistics


def parse_args(argv: list[str] | None = None, *, exit_on_error: bool = True) -> argparse.Namespace:
    """The command line: `recipe` (what to train: the --model preset's recipe with the flags given on top),
    `device`, `data_dir`, `out_dir` and `resume`. With `exit_on_error=False` a refusal is a UsageError."""
    parser = ArgumentParser(description=__doc__.split("\n")[0], exit_on_error=exit_on_error)
    add_recipe_flags(parser)
    add = parser.add_argument
    add(
        "--device",
        default="auto",
        choices=["auto", "cuda", "mps", "cpu"],
        help="auto picks CUDA, then MPS, then CPU",
    )
    add_data_dir_argument(parser)
    add(
        "--out-dir",
        type=Path,
        default=Path("models"),
        help="where the model and metrics go (default: models/, replacing the committed model)",
    )
    add("--resume", type=Path, default=None, help="continue an interrupted run from its resume checkpoint")
    args = parser.parse_args(argv)
    args.recipe = given_recipe(args)
    problems = args.recipe.problems()
    if problems:
        parser.error("; and ".join(problems))
    args.device = pick_device(args.device, parser)
    try:
        check_fits(args.recipe.model, args.recipe.batch_size, args.device)
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


def network(recipe: Recipe) -> Net:
    """The recipe's network, freshly initialized, on the CPU in PyTorch's default layout."""
    return Net(recipe.model, recipe.dropout, recipe.batchnorm, recipe.head)


def build_model(recipe: Recipe, device: torch.device) -> Net:
    """The network to train, on its device. On a CPU it is stored channels-last (NHWC), where PyTorch runs
    its depthwise and 1x1 convolutions faster (benchmarks/results.md measures by how much). GPUs keep PyTorch's
    default layout, where it was not measured."""
    model = network(recipe).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cpu" else model


def make_optimizer(model: torch.nn.Module, recipe: Recipe, steps_per_epoch: int):
    """SGD with Nesterov momentum, driven by a OneCycleLR schedule stepped once per batch."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True, weight_decay=recipe.weight_decay
    )
    if recipe.schedule == "constant":
        return optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch
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


def validate(model: torch.nn.Module, data: MnistTensors) -> tuple[float | None, float | None]:
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
    model, data: MnistTensors, optimizer, scheduler, generator, recipe: Recipe, epoch: int, averaged=None
) -> tuple[float, float]:
    """One pass over the training images; returns mean loss and accuracy (%) on the batches as trained.
    `averaged`, if given, is updated after every step."""
    model.train()
    augmenting = recipe.augmented(epoch)
    count, device = len(data.train_labels), data.train_labels.device
    steps = batches_per_epoch(count, recipe.batch_size)
    losses = torch.zeros(steps, device=device)
    correct = torch.zeros((), device=device)
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{recipe.epochs}", leave=False, disable=None)
    for step, index in enumerate(shuffled_batches(count, recipe.batch_size, generator)):
        images, labels = data.train_images[index], data.train_labels[index]
        if augmenting:
            images = augment(images, generator, strength=recipe.augment_strength, elastic=recipe.elastic)
        output, loss = train_step(model, images, labels, optimizer, scheduler, recipe.label_smoothing, averaged)
        # Accumulate on the device; reading values back every step would stall a GPU.
        losses[step] = loss.detach()
        correct += (output.argmax(1) == labels).sum()
        if step % 25 == 0 or step == steps - 1:
            if not math.isfinite(loss.item()):
                first = int((~torch.isfinite(losses[: step + 1])).nonzero()[0])
                raise UserError(
                    f"loss became {losses[first].item()} at epoch {epoch}, step {first + 1}; "
                    f"try a lower --lr (now {recipe.lr}). Nothing was saved; earlier files are unchanged"
                )
            seen = min((step + 1) * recipe.batch_size, count)
            bar.set_postfix(
                loss=f"{loss.item():.3f}", acc=f"{correct.item() / seen:.2%}", lr=f"{scheduler.get_last_lr()[0]:.4f}"
            )
            bar.update(step + 1 - bar.n)
    bar.close()
    return losses.mean().item(), correct.item() / min(steps * recipe.batch_size, count) * 100


def evaluated(model, final_model, data: MnistTensors, record: dict) -> dict:
    """`record` with the validation and test figures of `final_model`, the one to save, and with --ema those of
    the raw weights too, so that one run answers whether averaging helps."""
    record["val_loss"], record["val_acc"] = validate(final_model, data)
    record["test_loss"], record["test_acc"] = evaluate(final_model, data.test_images, data.test_labels)
    if final_model is not model:
        record["raw_val_acc"] = validate(model, data)[1]
        record["raw_test_acc"] = evaluate(model, data.test_images, data.test_labels)[1]
    return record


@dataclasses.dataclass
class Fitted:
    """What `fit` trained: the model to save (the raw weights, or their average with --ema) and one record per
    epoch (learning rate, losses and accuracies, seconds)."""

    model: torch.nn.Module
    history: list[dict]


class Interrupted(Exception):
    """Ctrl-C during `fit`. `checkpoint`, saved as a file, continues after the last complete epoch."""

    def __init__(self, checkpoint: dict) -> None:
        super().__init__(f"interrupted after epoch {checkpoint['resume']['epoch']}")
        self.checkpoint = checkpoint


def resumed(recipe: Recipe, path: Path) -> tuple[Recipe, int]:
    """The recipe that the resume checkpoint at `path` was training (`recipe`'s values for any field it lacks),
    and its completed epochs."""
    checkpoint = load_checkpoint(path, ("state_dict", "resume"))
    try:
        return recipe.updated(checkpoint["resume"]["recipe"]), checkpoint["resume"]["epoch"]
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"{path} is not a resume checkpoint written by train.py (no recipe)") from None


def restore(path: Path, model, optimizer, scheduler, generator, averaged) -> list[dict]:
    """Load the resume checkpoint at `path` into training's state: the weights and their average, the optimizer,
    the schedule and the random generators. Returns the completed epochs' records."""
    checkpoint = load_checkpoint(path, ("state_dict", "resume"))
    load_weights(model, checkpoint["state_dict"], path)
    try:
        state = checkpoint["resume"]
        if averaged is not None:
            averaged.load_state_dict(state["averaged"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"], generator)
        return state["history"]
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise UserError(f"{path} is a damaged resume checkpoint; start again without --resume") from None


def fit(
    recipe: Recipe,
    data: MnistTensors,
    device: torch.device,
    on_epoch: Callable[[dict], None] | None = None,
    resume: Path | None = None,
) -> Fitted:
    """Train `recipe` on `data` (on `device`), evaluating after every epoch, and pass each epoch's record to
    `on_epoch`. `resume`, a file that `Interrupted.checkpoint` was saved to, continues that run where it stopped;
    `recipe` must then be the one it was training (`resumed` reads it from the file). A deterministic recipe
    switches PyTorch to deterministic algorithms for the whole process."""
    if recipe.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator(device).manual_seed(recipe.seed)
    model = build_model(recipe, device)
    steps = batches_per_epoch(len(data.train_labels), recipe.batch_size)
    optimizer, scheduler = make_optimizer(model, recipe, steps_per_epoch=steps)
    averaged = weight_average(model, recipe.ema) if recipe.ema else None
    history = restore(resume, model, optimizer, scheduler, generator, averaged) if resume else []

    def snapshot() -> dict:
        """Everything needed to continue after the epochs in `history`."""
        state = dict(
            epoch=len(history),
            history=copy.deepcopy(history),
            rng=rng_states(generator),
            recipe=recipe.as_dict(),
            optimizer=copy.deepcopy(optimizer.state_dict()),
            scheduler=scheduler.state_dict(),
            averaged=copy.deepcopy(averaged.state_dict()) if averaged is not None else None,
        )
        return {"state_dict": copy.deepcopy(model.state_dict()), "resume": state}

    last_complete = snapshot()
    final_model = model if averaged is None else averaged.module  # replaced after every epoch
    try:
        for epoch in range(len(history) + 1, recipe.epochs + 1):
            started, lr = time.perf_counter(), scheduler.get_last_lr()[0]
            train_loss, train_acc = train_one_epoch(
                model, data, optimizer, scheduler, generator, recipe, epoch, averaged
            )
            final_model = model if averaged is None else refresh_batchnorm(averaged, data.train_images)
            record = evaluated(
                model, final_model, data, dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc)
            )
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            last_complete = snapshot()  # before on_epoch, so that Ctrl-C after its line keeps this epoch
            if on_epoch:
                on_epoch(record)
    except KeyboardInterrupt:
        raise Interrupted(last_complete) from None
    return Fitted(final_model, history)


def trained_recipe(recipe: Recipe) -> dict:
    """What a run trains, as metrics.json records it: the layer spec, epochs, seed and every other recipe value.
    `Recipe.from_record` reads it back; scripts/launch.py compares the two before reusing a finished run."""
    values = recipe.as_dict()
    return dict(
        spec=",".join(parse_spec(values.pop("model"))),
        epochs=values.pop("epochs"),
        seed=values.pop("seed"),
        hyperparameters=values,
    )


def run_record(recipe: Recipe, fitted: Fitted, device: torch.device, seconds: float, resumed: bool) -> dict:
    """metrics.json's "meta", also stored in the checkpoint: the recipe, the final figures, and where and when."""
    import torchvision

    final = fitted.history[-1]
    return dict(
        model=recipe.model,
        **trained_recipe(recipe),
        params=count_parameters(fitted.model),
        val_accuracy=final["val_acc"],
        test_accuracy=final["test_acc"],
        raw_val_accuracy=final.get("raw_val_acc"),
        raw_test_accuracy=final.get("raw_test_acc"),
        train_seconds=seconds,
        seconds_per_epoch=sum(h["seconds"] for h in fitted.history) / len(fitted.history),
        device=str(device),
        machine=machine_name(device),
        threads=torch.get_num_threads(),
        torch_version=str(torch.__version__),
        torchvision_version=str(torchvision.__version__),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        resumed=resumed,
    )


def save_run(out_dir: Path, fitted: Fitted, meta: dict) -> dict:
    """Write the model, metrics.json and the training curves into `out_dir`; return what metrics.json holds."""
    from compact_mnist.plots import training_curves  # matplotlib: only once there is something to draw

    save_atomic({"state_dict": fitted.model.state_dict(), "meta": meta}, out_dir / "mnist_model.pth")
    metrics = {"meta": meta, "history": fitted.history}
    write_atomic((json.dumps(metrics, indent=2) + "\n").encode(), out_dir / "metrics.json")
    training_curves(fitted.history, out_dir / "training_curves.png")
    stamp(out_dir / "training_curves.png", [out_dir / "metrics.json"], "python train.py")
    return metrics


def epoch_line(record: dict, epochs: int) -> str:
    return (
        f"epoch {record['epoch']:2d}/{epochs}  train loss {record['train_loss']:.4f} acc {record['train_acc']:6.2f}%  "
        f"val {percent(record['val_acc'])}  test {record['test_acc']:6.2f}%  lr {record['lr']:.4f}  "
        f"{record['seconds']:5.1f}s"
    )


def main(argv: list[str] | None = None, send: Callable[[dict], None] | None = None) -> int:
    """`python train.py`. `send`, if given, receives {"epoch": record} after every epoch and {"metrics": ...},
    what metrics.json holds, once saved: scripts/launch.py's worker passes them on to its parent."""
    args = parse_args(argv)
    recipe = args.recipe
    if args.resume:
        recipe, done = resumed(recipe, args.resume)
        print(f"resuming {args.resume} at epoch {done + 1} of {recipe.epochs}")
    check_writable(args.out_dir)
    started = time.perf_counter()
    data = load_mnist(resolve_data_dir(args.data_dir), args.device, recipe.train_limit, val_size=recipe.val_size)

    # Imported here, not at the top, so that --help and usage errors answer at the speed of `import torch`.
    from torchsummary import summary

    # torchsummary runs a forward pass in train mode on random input: show a throwaway copy.
    shown_model = network(recipe)
    summary(shown_model, (1, 28, 28), device="cpu")
    print(f"model {recipe.model}: {count_parameters(shown_model):,} trainable parameters, training on {args.device}")

    def report(record: dict) -> None:
        print(epoch_line(record, recipe.epochs), flush=True)
        if send:
            send({"epoch": record})

    try:
        fitted = fit(recipe, data, args.device, report, args.resume)
    except Interrupted as interrupted:
        path = args.out_dir / "resume.pth"
        save_atomic(interrupted.checkpoint, path)
        print(
            f"\ninterrupted; saved {path} after epoch {interrupted.checkpoint['resume']['epoch']}. "
            f"Continue with: python train.py --resume {path} --out-dir {args.out_dir}"
        )
        return 130
    seconds = time.perf_counter() - started
    meta = run_record(recipe, fitted, args.device, seconds, resumed=bool(args.resume))
    metrics = save_run(args.out_dir, fitted, meta)
    if send:
        send({"metrics": metrics})
    print(
        f"saved {args.out_dir / 'mnist_model.pth'}: {meta['params']:,} parameters, "
        f"val {percent(meta['val_accuracy']).strip()}, test {meta['test_accuracy']:.2f}%, {seconds:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
