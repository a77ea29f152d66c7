"""Runs that say what they did: one line per validation, and one line at the end of a training naming the model
it kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ignite.engine import Engine, Events

__all__ = ["ValidationLine", "TrainingSummary"]

logger = logging.getLogger("bundle")


def _metrics(engine: Engine) -> str:
    parts = []
    for name, value in engine.state.metrics.items():
        if isinstance(value, (int, float)):
            parts.append(f"{name} {value:.4g}")
    return ", ".join(parts)


class ValidationLine:
    """After each validation, one line: the training epoch, every metric, and the best key metric so far with its
    epoch (MONAI's evaluator keeps them).

    Args:
        max_epochs: the training's epochs, for "epoch e/E" (None: "epoch e").
    """

    def __init__(self, max_epochs: int | None = None):
        self.max_epochs = max_epochs

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = f"{engine.state.epoch}" + (f"/{self.max_epochs}" if self.max_epochs else "")
        best = getattr(engine.state, "best_metric", None)
        best_epoch = getattr(engine.state, "best_metric_epoch", None)
        name = getattr(engine.state, "key_metric_name", None)
        tail = f" (best {name} {best:.4g} at epoch {best_epoch})" if name and best is not None else ""
        logger.info(f"validation at epoch {epoch}: {_metrics(engine)}{tail}")


class TrainingSummary:
    """When the training ends, one line naming the best model's file, its epoch and its validation score (from the
    ``model.json`` that :class:`BestModelSaver` writes beside it), or saying that none was saved.

    Args:
        model_path: the best model's file (``models/model.pt``).
    """

    def __init__(self, model_path: str):
        self.model_path = Path(model_path)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        record_path = self.model_path.with_suffix(".json")
        if not record_path.is_file():
            logger.warning(f"training finished after {engine.state.epoch} epochs; no model was saved (no validation).")
            return
        record = json.loads(record_path.read_text())
        value = record.get("value")
        score = f"{record.get('metric')} {value:.4g}" if value is not None else "no score"
        logger.info(
            f"training finished: best model {self.model_path} (epoch {record.get('epoch')}, {score}); "
            f"{engine.state.epoch} epochs run."
        )
