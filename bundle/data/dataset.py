"""The training and validation dataset: MONAI's CacheDataset over landmark entries that it checks first."""

from __future__ import annotations

import logging
from typing import Sequence

from monai.data import CacheDataset

from ..errors import InputError
from .checks import check_datalist

logger = logging.getLogger(__name__)


class LandmarkCacheDataset(CacheDataset):
    """MONAI's :class:`~monai.data.CacheDataset` over landmark entries that it checks first (:func:`check_datalist`),
    wherever they come from: a datalist file, or MONAI Label, whose training task replaces the config's
    ``train#dataset#data`` and ``validate#dataset#data`` with its datastore's ``{"image": ..., "label": ...}``
    entries (``label``: the landmark file saved through MONAI Label, e.g. a 3D Slicer ``.mrk.json``). An entry
    without ``landmarks`` takes its ``label`` as the landmark file.

    A MONAI Label datastore is shared by every model the app serves, so datastore entries whose image has another
    number of spatial dimensions (a 3D volume, for a 2D model) are left out, with a warning that counts them; entries
    with ``landmarks`` (a datalist's) are never left out, and a wrong one is an error.

    Args:
        data: the entries.
        transform: as for :class:`~monai.data.CacheDataset`.
        num_landmarks, spatial_dims, default_spacing: as for :func:`check_datalist` (``default_spacing``: assumed for
            images without geometry whose entry gives no ``spacing``; the transforms' :class:`PixelSpacingd` must
            assume the same).
        name: the split's name, for messages.
        skip_bad: leave bad entries out (a warning names each) instead of refusing them all in one error (the
            config's ``skip_bad_labels``).
        landmark_names: the landmarks' names, for messages.
        checked: the entries were checked already (MONAI Label's training task checks the whole datastore before it
            splits it): taken as they are.
        kwargs: passed to :class:`~monai.data.CacheDataset` (``cache_rate``, ``num_workers``, ...).

    Raises:
        ValueError: no entries (e.g. a MONAI Label validation split of zero images), or a bad entry, by name.
    """

    def __init__(
        self,
        data: list,
        transform,
        num_landmarks: int,
        spatial_dims: int = 2,
        name: str = "datalist",
        default_spacing: list | None = None,
        skip_bad: bool = False,
        landmark_names: Sequence[str] | None = None,
        checked: bool = False,
        **kwargs,
    ):
        listed, stored = [], []  # a datalist's entries, and MONAI Label's datastore entries
        for entry in data or []:
            if isinstance(entry, dict) and not entry.get("landmarks") and entry.get("label"):
                stored.append({**entry, "landmarks": entry["label"]})
            else:
                listed.append(entry)
        if checked:
            entries = listed + stored
        else:
            check = {"num_landmarks": num_landmarks, "spatial_dims": spatial_dims, "name": name, "skip_bad": skip_bad}
            check["landmark_names"] = landmark_names
            entries = check_datalist(listed, default_spacing=default_spacing, **check)
            kept = check_datalist(stored, default_spacing=default_spacing, leave_out_other_dims=True, **check)
            if len(kept) < len(stored):
                logger.warning(
                    f"{name}: left out {len(stored) - len(kept)} datastore images that are not {spatial_dims}D."
                )
            entries += kept
        if not entries:
            raise InputError(
                f"{name}: no {spatial_dims}D entries. (Under MONAI Label: label more images, or give the training a "
                "validation split that holds at least one.)"
            )
        super().__init__(entries, transform, **kwargs)
