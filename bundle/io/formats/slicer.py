"""3D Slicer's markups: ``.fcsv`` (fiducial CSV; ``# CoordinateSystem = 0``/``RAS`` or ``1``/``LPS``, converted to RAS)
and ``.mrk.json`` (markups JSON; read in its ``coordinateSystem``, written in RAS).

For ``spatial_dims=2`` they hold the point in the z = 0 plane; reading a 2D point drops z. For a 2D picture without
geometry (``picture_spacing`` given), both are read and written in Slicer's frame of the picture: Slicer loads it at
1 mm per pixel with its LPS axes along the pixel axes, so a point on it is at RAS (-column, -row, 0)
(:func:`picture_frame`, the one place that converts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError
from ..landmarks import FileSettings, LandmarkFileError, Landmarks, file_number, read_text_lines
from .csv import csv_row
from .json import load_json

__all__ = ["FCSV", "MARKUPS_JSON", "picture_frame", "MARKUPS_SCHEMA"]

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)
LPS = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS: x and y change sign


def picture_frame(coordinates: np.ndarray, picture_spacing: Sequence[float], to_slicer: bool) -> np.ndarray:
    """World mm (pixel * spacing) of a 2D picture <-> 3D Slicer's frame of it (RAS, 1 mm per pixel, LPS along the
    pixel axes): ``to_slicer`` maps (K, 2) world mm to Slicer's x, y; else back.

    Raises:
        InputError: the spacing is not 2 positive numbers.
    """
    spacing = np.asarray(picture_spacing, dtype=np.float64).reshape(-1)
    if spacing.shape != (2,) or not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise InputError(f"picture_spacing must be 2 positive numbers (mm per pixel, x and y), got {spacing.tolist()}.")
    return LPS[:2] * (coordinates / spacing if to_slicer else coordinates * spacing)


class _Markups:
    """What both Slicer formats share: 3D points in RAS, converted to the landmarks' dimension and frame."""

    suffix = ""

    def read(self, path, settings: FileSettings) -> Landmarks:
        names, points, visible = self._points(path)
        landmarks = Landmarks(np.asarray(points), names, np.asarray(visible))
        if settings.spatial_dims not in (None, 3):
            z = landmarks.coordinates[landmarks.visible, 2]
            if np.any(np.abs(z) > 1e-6):
                raise LandmarkFileError(path, "2D landmarks were asked for, but some points have z != 0.")
            landmarks = Landmarks(landmarks.coordinates[:, :2], landmarks.names, landmarks.visible)
        if settings.picture_spacing is not None and landmarks.spatial_dims == 2:
            coordinates = picture_frame(landmarks.coordinates, settings.picture_spacing, to_slicer=False)
            landmarks = Landmarks(coordinates, landmarks.names, landmarks.visible)
        return landmarks

    def write(self, path: Path, landmarks: Landmarks, settings: FileSettings) -> None:
        coordinates = landmarks.coordinates
        if landmarks.spatial_dims == 2:
            if settings.picture_spacing is not None:
                coordinates = picture_frame(coordinates, settings.picture_spacing, to_slicer=True)
            coordinates = np.concatenate([coordinates, np.zeros((len(coordinates), 1))], 1)
        self._write(path, coordinates, landmarks.names, landmarks.visible)

    def _points(self, path) -> tuple[list, list, list]:
        raise NotImplementedError

    def _write(self, path: Path, xyz: np.ndarray, names: list[str], visible: np.ndarray) -> None:
        raise NotImplementedError


