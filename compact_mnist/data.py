"""MNIST as tensors on the training device, a validation split, and batched augmentation. The whole data set is 55 MB
as uint8, so it lives on the device, normalized once; each epoch shuffles indices and augments whole batches with one
`grid_sample` call, instead of pushing every image through PIL transforms in a DataLoader."""

from __future__ import annotations

import argparse
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from compact_mnist.cli import UserError

MEAN, STD = 0.1307, 0.3081
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000  # in MNIST's two files
VAL_SIZE = 5_000
# Augmentation at strength 1: a rotation, a shift each way and a zoom of up to these (0.1 = 90% to 110%).
ROTATION_DEGREES, SHIFT_PIXELS, ZOOM = 10.0, 2.0, 0.1
ELASTIC_GRID = 4  # control points per side of the elastic displacement field
# The validation split is the same for every training seed, so validation numbers compare across seeds.
SPLIT_SEED = 12345
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", TRAIN_IMAGES),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", TEST_IMAGES),
}


def resolve_data_dir(flag: str | None) -> Path:
    """The data folder: the --data-dir flag, else $MNIST_DATA_DIR, else ./data."""
    return Path(flag or os.environ.get("MNIST_DATA_DIR") or "data")


def ensure_downloaded(data_dir: Path, download: bool = True) -> None:
    """Make sure the four raw files exist, downloading them with torchvision if allowed."""
    raw = data_dir / "MNIST" / "raw"
    if all((raw / name).is_file() for images, labels, _ in FILES.values() for name in (images, labels)):
        return
    hint = f"MNIST not found in {raw}/; point --data-dir or MNIST_DATA_DIR at a folder holding MNIST/raw/ (the four "
    hint += "uncompressed files)"
    if not download:
        raise UserError(hint)
    from torchvision.datasets import MNIST  # torchvision takes a second to import: only when it is used

    try:
        MNIST(str(data_dir), train=True, download=True)
    except Exception as error:  # no network, a proxy refusing, a read-only folder...
        # torchvision lists every mirror it tried; the last line holds the reason.
        reasons = [line.strip() for line in str(error).splitlines() if line.strip() not in ("", ")")]
        reason = reasons[-1] if reasons else type(error).__name__
        raise UserError(f"{hint}, or connect to the internet to download it (download failed: {reason})") from None


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """The --data-dir flag shared by train.py, evaluate.py and export.py."""
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR or data/)")


