"""A best-model saver whose tracking survives a resumed training."""

from __future__ import annotations

from monai.handlers import CheckpointSaver

__all__ = ["BestModelSaver"]


class BestModelSaver(CheckpointSaver):
    """MONAI's :class:`CheckpointSaver` with ``state_dict()``, so that the best key-metric value seen so far can be
    stored in the training checkpoint and restored on resume (MONAI's saver can load that state but not save it).
    Without it, the first validation after a resume would replace the best model by a possibly worse one.
    """

    def state_dict(self) -> dict:
        if self._key_metric_checkpoint is None:
            return {}
        return self._key_metric_checkpoint.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            super().load_state_dict(state_dict)
