"""From a picture as a device saves it to the model's input: the loader (orientation, bit depth, transparency,
size) and the preprocessing that makes a digit look as MNIST's were made: greyscale, white on black, paper,
noise and printed lines taken away, strokes brought into MNIST's widths, fitted to 20x20 and centred by mass
in 28x28. predict.py, the demo, the Hub entry and the browser page's port (web/preprocess.js) all read this."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError
from scipy import ndimage

from compact_mnist.cli import UserError
from compact_mnist.data import MEAN, STD

# Every picture is brought to at most this many pixels a side before its ink is measured, so the time and
# memory of what follows are bounded; a digit needs far fewer (MNIST's has 20).
WORKING_SIDE = 1024
MIN_SIDE, MAX_ASPECT = 8, 100  # a picture narrower than this, or longer than this many times its width, holds no digit
# MNIST's stroke widths in its 20x20 digit box, measured with stroke_width() below on its training digits
# (test_model.py checks them): 5th percentile, median, 95th percentile. A drawing whose strokes fall outside
# the 5-95% band is brought to the median width; one inside is left as it is.
STROKE_WIDTHS = (1.93, 2.18, 3.11)
# Printed paper structure: a row or column of the picture with ink along at least this share of its length is a
# ruled line (its faintest 5% still hold ink), removed where it is at most this share of the picture thick.
RULED_COVER, RULED_THICKNESS = 0.95, 0.03
INK_FLOOR = 0.03  # ink fainter than this (8 grey levels above the paper) is no line
# Several digits: ink parts closer than this share of the tallest part's height (or overlapping, as the pieces
# of a broken 4, 5 or 7 do) are one digit; parts with under this share of the heaviest part's ink are specks.
MERGE_GAP, SPECK = 0.1, 0.02
TOUCHING = np.ones((3, 3))  # pixels are one piece of ink when they touch, diagonals included


def shape_problem(width: int, height: int) -> str | None:
    """Why a picture of this shape cannot hold a digit (1x1, 100000x1), or None: checked before it is decoded."""
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_ASPECT * min(width, height):
        return (
            f"{width}x{height} pixels cannot hold a digit (a picture needs at least {MIN_SIDE} pixels a side and "
            f"at most {MAX_ASPECT} times as long as it is wide)"
        )
    return None


def open_image(path: Path) -> Image.Image:
    """Open a file without decoding it; a JPEG set to decode at reduced size.

    A JPEG decodes at 1/2, 1/4 or 1/8 of its side with almost no work (`Image.draft`), so a 200-megapixel
    photo costs what a 3-megapixel one does. Pillow's decompression-bomb limit counts pixels decoded, so for a
    JPEG it is checked on the reduced size; every other format is checked on its full size by `Image.open`.
    """
    with open(path, "rb") as file:
        is_jpeg = file.read(3) == b"\xff\xd8\xff"
    if not is_jpeg:
        return Image.open(path)
    image = JpegImagePlugin.JpegImageFile(path)  # the primary picture (also of a phone's multi-picture MPO)
    image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))
    limit = Image.MAX_IMAGE_PIXELS  # Pillow's rule (it warns past the limit and refuses past twice it)
    if limit and image.width * image.height > 2 * limit:
        image.close()
        raise Image.DecompressionBombError(f"{image.width * image.height} pixels decoded, over {2 * limit}")
    return image


def load_image(path: Path) -> tuple[Image.Image, str]:
    """Open an image file as a viewer would show it; also a note for the output line ('' when none).

    Bad files raise `UserError` with a one-line reason: unreadable or truncated, over Pillow's
    decompression-bomb limit, or a shape that holds no digit.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it, and refuses beyond: the refusal is the one line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image(path) as image:
                if problem := shape_problem(*image.size):
                    raise UserError(f"{path}: {problem}")
                frames = getattr(image, "n_frames", 1)
                image.load()
                loaded = image.copy()
    except Image.DecompressionBombError as error:
        raise UserError(f"{path}: too large to decode safely ({error.args[0].split(', could')[0]})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(f"{path}: not a readable image") from None
    notes = [f"read its first of {frames} frames"] if frames > 1 else []
    try:
        loaded.getexif()
    except Exception:  # a damaged EXIF block: its orientation is unknown, the picture itself is fine
        notes.append("its EXIF block is unreadable, so it is read as stored")
    return upright(loaded), "; ".join(notes)


def upright(image: Image.Image) -> Image.Image:
    """The picture the way a viewer shows it: its EXIF orientation applied (a damaged EXIF block: as stored)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # Pillow raises SyntaxError, ValueError, struct.error... for bad EXIF bytes
        return image


def eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale scaled to 8 bits by the range of their type (0-65535; a float picture 0-1, or its
    own range if it leaves that), where Pillow's `convert` would clip grey ink to white."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = (0.0, 1.0) if values.min() >= 0 and values.max() <= 1 else (values.min(), values.max())
    else:
        low, high = 0.0, 65535.0 if values.max() <= 65535 else float(2**32 - 1)
    scaled = (values - low) / max(high - low, 1e-12) * 255
    return Image.fromarray(scaled.clip(0, 255).round().astype(np.uint8))


def flatten(image: Image.Image) -> Image.Image:
    """Transparency resolved: a drawing on a transparent canvas (its opaque pixels all about one colour, as a
    pen in a drawing app leaves them) becomes black strokes where it is opaque, on white, whatever the pen's
    colour (white on transparent is the same drawing as black on transparent); any other picture with
    transparency is flattened onto white, as it shows on a page."""
    if image.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and "transparency" not in image.info:
        return image
    rgba = np.asarray(image.convert("RGBA"), dtype=np.int16)
    alpha = rgba[..., 3]
    opaque = rgba[alpha >= 128][:, :3]
    if alpha.min() < 128 and len(opaque) and (np.abs(opaque - np.median(opaque, 0)).max(1) > 48).mean() < 0.02:
        return Image.fromarray((255 - alpha).astype(np.uint8))
    return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))


def greyscale(image: Image.Image) -> Image.Image:
    """Any picture -> 8-bit greyscale as a viewer shows it (orientation, bit depth, transparency), at most
    WORKING_SIDE pixels a side. Raises ValueError for a shape that holds no digit."""
    if problem := shape_problem(*image.size):
        raise ValueError(problem)
    image = eight_bit(upright(image))
    if image.mode in ("1", "P", "PA"):  # resampled as what they show, not as palette indices
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    scale = WORKING_SIDE / max(image.size)
    if scale < 1:  # box filtering keeps a thin stroke's ink, as a fainter stroke
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return flatten(image).convert("L")


def edge_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """The pixels along the image's four sides: paper, in a picture of one digit."""
    return torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


def above_the_paper(edge: torch.Tensor) -> float:
    """The brightest the paper along the edge gets: its median plus five times its median deviation, which
    ink on up to half of the edge does not move."""
    median = edge.median()
    return (median + 5 * (edge - median).abs().median()).item()


def noise_level(pixels: torch.Tensor) -> float:
    """The standard deviation of pixel noise: the median deviation of each pixel from its 3x3 neighbourhood's
    mean, which the smooth parts of paper and strokes (most of any picture) leave at zero without noise."""
    smooth = F.avg_pool2d(F.pad(pixels[None, None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0, 0]
    return 1.4826 * (pixels - smooth).abs().median().item()


def paper_level(pixels: torch.Tensor) -> torch.Tensor:
    """The paper's brightness under each pixel, for unevenly lit photos. The image is cut into 16 blocks a side;
    each block's median (ink is a minority of almost every block), then the darkest of its neighbours' (so
    that a block filled by a thick stroke takes the paper beside it), smoothed and brought back to full size."""
    height, width = pixels.shape
    block = max(1, math.ceil(max(height, width) / 16))
    rows, columns = math.ceil(height / block), math.ceil(width / block)
    padded = F.pad(pixels[None, None], (0, columns * block - width, 0, rows * block - height), mode="replicate")
    blocks = padded.unfold(2, block, block).unfold(3, block, block).reshape(rows, columns, -1).median(-1).values
    darkest = -F.max_pool2d(-blocks[None, None], 3, stride=1, padding=1)
    smooth = F.avg_pool2d(F.pad(darkest, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return F.interpolate(smooth, size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def remove_ruled_lines(ink: torch.Tensor) -> torch.Tensor:
    """Ruled and squared paper, and the lines of a form, taken out: a row (or column) with ink along nearly all
    of its length is a printed line, unlike any stroke of a digit that stands free of the picture's edges.
    Each such line loses the ink its faintest pixels hold (an opening with a structuring element as long as
    the picture), and where a digit's stroke crosses it the stroke is mended from either side. A band of such
    rows thicker than a printed line (a digit cropped so tight that its bar spans the picture) is kept."""
    for axis in (0, 1):
        lines = ink if axis == 0 else ink.T
        length = lines.shape[1]
        level = lines.kthvalue(max(1, int((1 - RULED_COVER) * length)), dim=1).values
        ruled = (level > INK_FLOOR).tolist()
        cleaned = (lines - level[:, None] * torch.tensor(ruled)[:, None]).clamp(min=0)
        start = None
        for row, is_line in enumerate([*ruled, False]):
            if is_line and start is None:
                start = row
            elif not is_line and start is not None:
                if row - start > max(1, RULED_THICKNESS * len(ruled)):  # too thick for a printed line
                    cleaned[start:row] = lines[start:row]
                else:  # a stroke that goes on both above and below the line went through it
                    above = cleaned[start - 1] if start > 0 else torch.zeros(length)
                    below = cleaned[row] if row < len(ruled) else torch.zeros(length)
                    cleaned[start:row] = torch.maximum(cleaned[start:row], torch.minimum(above, below))
                start = None
        ink = cleaned if axis == 0 else cleaned.T
    return ink.contiguous()


def side_lines(part: np.ndarray) -> list[tuple[slice, slice]] | None:
    """The four sides of a printed frame, if `part` (a connected piece of ink, cropped to its box) is one: near
    each side of the box (within its outer 15%: a digit's stroke may cross the frame and stick out) a line
    covering at least 90% of that side and at most 15% of the box deep. Returns the rows and columns each
    side's line occupies, top, bottom, left, right; None for anything else (a digit, a filled shape)."""
    height, width = part.shape
    spans = []
    for lines in (part, part[::-1], part.T, part.T[::-1]):
        cover = lines.mean(1)
        outer = max(1, int(0.15 * len(cover)))
        strong = np.flatnonzero(cover[:outer] >= 0.9)
        if not strong.size:
            return None
        start, stop = strong[0], strong[-1] + 1
        while start > 0 and cover[start - 1] >= 0.5:  # the line's soft or ragged edges belong to it
            start -= 1
        while stop < len(cover) and cover[stop] >= 0.5:
            stop += 1
        if stop - start > outer:
            return None
        spans.append((start, stop))
    (t0, t1), (b0, b1), (l0, l1), (r0, r1) = spans
    every = slice(None)
    return [(slice(t0, t1), every), (slice(height - b1, height - b0), every),
            (every, slice(l0, l1)), (every, slice(width - r1, width - r0))]  # fmt: skip


def remove_frames(ink: torch.Tensor) -> torch.Tensor:
    """A printed box around the digit (a form's field) taken out: a piece of ink that is four straight sides,
    judged by shape (side_lines), loses them, and what touches them from inside stays."""
    pieces, _ = ndimage.label(ink.numpy() > 0.2 * ink.max().item(), structure=TOUCHING)
    ink = ink.clone()
    for label, box in enumerate(ndimage.find_objects(pieces), start=1):
        part = pieces[box] == label
        if min(part.shape) < 3 * MIN_SIDE or (sides := side_lines(part)) is None:
            continue
        for side in sides:
            ink[box][side][torch.from_numpy(part[side])] = 0  # views: this clears those pixels of `ink`
    return ink


def ink_of(image: Image.Image) -> torch.Tensor:
    """A picture -> its ink, light on black in [0, 1], at most WORKING_SIDE pixels a side: the paper (however
    lit), its noise and its printed lines taken away. Raises ValueError when there is no ink to read."""
    pixels = torch.from_numpy(np.asarray(greyscale(image), dtype=np.float32)) / 255
    if edge_pixels(pixels).median() > 0.5:  # dark ink on light paper: make it light ink on black, like MNIST
        pixels = 1 - pixels
    # The paper under the ink, never brighter than the paper along the image's edge (a digit that fills the
    # picture would otherwise be taken for paper); a tight crop's edge holds some ink, hence the median.
    paper = paper_level(pixels).clamp(max=above_the_paper(edge_pixels(pixels)))
    ink = (pixels - paper).clamp(min=0)
    # Sensor noise and JPEG artefacts: specks within four times the noise's standard deviation.
    ink = remove_ruled_lines((ink - 4 * noise_level(pixels)).clamp(min=0))
    if ink.max() < 0.1:
        raise ValueError("no digit found (the image is blank)")
    ink = remove_frames(ink / ink.max())
    if ink.max() < 0.1:
        raise ValueError("no digit found (only lines)")
    return ink / ink.max()


def stroke_width(ink: torch.Tensor) -> float:
    """Mean stroke width in pixels: twice the ink over the length of the stroke's edges (a stroke has two).
    The ink is counted in grey levels, so a soft, anti-aliased edge adds what it is worth; the edge is the
    half-intensity outline, where the image's border counts as an edge too."""
    mask = (ink > 0.5).float()[None, None]
    inner = -F.max_pool2d(-F.pad(mask, (1, 1, 1, 1)), 3, stride=1)  # zero padding: the border is an edge
    edge = (mask - inner).sum().item()
    return 2 * ink.sum().item() / edge if edge else 0.0


def square_max(ink: torch.Tensor, kernel: int) -> torch.Tensor:
    """The largest value in each kernel x kernel square (no padding): a row pass then a column pass, the same
    result as one square pass at a cost that grows with the kernel's side, not its area."""
    rows = F.max_pool2d(ink[None, None], (1, kernel), stride=1)
    return F.max_pool2d(rows, (kernel, 1), stride=1)[0, 0]


def match_stroke_width(ink: torch.Tensor, scale: float) -> torch.Tensor:
    """Thicken a hairline or thin a blob so that, once scaled by `scale` into MNIST's 20x20 box, its strokes are
    as wide as MNIST's median pen stroke (the model reads both poorly). Strokes within MNIST's own range are
    left alone, and a digit is never thinned away."""
    width = stroke_width(ink) * scale
    low, median, high = STROKE_WIDTHS
    radius = 0 if low <= width <= high else round((median - width) / scale / 2)
    if radius == 0:
        return ink
    kernel, pad = 2 * abs(radius) + 1, abs(radius)
    if radius > 0:  # dilate, into a margin wide enough to keep the grown strokes
        return square_max(F.pad(ink, (2 * pad,) * 4), kernel)
    thinner = -square_max(-F.pad(ink, (pad,) * 4), kernel)
    return thinner if thinner.max() > 0.5 else ink  # a digit thinner than the erosion keeps its width


def crop(ink: torch.Tensor) -> torch.Tensor:
    """The box around the ink (pixels above 0.2 of the brightest, which is 1)."""
    rows, columns = (ink > 0.2).nonzero(as_tuple=True)
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def mnist_digit(ink: torch.Tensor) -> torch.Tensor:
    """The ink of one digit (ink_of, or a part of it) -> a normalized `(1, 28, 28)` tensor in MNIST's convention:
    strokes brought into MNIST's range of widths, the digit fitted to 20x20 and centred by its mass."""
    ink = crop(ink / ink.max())
    ink = crop(match_stroke_width(ink, 20 / max(ink.shape)))  # a dilated digit has grown into its margin

    # Fit the digit's longer side to 20 pixels, keeping its aspect ratio, as MNIST did.
    height, width = ink.shape
    scale = 20 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray((ink * 255).byte().numpy()).resize(size, Image.Resampling.LANCZOS)
    digit = torch.from_numpy(np.asarray(resized, dtype=np.float32)) / 255

    # Place it so that its centre of mass lands on the centre of the 28x28 canvas (a hairline that
    # resampling has faded to nothing is centred by its box instead).
    total = digit.sum()
    if total > 0:
        centre_y = ((digit.sum(1) * torch.arange(size[1])).sum() / total).item()
        centre_x = ((digit.sum(0) * torch.arange(size[0])).sum() / total).item()
    else:
        centre_y, centre_x = (size[1] - 1) / 2, (size[0] - 1) / 2
    top = int(round(13.5 - centre_y))
    left = int(round(13.5 - centre_x))
    top, left = min(max(top, 0), 28 - size[1]), min(max(left, 0), 28 - size[0])
    canvas = torch.zeros(28, 28)
    canvas[top : top + size[1], left : left + size[0]] = digit
    return ((canvas - MEAN) / STD).unsqueeze(0)


def to_mnist(image: Image.Image) -> torch.Tensor:
    """A picture of one digit (any size and mode) -> a normalized `(1, 28, 28)` tensor in MNIST's convention.

    The one preprocessing for files (predict.py), the demo's canvas and uploads (app.py) and the Hub entry.
    Raises ValueError when there is no digit to find.
    """
    return mnist_digit(ink_of(image))


def split_digits(ink: torch.Tensor) -> list[torch.Tensor]:
    """The digits of a written number, left to right, each as ink of the picture's size holding only its own
    strokes. Connected pieces of ink are one digit when they overlap side by side or nearly touch (the parts
    of a broken 4, 5 or 7); specks are dropped. Touching digits stay one."""
    pieces, count = ndimage.label(ink.numpy() > 0.2, structure=TOUCHING)
    if count <= 1:
        return [ink]
    boxes = ndimage.find_objects(pieces)
    weights = ndimage.sum_labels(ink.numpy(), pieces, range(1, count + 1))
    kept = [i for i in range(count) if weights[i] >= SPECK * weights.max()]
    gap = MERGE_GAP * max(boxes[i][0].stop - boxes[i][0].start for i in kept)
    groups: list[list[int]] = []
    for i in sorted(kept, key=lambda i: boxes[i][1].start):
        if groups and boxes[i][1].start < max(boxes[j][1].stop for j in groups[-1]) + gap:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [ink * torch.from_numpy(np.isin(pieces, [i + 1 for i in group])) for group in groups]


def several_digits(ink: torch.Tensor) -> bool:
    """Whether the picture looks like a number: at least two digit-sized parts (each at least half as tall as
    the tallest) side by side."""
    parts = split_digits(ink)
    if len(parts) < 2:
        return False
    rows = [(part > 0.2).any(1).nonzero() for part in parts]
    heights = [(row.max() - row.min() + 1).item() for row in rows]
    return sum(height >= 0.5 * max(heights) for height in heights) >= 2


def number_inputs(ink: torch.Tensor) -> torch.Tensor:
    """The ink of a written number -> one normalized `(1, 28, 28)` input per digit, left to right."""
    return torch.stack([mnist_digit(part) for part in split_digits(ink)])
