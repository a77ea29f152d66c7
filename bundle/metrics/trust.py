"""How well error radii and review flags describe the errors they go with: coverage, and what the flags catch."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["summarise_trust"]


def summarise_trust(errors, radii, review, names: Sequence[str], gross_mm: float = 5.0) -> dict:
    """Coverage of the radii and the flags' catch, overall and per landmark, as plain numbers.

    Args:
        errors: (N, K) radial errors in mm (NaN: not counted).
        radii: (N, K) error radii in mm (NaN: none).
        review: (N, K) bool review flags.
        names: K landmark names.
        gross_mm: an error above this is a gross miss, which the flags should catch.

    Returns:
        ``{"coverage": fraction of errors <= radius (over landmarks with both), "mean_radius_mm", "flagged":
        fraction flagged, "gross": count of gross misses, "gross_flagged": fraction of them flagged,
        "per_landmark": [{"name", "coverage", "mean_radius_mm", "flagged"}, ...]}``; None where nothing counts.
    """
    errors = np.asarray(errors, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    review = np.asarray(review, dtype=bool)
    if not (errors.shape == radii.shape == review.shape) or errors.ndim != 2 or errors.shape[1] != len(names):
        raise InputError(f"errors, radii and review must all be (N, {len(names)}).")
    counted = np.isfinite(errors)
    with_radius = counted & np.isfinite(radii)
    gross = counted & (errors > gross_mm)

    def fraction(hit: np.ndarray, of: np.ndarray):
        return float(hit[of].mean()) if of.any() else None

    def mean(values: np.ndarray, of: np.ndarray):
        return float(values[of].mean()) if of.any() else None

    covered = errors <= np.where(np.isfinite(radii), radii, -np.inf)
    return {
        "coverage": fraction(covered, with_radius),
        "mean_radius_mm": mean(radii, with_radius),
        "flagged": fraction(review, counted),
        "gross_mm": float(gross_mm),
        "gross": int(gross.sum()),
        "gross_flagged": fraction(review, gross),
        "per_landmark": [
            {
                "name": str(name),
                "coverage": fraction(covered[:, k], with_radius[:, k]),
                "mean_radius_mm": mean(radii[:, k], with_radius[:, k]),
                "flagged": fraction(review[:, k], counted[:, k]),
            }
            for k, name in enumerate(names)
        ],
    }
