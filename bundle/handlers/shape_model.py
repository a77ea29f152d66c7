"""The shape model of a training's landmark configurations, written beside its weights when the training starts."""

from __future__ import annotations

import logging
import os
from typing import Sequence

from ignite.engine import Engine, Events

from ..data import shape_model_from_datalist

__all__ = ["ShapeModelWriter"]

logger = logging.getLogger(__name__)


class ShapeModelWriter:
    """Fit a :class:`bundle.shape.ShapeModel` to the training entries and write it to ``path`` (``shape_model.json``
    beside ``model.pt``) when the trainer starts, so that inference with the new weights judges plausibility with
    the anatomy they were trained on. The model depends on the training landmarks only, so a resumed training
    writes the same file again.

    Args:
        dataset: the training dataset (its ``data``: the checked entries, from a datalist or MONAI Label's datastore).
        path: the file to write.
        landmark_names: K names.
        spatial_dims: D.
        default_spacing: as the dataset assumes it for pictures without a spacing.
        modes: the model's principal directions (see :func:`bundle.shape.shape_model_from_datalist`).
    """

    def __init__(
        self,
        dataset,
        path: str | os.PathLike,
        landmark_names: Sequence[str],
        spatial_dims: int = 2,
        default_spacing: Sequence[float] | None = None,
        modes: int | None = 20,
    ):
        self.dataset, self.path = dataset, path
        self.landmark_names, self.spatial_dims = list(landmark_names), int(spatial_dims)
        self.default_spacing, self.modes = default_spacing, modes

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        model = shape_model_from_datalist(
            self.dataset.data, self.landmark_names, self.spatial_dims, self.default_spacing, self.modes
        )
        model.save(self.path)
        logger.info(f"shape model of {model.count} training configurations written to {self.path}")
