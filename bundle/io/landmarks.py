"""Landmark files: read and write CSV, JSON, the ISBI 2015 text format, 3D Slicer ``.fcsv`` and ``.mrk.json``.

One in-memory form, :class:`Landmarks`: names, coordinates (K, D) in **world millimetres** and a visibility mask.
World coordinates are those of the image's affine as MONAI reads it: for 2D PNG/JPEG/BMP images, ``pixel * spacing``
on MONAI's array axes (x = column, y = row, origin at the centre of the first pixel); for NIfTI and other 3D formats,
RAS (MONAI's readers convert ITK's LPS to RAS). Coordinates of landmarks that are not visible are NaN.

File formats (the format follows the suffix, or ``fmt=``):

- ``.csv``: a header ``name,x,y[,z][,visible]`` and one landmark a row, world mm. ``visible`` is 1/0 (optional).
- ``.json``: ``{"landmarks": [{"index": k, "name": ..., "world": [...], "visible": true, ...}, ...]}`` (the bundle's
  output format; ``pixel``, ``confidence`` and other keys are kept out of the in-memory form and written when given).
- ``.txt``: the ISBI 2015 annotation format: the first ``num_landmarks`` lines (19) are ``x,y`` in **pixels**
  (x = column, y = row); further lines (classification labels) are ignored. Needs ``spacing`` (0.1 mm for ISBI).
- ``.fcsv``: 3D Slicer markups fiducial CSV. ``# CoordinateSystem = 0``/``RAS`` or ``1``/``LPS`` (converted to RAS).
- ``.mrk.json``: 3D Slicer markups JSON; read in its ``coordinateSystem`` (RAS or LPS), written in RAS.

For ``spatial_dims=2`` the Slicer formats hold the point in the z = 0 plane; reading a 2D point from them drops z.
For a 2D picture without geometry (PNG, JPEG, ...), give ``picture_spacing``: 3D Slicer loads such a picture at 1 mm
per pixel with its LPS axes along the pixel axes, so a point placed on it is at RAS (-column, -row, 0); with
``picture_spacing`` the Slicer formats are read and written in that frame (world = pixel * spacing), so that they
overlay the picture in Slicer. Without it they hold world millimetres (RAS), right for images with geometry.

Any malformed file raises :class:`LandmarkFileError` naming the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..geometry import map_points, spacing_affine
from .files import refuse_existing

__all__ = ["Landmarks", "LandmarkFileError", "read_landmarks", "write_landmarks", "landmark_format", "landmarks_record"]

FORMATS = ("csv", "json", "isbi", "fcsv", "mrk.json")
MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)


class LandmarkFileError(ValueError):
    """A landmark file that cannot be read as asked: the message names the file and the line (1-based)."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        super().__init__(path, message, line)  # all arguments, so that pickling and copying rebuild the error
        self.path, self.message, self.line = str(path), message, line

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class Landmarks:
    """K landmarks in D dimensions.

    Attributes:
        coordinates: (K, D) float64 world coordinates in mm; NaN rows where not visible.
        names: K names (default "1".."K").
        visible: (K,) bool; defaults to "coordinates are finite".
    """

    coordinates: np.ndarray
    names: list[str] = field(default_factory=list)
    visible: np.ndarray | None = None

    def __post_init__(self):
        self.coordinates = np.asarray(self.coordinates, dtype=np.float64)
        if self.coordinates.ndim != 2 or self.coordinates.shape[1] not in (2, 3):
            raise ValueError(f"coordinates must be (K, 2) or (K, 3), got {self.coordinates.shape}.")
        k = self.coordinates.shape[0]
        self.names = [str(n) for n in self.names] if self.names else [str(i + 1) for i in range(k)]
        if len(self.names) != k:
            raise ValueError(f"{len(self.names)} names for {k} landmarks.")
        finite = np.isfinite(self.coordinates).all(1)
        self.visible = finite if self.visible is None else np.asarray(self.visible, dtype=bool).copy()
        if self.visible.shape != (k,):
            raise ValueError(f"visible must have shape ({k},), got {self.visible.shape}.")
        if (self.visible & ~finite).any():
            raise ValueError("a landmark marked visible has non-finite coordinates.")
        self.coordinates = np.where(self.visible[:, None], self.coordinates, np.nan)

    def __len__(self) -> int:
        return self.coordinates.shape[0]

    @property
    def spatial_dims(self) -> int:
        return self.coordinates.shape[1]


