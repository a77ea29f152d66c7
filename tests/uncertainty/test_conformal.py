"""Conformal error radii: the quantile rule, coverage on exchangeable data, difficulty, and the file."""

import json
import math

import numpy as np
import pytest

from bundle.uncertainty import ErrorCalibration


def _data(images: int, seed: int, count: int = 5):
    """Errors whose scale is a per-landmark constant times a difficulty that the features carry exactly:
    error = s_k * spread * |N(0, 1)|, features (spread, confidence = 0.5)."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.5, 2.0, count)
    spread = rng.uniform(0.5, 3.0, (images, count))
    errors = scales * spread * np.abs(rng.normal(size=(images, count)))
    features = np.stack([spread, np.full_like(spread, 0.5)], -1)
    return errors, features


def test_the_quantile_is_the_rank_conformal_prediction_asks_for():
    # every difficulty equal: scores are the errors over one fitted scale, and q the ceil((n + 1) c)-th of them
    errors = np.arange(1.0, 41.0).reshape(20, 2)
    features = np.ones((20, 2, 2))
    calibration = ErrorCalibration.fit(errors, features, coverages=(0.9,))
    # by hand: each image's scores over its landmark's scale fitted without it (the geometric mean of the others)
    scores = []
    for i in range(20):
        others = np.delete(errors, i, 0)
        scores.extend(errors[i] / np.exp(np.log(others).mean(0)))
    scores = np.sort(scores)
    rank = math.ceil((40 + 1) * 0.9)  # 37 of 40
    assert calibration.quantiles[0.9] == pytest.approx(scores[rank - 1], rel=1e-12)
    assert scores[rank - 2] < calibration.quantiles[0.9] < scores[rank]  # not one rank off either way
    assert calibration.count == 40 and calibration.images == 20


def test_radii_cover_fresh_exchangeable_data_at_the_stated_rate():
    errors, features = _data(200, 0)
    calibration = ErrorCalibration.fit(errors, features, coverages=(0.8, 0.9, 0.95))
    assert calibration.beta[0] == pytest.approx(1.0, abs=0.15)  # the spread carries the difficulty, linearly
    fresh_errors, fresh_features = _data(4000, 1)
    for coverage in (0.8, 0.9, 0.95):
        covered = fresh_errors <= calibration.radius(fresh_features, coverage)
        assert covered.mean() == pytest.approx(coverage, abs=0.03)
        assert np.abs(covered.mean(0) - coverage).max() < 0.06  # each landmark, not only on average


def test_harder_landmarks_get_wider_radii():
    errors, features = _data(300, 2)
    calibration = ErrorCalibration.fit(errors, features)
    easy, hard = features[0].copy(), features[0].copy()
    hard[:, 0] *= 2.0  # twice the heatmap's spread
    assert np.all(calibration.radius(hard) > 1.8 * calibration.radius(easy))
    assert np.all(np.diff(calibration.scales) > 0)  # landmark scales 0.5 .. 2.0 in that order


def test_bad_calibration_data_is_refused():
    errors, features = _data(10, 3)
    with pytest.raises(ValueError, match="must be"):
        ErrorCalibration.fit(errors, features[..., :1])
    with pytest.raises(ValueError, match="at least 2 images"):
        ErrorCalibration.fit(errors[:1], features[:1])
    bad = errors.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ErrorCalibration.fit(bad, features)
    with pytest.raises(ValueError, match="more than the 50"):
        ErrorCalibration.fit(errors, features, coverages=(0.99,))


def test_the_file_holds_one_calibration_per_pipeline(tmp_path):
    path = tmp_path / "calibration.json"
    errors, features = _data(30, 4)
    both = ErrorCalibration.fit(errors, features, description="both")
    first = ErrorCalibration.fit(errors * 2, features, description="first")
    both.save(path, "both_stages")
    first.save(path, "first_stage")
    assert set(json.loads(path.read_text())["pipelines"]) == {"both_stages", "first_stage"}
    loaded = ErrorCalibration.load(path, "first_stage", num_landmarks=5)
    np.testing.assert_allclose(loaded.radius(features[0]), first.radius(features[0]))
    assert loaded.description == "first"
    with pytest.raises(LookupError, match="not 'other'"):
        ErrorCalibration.load(path, "other")
    with pytest.raises(ValueError, match="the calibration has 5 landmarks, the network 19"):
        ErrorCalibration.load(path, "both_stages", num_landmarks=19)
    with pytest.raises(FileNotFoundError):
        ErrorCalibration.load(tmp_path / "none.json", "both_stages")
    with pytest.raises(ValueError, match="not calibrated"):
        loaded.radius(features[0], 0.5)


def test_each_landmark_gets_its_own_exact_rank_in_mondrian_calibration():
    rng = np.random.default_rng(3)
    errors = rng.uniform(0.2, 4.0, (19, 3))  # distinct scores: every rank is a different number
    features = np.ones((19, 3, 2))
    calibration = ErrorCalibration.fit(errors, features, coverages=(0.8, 0.9), per_landmark=True)
    assert calibration.per_landmark and calibration.count == 57
    for coverage in (0.8, 0.9):
        rank = math.ceil((19 + 1) * coverage)  # 16 and 18 of 19, for each landmark alone
        for k in range(3):
            scores = np.sort([errors[i, k] / np.exp(np.log(np.delete(errors, i, 0)[:, k]).mean()) for i in range(19)])
            assert calibration.quantiles[coverage][k] == pytest.approx(scores[rank - 1], rel=1e-12)
            assert scores[rank - 2] < calibration.quantiles[coverage][k] < scores[rank]
    with pytest.raises(ValueError, match="needs more than the 19 calibration scores"):
        ErrorCalibration.fit(errors, features, coverages=(0.97,), per_landmark=True)  # ceil(20 * 0.97) = 20 > 19


def test_mondrian_radii_cover_each_landmark_where_pooled_ones_cover_only_on_average():
    def draw(images, seed):
        rng = np.random.default_rng(seed)
        spread = rng.uniform(0.5, 3.0, (images, 4))
        shape = np.abs(rng.normal(size=(images, 4)))
        shape[:, 0] = np.abs(rng.standard_t(2, size=images))  # landmark 0: heavy tails its scale does not show
        return spread * shape, np.stack([spread, np.full_like(spread, 0.5)], -1)

    errors, features = draw(1500, 0)
    fresh_errors, fresh_features = draw(20000, 1)
    covered = {}
    for mondrian in (False, True):
        calibration = ErrorCalibration.fit(errors, features, coverages=(0.9,), per_landmark=mondrian)
        covered[mondrian] = (fresh_errors <= calibration.radius(fresh_features, 0.9)).mean(0)
    assert covered[True] == pytest.approx([0.9] * 4, abs=0.03)
    assert covered[False][0] < 0.86 and covered[False][0] < covered[True][0] - 0.04


def test_a_mondrian_calibration_survives_its_file(tmp_path):
    errors, features = _data(30, 2)
    calibration = ErrorCalibration.fit(errors, features, per_landmark=True)
    calibration.save(tmp_path / "calibration.json", "both_stages")
    loaded = ErrorCalibration.load(tmp_path / "calibration.json", "both_stages", num_landmarks=5)
    assert loaded.per_landmark
    np.testing.assert_allclose(loaded.radius(features[0], 0.9), calibration.radius(features[0], 0.9))
    with pytest.raises(ValueError, match="one number or 5"):
        ErrorCalibration(calibration.beta, calibration.scales, {0.9: [1.0, 2.0]}, 10, 2)


def test_a_landmark_whose_features_are_not_numbers_gets_the_widest_calibrated_radius_never_a_small_one(tmp_path):
    rng = np.random.default_rng(3)
    spread = rng.uniform(0.5, 3.0, (40, 4))
    features = np.stack([spread, rng.uniform(0.2, 0.9, (40, 4))], -1)
    calibration = ErrorCalibration.fit(np.abs(rng.normal(size=(40, 4))) * spread, features)
    seen = calibration.radius(features, 0.9)  # (40, 4): every calibration image's radius
    np.testing.assert_allclose(calibration.widest * calibration.quantiles[0.9], seen.max(0))
    query = np.array([[[1.0, 0.5], [np.nan, 0.5], [1.0, np.inf], [np.nan, np.nan]]])
    radius = calibration.radius(query, 0.9)[0]
    np.testing.assert_allclose(radius[1:], seen.max(0)[1:])
    assert radius[0] < seen.max(0)[0]  # an ordinary feature is not widened
    calibration.save(tmp_path / "c.json", "both_stages")
    again = ErrorCalibration.load(tmp_path / "c.json", "both_stages")
    np.testing.assert_allclose(again.radius(query, 0.9), calibration.radius(query, 0.9))
    old = ErrorCalibration(calibration.beta, calibration.scales, calibration.quantiles, 160, 40)  # no widest stored
    assert np.isnan(old.radius(query, 0.9)[0, 1:]).all()  # null, and reviewed: not the features' zero
    with pytest.raises(ValueError, match="widest must be 4 positive"):
        ErrorCalibration(calibration.beta, calibration.scales, calibration.quantiles, 160, 40, widest=[1.0, 0, 1, 1])
