"""Landmark file input and output."""

from .landmarks import LandmarkFileError, Landmarks, landmark_format, read_landmarks, write_landmarks

__all__ = ["LandmarkFileError", "Landmarks", "landmark_format", "read_landmarks", "write_landmarks"]