def landmark_format(path: str | os.PathLike) -> str:
    """The format name of a path from its suffix: one of :data:`FORMATS`."""
    name = str(path).lower()
    for suffix, fmt in (
        (".mrk.json", "mrk.json"),
        (".json", "json"),
        (".csv", "csv"),
        (".fcsv", "fcsv"),
        (".txt", "isbi"),
    ):
        if name.endswith(suffix):
            return fmt
    raise LandmarkFileError(path, "unknown landmark file suffix; expected one of .csv, .json, .txt, .fcsv, .mrk.json.")


def _number(path, text: str, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}, not a number.", line) from None
    if not math.isfinite(value):
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}, not a finite number.", line)
    return value


def _read_lines(path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise LandmarkFileError(path, "file not found.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LandmarkFileError(path, f"cannot be read as text ({e}).") from None


def _read_isbi(path, spacing, num_landmarks) -> Landmarks:
    if spacing is None:
        raise LandmarkFileError(path, "ISBI text files hold pixels: give the pixel spacing (0.1 mm for ISBI 2015).")
    k = 19 if num_landmarks is None else num_landmarks
    lines = _read_lines(path)
    if len(lines) < k:
        raise LandmarkFileError(path, f"has {len(lines)} lines; expected at least {k} lines 'x,y'.")
    points = []
    for i, text in enumerate(lines[:k]):
        parts = text.replace(" ", "").split(",")
        if len(parts) != 2:
            raise LandmarkFileError(path, f"expected 'x,y', got {text!r}.", i + 1)
        points.append([_number(path, p, i + 1, axis) for p, axis in zip(parts, "xy")])
    if np.asarray(spacing).size != 2:
        raise LandmarkFileError(path, f"ISBI text files are 2D: give 2 spacings (x, y), got {spacing}.")
    try:
        affine = spacing_affine(spacing)
    except ValueError as e:
        raise LandmarkFileError(path, str(e)) from None
    return Landmarks(map_points(np.asarray(points), affine).numpy())


def _csv_row(path, text: str, line: int) -> list[str]:
    try:
        return next(csv.reader([text]), [])
    except csv.Error as e:  # e.g. a NUL character
        raise LandmarkFileError(path, f"is not CSV ({e}).", line) from None


def _read_csv(path, spatial_dims) -> Landmarks:
    lines = _read_lines(path)
    rows = [_csv_row(path, text, i) for i, text in enumerate(lines, start=1)]
    if not rows:
        raise LandmarkFileError(path, "is empty; expected a header 'name,x,y[,z][,visible]'.", 1)
    header = [h.strip().lower() for h in rows[0]]
    axes = [a for a in ("x", "y", "z") if a in header]
    if header[:1] != ["name"] or axes not in (["x", "y"], ["x", "y", "z"]):
        raise LandmarkFileError(path, f"header must be 'name,x,y[,z][,visible]', got {lines[0]!r}.", 1)
    if spatial_dims is not None and len(axes) != spatial_dims:
        raise LandmarkFileError(path, f"has {len(axes)}D coordinates; expected {spatial_dims}D.", 1)
    names, points, visible = [], [], []
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise LandmarkFileError(path, f"has {len(row)} fields; the header has {len(header)}.", i)
        record = dict(zip(header, row))
        shown = record.get("visible", "1").strip().lower() not in ("0", "false", "no")
        names.append(record["name"].strip())
        visible.append(shown)
        points.append([_number(path, record[a], i, a) if shown else np.nan for a in axes])
    if not points:
        raise LandmarkFileError(path, "has no landmark rows.")
    return Landmarks(np.asarray(points), names, np.asarray(visible))


def _read_json(path, spatial_dims) -> Landmarks:
    data = _load_json(path)
    items = data.get("landmarks") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise LandmarkFileError(path, "expected an object with a non-empty list 'landmarks'.")
    names, points, visible = [], [], []
    for k, item in enumerate(items):
        shown = bool(item.get("visible", True)) if isinstance(item, dict) else True
        world = item.get("world") if isinstance(item, dict) else None
        if shown and (not isinstance(world, list) or len(world) not in (2, 3)):
            raise LandmarkFileError(path, f"landmarks[{k}] needs 'world': a list of 2 or 3 numbers in mm.")
        names.append(str(item.get("name", k + 1)))
        visible.append(shown)
        if shown:
            points.append([_number(path, str(v), None, f"landmarks[{k}].world") for v in world])
        else:
            points.append(None)
    dims = spatial_dims or next((len(p) for p in points if p is not None), 2)
    if any(p is not None and len(p) != dims for p in points):
        raise LandmarkFileError(path, f"landmarks must all have {dims} coordinates.")
    points = [p if p is not None else [np.nan] * dims for p in points]
    return Landmarks(np.asarray(points), names, np.asarray(visible))


def _load_json(path):
    text = "\n".join(_read_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LandmarkFileError(path, f"is not valid JSON ({e.msg}).", e.lineno) from None


def _lps_sign(dims: int) -> np.ndarray:
    return np.array([-1.0, -1.0, 1.0][:dims])


def _read_fcsv(path, spatial_dims) -> Landmarks:
    lines = _read_lines(path)
    lps = False
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatedNodeID"]
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
        row = _csv_row(path, text, i)
        record = dict(zip(columns, row))
        if len(row) < 4 or not all(a in record for a in ("x", "y", "z")):
            raise LandmarkFileError(path, f"expected 'id,x,y,z,...' (columns {','.join(columns)}), got {text!r}.", i)
        xyz = np.array([_number(path, record[a], i, a) for a in ("x", "y", "z")])
        names.append(record.get("label", str(len(names) + 1)))
        visible.append(True)
        points.append(xyz * (_lps_sign(3) if lps else 1.0))
    if not points:
        raise LandmarkFileError(path, "has no fiducial rows.")
    return _to_dims(path, Landmarks(np.asarray(points), names, np.asarray(visible)), spatial_dims)


def _read_mrk_json(path, spatial_dims) -> Landmarks:
    data = _load_json(path)
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
            xyz = np.array([_number(path, str(v), None, f"controlPoints[{k}].position") for v in position])
            points.append(xyz * (_lps_sign(3) if lps else 1.0))
        else:
            points.append(np.full(3, np.nan))
    if not points:
        raise LandmarkFileError(path, "has no control points.")
    return _to_dims(path, Landmarks(np.asarray(points), names, np.asarray(visible)), spatial_dims)


def _picture_sign() -> np.ndarray:
    """RAS <-> pixel axes of a picture in 3D Slicer (LPS along the pixel axes): x and y change sign."""
    return np.array([-1.0, -1.0])


def _spacing2(spacing) -> np.ndarray:
    spacing = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if spacing.shape != (2,) or not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise ValueError(f"picture_spacing must be 2 positive numbers (mm per pixel, x and y), got {spacing.tolist()}.")
    return spacing


def _to_dims(path, landmarks: Landmarks, spatial_dims: int | None) -> Landmarks:
    if spatial_dims in (None, 3):
        return landmarks
    z = landmarks.coordinates[landmarks.visible, 2]
    if np.any(np.abs(z) > 1e-6):
        raise LandmarkFileError(path, "2D landmarks were asked for, but some points have z != 0.")
    return Landmarks(landmarks.coordinates[:, :2], landmarks.names, landmarks.visible)


def read_landmarks(
    path: str | os.PathLike,
    num_landmarks: int | None = None,
    spacing: Sequence[float] | None = None,
    spatial_dims: int | None = None,
    fmt: str | None = None,
    picture_spacing: Sequence[float] | None = None,
) -> Landmarks:
    """Read a landmark file into world millimetres.

    Args:
        path: the file.
        num_landmarks: the expected count K; a file with another count raises (for ``.txt``, the number of lines read,
            19 by default).
        spacing: pixel spacing in mm per axis (x, y[, z]); required for the ISBI text format (pixels), else ignored.
        spatial_dims: 2 or 3 if known (a 2D point from a Slicer file drops z = 0).
        fmt: one of :data:`FORMATS`; by default from the suffix.
        picture_spacing: for 2D landmarks of a picture without geometry, its spacing (x, y): Slicer files then hold
            Slicer's frame of the picture (see the module's docstring).

    Raises:
        LandmarkFileError: missing or unreadable file, wrong count, text or NaN where a number belongs.
    """
    fmt = landmark_format(path) if fmt is None else fmt
    if fmt == "isbi":
        landmarks = _read_isbi(path, spacing, num_landmarks)
    elif fmt == "csv":
        landmarks = _read_csv(path, spatial_dims)
    elif fmt == "json":
        landmarks = _read_json(path, spatial_dims)
    elif fmt == "fcsv":
        landmarks = _read_fcsv(path, spatial_dims)
    elif fmt == "mrk.json":
        landmarks = _read_mrk_json(path, spatial_dims)
    else:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}.")
    if fmt in ("fcsv", "mrk.json") and picture_spacing is not None and landmarks.spatial_dims == 2:
        landmarks = Landmarks(
            _picture_sign() * landmarks.coordinates * _spacing2(picture_spacing), landmarks.names, landmarks.visible
        )
    if num_landmarks is not None and len(landmarks) != num_landmarks:
        raise LandmarkFileError(path, f"has {len(landmarks)} landmarks; expected {num_landmarks}.")
    return landmarks


def write_landmarks(
    path: str | os.PathLike,
    landmarks: Landmarks,
    overwrite: bool = False,
    fmt: str | None = None,
    spacing: Sequence[float] | None = None,
    extra: dict | None = None,
    picture_spacing: Sequence[float] | None = None,
) -> Path:
    """Write landmarks; refuses to replace an existing file unless ``overwrite``.

    Args:
        path: destination.
        landmarks: what to write (world mm).
        overwrite: replace an existing file.
        fmt: one of :data:`FORMATS`; by default from the suffix.
        spacing: for the ISBI text format, mm per pixel (the points are rounded to whole pixels as the format has).
        extra: JSON only: per-landmark extra fields, a dict of name -> list of K values (e.g. ``"pixel"``,
            ``"confidence"``), and top-level fields under the key ``"_top"`` (e.g. ``{"image": ..., "spacing": ...}``).
        picture_spacing: for 2D landmarks of a picture without geometry, its spacing (x, y): Slicer files are then
            written in Slicer's frame of the picture (see the module's docstring).
    """
    path = Path(path)
    refuse_existing(path, overwrite, "pass overwrite=True to replace it.")
    fmt = landmark_format(path) if fmt is None else fmt
    coords, names, visible = landmarks.coordinates, landmarks.names, landmarks.visible
    dims = landmarks.spatial_dims
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        axes = ["x", "y", "z"][:dims]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", *axes, "visible"])
            for name, point, shown in zip(names, coords, visible):
                writer.writerow([name, *(repr(float(v)) if shown else "" for v in point), int(shown)])
    elif fmt == "json":
        path.write_text(json.dumps(landmarks_record(landmarks, extra), indent=2) + "\n")
    elif fmt == "isbi":
        if spacing is None or not visible.all():
            raise ValueError("the ISBI text format needs spacing and holds only visible landmarks.")
        pixels = np.rint(map_points(coords, spacing_affine(spacing), invert=True).numpy()).astype(int)
        path.write_text("".join(f"{x},{y}\n" for x, y in pixels))
    elif fmt in ("fcsv", "mrk.json"):
        if dims == 2 and picture_spacing is not None:
            coords = _picture_sign() * coords / _spacing2(picture_spacing)
        xyz = np.concatenate([coords, np.zeros((len(coords), 3 - dims))], 1) if dims == 2 else coords
        (_write_fcsv if fmt == "fcsv" else _write_mrk_json)(path, xyz, names, visible)
    else:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}.")
    return path


def landmarks_record(landmarks: Landmarks, extra: dict | None = None) -> dict:
    """The ``.json`` format's content as a dict: ``{**extra["_top"], "landmarks": [{"index": k, "name": ...,
    "world": [...] or None, "visible": bool, **per-landmark extra}, ...]}`` (see :func:`write_landmarks`)."""
    extra = dict(extra or {})
    top = extra.pop("_top", {})
    items = []
    for k, (name, point, shown) in enumerate(zip(landmarks.names, landmarks.coordinates, landmarks.visible)):
        item = {"index": k, "name": name, "world": [float(v) for v in point] if shown else None, "visible": bool(shown)}
        item.update({key: _plain(values[k]) for key, values in extra.items()})
        items.append(item)
    return {**top, "landmarks": items}


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def _write_fcsv(path: Path, xyz: np.ndarray, names: list[str], visible: np.ndarray) -> None:
    if not visible.all():
        raise ValueError(".fcsv has no missing-point status: write .mrk.json or .json for partly visible landmarks.")
    lines = [
        "# Markups fiducial file version = 4.11",
        "# CoordinateSystem = 0",
        "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID",
    ]
    for k, (point, name) in enumerate(zip(xyz, names)):
        x, y, z = (repr(float(v)) for v in point)
        lines.append(f"vtkMRMLMarkupsFiducialNode_{k + 1},{x},{y},{z},0,0,0,1,1,1,0,{name},,")
    path.write_text("\n".join(lines) + "\n")


def _write_mrk_json(path: Path, xyz: np.ndarray, names: list[str], visible: np.ndarray) -> None:
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
