"""The project's own hygiene: the GitHub workflows are valid, the code is linted and formatted, and every committed
picture still shows what it was made from."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compact_mnist import files, stamps
from conftest import missing, require_current

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A command-line tool of the dev extra, installed beside this Python (ruff.exe in Scripts\\ on Windows)."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        missing(f'needs the dev extra ({name}): pip install -e ".[dev]"')
    return found


def test_there_is_a_workflow():
    assert WORKFLOWS, "no workflow files in .github/workflows"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_githubs_published_schema(workflow):
    # check-jsonschema ships GitHub's workflow schema, so this works offline.
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  test:\n    steps: not-a-list\n")
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)]
    assert subprocess.run(command, capture_output=True).returncode != 0


def test_lint_and_format_find_nothing():
    """ruff's lint and format check, once in the suite and in a second. The type check (22 s without mypy's cache)
    runs with them in pre-commit's hooks: the workflow's lint job and .ci/run."""
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run([tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_requirements_have_lower_bounds_and_only_explained_caps():
    lines = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("dependencies = [", 1)[1].split("[tool.")[0]
    for line in lines.splitlines():
        requirement = re.search(r'"([\w.\-]+(\[[\w,]+\])?[^"]*)"', line)
        if not requirement or requirement.group(1).startswith("compact-mnist-cnn["):  # an extra of this project
            continue
        assert ">=" in requirement.group(1), f"{requirement.group(1)}: give a lower bound"
        if "<" in requirement.group(1).replace("<=", "<"):
            assert "#" in line, f"{requirement.group(1)}: an upper cap needs a comment saying why"
    assert (ROOT / "requirements.txt").read_text(encoding="utf-8").count("-e .[all]") == 1, "everything, editable"


def test_readme_badge_points_at_a_workflow_that_exists():
    badge = re.search(r"actions/workflows/([\w.-]+)/badge\.svg", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert badge, "README.md has no workflow badge"
    assert (ROOT / ".github" / "workflows" / badge.group(1)).is_file()


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_and_image_exists(document):
    for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text(encoding="utf-8")):
        path = target.split("#")[0]
        if not path or re.match(r"[a-z]+:", path):  # an anchor in the page, or a web address
            continue
        resolved = (document.parent / path).resolve()
        if ROOT not in resolved.parents:  # GitHub's own pages beside the repository, like the badge's
            continue
        assert resolved.exists(), f"{document.name} links to {target}, which does not exist"


def test_readme_is_a_short_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move long tables and history to docs/"
    first = "\n".join(lines[:40])
    assert "python train.py" in first and "pytest -v" in first
    assert "pip install -r requirements.txt" in first and 'pip install -e ".[test]"' in first, "both set-ups"
    text = "\n".join(lines)
    assert text.index("<!-- BEGIN network -->") < text.index("<!-- BEGIN seeds -->"), "the network before results"


@pytest.mark.needs("export")  # huggingface_hub brings the YAML reader
def test_the_model_card_has_the_yaml_header_the_hugging_face_hub_reads():
    import yaml

    text = (ROOT / "docs" / "model-card.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "the Hub reads the header only at the very top"
    header = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    assert header["license"] == "mit" and header["library_name"] == "pytorch" and "mnist" in header["tags"]
    results = header["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test" and all(m["type"] == "accuracy" for m in results["metrics"])
    assert "# Model card" in text[text.index("\n---\n", 4) :], "the card's own text follows the header"


PICTURES = sorted([*(ROOT / "reports").glob("*.png"), ROOT / "models" / "training_curves.png"])


@pytest.mark.parametrize("picture", PICTURES, ids=lambda path: path.name)
def test_every_committed_picture_records_what_it_shows_and_still_shows_it(picture):
    recorded = stamps.read(picture)
    assert recorded, f"{picture.name} has no stamp of the files it was made from"
    made_from, made_by = recorded
    require_current(files.name(picture), stamps.stale(made_from), made_by)


LONGEST_FUNCTION = 60  # lines; a longer one does several jobs, to be split by responsibility
CODE = ("compact_mnist", "scripts", "benchmarks", "tests")


def test_no_function_is_longer_than_a_screen():
    import ast

    sources = [*ROOT.glob("*.py"), *[path for folder in CODE for path in (ROOT / folder).glob("*.py")]]
    long = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                long += [f"{path.name}: {node.name} ({lines} lines)"] if lines > LONGEST_FUNCTION else []
    assert len(sources) > 30 and not long, ", ".join(long)
