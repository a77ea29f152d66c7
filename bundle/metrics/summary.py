"""One summary of a table of radial errors, shared by the evaluation handler and the report script."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import InputError
from .radial_error import detection_rates, error_statistics

__all__ = ["summarise_errors", "read_error_table", "error_figures"]


def summarise_errors(errors: torch.Tensor, names: Sequence[str], radii: Sequence[float]) -> dict:
    """MRE ± SD and SDR at each radius, overall and per landmark, as plain numbers.

    Args:
        errors: (N, K) radial errors (mm, or normalised mm); NaN where a landmark does not count.
        names: K landmark names.
        radii: SDR radii, in the unit of ``errors``.
    """
    errors = torch.as_tensor(errors, dtype=torch.float64)
    if errors.ndim != 2 or errors.shape[1] != len(names):
        raise InputError(f"errors must be (N, {len(names)}), got {tuple(errors.shape)}.")
    # the table is complete here (gathered on the first process): summarised without the metrics' synchronisation
    overall = detection_rates(errors, radii).tolist()
    radii = [float(r) for r in radii]
    summary = error_statistics(errors)
    per_landmark = detection_rates(errors, radii, per_landmark=True)
    return {
        "images": int(errors.shape[0]),
        "mre": summary["mean"],
        "sd": summary["std"],
        "sdr": {f"{r:g}": v for r, v in zip(radii, overall)},
        "per_landmark": [
            {
                "name": str(name),
                "mre": summary["per_landmark_mean"][k],
                "sd": summary["per_landmark_std"][k],
                "sdr": {f"{r:g}": per_landmark[i, k].item() for i, r in enumerate(radii)},
            }
            for k, name in enumerate(names)
        ],
    }


def read_error_table(path: str | Path, stems: Sequence[str]) -> np.ndarray:
    """(N, K) radial errors of the images ``stems`` (file names without suffix), in that order, from the
    ``landmark_errors.csv`` that an evaluation writes (:class:`bundle.handlers.LandmarkReportWriter`); an empty cell
    is NaN. Columns beyond the errors (radii, review flags) are left out.

    Raises:
        InputError: an image of ``stems`` is not in the table.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if c != "image" and not c.endswith((" radius", " review"))]
        rows = {Path(r["image"]).stem: r for r in reader}
    missing = [s for s in stems if s not in rows]
    if missing:
        raise InputError(f"{path}: no errors for {missing[:5]}{' ...' if len(missing) > 5 else ''}.")
    return np.array([[float(rows[s][c]) if rows[s][c] else math.nan for c in columns] for s in stems])


def error_figures(errors: np.ndarray, radii: Sequence[float] = (2.0, 2.5, 3.0, 4.0)) -> dict:
    """MRE, SD and SDR (%) of (N, K) errors as a flat dict (``mre``, ``sd``, ``sdr_2mm``, ...), for study tables."""
    summary = summarise_errors(
        torch.from_numpy(np.asarray(errors, dtype=np.float64)), [""] * np.shape(errors)[1], radii
    )
    return {"mre": summary["mre"], "sd": summary["sd"], **{f"sdr_{r}mm": v for r, v in summary["sdr"].items()}}
