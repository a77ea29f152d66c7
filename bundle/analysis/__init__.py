"""Clinical analysis of landmarks: measurements declared in the config, with classes and intervals."""

from .measurements import KINDS, Measurement, MeasurementSet

__all__ = ["KINDS", "Measurement", "MeasurementSet"]
