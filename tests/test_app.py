"""The Gradio demo: its handlers, its API through gradio_client against a real server, and a real
Chromium drawing a digit with the mouse."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from PIL import Image
from support import chromium

import app
from compact_mnist.checkpoint import load_model
from compact_mnist.cli import UserError
from compact_mnist.drawings import CANVAS, TEMPLATES, draw, place, typed
from compact_mnist.files import stamp
from compact_mnist.webpage import Demo
from conftest import cli

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


@pytest.fixture(scope="module")
def reader() -> app.Reader:
    return app.Reader(*load_model(MODEL_PATH))


def drawing(digit: int, seed: int = 0) -> Image.Image:
    """A digit as the sketchpad hands it over: black strokes composited on an opaque white RGBA canvas."""
    return draw(place(TEMPLATES[digit][0], random.Random(seed)), width=30).convert("RGBA")


# Handlers


@pytest.mark.parametrize("digit", range(10))
def test_a_drawn_digit_is_read_with_three_guesses_and_the_input_shown(reader, digit):
    label, shown, message = reader.read_canvas({"composite": drawing(digit), "background": None, "layers": []})
    assert max(label, key=label.get) == str(digit)
    assert abs(sum(label.values()) - 1) < 1e-4 and message == ""
    assert shown.shape == (app.SHOWN_SIZE, app.SHOWN_SIZE)


def test_the_number_box_reads_each_digit_and_a_number_without_it_gets_a_hint(reader):
    canvas = Image.new("RGBA", (420, 420), "white")
    for slot, digit in enumerate((4, 7)):  # two digits side by side, each in half the canvas
        canvas.paste(drawing(digit).resize((180, 180)), (20 + 200 * slot, 120))
    label, shown, message = reader.read_canvas({"composite": canvas}, True)
    assert list(label) == ["47"] and message.startswith("Each digit: 4 (") and ", 7 (" in message
    assert shown.shape == (app.SHOWN_SIZE, 2 * app.SHOWN_SIZE), "both inputs, side by side"
    label, _, message = reader.read_canvas({"composite": canvas}, False)
    assert len(label) == 10 and message == app.NUMBER_HINT


@pytest.mark.parametrize(
    "value", [None, {"composite": None}, {"composite": Image.new("RGBA", (CANVAS, CANVAS), "white")}]
)
def test_a_blank_canvas_asks_for_a_digit(reader, value):
    assert reader.read_canvas(value) == (None, None, app.BLANK)


def test_an_uploaded_typed_digit_is_read(reader, tmp_path):
    path = tmp_path / "five.jpg"
    typed(5, "DejaVuSerif.ttf", 200).save(path)
    label, shown, message = reader.read_upload(str(path))
    assert max(label, key=label.get) == "5" and message == ""


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "could not be used: not a readable image"), ("huge", "too large to decode safely"),
        ("blank", "the image is blank"), ("sliver", "cannot hold a digit"),
    ],
)  # fmt: skip
def test_bad_uploads_get_a_message_not_an_exception(reader, tmp_path, kind, message, monkeypatch):
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path.write_text("not an image")
    else:
        if kind == "huge":
            monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's decompression-bomb limit, made small
        size = {"huge": (300, 300), "blank": (40, 20), "sliver": (5000, 1)}[kind]
        Image.new("L", size, "white").save(path)
    label, shown, text = reader.read_upload(str(path))
    assert label is None and shown is None and message in text


@pytest.mark.parametrize("checkpoint", ["missing.pth", "README.md"])
def test_a_missing_or_damaged_checkpoint_stops_at_start_with_one_line(checkpoint, capsys):
    code, stderr = cli(app.main, ["--checkpoint", str(ROOT / checkpoint)], capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ")


# A real server


@pytest.fixture(scope="module")
def server():
    """`python app.py` on a free port, stopped when the module's tests are done."""
    try:
        with Demo(timeout=90) as demo:
            yield demo.url
    except UserError as error:
        pytest.fail(str(error))


@pytest.mark.slow
def test_gradio_client_reads_a_digit_and_the_server_survives_junk(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    digit = tmp_path / "three.png"
    drawing(3).save(digit)
    result = client.predict(handle_file(str(digit)), api_name="/predict")
    assert result["label"] == "3"
    assert len(result["confidences"]) >= 3

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG but not really")
    with pytest.raises(Exception, match="not a readable image"):
        client.predict(handle_file(str(junk)), api_name="/predict")
    assert client.predict(handle_file(str(digit)), api_name="/predict")["label"] == "3", "still serving"


@pytest.mark.slow
@pytest.mark.browser
def test_a_digit_drawn_with_the_mouse_in_chromium_is_read(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.goto(server, wait_until="domcontentloaded")
            canvas = page.locator("#sketchpad canvas").first
            canvas.wait_for()
            page.wait_for_timeout(1000)  # let the page choose the brush
            box = canvas.bounding_box()
            side = min(box["width"], box["height"])
            left, top = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
            for stroke in TEMPLATES[3][0]:  # a 3, stroke by stroke, as a hand would
                # Every third point: each mouse event repaints the canvas, slowly in a headless browser.
                points = [
                    (left + side * (0.2 + 0.6 * x), top + side * (0.1 + 0.8 * y)) for x, y in stroke[::3] + stroke[-1:]
                ]
                page.mouse.move(*points[0])
                page.mouse.down()
                for point in points[1:]:
                    page.mouse.move(*point)
                page.mouse.up()
            prediction = page.locator("#prediction")
            prediction.get_by_text("%").first.wait_for(timeout=15_000)
            guesses = prediction.inner_text().split()
            shot = Path(os.environ.get("DEMO_SCREENSHOT") or tmp_path / "demo.png")
            page.screenshot(path=str(shot))
            stamp(shot, [MODEL_PATH], "DEMO_SCREENSHOT=reports/demo.png pytest tests/test_app.py -k chromium")
        finally:
            browser.close()
    assert guesses[guesses.index("reads") + 1] == "3", guesses
