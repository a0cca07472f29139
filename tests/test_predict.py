"""predict.py on the committed model: digits in every style, bad files one line each, and the preprocessing's
stroke widths."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import model as model_module
import predict
from compact_mnist import preprocess
from compact_mnist.data import MEAN, STD, normalize, read_split, split_indices
from compact_mnist.drawings import HARD_CASES, hard_case

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


def styled(digit: np.ndarray, style: str) -> Image.Image:
    """One 28x28 MNIST digit as a user might photograph or draw it."""
    image = Image.fromarray(digit)
    if style == "inverted":  # dark ink on white paper
        return Image.fromarray(255 - digit)
    if style == "larger":
        return image.resize((150, 150), Image.Resampling.BILINEAR)
    if style == "off-centre":
        canvas = Image.new("L", (100, 70))
        canvas.paste(image, (65, 3))
        return canvas
    if style == "rgb":  # blue ink on white, as a colour scan
        ink = 255 - digit
        return Image.merge("RGB", [Image.fromarray(ink), Image.fromarray(ink), Image.fromarray(255 - digit // 3)])
    raise ValueError(style)


def test_predict_reads_digits_in_every_style(tmp_path, data_dir, mnist, model, capsys):
    images, labels = read_split(data_dir, train=False)
    # Digits the model gets right with confidence in MNIST form, so the test measures the conversion.
    confident = model_module.predict(model, normalize(images[:40])).exp().max(1)
    chosen = [i for i in range(40) if confident.indices[i] == labels[i] and confident.values[i] > 0.8][:8]
    expected = {}
    for i in chosen:
        for style in ("inverted", "larger", "off-centre", "rgb"):
            path = tmp_path / f"{i}-{style}.{'jpg' if style == 'rgb' else 'png'}"
            styled(images[i].numpy(), style).save(path)
            expected[str(path)] = int(labels[i])
    assert predict.main([str(tmp_path), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(expected) == 32
    for line in lines:
        path, guesses = line.split(": ", 1)
        assert guesses.startswith(f"{expected[path]} ("), line
        assert guesses.count("%") == 3


def test_predict_reports_each_bad_file_and_still_predicts_the_rest(tmp_path, data_dir, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(read_split(data_dir, train=False)[0][0].numpy()).save(good)
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    missing = tmp_path / "missing.png"
    assert predict.main([str(good), str(tmp_path / "notes.png"), str(tmp_path / "blank.png"), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: 7 (")
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "not a readable image" in errors[0] and "no digit" in errors[1] and "no such file" in errors[2]


@pytest.mark.parametrize("kind", HARD_CASES)
def test_no_stroke_is_thinned_away_or_divided_by_zero(kind):
    digit = preprocess.to_mnist(hard_case(kind))
    assert digit.shape == (1, 28, 28) and torch.isfinite(digit).all()
    ink = digit * STD + MEAN
    assert ink.max() > 0.5, "the stroke survived"


def test_thin_and_soft_ones_are_read_as_ones_without_error_lines(tmp_path, model, capsys):
    for kind in HARD_CASES:
        hard_case(kind).save(tmp_path / f"{kind}.png")
    assert predict.main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    readings = dict(line.split(": ", 1) for line in captured.out.strip().splitlines())
    for kind in ("one-pixel 1", "soft 1", "diagonal hairline"):
        assert readings[str(tmp_path / f"{kind}.png")].startswith("1 ("), (kind, readings)


def test_stroke_width_counts_the_border_as_an_edge_and_soft_edges_by_their_ink():
    bar = torch.zeros(100, 40)
    bar[10:90, 15:25] = 1  # 10 pixels wide
    assert preprocess.stroke_width(bar) == pytest.approx(10, rel=0.15)
    assert preprocess.stroke_width(torch.ones(80, 10)) == pytest.approx(10, rel=0.15), "a bar that fills its crop"
    soft = torch.nn.functional.avg_pool2d(bar[None, None], 5, stride=1, padding=2)[0, 0]
    assert preprocess.stroke_width(soft / soft.max()) == pytest.approx(10, rel=0.15), "blurred, the same pen"


def test_stroke_width_band_is_mnists_own(data_dir):
    images, _ = read_split(data_dir, train=True)
    widths = []
    for image in images[split_indices(len(images))[1][:2000]]:
        ink = preprocess.crop(image.float() / 255)
        widths.append(preprocess.stroke_width(ink) * 20 / max(ink.shape))
    measured = torch.tensor(widths).quantile(torch.tensor([0.05, 0.5, 0.95]))
    torch.testing.assert_close(measured, torch.tensor(preprocess.STROKE_WIDTHS), atol=0.05, rtol=0)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_predict_refuses_what_pillow_counts_as_a_decompression_bomb_in_one_line(tmp_path, monkeypatch, capsys, suffix):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)  # refused past twice the limit
    Image.new("L", (101, 100), 255).save(tmp_path / f"huge.{suffix}")
    Image.new("L", (100, 100), 255).save(tmp_path / f"at-the-limit.{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's warning between the limit and twice it must not reach stderr
        assert predict.main([str(tmp_path / f"huge.{suffix}"), str(tmp_path / f"at-the-limit.{suffix}")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "huge" in errors[0] and "too large to decode safely" in errors[0], errors
    assert "at-the-limit" in errors[1] and "the image is blank" in errors[1], errors
