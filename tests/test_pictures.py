"""Pictures as devices save them: predict.py's loader and preprocessing on small pictures made here, one rule
at a time (orientation, bit depth, transparency, frames, size, printed lines, numbers, bad files)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import model as model_module
import predict
from compact_mnist import preprocess
from compact_mnist.data import STD
from compact_mnist.drawings import TEMPLATES, draw, place, sideways

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


def drawn(digit: int, seed: int = 0, width: int = 24) -> Image.Image:
    """A digit drawn in black on a white 420x420 canvas, as the demo's sketchpad draws it."""
    return draw(place(TEMPLATES[digit][0], random.Random(seed)), width=width)


def read(model, image: Image.Image) -> int:
    return model_module.predict(model, preprocess.to_mnist(image)[None]).argmax(1).item()


def same_input(a: Image.Image, b: Image.Image, grey_levels: int = 2) -> None:
    """The two pictures give the model the same 28x28 input, to within `grey_levels` of 255 in any pixel."""
    torch.testing.assert_close(preprocess.to_mnist(a), preprocess.to_mnist(b), atol=grey_levels / 255 / STD, rtol=0)


# Orientation


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_photo_stored_turned_is_read_as_a_viewer_shows_it(tmp_path, orientation):
    upright = drawn(7).resize((300, 200))  # not square, so that a quarter turn changes the shape too
    stored, exif = sideways(upright, orientation)
    path = tmp_path / "photo.jpg"
    stored.save(path, quality=95, exif=exif)
    picture, note = preprocess.load_image(path)
    assert picture.size == upright.size and note == ""
    same_input(picture, upright, grey_levels=16)  # JPEG's artefacts
    with Image.open(path) as opened:  # a PIL image handed to to_mnist directly is turned too (the Hub entry)
        same_input(opened, upright, grey_levels=16)


# Bit depth


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_a_16_or_32_bit_scan_with_grey_ink_is_scaled_not_clipped(tmp_path, mode):
    grey = np.asarray(drawn(4), dtype=np.float64)[..., 0] / 255  # 1 on paper, 0 in the strokes
    paper, pencil = 0.9, 0.55
    levels = (paper - (paper - pencil) * (1 - grey)) * 65535
    scan = Image.fromarray(levels.round().astype(np.uint16 if mode == "I;16" else np.int32))
    assert scan.mode == mode
    path = tmp_path / ("scan.png" if mode == "I;16" else "scan.tif")  # PNG holds 16 bits, TIFF 32
    scan.save(path)
    eight_bit = Image.fromarray((levels / 257).round().astype(np.uint8))
    same_input(preprocess.load_image(path)[0], eight_bit)
    assert scan.convert("L").getextrema()[0] == 255, "what Pillow's own conversion does: the pencil vanishes"


# Transparency


@pytest.mark.parametrize("shade", [0, 255, 128])
def test_a_one_colour_drawing_on_a_transparent_canvas_is_read_by_where_it_is_opaque(tmp_path, shade):
    on_paper = drawn(2)
    alpha = 255 - np.asarray(on_paper.convert("L"))
    drawing = Image.fromarray(np.dstack([np.full((*alpha.shape, 3), shade, np.uint8), alpha]))
    path = tmp_path / "drawing.png"
    drawing.save(path)
    same_input(preprocess.load_image(path)[0], on_paper)


def test_a_picture_with_transparency_that_is_not_a_drawing_is_flattened_onto_white():
    photo = np.zeros((200, 200, 4), np.uint8)
    photo[..., :3] = np.random.default_rng(0).integers(150, 255, (200, 200, 3))  # many colours: a photo
    photo[..., 3] = 255
    photo[:30, :30, 3] = 0  # a transparent corner
    photo[60:140, 95:105, :3] = 0  # a dark stroke
    image = Image.fromarray(photo)
    flattened = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("L")
    assert preprocess.greyscale(image).tobytes() == flattened.tobytes()


# Frames, size and bad files


def test_an_animated_gif_is_read_by_its_first_frame_and_the_line_says_so(tmp_path, model, capsys):
    frames = [drawn(3).convert("P"), Image.new("P", (420, 420), 255), drawn(8).convert("P")]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    assert predict.main([str(tmp_path / "moving.gif")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'moving.gif'}: 3 (") and line.endswith("(read its first of 3 frames)"), line


def test_a_large_jpeg_is_decoded_at_reduced_size_and_pillows_limit_counts_what_is_decoded(tmp_path, monkeypatch):
    drawn(5).resize((4000, 3000)).save(tmp_path / "big.jpg", quality=90)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000_000)  # Pillow refuses past 4 million: the file has 12
    picture, _ = preprocess.load_image(tmp_path / "big.jpg")
    assert picture.size == (2000, 1500), "decoded at half its side, the most that still gives WORKING_SIDE"
    assert preprocess.greyscale(picture).size == (preprocess.WORKING_SIDE, preprocess.WORKING_SIDE * 3 // 4)


def test_bad_files_get_one_line_each_and_the_rest_are_still_read(tmp_path, model, capsys):
    good = tmp_path / "a-good.png"
    drawn(6).save(good)
    drawn(6).save(tmp_path / "truncated.jpg")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "truncated.jpg").read_bytes()[:2000])
    Image.new("L", (1, 1)).save(tmp_path / "one-pixel.png")
    Image.new("L", (100_000, 1)).save(tmp_path / "sliver.png")
    drawn(6).save(tmp_path / "bogus-exif.png", exif=b"Exif\x00\x00not a TIFF header")
    names = ["a-good.png", "truncated.jpg", "one-pixel.png", "sliver.png", "bogus-exif.png"]
    assert predict.main([str(tmp_path / name) for name in names]) == 2
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors), errors
    assert "truncated.jpg: not a readable image" in errors[0]
    assert "1x1 pixels cannot hold a digit" in errors[1] and "100000x1 pixels cannot hold a digit" in errors[2]
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith(f"{good}: 6 (") and lines[1].startswith(f"{tmp_path / 'bogus-exif.png'}: 6 (")
    assert lines[1].endswith("(its EXIF block is unreadable, so it is read as stored)")


