import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged, RandAffined, Resized
from PIL import Image

from bundle import GaussianHeatmapCodec
from bundle.handlers import LandmarkFiles
from bundle.handlers.overlay import circle_meets_picture
from bundle.transforms import (
    DecodeLandmarksd,
    GaussianHeatmapd,
    LandmarksToGridd,
    LoadLandmarksd,
    PixelSpacingd,
)

ISBI_POINT_PX = (835.0, 996.0)  # ISBI 2015 image 001, landmark 1 (sella), senior: x = column, y = row
ISBI_POINT_MM = (83.5, 99.6)


@pytest.fixture(scope="module")
def cephalogram_like(tmp_path_factory):
    """A 1935 x 2400 (width x height) PNG, dark but for a bright 5x5 block centred on (835, 996), and its landmark."""
    folder = tmp_path_factory.mktemp("ceph")
    pixels = np.zeros((2400, 1935), np.uint8)
    pixels[994:999, 833:838] = 255  # rows 994-998, columns 833-837
    Image.fromarray(pixels).save(folder / "001.png")
    (folder / "001.csv").write_text(f"name,x,y\nsella,{ISBI_POINT_MM[0]},{ISBI_POINT_MM[1]}\n")
    return {"image": str(folder / "001.png"), "landmarks": str(folder / "001.csv"), "spacing": [0.1, 0.1]}


def _load(entry, grid=None):
    transforms = [LoadImaged("image", ensure_channel_first=True, image_only=True), PixelSpacingd("image")]
    transforms.append(LoadLandmarksd("landmarks", num_landmarks=1))
    if grid is not None:
        transforms.append(Resized("image", spatial_size=grid, mode="bilinear", anti_aliasing=True))
    return Compose(transforms)(dict(entry))


def test_known_point_on_the_original_grid(cephalogram_like):
    d = LandmarksToGridd("landmarks")(_load(cephalogram_like))
    assert d["image"].shape == (1, 1935, 2400)  # MONAI's order: [x, y]
    assert d["image"][0, 835, 996] == 255
    torch.testing.assert_close(d["landmarks"], torch.tensor([ISBI_POINT_MM], dtype=torch.float64))
    torch.testing.assert_close(d["grid_landmarks"], torch.tensor([ISBI_POINT_PX], dtype=torch.float64))
    torch.testing.assert_close(d["image"].meta["source_affine"][:2, :2], torch.diag(torch.tensor([0.1, 0.1])).double())


def test_known_point_through_resize_heatmap_and_decode(cephalogram_like):
    d = LandmarksToGridd("landmarks")(_load(cephalogram_like, grid=(416, 512)))
    expected = [(835 + 0.5) * 416 / 1935 - 0.5, (996 + 0.5) * 512 / 2400 - 0.5]  # pixel-centre alignment
    torch.testing.assert_close(d["grid_landmarks"], torch.tensor([expected], dtype=torch.float64))
    d = GaussianHeatmapd("grid_landmarks", output_key="pred")(d)
    assert d["pred"].shape == (1, 416, 512)
    d = DecodeLandmarksd("pred")(d)
    torch.testing.assert_close(d["pred_pixels"], torch.tensor([ISBI_POINT_PX], dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(d["pred_landmarks"], d["landmarks"], atol=0.001, rtol=0)


def test_landmarks_follow_a_random_affine(cephalogram_like):
    d = _load(cephalogram_like, grid=(416, 512))
    augment = RandAffined("image", prob=1.0, rotate_range=0.5, scale_range=0.2, translate_range=20, mode="bilinear")
    for seed in range(3):
        augment.set_random_state(seed)
        moved = LandmarksToGridd("landmarks")(augment(dict(d)))
        image = moved["image"][0]
        weights = image.clamp_min(0) * (image > 0.25 * image.max())  # the bright block, resampled
        grid = torch.stack(torch.meshgrid(*[torch.arange(s) for s in image.shape], indexing="ij"), -1).float()
        centroid = (grid * weights[..., None]).sum((0, 1)) / weights.sum()
        assert (centroid.double() - moved["grid_landmarks"][0]).norm() < 0.3


def test_three_dimensional_nifti_round_trip(tmp_path):
    affine = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])  # RAS, 2 mm
    nib.save(nib.Nifti1Image(np.zeros((20, 24, 18), np.float32), affine), tmp_path / "t1.nii.gz")
    voxels = np.array([[5.3, 10.2, 7.7], [14.1, 3.6, 12.25]])
    world = (affine @ np.c_[voxels, np.ones(2)].T).T[:, :3]
    csv = "name,x,y,z\n" + "".join(f"p{i},{x},{y},{z}\n" for i, (x, y, z) in enumerate(world))
    (tmp_path / "t1.csv").write_text(csv)
    entry = {"image": str(tmp_path / "t1.nii.gz"), "landmarks": str(tmp_path / "t1.csv")}
    d = Compose(
        [
            LoadImaged("image", ensure_channel_first=True, image_only=True),
            PixelSpacingd("image"),
            LoadLandmarksd("landmarks", num_landmarks=2, spatial_dims=3),
            Resized("image", spatial_size=(16, 16, 16)),
            LandmarksToGridd("landmarks"),
            GaussianHeatmapd("grid_landmarks", GaussianHeatmapCodec(3, sigma=1.5), output_key="pred"),
            DecodeLandmarksd("pred"),
        ]
    )(entry)
    np.testing.assert_allclose(d["pred_pixels"].numpy(), voxels, atol=0.02)
    np.testing.assert_allclose(d["pred_landmarks"].numpy(), world, atol=0.05)


