"""The browser page (web/) in headless Chromium on this machine: what a first visit costs, how fast it reads, and
how closely it reads as predict.py does.

    npm ci --prefix web && python benchmarks/bench_web.py     # about 15 minutes; writes benchmarks/web.json and .md

- First visit, --visits times, each in a fresh browser profile (nothing cached): the bytes transferred, file by
  file, and the time from navigation to the model being ready and to the first prediction (a digit drawn on the
  canvas the moment the model is ready, read as the page reads a stroke).
- Every picture of the kinds both sides decode alike (compact_mnist.drawings.browser_pictures: drawn, typed,
  hairline shapes and the reading-rate rows made from --mnist validation digits, as 8-bit PNG files), read by
  the page from the file's bytes and by predict.py's loader and preprocessing: the same digit (both through the
  int8 model as onnxruntime-web computes it), the mean absolute difference of the 28x28 inputs, the reading
  rate of each side (the page's int8 model beside predict.py's float model), and the page's time per
  prediction, median and 95th percentile, decoding, preprocessing and inference apart.
- All 10,000 test digits as 28x28 images through the page's inference path alone, beside the int8 file in
  Python's onnxruntime at its default optimizations and at the basic level the WebAssembly build matches.
- With --screenshot, the page reading a digit drawn with the mouse.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from compact_mnist import data, webpage
from compact_mnist.checkpoint import COMMITTED_MODEL, load_model
from compact_mnist.cli import ArgumentParser, UserError, positive_int, run_cli
from compact_mnist.drawings import TEMPLATES, browser_pictures, validation_sample, write
from compact_mnist.files import stamp, write_report
from model import predict
from train import machine_name

ROOT = Path(__file__).resolve().parent.parent

MODEL_INT8 = ROOT / "models" / "mnist_model.int8.onnx"
# A digit drawn on the canvas with the page's own pen, the moment its model is ready: the first prediction.
FIRST_PREDICTION = """async (strokes) => {
  while (!window.digitPage) await new Promise((resolve) => setTimeout(resolve, 1));
  await window.digitPage.ready;
  const ready = performance.now();
  const canvas = document.getElementById("canvas");
  const pen = canvas.getContext("2d");
  for (const stroke of strokes) {
    pen.beginPath();
    pen.moveTo(...stroke[0]);
    for (const point of stroke.slice(1)) pen.lineTo(...point);
    pen.stroke();
  }
  const result = await window.digitPage.read(pen.getImageData(0, 0, canvas.width, canvas.height).data,
                                             canvas.width, canvas.height);
  return { ready, first: performance.now(), digit: result.top[0].digit };
}"""


def integer_dot_product() -> bool | None:
    """Whether this CPU has VNNI (8-bit integer dot products), which onnxruntime's fused int8 kernels use; without
    it they multiply in 16 bits, which can saturate (Linux's /proc/cpuinfo; None elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return None
    flags = cpuinfo.read_text().split()
    return "avx512_vnni" in flags or "avx_vnni" in flags


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, 100 * share))


def first_visit(browser, url: str, strokes: list) -> dict:
    """One visit in a new browser context (an empty cache): bytes per file, and the model-ready and
    first-prediction times after navigation."""
    context = browser.new_context()
    page = context.new_page()
    responses = []
    page.on("response", lambda response: responses.append(response))
    page.goto(url, wait_until="commit")
    timing = page.evaluate(FIRST_PREDICTION, strokes)
    files = {response.url.rsplit("/", 1)[1]: len(response.body()) for response in responses}
    context.close()
    return dict(timing, files=files, bytes=sum(files.values()))


def first_visits(browser, url: str, visits: int) -> dict:
    """Bytes and times of `visits` first visits: the median, and the worst first prediction."""
    strokes = [[(420 * (0.2 + 0.6 * x), 420 * (0.1 + 0.8 * y)) for x, y in stroke] for stroke in TEMPLATES[3][0]]
    runs = [first_visit(browser, url, strokes) for _ in range(visits)]
    return dict(
        files=runs[0]["files"],
        bytes=runs[0]["bytes"],
        model_ready_ms=statistics.median(run["ready"] for run in runs),
        first_prediction_ms=statistics.median(run["first"] for run in runs),
        first_prediction_worst_ms=max(run["first"] for run in runs),
        first_digit_read=[run["digit"] for run in runs],
        visits=visits,
    )


