"""One summary of a table of radial errors, shared by the evaluation handler and the report script."""

from __future__ import annotations

from typing import Sequence

import torch

from .radial_error import MeanRadialError, SuccessfulDetectionRate

__all__ = ["summarise_errors"]


def summarise_errors(errors: torch.Tensor, names: Sequence[str], radii: Sequence[float]) -> dict:
    """MRE ± SD and SDR at each radius, overall and per landmark, as plain numbers.

    Args:
        errors: (N, K) radial errors (mm, or normalised mm); NaN where a landmark does not count.
        names: K landmark names.
        radii: SDR radii, in the unit of ``errors``.
    """
    errors = torch.as_tensor(errors, dtype=torch.float64)
    if errors.ndim != 2 or errors.shape[1] != len(names):
        raise ValueError(f"errors must be (N, {len(names)}), got {tuple(errors.shape)}.")
    mre, sdr = MeanRadialError(), SuccessfulDetectionRate(radii=radii)
    mre.extend(errors)
    sdr.extend(errors)
    summary = mre.summary()
    overall = sdr.aggregate().reshape(-1).tolist()
    per_landmark = sdr.aggregate("mean_batch").reshape(len(sdr.radii), -1)
    return {
        "images": int(errors.shape[0]),
        "mre": summary["mean"],
        "sd": summary["std"],
        "sdr": {f"{r:g}": v for r, v in zip(sdr.radii, overall)},
        "per_landmark": [
            {
                "name": str(name),
                "mre": summary["per_landmark_mean"][k],
                "sd": summary["per_landmark_std"][k],
                "sdr": {f"{r:g}": per_landmark[i, k].item() for i, r in enumerate(sdr.radii)},
            }
            for k, name in enumerate(names)
        ],
    }