def test_spacing_errors_name_the_file(tmp_path, cephalogram_like):
    loaded = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": cephalogram_like["image"]})
    with pytest.raises(ValueError, match=r"001\.png: this format has no pixel spacing"):
        PixelSpacingd("image")(loaded)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "v.nii.gz")
    loaded = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": str(tmp_path / "v.nii.gz")})
    with pytest.raises(ValueError, match=r"v\.nii\.gz: datalist spacing \[1\.0, 1\.0, 1\.0\] disagrees"):
        PixelSpacingd("image")({**loaded, "spacing": [1.0, 1.0, 1.0]})
    PixelSpacingd("image")({**loaded, "spacing": [2.0, 2.0, 2.0]})  # agreeing spacing is fine


def test_save_landmarks_writes_pixels_world_and_confidence(tmp_path, cephalogram_like):
    d = LandmarksToGridd("landmarks")(_load(cephalogram_like, grid=(416, 512)))
    d = DecodeLandmarksd("pred")(GaussianHeatmapd("grid_landmarks", output_key="pred")(d))
    save = LandmarkFiles(output_dir=str(tmp_path / "out"), landmark_names=["sella"])
    save(d)
    result = json.loads((tmp_path / "out" / "001.json").read_text())
    assert result["image"].endswith("001.png") and result["spacing"] == pytest.approx([0.1, 0.1])
    assert result["spacing_source"] == "given" and result["orientation"] == "as_acquired"
    assert result["units"]["world"].startswith("mm") and result["units"]["pixel"].startswith("pixels")
    (landmark,) = result["landmarks"]
    assert landmark["name"] == "sella" and landmark["index"] == 0
    assert landmark["pixel"] == pytest.approx(list(ISBI_POINT_PX), abs=0.01)
    assert landmark["world"] == pytest.approx(list(ISBI_POINT_MM), abs=0.001)
    assert 0.9 < landmark["confidence"] <= 1.0
    with pytest.raises(FileExistsError):
        save(d)


def _overlay_case(tmp_path, image=None, **extra):
    affine = torch.diag(torch.tensor([0.3, 0.3, 1.0], dtype=torch.float64))
    if image is None:
        image = MetaTensor(torch.zeros(1, 200, 120), affine=affine, meta={"filename_or_obj": str(tmp_path / "c.png")})
        image.meta["spatial_shape"] = [200, 120]
    world = torch.tensor([[15.0, 9.0], [45.0, 27.0]], dtype=torch.float64)  # pixels (50, 30) and (150, 90)
    d = {"image": image, "pred_landmarks": world, "pred_pixels": world / 0.3, "pred_confidence": torch.ones(2)}
    LandmarkFiles(output_dir=str(tmp_path), landmark_names=["a", "b"])({**d, **extra})
    return np.asarray(Image.open(tmp_path / "c_overlay.png"))


def _colour(picture, rgb):
    return np.abs(picture.astype(int) - np.array(rgb)).sum(-1) < 30


