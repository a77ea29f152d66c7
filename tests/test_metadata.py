"""The bundle's metadata: one file, ``configs/metadata.json`` (where MONAI, the model zoo and MONAI Label read it), and
the project's design card at the top level (``metadata.json``), a symbolic link to it; every reader gets the same
fact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from monai.bundle import ConfigWorkflow

from bundle import bundled_landmark_set
from tests.conftest import REPO_ROOT
from tools.monailabel_models import CEPHALOMETRIC, write_models
from tools.package_zoo import package

SCHEMA = REPO_ROOT / "tests" / "data" / "meta_schema_20240725.json"
TOP, INSIDE = REPO_ROOT / "metadata.json", REPO_ROOT / "configs" / "metadata.json"


def test_the_top_level_metadata_is_a_link_to_the_one_in_configs():
    assert TOP.is_symlink() and not INSIDE.is_symlink()
    assert os.readlink(TOP) == os.path.join("configs", "metadata.json")  # relative: it holds in any clone
    assert TOP.resolve() == INSIDE.resolve()
    assert json.loads(TOP.read_text())["version"] == json.loads(INSIDE.read_text())["version"]


@pytest.mark.slow
@pytest.mark.parametrize("meta_file", ["metadata.json", "configs/metadata.json"])
def test_monai_verifies_the_metadata_at_either_path(meta_file):
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", meta_file, "--filepath", str(SCHEMA)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_config_workflow_reads_the_same_version_from_either_path():
    versions = []
    for meta_file in (None, str(TOP)):
        workflow = ConfigWorkflow(
            config_file=str(REPO_ROOT / "configs" / "inference.json"),
            meta_file=meta_file,
            workflow_type="infer",
            bundle_root=str(REPO_ROOT),
        )
        versions.append(workflow.parser.get("_meta_#version"))
    assert versions[0] == versions[1] == json.loads(INSIDE.read_text())["version"]


def test_the_zoo_package_and_monai_label_folders_carry_it_as_a_file(tmp_path):
    zoo = package(tmp_path / "zoo", "https://example.org/w/")
    served = write_models(tmp_path / "app", [CEPHALOMETRIC], tmp_path / "unused.pt")[0]
    for folder in (zoo, served):
        copy = folder / "configs" / "metadata.json"
        assert copy.is_file() and not copy.is_symlink()
        assert copy.read_bytes() == TOP.read_bytes()


def test_metadata_describes_the_network():
    metadata = json.loads(TOP.read_text())
    names = bundled_landmark_set("isbi2015").names
    output = metadata["network_data_format"]["outputs"]["pred"]
    assert output["num_channels"] == len(names)
    assert list(output["channel_def"].values()) == names
    # the first output is what MONAI Label reads: /info's labels (0 background, landmark k is k + 1) and the label
    # image that /infer returns
    first, label = next(iter(metadata["network_data_format"]["outputs"].items()))
    assert first == "label" and label["num_channels"] == 1
    assert label["channel_def"] == {"0": "background", **{str(k + 1): n for k, n in enumerate(names)}}
    assert metadata["pytorch_version"] == torch.__version__.split("+")[0]
