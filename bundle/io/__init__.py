"""Landmark file input and output, and image file names."""

from .formats import landmark_format, read_image_landmarks, read_landmarks, write_landmarks
from .images import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    NO_GEOMETRY_SUFFIXES,
    colliding_stems,
    dicom_spacing,
    image_filename,
    loaded_shape,
    output_paths,
    output_stem,
    picture_spacing,
)
from .landmarks import LandmarkFileError, Landmarks, landmarks_record
from .picture_reader import GreyPictureReader, load_image_grey_pictures

__all__ = [
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "GreyPictureReader",
    "load_image_grey_pictures",
    "NO_GEOMETRY_SUFFIXES",
    "LandmarkFileError",
    "Landmarks",
    "colliding_stems",
    "dicom_spacing",
    "image_filename",
    "landmark_format",
    "landmarks_record",
    "loaded_shape",
    "output_paths",
    "output_stem",
    "picture_spacing",
    "read_image_landmarks",
    "read_landmarks",
    "write_landmarks",
]
