"""Coverage of error radii and the catch of review flags, by known values."""

import numpy as np
import pytest

from bundle.metrics import summarise_trust


def test_known_coverage_flags_and_catch():
    errors = np.array([[1.0, 6.0], [2.0, 0.5], [7.0, np.nan]])
    radii = np.array([[1.5, 3.0], [1.0, np.nan], [2.0, 1.0]])
    review = np.array([[False, True], [False, False], [False, True]])
    summary = summarise_trust(errors, radii, review, ["a", "b"])
    assert summary["coverage"] == pytest.approx(1 / 4)  # 1 <= 1.5 only; no radius and no error do not count
    assert summary["flagged"] == pytest.approx(1 / 5)  # of the five counted landmarks, one flagged
    assert summary["gross"] == 2 and summary["gross_flagged"] == pytest.approx(0.5)  # 6 mm caught, 7 mm not
    assert summary["mean_radius_mm"] == pytest.approx((1.5 + 3.0 + 1.0 + 2.0) / 4)
    assert summary["per_landmark"][1] == {"name": "b", "coverage": 0.0, "mean_radius_mm": 3.0, "flagged": 0.5}


def test_nothing_to_count_is_none_not_zero():
    summary = summarise_trust(np.ones((2, 1)), np.full((2, 1), np.nan), np.zeros((2, 1), bool), ["a"])
    assert summary["coverage"] is None and summary["gross_flagged"] is None and summary["flagged"] == 0.0
    with pytest.raises(ValueError, match="must all be"):
        summarise_trust(np.ones((2, 1)), np.ones((2, 2)), np.zeros((2, 1), bool), ["a"])
