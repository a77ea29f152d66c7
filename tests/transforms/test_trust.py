"""The trust transforms: shape-checked decoding, orientation, an estimated spacing, error radii and review flags."""

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from bundle.geometry import map_points
from bundle.shape import ShapeModel
from bundle.transforms import (
    DetectLandmarksd,
    ErrorRadiusd,
    FitToGridd,
    FlagLandmarksd,
    LandmarkDetector,
    PlausibleLandmarksd,
    ReviewRiskd,
    orient,
)
from bundle.uncertainty import RAW, ErrorCalibration, MissRisk
from tests.shape.test_model import BASE, _population

NAMES = [f"p{k}" for k in range(len(BASE))]


@pytest.fixture(scope="module")
def model() -> ShapeModel:
    return ShapeModel.fit(_population(300, 0), NAMES, modes=4)


def _grid(spacing: float = 1.0, shape=(160, 160), source: str = "given") -> MetaTensor:
    affine = torch.diag(torch.tensor([spacing, spacing, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.zeros(1, *shape), affine=affine, meta={"filename_or_obj": "x.png"})
    image.meta.update(source_affine=affine.clone(), spacing_source=source, spatial_shape=list(shape))
    return image


def _decoded(points: np.ndarray, image: MetaTensor, candidates: np.ndarray | None = None) -> dict:
    world = torch.as_tensor(points, dtype=torch.float64)
    d = {"image": image, "pred_landmarks": world, "pred_confidence": torch.full((len(points),), 0.8)}
    d["pred_pixels"] = map_points(world, image.meta["source_affine"], invert=True)
    if candidates is not None:
        d["pred_candidates"] = torch.as_tensor(candidates, dtype=torch.float64)
        scores = np.where(np.isfinite(candidates).all(-1), 0.3, 0.0)
        scores[:, 0] = 0.8
        d["pred_candidate_scores"] = torch.as_tensor(scores)
    return d


def test_decoding_takes_the_plausible_peak_and_sends_the_refiner_where_a_landmark_should_be(model):
    shape = _population(1, 20)[0] + 60.0
    candidates = np.full((len(BASE), 2, 2), np.nan)
    candidates[:, 0] = shape
    candidates[3, 0] = shape[3] + [35.0, 0.0]  # a look-alike 35 mm away is the strongest peak
    candidates[3, 1] = shape[3] + [0.4, 0.3]
    candidates[6, 0] = shape[6] + [0.0, 40.0]  # no candidate anywhere near: searched again where expected
    select = PlausibleLandmarksd("pred_landmarks", model, noise_mm=1.5, choose=True, reseek=True)
    d = select(_decoded(candidates[:, 0], _grid(), candidates))
    assert d["shape_plausible"] and torch.equal(d["shape_reseek"], torch.tensor([k == 6 for k in range(8)]))
    np.testing.assert_allclose(d["pred_landmarks"][3].numpy(), shape[3] + [0.4, 0.3])
    assert np.linalg.norm(d["pred_landmarks"][6].numpy() - shape[6]) < 8.0 and float(d["pred_confidence"][6]) == 0
    torch.testing.assert_close(d["pred_pixels"], d["pred_landmarks"])  # 1 mm pixels, origin 0


def test_a_later_judgement_needs_the_first_one_to_hold(model):
    shape = _population(1, 21)[0] + 60.0
    check = PlausibleLandmarksd("pred_landmarks", model, noise_mm=1.0)
    assert check(_decoded(shape, _grid()))["shape_plausible"]
    assert not check({**_decoded(shape, _grid()), "shape_plausible": False})["shape_plausible"]
    with pytest.raises(ValueError, match="has 8 landmarks, the network 19"):
        PlausibleLandmarksd("pred_landmarks", model, num_landmarks=19)


def test_a_shape_model_file_of_another_landmark_count_is_an_error_naming_both(model, tmp_path):
    model.save(tmp_path / "shape_model.json")
    with pytest.raises(ValueError, match="the shape model has 8 landmarks, the network 19"):
        PlausibleLandmarksd("pred_landmarks", str(tmp_path / "shape_model.json"), num_landmarks=19)


@pytest.mark.parametrize("orientation", ["mirrored", "rotated_90", "rotated_180", "rotated_270"])
def test_each_orientation_is_undone_with_the_affine_following(orientation):
    image = _grid(0.5, (40, 60))
    image[0, 3, 7] = 1.0
    view = orient(image, orientation)
    where = torch.nonzero(view[0] == 1.0)[0].double()
    torch.testing.assert_close(
        map_points(where[None], view.affine), map_points(torch.tensor([[3.0, 7.0]]), image.affine)
    )
    assert orient(image, "as_acquired") is image
    with pytest.raises(ValueError, match="rotation of a 2D image"):
        orient(MetaTensor(torch.zeros(1, 4, 4, 4)), "rotated_90")


class _Judge:
    """A stand-in for the shape judgement: the configuration as it was, and the shape model's population size."""

    def __init__(self, model=None):
        self.model = model

    def __call__(self, d):
        return d


class _Views(LandmarkDetector):
    """A first stage whose answer is plausible only on one view (told by the view's affine: a flip reflects)."""

    def __init__(self, plausible_on: str, orientations=("mirrored", "rotated_180", "rotated_90", "rotated_270")):
        super().__init__(torch.nn.Linear(1, 1), [], [], judge=_Judge(), orientations=orientations)
        self.plausible_on, self.calls = plausible_on, []

    def pass_on(self, d, view):
        flipped = bool(torch.linalg.det(view.affine[:2, :2]) < 0)
        name = "mirrored" if flipped else "other"
        self.calls.append(name)
        ok = name == self.plausible_on
        return {**d, "image": view, "shape_plausible": ok, "shape_inliers": 8 if ok else 2,
                "shape_implausible": torch.zeros(8, dtype=torch.bool) if ok else torch.ones(8, dtype=torch.bool)}  # fmt: skip


def test_an_implausible_image_is_tried_in_other_orientations_and_kept_as_found():
    stage = _Views("mirrored", orientations=["rotated_180", "mirrored", "rotated_90"])
    d = {"fine_image": _grid(), "shape_plausible": False, "shape_inliers": 2, "shape_implausible": torch.ones(8)}
    out = DetectLandmarksd("fine_image", stage)(d)
    assert out["orientation"] == "mirrored" and stage.calls == ["other", "mirrored"]  # stops at a plausible view
    assert float(out["fine_image"].affine[0, 0]) < 0  # the refiner cuts its patches from the view


def test_a_plausible_image_costs_nothing_and_no_plausible_view_keeps_the_image_as_acquired():
    stage = _Views("mirrored")
    plausible = {"fine_image": _grid(), "shape_plausible": True, "shape_implausible": torch.zeros(8)}
    assert stage.detect(plausible)["orientation"] == "as_acquired" and stage.calls == []
    nowhere = _Views("nowhere")
    d = {"fine_image": _grid(), "shape_plausible": False, "shape_inliers": 3, "shape_implausible": torch.ones(8)}
    out = nowhere.detect(d)
    assert out["orientation"] == "as_acquired" and out["fine_image"] is d["fine_image"] and len(nowhere.calls) == 4
    with pytest.raises(ValueError, match="unknown orientations"):
        _Views("mirrored", orientations=["upside_down"])


class _Rerun(LandmarkDetector):
    """A first stage that records its calls and answers with the view's own grid."""

    def __init__(self, to_grid, model):
        super().__init__(torch.nn.Linear(1, 1), to_grid, [], judge=_Judge(model))
        self.calls = 0

    def pass_on(self, d, view):
        self.calls += 1
        out = dict(d)
        out["image"] = view
        for transform in self.to_grid:
            out = transform(out)
        return out


def _assumed_case(model, tmp_path, size_factor: float, fine_shape=(667, 667)):
    """A configuration of ``size_factor`` times the population's mean size (in the assumed mm), on a fine image that
    fits the grid at its 1.25 mm (200 mm across at the assumed 0.3 mm)."""
    model.save(tmp_path / "shape.json")
    fine = _grid(0.3, fine_shape, source="assumed")
    to_grid = [FitToGridd("image", [160, 160], grid_spacing=1.25)]
    grid = to_grid[0]({"image": fine})["image"]
    shape = model.mean * model.size_mean * size_factor + 100.0  # the mean shape, scaled
    d = {**_decoded(shape, grid), "fine_image": fine, "shape_plausible": True, "shape_size": None}
    d["shape_size"] = model.fit_configuration(shape, noise_mm=0).size
    return d, to_grid


def test_an_unknown_spacing_is_estimated_from_the_anatomys_size(model, tmp_path):
    d, to_grid = _assumed_case(model, tmp_path, size_factor=1.02)  # the anatomy looks 2 % larger than average
    d["pred_spread"] = torch.full((8,), 2.0, dtype=torch.float64)  # mm, as the heatmap's width was measured
    stage = _Rerun(to_grid, model)
    out = stage.find_spacing(d, "fine_image")
    factor = model.size_mean / d["shape_size"]
    assert (
        out["fine_image"].meta["spacing_source"] == "estimated" and out["image"].meta["spacing_source"] == "estimated"
    )
    assert float(out["fine_image"].affine[0, 0]) == pytest.approx(0.3 * factor)
    assert stage.calls == 0  # a 2 % change of scale: relabelled, not run again
    torch.testing.assert_close(out["pred_landmarks"], d["pred_landmarks"] * factor)
    torch.testing.assert_close(out["pred_spread"], d["pred_spread"] * factor)  # a width in mm scales with them
    pixels = map_points(out["pred_landmarks"], out["image"].meta["source_affine"], invert=True)
    torch.testing.assert_close(pixels, d["pred_pixels"])  # the same pixels, other millimetres


def test_a_spacing_far_from_the_assumption_runs_the_first_stage_again(model, tmp_path):
    d, to_grid = _assumed_case(model, tmp_path, size_factor=1.25)
    stage = _Rerun(to_grid, model)
    out = stage.detect(d)  # plausible as acquired: no other view, but the spacing
    assert stage.calls == 1 and out["image"].meta["spacing_source"] == "estimated"


def test_a_known_spacing_or_an_implausible_image_keeps_its_spacing(model, tmp_path):
    d, to_grid = _assumed_case(model, tmp_path, size_factor=1.25)
    stage = _Rerun(to_grid, model)
    out = stage.find_spacing({**d, "shape_plausible": False}, "fine_image")
    assert out["fine_image"].meta["spacing_source"] == "assumed" and stage.calls == 0
    known = _grid(0.3, (667, 667), source="given")
    assert stage.find_spacing({**d, "fine_image": known}, "fine_image")["fine_image"] is known
    without = LandmarkDetector(torch.nn.Linear(1, 1), to_grid, [], judge=_Judge(model), estimate_spacing=False)
    assert without.detect(d)["fine_image"] is d["fine_image"]  # the switch holds
    untrusting = LandmarkDetector(torch.nn.Linear(1, 1), to_grid, [], judge=None)
    out = untrusting.detect({**d, "shape_plausible": False})  # --trust false: no judgement, no search
    assert out["orientation"] == "as_acquired" and out["fine_image"] is d["fine_image"]


def test_error_radii_come_from_the_calibration_or_are_null_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(0)
    features = np.stack([rng.uniform(0.5, 2, (30, 8)), np.full((30, 8), 0.5)], -1)
    calibration = ErrorCalibration.fit(np.abs(rng.normal(size=(30, 8))) * features[..., 0], features)
    calibration.save(tmp_path / "calibration.json", "both_stages")
    d = {"pred_landmarks": torch.zeros(8, 2), "pred_spread": torch.full((8,), 1.0), "pred_confidence": torch.ones(8)}
    out = ErrorRadiusd("pred_landmarks", str(tmp_path / "calibration.json"), coverage=0.9)(d)
    expected = calibration.radius(np.stack([np.ones(8), np.ones(8)], -1), 0.9)
    np.testing.assert_allclose(out["pred_error_radius"].numpy(), expected)
    assert out["error_radius_coverage"] == 0.9
    assert not out["pred_features_not_finite"].any()
    broken = {**d, "pred_spread": torch.tensor([1.0, float("nan")] + [1.0] * 6)}
    wide = ErrorRadiusd("pred_landmarks", str(tmp_path / "calibration.json"), coverage=0.9)(broken)
    assert wide["pred_features_not_finite"].tolist() == [False, True] + [False] * 6
    assert wide["pred_error_radius"][1] == pytest.approx(calibration.quantiles[0.9] * calibration.widest[1])
    assert wide["pred_error_radius"][1] > out["pred_error_radius"][1]
    flagged = FlagLandmarksd("pred_landmarks")(
        {**wide, "image": _grid(1.0, (20, 20)), "pred_pixels": torch.full((8, 2), 5.0, dtype=torch.float64)}
    )
    assert flagged["pred_review_reasons"][1] == ["features_not_finite"] and flagged["pred_review"].sum() == 1
    with caplog.at_level(logging.WARNING):
        none = ErrorRadiusd("pred_landmarks", str(tmp_path / "missing.json"))(d)
    assert torch.isnan(none["pred_error_radius"]).all() and "Error radii will be null" in caplog.text
    with pytest.raises(ValueError, match="not calibrated"):
        ErrorRadiusd("pred_landmarks", str(tmp_path / "calibration.json"), coverage=0.5)


def test_flags_say_which_landmarks_need_review_and_why(caplog):
    image = _grid(1.0, (100, 80))
    pixels = torch.tensor([[10.0, 10.0], [99.4, 79.4], [100.6, 20.0], [50.0, 50.0], [30.0, 30.0], [5, 5], [6, 6]])
    d = {
        "image": image,
        "pred_landmarks": pixels.double(),
        "pred_pixels": pixels.double(),
        "pred_error_radius": torch.tensor([1.0, 1.0, 1.0, 1.0, 4.0, float("nan"), 1.0], dtype=torch.float64),
        "shape_implausible": torch.tensor([False, False, False, True, False, False, False]),
        "shape_reseek": torch.tensor([False, False, False, False, False, False, True]),
        "refine_rejected": torch.tensor([False, False, False, False, False, True, False]),
        "shape_plausible": True,
    }
    with caplog.at_level(logging.WARNING):
        out = FlagLandmarksd("pred_landmarks", review_radius_mm=3.0)(d)
    assert out["pred_visible"].tolist() == [True, True, False, True, True, True, True]  # 100.6 > 99.5: outside
    assert out["pred_review_reasons"] == [
        [], [], ["outside_image"], ["implausible"], ["wide_radius"], ["stages_disagree"], ["searched_again"],
    ]  # fmt: skip
    assert out["pred_review"].tolist() == [False, False, True, True, True, True, True]
    assert "[2] lie outside the image" in caplog.text
    torch.testing.assert_close(out["pred_landmarks"], d["pred_landmarks"])  # never clipped
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        whole = FlagLandmarksd("pred_landmarks")({**d, "shape_plausible": False})
    assert all("image_implausible" in r for r in whole["pred_review_reasons"]) and "x.png" in caplog.text


def test_the_image_edges_and_the_review_radius_are_inclusive_bounds():
    image = _grid(1.0, (100, 80))  # pixel centres 0..99 and 0..79: the image spans -0.5..99.5 and -0.5..79.5
    pixels = torch.tensor(
        [[-0.5, -0.5], [99.5, 79.5], [-0.51, 10.0], [10.0, -0.51], [99.51, 10.0], [10.0, 79.51], [50.0, 50.0]],
        dtype=torch.float64,
    )
    radius = torch.tensor([3.0, 2.9, 1.0, 1.0, 1.0, 1.0, 3.01], dtype=torch.float64)
    d = {"image": image, "pred_landmarks": pixels, "pred_pixels": pixels, "pred_error_radius": radius}
    out = FlagLandmarksd("pred_landmarks", review_radius_mm=3.0)(d)
    assert out["pred_visible"].tolist() == [True, True, False, False, False, False, True]
    assert [("wide_radius" in r) for r in out["pred_review_reasons"]] == [False] * 6 + [True]
    with pytest.raises(ValueError, match="review_radius_mm must be > 0"):
        FlagLandmarksd("pred_landmarks", review_radius_mm=0.0)


def _risk_file(tmp_path, count=8):
    """A risk in which misses come with a large shape distance or a far refiner move, saved for both stages."""
    rng = np.random.default_rng(0)
    n = 4000
    raw = {name: rng.uniform(0.2, 0.9, n) for name in RAW}
    raw["shape_mahalanobis"], raw["proposed_move_mm"] = rng.chisquare(2, n), rng.uniform(0, 3, n)
    logit = -7 + 1.5 * np.log1p(raw["shape_mahalanobis"]) + 1.5 * raw["proposed_move_mm"]
    errors = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 7.0, 1.0)
    risk = MissRisk.fit(raw, errors, np.arange(n) % count, count)
    risk.save(tmp_path / "review_risk.json", "both_stages")
    return risk


def _risk_data(count=8, **overrides):
    d = {
        "pred_landmarks": torch.zeros(count, 2, dtype=torch.float64),
        "pred_spread": torch.full((count,), 0.5),
        "pred_confidence": torch.full((count,), 0.5),
        "coarse_spread": torch.full((count,), 0.5),
        "coarse_confidence": torch.full((count,), 0.5),
        "refine_move_mm": torch.full((count,), 0.5),
        "shape_mahalanobis": torch.full((count,), 1.0, dtype=torch.float64),
        "pred_candidate_scores": torch.full((count, 2), 0.5),
    }
    d.update(overrides)
    return d


def test_the_review_flags_the_landmarks_whose_risk_of_a_miss_reaches_the_budgets_threshold_and_says_why(tmp_path):
    risk = _risk_file(tmp_path)
    move = torch.tensor([0.5, 0.5, 2.9, 0.5, 0.5, 0.5, 0.5, 0.5])
    distance = torch.tensor([1.0, 100.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    d = _risk_data(refine_move_mm=move, shape_mahalanobis=distance)
    out = ReviewRiskd("pred_landmarks", str(tmp_path / "review_risk.json"), budget=0.3, num_landmarks=8)(d)
    assert out["pred_risk_reasons"] == [[], ["unlike_shape"], ["far_refiner_move"], [], [], [], [], []]
    risks = out["pred_review_risk"].numpy()
    assert risks[1] > risks[0] and risks[2] > risks[0] and risks[0] < risk.threshold(0.3) <= min(risks[1], risks[2])
    assert out["review_risk_miss_mm"] == 5.0
    image = _grid(1.0, (20, 20))
    flagged = FlagLandmarksd("pred_landmarks")({**out, "image": image, "pred_pixels": torch.full((8, 2), 5.0)})
    assert flagged["pred_review"].tolist() == [False, True, True] + [False] * 5
    assert flagged["pred_review_reasons"][1] == ["unlike_shape"]
    # a larger budget flags more; none flags nothing for risk
    wider = ReviewRiskd("pred_landmarks", str(tmp_path / "review_risk.json"), budget=1.0)(d)
    assert all(r for r in wider["pred_risk_reasons"])
    assert not any(
        ReviewRiskd("pred_landmarks", str(tmp_path / "review_risk.json"), budget=0.0)(d)["pred_risk_reasons"]
    )
    with pytest.raises(ValueError, match="fraction in"):
        ReviewRiskd("pred_landmarks", str(tmp_path / "review_risk.json"), budget=15)


def test_a_landmark_without_its_risk_features_is_reviewed_and_no_risk_file_flags_nothing_with_a_warning(
    tmp_path, caplog
):
    _risk_file(tmp_path)
    d = _risk_data(pred_spread=torch.tensor([0.5, float("nan")] + [0.5] * 6))
    out = ReviewRiskd("pred_landmarks", str(tmp_path / "review_risk.json"))(d)
    assert (
        torch.isnan(out["pred_review_risk"][1])
        and out["pred_features_not_finite"].tolist() == [False, True] + [False] * 6
    )
    with caplog.at_level(logging.WARNING):
        none = ReviewRiskd("pred_landmarks", str(tmp_path / "absent.json"))(d)
        first = ReviewRiskd("pred_landmarks", str(tmp_path / "review_risk.json"), pipeline="first_stage")(d)
    assert torch.isnan(none["pred_review_risk"]).all() and not any(none["pred_risk_reasons"])
    assert "no review risk" in caplog.text and "not 'first_stage'" in caplog.text
    assert not any(first["pred_risk_reasons"]) and none["review_risk_miss_mm"] is None


@pytest.mark.parametrize("size_factor", [0.4, 3.0])  # a 0.25 mm/px or a 0.04 mm/px file read at an assumed 0.1 mm
def test_an_assumed_spacing_is_judged_up_to_scale_and_estimated_while_a_known_one_keeps_the_size_gate(
    model, tmp_path, size_factor
):
    d, to_grid = _assumed_case(model, tmp_path, size_factor=size_factor)
    judge = PlausibleLandmarksd("pred_landmarks", model, noise_mm=1.0, up_to_scale=True)
    assert d["image"].meta["spacing_source"] == "assumed"  # the grid image carries where its spacing came from
    assert judge(d)["shape_plausible"]  # beyond the 2x size gate, but the size is not known
    final = PlausibleLandmarksd("pred_landmarks", model, noise_mm=1.0)  # the last judgement: at the spacing it has
    assert not final(d)["shape_plausible"]  # a spacing that stayed assumed is judged as it stands
    known = d["image"].clone()
    known.meta["spacing_source"] = "given"
    assert not judge({**d, "image": known})["shape_plausible"]  # a known spacing: that size is not this anatomy
    stage = _Rerun(to_grid, model)
    out = stage.find_spacing({**d, **judge(d)}, "fine_image")
    assert out["fine_image"].meta["spacing_source"] == "estimated"
    assert float(out["fine_image"].affine[0, 0]) == pytest.approx(0.3 / size_factor, rel=0.01)


def test_weak_heatmaps_give_no_spacing_estimate_and_an_implausible_second_look_keeps_the_assumption(model, tmp_path):
    d, to_grid = _assumed_case(model, tmp_path, size_factor=1.25)
    stage = _Rerun(to_grid, model)
    weak = {**d, "pred_confidence": torch.full((8,), 0.05)}  # noise: the network's prior, not the anatomy
    out = stage.find_spacing(weak, "fine_image")
    assert out["fine_image"].meta["spacing_source"] == "assumed" and stage.calls == 0
    at_the_gate = {**d, "pred_confidence": torch.full((8,), 0.35, dtype=torch.float64)}  # the gate is inclusive
    assert stage.find_spacing(at_the_gate, "fine_image")["fine_image"].meta["spacing_source"] == "estimated"

    class _Implausible(_Rerun):
        def pass_on(self, d, view):
            return {**super().pass_on(d, view), "shape_plausible": False}

    again = _Implausible(to_grid, model)
    out = again.find_spacing(d, "fine_image")
    assert again.calls == 1 and out["fine_image"] is d["fine_image"]  # the second look failed: the assumption stays
    assert out["fine_image"].meta["spacing_source"] == "assumed"
