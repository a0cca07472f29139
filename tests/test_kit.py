"""The kit (the network, training, evaluation) stands on its own: model.py runs copied alone, train.py's reading path
stays short, and no kit module imports a layer (demo, page, search, export, reading tools) or a layer's package.

    python tests/test_kit.py     # prints train.py's reading path, module by module
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIT = ("train.py", "evaluate.py", "model.py")  # the commands of the kit; what they import is the kit too
LAYERS = {  # the extras: their project modules and the packages only they need
    "modules": {"app", "export", "predict", "hubconf", "hub_model", "scripts", "benchmarks"}
    | {"compact_mnist.preprocess", "compact_mnist.drawings", "compact_mnist.webpage"},
    "packages": {"gradio", "gradio_client", "optuna", "sqlalchemy", "psycopg", "onnx", "onnxruntime", "onnxscript"}
    | {"playwright", "huggingface_hub", "safetensors", "scipy", "hypothesis"},
}
# Physical lines of train.py and every project module it imports, transitively (imports inside functions count).
# The aim is 800, as pytorch/examples' mnist and nanoGPT's training path; this bound keeps today's from growing.
READING_PATH_LIMIT = 1_400


def project_file(module: str) -> Path | None:
    """The file of a project module ("compact_mnist.data" -> compact_mnist/data.py), or None for a package's."""
    parts = module.split(".")
    for path in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


def imports(path: Path) -> set[str]:
    """Every module that `path` imports anywhere in it, with the parent packages of each."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
    return found


def reachable(start: str) -> tuple[dict[Path, int], set[str]]:
    """The project files that `start` imports, transitively, with their line counts; and every module named."""
    files, modules, todo = {}, set(), [ROOT / start]
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files[path] = len(path.read_text(encoding="utf-8").splitlines())
        for module in imports(path):
            modules.add(module)
            todo += [found] if (found := project_file(module)) else []
    return files, modules


def test_model_py_copied_alone_builds_every_preset_and_prints_its_layer_table(tmp_path):
    (tmp_path / "model.py").write_bytes((ROOT / "model.py").read_bytes())
    blocker = textwrap.dedent(
        """
        import importlib.abc, sys
        class NoProject(importlib.abc.MetaPathFinder):  # the project's other modules are not there
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"compact_mnist", "train", "evaluate", "predict", "scripts", "app"}:
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, NoProject())
        from model import PRESETS, Net, count_parameters
        print(" ".join(f"{name}={count_parameters(Net(name))}" for name in PRESETS))
        """
    )
    result = subprocess.run([sys.executable, "-c", blocker], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["default=10002", "small=7370", "tiny=3902", "micro=978"]
    table = subprocess.run([sys.executable, "model.py", "tiny"], cwd=tmp_path, capture_output=True, text=True)
    assert table.returncode == 0 and "| **total** | | **3,902** |" in table.stdout, table.stderr


def test_the_reading_path_of_train_py_stays_short():
    files, _ = reachable("train.py")
    total = sum(files.values())
    assert total <= READING_PATH_LIMIT, f"train.py's reading path is {total} lines: {files}"


def test_no_kit_module_imports_a_layer_or_a_layers_package():
    for command in KIT:
        _, modules = reachable(command)
        layers = sorted(module for module in modules if module in LAYERS["modules"] | LAYERS["packages"])
        assert not layers, f"{command} reaches {', '.join(layers)}"


if __name__ == "__main__":
    files, _ = reachable("train.py")
    for path, lines in sorted(files.items(), key=lambda item: -item[1]):
        print(f"{lines:5d} {path.relative_to(ROOT).as_posix()}")
    print(f"{sum(files.values()):5d} lines in {len(files)} files")
