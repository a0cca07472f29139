"""Train the compact MNIST CNN: SGD with Nesterov momentum and OneCycleLR, data and augmentation on the device.

    python train.py                                 # 20 epochs of the default preset into models/
    python train.py --model tiny --seed 3 --out-dir runs/tiny3
    python train.py --resume models/resume.pth      # continue a run that stopped, however it stopped

Model choice and hyperparameters are made on a 5,000-image validation split carved from the training set; the test
set is only reported. The saved model is the final-epoch model, reading with test-time views where the recipe says
so (--views; each epoch's figures are the network's alone). After every epoch the whole state of the run goes to
OUT/resume.pth, so that a run killed in any way continues from its last complete epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from tqdm import tqdm

from compact_mnist.cli import ArgumentParser, UserError, run_cli
from compact_mnist.data import (
    MnistTensors,
    add_data_dir_argument,
    augment,
    batches_per_epoch,
    load_mnist,
    resolve_data_dir,
    shuffled_batches,
)
from compact_mnist.files import load_checkpoint, save_atomic, save_figure, stamp, write_atomic
from compact_mnist.memory import check_fits
from compact_mnist.recipe import FIELDS, Recipe, add_recipe_flags, flag, for_model, given_values
from model import Net, count_parameters, parse_spec, predict

BATCHNORM_IMAGES = 10_000  # training images that set an averaged model's BatchNorm statistics
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (log-probabilities, images, labels)
Network = Callable[[Recipe], Net]  # a recipe's network, freshly initialized: `network`, or a method's own


def parse_args(argv: list[str] | None = None, *, exit_on_error: bool = True) -> argparse.Namespace:
    """The command line: `recipe` (the --model preset's recipe with the flags given on top, or with --resume the
    run's own), `device`, `data_dir`, `out_dir` and `resume`. With `exit_on_error=False` a refusal is a
    UsageError."""
    parser = ArgumentParser(description=__doc__.split("\n")[0], exit_on_error=exit_on_error)
    add_recipe_flags(parser)
    add = parser.add_argument
    add("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="auto picks CUDA, then MPS, then CPU")
    add_data_dir_argument(parser)
    add(
        "--out-dir",
        type=Path,
        help="where the model, metrics and resume file go (default: models/; with --resume, the resume file's)",
    )
    add("--resume", type=Path, default=None, help="continue a run from the resume.pth it wrote after its last epoch")
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir or (args.resume.parent if args.resume else Path("models"))
    given = given_values(args)
    args.recipe = resumed(args.resume, given) if args.resume else for_model(**given)
    problems = args.recipe.problems()
    if problems:
        parser.error("; and ".join(problems))
    args.device = pick_device(args.device, parser)
    try:
        check_fits(args.recipe.model, args.recipe.batch_size, args.device)
    except argparse.ArgumentTypeError as error:
        parser.error(f"argument --model: {error}")
    return args


def resumed(path: Path, given: dict[str, Any]) -> Recipe:
    """The recipe of the run whose resume file is at `path`, with the flags `given` applied where a run in progress
    can take them; any other that differs from the run's own is refused."""
    state = load_checkpoint(path, ("state_dict", "resume"))["resume"]
    try:
        recipe = Recipe.recorded(state["recipe"])
        network(recipe)
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path} is not a resume checkpoint written by train.py (no recipe it can train)") from None
    if given.get("model") and parse_spec(given["model"]) == parse_spec(recipe.model):
        given["model"] = recipe.model  # the same network, named as a preset or written out
    metadata = {item.name: item.metadata for item in FIELDS}
    fixed = [
        f"{flag(name, value)} (the run has {flag(name, getattr(recipe, name), bare=True)})"
        for name, value in given.items()
        if value != getattr(recipe, name)
        and not metadata[name]["resume"]
        and not (name == "epochs" and recipe.schedule == "constant" and value >= state["epoch"])
    ]
    if fixed:
        raise UserError(
            f"{', '.join(fixed)} cannot change a run in progress: its network, data, optimizer and random streams "
            "are set at the start, OneCycleLR fixes its total steps then, and finished epochs stay finished; drop "
            "them, or start a new run"
        )
    return dataclasses.replace(recipe, **given)


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
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def network(recipe: Recipe) -> Net:
    """The recipe's network, freshly initialized, on the CPU in PyTorch's default layout."""
    return Net(recipe.model, recipe.dropout, recipe.batchnorm, recipe.head)


