"""The browser page (web/) driven from Python: built into a folder, served on the loopback interface, and asked
to read pictures through its own path, from the file's bytes to the model's answer (test_web.py and
benchmarks/bench_web.py); and the Gradio demo, app.py, run as a server for its tests and benchmark."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from compact_mnist.cli import UserError
from compact_mnist.drawings import TEMPLATES

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
BATCH = 50  # pictures handed to the page per call


def missing() -> str | None:
    """Why the page cannot be built here (no Node, or web/'s packages not installed), or None."""
    if not shutil.which("node"):
        return "the page's build needs Node.js (https://nodejs.org)"
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        return "web/'s packages are not installed: run `npm ci --prefix web`"
    return None


class NoBrowser(Exception):
    """No Chromium could be started; the message says how to get one."""


def launch_chromium(playwright):
    """A headless Chromium: $CHROMIUM, else the system's (Debian: apt-get install chromium), else the one
    `playwright install chromium` downloaded (GitHub's runners). Raises NoBrowser where there is none."""
    from playwright.sync_api import Error as PlaywrightError

    path = os.environ.get("CHROMIUM") or next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
    )
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    try:
        return playwright.chromium.launch(executable_path=path, args=flags)
    except PlaywrightError as error:
        raise NoBrowser(
            f"no usable Chromium ({str(error).splitlines()[0]}); apt-get install chromium or set CHROMIUM"
        ) from None


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (for the test servers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Demo:
    """`python app.py` (with `--concurrency N` if given) on a free loopback port, for the length of a `with` block;
    `url` is where it answers, `process` its process."""

    def __init__(self, concurrency: int | None = None, timeout: float = 120) -> None:
        self.port, self.timeout = free_port(), timeout
        self.url = f"http://127.0.0.1:{self.port}/"
        command = [sys.executable, "app.py", "--port", str(self.port)]
        command += ["--concurrency", str(concurrency)] if concurrency else []
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a pipe nobody reads would stall the server
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def __enter__(self) -> Demo:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    said = self.log.read().decode(errors="replace").strip().splitlines()
                    self.__exit__()
                    last = said[-1] if said else "no output"
                    raise UserError(f"app.py did not start on port {self.port}: {last}") from None
                time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """The page built into `folder` (npm run build's script) and served from it as a static host would: the URL of
    its index.html, on a free loopback port, for as long as the context lasts."""
    subprocess.run(["node", "build.mjs", str(folder)], cwd=WEB, check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def open_page(browser, url: str, requests: list[str] | None = None):
    """A new tab on the page, its model loaded; every URL it requests is appended to `requests`."""
    page = browser.new_page(viewport={"width": 1100, "height": 620})
    if requests is not None:
        page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    if not page.evaluate("window.digitPage.ready"):
        raise RuntimeError("the page could not load its model: " + page.inner_text("#status"))
    return page


WAIT_FOR_SHOWN = """async (count) => {
  while (window.digitPage.shown <= count) await new Promise((resolve) => setTimeout(resolve, 20));
}"""  # the page's policy forbids eval, which Playwright's wait_for_function polls with


def draw(page, digit: int) -> None:
    """The digit's first template drawn on the canvas with the mouse, stroke by stroke (each is read as it ends),
    until the reading of the last stroke is shown."""
    shown = page.evaluate("window.digitPage.shown")
    box = page.locator("#canvas").bounding_box()

    def on_canvas(x: float, y: float) -> tuple[float, float]:  # the template's unit square, a margin around it
        return box["x"] + box["width"] * (0.2 + 0.6 * x), box["y"] + box["height"] * (0.1 + 0.8 * y)

    for stroke in TEMPLATES[digit][0]:
        page.mouse.move(*on_canvas(*stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*on_canvas(*point))
        page.mouse.up()
    page.evaluate(WAIT_FOR_SHOWN, shown + len(TEMPLATES[digit][0]) - 1)


READ_FILES = """async (files) => {
  const out = [];
  for (const encoded of files) {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const result = await window.digitPage.readFile(new Blob([bytes]));
    out.push(result.error ? { error: result.error } : { digit: result.top[0].digit, input: Array.from(result.input),
      decodeMs: result.decodeMs, preprocessMs: result.preprocessMs, inferenceMs: result.inferenceMs });
  }
  return out;
}"""


def read_files(page, paths: list[Path]) -> list[dict]:
    """Each file read by the page as a chosen file is: {digit, input (784 floats), decodeMs, preprocessMs,
    inferenceMs}, or {error} with the page's message."""
    results = []
    for start in range(0, len(paths), BATCH):
        batch = [base64.b64encode(path.read_bytes()).decode() for path in paths[start : start + BATCH]]
        results += page.evaluate(READ_FILES, batch)
    return results


def classify_mnist(page, images: np.ndarray) -> np.ndarray:
    """28x28 uint8 MNIST images through the page's inference path alone: the digit it reads in each."""
    digits = []
    for start in range(0, len(images), 500):
        batch = [image.ravel().tolist() for image in images[start : start + 500]]
        digits += page.evaluate(
            """async (images) => { const out = [];
                for (const image of images) { const p = await window.digitPage.classifyMnist(image);
                  out.push(p.indexOf(Math.max(...p))); }
                return out; }""",
            batch,
        )
    return np.array(digits)


def like_the_page(onnx_path: Path):
    """An onnxruntime session that computes as onnxruntime-web's WebAssembly build does: its extended optimizations
    fuse each quantize/dequantize pair into an integer kernel on this CPU, which the WebAssembly build does not,
    so the basic level is the like-for-like one."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def python_readings(paths: list[Path], onnx_path: Path) -> list[dict]:
    """Each file as Python reads it: predict.py's loader and preprocessing, then the same int8 model in
    onnxruntime as the page runs it. {digit, input (784 floats)}, or {error}."""
    from compact_mnist import preprocess

    session = like_the_page(onnx_path)
    readings: list[dict[str, Any]] = []
    for path in paths:
        try:
            image, _ = preprocess.load_image(path)
            digit = preprocess.to_mnist(image).numpy()
        except (ValueError, UserError) as error:
            readings.append(dict(error=str(error)))
            continue
        log_probs = session.run(None, {"images": digit[None]})[0][0]
        readings.append(dict(digit=int(log_probs.argmax()), input=digit.ravel().tolist()))
    return readings
