"""A conformal calibration of error radii, from an evaluation run on images that neither trained nor selected the
weights."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events

from ..errors import OutputExistsError
from ..switches import as_bool
from ..uncertainty import ErrorCalibration

__all__ = ["ErrorCalibrationWriter"]

logger = logging.getLogger(__name__)


class ErrorCalibrationWriter:
    """Collect each image's radial errors and difficulty features (``pred_landmarks`` against ``true_landmarks``;
    ``pred_spread``, ``pred_confidence``) and, when the evaluator completes, fit an
    :class:`bundle.uncertainty.ErrorCalibration` and write it to ``path`` under ``pipeline``.

    An existing calibration of that pipeline in the file is refused at the start unless ``overwrite``.

    Args:
        path: the calibration file (``calibration.json`` beside the weights).
        pipeline: ``"both_stages"`` or ``"first_stage"``.
        coverages: the coverages to calibrate.
        description: what the calibration images are (kept in the file).
        per_landmark: one quantile per landmark (Mondrian); otherwise one for all, pooled.
        overwrite: replace an existing calibration of this pipeline.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        pipeline: str,
        coverages: Sequence[float] = (0.8, 0.9, 0.95),
        description: str = "",
        per_landmark: bool = False,
        overwrite: bool = False,
    ):
        self.path, self.pipeline = Path(path), str(pipeline)
        self.coverages, self.description, self.overwrite = [float(c) for c in coverages], description, overwrite
        self.per_landmark = as_bool(per_landmark, "per_landmark")
        self.errors: list[np.ndarray] = []
        self.features: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _started(self, engine: Engine) -> None:
        if self.path.is_file() and not as_bool(self.overwrite, "overwrite"):
            existing = json.loads(self.path.read_text()).get("pipelines", {})
            if self.pipeline in existing:
                raise OutputExistsError(
                    f"{self.path} already calibrates {self.pipeline!r}: pass --overwrite true or another --ckpt_dir."
                )
        self.errors, self.features = [], []

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            pred = torch.as_tensor(item["pred_landmarks"], dtype=torch.float64).cpu()
            true = torch.as_tensor(item["true_landmarks"], dtype=torch.float64).cpu()
            self.errors.append(torch.linalg.vector_norm(pred - true, dim=-1).numpy())
            self.features.append(
                np.stack(
                    [
                        torch.as_tensor(item["pred_spread"], dtype=torch.float64).cpu().numpy(),
                        torch.as_tensor(item["pred_confidence"], dtype=torch.float64).cpu().numpy(),
                    ],
                    -1,
                )
            )

    def _write(self, engine: Engine) -> None:
        calibration = ErrorCalibration.fit(
            np.stack(self.errors),
            np.nan_to_num(np.stack(self.features)),
            self.coverages,
            self.description,
            per_landmark=self.per_landmark,
        )
        calibration.save(self.path, self.pipeline)
        quantiles = ", ".join(f"{c:g}: {np.median(q):.3f}" for c, q in sorted(calibration.quantiles.items()))
        logger.info(
            f"error calibration of {self.pipeline!r} on {calibration.images} images written to {self.path} "
            f"(score quantiles{', medians over the landmarks' if self.per_landmark else ''} {quantiles})"
        )
