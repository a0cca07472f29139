"""The page that reads digits in the browser (web/): its preprocessing is predict.py's, step for step, and a real
Chromium draws on it, chooses files for it and reads through it, every request staying on the page's origin.

The browser tests need Node with `npm ci --prefix web` (the page's build) and Chromium. Where either is missing
they are skipped with the reason, except where $COMPACT_MNIST_TEST_ALL is set (.ci/run, the workflow), where that
is a failure unless WEB_TESTS=skip says that another job runs them (the GitHub workflow's web job).
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from support import chromium

from compact_mnist import data, preprocess, webpage
from compact_mnist.drawings import FONTS, browser_pictures, typed, validation_sample, write
from conftest import missing

MODEL_INT8 = webpage.WEB.parent / "models" / "mnist_model.int8.onnx"
POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'; form-action 'none'"
)
DRAW_PROMPT = "Draw a digit: it is read as soon as you lift the pen."


def test_the_page_states_the_preprocessings_constants_as_python_does():
    source = (webpage.WEB / "preprocess.js").read_text()
    constants = {name: json.loads(value) for name, value in re.findall(r"^export const (\w+) = (.+?);", source, re.M)}
    assert constants == {
        "MEAN": data.MEAN, "STD": data.STD, "WORKING_SIDE": preprocess.WORKING_SIDE,
        "MIN_SIDE": preprocess.MIN_SIDE, "MAX_ASPECT": preprocess.MAX_ASPECT,
        "STROKE_WIDTHS": list(preprocess.STROKE_WIDTHS), "RULED_COVER": preprocess.RULED_COVER,
        "RULED_THICKNESS": preprocess.RULED_THICKNESS, "INK_FLOOR": preprocess.INK_FLOOR,
    }  # fmt: skip


def test_the_page_allows_only_its_own_origin_and_webassembly():
    policy = re.search(
        r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', (webpage.WEB / "index.html").read_text()
    )
    assert policy and policy.group(1) == POLICY


# In Chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> str:
    """The page built into a temporary folder and served from it: its URL."""
    if os.environ.get("WEB_TESTS") == "skip":
        pytest.skip("WEB_TESTS=skip: this job leaves the page's tests to another")
    if reason := webpage.missing():
        missing(reason)
    with webpage.served(tmp_path_factory.mktemp("site")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site):
    page = webpage.open_page(browser, site)
    yield page
    page.close()


def choose(page, path) -> str:
    """A file chosen with the page's file button: the status line once it has been read."""
    shown = page.evaluate("window.digitPage.shown")
    page.set_input_files("#file", str(path))
    page.evaluate(webpage.WAIT_FOR_SHOWN, shown)
    return page.inner_text("#status")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("digit", [3, 7])
def test_a_digit_drawn_with_the_mouse_is_read_with_three_guesses(page, digit):
    webpage.draw(page, digit)
    assert page.inner_text("#status") == f"Reads {digit}"
    guesses = page.locator("#prediction li").all_inner_texts()
    assert len(guesses) == 3 and guesses[0].split()[0] == str(digit) and all("%" in guess for guess in guesses)


@pytest.mark.slow
@pytest.mark.browser
def test_a_chosen_file_is_read_and_the_input_the_model_received_is_shown(page, tmp_path):
    typed(4, FONTS[0], 260).save(tmp_path / "four.png")
    assert choose(page, tmp_path / "four.png") == "Reads 4"
    shown = page.evaluate(
        "Array.from(document.getElementById('input').getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    assert max(shown) == 255 and sum(shown[::4]) < 0.4 * 255 * 784, "a white digit on black"


@pytest.mark.slow
@pytest.mark.browser
def test_a_cleared_canvas_and_a_blank_picture_say_there_is_no_digit(page, tmp_path):
    webpage.draw(page, 1)
    page.click("#clear")
    assert page.inner_text("#status") == DRAW_PROMPT and page.locator("#prediction li").count() == 0
    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")
    assert choose(page, tmp_path / "blank.png") == "No digit found (the image is blank)."


@pytest.mark.slow
@pytest.mark.browser
def test_a_file_that_is_no_picture_of_a_digit_gets_a_message_and_the_page_keeps_working(page, tmp_path):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG but not really")
    assert choose(page, tmp_path / "junk.png") == "That file could not be used: not a readable image."
    Image.new("L", (1, 1)).save(tmp_path / "dot.png")
    assert choose(page, tmp_path / "dot.png").startswith("That file could not be used: 1x1 pixels cannot hold a digit")
    webpage.draw(page, 3)
    assert page.inner_text("#status") == "Reads 3"


@pytest.mark.slow
@pytest.mark.browser
def test_every_request_stays_on_the_pages_origin(browser, site, tmp_path):
    requests, problems = [], []
    page = browser.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP ' + e.blockedURI))"
    )
    page.goto(site)
    assert page.evaluate("window.digitPage.ready")
    webpage.draw(page, 3)
    typed(5, FONTS[3], 260).save(tmp_path / "five.png")
    assert choose(page, tmp_path / "five.png") == "Reads 5"
    page.close()
    origin = urlsplit(site).netloc
    assert {urlsplit(url).netloc for url in requests} == {origin}, requests
    assert {url.rsplit("/", 1)[1] for url in requests} >= {"ort-wasm-simd-threaded.wasm", "mnist_model.int8.onnx"}
    assert problems == []


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_reads_pictures_as_python_does(page, data_dir, tmp_path, capsys):
    images, labels = validation_sample(data_dir, 14)
    files = []
    for kind, samples in browser_pictures(images, labels, drawn=80, typed_every=10).items():
        files += [(kind, path) for _, path, _ in write(samples, tmp_path / kind.replace(",", "").replace(" ", "-"))]
    paths = [path for _, path in files]
    python, browser = webpage.python_readings(paths, MODEL_INT8), webpage.read_files(page, paths)
    refused = [
        (path.name, p.get("error"), b.get("error"))
        for path, p, b in zip(paths, python, browser, strict=True)
        if "error" in p or "error" in b
    ]
    assert all(python_error and page_error for _, python_error, page_error in refused), "refused by both or neither"
    read = [(p, b) for p, b in zip(python, browser, strict=True) if "error" not in p and "error" not in b]
    same = np.mean([p["digit"] == b["digit"] for p, b in read])
    difference = np.mean([np.abs(np.subtract(p["input"], b["input"])).mean() for p, b in read]) * data.STD
    with capsys.disabled():
        print(
            f"\n  page vs predict.py on {len(read)} pictures: same digit {same:.1%}, mean |difference| {difference:.2e}"
        )
    assert len(read) >= 0.98 * len(files)
    assert same >= 0.99
    assert difference < 0.01, "in pixel values from 0 to 1"


@pytest.mark.slow
@pytest.mark.browser
def test_the_pages_inference_reads_test_digits_as_onnxruntime_does(page, data_dir):
    images, _ = data.read_split(data_dir, train=False)
    images = images[:500]
    python = webpage.like_the_page(MODEL_INT8).run(None, {"images": data.normalize(images).numpy()})[0].argmax(1)
    browser = webpage.classify_mnist(page, images.numpy())
    assert (python == browser).mean() >= 0.999
