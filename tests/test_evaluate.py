"""The kit's tools: evaluate.py on the committed model, the training benchmark, and the README's generated tables."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import evaluate
import train
from compact_mnist.files import fingerprint, load_checkpoint
from conftest import require_current, run_script
from model import Net, count_parameters, layer_table

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist_model.pth"


@pytest.mark.slow
def test_evaluate_writes_every_report_and_agrees_with_the_test_suite(tmp_path, data_dir, mnist, model, capsys):
    assert evaluate.main(["--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    for name in ("evaluation.json", "confusion_matrix.txt", "confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = json.loads((tmp_path / "evaluation.json").read_text())
    _, accuracy = train.evaluate(model, mnist.test_images, mnist.test_labels)
    assert report["test_accuracy"] == accuracy
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    assert report["misclassified"] == round(10_000 * (100 - accuracy) / 100)
    out = capsys.readouterr().out
    assert f"test accuracy: {accuracy:.2f}%" in out
    plain = load_checkpoint(MODEL_PATH)["meta"]["plain_test_accuracy"]  # None for a model that reads plain
    assert report["views"] == model.views and (report["plain_test_accuracy"] is None) == (plain is None)
    if model.views:  # the network alone is measured beside its reading with test-time views
        assert report["plain_test_accuracy"] == pytest.approx(plain, abs=0.011)
        assert f"read with test-time views (the network alone: {report['plain_test_accuracy']:.2f}%)" in out


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_budget_and_writes_well_formed_results_for_the_model_asked(tmp_path):
    spec = "8d,M,16s"  # a small model, so that the benchmark's one whole epoch of train.py is quick
    result = run_script(
        "benchmarks/bench_train.py",
        "--images",
        "512",
        "--repeats",
        "1",
        "--model",
        spec,
        "--out",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["model"] == dict(preset=spec, spec=spec, params=count_parameters(Net(spec)))
    for path in ("ours", "classic", "ours_recipe", "ours_nchw", "ours_data_only", "classic_data_only"):
        assert results["paths"][path]["images_per_second"] > 0 and len(results["paths"][path]["repeats"]) == 1
    forward_flops = 2 * sum(row["macs"] for row in layer_table(Net(spec)))
    assert results["speedup_vs_classic"] > 0 and results["training_flops_per_image"] == 3 * forward_flops
    assert 0 < results["gflops_per_second"] < results["matmul_gflops_per_second"], "no rate above the machine's peak"
    peak = results["peak_memory_mb_one_epoch"]  # None where the OS cannot say (Windows)
    assert (peak is None and sys.platform == "win32") or 0 < peak < 24_000
    assert "| path | images / s |" in (tmp_path / "r.md").read_text()


def test_readme_tables_match_the_committed_results():
    described = re.search(r"<!-- models/mnist_model.pth sha256 (\w+) -->", (ROOT / "README.md").read_text("utf-8"))
    changed = [] if described and described.group(1) == fingerprint(MODEL_PATH) else ["models/mnist_model.pth"]
    require_current("README.md", changed, "python scripts/render_readme.py")
    from scripts import render_readme

    assert render_readme.main(["--check"]) == 0, "run python scripts/render_readme.py"
