"""Draw a digit and watch the model read it: a Gradio demo of the trained model.

    python app.py                                   # http://127.0.0.1:7860
    python app.py --port 8000 --checkpoint runs/tiny/mnist_model.pth

A sketchpad ready to draw on, and an upload tab for photos and scans (a phone camera's files too, up to
50 MB). The page shows the three likeliest digits, the 28x28 image the model actually received (predict.py's
loader and preprocessing, the same functions) and what the checkpoint says about the model; a box switches to
reading a number of several digits. `gradio_client` scripts can call the `predict` endpoint with an image file.
Requests are served several at a time (--concurrency), so the model, not a queue, sets how long one takes.
Nothing is shared publicly unless --share is given.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from compact_mnist.checkpoint import COMMITTED_MODEL, load_model
from compact_mnist.cli import ArgumentParser, UserError, number, run_cli
from compact_mnist.data import MEAN, STD
from compact_mnist.preprocess import ink_of, load_image, mnist_digit, number_inputs, several_digits
from model import predict

BLANK = "Draw a digit on the canvas: it is read as soon as you lift the mouse."
SHOWN_SIZE = 168  # the 28x28 input, enlarged 6x with visible pixels
NUMBER_HINT = "Several digits side by side? Tick *read a number*."
# Requests of each kind served at once: chosen with benchmarks/bench_demo.py (see benchmarks/demo.md).
CONCURRENCY = 4
# Gradio 6 opens the sketchpad with no tool chosen; click the brush once the page is there.
CHOOSE_BRUSH = """
() => {
  const click = () => {
    const brush = document.querySelector('#sketchpad button[aria-label="Brush"]');
    if (brush) brush.click(); else setTimeout(click, 200);
  };
  click();
}
"""


class Reader:
    """The model and the step from a picture to the three likeliest digits."""

    def __init__(self, model: torch.nn.Module, meta: dict) -> None:
        self.model, self.meta = model, meta

    def read(self, image: Image.Image, number: bool = False) -> tuple[dict[str, float], np.ndarray, str]:
        """Probabilities of every digit (with `number`: of the whole number, as each digit's product), the 28x28
        inputs as the model saw them (enlarged, side by side), and a note for the page ('' when none).

        Raises ValueError for a picture with no digit.
        """
        ink = ink_of(image)
        inputs = number_inputs(ink) if number else mnist_digit(ink)[None]
        probabilities = predict(self.model, inputs).exp()
        pixels = ((torch.cat(list(inputs[:, 0]), dim=1) * STD + MEAN).clamp(0, 1) * 255).byte().numpy()
        shown = np.asarray(
            Image.fromarray(pixels).resize((SHOWN_SIZE * len(inputs), SHOWN_SIZE), Image.Resampling.NEAREST)
        )
        if number:
            confidence, digits = probabilities.max(1)
            each = ", ".join(f"{d} ({p:.1%})" for d, p in zip(digits.tolist(), confidence.tolist(), strict=True))
            return {"".join(map(str, digits.tolist())): confidence.prod().item()}, shown, f"Each digit: {each}."
        label = {str(digit): float(p) for digit, p in enumerate(probabilities[0])}
        return label, shown, NUMBER_HINT if several_digits(ink) else ""

    def read_canvas(self, drawing: dict | None, number: bool = False) -> tuple[dict | None, np.ndarray | None, str]:
        """The sketchpad's handler: its composite image in, (label, input seen, message) out."""
        composite = (drawing or {}).get("composite")
        if composite is None:
            return None, None, BLANK
        try:
            return self.read(composite, number)
        except ValueError:
            return None, None, BLANK

    def read_upload(self, path: str | None, number: bool = False) -> tuple[dict | None, np.ndarray | None, str]:
        """The upload tab's handler: an image file in, (label, input seen, message) out."""
        if not path:
            return None, None, "Upload a photo or scan of one digit."
        try:
            picture, note = load_image(Path(path))
            label, shown, message = self.read(picture, number)
        except UserError as error:
            return None, None, f"That file could not be used: {str(error).split(': ', 1)[-1]}."
        except ValueError as error:
            return None, None, f"Nothing to read in that image: {error}."
        return label, shown, " ".join(part for part in (message, note and f"({note}.)") if part)

    def reread(
        self, drawing: dict | None, path: str | None, number: bool
    ) -> tuple[dict | None, np.ndarray | None, str]:
        """The number box's handler: the upload read again if there is one, else the drawing."""
        return self.read_upload(path, number) if path else self.read_canvas(drawing, number)

    def predict_file(self, path: str) -> dict[str, float]:
        """The `predict` API endpoint: an image file in, each digit's probability out."""
        import gradio as gr

        label, _, message = self.read_upload(path)
        if label is None:
            raise gr.Error(message, print_exception=False)  # bad input, not a server fault
        return label

    def about(self) -> str:
        meta = self.meta
        accuracy = f"{meta['test_accuracy']:.2f}%" if meta.get("test_accuracy") is not None else "not recorded"
        plain = meta.get("plain_test_accuracy")
        reading = f" read with test-time views ({plain:.2f}% without them)" if plain is not None else ""
        return (
            f"**Model** `{meta.get('model')}` (`{meta.get('spec')}`): {meta.get('params', 0):,} parameters, "
            f"test accuracy {accuracy}{reading} on MNIST's 10,000 test digits, trained {meta.get('epochs')} epochs."
        )


def build_demo(reader: Reader):
    """The page: a sketchpad and an upload tab on the left, what the model read on the right."""
    import gradio as gr

    with gr.Blocks(title="Compact MNIST CNN", analytics_enabled=False) as demo:
        gr.Markdown("# Draw a digit\n" + reader.about())
        with gr.Row():
            with gr.Column():
                with gr.Tab("Draw"):
                    sketchpad = gr.Sketchpad(
                        elem_id="sketchpad",
                        type="pil",
                        canvas_size=(420, 420),
                        fixed_canvas=True,
                        brush=gr.Brush(default_size=30, colors=["#000000"], color_mode="fixed"),
                        layers=False,
                        transforms=(),
                        label="canvas",
                    )
                with gr.Tab("Upload"):
                    # A file, not gr.Image: Gradio would decode an image itself and fail on junk without a word.
                    upload = gr.File(file_types=["image"], type="filepath", label="photo or scan of one digit")
                as_number = gr.Checkbox(label="read a number (digits side by side, not touching)", elem_id="number")
            with gr.Column():
                label = gr.Label(num_top_classes=3, label="the model reads", elem_id="prediction")
                status = gr.Markdown(BLANK, elem_id="status")
                seen = gr.Image(label="what the model received (28x28)", interactive=False, height=SHOWN_SIZE + 40)
        outputs = [label, seen, status]
        # "always_last": a drawing's next reading starts only once the last one is back, so the page always ends
        # on the result of the latest strokes, never on an older one that finished later.
        sketchpad.change(
            reader.read_canvas,
            [sketchpad, as_number],
            outputs,
            show_progress="hidden",
            trigger_mode="always_last",
            api_visibility="private",
        )
        upload.change(reader.read_upload, [upload, as_number], outputs, api_visibility="private")
        as_number.change(reader.reread, [sketchpad, upload, as_number], outputs, api_visibility="private")
        # The API: one image file in, the label with its confidences out; bad input raises the message.
        upload.upload(reader.predict_file, upload, label, api_name="predict")
        demo.load(None, js=CHOOSE_BRUSH)
    return demo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=number(int, at_least=1, at_most=65535), default=7860, help="port to serve on")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=COMMITTED_MODEL,
        help="trained model (default: the project's committed models/mnist_model.pth)",
    )
    parser.add_argument(
        "--concurrency",
        type=number(int, at_least=1),
        default=CONCURRENCY,
        help="requests of each kind served at once (default: %(default)s; 1 is Gradio's own default)",
    )
    parser.add_argument("--share", action="store_true", help="also open a temporary public link through Gradio")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, meta = load_model(args.checkpoint)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    torch.set_num_threads(1)  # requests run side by side, each on one thread: no contention over the cores
    demo = build_demo(Reader(model, meta)).queue(default_concurrency_limit=args.concurrency)
    try:
        # The system's fonts: Gradio's default theme fetches Google Fonts, which hangs a page that is offline.
        theme = gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        )
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size="50mb", theme=theme)
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise UserError(f"cannot serve on {args.host}:{args.port} ({error}); choose another --port or --host") from None
    return 0


if __name__ == "__main__":
    run_cli(main)
