"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): train a network as the student of a trained model, toward
the teacher's softened probabilities on the same augmented batch as well as toward the labels.

    python scripts/distill.py --teacher models/mnist_model.pth -- --model micro --out-dir runs/micro-student
    python scripts/seeds.py --teacher models/mnist_model.pth --name micro-distilled --report runs/distill.json \
        -- --model micro

Everything after `--` goes to train.py: the student trains its own recipe for its own epochs, and only the loss
changes, to WEIGHT * T^2 * KL(teacher || student), both read at temperature T, plus (1 - WEIGHT) * the recipe's
cross-entropy (T^2 keeps the soft term's gradients on the scale of the hard one's). The teacher reads its network
alone (no test-time views), in eval mode, without gradients. The run's record (metrics.json and the checkpoint)
holds `distillation`: the teacher's file and fingerprint, its parameters and training time, T and WEIGHT. A student
needs its own --out-dir, and is not resumed: its resume file does not hold its teacher, so a student stopped part
way trains again from the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from compact_mnist.checkpoint import load_model
from compact_mnist.cli import ArgumentParser, UserError, run_cli
from compact_mnist.files import fingerprint
from model import Net

# Chosen before any run, from the common setting of distillation benchmarks (Tian, Krishnan and Isola, 2020,
# "Contrastive representation distillation": T = 4, 0.9 on the teacher's term), not tuned here.
TEMPERATURE = 4.0
WEIGHT = 0.9


class Distillation:
    """The student's loss, called as train.py calls its loss: (log-probabilities, images, labels) -> loss. The
    teacher, on the training device, is frozen: eval mode (its BatchNorm statistics stay), no gradients."""

    def __init__(self, teacher: Net, label_smoothing: float) -> None:
        self.teacher, self.label_smoothing = teacher.eval().requires_grad_(False), label_smoothing

    def __call__(self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = F.log_softmax(self.teacher(images) / TEMPERATURE, dim=1)
        # Both networks give log-probabilities, logits shifted by a constant per image: log_softmax of either over T
        # is the same, so dividing them by T softens as dividing logits does.
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
        teacher_params=sum(parameter.numel() for parameter in model.parameters()),
        teacher_epochs=meta.get("epochs"),
        teacher_seconds=meta.get("train_seconds"),
        teacher_threads=meta.get("threads"),
        temperature=TEMPERATURE,
        weight=WEIGHT,
    )
    return model, about


def train_student(teacher_path: Path, train_args: list[str], on_epoch: Any = None) -> int:
    """train.py's `main` with these flags, its loss the distillation from the checkpoint at `teacher_path`."""
    import train

    args = train.parse_args(train_args)
    if "--out-dir" not in train_args or args.resume:
        raise UserError("a student trains into an --out-dir of its own (after --), from the start: drop --resume")
    if (args.out_dir / "resume.pth").exists():
        raise UserError(
            f"{args.out_dir / 'resume.pth'} holds an unfinished run; a student is not resumed (its resume file does "
            "not hold its teacher): delete it to train the student again, or choose another --out-dir"
        )
    if teacher_path.resolve().parent == args.out_dir.resolve():
        raise UserError(f"--out-dir {args.out_dir} holds the teacher, which the student would replace; choose another")
    network, about = teacher(teacher_path)
    layout = torch.channels_last if args.device.type == "cpu" else torch.contiguous_format  # as train.py's student
    loss = Distillation(network.to(args.device, memory_format=layout), args.recipe.label_smoothing)
    code = train.main(train_args, on_epoch=on_epoch, loss_fn=loss, trained_with=dict(distillation=about))
    if code == 130 and (args.out_dir / "resume.pth").exists():  # Ctrl-C: `train.py --resume` would drop the teacher
        (args.out_dir / "resume.pth").unlink()
        print(f"removed {args.out_dir / 'resume.pth'}: a student is not resumed; train it again with the same command")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="the trained model to distil from (a checkpoint)")
    parser.add_argument("train_args", nargs="*", help="train.py flags, after --")
    args = parser.parse_args(argv)
    return train_student(args.teacher, args.train_args)


if __name__ == "__main__":
    run_cli(main)
