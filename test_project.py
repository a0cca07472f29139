"""The project's own hygiene: the GitHub workflows are valid, the code is linted and formatted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A command-line tool installed beside this Python (requirements.txt installs them)."""
    path = BIN / name
    return str(path) if path.exists() else name


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


def test_ruff_finds_nothing():
    result = subprocess.run([tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted_by_ruff():
    result = subprocess.run([tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_requirements_have_lower_bounds_and_only_explained_caps():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if not requirement:
            continue
        assert ">=" in requirement, f"{requirement}: give a lower bound"
        if "<" in requirement.replace("<=", "<"):
            previous = (ROOT / "requirements.txt").read_text().split(line)[0].rstrip().splitlines()[-1]
            assert previous.startswith("#"), f"{requirement}: an upper cap needs a comment above it saying why"


def test_readme_badge_points_at_a_workflow_that_exists():
    badge = re.search(r"actions/workflows/([\w.-]+)/badge\.svg", (ROOT / "README.md").read_text())
    assert badge, "README.md has no workflow badge"
    assert (ROOT / ".github" / "workflows" / badge.group(1)).is_file()
