"""The pictures the project reads itself with: digits drawn as the demo's sketchpad draws them, typed in the fonts
matplotlib ships, and MNIST validation digits turned into the files devices save (photos, scans, ruled paper,
form boxes, numbers). One home for the reading rate (scripts/reading_rate.py), the tests and the browser page's
parity check, so that all of them read the same pictures."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from compact_mnist.data import ensure_downloaded, read_split, split_indices

CANVAS = 420  # the demo's canvas size
FONTS = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf",
]  # fmt: skip

Stroke = list[tuple[float, float]]  # points in the unit square, x to the right, y down


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 24) -> Stroke:
    """Points along an ellipse from angle `start` to `end` in degrees (0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in (start + (end - start) * i / (points - 1) for i in range(points))
    ]


# One or more ways to draw each digit, each a list of pen strokes.
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [[arc(0.5, 0.5, 0.3, 0.45, -90, 270)], [arc(0.5, 0.5, 0.36, 0.42, -100, 265)]],
    1: [[[(0.5, 0.05), (0.5, 0.95)]], [[(0.32, 0.22), (0.55, 0.05), (0.55, 0.95)]]],
    2: [[arc(0.5, 0.3, 0.3, 0.25, 200, 390) + [(0.15, 0.95), (0.85, 0.95)]]],
    3: [[arc(0.48, 0.27, 0.28, 0.22, 200, 450) + arc(0.48, 0.72, 0.32, 0.23, -90, 160)[1:]]],
    4: [[[(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.65, 0.35), (0.65, 0.95)]],
        [[(0.25, 0.05), (0.2, 0.55), (0.8, 0.55)], [(0.75, 0.05), (0.75, 0.95)]]],
    5: [[[(0.8, 0.05), (0.3, 0.05), (0.26, 0.45)] + arc(0.5, 0.68, 0.3, 0.27, -125, 150)]],
    6: [[[(0.7, 0.05), (0.4, 0.3), (0.25, 0.62)] + arc(0.5, 0.7, 0.25, 0.24, 180, 540)]],
    7: [[[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)]],
        [[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)], [(0.35, 0.5), (0.8, 0.5)]]],
    8: [[arc(0.5, 0.27, 0.22, 0.22, 90, 450), arc(0.5, 0.72, 0.28, 0.23, -90, 270)]],
    9: [[arc(0.48, 0.3, 0.27, 0.25, 0, 360), [(0.75, 0.3), (0.7, 0.95)]],
        [arc(0.48, 0.3, 0.27, 0.25, 0, 360), [(0.75, 0.3), (0.75, 0.6)] + arc(0.5, 0.6, 0.25, 0.35, 0, 110)]],
}  # fmt: skip


def place(strokes: list[Stroke], rng: random.Random) -> list[Stroke]:
    """The strokes in canvas pixels, randomly rotated (up to 12 degrees), sized (20-90% of the canvas
    height) and moved, each point shaken by about 2 pixels like a hand on a mouse."""
    angle = math.radians(rng.uniform(-12, 12))
    height = rng.uniform(0.2, 0.9) * CANVAS
    width = height * rng.uniform(0.55, 0.8)
    cx, cy = (rng.uniform(0.5 - margin, 0.5 + margin) * CANVAS for margin in [0.45 - height / CANVAS / 2] * 2)
    placed = []
    for stroke in strokes:
        points = []
        for x, y in stroke:
            dx, dy = (x - 0.5) * width + rng.gauss(0, 2), (y - 0.5) * height + rng.gauss(0, 2)
            cos, sin = math.cos(angle), math.sin(angle)
            points.append((cx + dx * cos - dy * sin, cy + dx * sin + dy * cos))
        placed.append(points)
    return placed


def draw(strokes: list[Stroke], width: int) -> Image.Image:
    """Round-capped black lines on a white canvas, as the sketchpad draws them."""
    image = Image.new("RGB", (CANVAS, CANVAS), "white")
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(stroke, fill="black", width=width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill="black")
    return image


