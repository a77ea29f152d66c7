"""The risk of a miss: known coefficients, the direction of each feature, the budget, the reasons, the file."""

import json

import numpy as np
import pytest

from bundle.uncertainty import RAW, MissRisk, risk_features
from bundle.uncertainty.risk import FEATURES


def _raw(n, rng, **overrides):
    raw = {
        "spread_mm": rng.uniform(0.9, 1.4, n),
        "confidence": rng.uniform(0.2, 0.8, n),
        "coarse_spread_mm": rng.uniform(3.0, 4.5, n),
        "coarse_confidence": rng.uniform(0.5, 0.9, n),
        "proposed_move_mm": rng.uniform(0.0, 3.0, n),
        "shape_mahalanobis": rng.chisquare(2, n),
        "candidate_score_1": rng.uniform(0.5, 0.9, n),
        "candidate_score_2": rng.uniform(0.0, 0.3, n),
    }
    raw.update(overrides)
    return raw


def _misses(logit, rng):
    """Errors over 5 mm with probability sigmoid(logit), else under."""
    miss = rng.random(len(logit)) < 1 / (1 + np.exp(-logit))
    return np.where(miss, 6.0, 1.0)


def test_the_fit_recovers_known_logistic_coefficients():
    rng = np.random.default_rng(0)
    n = 40000
    raw = _raw(n, rng)
    x = risk_features(raw, ["shape_distance", "weak_peak"])
    z = (x - x.mean(0)) / x.std(0)
    errors = _misses(-2.0 + 1.5 * z[:, 0] - 0.7 * z[:, 1], rng)
    risk = MissRisk.fit(raw, errors, np.zeros(n, int), 1, ["shape_distance", "weak_peak"], penalty=0.0)
    np.testing.assert_allclose(risk.weights, [1.5, -0.7], atol=0.06)
    np.testing.assert_allclose(risk.intercepts, [-2.0], atol=0.06)
    assert risk.misses == int((errors > 5).sum()) and risk.count == n and not risk.per_landmark


@pytest.mark.parametrize("feature, raw_name, up", [
    ("wide_heatmap", "spread_mm", True), ("weak_peak", "confidence", False), ("refiner_move", "proposed_move_mm", True),
    ("shape_distance", "shape_mahalanobis", True), ("second_peak", "candidate_score_2", True),
    ("wide_first_heatmap", "coarse_spread_mm", True), ("weak_first_peak", "coarse_confidence", False),
])  # fmt: skip
def test_each_feature_raises_the_risk_in_the_direction_of_a_likelier_miss(feature, raw_name, up):
    rng = np.random.default_rng(1)
    n = 4000
    raw = _raw(n, rng)
    x = risk_features(raw, [feature])[:, 0]
    errors = _misses(-2.5 + 2.0 * (x - x.mean()) / x.std(), rng)  # misses where the feature is high
    risk = MissRisk.fit(raw, errors, np.zeros(n, int), 1, [feature])
    assert risk.weights[0] > 1.0
    low, high = np.quantile(raw[raw_name], [0.1, 0.9])
    probe = {k: np.full(2, np.median(v)) for k, v in raw.items()}
    probe[raw_name] = np.array([low, high] if up else [high, low])
    p = risk.probability(probe, np.zeros(2, int))
    assert p[1] > p[0] + 0.1  # the value that means a likelier miss has the higher risk


def test_the_review_budget_flags_that_share_of_a_known_table_and_catches_what_the_signal_allows():
    rng = np.random.default_rng(2)
    n = 10000
    raw = _raw(n, rng)
    x = risk_features(raw, ["shape_distance"])[:, 0]
    errors = _misses(-4 + 3 * (x - x.mean()) / x.std(), rng)
    risk = MissRisk.fit(raw, errors, np.zeros(n, int), 1, ["shape_distance", "wide_heatmap"])
    p = risk.probability(raw, np.zeros(n, int))
    for budget in (0.05, 0.15, 0.3):
        flagged = p >= risk.threshold(budget)
        assert flagged.mean() == pytest.approx(budget, abs=0.01)
    flagged = p >= risk.threshold(0.15)
    caught = flagged[errors > 5].mean()
    oracle = (x >= np.quantile(x, 0.85))[errors > 5].mean()  # flagging on the true signal
    assert caught == pytest.approx(oracle, abs=0.03) and caught > 0.6
    assert risk.threshold(0.0) == np.inf and risk.threshold(1.0) == pytest.approx(p.min())
    assert risk.threshold(0.1) > risk.threshold(0.2)
    with pytest.raises(ValueError, match="fraction in"):
        risk.threshold(15)


def test_the_reason_is_the_feature_that_raised_the_risk_not_the_landmarks_type():
    rng = np.random.default_rng(3)
    n, k = 6000, 3
    landmarks = np.arange(n) % k
    raw = _raw(n, rng)
    x = risk_features(raw, ["shape_distance", "refiner_move"])
    z = (x - x.mean(0)) / x.std(0)
    errors = _misses(-3 + 1.5 * z[:, 0] + 1.5 * z[:, 1] + 1.5 * (landmarks == 2), rng)
    risk = MissRisk.fit(raw, errors, landmarks, k, ["shape_distance", "refiner_move"], per_landmark=True)
    assert risk.per_landmark and risk.intercepts[2] > risk.intercepts[0] + 0.8  # the hard type has its own intercept
    probe = {name: np.full(2, np.median(v)) for name, v in raw.items()}
    probe["shape_mahalanobis"] = np.array([20.0, np.median(raw["shape_mahalanobis"])])
    probe["proposed_move_mm"] = np.array([np.median(raw["proposed_move_mm"]), 2.9])
    assert risk.reasons(probe, np.array([2, 2])) == ["unlike_shape", "far_refiner_move"]
    shared = MissRisk.fit(raw, errors, landmarks, k, ["wide_heatmap", "wide_first_heatmap", "shape_distance"])
    wide = {**probe, "spread_mm": np.full(2, 1.4), "coarse_spread_mm": np.full(2, 4.5)}
    assert set(shared.reasons(wide, np.zeros(2, int))) <= {"wide_heatmap", "unlike_shape"}  # one name for both widths


