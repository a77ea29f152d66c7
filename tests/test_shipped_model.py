"""The shipped cephalometric model (models/model.pt, models/model.ts): what a fresh clone runs with
configs/inference.json and no overlay."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from bundle import bundled_landmark_set
from tests.conftest import REPO_ROOT, shared_data

CONFIGS = REPO_ROOT / "configs"
MODEL = REPO_ROOT / "models" / "model.pt"
TORCHSCRIPT = REPO_ROOT / "models" / "model.ts"
REFINER = REPO_ROOT / "models" / "refiner" / "model.pt"


def _inference_config() -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser["device"] = "$torch.device('cpu')"
    return parser


def _shipped_network() -> torch.nn.Module:
    network = _inference_config().get_parsed_content("network_def")
    network.load_state_dict(torch.load(MODEL, map_location="cpu", weights_only=True))  # strict: every key, every shape
    return network.eval()


def _infer(folder: Path, out: Path, *args: str) -> None:
    command = ["run", "inference", "--config_file", "configs/inference.json", "--dataset_dir", str(folder)]
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *command, "--output_dir", str(out), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_torchscript_export_computes_what_the_weights_do():
    torch.manual_seed(0)
    x = torch.rand(2, 1, *_inference_config()["grid_size"])
    with torch.no_grad():
        expected = _shipped_network()(x)
        scripted = torch.jit.load(str(TORCHSCRIPT), map_location="cpu").eval()(x)
    torch.testing.assert_close(scripted, expected, atol=1e-5, rtol=1e-5)


def test_the_model_card_and_the_metadata_describe_these_weights():
    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert digest in (REPO_ROOT / "docs" / "README.md").read_text()
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    names = bundled_landmark_set("isbi2015").names
    assert list(metadata["network_data_format"]["outputs"]["pred"]["channel_def"].values()) == names
    assert metadata["version"] in metadata["changelog"]
    assert metadata["eval_metrics"]["sha256"] == digest
    refiner = hashlib.sha256(REFINER.read_bytes()).hexdigest()
    assert (
        metadata["eval_metrics"]["refiner_sha256"] == refiner
        and refiner in (REPO_ROOT / "docs" / "README.md").read_text()
    )


def test_the_shipped_refiner_loads_into_the_configured_network_and_is_used_by_default():
    parser = _inference_config()
    parser["bundle_root"] = str(REPO_ROOT)
    assert parser.get_parsed_content("refine") is True  # models/refiner/model.pt is beside models/model.pt
    refine = parser.get_parsed_content("refine_landmarks")  # loads the weights strictly: every key, every shape
    assert refine is not None and refine.patch_size == [64, 64] and refine.spacing == 0.3


@pytest.mark.slow
def test_a_folder_of_plain_images_gets_the_19_landmarks_at_an_assumed_spacing(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (480, 387), dtype=np.uint8)).save(folder / "ceph.png")  # 1/5 ISBI size
    _infer(folder, tmp_path / "out")
    result = json.loads((tmp_path / "out" / "ceph.json").read_text())
    # noise is no cephalogram: the spacing stays assumed (nothing to estimate it from), and all is flagged
    assert result["spacing"] == [0.1, 0.1] and result["spacing_source"] == "assumed" and result["plausible"] is False
    assert all(item["review"] and "image_implausible" in item["review_reasons"] for item in result["landmarks"])
    assert [item["name"] for item in result["landmarks"]] == bundled_landmark_set("isbi2015").names
    for item in result["landmarks"]:
        assert item["world"] == pytest.approx([0.1 * p for p in item["pixel"]])
    rows = list(csv.reader((tmp_path / "out" / "landmarks.csv").open()))
    assert len(rows) == 1 + 19


@pytest.mark.slow
def test_the_shipped_model_finds_isbi_landmarks(tmp_path):
    """A check that the weights are the trained ones (the model card has the full evaluation): three test images,
    errors against the mean of the two doctors."""
    source = shared_data("isbi2015")
    truth = {}
    for doctor in ("senior", "junior"):
        with open(source / "annotations" / f"all_{doctor}.csv") as f:
            for row in csv.reader(f):
                if row and row[0].strip().isdigit():
                    truth.setdefault(int(row[0]), []).append(np.array(row[1:39], dtype=float).reshape(19, 2))
    folder = tmp_path / "images"
    folder.mkdir()
    for image_id in (151, 231, 301):
        (folder / f"{image_id}.jpg").symlink_to(source / "images" / f"{image_id:03d}.jpg")
    _infer(folder, tmp_path / "out", "--spacing", "[0.1,0.1]")
    errors = []
    for image_id in (151, 231, 301):
        result = json.loads((tmp_path / "out" / f"{image_id}.json").read_text())
        predicted = np.array([item["world"] for item in result["landmarks"]])
        errors.append(np.linalg.norm(predicted - np.mean(truth[image_id], axis=0), axis=1))
    assert np.mean(errors) < 2.5, np.mean(errors, axis=1)
