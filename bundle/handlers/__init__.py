"""Ignite handlers of the bundle."""

from bundle.handlers.checkpoint import BestModelSaver
from bundle.handlers.metrics import MeanRadialErrorHandler, SuccessfulDetectionRateHandler
from bundle.handlers.report import LandmarkReportWriter
from bundle.handlers.table import LandmarkTableWriter

__all__ = [
    "BestModelSaver",
    "LandmarkReportWriter",
    "LandmarkTableWriter",
    "MeanRadialErrorHandler",
    "SuccessfulDetectionRateHandler",
]
