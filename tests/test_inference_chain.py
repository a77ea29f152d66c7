"""Predictions made on the network grid come back to the original image's pixels through the inverse chain."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import run_inference
from tests.test_workflows import CONFIGS

ORIGINAL = (1935, 2400)  # width x height, an ISBI 2015 cephalogram's size
GRID = (416, 512)
PLACED = [(835.0, 996.0), (100.3, 2300.7), (1900.2, 50.5), (967.0, 1199.5)]  # original pixels, x = column


def _run_inference(tmp_path, images, **overrides) -> None:
    """``configs/inference.json`` on the folder ``images``, weights from ``tmp_path/models``, outputs to
    ``tmp_path/out``, with ``overrides`` of config ids."""
    # the stubs' points form no anatomy a shape model could judge, and have none of the measurements' landmarks
    settings = {"trust": False, "measurements": [], "tracing": [], **overrides}
    run_inference(images, tmp_path / "out", ckpt_dir=str(tmp_path / "models"), **settings)


def _refiner_file(models):
    """Where inference.json looks for the refiner's weights under the folder ``models`` (its parent made)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser["ckpt_dir"] = str(models)
    path = Path(parser.get_parsed_content("refiner_file"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_landmarks_come_back_to_within_half_a_pixel(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (ORIGINAL[1], ORIGINAL[0]), dtype=np.uint8)).save(images / "ceph.png")
    placed = np.array(PLACED)
    # the image fits the grid with its aspect ratio: 0.46875 mm per grid pixel (240 mm / 512), so 1935 columns
    # become 413 (pixel-centre aligned) and the grid's 416 columns pad them with 1 before and 2 after
    resized = np.array([413, 512])
    grid_points = (placed + 0.5) * resized / np.array(ORIGINAL) - 0.5 + np.array([1.0, 0.0])
    (tmp_path / "models").mkdir()
    torch.save({}, tmp_path / "models" / "model.pt")  # the stub has no weights
    _run_inference(
        tmp_path,
        images,
        spacing=[0.1, 0.1],
        grid_size=list(GRID),
        grid_spacing=None,  # fit the grid: 0.46875 mm per grid pixel
        num_landmarks=len(PLACED),
        landmark_names=[f"p{i}" for i in range(len(PLACED))],
        network_def={"_target_": "tests.stubs.KnownHeatmapNetwork", "grid_points": grid_points.tolist()},
    )
    result = json.loads((tmp_path / "out" / "ceph.json").read_text())
    pixels = np.array([landmark["pixel"] for landmark in result["landmarks"]])
    world = np.array([landmark["world"] for landmark in result["landmarks"]])
    assert np.linalg.norm(pixels - placed, axis=1).max() < 0.5
    np.testing.assert_allclose(world, pixels * 0.1, atol=1e-9)
    assert (tmp_path / "out" / "ceph_overlay.png").exists()


def test_the_refinement_stage_finds_the_landmarks_the_first_stage_missed(tmp_path):
    """Blobs at known points; the first stage (a stub) misses each by about 1.5 mm; the refiner (a stub that echoes
    its patch) must put every landmark back on its blob, through both stages' geometry and the output files."""
    from bundle import GaussianHeatmapCodec
    from tests.stubs import PatchEchoNetwork

    size, spacing, grid = (600, 660), 0.1, (160, 192)  # pixels x by y, mm per pixel
    truth = np.array([(120.4, 200.7), (300.0, 330.2), (480.9, 90.1), (333.3, 600.6)])  # original pixels
    codec = GaussianHeatmapCodec(2, truncate=6.0)
    blobs, _ = codec.encode(torch.tensor(truth, dtype=torch.float32), size, sigma=6.0)  # SD 0.6 mm
    picture = (blobs.amax(0).numpy().T * 255).round().astype(np.uint8)  # PIL wants rows first
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(picture).save(images / "blobs.png")
    missed = truth + np.array([[12.0, -9.0], [-14.0, 3.0], [5.0, 13.0], [-8.0, -10.0]])  # 0.9 to 1.4 mm off
    # at 1.25 mm per grid pixel (grid_spacing; 0.1 mm pixels are known) the 60 x 66 mm image takes 48 x 53 grid
    # pixels, padded symmetrically to the 160 x 192 grid (56 and 69 before)
    grid_points = (missed + 0.5) * np.array([48, 53]) / np.array(size) - 0.5 + np.array([56.0, 69.0])
    models = tmp_path / "models"
    models.mkdir()
    torch.save({}, models / "model.pt")
    torch.save(PatchEchoNetwork(len(truth)).state_dict(), _refiner_file(models))
    _run_inference(
        tmp_path,
        images,
        spacing=[spacing, spacing],
        grid_size=list(grid),
        num_landmarks=len(truth),
        landmark_names=[f"p{i}" for i in range(len(truth))],
        network_def={"_target_": "tests.stubs.KnownHeatmapNetwork", "grid_points": grid_points.tolist()},
        refiner_def={"_target_": "tests.stubs.PatchEchoNetwork", "out_channels": len(truth)},
    )
    result = json.loads((tmp_path / "out" / "blobs.json").read_text())
    pixels = np.array([landmark["pixel"] for landmark in result["landmarks"]])
    assert np.linalg.norm(pixels - missed, axis=1).min() > 8  # the first stage alone is that far off
    assert np.linalg.norm(pixels - truth, axis=1).max() < 0.5  # the refined landmarks are on their blobs


def test_without_refiner_weights_the_first_stage_answers_alone(tmp_path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser["ckpt_dir"] = str(tmp_path)
    assert parser.get_parsed_content("refine") is False
    assert parser.get_parsed_content("refine_landmarks") is None
    parser["refine"] = "true"  # asked for, but the weights are missing: a clear error, not a silent first stage
    parser.parse()
    with pytest.raises(RuntimeError) as error:  # MONAI's config wraps the component's own error
        parser.get_parsed_content("refine_landmarks")
    assert isinstance(error.value.__cause__, FileNotFoundError) and "refiner's weights" in str(error.value.__cause__)
