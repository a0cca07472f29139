"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): train a network as the student of a trained model, toward
the teacher's softened probabilities on the same augmented batch as well as toward the labels.

    python scripts/distill.py --teacher models/mnist_model.pth -- --model micro --out-dir runs/micro-student
    python scripts/seeds.py --teacher models/mnist_model.pth --name micro-distilled -- --model micro

Everything after `--` goes to train.py: the student trains its own recipe for its own epochs, and only the loss
changes, to WEIGHT * T^2 * KL(teacher || student), both read at temperature T, plus (1 - WEIGHT) * the recipe's
cross-entropy (T^2 keeps the soft term's gradients on the scale of the hard one's). The teacher reads its network
alone (no test-time views), in eval mode, without gradients. The run's record (metrics.json and the checkpoint)
holds `distillation`: the teacher's file and fingerprint, its parameters and training time, T and WEIGHT. A student
stopped part way continues with the same command and `--resume OUT/resume.pth`; `python train.py --resume` would
continue it without its teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from compact_mnist.checkpoint import load_model
from compact_mnist.cli import ArgumentParser, run_cli
from compact_mnist.files import fingerprint
from model import Net, count_parameters

# Chosen before any run, from the common setting of distillation benchmarks (Tian, Krishnan and Isola, 2020,
# "Contrastive representation distillation": T = 4, 0.9 on the teacher's term), not tuned here.
TEMPERATURE = 4.0
WEIGHT = 0.9


class Distillation:
    """The student's loss, called as train.py calls its loss: (log-probabilities, images, labels) -> loss."""

    def __init__(self, teacher: Net, label_smoothing: float) -> None:
        self.teacher, self.label_smoothing = teacher.eval().requires_grad_(False), label_smoothing

    def __call__(self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if next(self.teacher.parameters()).device != images.device:  # the teacher follows the training device
            layout = torch.channels_last if images.device.type == "cpu" else torch.contiguous_format
            self.teacher.to(images.device, memory_format=layout)
        with torch.no_grad():
            target = F.log_softmax(self.teacher(images) / TEMPERATURE, dim=1)
        student = F.log_softmax(output / TEMPERATURE, dim=1)
        soft = F.kl_div(student, target, reduction="batchmean", log_target=True) * TEMPERATURE**2
        hard = F.cross_entropy(output, labels, label_smoothing=self.label_smoothing)
        return WEIGHT * soft + (1 - WEIGHT) * hard


def teacher(path: Path) -> tuple[Net, dict[str, Any]]:
    """The network of the checkpoint at `path`, read without test-time views, and what a student's record says of
    it."""
    model, meta = load_model(path)
    model.views = False
    about = dict(
        teacher=str(path),
        teacher_fingerprint=fingerprint(path),
        teacher_spec=meta.get("spec"),
        teacher_params=count_parameters(model),
        teacher_epochs=meta.get("epochs"),
        teacher_seconds=meta.get("train_seconds"),
        temperature=TEMPERATURE,
        weight=WEIGHT,
    )
    return model, about


def train_student(teacher_path: Path, train_args: list[str], on_epoch: Any = None) -> int:
    """train.py's `main` with these flags, its loss the distillation from the checkpoint at `teacher_path`."""
    import train

    network, about = teacher(teacher_path)
    recipe = train.parse_args(train_args).recipe
    loss = Distillation(network, recipe.label_smoothing)
    return train.main(train_args, on_epoch=on_epoch, loss_fn=loss, trained_with=dict(distillation=about))


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="the trained model to distil from (a checkpoint)")
    parser.add_argument("train_args", nargs="*", help="train.py flags, after --")
    args = parser.parse_args(argv)
    return train_student(args.teacher, args.train_args)


if __name__ == "__main__":
    run_cli(main)