class _Fcsv(_Markups):
    suffix = ".fcsv"

    def _points(self, path):
        lines = read_text_lines(path)
        lps = False
        columns = [
            "id",
            "x",
            "y",
            "z",
            "ow",
            "ox",
            "oy",
            "oz",
            "vis",
            "sel",
            "lock",
            "label",
            "desc",
            "associatedNodeID",
        ]
        names, points, visible = [], [], []
        for i, text in enumerate(lines, start=1):
            if text.startswith("#"):
                key, _, value = text[1:].partition("=")
                if key.strip() == "CoordinateSystem":
                    lps = value.strip().upper() in ("1", "LPS")
                elif key.strip() == "columns":
                    columns = [c.strip() for c in value.split(",")]
                continue
            if not text.strip():
                continue
            row = csv_row(path, text, i)
            record = dict(zip(columns, row))
            if len(row) < 4 or not all(a in record for a in ("x", "y", "z")):
                expected = ",".join(columns)
                raise LandmarkFileError(path, f"expected 'id,x,y,z,...' (columns {expected}), got {text!r}.", i)
            xyz = np.array([file_number(path, record[a], i, a) for a in ("x", "y", "z")])
            names.append(record.get("label", str(len(names) + 1)))
            visible.append(True)
            points.append(xyz * (LPS if lps else 1.0))
        if not points:
            raise LandmarkFileError(path, "has no fiducial rows.")
        return names, points, visible

    def _write(self, path, xyz, names, visible):
        if not visible.all():
            raise InputError(
                ".fcsv has no missing-point status: write .mrk.json or .json for partly visible landmarks."
            )
        lines = [
            "# Markups fiducial file version = 4.11",
            "# CoordinateSystem = 0",
            "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID",
        ]
        for k, (point, name) in enumerate(zip(xyz, names)):
            x, y, z = (repr(float(v)) for v in point)
            lines.append(f"vtkMRMLMarkupsFiducialNode_{k + 1},{x},{y},{z},0,0,0,1,1,1,0,{name},,")
        path.write_text("\n".join(lines) + "\n")


class _MarkupsJson(_Markups):
    suffix = ".mrk.json"

    def _points(self, path):
        data = load_json(path)
        markups = data.get("markups") if isinstance(data, dict) else None
        markup = markups[0] if isinstance(markups, list) and markups else None
        control_points = markup.get("controlPoints") if isinstance(markup, dict) else None
        if not isinstance(control_points, list):
            raise LandmarkFileError(path, "expected Slicer markups JSON with a list markups[0].controlPoints.")
        lps = str(markup.get("coordinateSystem", "LPS")).upper() == "LPS"
        names, points, visible = [], [], []
        for k, point in enumerate(control_points):
            if not isinstance(point, dict):
                raise LandmarkFileError(path, f"controlPoints[{k}] must be an object, got {type(point).__name__}.")
            shown = point.get("positionStatus", "defined") == "defined"
            names.append(str(point.get("label", k + 1)))
            visible.append(shown)
            if shown:
                position = point.get("position")
                if not isinstance(position, list) or len(position) != 3:
                    raise LandmarkFileError(path, f"controlPoints[{k}].position must be 3 numbers.")
                xyz = np.array([file_number(path, str(v), None, f"controlPoints[{k}].position") for v in position])
                points.append(xyz * (LPS if lps else 1.0))
            else:
                points.append(np.full(3, np.nan))
        if not points:
            raise LandmarkFileError(path, "has no control points.")
        return names, points, visible

    def _write(self, path, xyz, names, visible):
        points = []
        for k, (point, name, shown) in enumerate(zip(xyz, names, visible)):
            points.append(
                {
                    "id": str(k + 1),
                    "label": name,
                    "position": [float(v) for v in point] if shown else [0.0, 0.0, 0.0],
                    "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
                    "selected": True,
                    "locked": False,
                    "visibility": True,
                    "positionStatus": "defined" if shown else "missing",
                }
            )
        markup = {"type": "Fiducial", "coordinateSystem": "RAS", "coordinateUnits": "mm", "controlPoints": points}
        path.write_text(json.dumps({"@schema": MARKUPS_SCHEMA, "markups": [markup]}, indent=2) + "\n")


FCSV = _Fcsv()
MARKUPS_JSON = _MarkupsJson()