def test_the_overlay_marks_each_landmark_where_it_is(tmp_path):
    from bundle.handlers.overlay import FLAGGED, NORMAL

    picture = _overlay_case(
        tmp_path,
        pred_review=torch.tensor([False, True]),
        pred_error_radius=torch.tensor([3.0, float("nan")]),  # mm: 10 pixels of 0.3 mm
    )
    assert picture.shape == (120, 200, 3)  # the original image's size (rows = y, columns = x)
    green, red = _colour(picture, NORMAL), _colour(picture, FLAGGED)
    assert green[30, 50] and red[90, 150]  # a dot on each point: flagged in red, the other in green
    assert green[30, 60] and green[30, 40] and not green[30, 45]  # landmark 0's radius: a ring of 10 pixels
    assert not red[90, 160] and not red[90, 140]  # no radius, no ring
    assert green[:40, :60].any() and red[10:, :60].any()  # the legend, top left, the flagged name in red


def test_the_overlay_shows_a_mirrored_view_as_the_file_is(tmp_path):
    from monai.transforms import Flip

    from bundle.handlers.overlay import NORMAL

    affine = torch.diag(torch.tensor([0.3, 0.3, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.zeros(1, 200, 120), affine=affine, meta={"filename_or_obj": str(tmp_path / "c.png")})
    image[0, 5, 110] = 1.0  # a bright pixel near the file's bottom-left corner
    image.meta["spatial_shape"], image.meta["source_affine"] = [200, 120], affine.clone()
    view = Flip(spatial_axis=0)(image)  # the mirrored view, as LandmarkDetector hands it on
    picture = _overlay_case(tmp_path, image=view, pred_review=torch.tensor([False, False]))
    assert picture[110, 5].min() > 200 and picture[110, 194].max() < 50  # the file's orientation, not the view's
    assert _colour(picture, NORMAL)[30, 50]  # and the landmarks where they are in the file


def test_the_overlay_keeps_the_original_size_up_to_a_limit(tmp_path):
    affine = torch.diag(torch.tensor([0.9, 0.9, 1.0], dtype=torch.float64))  # a 3x coarser copy in memory
    image = MetaTensor(torch.zeros(1, 200, 120), affine=affine, meta={"filename_or_obj": str(tmp_path / "c.png")})
    image.meta["spatial_shape"] = [600, 360]
    assert _overlay_case(tmp_path, image=image).shape == (360, 600, 3)
    image.meta["spatial_shape"] = [6000, 3600]
    (tmp_path / "c.json").unlink()
    for name in ("c.mrk.json", "c_overlay.png"):
        (tmp_path / name).unlink()
    assert _overlay_case(tmp_path, image=image).shape == (720, 1200, 3)  # overlay_size: 1200 on the long side


def test_default_spacing_serves_bare_image_paths_and_says_it_was_assumed(cephalogram_like, tmp_path, caplog):
    load = LoadImaged("image", ensure_channel_first=True, image_only=True)
    loaded = load({"image": cephalogram_like["image"]})
    spacing = PixelSpacingd("image", default_spacing=[0.1, 0.2])
    with caplog.at_level("WARNING"):
        d = spacing(dict(loaded))
        spacing(dict(loaded))
    torch.testing.assert_close(d["image"].affine[:2, :2], torch.diag(torch.tensor([0.1, 0.2])).double())
    assert d["image"].meta["spacing_source"] == "assumed"
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bundle")]
    assert len(ours) == 1 and "assuming [0.1, 0.2] mm per pixel" in ours[0]  # once per run, not once per image
    # a spacing the entry gives is not assumed, and wins over the default
    d = spacing({**load({"image": cephalogram_like["image"]}), "spacing": [0.3, 0.3]})
    assert d["image"].meta["spacing_source"] == "given" and float(d["image"].affine[0, 0]) == 0.3
    # a file with geometry keeps its own spacing: the default is never applied to it
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.diag([0.25, 0.25, 1.0, 1.0])), tmp_path / "x.nii.gz")
    d = PixelSpacingd("image", default_spacing=[0.1, 0.1])(load({"image": str(tmp_path / "x.nii.gz")}))
    assert d["image"].meta["spacing_source"] == "file"
    torch.testing.assert_close(d["image"].affine[:2, :2], torch.diag(torch.tensor([0.25, 0.25])).double())