def build_model(recipe: Recipe, device: torch.device, network_fn: Network = network) -> Net:
    """The network to train, on its device. On a CPU it is stored channels-last (NHWC), where PyTorch runs its
    depthwise and 1x1 convolutions faster (benchmarks/results.md measures by how much)."""
    model = network_fn(recipe).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cpu" else model


def make_optimizer(
    model: nn.Module, recipe: Recipe, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with Nesterov momentum (plain SGD at momentum 0), driven by a OneCycleLR schedule stepped once per
    batch, which also cycles the momentum between 0.95 and 0.85 (torch's default), or by a constant learning rate."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )
    if recipe.schedule == "constant":
        return optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=recipe.lr,
        epochs=recipe.epochs,
        steps_per_epoch=steps_per_epoch,
        cycle_momentum=recipe.momentum > 0,
    )
    return optimizer, scheduler


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every random state that training draws from, so that a resumed run continues identically."""
    states = {"device": generator.device.type, "torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():  # dropout on MPS draws from this one
        states["mps"] = torch.mps.get_rng_state()
    return states


def set_rng_states(states: dict[str, Any], generator: torch.Generator, seed: int) -> None:
    """Restore what `rng_states` saved. A data generator saved on another device type cannot be restored here: the
    data is then drawn from a new stream, seeded from `seed`, and the run says so."""
    torch.set_rng_state(states["torch"])
    # Files from before the device was recorded: a CUDA generator's state is 16 bytes, a CPU one's 5,056.
    saved_on = states.get("device") or ("cuda" if states["data"].numel() == 16 else "cpu")
    if saved_on == generator.device.type:
        generator.set_state(states["data"])
    else:
        generator.manual_seed(seed)
        print(
            f"resuming on {generator.device.type} a run saved on {saved_on}: its data order and augmentation "
            "continue on a new random stream (a resumed run is bit-identical only on the device it started on)"
        )
    if "cuda" in states and torch.cuda.is_available():  # as many GPUs as this machine has of those saved
        for index, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
    if "mps" in states and torch.backends.mps.is_available():
        torch.mps.set_rng_state(states["mps"])


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and accuracy in percent."""
    log_probs = predict(model, images)
    loss = F.nll_loss(log_probs, labels).item()
    # Count in integers: a float32 mean turns 9,940 of 10,000 into 99.39999%.
    accuracy = (log_probs.argmax(1) == labels).sum().item() * 100 / len(labels)
    return loss, accuracy


def validate(model: nn.Module, data: MnistTensors) -> tuple[float | None, float | None]:
    """Validation loss and accuracy; None for both when training used every image (--val-size 0)."""
    return evaluate(model, data.val_images, data.val_labels) if len(data.val_labels) else (None, None)


def percent(value: float | None) -> str:
    return f"{value:6.2f}%" if value is not None else "    n/a"


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `model`'s weights. BatchNorm buffers are not averaged: a running mean of
    running means is stale, so `refresh_batchnorm` recomputes them before each evaluation."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def refresh_batchnorm(averaged: AveragedModel, images: torch.Tensor) -> Net:
    """Recompute the averaged model's BatchNorm statistics on un-augmented training images; return it."""
    update_bn(images[:BATCHNORM_IMAGES].split(500), averaged)
    return cast(Net, averaged.module)  # the average holds a copy of the Net it averages


def cross_entropy(label_smoothing: float) -> Loss:
    """Training's loss: cross-entropy with the labels, smoothed. It re-applies log_softmax to the network's output,
    which leaves log-probabilities unchanged."""
    return lambda output, images, labels: F.cross_entropy(output, labels, label_smoothing=label_smoothing)


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: Loss,
    averaged: AveragedModel | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a batch, the scheduler's step and the average's update; returns output and loss."""
    output = model(images)
    loss = loss_fn(output, images, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    if averaged is not None:
        averaged.update_parameters(model)
    return output, loss


def train_one_epoch(
    model: nn.Module,
    data: MnistTensors,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    recipe: Recipe,
    epoch: int,
    averaged: AveragedModel | None = None,
    loss_fn: Loss | None = None,
) -> tuple[float, float]:
    """One pass over the training images; returns mean loss and accuracy (%) on the batches as trained.
    `averaged`, if given, is updated after every step; `loss_fn` replaces `cross_entropy`."""
    model.train()
    loss_fn = loss_fn or cross_entropy(recipe.label_smoothing)
    count, device = len(data.train_labels), data.train_labels.device
    steps = batches_per_epoch(count, recipe.batch_size)
    losses = torch.zeros(steps, device=device)
    correct = torch.zeros((), device=device)
    batches = tqdm(shuffled_batches(count, recipe.batch_size, generator), total=steps, leave=False, disable=None)
    batches.set_description(f"epoch {epoch}/{recipe.epochs}")
    for step, index in enumerate(batches):
        images, labels = data.train_images[index], data.train_labels[index]
        if recipe.augmented(epoch):
            images = augment(images, generator, strength=recipe.augment_strength, elastic=recipe.elastic)
        output, loss = train_step(model, images, labels, optimizer, scheduler, loss_fn, averaged)
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
            batches.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.4f}")
    return losses.mean().item(), correct.item() / min(steps * recipe.batch_size, count) * 100


def evaluated(model: nn.Module, final_model: nn.Module, data: MnistTensors, record: dict[str, Any]) -> dict[str, Any]:
    """`record` with the validation and test figures of `final_model`, the one to save (None for validation with
    --val-size 0), and with --ema those of the raw weights too, so that one run answers whether averaging helps."""
    record["val_loss"], record["val_acc"] = validate(final_model, data)
    record["test_loss"], record["test_acc"] = evaluate(final_model, data.test_images, data.test_labels)
    if final_model is not model:
        record["raw_val_acc"] = validate(model, data)[1]
        record["raw_test_acc"] = evaluate(model, data.test_images, data.test_labels)[1]
    return record


class Interrupted(Exception):
    """Ctrl-C during `fit`: the file `saved` (None: no file yet) holds epoch `epoch`, the last complete one."""

    def __init__(self, epoch: int, saved: Path | None) -> None:
        super().__init__(f"interrupted after epoch {epoch}")
        self.epoch, self.saved = epoch, saved


def restore(
    path: Path,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    averaged: AveragedModel | None,
) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """Load the resume file at `path` into training's state: the weights and their average, the optimizer, the
    schedule and the random generators. Returns the finished epochs' records, and the recipe values that `recipe`
    changes from the run's own (each as [before, after])."""
    checkpoint = load_checkpoint(path, ("state_dict", "resume"))
    try:
        state = checkpoint["resume"]
        model.load_state_dict(checkpoint["state_dict"])
        if averaged is not None:
            averaged.load_state_dict(state["averaged"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"], generator, recipe.seed + len(state["history"]))
        history, before = state["history"], Recipe.recorded(state["recipe"])
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise UserError(f"{path} is a damaged resume checkpoint; start again without --resume") from None
    print(f"resuming {path} after epoch {len(history)} of {recipe.epochs}")
    values = [(item.name, getattr(before, item.name), getattr(recipe, item.name)) for item in FIELDS]
    return history, {name: [old, new] for name, old, new in values if old != new}


def fit(
    recipe: Recipe,
    data: MnistTensors,
    device: torch.device,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resume: Path | None = None,
    state_file: Path | None = None,
    loss_fn: Loss | None = None,
    network_fn: Network = network,
) -> tuple[Net, list[dict[str, Any]]]:
    """Train `recipe` on `data` (on `device`), evaluating after every epoch; return the model to save (the raw
    weights, or their average with --ema) and one record per epoch. Each record goes to `on_epoch`, and the whole
    state to `state_file`, which `resume` continues from (`recipe` must then be `resumed`'s). `loss_fn` replaces
    `cross_entropy`, and `network_fn` builds the network. A deterministic recipe switches PyTorch to deterministic
    algorithms for the whole process."""
    if recipe.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator(device).manual_seed(recipe.seed)
    model = build_model(recipe, device, network_fn)
    steps = batches_per_epoch(len(data.train_labels), recipe.batch_size)
    optimizer, scheduler = make_optimizer(model, recipe, steps_per_epoch=steps)
    averaged = weight_average(model, recipe.ema) if recipe.ema else None
    history: list[dict[str, Any]] = []
    changed: dict[str, list[Any]] = {}  # the recipe values that a resumed run changed: noted in its next record
    if resume:
        history, changed = restore(resume, recipe, model, optimizer, scheduler, generator, averaged)
    final_model = model if averaged is None else cast(Net, averaged.module)
    first = len(history)
    saved = (first, resume)  # the last finished epoch, and the file that holds it
    try:
        for epoch in range(len(history) + 1, recipe.epochs + 1):
            started, lr = time.perf_counter(), scheduler.get_last_lr()[0]
            train_loss, train_acc = train_one_epoch(
                model, data, optimizer, scheduler, generator, recipe, epoch, averaged, loss_fn
            )
            final_model = model if averaged is None else refresh_batchnorm(averaged, data.train_images)
            record = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc)
            history.append(evaluated(model, final_model, data, record) | dict(seconds=time.perf_counter() - started))
            if changed:
                history[-1]["changed_on_resume"], changed = changed, {}
            if state_file:
                state = dict(epoch=epoch, history=history, rng=rng_states(generator), recipe=recipe.as_dict())
                state |= dict(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict())
                state["averaged"] = averaged.state_dict() if averaged is not None else None
                save_atomic({"state_dict": model.state_dict(), "resume": state}, state_file)
                saved = (epoch, state_file)
            if on_epoch:
                on_epoch(history[-1])
    except KeyboardInterrupt:
        raise Interrupted(*saved) from None
    except UserError:  # the loss diverged: this run's resume file could only continue it at the same --lr
        if state_file is not None and saved[1] == state_file and saved[0] > first:
            state_file.unlink()
        raise
    return final_model, history


def read_with_views(model: nn.Module, data: MnistTensors) -> dict[str, Any]:
    """Validation and test accuracy of a model that reads with test-time views (model.SHIFTS): each epoch's figures
    are its network's alone."""
    return dict(val_acc=validate(model, data)[1], test_acc=evaluate(model, data.test_images, data.test_labels)[1])


def trained_recipe(recipe: Recipe) -> dict[str, Any]:
    """What a run trains, as metrics.json records it: the layer spec, epochs, seed and every other recipe value."""
    values = recipe.as_dict()
    spec = ",".join(parse_spec(values.pop("model")))
    return dict(spec=spec, epochs=values.pop("epochs"), seed=values.pop("seed"), hyperparameters=values)


def run_record(
    recipe: Recipe,
    model: nn.Module,
    history: list[dict[str, Any]],
    saved: dict[str, Any],
    device: torch.device,
    seconds: float,
    resumed: bool,
) -> dict[str, Any]:
    """metrics.json's "meta", also stored in the checkpoint: the recipe, the saved model's figures (with --views,
    `read_with_views`'s) and the network's alone beside them, and where and when."""
    final = history[-1]
    return dict(
        model=recipe.model,
        **trained_recipe(recipe),
        params=count_parameters(model),
        val_accuracy=saved["val_acc"],
        test_accuracy=saved["test_acc"],
        plain_val_accuracy=final["val_acc"] if recipe.views else None,
        plain_test_accuracy=final["test_acc"] if recipe.views else None,
        raw_val_accuracy=final.get("raw_val_acc"),
        raw_test_accuracy=final.get("raw_test_acc"),
        train_seconds=seconds,
        seconds_per_epoch=sum(h["seconds"] for h in history) / len(history),
        device=str(device),
        machine=machine_name(device),
        threads=torch.get_num_threads(),
        torch_version=str(torch.__version__),
        torchvision_version=importlib.metadata.version("torchvision"),  # not imported: training never uses it
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        resumed=resumed,
    )


def save_curves(history: list[dict[str, Any]], path: Path, recipe: Recipe, own_loss: bool = True) -> None:
    """Loss and accuracy per epoch for train, validation and test, and the learning rate, side by side; the title
    says what the training loss was measured on (`own_loss`: the recipe's, not a method's)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    figure, (loss, accuracy, lr) = plt.subplots(1, 3, figsize=(14, 3.8))
    for split in ("train", "val", "test"):
        loss.plot(epochs, [h[f"{split}_loss"] for h in history], marker=".", label=split)
        accuracy.plot(epochs, [h[f"{split}_acc"] for h in history], marker=".", label=split)
    images = "augmented" if recipe.augmenting else "un-augmented"
    images += f" but the last {recipe.clean_epochs} epochs" if recipe.augmenting and recipe.clean_epochs else ""
    kind = ("label-smoothed" if recipe.label_smoothing else "cross-entropy") if own_loss else "the method's loss"
    loss.set(title=f"loss (train: {images}, {kind})", xlabel="epoch", yscale="log")
    accuracy.set(title="accuracy (%)", xlabel="epoch", ylim=(max(90, accuracy.get_ylim()[0]), 100))
    lr.plot(epochs, [h["lr"] for h in history], marker=".")
    lr.set(title="learning rate at the start of each epoch", xlabel="epoch")
    for axis in (loss, accuracy):
        axis.legend()
    for axis in (loss, accuracy, lr):
        axis.grid(alpha=0.3)
    save_figure(figure, path)


def figures(meta: dict[str, Any]) -> str:
    """The saved model's validation and test accuracy as train.py prints them, with the network's alone beside where
    it reads with test-time views."""
    text = f"val {percent(meta['val_accuracy']).strip()}, test {meta['test_accuracy']:.2f}%"
    if meta["plain_test_accuracy"] is None:
        return text
    plain = f"val {percent(meta['plain_val_accuracy']).strip()}, test {meta['plain_test_accuracy']:.2f}%"
    return f"{text} with test-time views (the network alone: {plain})"


def resume_file(out: Path, resume: Path | None) -> Path:
    """Where the run in `out` keeps its resume file. Fails before training, not after it, if its results cannot be
    saved in `out`, or if they would replace the resume file of another unfinished run (not `resume`)."""
    try:
        write_atomic(b"", out / ".write-test")
        (out / ".write-test").unlink()
    except (OSError, UserError):
        raise UserError(f"cannot write to {out}/; choose another folder with --out-dir") from None
    state_file = out / "resume.pth"
    if state_file.exists() and not (resume and resume.resolve() == state_file.resolve()):
        raise UserError(
            f"{state_file} holds an unfinished run, which this one would replace; continue it with: python train.py "
            f"--resume {state_file}, or delete it, or choose another --out-dir"
        )
    return state_file


def main(
    argv: list[str] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    loss_fn: Loss | None = None,
    trained_with: dict[str, Any] | None = None,
    network_fn: Network = network,
) -> int:
    """`python train.py`; `on_epoch`, if given, also receives each epoch's record; `loss_fn` replaces training's
    loss and `network_fn` its network, and `trained_with` says how in the run's record (scripts/distill.py,
    scripts/shared_weights.py)."""
    args = parse_args(argv)
    recipe, out, started = args.recipe, args.out_dir, time.perf_counter()
    state_file = resume_file(out, args.resume)
    data = load_mnist(resolve_data_dir(args.data_dir), args.device, recipe.train_limit, val_size=recipe.val_size)
    from torchsummary import summary  # here, so that --help and usage errors answer at the speed of `import torch`

    shown = network_fn(recipe)  # summary runs a forward pass in train mode: show a throwaway copy
    summary(shown, (1, 28, 28), device="cpu")
    print(f"model {recipe.model}: {count_parameters(shown):,} trainable parameters, training on {args.device}")

    def report(record: dict[str, Any]) -> None:
        print(
            f"epoch {record['epoch']:2d}/{recipe.epochs}  train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:6.2f}%  val {percent(record['val_acc'])}  test {record['test_acc']:6.2f}%  "
            f"lr {record['lr']:.4f}  {record['seconds']:5.1f}s",
            flush=True,
        )
        if on_epoch:
            on_epoch(record)

    try:
        model, history = fit(recipe, data, args.device, report, args.resume, state_file, loss_fn, network_fn)
    except Interrupted as interrupted:
        if interrupted.saved is None:
            print("\ninterrupted in the first epoch; nothing to resume")
        else:
            print(
                f"\ninterrupted; {interrupted.saved} holds epoch {interrupted.epoch}. "
                f"Continue with: python train.py --resume {interrupted.saved} --out-dir {out}"
            )
        return 130
    model.views = recipe.views  # saved to read as the recipe says: with --views, over test-time views
    saved = read_with_views(model, data) if recipe.views else history[-1]
    meta = run_record(recipe, model, history, saved, args.device, time.perf_counter() - started, bool(args.resume))
    meta |= trained_with or {}
    save_atomic({"state_dict": model.state_dict(), "meta": meta}, out / "mnist_model.pth")
    write_atomic((json.dumps({"meta": meta, "history": history}, indent=2) + "\n").encode(), out / "metrics.json")
    save_curves(history, out / "training_curves.png", recipe, own_loss=loss_fn is None)
    stamp(out / "training_curves.png", [out / "metrics.json"], "python train.py")
    state_file.unlink(missing_ok=True)
    elsewhere = args.resume and args.resume.resolve() != state_file.resolve()
    kept = f"; {args.resume}, which it continued from, is as it was" if elsewhere else ""
    print(
        f"saved {out / 'mnist_model.pth'}: {meta['params']:,} parameters, {figures(meta)}, "
        f"{meta['train_seconds']:.0f} s in all; "
        f"removed {state_file}, which a finished run no longer needs{kept}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
