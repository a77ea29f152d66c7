"""Landmark metrics."""

from .radial_error import MeanRadialError, SuccessfulDetectionRate, radial_errors
from .summary import error_figures, read_error_table, summarise_errors
from .trust import summarise_trust

__all__ = [
    "MeanRadialError",
    "SuccessfulDetectionRate",
    "radial_errors",
    "summarise_errors",
    "summarise_trust",
    "read_error_table",
    "error_figures",
]
