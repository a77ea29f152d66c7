"""Code style as the MONAI model zoo checks a submission: black, isort and flake8 with its plugins (setup.cfg holds
the zoo's flake8 settings), and its pre-commit hooks on every tracked file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.style import precommit_failures


@pytest.mark.parametrize(
    "command", [["black", "--check", "."], ["isort", "--check-only", "."], ["flake8", ".", "--count"]]
)
def test_formatters_and_linters_pass(command):
    result = subprocess.run([sys.executable, "-m", *command], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_model_zoo_precommit_hooks_pass(tmp_path):
    if not (REPO_ROOT / ".git").exists():
        pytest.skip(f"{REPO_ROOT} is not a git checkout: the hooks run on the tracked files")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # the shipped weights are binary (identify takes model.ts for TypeScript) and never part of a zoo pull request,
    # which references them in large_files.yml; the repository may hold them up to 25 MB
    files = [f for f in listed.stdout.splitlines() if (REPO_ROOT / f).is_file() and not f.startswith("models/")]
    failures = precommit_failures(REPO_ROOT, files, tmp_path, skip=("check-added-large-files",))
    assert failures == {}
