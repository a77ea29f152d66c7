"""Ignite handlers of the bundle."""

from .adaptive_sigma import AdaptiveSigmaHandler, SigmaHistoryWriter
from .calibration import ErrorCalibrationWriter
from .checkpoint import BestModelSaver, ResumeCheckpointSaver
from .distributed import FirstProcessOnly
from .files import LandmarkFiles, LandmarkFileSaver
from .finite import NonFiniteGuard
from .metrics import MeanRadialErrorHandler, SuccessfulDetectionRateHandler
from .random_state import RandomStates
from .report import LandmarkReportWriter
from .report_html import HtmlReportWriter, MeasurementTableWriter
from .shape_model import ShapeModelWriter
from .summary import TrainingSummary, ValidationLine
from .table import LandmarkTableWriter
from .validation import PeriodicValidationHandler

__all__ = [
    "AdaptiveSigmaHandler",
    "BestModelSaver",
    "ErrorCalibrationWriter",
    "FirstProcessOnly",
    "HtmlReportWriter",
    "LandmarkFiles",
    "LandmarkFileSaver",
    "LandmarkReportWriter",
    "LandmarkTableWriter",
    "MeanRadialErrorHandler",
    "MeasurementTableWriter",
    "NonFiniteGuard",
    "PeriodicValidationHandler",
    "RandomStates",
    "ResumeCheckpointSaver",
    "ShapeModelWriter",
    "SigmaHistoryWriter",
    "SuccessfulDetectionRateHandler",
    "TrainingSummary",
    "ValidationLine",
]
