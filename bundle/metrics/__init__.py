"""Landmark metrics."""

from bundle.metrics.radial_error import MeanRadialError, SuccessfulDetectionRate, radial_errors

__all__ = ["MeanRadialError", "SuccessfulDetectionRate", "radial_errors"]
