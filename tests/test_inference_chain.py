"""Predictions made on the network grid come back to the original image's pixels through the inverse chain."""

import json

import numpy as np
import torch
from monai.bundle import ConfigWorkflow
from PIL import Image

from tests.test_workflows import CONFIGS, REPO

ORIGINAL = (1935, 2400)  # width x height, an ISBI 2015 cephalogram's size
GRID = (416, 512)
PLACED = [(835.0, 996.0), (100.3, 2300.7), (1900.2, 50.5), (967.0, 1199.5)]  # original pixels, x = column


def test_landmarks_come_back_to_within_half_a_pixel(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (ORIGINAL[1], ORIGINAL[0]), dtype=np.uint8)).save(images / "ceph.png")
    placed = np.array(PLACED)
    grid_points = (placed + 0.5) * np.array(GRID) / np.array(ORIGINAL) - 0.5  # pixel-centre aligned resize
    (tmp_path / "models").mkdir()
    torch.save({}, tmp_path / "models" / "model.pt")  # the stub has no weights
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "inference.json"),
        workflow_type="infer",
        bundle_root=str(REPO),
        dataset_dir=str(images),
        output_dir=str(tmp_path / "out"),
        ckpt_dir=str(tmp_path / "models"),
        spacing=[0.1, 0.1],
        grid_size=list(GRID),
        num_landmarks=len(PLACED),
        landmark_names=[f"p{i}" for i in range(len(PLACED))],
        network_def={"_target_": "tests.stubs.KnownHeatmapNetwork", "grid_points": grid_points.tolist()},
    )
    workflow.initialize()
    workflow.run()
    result = json.loads((tmp_path / "out" / "ceph.json").read_text())
    pixels = np.array([landmark["pixel"] for landmark in result["landmarks"]])
    world = np.array([landmark["world"] for landmark in result["landmarks"]])
    assert np.linalg.norm(pixels - placed, axis=1).max() < 0.5
    np.testing.assert_allclose(world, pixels * 0.1, atol=1e-9)
    assert (tmp_path / "out" / "ceph_overlay.png").exists()
