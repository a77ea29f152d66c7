"""The MONAI model zoo's pre-commit checks (its .pre-commit-config.yaml, pre-commit-hooks 4.6.0), run the way
pre-commit runs them: each hook on the files whose ``identify`` tags it asks for, in check mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from identify.identify import tags_from_path

# (console script, arguments, tags a file must have, suffixes excluded); the fixers run on a copy
HOOKS = (
    ("end-of-file-fixer", (), {"text"}, ()),
    ("trailing-whitespace-fixer", (), {"text"}, (".ts", ".pt")),
    ("check-yaml", (), {"yaml"}, ()),
    ("check-docstring-first", (), {"python"}, ()),
    ("check-executables-have-shebangs", (), {"text", "executable"}, ()),
    ("check-toml", (), {"toml"}, ()),
    ("check-case-conflict", (), set(), ()),
    ("check-added-large-files", ("--maxkb=1024", "--enforce-all"), set(), ()),
    ("detect-private-key", (), {"text"}, ()),
    ("pretty-format-json", ("--no-sort-keys", "--indent=4"), {"json"}, ()),
    ("mixed-line-ending", (), {"text"}, ()),
)


def precommit_failures(root: Path, files: list[str], scratch: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Run every hook (but those in ``skip``) on ``files`` (relative to ``root``) copied to ``scratch``; returns
    ``{hook: its output}`` for each hook that fails."""
    for name in files:
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, scratch / name)
    subprocess.run(["git", "init", "-q"], cwd=scratch, check=True)  # check-case-conflict compares with git's index
    scripts = Path(sys.executable).parent
    failures = {}
    for hook, args, tags, excluded in HOOKS:
        if hook in skip:
            continue
        chosen = [f for f in files if tags <= tags_from_path(str(scratch / f)) and not f.endswith(excluded)]
        if not chosen:
            continue
        result = subprocess.run([str(scripts / hook), *args, *chosen], cwd=scratch, capture_output=True, text=True)
        if result.returncode != 0:
            failures[hook] = (result.stdout + result.stderr)[-2000:]
    return failures