# Printed lines on the paper


def ruled(image: Image.Image, spacing: int = 30, colour=(140, 170, 235), squared: bool = False) -> Image.Image:
    """`image` (black ink on white) on ruled (or squared) paper: the lines drawn under the ink."""
    page = Image.new("RGB", image.size, "white")
    pen = ImageDraw.Draw(page)
    for y in range(spacing // 2, image.height, spacing):
        pen.line([(0, y), (image.width, y)], fill=colour, width=2)
    for x in range(spacing // 2, image.width, spacing) if squared else ():
        pen.line([(x, 0), (x, image.height)], fill=colour, width=2)
    return Image.fromarray(np.minimum(np.asarray(page), np.asarray(image.convert("RGB"))))


def boxed(image: Image.Image, width: int = 4) -> Image.Image:
    """`image` with a dark printed frame around the middle, as a form's field."""
    framed = image.convert("RGB")
    ImageDraw.Draw(framed).rectangle([40, 40, 380, 380], outline=(20, 20, 60), width=width)
    return framed


@pytest.mark.parametrize("paper", ["ruled", "squared", "box"])
def test_printed_lines_are_taken_out_and_the_digit_stays_as_it_was(paper):
    digit = drawn(5, width=16)
    on_paper = {"ruled": ruled(digit), "squared": ruled(digit, squared=True), "box": boxed(digit)}[paper]
    difference = (preprocess.to_mnist(on_paper) - preprocess.to_mnist(digit)).abs() * STD
    assert difference.mean() < 0.02 and difference.max() < 0.5
    blank = {"ruled": ruled, "squared": lambda page: ruled(page, squared=True), "box": boxed}[paper]
    with pytest.raises(ValueError, match="no digit found"):
        preprocess.to_mnist(blank(Image.new("RGB", (420, 420), "white")))


def test_a_sevens_bar_and_a_long_one_survive_line_removal():
    seven = Image.new("L", (420, 420), 255)
    ImageDraw.Draw(seven).line([(60, 60), (360, 60), (180, 380)], fill=0, width=14)  # the bar: 71% of the width
    one = Image.new("L", (420, 420), 255)
    ImageDraw.Draw(one).line([(210, 21), (210, 399)], fill=0, width=10)  # 90% of the canvas high
    for plain in (seven, one):  # nothing taken for a line: the ink is where it was, on ruled paper too
        assert preprocess.crop(preprocess.ink_of(ruled(plain))).shape == preprocess.crop(preprocess.ink_of(plain)).shape
    bar = preprocess.ink_of(ruled(seven))[57:64, 70:350]
    assert bar.min() > 0.5, "the bar of the 7 is still all there"
    stem = preprocess.ink_of(ruled(one))[30:390, 207:213]
    assert stem.min() > 0.5, "the long 1 is still all there, where ruled lines cross it too"


def test_a_one_stroke_one_fills_the_picture_is_not_taken_for_a_line(model):
    one = Image.new("L", (60, 420), 255)
    ImageDraw.Draw(one).line([(30, 0), (30, 420)], fill=0, width=8)  # cropped tight: it spans the picture
    assert read(model, one) == 1


# Numbers


def number(digits: list[int], gap: int = 60) -> Image.Image:
    parts = [drawn(d, seed=i).crop((40, 40, 380, 380)).resize((170, 170)) for i, d in enumerate(digits)]
    page = Image.new("RGB", (sum(p.width for p in parts) + gap * (len(parts) + 1), 250), "white")
    for i, part in enumerate(parts):
        page.paste(part, (gap + i * (170 + gap), 40))
    return page


def broken_five() -> Image.Image:
    """A 5 whose top bar was lifted off the paper: two pieces of ink, one above the other."""
    five = Image.new("L", (300, 300), 255)
    pen = ImageDraw.Draw(five)
    pen.line([(110, 50), (230, 50)], fill=0, width=12)
    pen.line([(100, 80), (95, 140)], fill=0, width=12)
    pen.arc([80, 120, 230, 260], start=-120, end=150, fill=0, width=12)
    return five


def test_a_number_is_split_into_its_digits_left_to_right_and_a_broken_five_stays_one(model, tmp_path, capsys):
    parts = preprocess.split_digits(preprocess.ink_of(number([2, 0, 7])))
    assert len(parts) == 3
    assert [part.nonzero()[:, 1].float().mean() for part in parts] == sorted(
        part.nonzero()[:, 1].float().mean() for part in parts
    )
    assert len(preprocess.split_digits(preprocess.ink_of(broken_five()))) == 1
    number([2, 0, 7]).save(tmp_path / "number.png")
    assert predict.main([str(tmp_path / "number.png"), "--number"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'number.png'}: 207 = 2 (") and line.count("%") == 3, line


def test_without_number_a_number_gets_a_note_and_a_single_digit_none(tmp_path, capsys):
    number([4, 1]).save(tmp_path / "two.png")
    broken_five().save(tmp_path / "five.png")
    drawn(4).save(tmp_path / "four.png")
    assert predict.main([str(tmp_path / "two.png"), str(tmp_path / "five.png"), str(tmp_path / "four.png")]) == 0
    two, five, four = capsys.readouterr().out.strip().splitlines()
    assert two.endswith("several digits side by side? read them with --number"), two
    assert "--number" not in five and "--number" not in four