def load_test_split(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 test images (uint8) and labels, downloading MNIST first if allowed and needed."""
    ensure_downloaded(data_dir)
    return read_split(data_dir, train=False)


def read_idx(path: Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """An IDX file (MNIST's: 0x0800 + the number of sizes, the sizes, as big-endian int32, then bytes) as uint8 of
    `shape`, or None. Ours, not torchvision's reader: importing torchvision takes longer than reading all of MNIST."""
    header = struct.pack(f">{1 + len(shape)}I", 0x0800 + len(shape), *shape)
    raw = path.read_bytes() if path.is_file() else b""
    if not raw.startswith(header) or len(raw) != len(header) + math.prod(shape):
        return None
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=len(header)).view(shape)


def read_split(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split's raw files as (uint8 images (N, 28, 28), int64 labels (N,)), checking both."""
    image_name, label_name, count = FILES[train]
    tensors = []
    for name, shape in ((image_name, (count, 28, 28)), (label_name, (count,))):
        path = data_dir / "MNIST" / "raw" / name
        if (tensor := read_idx(path, shape)) is None:
            damaged = f"{path} is damaged (not a {count:,}-item MNIST file)"
            raise UserError(f"{damaged}; delete it to download it again, or restore the original")
        tensors.append(tensor)
    images, labels = tensors
    if labels.max() > 9:
        raise UserError(f"{path} is damaged (labels outside 0-9); restore the original")
    return images, labels.long()


def split_indices(count: int, val_size: int = VAL_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the validation and the training images among `count`, in a random order fixed by SPLIT_SEED."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[:val_size], order[val_size:]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) with MNIST's mean and std."""
    return ((images.float() / 255 - MEAN) / STD).unsqueeze(1)


@dataclass
class MnistTensors:
    """Normalized images `(N, 1, 28, 28)` and labels `(N,)` of each split, on one device."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_mnist(
    data_dir: Path,
    device: torch.device,
    train_limit: int | None = None,
    download: bool = True,
    val_size: int = VAL_SIZE,
) -> MnistTensors:
    """Load MNIST onto `device`: 55,000 training, 5,000 validation and 10,000 test images; `train_limit` keeps only
    the first that many training images (for quick checks)."""
    ensure_downloaded(data_dir, download)
    images, labels = read_split(data_dir, train=True)
    test_images, test_labels = read_split(data_dir, train=False)
    val, train = split_indices(len(images), val_size)
    if train_limit is not None:
        train = train[:train_limit]
    return MnistTensors(
        normalize(images[train]).to(device),
        labels[train].to(device),
        normalize(images[val]).to(device),
        labels[val].to(device),
        normalize(test_images).to(device),
        test_labels.to(device),
    )


def batches_per_epoch(count: int, batch_size: int) -> int:
    """Steps in one epoch of `count` images; a last batch of a single image is dropped, since BatchNorm
    cannot train on one image whose feature map has shrunk to 1x1."""
    return count // batch_size + (count % batch_size > 1)


def shuffled_batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index tensors covering a random permutation of `range(count)`; the last may be short."""
    order = torch.randperm(count, generator=generator, device=generator.device)
    yield from order.split(batch_size)[: batches_per_epoch(count, batch_size)]


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = ROTATION_DEGREES,
    shift: float = SHIFT_PIXELS,
    scale: float = ZOOM,
    strength: float = 1.0,
    elastic: float = 0.0,
) -> torch.Tensor:
    """Random affine per image, whole batch at once: rotation up to `degrees`, a shift of up to `shift` pixels each
    way, and scaling by up to `scale` (0.1 = 90% to 110%), which scales the shift too; `strength` scales all of them.
    `elastic` > 0 adds a smooth random displacement of up to that many pixels (`elastic_field`)."""
    n, device = len(images), images.device
    degrees, shift, scale, elastic = degrees * strength, shift * strength, scale * strength, elastic * strength

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator, device=device) * 2 - 1) * bound

    angle = uniform(math.radians(degrees))
    zoom = 1 + uniform(scale)
    # affine_grid works in [-1, 1] coordinates, where one pixel is 2/28.
    dx, dy = uniform(shift * 2 / 28), uniform(shift * 2 / 28)
    field = elastic_field(n, images.shape[-1], elastic, generator) if elastic > 0 else None
    return warp(images, angle, zoom, dx, dy, field)


def warp(
    images: torch.Tensor,
    angle: torch.Tensor,
    zoom: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
    field: torch.Tensor | None = None,
) -> torch.Tensor:
    """Resample each image, one `grid_sample` call for the batch: turned by `angle` (radians; positive turns
    the digit counter-clockwise as displayed), magnified by `zoom`, moved by (`dx`, `dy`) in affine_grid's
    units (2/28 per pixel, positive to the left and up), then displaced by `field` (N, H, W, 2), in the same units."""
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if field is not None:
        grid = grid + field
    # MNIST's border pixels are background, so repeating them fills the exposed corners correctly.
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


def elastic_field(n: int, side: int, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Smooth random displacements (N, side, side, 2) in affine_grid's units (2/side per pixel), after Simard et
    al. (2003)'s elastic distortion: each point of a coarse ELASTIC_GRID x ELASTIC_GRID grid moves by up to
    `pixels` each way, and the pixels between follow by bilinear interpolation, so none moves further. A coarse
    field costs far less than blurring a full-resolution one; its 9-pixel spacing is about the correlation length
    of Simard's sigma-4 blur."""
    coarse = torch.rand(n, 2, ELASTIC_GRID, ELASTIC_GRID, generator=generator, device=generator.device)
    field = F.interpolate(
        (coarse * 2 - 1) * (pixels * 2 / side), size=(side, side), mode="bilinear", align_corners=True
    )
    return field.permute(0, 2, 3, 1)
