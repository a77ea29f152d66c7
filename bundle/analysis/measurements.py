"""Clinical measurements over named landmarks: angles, distances, ratios, signed distances and sums of them, each
with its unit, normal range and classes, and an interval from the landmarks' error radii.

A measurement is declared in the config (``measurements``), never coded: the cephalometric model declares the eight
of the ISBI 2015 challenge's second task and common Steiner/Downs ones (``configs/inference.json``), another model
declares its own in an overlay, and a model without definitions computes none. MONAI has no measurement component;
this module is small, NumPy, and N-D where the geometry allows (angles, distances and ratios in 3D; signed angles
and sides need a plane, so 2D only).

Geometry is computed in the frame the network saw (array millimetres, :func:`bundle.geometry.array_frame`), where a
cephalogram faces right (+x anterior) and y points down whatever the file's orientation; signs are defined there:

- ``angle``: at ``points[1]`` between the rays to ``points[0]`` and ``points[2]``, 0 to 180 degrees.
- ``angle_between``: between the directed lines ``points[0] -> points[1]`` and ``points[2] -> points[3]``, 0 to 180
  degrees; with ``sign``, signed by the turn from the first to the second: ``"clockwise"`` positive when the second
  turns clockwise as displayed (y down), ``"counterclockwise"`` the other way (2D only).
- ``distance``: between ``points[0]`` and ``points[1]``, mm; with ``sign_axis`` (0 = x), negative when ``points[1]``
  lies before ``points[0]`` on that axis.
- ``ratio``: the distance ``points[0]``-``points[1]`` over ``points[2]``-``points[3]``.
- ``signed_distance``: from ``points[0]`` to the line ``points[1] -> points[2]``, mm, positive on the side that a
  clockwise turn from the line's direction points to (2D only); ``scale`` -1 flips it.
- ``sum``: ``terms``, a list of ``[measurement name, weight]`` declared before it.

Classes: a list of ``{"class": n, "name": ..., "min": a, "max": b, "min_inclusive": true, "max_inclusive": true}``
(a missing bound is open); a value takes the first class that holds it, so the order decides ties. The class marked
``"normal": true`` gives the normal range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["Measurement", "MeasurementSet", "KINDS"]

KINDS = {"angle": 3, "angle_between": 4, "distance": 2, "ratio": 4, "signed_distance": 3, "sum": 0}
UNITS = {"angle": "deg", "angle_between": "deg", "distance": "mm", "ratio": "", "signed_distance": "mm"}
SIGNED_2D = ("signed_distance",)
_EPS = 1e-9  # mm: shorter vectors are degenerate


@dataclass
class Measurement:
    """One declared measurement (see the module docstring for the fields)."""

    name: str
    kind: str
    points: list = field(default_factory=list)
    unit: str = ""
    classes: list = field(default_factory=list)
    sign: str | None = None
    sign_axis: int | None = None
    scale: float = 1.0
    terms: list = field(default_factory=list)
    description: str = ""

    @property
    def normal(self) -> list | None:
        for c in self.classes:
            if c.get("normal"):
                return [c.get("min"), c.get("max")]
        return None

    def classify(self, value: float | None) -> dict | None:
        """The first class holding ``value`` (None for no value or no class)."""
        if value is None:
            return None
        for c in self.classes:
            low, high = c.get("min"), c.get("max")
            if low is not None and (value < low or (value == low and not c.get("min_inclusive", True))):
                continue
            if high is not None and (value > high or (value == high and not c.get("max_inclusive", True))):
                continue
            return c
        return None

    def thresholds(self) -> list[float]:
        return sorted({b for c in self.classes for b in (c.get("min"), c.get("max")) if b is not None})


def _unit(vector: np.ndarray) -> np.ndarray | None:
    length = np.linalg.norm(vector, axis=-1, keepdims=True)
    return np.where(length > _EPS, vector / np.maximum(length, _EPS), np.nan)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle in degrees between (..., D) vectors; NaN where one is degenerate."""
    cosine = np.sum(_unit(u) * _unit(v), axis=-1)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def _cross2(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(q - p, axis=-1)
    return np.where(d > _EPS, d, np.nan)


class MeasurementSet:
    """The declared measurements of a model, checked against its landmark names, computed on configurations.

    Args:
        definitions: the config's list of measurement dicts (see the module docstring).
        landmark_names: the model's K names.
        spatial_dims: D; signed kinds need D = 2.

    Raises:
        InputError: a definition names an unknown landmark, kind or earlier measurement, has the wrong number of
            points, or asks for a sign in 3D (naming the definition).
    """

    def __init__(self, definitions: Sequence[Mapping], landmark_names: Sequence[str], spatial_dims: int = 2):
        self.names = [str(n) for n in landmark_names]
        self.spatial_dims = int(spatial_dims)
        self.measurements: list[Measurement] = []
        for i, definition in enumerate(definitions or []):
            self.measurements.append(self._check(i, dict(definition)))

    def _check(self, i: int, d: dict) -> Measurement:
        name = str(d.get("name", f"measurements[{i}]"))
        where = f"measurement {name!r}"
        kind = d.get("kind")
        if kind not in KINDS:
            raise InputError(f"{where}: kind {kind!r} is not one of {tuple(KINDS)}.")
        points = [str(p) for p in d.get("points", [])]
        if kind != "sum" and len(points) != KINDS[kind]:
            raise InputError(f"{where}: a {kind} takes {KINDS[kind]} landmarks, got {len(points)}.")
        unknown = [p for p in points if p not in self.names]
        if unknown:
            raise InputError(f"{where}: unknown landmark {unknown[0]!r} (the model's are {self.names}).")
        earlier = {m.name for m in self.measurements}
        terms = [[str(t[0]), float(t[1])] for t in d.get("terms", [])]
        if kind == "sum" and (not terms or any(t[0] not in earlier for t in terms)):
            missing = [t[0] for t in terms if t[0] not in earlier]
            raise InputError(f"{where}: a sum needs terms of measurements declared before it (unknown {missing}).")
        sign = d.get("sign")
        if sign not in (None, "clockwise", "counterclockwise"):
            raise InputError(f"{where}: sign must be 'clockwise' or 'counterclockwise', got {sign!r}.")
        if self.spatial_dims != 2 and (sign is not None or kind in SIGNED_2D):
            raise InputError(f"{where}: a signed {kind} needs a plane (2D); this model is {self.spatial_dims}D.")
        if name in earlier:
            raise InputError(f"{where}: declared twice.")
        for c in d.get("classes", []):
            if "class" not in c or "name" not in c:
                raise InputError(f"{where}: each class needs a 'class' number and a 'name', got {c}.")
        unit = d.get("unit", UNITS.get(kind, ""))
        if kind == "sum" and "unit" not in d:
            unit = next((m.unit for m in self.measurements if m.name == terms[0][0]), "")
        return Measurement(
            name, kind, points, unit, list(d.get("classes", [])), sign, d.get("sign_axis"), float(d.get("scale", 1.0)),
            terms, str(d.get("description", "")),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.measurements)

    def values(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """Every measurement of configurations (..., K, D) in mm (the frame of the module docstring): name -> (...)
        values, NaN where the geometry is degenerate or a landmark is missing."""
        points = np.asarray(points, dtype=np.float64)
        at = {n: points[..., k, :] for k, n in enumerate(self.names)}
        out: dict[str, np.ndarray] = {}
        for m in self.measurements:
            p = [at[n] for n in m.points]
            if m.kind == "angle":
                value = _angle(p[0] - p[1], p[2] - p[1])
            elif m.kind == "angle_between":
                u, v = p[1] - p[0], p[3] - p[2]
                value = _angle(u, v)
                if m.sign is not None:
                    turn = _cross2(u, v)
                    positive = turn >= 0 if m.sign == "clockwise" else turn <= 0
                    value = np.where(positive, value, -value)
            elif m.kind == "distance":
                value = _distance(p[0], p[1])
                if m.sign_axis is not None:
                    value = np.where(p[1][..., int(m.sign_axis)] >= p[0][..., int(m.sign_axis)], value, -value)
            elif m.kind == "ratio":
                value = _distance(p[0], p[1]) / _distance(p[2], p[3])
            elif m.kind == "signed_distance":
                line = p[2] - p[1]
                length = np.linalg.norm(line, axis=-1)
                value = np.where(length > _EPS, _cross2(line, p[0] - p[1]) / np.maximum(length, _EPS), np.nan)
            else:  # sum
                value = sum(weight * out[term] for term, weight in m.terms)
            out[m.name] = value * m.scale
        return out

    def evaluate(
        self,
        points: np.ndarray,
        radii: np.ndarray | None = None,
        coverage: float = 0.9,
        review: np.ndarray | None = None,
        samples: int = 500,
        seed: int = 0,
    ) -> dict:
        """The measurements of one configuration (K, D) mm as the output record holds them: ``{name: {"value",
        "unit", "interval", "class", "class_name", "normal", "borderline", "review", "review_landmarks",
        "reason"}}``.

        The interval: each landmark drawn ``samples`` times from an isotropic Gaussian whose ``coverage`` radius is
        its error radius (``radii`` (K,) mm), the measurement computed on each draw, and the central ``coverage``
        share of its values kept. Borderline: the interval holds a class threshold. Review: one of its landmarks is
        flagged (``review`` (K,) bool) or has no finite position. A degenerate geometry gives ``None`` and a reason.
        """
        points = np.asarray(points, dtype=np.float64)
        count, dims = points.shape
        value = self.values(points)
        draws = None
        if radii is not None and np.isfinite(radii).all() and samples > 0:
            # the radius holding `coverage` of an isotropic Gaussian in D dims: sigma * sqrt(chi2_D quantile)
            scale = math.sqrt(_chi2_quantile(coverage, dims))
            sigma = np.asarray(radii, dtype=np.float64) / scale
            rng = np.random.default_rng(seed)
            noise = rng.standard_normal((samples, count, dims)) * sigma[None, :, None]
            draws = self.values(points[None] + noise)
        flagged = np.zeros(count, bool) if review is None else np.asarray(review, bool)
        missing = ~np.isfinite(points).all(1)
        index = {n: k for k, n in enumerate(self.names)}
        result = {}
        for m in self.measurements:
            used = self._landmarks(m)
            v = float(value[m.name])
            item = {
                "value": v if math.isfinite(v) else None,
                "unit": m.unit,
                "interval": None,
                "class": None,
                "class_name": None,
                "normal": m.normal,
                "borderline": False,
                "review": bool(any(flagged[index[n]] or missing[index[n]] for n in used)),
                "review_landmarks": [n for n in used if flagged[index[n]] or missing[index[n]]],
                "reason": None,
            }
            if item["value"] is None:
                item["reason"] = "degenerate geometry: two of its landmarks coincide, or one is missing"
                item["review"] = True
                result[m.name] = item
                continue
            chosen = m.classify(item["value"])
            if chosen is not None:
                item["class"], item["class_name"] = chosen["class"], chosen["name"]
            if draws is not None:
                values = draws[m.name][np.isfinite(draws[m.name])]
                if len(values):
                    tail = (1.0 - coverage) / 2.0
                    low, high = np.quantile(values, [tail, 1.0 - tail])
                    item["interval"] = [float(low), float(high)]
                    item["borderline"] = any(low <= t <= high for t in m.thresholds()) and bool(m.classes)
            result[m.name] = item
        return result

    def _landmarks(self, m: Measurement) -> list[str]:
        if m.kind != "sum":
            return list(dict.fromkeys(m.points))
        by_name = {x.name: x for x in self.measurements}
        return list(dict.fromkeys(n for term, _ in m.terms for n in self._landmarks(by_name[term])))


def _chi2_quantile(coverage: float, dims: int) -> float:
    """The ``coverage`` quantile of chi-square with ``dims`` degrees of freedom (closed form in 2D)."""
    if dims == 2:
        return -2.0 * math.log(1.0 - coverage)
    from scipy.stats import chi2

    return float(chi2.ppf(coverage, dims))
