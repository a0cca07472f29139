"""The compact MNIST CNN: its layer-spec language, the presets, and the layer table that describes a network.
It imports only torch: copied alone, `Net("tiny")` builds a preset and `python model.py SPEC` prints its table.

A spec lists blocks, each followed by BatchNorm and ReLU: "16" is a 3x3 convolution to 16 channels, "16s" a
depthwise-separable one (a 3x3 convolution per channel, then a 1x1 convolution to 16 channels: far fewer
parameters), "16p" a 1x1 convolution, "16d" a 3x3 convolution with stride 2 (it halves the map like a following "M",
at a quarter of the arithmetic); "M" is a 2x2 max-pool. A global average pool, dropout and one linear layer form the
head. The presets halve the image early and spend their width after it, where separable blocks make it cheap (why,
and how each was chosen on validation: docs/design.md and docs/experiments.md).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

# The presets' layer specs; each trains with its own recipe (compact_mnist/recipe.py).
PRESETS = {
    "default": "8d,16,16,16s,M,32s,48s,48s",
    "small": "8d,16,16,16s,M,24s,32s,32s",
    "tiny": "8,M,12,12s,12s,M,24s,24s,24s",
    "micro": "4,8s,M,12s,M,12s,11s",
}
HEADS = ("gap", "flatten")  # a global average pool before the linear layer, or every pixel of the last map
IMAGE_SIZE = 28
KINDS = {"": "conv", "s": "separable", "p": "pointwise", "d": "strided"}
# Side of the convolution across channels; a separable block's comes after its depthwise 3x3.
KERNEL = {"conv": 3, "strided": 3, "separable": 1, "pointwise": 1}
DOWNSAMPLING = ("pool", "strided")
# Test-time views, each (right, down) in pixels: the image itself and its four one-pixel shifts.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def layer_kind(item: str) -> tuple[str, int]:
    """("pool", 0) for "M", else the block kind and its output channels: "16s" -> ("separable", 16)."""
    if item == "M":
        return "pool", 0
    digits = item.rstrip("spd")
    if not digits.isdigit() or int(digits) == 0 or len(item) - len(digits) > 1:
        raise ValueError(item)
    return KINDS[item[len(digits) :]], int(digits)


def output_size(kind: str, size: int) -> int:
    """The feature map's side after a block of this kind: a pool rounds down, a padded stride-2 convolution up."""
    if kind == "pool":
        return size // 2
    return (size + 1) // 2 if kind == "strided" else size


def parse_spec(spec: str) -> list[str]:
    """Turn a preset name or a spec such as "8d,12,16s,M,16,16p" into its checked list of items."""
    spec = PRESETS.get(spec, spec)
    items = [item.strip() for item in spec.split(",")]
    try:
        kinds = [layer_kind(item)[0] for item in items]
    except ValueError:
        raise ValueError(
            f"bad model spec {spec!r}: use a preset ({', '.join(PRESETS)}) or comma-separated channel counts "
            "(16: 3x3 convolution, 16s: depthwise-separable 3x3, 16p: 1x1, 16d: 3x3 with stride 2) "
            'and "M" for max-pool'
        ) from None
    if kinds[0] == "separable":
        raise ValueError(f"bad model spec {spec!r}: the first block sees 1 channel; make it a plain convolution")
    if all(kind == "pool" for kind in kinds):
        raise ValueError(f"bad model spec {spec!r}: it needs at least one convolution")
    size = IMAGE_SIZE
    halvings = "pools" if "strided" not in kinds else "pools or strided convolutions"
    downsampling = [kind for kind in kinds if kind in DOWNSAMPLING]
    for step, kind in enumerate(downsampling, 1):
        if size < 2:
            what = "max-pool" if kind == "pool" else "strided convolution"
            raise ValueError(
                f"bad model spec {spec!r}: {what} {step} would shrink the {size}x{size} feature map below 1x1; "
                f"a 28x28 image allows at most {step - 1} {halvings}"
            )
        size = output_size(kind, size)
    return items


def shifted(images: torch.Tensor, right: int, down: int) -> torch.Tensor:
    """`images` (N, C, H, W) moved `right` and `down` pixels (each -1, 0 or 1); the edge that comes in repeats the old
    edge, which on MNIST is background."""
    if abs(right) > 1 or abs(down) > 1:
        raise ValueError(f"a view moves at most one pixel each way, not ({right}, {down})")
    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    return padded[..., 1 - down : 1 - down + height, 1 - right : 1 - right + width]


