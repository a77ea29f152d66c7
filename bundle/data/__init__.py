"""Landmark data sets, one job a module: reading datalists (:mod:`.datalist`), checking their entries
(:mod:`.checks`), the training dataset (:mod:`.dataset`) and fitting a shape model to a datalist's files
(:mod:`.shape_models`)."""

from .checks import MIN_SIZE, OtherDimensionsError, check_datalist, check_entry
from .datalist import DATALIST_NAME, PATH_KEYS, datalist_file, datalist_stems, inference_list, load_datalist
from .dataset import LandmarkCacheDataset
from .shape_models import configurations_from_datalist, shape_model_from_datalist

__all__ = [
    "DATALIST_NAME",
    "MIN_SIZE",
    "PATH_KEYS",
    "LandmarkCacheDataset",
    "OtherDimensionsError",
    "check_datalist",
    "check_entry",
    "configurations_from_datalist",
    "datalist_file",
    "datalist_stems",
    "inference_list",
    "load_datalist",
    "shape_model_from_datalist",
]
