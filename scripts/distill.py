"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): train a network as the student of a trained model, toward
the teacher's softened probabilities on the same augmented batch as well as toward the labels.

    python scripts/distill.py --teacher models/mnist_model.pth -- --model micro --out-dir runs/micro-student
    python scripts/distill.py --teacher models/mnist_model.pth --temperature 1 --weight 0.5 -- --model micro ...
    python scripts/seeds.py --teacher models/mnist_model.pth --name micro-distilled --report runs/distill.json \
        -- --model micro

Everything after `--` goes to train.py: the student trains its own recipe for its own epochs, and only the loss
changes, to W * T^2 * KL(teacher || student), both read at temperature T (--temperature), plus (1 - W) * the
recipe's cross-entropy, W the teacher's weight (--weight); T^2 keeps the soft term's gradients on the scale of the
hard one's. The teacher reads its network
alone (no test-time views), in eval mode, without gradients. The run's record (metrics.json and the checkpoint)
holds `distillation`: the teacher's file and fingerprint, its parameters and training time, T and W. A student
needs its own --out-dir, and is not resumed: its resume file does not hold its teacher, so a student stopped part
way trains again from the start.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from compact_mnist.checkpoint import load_model
from compact_mnist.cli import ArgumentParser, UserError, number, run_cli
from compact_mnist.data import add_data_dir_argument, load_mnist, resolve_data_dir
from compact_mnist.files import fingerprint, name
from model import Net, count_parameters, predict
from scripts.launch import method_run

# The first screen's setting, chosen before any run from the common setting of distillation benchmarks (Tian, Krishnan
# and Isola, 2020, "Contrastive representation distillation": T = 4, 0.9 on the teacher's term). With the committed
# default as teacher it made micro worse (docs/experiments.md, "distillation for micro"); no preset distils.
TEMPERATURE = 4.0
WEIGHT = 0.9


@dataclass(frozen=True)
class Teaching:
    """How a student is taught: the teacher's checkpoint, the temperature both are read at, and the weight of the
    teacher's term (the labels' is 1 - weight)."""

    teacher: Path
    temperature: float = TEMPERATURE
    weight: float = WEIGHT
    record: ClassVar[str] = "distillation"  # the field of a student's record that holds the teaching

    def flags(self) -> list[str]:
        """As this script's flags, before the `--` that starts train.py's."""
        return ["--teacher", str(self.teacher), "--temperature", str(self.temperature), "--weight", str(self.weight)]

    def recorded(self) -> dict[str, Any]:
        """What a student's record holds of it, to tell this teaching from another: the teacher by its fingerprint."""
        return dict(teacher_fingerprint=fingerprint(self.teacher), temperature=self.temperature, weight=self.weight)


class Distillation:
    """The student's loss, called as train.py calls its loss: (log-probabilities, images, labels) -> loss. The
    teacher, on the training device, is frozen: eval mode (its BatchNorm statistics stay), no gradients."""

    def __init__(self, teacher: Net, label_smoothing: float, temperature: float, weight: float) -> None:
        self.teacher, self.label_smoothing = teacher.eval().requires_grad_(False), label_smoothing
        self.temperature, self.weight = temperature, weight

    def __call__(self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = F.log_softmax(self.teacher(images) / self.temperature, dim=1)
        # Both networks give log-probabilities, logits shifted by a constant per image: log_softmax of either over T
        # is the same, so dividing them by T softens as dividing logits does.
        student = F.log_softmax(output / self.temperature, dim=1)
        soft = F.kl_div(student, target, reduction="batchmean", log_target=True) * self.temperature**2
        hard = F.cross_entropy(output, labels, label_smoothing=self.label_smoothing)
        return self.weight * soft + (1 - self.weight) * hard


def teacher(teaching: Teaching) -> tuple[Net, dict[str, Any]]:
    """The network of the teacher's checkpoint, read without test-time views, and what a student's record says of
    the teaching."""
    model, meta = load_model(teaching.teacher)
    model.views = False
    about = dict(
        teacher=name(teaching.teacher),
        teacher_spec=meta.get("spec"),
        teacher_params=count_parameters(model),  # as loaded, before `Distillation` freezes it
        teacher_epochs=meta.get("epochs"),
        teacher_seconds=meta.get("train_seconds"),
        teacher_threads=meta.get("threads"),
    )
    return model, about | teaching.recorded()


def train_student(teaching: Teaching, train_args: list[str], on_epoch: Any = None) -> int:
    """train.py's `main` with these flags, its loss the distillation that `teaching` says."""
    import train

    def start(args: argparse.Namespace) -> int:
        if teaching.teacher.resolve().parent == args.out_dir.resolve():
            raise UserError(
                f"--out-dir {args.out_dir} holds the teacher, which the student would replace; choose another"
            )
        network, about = teacher(teaching)
        layout = torch.channels_last if args.device.type == "cpu" else torch.contiguous_format  # as train.py's student
        network = network.to(args.device, memory_format=layout)
        loss = Distillation(network, args.recipe.label_smoothing, teaching.temperature, teaching.weight)
        return train.main(train_args, on_epoch=on_epoch, loss_fn=loss, trained_with={Teaching.record: about})

    return method_run(train_args, "a student", start)


def add_teaching_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """--teacher, --temperature and --weight, shared with scripts/seeds.py."""
    add = parser.add_argument
    add("--teacher", type=Path, required=required, help="the trained model to distil from (a checkpoint)")
    add("--temperature", type=number(float, above=0, at_most=100), default=TEMPERATURE, help="T (default: %(default)g)")
    add(
        "--weight",
        type=number(float, at_least=0, at_most=1),
        default=WEIGHT,
        help="the teacher's term's share of the loss (default: %(default)g)",
    )


def teaching_of(args: argparse.Namespace) -> Teaching:
    """The teaching that --teacher, --temperature and --weight give, refusing a teacher that is not there."""
    if not args.teacher.is_file():
        raise UserError(f"--teacher {args.teacher}: no such checkpoint")
    return Teaching(args.teacher.resolve(), args.temperature, args.weight)  # runs may start in another folder


def softness(teaching: Teaching, data_dir: Path | None, images: int = 1_000) -> dict[float, float]:
    """The teacher's mean top probability over the first `images` training images (un-augmented) read at T = 1, 2,
    4 and the teaching's own: how far softening flattens its targets."""
    network, _ = teacher(teaching)
    data = load_mnist(resolve_data_dir(data_dir), torch.device("cpu"), train_limit=images)
    log_probs = predict(network, data.train_images)
    temperatures = sorted({1.0, 2.0, 4.0, teaching.temperature})
    return {t: F.softmax(log_probs / t, dim=1).max(dim=1).values.mean().item() for t in temperatures}


def split(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's command line: its own flags, with the teaching as `teaching`, and train.py's after `--`."""
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_teaching_arguments(parser, required=True)
    parser.add_argument("--softness", action="store_true", help="print how soft the teacher's targets are; no training")
    add_data_dir_argument(parser)
    parser.add_argument("train_args", nargs="*", help="train.py flags, after --")
    args = parser.parse_args(argv)
    args.teaching = teaching_of(args)
    return args, args.train_args


def main(argv: list[str] | None = None, on_epoch: Any = None) -> int:
    args, train_args = split(sys.argv[1:] if argv is None else argv)
    if args.softness:
        for t, top in softness(args.teaching, args.data_dir).items():
            print(f"T = {t:g}: the teacher's mean top probability {top:.3f} over 1,000 training images")
        return 0
    return train_student(args.teaching, train_args, on_epoch)


if __name__ == "__main__":
    run_cli(main)
