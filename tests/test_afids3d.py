"""The 3D path on the committed AFIDs fixture: NIfTI in RAS, Slicer files, training with random affine augmentation."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle import read_landmarks
from tests.test_workflows import REPO, _run, _workflow
from tools.make_afids_fixture import block_average

pytestmark = pytest.mark.slow  # trains in 3D

FIXTURE = REPO / "data" / "afids"


def test_block_average_keeps_the_world_frame():
    affine = np.array([[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 1.0, -72], [0, 0, 0, 1]])
    data = np.arange(8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    small = block_average(nib.Nifti1Image(data, affine), 4)
    assert small.shape == (2, 2, 2)
    corner = affine @ np.array([1.5, 1.5, 1.5, 1.0])  # centre of old voxels 0..3 on each axis
    np.testing.assert_allclose(small.affine @ np.array([0, 0, 0, 1.0]), corner)
    assert np.asarray(small.dataobj)[0, 0, 0] == np.round(data[:4, :4, :4].mean())


def test_fixture_fiducials_lie_inside_the_template():
    image = nib.load(FIXTURE / "tpl-MNI152NLin2009cAsym_res-04mm_T1w.nii.gz")
    fiducials = read_landmarks(FIXTURE / "afids_groundtruth.fcsv", 32)
    voxels = (np.linalg.inv(image.affine) @ np.c_[fiducials.coordinates, np.ones(32)].T).T[:, :3]
    assert (voxels > -0.5).all() and (voxels < np.array(image.shape) - 0.5).all()
    data = np.asarray(image.dataobj)
    inside = data[tuple(np.round(voxels).astype(int).T)]
    assert (inside > 0.1 * data.max()).mean() > 0.9  # fiducials sit in the brain, not in the background


def test_3d_training_with_random_affine_and_inference_to_slicer(tmp_path):
    training = _workflow(
        ["train.json", "afids3d.json"], "train", tmp_path, dataset_dir=str(FIXTURE), max_epochs=2, val_interval=1,
        grid_size=[48, 56, 48], **{"network_def#features": [8, 16, 32, 64]},
    )  # fmt: skip
    training.initialize()
    assert training.parser["train#augmentation"][0]["_target_"] == "RandAffined"
    training.run()
    # one validation image: the key metric is the mean radial error of its 32 decoded fiducials, in mm
    last = training.evaluator.state.output[0]
    errors = torch.linalg.vector_norm(last["pred_landmarks"].double() - last["true_landmarks"].double(), dim=-1)
    assert training.evaluator.state.metrics["val_mre"] == pytest.approx(float(errors.mean()), rel=1e-6)
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert state["head.weight"].shape[:2] == (32, 8)

    out = tmp_path / "inference"
    inference = _workflow(
        ["inference.json", "afids3d.json"],
        "infer",
        tmp_path,
        dataset_dir=str(FIXTURE / "datalist.json"),
        output_dir=str(out),
        grid_size=[48, 56, 48],
        **{"network_def#features": [8, 16, 32, 64]},
    )
    _run(inference)
    stem = "tpl-MNI152NLin2009cAsym_res-04mm_T1w"
    result = json.loads((out / f"{stem}.json").read_text())
    slicer = json.loads((out / f"{stem}.mrk.json").read_text())
    assert slicer["markups"][0]["coordinateSystem"] == "RAS" and len(result["landmarks"]) == 32
    assert read_landmarks(out / f"{stem}.mrk.json", 32).coordinates.tolist() == [
        item["world"] for item in result["landmarks"]
    ]
    assert result["landmarks"][0]["name"] == "AC" and len(result["spacing"]) == 3
    assert not list(out.glob("*_overlay.png"))  # overlays are 2D only
    image = nib.load(FIXTURE / f"{stem}.nii.gz")
    for landmark in result["landmarks"]:  # pixel (voxel) and world agree through the NIfTI affine (RAS)
        world = image.affine @ np.array([*landmark["pixel"], 1.0])
        np.testing.assert_allclose(world[:3], landmark["world"], atol=1e-6)