def test_a_feature_that_is_not_a_number_has_no_risk_and_bad_fits_are_refused():
    rng = np.random.default_rng(4)
    raw = _raw(200, rng)
    errors = np.where(np.arange(200) < 20, 7.0, 1.0)
    risk = MissRisk.fit(raw, errors, np.zeros(200, int), 1)
    broken = {name: v[:3].copy() for name, v in raw.items()}
    broken["spread_mm"][1] = np.nan
    assert np.isnan(risk.probability(broken, np.zeros(3, int))).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="need misses"):
        MissRisk.fit(raw, np.ones(200), np.zeros(200, int), 1)
    with pytest.raises(ValueError, match="must be finite"):
        MissRisk.fit({**raw, "confidence": np.r_[np.nan, raw["confidence"][1:]]}, errors, np.zeros(200, int), 1)
    with pytest.raises(ValueError, match="unknown risk feature"):
        MissRisk.fit(raw, errors, np.zeros(200, int), 1, ["spread"])
    with pytest.raises(ValueError, match="needs 'candidate_score_2'"):
        risk_features({k: v for k, v in raw.items() if k != "candidate_score_2"}, ["second_peak"])
    with pytest.raises(ValueError, match=r"lie in \[0, 1\)"):
        MissRisk.fit(raw, errors, np.ones(200, int), 1)
    assert set(RAW) == set(raw)


def test_a_risk_survives_its_file_beside_another_pipelines(tmp_path):
    rng = np.random.default_rng(5)
    raw = _raw(300, rng)
    errors = np.where(raw["shape_mahalanobis"] > 4, 7.0, 1.0)
    landmarks = np.arange(300) % 3
    risk = MissRisk.fit(raw, errors, landmarks, 3, per_landmark=True, description="test")
    path = tmp_path / "review_risk.json"
    risk.save(path, "both_stages")
    MissRisk.fit(raw, errors, landmarks, 3).save(path, "first_stage")
    again = MissRisk.load(path, "both_stages", num_landmarks=3)
    np.testing.assert_allclose(again.probability(raw, landmarks), risk.probability(raw, landmarks))
    assert again.threshold(0.15) == risk.threshold(0.15) and again.description == "test"
    assert not MissRisk.load(path, "first_stage").per_landmark
    with pytest.raises(ValueError, match="3 landmarks, the network 19"):
        MissRisk.load(path, "both_stages", num_landmarks=19)
    with pytest.raises(LookupError, match="not 'other'"):
        MissRisk.load(path, "other")
    with pytest.raises(FileNotFoundError, match="no review risk"):
        MissRisk.load(tmp_path / "absent.json", "both_stages")
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not this bundle.s review risk file"):
        MissRisk.load(tmp_path / "bad.json", "both_stages")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read the review risk"):
        MissRisk.load(tmp_path / "broken.json", "both_stages")
    entry = json.loads(path.read_text())
    del entry["pipelines"]["both_stages"]["quantiles"]
    (tmp_path / "short.json").write_text(json.dumps(entry))
    with pytest.raises(ValueError, match="a broken review risk"):
        MissRisk.load(tmp_path / "short.json", "both_stages")
    risk.save(tmp_path / "bad.json", "both_stages")  # a file of another format is replaced, not merged
    assert set(json.loads((tmp_path / "bad.json").read_text())["pipelines"]) == {"both_stages"}


def test_each_feature_has_its_known_value():
    raw = {
        "spread_mm": np.array([1.2, 0.0]),
        "confidence": np.array([0.5, 0.0]),
        "coarse_spread_mm": np.array([3.0, 2.0]),
        "coarse_confidence": np.array([0.8, 0.25]),
        "proposed_move_mm": np.array([0.5, -1.0]),
        "shape_mahalanobis": np.array([0.3, 4.0]),
        "candidate_score_1": np.array([0.8, 0.0]),
        "candidate_score_2": np.array([0.2, 0.1]),
    }
    x = risk_features(raw, list(FEATURES))
    expected = np.array(
        [
            [np.log(1.2), -np.log(0.5), np.log(3.0), -np.log(0.8), np.log1p(0.5), np.log1p(0.3), 0.25],
            [np.log(1e-3), -np.log(1e-3), np.log(2.0), -np.log(0.25), 0.0, np.log1p(4.0), 100.0],
        ]
    )  # widths, peaks and the first score floored at 1e-3; a negative move or distance is none
    np.testing.assert_allclose(x, expected, rtol=1e-12)
    assert list(FEATURES) == [
        "wide_heatmap", "weak_peak", "wide_first_heatmap", "weak_first_peak", "refiner_move", "shape_distance",
        "second_peak",
    ]  # fmt: skip
