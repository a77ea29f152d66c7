"""A landmark set: the facts of one data set's landmarks, in a file of their own under ``configs/landmark_sets/``.

A set holds what every config of a model must agree on and what belongs to the anatomy rather than to the pipeline:

- ``names``: the K landmark names, in the order of the network's output channels and of the landmark files
  (K is derived from them: ``num_landmarks`` is ``len(names)`` in every config);
- ``spatial_dims``: 2 or 3, the dimension of the images (checked against the configs' own);
- ``sdr_radii``: the radii (mm, or normalised mm) of the successful-detection rates that training and evaluation
  report;
- ``normalize_pair``: two landmark indices whose distance normalises errors (the hand's wrist width), or null;
- ``measurements``: the clinical measurements over named landmarks (:mod:`bundle.analysis.measurements`), [] for none;
- ``tracing``: pairs of names the overlay and the report join with a line, [] for none;
- ``title``: the report's title.

``configs/inference.json`` and ``configs/train.json`` read the set named by ``landmark_set_file``
(``@bundle_root + '/configs/landmark_sets/<name>.json'``, so ``--bundle_root`` and MONAI Label's served folders read
their own); an overlay for another data set names its own set instead of cancelling the cephalometric one. A relative
path that is not there (``bundle_root`` left at ``"."`` in a run started from another folder) is looked up in the
bundle's own folder, beside this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import MeasurementSet
from .errors import InputError, MissingFileError
from .io.files import read_json

__all__ = ["LandmarkSet", "load_landmark_set", "bundled_landmark_set", "LANDMARK_SETS"]

BUNDLE_FOLDER = Path(__file__).resolve().parents[1]  # the bundle's root: this package, configs/, models/
LANDMARK_SETS = BUNDLE_FOLDER / "configs" / "landmark_sets"

_KEYS = {"_desc_", "names", "spatial_dims", "sdr_radii", "normalize_pair", "measurements", "tracing", "title"}


@dataclass(frozen=True)
class LandmarkSet:
    """One data set's landmarks (see the module docstring for the fields); checked when built.

    Raises:
        InputError: no names, a name repeated or empty, a tracing or a measurement that names an unknown landmark,
            a normalising pair out of range, radii that are not positive, an unknown key.
    """

    names: list[str]
    spatial_dims: int = 2
    sdr_radii: list[float] = field(default_factory=lambda: [2.0, 2.5, 3.0, 4.0])
    normalize_pair: list[int] | None = None
    measurements: list[dict] = field(default_factory=list)
    tracing: list[list[str]] = field(default_factory=list)
    title: str = "Landmarks"
    source: str = "the landmark set"

    def __post_init__(self):
        where = self.source
        if not isinstance(self.names, list) or not self.names:
            raise InputError(f"{where}: 'names' must be a non-empty list of landmark names.")
        if any(not isinstance(n, str) or not n.strip() for n in self.names):
            raise InputError(f"{where}: every name must be a non-empty string, got {self.names}.")
        repeated = sorted({n for n in self.names if self.names.count(n) > 1})
        if repeated:
            raise InputError(f"{where}: names {repeated} are repeated; each landmark needs its own name.")
        if self.spatial_dims not in (2, 3):
            raise InputError(f"{where}: spatial_dims must be 2 or 3, got {self.spatial_dims!r}.")
        if not self.sdr_radii or any(not float(r) > 0 for r in self.sdr_radii):
            raise InputError(f"{where}: sdr_radii must be positive numbers, got {self.sdr_radii}.")
        if self.normalize_pair is not None:
            pair = list(self.normalize_pair)
            if len(pair) != 2 or len(set(pair)) != 2 or any(not 0 <= int(i) < self.num_landmarks for i in pair):
                raise InputError(
                    f"{where}: normalize_pair must be two different landmark indices in 0..{self.num_landmarks - 1}, "
                    f"got {self.normalize_pair}."
                )
        for pair in self.tracing:
            if len(pair) != 2 or any(name not in self.names for name in pair):
                raise InputError(f"{where}: the tracing line {pair} must join two of the set's names {self.names}.")
        try:
            MeasurementSet(self.measurements, self.names, self.spatial_dims)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None

    @property
    def num_landmarks(self) -> int:
        return len(self.names)


def load_landmark_set(path: str | os.PathLike) -> LandmarkSet:
    """Read a landmark set file (JSON, the fields of :class:`LandmarkSet`).

    Raises:
        MissingFileError: no such file.
        InputError: not JSON, not an object, an unknown key, or a set that fails :class:`LandmarkSet`'s checks;
            the message names the file.
    """
    path = Path(path)
    if not path.is_absolute() and not path.is_file() and (BUNDLE_FOLDER / path).is_file():
        path = BUNDLE_FOLDER / path
    if not path.is_file():
        raise MissingFileError(f"the landmark set {path} is missing (configs/landmark_sets/ holds the bundle's sets).")
    data = read_json(path, "the landmark set")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a landmark set is a JSON object with 'names', got {type(data).__name__}.")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown} (a landmark set has {sorted(_KEYS - {'_desc_'})}).")
    fields = {k: v for k, v in data.items() if k != "_desc_"}
    return LandmarkSet(**fields, source=str(path))


def bundled_landmark_set(name: str) -> LandmarkSet:
    """One of the bundle's own sets by name (``isbi2015``, ``hand``, ``chest``, ``afids``, ``demo``), from
    ``configs/landmark_sets/`` beside this package."""
    return load_landmark_set(LANDMARK_SETS / f"{name}.json")
