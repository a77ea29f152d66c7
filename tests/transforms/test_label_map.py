import json

import numpy as np
import pytest
import torch
from monai.transforms import Compose, LoadImaged, Resized
from PIL import Image

from bundle.handlers import LandmarkFiles
from bundle.transforms import (
    DecodeLandmarksd,
    GaussianHeatmapd,
    LandmarkLabelMapd,
    LandmarkResultd,
    LandmarksToGridd,
    LoadLandmarksd,
    PixelSpacingd,
)
from bundle.transforms.label_map import landmark_label_map


def test_a_disk_of_value_k_plus_one_round_in_millimetres():
    labels = landmark_label_map(np.array([[10.0, 20.0], [40.0, 5.0]]), (50, 30), spacing=(0.5, 1.0), radius_mm=2.0)
    assert labels.shape == (50, 30) and labels.dtype == np.uint8
    assert labels[10, 20] == 1 and labels[40, 5] == 2
    # 2 mm = 4 pixels along x (0.5 mm/px), 2 pixels along y (1 mm/px)
    assert labels[14, 20] == 1 and labels[15, 20] == 0
    assert labels[10, 22] == 1 and labels[10, 23] == 0
    assert (labels == 1).sum() == sum(1 for i in range(-4, 5) for j in range(-2, 3) if (i / 4) ** 2 + (j / 2) ** 2 <= 1)
    assert set(np.unique(labels)) == {0, 1, 2}


def test_disks_closer_than_two_radii_shrink_to_half_the_distance_so_each_stays_whole_about_its_landmark():
    pixels = np.array([[10.0, 10.0], [14.0, 10.0], [25.0, 25.0]])
    labels = landmark_label_map(pixels, (40, 40), spacing=(1.0, 1.0), radius_mm=5.0)
    # the first two are 4 mm apart: disks of just under 2 mm, the midpoint in neither
    assert labels[10, 10] == 1 and labels[14, 10] == 2 and labels[9, 10] == 1 and labels[8, 10] == 0
    assert labels[15, 10] == 2 and labels[16, 10] == 0 and labels[12, 10] == 0
    # the third is far from both: its full 5 mm disk
    assert labels[30, 25] == 3 and labels[31, 25] == 0
    # every disk's centroid is its landmark (the reading of a label image)
    for k, point in enumerate(pixels):
        np.testing.assert_allclose(np.argwhere(labels == k + 1).mean(0), point, atol=1e-9)
    # the same layout with the first two landmarks swapped gives the same disks, their values swapped
    swapped = landmark_label_map(pixels[[1, 0, 2]], (40, 40), spacing=(1.0, 1.0), radius_mm=5.0)
    np.testing.assert_array_equal(swapped, np.choose(labels, [0, 2, 1, 3]))


def test_the_gap_between_landmarks_is_measured_in_millimetres():
    """8 pixels apart along x at 0.5 mm per pixel: 4 mm, so disks of just under 2 mm (3.9 pixels along x, 1.9 along
    y), not the 5 mm a gap in pixels would allow."""
    pixels = np.array([[10.0, 10.0], [18.0, 10.0]])
    labels = landmark_label_map(pixels, (40, 40), spacing=(0.5, 1.0), radius_mm=5.0)
    assert labels[13, 10] == 1 and labels[14, 10] == 0 and labels[15, 10] == 2
    assert labels[10, 11] == 1 and labels[10, 12] == 0
    for k, point in enumerate(pixels):
        np.testing.assert_allclose(np.argwhere(labels == k + 1).mean(0), point, atol=1e-9)


def test_tiny_radius_still_marks_the_centre_pixel_and_3d_is_a_ball():
    labels = landmark_label_map(np.array([[3.2, 4.6, 1.0]]), (8, 8, 4), spacing=(1.0, 1.0, 1.0), radius_mm=0.01)
    assert labels[3, 5, 1] == 1 and (labels > 0).sum() == 1
    # a radius below the voxel size, and a centre 0.4 voxels off on every axis: the nearest voxel still shows it
    coarse = landmark_label_map(np.array([[2.4, 2.4, 2.4]]), (5, 5, 5), spacing=(4.0, 4.0, 4.0), radius_mm=1.5)
    assert coarse[2, 2, 2] == 1 and (coarse > 0).sum() == 1
    ball = landmark_label_map(np.array([[5.0, 5.0, 5.0]]), (11, 11, 11), spacing=(1.0, 1.0, 1.0), radius_mm=2.0)
    assert (ball > 0).sum() == sum(
        1 for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3) if i * i + j * j + k * k <= 4
    )


def test_two_landmarks_on_one_pixel_mark_it_with_the_first():
    labels = landmark_label_map(np.array([[10.0, 10.0], [10.2, 10.0]]), (30, 30), spacing=(1.0, 1.0), radius_mm=3.0)
    assert labels[10, 10] == 1 and (labels > 0).sum() == 1


def test_invisible_and_outside_landmarks_are_left_out_and_many_landmarks_widen_the_type():
    labels = landmark_label_map(np.array([[np.nan, np.nan], [-50.0, 3.0], [3.0, 3.0]]), (8, 8), (1.0, 1.0), 1.0)
    assert set(np.unique(labels)) == {0, 3}
    many = landmark_label_map(np.stack([np.arange(300.0), np.zeros(300)], 1), (300, 4), (1.0, 1.0), 0.4)
    assert many.dtype == np.uint16 and many[299, 0] == 300
    # uint8 holds 255 landmarks; the 256th needs uint16
    assert landmark_label_map(np.zeros((255, 2)), (4, 4), (1.0, 1.0), 1.0).dtype == np.uint8
    assert landmark_label_map(np.zeros((256, 2)), (4, 4), (1.0, 1.0), 1.0).dtype == np.uint16