def parity(browser, url: str, data_dir: Path, mnist: int, drawn: int, folder: Path) -> dict:
    """Kind -> how the page and predict.py read the same files, and the page's times."""
    images, labels = validation_sample(data_dir, mnist)
    model, _ = load_model(COMMITTED_MODEL)
    page = webpage.open_page(browser, url)
    kinds = {}
    for kind, samples in browser_pictures(images, labels, drawn=drawn).items():
        files = write(samples, folder / kind.replace(",", "").replace(" ", "-"))
        paths = [path for _, path, _ in files]
        webpage.read_files(page, paths[:20])  # warm-up
        browser_side, python_side = webpage.read_files(page, paths), webpage.python_readings(paths, MODEL_INT8)
        both = [
            (b, p, label)
            for (label, _, _), b, p in zip(files, browser_side, python_side, strict=True)
            if "error" not in b and "error" not in p
        ]
        inputs = torch.tensor([p["input"] for _, p, _ in both]).reshape(-1, 1, 28, 28)
        float_digits = predict(model, inputs).argmax(1).tolist() if both else []
        kinds[kind] = kind_row(files, browser_side, python_side, both, float_digits)
        print(f"{kind}: {kinds[kind]}", flush=True)
    page.close()
    return kinds


def kind_row(files: list, browser_side: list, python_side: list, both: list, float_digits: list) -> dict:
    """One kind's comparison: refusals, agreement, input difference, reading rates and the page's times."""
    labelled = [(b, digit, label) for (b, _, label), digit in zip(both, float_digits, strict=True) if label]
    difference = np.mean([np.abs(np.subtract(b["input"], p["input"])).mean() for b, p, _ in both]) * data.STD
    row = dict(
        pictures=len(files),
        refused_by_page=sum("error" in b for b in browser_side),
        refused_by_python=sum("error" in p for p in python_side),
        same_digit=100 * float(np.mean([b["digit"] == p["digit"] for b, p, _ in both])),
        mean_abs_difference=float(difference),
        page_reads=100 * float(np.mean([str(b["digit"]) == label for b, _, label in labelled])) if labelled else None,
        predict_py_reads=100 * float(np.mean([str(d) == label for _, d, label in labelled])) if labelled else None,
    )
    for step in ("decode", "preprocess", "inference"):
        if values := [b[f"{step}Ms"] for b in browser_side if "error" not in b]:
            row[f"{step}_ms"] = dict(median=statistics.median(values), p95=percentile(values, 0.95))
    return row


def test_digits(browser, url: str, data_dir: Path) -> dict:
    """The 10,000 test digits through the page's inference alone, and through onnxruntime in Python."""
    import onnxruntime

    images, labels = data.read_split(data_dir, train=False)
    page = webpage.open_page(browser, url)
    page_digits = webpage.classify_mnist(page, images.numpy())
    page.close()
    inputs = {"images": data.normalize(images).numpy()}
    default = onnxruntime.InferenceSession(str(MODEL_INT8), providers=["CPUExecutionProvider"])
    python_default = default.run(None, inputs)[0].argmax(1)
    python_basic = webpage.like_the_page(MODEL_INT8).run(None, inputs)[0].argmax(1)
    truth = labels.numpy()
    return dict(
        images=len(truth),
        page_accuracy=100 * float((page_digits == truth).mean()),
        onnxruntime_default_accuracy=100 * float((python_default == truth).mean()),
        onnxruntime_basic_accuracy=100 * float((python_basic == truth).mean()),
        page_differs_from_default=int((page_digits != python_default).sum()),
        page_differs_from_basic=int((page_digits != python_basic).sum()),
    )


def screenshot(browser, url: str, path: Path) -> None:
    """The page reading a 3 drawn with the mouse, after a 7 drawn and cleared (so the times shown are warm)."""
    page = webpage.open_page(browser, url)
    webpage.draw(page, 7)
    page.click("#clear")
    webpage.draw(page, 3)
    page.screenshot(path=str(path))
    page.close()
    stamp(path, [MODEL_INT8], "python benchmarks/bench_web.py --screenshot reports/web.png")