def typed(digit: int, font: str, size: int) -> Image.Image:
    """`digit` in `font` (one of matplotlib's), black on white."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font
    image = Image.new("RGB", (CANVAS, CANVAS), "white")
    ImageDraw.Draw(image).text(
        (CANVAS / 2, CANVAS / 2), str(digit), fill="black", anchor="mm", font=ImageFont.truetype(str(path), size)
    )
    return image


def drawn_digits(count: int, seed: int = 0) -> list[tuple[int, Image.Image]]:
    """`count` random sketchpad-style drawings, cycling through the digits."""
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        digit = index % 10
        strokes = place(rng.choice(TEMPLATES[digit]), rng)
        samples.append((digit, draw(strokes, width=rng.randint(4, 40))))
    return samples


def typed_digits() -> list[tuple[int, Image.Image]]:
    return [(digit, typed(digit, font, size)) for font in FONTS for size in (120, 260) for digit in range(10)]


def as_image(ink: torch.Tensor) -> Image.Image:
    """Ink in [0, 1] (2-D) -> dark ink on white paper, 8-bit greyscale, as a scanner or a printout shows it."""
    return Image.fromarray(((1 - ink.clamp(0, 1)) * 255).round().byte().numpy())


def low_resolution(digit: torch.Tensor, side: int) -> Image.Image:
    """The digit's box, made square, down-sampled to side x side with 17 grey levels, up-sampled to 64 px."""
    ink = digit.float() / 255
    rows, columns = (ink > 0).nonzero(as_tuple=True)
    box = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    height, width = box.shape
    square = max(height, width) + 2  # a pixel of paper around the box
    top, left = (square - height) // 2, (square - width) // 2
    box = F.pad(box, (left, square - width - left, top, square - height - top))[None, None]
    small = (F.interpolate(box, size=(side, side), mode="area") * 16).round() / 16
    return as_image(F.interpolate(small, size=(64, 64), mode="bilinear", align_corners=False)[0, 0])


def pen_width(digit: torch.Tensor, radius: int) -> Image.Image:
    """Strokes made thicker (radius > 0, grey-level dilation) or thinner (erosion) at 4x resolution."""
    ink = F.interpolate(digit.float()[None, None] / 255, scale_factor=4, mode="bilinear", align_corners=False)
    kernel = 2 * abs(radius) + 1
    if radius > 0:
        ink = F.max_pool2d(ink, kernel, stride=1, padding=radius)
    else:
        ink = -F.max_pool2d(-ink, kernel, stride=1, padding=-radius)
    return as_image(ink[0, 0])


def paper_photo(
    digit: torch.Tensor, rng: random.Random, side: int = 112, frame: tuple[int, int] = (224, 224), quality: int = 30
) -> Image.Image:
    """A phone photo of the digit written on paper: dark ink on light, unevenly lit paper, a few degrees of
    rotation, the digit `side` pixels high somewhere in the frame, sensor noise, and a JPEG of `quality`."""
    width, height = frame
    turned = Image.fromarray(digit.numpy()).resize((side, side), Image.Resampling.BILINEAR)
    turned = turned.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BILINEAR)
    page = Image.new("L", frame, 0)
    page.paste(turned, (rng.randint(0, width - side), rng.randint(0, height - side)))
    ink = torch.from_numpy(np.asarray(page, dtype=np.float32)) / 255
    angle = rng.uniform(0, 2 * math.pi)  # the light falls off across the page in a random direction
    across, down = torch.linspace(-0.5, 0.5, width), torch.linspace(-0.5, 0.5, height)
    light = 1 - rng.uniform(0.1, 0.3) * (math.cos(angle) * across[None, :] + math.sin(angle) * down[:, None] + 0.5)
    paper, pen = rng.uniform(0.8, 0.95), rng.uniform(0.05, 0.25)
    noise = torch.randn(height, width, generator=torch.Generator().manual_seed(rng.randrange(2**31))) * 0.03
    grey = (paper - (paper - pen) * ink) * light + noise
    buffer = io.BytesIO()
    as_image(1 - grey).convert("RGB").save(buffer, format="JPEG", quality=quality)
    photo = Image.open(io.BytesIO(buffer.getvalue()))
    photo.info["file"] = buffer.getvalue()  # the file as the camera wrote it, for write()
    return photo


