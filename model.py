"""The compact MNIST CNN, its presets, and helpers that describe it (parameter count, layer table).

The network is a VGG-style stack written as a short spec: a number is a 3x3 convolution with that
many output channels (followed by BatchNorm and ReLU), "M" is a 2x2 max-pool. A global average
pool, dropout and one linear layer form the head. Only the first two convolutions run at
full 28x28 resolution and they are narrow; that keeps the arithmetic, and so CPU training time, small.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE_SIZE = 28
PRESETS: dict[str, str] = {
    "default": "8,8,M,12,14,M,16,16",
    "tiny": "4,6,M,8,10,M,10,12",
}


def parse_spec(spec: str) -> list[int | str]:
    """Turn a preset name or a spec such as "8,M,12,16,M,16,16" into a list of layers."""
    spec = PRESETS.get(spec, spec)
    layers: list[int | str] = []
    for item in spec.split(","):
        item = item.strip()
        if item == "M":
            layers.append("M")
        elif item.isdigit() and int(item) > 0:
            layers.append(int(item))
        else:
            raise ValueError(
                f"bad model spec {spec!r}: use a preset ({', '.join(PRESETS)}) "
                'or comma-separated channel counts and "M" for max-pool'
            )
    if not any(isinstance(layer, int) for layer in layers):
        raise ValueError(f"bad model spec {spec!r}: it needs at least one convolution")
    size = IMAGE_SIZE
    for pool in range(1, layers.count("M") + 1):
        if size < 2:
            raise ValueError(
                f"bad model spec {spec!r}: max-pool {pool} would shrink the {size}x{size} feature map below 1x1; "
                f"a 28x28 image allows at most {pool - 1} pools"
            )
        size //= 2
    return layers


def training_memory_bytes(layers: list[int | str], batch_size: int) -> int:
    """A lower bound on the memory (float32 bytes) that training `layers` at `batch_size` needs.

    Computed from the spec alone, before any tensor is allocated: each convolution keeps its output and its
    BatchNorm's output for the backward pass, each pool its output; weights have a gradient and momentum.
    """
    channels, size, params, floats_per_image = 1, IMAGE_SIZE, 0, 0
    for item in layers:
        if item == "M":
            size //= 2
            floats_per_image += channels * size * size
        else:
            params += 9 * channels * item + 2 * item
            channels = item
            floats_per_image += 2 * channels * size * size
    return 4 * (3 * params + batch_size * floats_per_image)


class Net(nn.Module):
    """Compact CNN: `(N, 1, 28, 28)` normalized images in, `(N, 10)` log-probabilities out."""

    def __init__(self, spec: str = "default", dropout: float = 0.05) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for item in parse_spec(spec):
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    # No bias: the BatchNorm that follows has its own shift.
                    nn.Conv2d(channels, item, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(item),
                    nn.ReLU(inplace=True),
                ]
                channels = item
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.head(self.features(x)), dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_table(model: Net, image_size: int = 28) -> list[dict]:
    """One row per layer: output shape, parameters, multiply-accumulates per image, receptive field.

    The receptive field is computed from each layer's kernel, stride and padding, so the table
    always describes the model as built. The head's global average pool sees the whole image.
    """
    rows = []
    size, channels, field, jump = image_size, 1, 1, 1
    for index, layer in enumerate(model.features):
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            kernel, stride, padding = (
                (layer.kernel_size[0], layer.stride[0], layer.padding[0])
                if isinstance(layer, nn.Conv2d)
                else (layer.kernel_size, layer.stride, layer.padding)
            )
            field += (kernel - 1) * jump
            jump *= stride
            size = (size + 2 * padding - kernel) // stride + 1
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
                # A convolution's row also counts the BatchNorm that follows it.
                params = count_parameters(layer) + count_parameters(model.features[index + 1])
                macs = layer.weight.numel() * size * size
                name = f"Conv {layer.in_channels}->{channels} 3x3 + BN + ReLU"
            else:
                params, macs, name = 0, 0, "MaxPool 2x2"
            rows.append(dict(layer=name, shape=(channels, size, size), params=params, macs=macs, rf=field))
    rows.append(dict(layer="Global average pool", shape=(channels, 1, 1), params=0, macs=0, rf=max(field, image_size)))
    linear = model.head[-1]
    rows.append(
        dict(
            layer=f"Dropout + Linear {linear.in_features}->10",
            shape=(10,),
            params=count_parameters(linear),
            macs=linear.weight.numel(),
            rf=max(field, image_size),
        )
    )
    return rows