@pytest.mark.parametrize("bad", [{"radius_mm": 0.0}, {"pixels": np.zeros((2, 3))}, {"spacing": (1.0,)}])
def test_bad_arguments_are_refused(bad):
    args = {"pixels": np.zeros((2, 2)), "shape": (8, 8), "spacing": (1.0, 1.0), "radius_mm": 1.0, **bad}
    with pytest.raises(ValueError):
        landmark_label_map(**args)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """A 300 x 200 PNG (x = 300 columns) at 0.2 mm/px with one landmark at pixel (123, 45), decoded on a 64 x 64 grid."""
    folder = tmp_path_factory.mktemp("label")
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(folder / "img.png")
    (folder / "img.csv").write_text("name,x,y\np,24.6,9.0\n")
    entry = {"image": str(folder / "img.png"), "landmarks": str(folder / "img.csv"), "spacing": [0.2, 0.2]}
    load = Compose(
        [
            LoadImaged("image", ensure_channel_first=True, image_only=True),
            PixelSpacingd("image"),
            LoadLandmarksd("landmarks", num_landmarks=1),
            Resized("image", spatial_size=(64, 64)),
            LandmarksToGridd("landmarks"),
            GaussianHeatmapd("grid_landmarks", output_key="pred"),
            DecodeLandmarksd("pred"),
        ]
    )
    return load(entry), folder


def test_label_image_lies_on_the_original_grid_with_the_original_affine(decoded):
    d, _ = decoded
    out = LandmarkLabelMapd("pred_pixels", radius_mm=1.0)(d)
    label = out["label"]
    assert out["pred"] is label and tuple(label.shape) == (300, 200) and label.dtype == torch.uint8
    assert label[123, 45] == 1 and label[127, 45] == 1 and label[129, 45] == 0  # 1 mm = 5 pixels
    torch.testing.assert_close(label.affine.double(), d["image"].meta["source_affine"].double())
    torch.testing.assert_close(label.affine[:2, :2].double(), torch.diag(torch.tensor([0.2, 0.2])).double())
    assert out["result_extension"] == ".nii.gz"
    default = LandmarkLabelMapd("pred_pixels")(d)["label"]  # 1.5 mm = 7.5 pixels
    assert default[130, 45] == 1 and default[131, 45] == 0


def test_an_asked_extension_is_kept_and_a_lossy_one_refused(decoded):
    d, _ = decoded
    assert LandmarkLabelMapd("pred_pixels")({**d, "result_extension": ".nrrd"})["result_extension"] == ".nrrd"
    with pytest.raises(ValueError, match=r"img\.png: a label image cannot be saved as \.jpg"):
        LandmarkLabelMapd("pred_pixels")({**d, "result_extension": ".jpg"})
    image = d["image"].clone()
    image.meta.pop("spatial_shape")  # without the shape as loaded, the original grid is unknown
    with pytest.raises(ValueError, match=r"img\.png: no meta\['spatial_shape'\]"):
        LandmarkLabelMapd("pred_pixels")({**d, "image": image})
    for radius in (float("nan"), 0.0):
        with pytest.raises(ValueError, match="radius_mm"):
            LandmarkLabelMapd("pred_pixels", radius_mm=radius)


def test_the_result_record_is_the_json_file_that_inference_writes(decoded, tmp_path):
    d, _ = decoded
    record = LandmarkResultd("pred_landmarks", landmark_names=["p"])(d)["result"]
    LandmarkFiles(output_dir=str(tmp_path), landmark_names=["p"], overlay=False)(d)
    assert json.loads(json.dumps(record)) == json.loads((tmp_path / "img.json").read_text())
    (landmark,) = record["landmarks"]
    assert landmark["pixel"] == pytest.approx([123.0, 45.0], abs=0.05) and record["spacing"] == pytest.approx(
        [0.2, 0.2]
    )


def test_a_slicer_markup_placed_on_a_picture_reads_as_its_pixel(decoded, tmp_path):
    _, folder = decoded
    # what Slicer saves for a point placed on pixel (123, 45) of img.png, which it shows at 1 mm per pixel (LPS)
    markup = {
        "markups": [{"coordinateSystem": "LPS", "controlPoints": [{"label": "p", "position": [123.0, 45.0, 0.0]}]}]
    }
    (tmp_path / "img.mrk.json").write_text(json.dumps(markup))
    entry = {"image": str(folder / "img.png"), "landmarks": str(tmp_path / "img.mrk.json")}
    load = Compose(
        [
            LoadImaged("image", ensure_channel_first=True, image_only=True),
            PixelSpacingd("image", default_spacing=[0.2, 0.2]),
            LoadLandmarksd("landmarks", num_landmarks=1),
        ]
    )
    np.testing.assert_allclose(load(entry)["landmarks"].numpy(), [[24.6, 9.0]], atol=1e-9)  # world mm at 0.2 mm/px


def test_inference_writes_the_picture_markups_in_slicers_frame(decoded, tmp_path):
    d, _ = decoded
    LandmarkFiles(output_dir=str(tmp_path), landmark_names=["p"], overlay=False)(d)
    (point,) = json.loads((tmp_path / "img.mrk.json").read_text())["markups"][0]["controlPoints"]
    np.testing.assert_allclose(point["position"], [-123.0, -45.0, 0.0], atol=0.05)  # RAS of pixel (123, 45)
