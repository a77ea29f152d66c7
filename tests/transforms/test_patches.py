import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from bundle import GaussianHeatmapCodec
from bundle.geometry import map_points
from bundle.transforms import (
    GaussianHeatmapd,
    LandmarksToGridd,
    RandLandmarkPatchesd,
    ResampleToSpacingd,
    patch_affines,
    sample_patches,
)


def _ramp(shape, spacing, origin=None):
    """An image whose value at grid index i is a known linear function of i (interpolation reproduces it exactly)."""
    dims = len(shape)
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    if origin is not None:
        affine[:dims, dims] = torch.tensor(origin, dtype=torch.float64)
    axes = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in shape), indexing="ij")
    weights = [1000.0, 1.0, 0.001][:dims]
    values = sum(w * a for w, a in zip(weights, axes))
    return MetaTensor(values[None].float(), affine=affine, meta={"filename_or_obj": "ramp.png"}), weights


def _value(weights, index):
    return sum(w * i for w, i in zip(weights, index))


def test_a_patch_centre_lies_on_the_given_point_and_its_axes_follow_the_image():
    affine = torch.tensor([[0.0, -0.5, 7.0], [0.5, 0.0, -3.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # rotated
    affines = patch_affines(torch.tensor([[10.0, 12.0]]), [5, 7], 0.25, affine)
    centre = map_points(torch.tensor([[2.0, 3.0]]), affines[0])
    torch.testing.assert_close(centre, torch.tensor([[10.0, 12.0]], dtype=torch.float64))
    # the patch's columns: the image's direction cosines times the patch spacing
    torch.testing.assert_close(affines[0, :2, :2], affine[:2, :2] / 0.5 * 0.25)


def test_rotation_and_scale_of_a_patch():
    affines = patch_affines(
        torch.zeros(1, 2), [3, 3], 1.0, torch.eye(3), rotations=torch.tensor([math.pi / 2]), scales=torch.tensor([2.0])
    )
    # one step along the patch's first axis is 2 mm along world y after a +90 degree rotation
    step = map_points(torch.tensor([[2.0, 1.0]]), affines[0]) - map_points(torch.tensor([[1.0, 1.0]]), affines[0])
    torch.testing.assert_close(step, torch.tensor([[0.0, 2.0]], dtype=torch.float64), atol=1e-6, rtol=0)


def test_bad_patch_geometry_is_refused():
    with pytest.raises(ValueError, match="patch_size"):
        patch_affines(torch.zeros(1, 2), [5], 0.3, torch.eye(3))
    with pytest.raises(ValueError, match="spacing"):
        patch_affines(torch.zeros(1, 2), [5, 5], 0.0, torch.eye(3))


@pytest.mark.parametrize("dims", [2, 3])
def test_sampled_values_are_the_image_at_the_mapped_points(dims):
    shape, spacing = [20, 24, 18][:dims], [0.5, 0.25, 0.4][:dims]
    image, weights = _ramp(shape, spacing, origin=[3.0, -2.0, 1.0][:dims])
    centres = torch.tensor([[8.0, 1.0, 4.0], [6.1, 0.3, 3.3]], dtype=torch.float64)[:, :dims]
    size = [5, 7, 3][:dims]
    affines = patch_affines(centres, size, 0.2, image.affine)
    patches = sample_patches(image, image.affine, affines, size)
    assert patches.shape == (2, 1, *size)
    for n in range(2):
        for index in ([0] * dims, [s - 1 for s in size], [1, 2, 1][:dims]):
            world = map_points(torch.tensor([index], dtype=torch.float64), affines[n])
            grid = map_points(world, image.affine, invert=True)[0].tolist()
            expected = _value(weights, grid)
            assert patches[(n, 0, *index)].item() == pytest.approx(expected, abs=2e-3 * max(1.0, abs(expected)))


def test_one_call_for_many_patches_equals_one_call_per_patch():
    image, _ = _ramp([30, 40], [0.3, 0.3])
    centres = torch.tensor([[3.0, 4.0], [5.5, 9.1], [-1.0, 2.0]], dtype=torch.float64)
    rotations = torch.tensor([0.3, -0.2, 1.0])
    affines = patch_affines(centres, [9, 11], 0.2, image.affine, rotations=rotations)
    together = sample_patches(image, image.affine, affines, [9, 11])
    for n in range(3):
        alone = sample_patches(image, image.affine, affines[n : n + 1], [9, 11])
        torch.testing.assert_close(together[n : n + 1], alone)


def test_outside_the_image_is_zero():
    image, _ = _ramp([10, 10], [1.0, 1.0])
    affines = patch_affines(torch.tensor([[100.0, 100.0]]), [4, 4], 1.0, image.affine)
    assert sample_patches(image, image.affine, affines, [4, 4]).abs().max() == 0


def _blob_image(points_mm, shape, spacing, sigma_mm):
    """An image with a Gaussian blob of peak 1 and SD ``sigma_mm`` at each world point."""
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    grid = map_points(torch.as_tensor(points_mm, dtype=torch.float64), affine, invert=True).float()
    codec = GaussianHeatmapCodec(len(shape), truncate=6.0)
    blobs, _ = codec.encode(grid, shape, sigma=sigma_mm / spacing[0])
    return MetaTensor(blobs.amax(0, keepdim=True), affine=affine, meta={"filename_or_obj": "blobs.png"})


@pytest.mark.parametrize("dims", [2, 3])
def test_a_point_comes_back_through_a_patch(dims):
    from bundle.transforms import decode_patches

    point = torch.tensor([[4.37, 5.91, 3.23][:dims]], dtype=torch.float64)
    image = _blob_image(point, [40, 44, 36][:dims], [0.2] * dims, sigma_mm=0.6)
    affines = patch_affines(point + torch.tensor([0.9, -0.7, 0.4][:dims]), [24] * dims, 0.15, image.affine)
    patch = sample_patches(image, image.affine, affines, [24] * dims)
    world, confidence = decode_patches(patch[:, 0], affines, GaussianHeatmapCodec(dims))
    torch.testing.assert_close(world, point, atol=0.02, rtol=0)
    assert confidence.item() > 0.9


def _entry(landmarks, shape=(60, 70), spacing=(0.3, 0.3), name="a.png"):
    image = _blob_image(landmarks, list(shape), list(spacing), sigma_mm=0.6)
    image.meta["filename_or_obj"] = name
    return {"image": image, "landmarks": torch.as_tensor(landmarks, dtype=torch.float64)}


LANDMARKS = [[5.0, 6.0], [10.2, 12.9], [float("nan"), float("nan")], [15.0, 3.3]]


def _patches(**kwargs):
    settings = dict(keys="image", patch_size=[16, 16], spacing=0.3, offset_std_mm=1.0, max_offset_mm=1.5)
    return RandLandmarkPatchesd(**{**settings, **kwargs})


def test_one_patch_per_visible_landmark_with_its_index_and_a_bounded_offset():
    patches = _patches(rotate_range=0.3, scale_range=0.1)
    patches.set_random_state(0)
    samples = patches(_entry(LANDMARKS))
    assert [s["landmark_index"] for s in samples] == [0, 1, 3]
    for s in samples:
        k = s["landmark_index"]
        offset = s["patch_centre"] - torch.tensor(LANDMARKS[k], dtype=torch.float64)
        assert offset.abs().max() <= 1.5 + 1e-9 and offset.abs().max() > 0
        # the patch's affine puts its centre pixel at the drawn centre
        torch.testing.assert_close(map_points(torch.tensor([[7.5, 7.5]]), s["image"].affine)[0], s["patch_centre"])
        assert s["image"].shape == (1, 16, 16)


def test_the_target_of_a_patch_peaks_at_the_true_landmark():
    codec = GaussianHeatmapCodec(2)
    patches = _patches(rotate_range=0.5, scale_range=0.2)
    patches.set_random_state(1)
    for s in patches(_entry(LANDMARKS)):
        s = LandmarksToGridd("landmarks")(s)
        s = GaussianHeatmapd("grid_landmarks", codec=codec, output_key="label")(s)
        k = s["landmark_index"]
        found, _ = codec.decode(s["label"][k : k + 1])
        world = map_points(found.double(), s["image"].affine)
        torch.testing.assert_close(world[0], torch.tensor(LANDMARKS[k], dtype=torch.float64), atol=0.01, rtol=0)
        # and the image under it has its blob there too: the patch and its target agree
        image_found, _ = codec.decode(s["image"])
        assert (image_found - found).abs().max() < 0.15


def test_fixed_draws_depend_only_on_the_file_name():
    fixed = _patches(fixed=True)
    first = [s["patch_centre"] for s in fixed(_entry(LANDMARKS, name="a.png"))]
    fixed(_entry(LANDMARKS, name="b.png"))
    again = [s["patch_centre"] for s in fixed(_entry(LANDMARKS, name="a.png"))]
    other = [s["patch_centre"] for s in fixed(_entry(LANDMARKS, name="b.png"))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_random_draws_change_and_follow_the_offset_spread():
    patches = _patches(offset_std_mm=0.5, max_offset_mm=100.0)
    patches.set_random_state(0)
    landmarks = [[10.0, 10.0]] * 400
    offsets = torch.stack([s["patch_centre"] for s in patches(_entry(landmarks, shape=(80, 80)))]) - 10.0
    assert offsets.std().item() == pytest.approx(0.5, rel=0.1)
    assert abs(offsets.mean().item()) < 0.05
    again = torch.stack([s["patch_centre"] for s in patches(_entry(landmarks, shape=(80, 80)))]) - 10.0
    assert not torch.equal(offsets, again)


def test_bad_patch_settings_are_refused():
    with pytest.raises(ValueError):
        _patches(offset_std_mm=-1.0)
    with pytest.raises(ValueError):
        _patches(scale_range=1.0)


def test_resampling_to_a_spacing_averages_and_keeps_the_geometry():
    image, _ = _ramp([30, 21], [0.1, 0.1])
    fine = ResampleToSpacingd("image", spacing=0.3)({"image": image})["image"]
    assert fine.shape == (1, 10, 7)
    torch.testing.assert_close(fine[0, 0, 0], image[0, :3, :3].mean())
    # new pixel i is the centre of old pixels 3i..3i+2: old pixel 3i+1
    world = map_points(torch.tensor([[0.0, 0.0], [9.0, 6.0]]), fine.affine)
    torch.testing.assert_close(world, torch.tensor([[0.1, 0.1], [2.8, 1.9]], dtype=torch.float64))


def test_resampling_never_adds_pixels_and_handles_each_axis():
    image, _ = _ramp([30, 20], [0.1, 0.5])
    out = ResampleToSpacingd("image", spacing=0.3)({"image": image})["image"]
    assert out.shape == (1, 10, 20)  # x averaged 3x, y (already coarser) kept
    coarse, _ = _ramp([30, 20], [0.5, 0.5])
    assert ResampleToSpacingd("image", spacing=0.3)({"image": coarse})["image"] is coarse
    with pytest.raises(ValueError, match="spacing"):
        ResampleToSpacingd("image", spacing=0)


def test_a_landmark_keeps_its_world_position_through_the_resampling():
    point = [[4.53, 3.37]]
    image = _blob_image(point, [90, 80], [0.1, 0.1], sigma_mm=0.8)
    fine = ResampleToSpacingd("image", spacing=0.3)({"image": image})["image"]
    found, _ = GaussianHeatmapCodec(2, blur_sigma=0).decode(fine)
    world = map_points(found.double(), fine.affine)
    np.testing.assert_allclose(world.numpy(), point, atol=0.01)


def test_a_patch_decodes_to_its_own_landmark_only():
    from bundle.transforms import DecodePatchLandmarkd

    codec = GaussianHeatmapCodec(2)
    (sample,) = [s for s in _patches(fixed=True)(_entry(LANDMARKS)) if s["landmark_index"] == 1]
    sample = LandmarksToGridd("landmarks")(sample)
    sample = GaussianHeatmapd("grid_landmarks", codec=codec, output_key="pred")(sample)
    out = DecodePatchLandmarkd("pred", codec=codec)(sample)
    finite = torch.isfinite(out["pred_landmarks"]).all(1)
    assert finite.tolist() == [False, True, False, False]
    assert torch.isfinite(out["true_landmarks"]).all(1).tolist() == [False, True, False, False]
    torch.testing.assert_close(
        out["pred_landmarks"][1], torch.tensor(LANDMARKS[1], dtype=torch.float64), atol=1e-3, rtol=0
    )


def _refiner_inputs(tmp_path):
    from tests.stubs import PatchEchoNetwork

    truth = torch.tensor([[5.0, 6.0], [10.2, 12.9], [15.0, 3.3]], dtype=torch.float64)
    fine = _blob_image(truth, [60, 70], [0.3, 0.3], sigma_mm=0.6)
    fine.meta["source_affine"] = torch.diag(torch.tensor([0.1, 0.1, 1.0], dtype=torch.float64))
    coarse = truth + torch.tensor([[1.0, -1.2], [-0.8, 0.5], [0.3, 1.4]], dtype=torch.float64)
    data = {"fine_image": fine, "pred_landmarks": coarse, "pred_pixels": coarse / 0.1, "pred_confidence": torch.ones(3)}
    network = PatchEchoNetwork(3)
    torch.save(network.state_dict(), tmp_path / "refiner.pt")
    return truth, coarse, data, network


def test_refinement_moves_each_landmark_onto_its_blob(tmp_path):
    from bundle.transforms import RefineLandmarksd

    truth, coarse, data, network = _refiner_inputs(tmp_path)
    refine = RefineLandmarksd("fine_image", network, GaussianHeatmapCodec(2), [32, 32], 0.25, tmp_path / "refiner.pt")
    out = refine(data)
    torch.testing.assert_close(out["pred_landmarks"], truth, atol=0.02, rtol=0)
    torch.testing.assert_close(out["pred_pixels"], out["pred_landmarks"] / 0.1)  # through the source affine
    torch.testing.assert_close(out["coarse_landmarks"], coarse)
    assert out["pred_confidence"].shape == (3,) and bool((out["pred_confidence"] > 0.8).all())
    # the first stage's features are kept beside the refiner's, and each proposed move is measured
    torch.testing.assert_close(out["coarse_confidence"], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(
        out["refine_move_mm"], torch.linalg.vector_norm(coarse - truth, dim=-1), atol=0.02, rtol=0
    )
    assert not out["refine_rejected"].any()


def test_a_move_beyond_the_refiners_range_keeps_the_first_stages_point_and_says_how_far_it_was(tmp_path):
    from bundle.transforms import RefineLandmarksd

    truth, coarse, data, network = _refiner_inputs(tmp_path)
    refine = RefineLandmarksd(
        "fine_image", network, GaussianHeatmapCodec(2), [32, 32], 0.25, tmp_path / "refiner.pt", max_move_mm=1.3
    )
    out = refine(data)
    moves = torch.linalg.vector_norm(coarse - truth, dim=-1)  # 1.56, 0.94, 1.43 mm
    assert out["refine_rejected"].tolist() == [True, False, True]
    torch.testing.assert_close(out["refine_move_mm"], moves, atol=0.02, rtol=0)
    torch.testing.assert_close(out["pred_landmarks"][[0, 2]], coarse[[0, 2]])
    torch.testing.assert_close(out["pred_landmarks"][1], truth[1], atol=0.02, rtol=0)
    # a kept first-stage point keeps the first stage's features, which set its radius; the accepted one has the refiner's
    first = {"confidence": torch.tensor([0.3, 0.4, 0.5]), "spread": torch.tensor([2.5, 2.6, 2.7])}
    out = refine({**data, "pred_confidence": first["confidence"], "pred_spread": first["spread"]})
    for name in ("confidence", "spread"):
        torch.testing.assert_close(out[f"pred_{name}"][[0, 2]], first[name][[0, 2]].double())
        torch.testing.assert_close(out[f"coarse_{name}"], first[name].double())
    assert out["pred_confidence"][1] > 0.8 and out["pred_spread"][1] < 1.0
    # without the first stage's features, a kept point's are unknown (NaN: the widest radius), never the refiner's
    no_spread = refine(data)
    assert torch.isnan(no_spread["pred_spread"][[0, 2]]).all() and torch.isfinite(no_spread["pred_spread"][1])


def test_refinement_refuses_missing_weights_a_wrong_network_and_broken_output(tmp_path):
    from bundle.transforms import RefineLandmarksd
    from tests.stubs import PatchEchoNetwork

    _, _, data, network = _refiner_inputs(tmp_path)
    codec = GaussianHeatmapCodec(2)
    with pytest.raises(FileNotFoundError, match="--refine false"):
        RefineLandmarksd("fine_image", network, codec, [32, 32], 0.25, tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="4 channels for 3 landmarks"):
        RefineLandmarksd("fine_image", PatchEchoNetwork(4), codec, [32, 32], 0.25)(data)
    with torch.no_grad():
        network.anchor.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        RefineLandmarksd("fine_image", network, codec, [32, 32], 0.25)(data)


def test_rotations_and_scales_spread_over_their_ranges():
    patches = _patches(rotate_range=0.3, scale_range=0.2)
    patches.set_random_state(0)
    samples = patches(_entry([[10.0, 10.0]] * 400, shape=(80, 80)))
    linear = torch.stack([s["image"].affine[:2, :2] for s in samples])  # spacing * scale * rotation
    scales = torch.linalg.vector_norm(linear[:, :, 0], dim=1) / 0.3
    angles = torch.atan2(linear[:, 1, 0], linear[:, 0, 0])
    assert 0.8 <= float(scales.min()) < 0.85 and 1.15 < float(scales.max()) <= 1.2
    assert -0.3 <= float(angles.min()) < -0.25 and 0.25 < float(angles.max()) <= 0.3
    assert abs(float(angles.mean())) < 0.03 and abs(float(scales.mean()) - 1) < 0.02
    assert all(s["image"].meta["filename_or_obj"] == "a.png" for s in samples)  # the patch keeps its image's name


def test_patches_of_a_volume_are_centred_and_rotated_about_three_axes():
    truth = [[4.0, 5.0, 3.5], [6.2, 3.9, 4.4]]
    image = _blob_image(truth, [40, 36, 30], [0.25, 0.25, 0.25], sigma_mm=0.5)
    patches = RandLandmarkPatchesd("image", [16, 14, 12], 0.2, offset_std_mm=0.3, rotate_range=0.3, scale_range=0.1)
    patches.set_random_state(0)
    codec = GaussianHeatmapCodec(3)
    samples = patches({"image": image, "landmarks": torch.tensor(truth, dtype=torch.float64)})
    assert len(samples) == 2
    for s in samples:
        assert s["image"].shape == (1, 16, 14, 12)
        centre = map_points(torch.tensor([[7.5, 6.5, 5.5]]), s["image"].affine)[0]
        torch.testing.assert_close(centre, s["patch_centre"])
        linear = s["image"].affine[:3, :3]
        assert not torch.allclose(linear, torch.diag(torch.diagonal(linear)))  # rotated off the image's axes
        found, _ = codec.decode(s["image"])
        world = map_points(found.double(), s["image"].affine)[0]
        torch.testing.assert_close(
            world, torch.tensor(truth[s["landmark_index"]], dtype=torch.float64), atol=0.05, rtol=0
        )


def test_sampling_refuses_sizes_or_affines_of_other_dimensions():
    image, _ = _ramp([10, 10], [1.0, 1.0])
    affines = patch_affines(torch.zeros(1, 2), [4, 4], 1.0, image.affine)
    with pytest.raises(ValueError, match="2 patch sizes"):
        sample_patches(image, image.affine, affines, [4, 4, 4])
    with pytest.raises(ValueError, match="affines"):
        sample_patches(image, image.affine, torch.eye(4)[None], [4, 4])
