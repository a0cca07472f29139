"""The layers' test helpers: a headless Chromium for the browser tests, the rule for a program this machine lacks
(the kit's rule, conftest.missing), and one ONNX export per set of weights."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import pytest
import torch

from conftest import missing


def chromium(playwright):
    """A headless Chromium for the browser tests (compact_mnist.webpage.launch_chromium); where there is none the
    test is skipped, or fails where every test must run."""
    from compact_mnist.webpage import NoBrowser, launch_chromium

    try:
        return launch_chromium(playwright)
    except NoBrowser as error:
        missing(str(error))


EXPORTED: dict[str, bytes] = {}  # ONNX bytes by the sha256 of the weights they were exported from


@contextlib.contextmanager
def exporting_once() -> Iterator[None]:
    """export.py's ONNX export (two seconds a model, in torch's compiler) done once per set of weights: the tests that
    export the committed model again get the same bytes, and the rest of export.py runs as it does."""
    import export

    real = export.export_onnx

    def export_onnx(model: torch.nn.Module) -> bytes:
        weights = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
        if weights not in EXPORTED:
            EXPORTED[weights] = real(model)
        return EXPORTED[weights]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export, "export_onnx", export_onnx)
        yield
