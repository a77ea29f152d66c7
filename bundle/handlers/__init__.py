"""Ignite handlers of the bundle."""

from bundle.handlers.metrics import MeanRadialErrorHandler, SuccessfulDetectionRateHandler

__all__ = ["MeanRadialErrorHandler", "SuccessfulDetectionRateHandler"]
