"""The model-zoo submission that tools/package_zoo.py writes passes the zoo's checks.

MONAI's own checks (metadata schema, network input/output, TorchScript export), the zoo's pre-commit hooks and the
zoo-style unit test run everywhere. The zoo's own CI scripts (ci/verify_bundle.py, ci/unit_tests/runner.py) run where
a checkout of Project-MONAI/model-zoo is given in the environment variable MODEL_ZOO_DIR; elsewhere that test skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.style import precommit_failures
from tools.package_zoo import BUNDLE_NAME, INCLUDE, WEIGHTS, package, sha256

pytestmark = pytest.mark.slow  # packages the bundle and runs its checks and unit test

SCHEMA = REPO_ROOT / "tests" / "data" / "meta_schema_20240725.json"
URL = "https://example.org/coortransformer_landmarks/v1/"


@pytest.fixture(scope="module")
def submission(tmp_path_factory) -> Path:
    return package(tmp_path_factory.mktemp("zoo"), URL)


def _bundle_cli(bundle: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args],
        cwd=bundle,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(bundle)},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_layout_and_large_files(submission):
    names = {str(p.relative_to(submission)) for p in submission.rglob("*") if p.is_file()}
    for required in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md"):
        assert required in names
    assert "docs/data_license.txt" in names and "bundle/__init__.py" in names and "configs/demo.json" in names
    small = {item for item in INCLUDE if item.startswith("models/")}  # under 1 MB: in the submission as they are
    assert {"models/shape_model.json", "models/calibration.json", "models/review_risk.json"} <= small <= names
    assert not [n for n in names - small if n.startswith(("tests/", "models/")) or n == "tools/package_zoo.py"]
    assert (submission.parents[1] / "ci" / "unit_tests" / f"test_{BUNDLE_NAME}.py").exists()
    listed = yaml.safe_load((submission / "large_files.yml").read_text())["large_files"]
    assert [(f["path"], f["url"], f["hash_type"]) for f in listed] == [
        (w, URL + Path(w).name, "sha256") for w in WEIGHTS
    ]
    assert [f["hash_val"] for f in listed] == [sha256(REPO_ROOT / w) for w in WEIGHTS]


def test_the_zoo_precommit_hooks_pass_on_the_submission(submission, tmp_path):
    files = [str(p.relative_to(submission)) for p in submission.rglob("*") if p.is_file()]
    assert precommit_failures(submission, files, tmp_path) == {}


def test_monai_bundle_checks_pass_with_the_weights(tmp_path):
    bundle = package(tmp_path, URL, with_weights=True)
    _bundle_cli(bundle, "verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(SCHEMA))
    common = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    _bundle_cli(bundle, "verify_net_in_out", "network_def", *common, "--bundle_root", str(bundle))
    _bundle_cli(
        bundle, "ckpt_export", "network_def", "--filepath", str(tmp_path / "verify.ts"), "--ckpt_file",
        "models/model.pt", *common, "--bundle_root", str(bundle),
    )  # fmt: skip


def test_the_zoo_style_unit_test_passes(submission):
    zoo = submission.parents[1]
    runner = zoo / "ci" / "unit_tests"
    # the zoo's ci/unit_tests/utils.py provides check_workflow; a stand-in with its documented behaviour
    (runner / "utils.py").write_text(
        "def check_workflow(workflow, check_properties=False):\n"
        "    workflow.initialize()\n"
        "    if check_properties:\n"
        "        result = workflow.check_properties()\n"
        "        if result:\n"
        "            raise ValueError(f'check properties for workflow failed: {result}')\n"
        "    workflow.run()\n"
        "    workflow.finalize()\n"
    )
    result = subprocess.run(
        [sys.executable, str(runner / f"test_{BUNDLE_NAME}.py")],
        cwd=zoo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(runner)},
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_packaging_refuses_to_replace_an_earlier_package(submission):
    command = [sys.executable, "-m", "tools.package_zoo", "--out", str(submission.parents[1]), "--weights_url", URL]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {submission}, {submission.parents[1] / 'ci' / 'unit_tests' / f'test_{BUNDLE_NAME}.py'} already "
        "exist: pass --overwrite to replace them."
    ]


def test_the_zoo_ci_scripts_pass(tmp_path):
    zoo_dir = os.environ.get("MODEL_ZOO_DIR")
    if not zoo_dir or not (Path(zoo_dir) / "ci" / "verify_bundle.py").exists():
        pytest.skip("the model zoo's CI scripts are not here: set MODEL_ZOO_DIR to a Project-MONAI/model-zoo checkout")
    zoo = tmp_path / "zoo"
    shutil.copytree(Path(zoo_dir) / "ci", zoo / "ci")
    (zoo / "models").mkdir()
    shutil.copy2(Path(zoo_dir) / "models" / "model_info.json", zoo / "models" / "model_info.json")
    bundle = package(zoo, URL, with_weights=True)
    (bundle / "eval").mkdir()
    shutil.copy2(SCHEMA, bundle / "eval" / "schema.json")  # what the zoo's ci/prepare_schema.py downloads
    env = {**os.environ, "PYTHONPATH": str(zoo / "ci")}
    for command in (
        [sys.executable, "ci/verify_bundle.py", "-b", BUNDLE_NAME, "-m", "min"],
        [sys.executable, "ci/verify_bundle.py", "-b", BUNDLE_NAME, "-m", "full"],
        [sys.executable, "ci/unit_tests/runner.py", "-b", BUNDLE_NAME],
    ):
        result = subprocess.run(command, cwd=zoo, capture_output=True, text=True, env=env, timeout=900)
        assert result.returncode == 0, " ".join(command) + "\n" + result.stdout[-3000:] + result.stderr[-3000:]
