"""Shared weights: one separable block applied several times, so that a network is deeper and wider than its
parameters would otherwise buy.

    python scripts/shared_weights.py --repeats 3 -- --model 4,8s,M,15s,M,15s,15s,15s --out-dir runs/shared
    python scripts/seeds.py --seeds 0 1 2 --name shared --repeats 3 -- --model 4,8s,M,15s,M,15s,15s,15s ...

Everything after `--` goes to train.py, whose --model spec must end in REPEATS separable blocks with as many
channels in as out ("15s,15s,15s" after a 15-channel block): they become one block's two convolutions applied
REPEATS times. Each application keeps a BatchNorm of its own (its own statistics and 2 x channels parameters), as
recurrent networks unrolled over their steps usually do. Only the network changes; the recipe trains as it says.
The run's record (metrics.json and the checkpoint) holds `shared_weights`: the repeats and the parameters the
network would have unshared; its `params` count the shared weights once, as the line after the layer summary that
train.py prints first does (the summary counts each application). The checkpoint holds each application's copy of the
shared weights, so evaluate.py, predict.py and the exports rebuild it as the unshared network of its spec, digit for
digit the same; evaluate.py and the demo show the record's parameters, the rebuilt network and the exports hold the
unshared ones. A run with shared weights needs its own --out-dir and is not resumed: `train.py --resume` would continue
it unshared.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch.nn as nn

from compact_mnist.cli import ArgumentParser, UserError, number, run_cli
from model import Net, count_parameters
from scripts.launch import method_run

if TYPE_CHECKING:
    from train import Network

BLOCK = 4  # a separable block in Net.features: depthwise 3x3, 1x1, BatchNorm, ReLU


@dataclass(frozen=True)
class Sharing:
    """How many of the network's last blocks are one block applied again."""

    repeats: int
    record: ClassVar[str] = "shared_weights"  # the field of the run's record that says so

    def flags(self) -> list[str]:
        """As this script's flags, before the `--` that starts train.py's."""
        return ["--repeats", str(self.repeats)]

    def recorded(self) -> dict[str, Any]:
        """What a run's record holds of it, to tell this sharing from another."""
        return dict(repeats=self.repeats)


def repeated_block(layers: list[nn.Module]) -> bool:
    """Whether `layers` (a multiple of BLOCK) are separable blocks of one shape, as many channels in as out."""
    shapes = set()
    for start in range(0, len(layers), BLOCK):
        depthwise, pointwise, norm, _ = layers[start : start + BLOCK]
        if not (isinstance(depthwise, nn.Conv2d) and isinstance(pointwise, nn.Conv2d)):
            return False
        separable = depthwise.groups == depthwise.in_channels > 1 and pointwise.kernel_size == (1, 1)
        if not separable or not isinstance(norm, nn.BatchNorm2d):
            return False
        shapes.add((depthwise.in_channels, pointwise.out_channels))
    return len(shapes) == 1 and len({*shapes.pop()}) == 1


def shared(model: Net, repeats: int) -> Net:
    """`model`, changed in place, with its last `repeats` blocks applied as the first of them: that block's two
    convolutions in their places, each application's BatchNorm its own."""
    first = len(model.features) - BLOCK * repeats
    if repeats < 2 or first < 1 or not repeated_block(list(model.features)[first:]):
        raise UserError(
            f"--repeats {repeats}: the --model spec must end in {repeats} separable blocks with BatchNorm and as many "
            'channels in as out, such as "15s,15s,15s" after a 15-channel block'
        )
    for start in range(first + BLOCK, len(model.features), BLOCK):
        model.features[start], model.features[start + 1] = model.features[first], model.features[first + 1]
    return model


def shared_network(repeats: int) -> Network:
    """train.py's `network`, its last `repeats` blocks shared."""
    import train

    return lambda recipe: shared(train.network(recipe), repeats)


def train_shared(sharing: Sharing, train_args: list[str], on_epoch: Any = None) -> int:
    """train.py's `main` with these flags, its network's last blocks shared as `sharing` says."""
    import train

    def start(args: argparse.Namespace) -> int:
        network = train.network(args.recipe)
        about = sharing.recorded() | dict(unshared_params=count_parameters(network))
        shared(network, sharing.repeats)  # a spec that cannot be shared fails here, before the data are read
        build = shared_network(sharing.repeats)
        return train.main(train_args, on_epoch=on_epoch, trained_with={Sharing.record: about}, network_fn=build)

    return method_run(train_args, "a run with shared weights", start)


def add_sharing_argument(parser: argparse.ArgumentParser, required: bool) -> None:
    """--repeats, shared with scripts/seeds.py."""
    parser.add_argument(
        "--repeats",
        type=number(int, at_least=2, at_most=100),
        required=required,
        help="the network's last N blocks are one block applied N times",
    )


def main(argv: list[str] | None = None, on_epoch: Any = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_sharing_argument(parser, required=True)
    parser.add_argument("train_args", nargs="*", help="train.py flags, after --")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return train_shared(Sharing(args.repeats), args.train_args, on_epoch)


if __name__ == "__main__":
    run_cli(main)