class Net(nn.Module):
    """Compact CNN: `(N, 1, 28, 28)` normalized images in, `(N, 10)` log-probabilities out.

    `batchnorm=False` and `head="flatten"` (every pixel of the last map into the linear layer, instead of a
    global average pool) exist for the ablation study (docs/design.md); every preset uses the defaults. With
    `views`, eval mode reads each image as the mean of the probabilities over SHIFTS (test-time views: five times
    the arithmetic); training, in train mode, always sees the image alone.
    """

    def __init__(
        self,
        spec: str = "default",
        dropout: float = 0.05,
        batchnorm: bool = True,
        head: str = "gap",
        views: bool = False,
    ) -> None:
        super().__init__()
        self.views = views
        if head not in HEADS:
            raise ValueError(f"head {head!r}: use one of {', '.join(HEADS)}")
        layers: list[nn.Module] = []
        channels, size = 1, IMAGE_SIZE
        for item in parse_spec(spec):
            kind, width = layer_kind(item)
            size = output_size(kind, size)
            if kind == "pool":
                layers.append(nn.MaxPool2d(2))
                continue
            # No biases: the BatchNorm that follows has its own shift (without BatchNorm, the last convolution has one).
            if kind == "separable":
                layers.append(nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False))
            kernel = KERNEL[kind]
            stride = 2 if kind == "strided" else 1
            layers.append(nn.Conv2d(channels, width, kernel, stride=stride, padding=kernel // 2, bias=not batchnorm))
            layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)] if batchnorm else [nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        pool = [nn.AdaptiveAvgPool2d(1)] if head == "gap" else []
        inputs = channels if head == "gap" else channels * size * size
        self.head = nn.Sequential(*pool, nn.Flatten(), nn.Dropout(dropout), nn.Linear(inputs, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.views or self.training:
            return F.log_softmax(self.head(self.features(x)), dim=1)
        # The batch's views in one pass; the log of the mean probability, computed from log-probabilities stably.
        batch = torch.cat([shifted(x, right, down) for right, down in SHIFTS])
        log_probs = F.log_softmax(self.head(self.features(batch)), dim=1).unflatten(0, (len(SHIFTS), -1))
        return torch.logsumexp(log_probs, dim=0) - math.log(len(SHIFTS))


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Log-probabilities `(N, 10)` for normalized `images`, in eval mode, without tracking gradients."""
    model.eval()
    return torch.cat([model(batch) for batch in images.split(batch_size)])


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_table(model: Net, image_size: int = 28) -> list[dict[str, Any]]:
    """One row per block: output shape, parameters, multiply-accumulates per image, receptive field.

    The receptive field is computed from each layer's kernel, stride and padding, so the table
    always describes the model as built. The head's global average pool sees the whole image.
    """
    rows = []
    size, channels, field, jump = image_size, 1, 1, 1
    layers = list(model.features)
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.MaxPool2d):  # Net's pools are 2x2 with stride 2
            field += jump
            jump *= 2
            size //= 2
            rows.append(dict(layer="MaxPool 2x2", shape=(channels, size, size), params=0, macs=0, rf=field))
        elif isinstance(layer, nn.Conv2d) and not isinstance(layers[index - 1], nn.Conv2d):
            convs = [conv for conv in layers[index : index + 2] if isinstance(conv, nn.Conv2d)]
            norm = layers[index + len(convs)]
            for conv in convs:  # "same" padding: only a stride changes the size
                field += (conv.kernel_size[0] - 1) * jump
                jump *= conv.stride[0]
                size = (size - 1) // conv.stride[0] + 1
            first, last = convs[0], convs[-1]
            kind = "Separable" if len(convs) == 2 else "Conv"
            kernel = ("3x3" if first.kernel_size[0] == 3 else "1x1") + (" stride 2" if last.stride[0] == 2 else "")
            params = sum(count_parameters(conv) for conv in convs) + count_parameters(norm)
            macs = sum(conv.weight.numel() for conv in convs) * size * size
            after = " + BN + ReLU" if isinstance(norm, nn.BatchNorm2d) else " + ReLU"
            name = f"{kind} {first.in_channels}->{last.out_channels} {kernel}{after}"
            channels = last.out_channels
            rows.append(dict(layer=name, shape=(channels, size, size), params=params, macs=macs, rf=field))
    field, linear = max(field, image_size), model.head[-1]  # the head sees the whole image
    assert isinstance(linear, nn.Linear)
    pooled = isinstance(model.head[0], nn.AdaptiveAvgPool2d)
    shape = (channels, 1, 1) if pooled else (channels * size * size,)
    rows.append(dict(layer="Global average pool" if pooled else "Flatten", shape=shape, params=0, macs=0, rf=field))
    name = f"Dropout + Linear {linear.in_features}->10"
    rows.append(dict(layer=name, shape=(10,), params=count_parameters(linear), macs=linear.weight.numel(), rf=field))
    return rows


def describe(spec: str) -> str:
    """The layer table of a preset or layer spec as markdown: shape, parameters, MACs and receptive field."""
    model = Net(spec)
    lines = [
        f"**{spec}** (`{','.join(parse_spec(spec))}`)" if spec in PRESETS else f"`{spec}`",
        "",
        "| layer | output shape | parameters | MACs per image | receptive field |",
        "|---|---|---:|---:|---:|",
    ]
    rows = layer_table(model)
    for row in rows:
        shape = "x".join(map(str, row["shape"]))
        lines.append(f"| {row['layer']} | {shape} | {row['params']:,} | {row['macs']:,} | {row['rf']} |")
    total = sum(row["macs"] for row in rows)
    lines.append(f"| **total** | | **{count_parameters(model):,}** | **{total:,}** | |")
    return "\n".join(lines)


if __name__ == "__main__":  # python model.py tiny, or python model.py 8d,16,16s,M,32s: the layer table
    import sys

    try:
        print(describe(sys.argv[1] if len(sys.argv) > 1 else "default"))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