def test_a_failure_while_saving_leaves_no_file_behind(tmp_path, cephalogram_like, monkeypatch):
    import bundle.handlers.files

    d = LandmarksToGridd("landmarks")(_load(cephalogram_like, grid=(416, 512)))
    d = DecodeLandmarksd("pred")(GaussianHeatmapd("grid_landmarks", output_key="pred")(d))

    def broken(image, points, output, **kwargs):
        output.write_bytes(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(bundle.handlers.files, "draw_overlay", broken)
    with pytest.raises(OSError, match="disk full"):
        LandmarkFiles(output_dir=str(tmp_path / "out"), landmark_names=["sella"])(d)
    assert list((tmp_path / "out").iterdir()) == []  # neither the JSON files nor their temporary copies


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_greyscale_drops_alpha_instead_of_averaging_it_in(tmp_path, mode):
    from bundle.transforms import AsGreyscaled

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (30, 40), dtype=np.uint8)
    alpha = rng.integers(0, 255, (30, 40), dtype=np.uint8)  # transparency, unrelated to the grey values
    planes = {"L": [grey], "LA": [grey, alpha], "RGB": [grey] * 3, "RGBA": [grey] * 3 + [alpha]}[mode]
    Image.fromarray(np.stack(planes, -1).squeeze(-1) if len(planes) == 1 else np.stack(planes, -1), mode).save(
        tmp_path / "x.png"
    )
    d = AsGreyscaled("image")(
        LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": str(tmp_path / "x.png")})
    )
    assert d["image"].shape == (1, 40, 30)  # MONAI's [x, y]
    np.testing.assert_allclose(d["image"][0].numpy(), grey.T.astype(np.float32))
    assert d["image"].meta["filename_or_obj"].endswith("x.png")


def test_one_codec_owns_the_heatmap_settings_of_targets_and_decoding():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(["configs/train.json", "configs/demo.json"])
    parser.update({"bundle_root": ".", "heatmap_codec#blur_sigma": 1.25, "sigma": 3.0})
    codec = parser.get_parsed_content("heatmap_codec")
    target = next(t for t in parser.get_parsed_content("make_target") if isinstance(t, GaussianHeatmapd))
    decoder = next(
        t for t in parser.get_parsed_content("validate#postprocessing").transforms if isinstance(t, DecodeLandmarksd)
    )
    assert target.codec is codec and decoder.codec is codec and (codec.blur_sigma, codec.sigma) == (1.25, 3.0)
    # a sigma set on the codec (e.g. adapted during training) reaches the very next target
    image = MetaTensor(torch.zeros(1, 32, 32))
    wide = target({"image": image, "grid_landmarks": torch.tensor([[16.0] * 2] * 6)})["label"]
    codec.sigma = torch.tensor([1.0] * 6)
    narrow = target({"image": image, "grid_landmarks": torch.tensor([[16.0] * 2] * 6)})["label"]
    assert float(wide[0, 16, 19]) == pytest.approx(np.exp(-9 / 18)) and float(narrow[0, 16, 19]) == pytest.approx(
        np.exp(-9 / 2)
    )


def test_decoding_refuses_a_non_finite_network_output_by_image_name():
    image = MetaTensor(
        torch.zeros(1, 8, 8), affine=torch.eye(3, dtype=torch.float64), meta={"filename_or_obj": "p.png"}
    )
    heatmaps = torch.zeros(2, 8, 8)
    heatmaps[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"p\.png: the network's output holds NaN or infinite values"):
        DecodeLandmarksd("pred")({"image": image, "pred": heatmaps})


@pytest.mark.parametrize(
    "x, y, r, meets",
    [
        (50, 40, 10, True),  # inside, small
        (50, 40, 60, True),  # reaches beyond every edge, not past the farthest corner (64 px away)
        (50, 40, 1e6, False),  # holds the whole picture: nothing of it is drawn
        (50, 40, math.hypot(50, 40), True),  # exactly through the farthest corner (0, 0)
        (-30, 40, 29, False),  # left of the picture, stops short of it
        (-30, 40, 31, True),
        (130, 90, 1e4, False),
    ],
)
def test_an_error_circle_is_drawn_only_where_it_crosses_the_picture(x, y, r, meets):
    """A wild guess's radius (thousands of pixels) took Pillow a minute per circle and showed nothing."""
    assert circle_meets_picture(x, y, r, (100, 80)) is meets