def magnified(digit: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """A uint8 MNIST digit as ink in [0, 1], enlarged `factor` times with bilinear filtering (112 px for 4)."""
    ink = digit.float()[None, None] / 255
    return F.interpolate(ink, scale_factor=factor, mode="bilinear", align_corners=False)[0, 0]


def plain_file(digit: torch.Tensor) -> Image.Image:
    """The digit as a plain picture: dark ink on white, 8-bit greyscale, 112 px: every file row's control."""
    return as_image(magnified(digit))


def sideways(photo: Image.Image, orientation: int) -> tuple[Image.Image, Image.Exif]:
    """A photo as a phone stores it when held turned: the pixels turned, with the EXIF orientation tag (3: upside
    down, 6 and 8: a quarter turn) that tells a viewer how to show it upright."""
    stored = photo.transpose(
        {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    )
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    return stored, exif


def scan_16bit(digit: torch.Tensor, rng: random.Random) -> Image.Image:
    """Grey pencil ink (a third to two thirds of the way from paper to black) in a 16-bit greyscale scan."""
    paper, pen = rng.uniform(0.85, 0.97), rng.uniform(0.3, 0.6)
    grey = paper - (paper - pen) * magnified(digit)
    return Image.fromarray((grey.numpy() * 65535).round().astype(np.uint16))


def transparent(digit: torch.Tensor, rng: random.Random, white: bool) -> Image.Image:
    """Strokes of one colour (near black, or near white) on a transparent canvas: the digit is the alpha."""
    shade = rng.randint(215, 255) if white else rng.randint(0, 40)
    alpha = (magnified(digit) * 255).round().byte().numpy()
    colour = np.full((*alpha.shape, 3), shade, dtype=np.uint8)
    return Image.fromarray(np.dstack([colour, alpha]))


def on_paper(digit: torch.Tensor, rng: random.Random, paper: str) -> Image.Image:
    """The digit in pen (black or blue) on a page of `paper`: 'ruled' (light lines 18-40 px apart, sometimes a
    red margin), 'squared' (a grid 14-30 px) or 'box' (a dark printed frame 1-5 px wide around the digit, as on
    a form), the digit somewhere on the page."""
    width, height = rng.randint(260, 420), rng.randint(260, 420)
    page = Image.new("RGB", (width, height), tuple(rng.randint(238, 255) for _ in range(3)))
    pen = ImageDraw.Draw(page)
    left, top = rng.randint(20, width - 132), rng.randint(20, height - 132)  # where the 112 px digit goes
    if paper in ("ruled", "squared"):
        colour = (rng.randint(120, 190), rng.randint(160, 210), rng.randint(215, 250))
        spacing, line = rng.randint(18, 40) if paper == "ruled" else rng.randint(14, 30), rng.randint(1, 3)
        for y in range(rng.randint(0, spacing), height, spacing):
            pen.line([(0, y), (width, y)], fill=colour, width=line)
        if paper == "squared":
            for x in range(rng.randint(0, spacing), width, spacing):
                pen.line([(x, 0), (x, height)], fill=colour, width=line)
        elif rng.random() < 0.3:  # a notebook's margin
            x = rng.randint(15, 60)
            pen.line([(x, 0), (x, height)], fill=(rng.randint(200, 240), 90, 90), width=line)
    else:
        box_width, box_height = (round(112 * rng.uniform(0.95, 1.5)) for _ in range(2))
        x0 = max(2, min(width - box_width - 3, left + 56 - box_width // 2 + rng.randint(-8, 8)))
        y0 = max(2, min(height - box_height - 3, top + 56 - box_height // 2 + rng.randint(-8, 8)))
        frame = tuple(rng.randint(0, 60) for _ in range(2)) + (rng.randint(0, 140),)
        pen.rectangle([x0, y0, x0 + box_width, y0 + box_height], outline=frame, width=rng.randint(1, 5))
    ink = np.asarray(magnified(digit))[..., None]
    ink_colour = np.array(rng.choice([(20, 20, 25), (25, 40, 130), (10, 25, 80)]), dtype=np.float32)
    region = np.asarray(page, dtype=np.float32)[top : top + 112, left : left + 112]
    pixels = np.asarray(page).copy()
    pixels[top : top + 112, left : left + 112] = (region * (1 - ink) + ink_colour * ink).round().astype(np.uint8)
    return Image.fromarray(pixels)


def large_photo(digit: torch.Tensor, rng: random.Random) -> Image.Image:
    """A paper photo of 1008x756 pixels, the digit 224 of them high, enlarged to 4032x3024 (a 12-megapixel
    phone photo) for a JPEG of quality 85."""
    photo = paper_photo(digit, rng, side=224, frame=(1008, 756), quality=95)
    return photo.resize((4032, 3024), Image.Resampling.BILINEAR)


def number_picture(digits: list[torch.Tensor], rng: random.Random) -> Image.Image:
    """Digits written side by side, dark on white: each digit's ink box at 4x, gaps of 20-60% of a digit's
    height between boxes, each moved up or down a little."""
    boxes = [crop_box(magnified(digit)) for digit in digits]
    height = max(box.shape[0] for box in boxes)
    gaps = [round(rng.uniform(0.2, 0.6) * height) for _ in boxes[1:]]
    page = torch.zeros(height + 60, sum(box.shape[1] for box in boxes) + sum(gaps) + 60)
    x = 30
    for box, gap in zip(boxes, [*gaps, 0], strict=True):
        y = 30 + (height - box.shape[0]) // 2 + rng.randint(-8, 8)
        page[y : y + box.shape[0], x : x + box.shape[1]] = box
        x += box.shape[1] + gap
    return as_image(page)


def crop_box(ink: torch.Tensor) -> torch.Tensor:
    """The box around the ink."""
    rows, columns = (ink > 0.05).nonzero(as_tuple=True)
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def validation_sample(data_dir: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images (uint8) and labels of train.py's validation split: digits the committed model
    never trained on and, unlike the test set, ones that choices may be made on."""
    ensure_downloaded(data_dir)
    images, labels = read_split(data_dir, train=True)
    chosen = split_indices(len(images))[0][:count]
    return images[chosen], labels[chosen]


Sample = tuple[str, Image.Image, dict]  # the label (a digit, or a number's digits), the picture, how to save it
PNG, JPEG = dict(format="PNG"), dict(format="JPEG", quality=85)


def mnist_rows(images: torch.Tensor, labels: torch.Tensor, seed: int) -> dict[str, tuple[str, Iterable[Sample]]]:
    """The rows made from MNIST validation digits: name -> (how they were made, samples, each made only when it
    is written: a thousand 12-megapixel photos would not fit in memory)."""
    pairs = list(zip(map(str, labels.tolist()), images, strict=True))

    def row(how: str, make: Callable[[torch.Tensor, random.Random], Image.Image], save: dict, offset: int):
        rng = random.Random(seed * 1000 + offset)  # each row its own draws: rows do not shift one another
        return how, ((label, make(image, rng), save) for label, image in pairs)  # made one by one, as written

    def turned(orientation: int):
        def make(image, rng):
            stored, exif = sideways(paper_photo(image, rng), orientation)
            stored.info["exif"] = exif.tobytes()
            return stored

        return make

    photo_rng = random.Random(0)  # the paper photo row keeps the draws it has always had
    rows = {
        "plain file": row("the digit at 112 px, dark on white, an 8-bit greyscale PNG", lambda d, _: plain_file(d),
                          PNG, 0),
        "low resolution 8x8": row("digit box down-sampled to 8x8, 17 grey levels, bilinear up to 64 px",
                                  lambda d, _: low_resolution(d, 8), PNG, 1),
        "low resolution 16x16": row("digit box down-sampled to 16x16, 17 grey levels, bilinear up to 64 px",
                                    lambda d, _: low_resolution(d, 16), PNG, 2),
        "thin pen": row("strokes eroded by 3 px at 4x resolution (about 1.5 px thinner)",
                        lambda d, _: pen_width(d, -3), PNG, 3),
        "thick pen": row("strokes dilated by 4 px at 4x resolution (about 2 px thicker)",
                         lambda d, _: pen_width(d, 4), PNG, 4),
        "paper photo": ("dark ink on uneven light paper, noise, rotated up to 5 degrees, off centre, JPEG quality 30",
                        ((label, paper_photo(image, photo_rng), {}) for label, image in pairs)),
        **{f"sideways photo {o}": row(f"the paper photo stored turned, EXIF orientation {o}", turned(o), JPEG, 4 + o)
           for o in (3, 6, 8)},
        "16-bit scan": row("grey pencil ink in a 16-bit greyscale PNG", scan_16bit, PNG, 13),
        "transparent, black ink": row("near-black strokes on a transparent canvas, an RGBA PNG",
                                      lambda d, rng: transparent(d, rng, white=False), PNG, 14),
        "transparent, white ink": row("near-white strokes on a transparent canvas, an RGBA PNG",
                                      lambda d, rng: transparent(d, rng, white=True), PNG, 15),
        "ruled paper": row("pen on a page ruled 18-40 px apart in light blue, some with a red margin, a PNG",
                           lambda d, rng: on_paper(d, rng, "ruled"), PNG, 16),
        "squared paper": row("pen on a 14-30 px light grid, a PNG", lambda d, rng: on_paper(d, rng, "squared"),
                             PNG, 17),
        "form box": row("pen inside a dark printed frame 1-5 px wide, a PNG", lambda d, rng: on_paper(d, rng, "box"),
                        PNG, 18),
        "large photo": row("a paper photo enlarged to a 4032x3024 JPEG (12 megapixels)", large_photo, JPEG, 19),
    }  # fmt: skip
    return rows


def number_row(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int) -> tuple[str, list[Sample]]:
    """Numbers of 2 to 6 validation digits side by side (lengths in turn), as PNG files, each with the indices
    of its digits for the control."""
    rng = random.Random(seed * 1000 + 20)
    samples = []
    for index in range(count):
        chosen = rng.sample(range(len(images)), 2 + index % 5)
        label = "".join(str(labels[i].item()) for i in chosen)
        samples.append((label, number_picture([images[i] for i in chosen], rng), dict(PNG, digits=chosen)))
    return "2 to 6 digits side by side, 20-60% of a digit's height apart, read with --number", samples


def write(samples: Iterable[Sample], folder: Path) -> list[tuple[str, Path, dict]]:
    """Each sample saved as a file the way a device saves it; (label, path, how it was saved) back."""
    folder.mkdir(parents=True)
    written = []
    for index, (label, image, save) in enumerate(samples):
        options = {key: value for key, value in save.items() if key != "digits"}
        options.setdefault("format", "JPEG" if image.format == "JPEG" else "PNG")
        path = folder / f"{index:05d}.{options['format'].lower()}"
        if "file" in image.info and not save:  # a JPEG already: its own bytes, not a second compression
            path.write_bytes(image.info["file"])
        else:
            image.save(path, **options, exif=image.info.get("exif", b""))
        written.append((label, path, save))
    return written


def hard_case(kind: str) -> Image.Image:
    """Strokes at the edge of what the preprocessing can see: dark on white, 200x200."""
    image = Image.new("L", (200, 200), 255)
    pen = ImageDraw.Draw(image)
    if kind == "one-pixel 1":
        pen.line([(100, 30), (100, 170)], fill=0, width=1)
    elif kind == "one-pixel dash":
        pen.line([(60, 100), (140, 100)], fill=0, width=1)
    elif kind == "dot":
        pen.point((100, 100), fill=0)
    elif kind == "diagonal hairline":
        pen.line([(150, 30), (90, 170)], fill=0, width=1)
    elif kind == "soft 1":  # a scanned pen stroke: wide, blurred, never fully black
        pen.line([(100, 30), (100, 170)], fill=60, width=12)
        image = image.filter(ImageFilter.GaussianBlur(5))
    return image


HARD_CASES = ["one-pixel 1", "one-pixel dash", "dot", "diagonal hairline", "soft 1"]


# The kinds a browser decodes to the same pixels as Pillow (8-bit PNGs without a colour profile): what the page's
# port of the preprocessing is held to. The reading rate's JPEG and 16-bit rows are decoded differently.
BROWSER_ROWS = (
    "plain file", "low resolution 8x8", "low resolution 16x16", "thin pen", "thick pen",
    "transparent, black ink", "transparent, white ink", "ruled paper", "squared paper", "form box",
)  # fmt: skip


def browser_pictures(
    images: torch.Tensor, labels: torch.Tensor, drawn: int, typed_every: int = 1, seed: int = 0
) -> dict[str, list[Sample]]:
    """Kind -> samples of the pictures both Python and a browser read the same way: `drawn` sketchpad drawings,
    every `typed_every`-th typed digit, the hairline shapes (labelled 1 where they are a 1) and the rows of
    BROWSER_ROWS made from `images`."""
    kinds = {
        "drawn": [(str(digit), image, PNG) for digit, image in drawn_digits(drawn, seed)],
        "typed": [(str(digit), image, PNG) for digit, image in typed_digits()[::typed_every]],
        "hairline": [("1" if kind.endswith("1") or "hairline" in kind else "", hard_case(kind), PNG)
                     for kind in HARD_CASES],
    }  # fmt: skip
    rows = mnist_rows(images, labels, seed)
    return kinds | {name: list(rows[name][1]) for name in BROWSER_ROWS}
