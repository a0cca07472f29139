"""The kit and the layers on top of it: each one's modules, the packages it adds (its extra in pyproject.toml) and
what it is for. A layer may import the kit and the layers it names; the kit imports no layer. docs/architecture.md
is rendered from this table (scripts/render_readme.py), and tests/test_kit.py holds the code and pyproject.toml to
it."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layer:
    """What a part of the project is for, its modules (as imported), the pip packages that it alone needs, the
    other layers whose modules or packages it uses, and its test files (tests/), collected only where it is
    installed."""

    adds: str
    modules: tuple[str, ...]
    packages: tuple[str, ...]
    needs: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()


KIT = Layer(
    "the network, training, evaluation and the specification tests",
    ("model", "train", "evaluate")
    + tuple(f"compact_mnist.{name}" for name in ("cli", "data", "files", "recipe", "memory", "checkpoint", "goals"))
    + ("compact_mnist.plots", "compact_mnist.stamps", "compact_mnist.layers", "scripts.reference_runs")
    + ("scripts.render_readme", "benchmarks.bench_train", "benchmarks.bench_startup")
    + ("benchmarks.bench_install", "benchmarks.bench_suite"),
    ("torch", "torchvision", "numpy", "pillow", "tqdm", "torchsummary", "matplotlib"),
)
LAYERS = {
    "predict": Layer(
        "reading image files (predict.py) and measuring how well it reads pictures as devices save them",
        ("predict", "compact_mnist.preprocess", "compact_mnist.drawings", "scripts.reading_rate")
        + ("scripts.reading_examples",),
        ("scipy",),
        tests=("test_predict.py", "test_pictures.py"),
    ),
    "demo": Layer("the Gradio demo (app.py)", ("app",), ("gradio", "gradio_client"), ("predict",)),
    "export": Layer(
        "ONNX, int8 and safetensors files, the Hugging Face Hub and PyTorch Hub entries",
        ("export", "hubconf", "hub_model", "benchmarks.bench_onnx"),
        ("onnx", "onnxruntime", "onnxscript", "huggingface_hub", "safetensors"),
        ("predict",),
        ("test_export.py",),
    ),
    "page": Layer(
        "the browser page (web/, built with Node) read through from Python and Chromium, and the demo's benchmark",
        ("compact_mnist.webpage", "benchmarks.bench_web", "benchmarks.bench_demo"),
        ("playwright",),
        ("predict", "demo", "export"),
        ("test_app.py", "test_web.py"),
    ),
    "search": Layer(
        "the studies: seeds, the search on one machine or many, the ablation, the frontier, test-time views, "
        "distillation, shared weights",
        ("scripts.search", "scripts.seeds", "scripts.launch", "scripts.ablation", "scripts.frontier", "scripts.views")
        + ("scripts.distill", "scripts.shared_weights"),
        ("optuna", "sqlalchemy", "psycopg"),
        tests=("test_search.py", "test_postgres.py", "test_studies.py"),
    ),
}
PARTS = {"kit": KIT, **LAYERS}


def source(module: str) -> Path | None:
    """The file of a project module ("compact_mnist.data" -> compact_mnist/data.py), or None for another package's."""
    parts = module.split(".")
    for path in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


def imports(path: Path) -> set[str]:
    """Every module that the file `path` imports anywhere in it (inside functions too), with their parent packages."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            pieces = name.split(".")
            found |= {".".join(pieces[:end]) for end in range(1, len(pieces) + 1)}
    return found


def project_imports(module: str) -> set[str]:
    """The project modules that `module` imports directly."""
    path = source(module)
    return {name for name in imports(path) if source(name) and name != "compact_mnist"} if path else set()


def part_of(module: str) -> str | None:
    """The name of the part ("kit" or a layer) that holds `module`."""
    return next((name for name, part in PARTS.items() if module in part.modules), None)


IMPORT_NAMES = {"pillow": "PIL"}  # pip's name -> the module it installs, where they differ


def missing_packages(layer: str) -> list[str]:
    """The packages of `layer`, and of the layers it builds on, that are not installed here."""
    names = [package for part in (layer, *LAYERS[layer].needs) for package in LAYERS[part].packages]
    return [name for name in names if importlib.util.find_spec(IMPORT_NAMES.get(name, name)) is None]