def markdown(results: dict) -> str:
    visit = results["first_visit"]
    largest = sorted(visit["files"].items(), key=lambda item: -item[1])
    lines = [
        f"Headless Chromium {results['chromium']} on {results['machine']}, the page served by Python's http.server on "
        "the loopback interface (no compression, as `python -m http.server` serves it), onnxruntime-web "
        f"{results['onnxruntime_web']} on WebAssembly with one thread (`python benchmarks/bench_web.py`).",
        "",
        f"**First visit** (median of {visit['visits']}, an empty cache each time): {visit['bytes'] / 1e6:.2f} MB "
        f"transferred, of which {largest[0][0]} is {largest[0][1] / 1e6:.2f} MB; the model ready "
        f"{visit['model_ready_ms']:.0f} ms after navigation, the first prediction at "
        f"{visit['first_prediction_ms']:.0f} ms (worst {visit['first_prediction_worst_ms']:.0f} ms).",
        "",
        "| file | bytes |",
        "|---|---:|",
        *[f"| {name} | {size:,} |" for name, size in largest],
        "",
        "**The page beside predict.py** on the same files: the digit both read through the int8 model (onnxruntime at "
        "the basic level, which computes as the WebAssembly build does), the mean absolute difference of the 28x28 "
        "inputs in pixel values from 0 to 1, and each side's reading rate (the page's int8 model, predict.py's float "
        "model). Times are the page's, per picture.",
        "",
        "| pictures | files | same digit | mean abs difference | page reads | predict.py reads | refused (page / "
        "Python) | decode ms (median / p95) | preprocessing ms | inference ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, row in results["parity"].items():
        reads = [f"{row[key]:.1f}%" if row[key] is not None else "" for key in ("page_reads", "predict_py_reads")]
        times = [
            f"{row[f'{step}_ms']['median']:.1f} / {row[f'{step}_ms']['p95']:.1f}"
            for step in ("decode", "preprocess", "inference")
        ]
        refused = f"{row['refused_by_page']} / {row['refused_by_python']}"
        lines.append(
            f"| {kind} | {row['pictures']:,} | {row['same_digit']:.1f}% | {row['mean_abs_difference']:.1e} "
            f"| {' | '.join(reads)} | {refused} | {' | '.join(times)} |"
        )
    digits = results["test_digits"]
    lines += [
        "",
        f"**Test digits**: the {digits['images']:,} test images through the page's inference alone read "
        f"{digits['page_accuracy']:.2f}%; the int8 file in Python's onnxruntime reads "
        f"{digits['onnxruntime_basic_accuracy']:.2f}% "
        f"at the basic level ({digits['page_differs_from_basic']} digits differ from the page) and "
        f"{digits['onnxruntime_default_accuracy']:.2f}% at its default optimizations, which fuse the quantized "
        f"operators into integer kernels ({digits['page_differs_from_default']} differ; this CPU "
        f"{'has' if results['integer_dot_product'] else 'lacks'} VNNI, without which those kernels multiply in "
        "16 bits and can saturate).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    data.add_data_dir_argument(parser)
    parser.add_argument("--visits", type=positive_int, default=5, help="first visits timed")
    parser.add_argument("--drawn", type=positive_int, default=1000, help="drawn digits")
    parser.add_argument("--mnist", type=positive_int, default=1000, help="validation digits per row")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "web.json", help="results (and .md beside)")
    parser.add_argument("--screenshot", type=Path, help="save the page reading a drawn digit here (a PNG)")
    args = parser.parse_args(argv)
    if reason := webpage.missing():
        raise UserError(reason)
    data_dir = data.resolve_data_dir(args.data_dir)
    data.ensure_downloaded(data_dir)
    from playwright.sync_api import sync_playwright

    package = json.loads((webpage.WEB / "node_modules" / "onnxruntime-web" / "package.json").read_text())
    with tempfile.TemporaryDirectory() as folder, webpage.served(Path(folder) / "site") as url, sync_playwright() as pw:
        try:
            browser = webpage.launch_chromium(pw)
        except webpage.NoBrowser as error:
            raise UserError(str(error)) from None
        results = dict(
            machine=machine_name(torch.device("cpu")),
            platform=platform.platform(),
            chromium=browser.version,
            integer_dot_product=integer_dot_product(),
            onnxruntime_web=package["version"],
            first_visit=first_visits(browser, url, args.visits),
            parity=parity(browser, url, data_dir, args.mnist, args.drawn, Path(folder) / "pictures"),
            test_digits=test_digits(browser, url, data_dir),
        )
        if args.screenshot:
            screenshot(browser, url, args.screenshot)
        browser.close()
    write_report(results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    run_cli(main)
