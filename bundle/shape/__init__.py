"""Shape models of landmark configurations: plausibility, the expected position of a landmark given the others, and
the anatomy's size (for an unknown pixel spacing). Fitting one to a datalist's files: :func:`bundle.data.shape_model_from_datalist`.
"""

from .model import ShapeFit, ShapeModel, procrustes_align
from .similarity import Similarity, fit_similarity, fit_similarity_robust, rotation_angle_deg

__all__ = [
    "ShapeFit",
    "ShapeModel",
    "Similarity",
    "fit_similarity",
    "fit_similarity_robust",
    "procrustes_align",
    "rotation_angle_deg",
]
