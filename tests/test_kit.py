"""The kit (the network, training, evaluation) stands on its own: model.py runs copied alone, train.py's reading path
stays short, no kit module imports a layer (demo, page, search, export, reading tools) or a layer's package, and
pyproject.toml's extras are the layers' packages (compact_mnist/layers.py holds the table).

    python tests/test_kit.py     # train.py's reading path, module by module
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import tomllib

from compact_mnist.layers import IMPORT_NAMES, KIT, LAYERS, PARTS, ROOT, imports, part_of, project_imports, source

# Physical lines of train.py and every project module it imports, transitively (imports inside functions count).
# The aim is 800, as pytorch/examples' mnist and nanoGPT's training path; this bound keeps today's from growing. It
# was 1,472 before the test-time views that the default adopted on validation (docs/experiments.md): their 67 lines
# in model.py, the recipe and train.py (the saved model's reading, and its figures printed beside the network's)
# grew it to 1,539. The loss hook (train.py's `Loss`, `cross_entropy`, and `main`'s `loss_fn` and `trained_with`,
# with `main`'s check of its folder moved out to keep it under a screen) added 18, so that a method such as
# distillation trains from outside the kit (scripts/distill.py) and its code stays off this path until adopted.
# One more keeps --views a flag now that every preset reads with views (`both`), so recorded commands still run.
# The network hook (train.py's `Network`, and `network_fn` through `build_model`, `fit` and `main`) added 5, so that
# shared weights train from outside the kit too (scripts/shared_weights.py). Four more make the curves' title say
# what the training loss was measured on; it said "augmented, label-smoothed" for every recipe and method.
READING_PATH_LIMIT = 1_567


def reading_path(module: str = "train") -> dict[str, int]:
    """The project modules that `module` imports, transitively, each with its physical lines."""
    lines, todo = {}, [module]
    while todo:
        name = todo.pop()
        if name not in lines:
            lines[name] = len(source(name).read_text(encoding="utf-8").splitlines())
            todo += project_imports(name)
    return lines


@pytest.mark.slow
def test_model_py_copied_alone_builds_every_preset_and_prints_its_layer_table(tmp_path):
    (tmp_path / "model.py").write_bytes((ROOT / "model.py").read_bytes())
    alone = textwrap.dedent(
        """
        import importlib.abc, runpy, sys
        class NoProject(importlib.abc.MetaPathFinder):  # the project's other modules are not there
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"compact_mnist", "train", "evaluate", "predict", "scripts", "app"}:
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, NoProject())
        from model import PRESETS, Net, count_parameters
        print(" ".join(f"{name}={count_parameters(Net(name))}" for name in PRESETS))
        sys.argv = ["model.py", "tiny"]
        runpy.run_path("model.py", run_name="__main__")  # as `python model.py tiny`
        """
    )
    result = subprocess.run([sys.executable, "-c", alone], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    counts, table = result.stdout.split("\n", 1)
    assert counts.split() == ["default=10002", "small=7370", "tiny=3902", "micro=978"]
    assert "| **total** | | **3,902** |" in table


def test_the_reading_path_of_train_py_stays_short():
    lines = reading_path()
    assert sum(lines.values()) <= READING_PATH_LIMIT, f"train.py's reading path is {sum(lines.values())} lines: {lines}"


def test_no_kit_module_imports_a_layer_or_a_layers_package():
    layer_packages = {IMPORT_NAMES.get(name, name) for layer in LAYERS.values() for name in layer.packages}
    for module in KIT.modules:
        reached = {name for kit_module in reading_path(module) for name in imports(source(kit_module))}
        found = sorted(name for name in reached if part_of(name) not in (None, "kit") or name in layer_packages)
        assert not found, f"{module} reaches {', '.join(found)}"


def test_each_layer_imports_only_the_kit_and_the_layers_it_names():
    for name, layer in LAYERS.items():
        allowed = {"kit", name, *layer.needs}
        for module in layer.modules:
            others = {part_of(imported) for imported in project_imports(module)} - allowed
            assert not others, f"{module} ({name}) imports from {others}"


def test_every_module_of_the_project_belongs_to_one_part():
    files = [*ROOT.glob("*.py"), *ROOT.glob("compact_mnist/*.py"), *ROOT.glob("scripts/*.py")]
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts) for path in files + [*ROOT.glob("benchmarks/*.py")]
    }
    modules -= {"conftest", "test_model", "compact_mnist.__init__", "scripts.__init__"}
    assert not [module for module in sorted(modules) if part_of(module) is None]
    assert sum(len(part.modules) for part in PARTS.values()) == len(
        {m for part in PARTS.values() for m in part.modules}
    )


def test_pyproject_declares_the_kits_dependencies_and_one_extra_per_layer():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\[<>=; ]", requirement, maxsplit=1)[0] for requirement in requirements}

    assert names(project["dependencies"]) == set(KIT.packages)
    extras = project["optional-dependencies"]
    for name, layer in LAYERS.items():
        own = {item for item in names(extras[name]) if item != "compact-mnist-cnn"}
        assert own == set(layer.packages), name
        needs = {
            need for item in extras[name] if item.startswith("compact-mnist-cnn[") for need in item[18:-1].split(",")
        }
        assert needs == set(layer.needs), f"{name} installs the extras it imports from"
    assert set(extras["all"]) == {f"compact-mnist-cnn[{','.join([*LAYERS, 'dev'])}]"}


if __name__ == "__main__":
    lines = reading_path()
    for module, count in sorted(lines.items(), key=lambda item: -item[1]):
        print(f"{count:5d} {source(module).relative_to(ROOT).as_posix()}")
    print(f"{sum(lines.values()):5d} lines in {len(lines)} files")
