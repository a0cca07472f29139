"""The browser page (web/) driven from Python: built into a folder, served on the loopback interface, and asked
to read pictures through its own path, from the file's bytes to the model's answer (test_web.py and
benchmarks/bench_web.py)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

WEB = Path(__file__).resolve().parent.parent / "web"
BATCH = 50  # pictures handed to the page per call


def missing() -> str | None:
    """Why the page cannot be built here (no Node, or web/'s packages not installed), or None."""
    if not shutil.which("node"):
        return "the page's build needs Node.js (https://nodejs.org)"
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        return "web/'s packages are not installed: run `npm ci --prefix web`"
    return None


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
    import predict

    session = like_the_page(onnx_path)
    readings = []
    for path in paths:
        try:
            image, _ = predict.load_image(path)
            digit = predict.to_mnist(image).numpy()
        except (ValueError, predict.UserError) as error:
            readings.append(dict(error=str(error)))
            continue
        log_probs = session.run(None, {"images": digit[None]})[0][0]
        readings.append(dict(digit=int(log_probs.argmax()), input=digit.ravel().tolist()))
    return readings
