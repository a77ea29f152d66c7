"""Checkpoint savers: the best model, which says what it is and survives a resumed training, and resume checkpoints
that do not pile up."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from ignite.engine import Engine
from monai.handlers import CheckpointSaver

__all__ = ["BestModelSaver", "ResumeCheckpointSaver"]


class BestModelSaver(CheckpointSaver):
    """MONAI's :class:`CheckpointSaver` for the best model by key metric, with two additions.

    - ``state_dict()``, so that the best key-metric value seen so far can be stored in the training checkpoint and
      restored on resume (MONAI's saver can load that state but not save it). Without it, the first validation after
      a resume would replace the best model by a possibly worse one.
    - A sidecar JSON beside the model (``model.pt`` -> ``model.json``), rewritten with each new best:
      ``{"model": "model.pt", "epoch": e, "metric": "val_mre", "value": v, "saved": ISO time}``, so that whoever
      finds the file can tell which epoch and score it is (a training stopped early leaves an early model).
    """

    def __init__(self, save_dir: str, save_dict: dict, key_metric_filename: str | None = None, **kwargs):
        super().__init__(save_dir, save_dict, key_metric_filename=key_metric_filename, **kwargs)
        self.key_metric_filename = key_metric_filename

    def state_dict(self) -> dict:
        if self._key_metric_checkpoint is None:
            return {}
        return self._key_metric_checkpoint.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            super().load_state_dict(state_dict)

    def metrics_completed(self, engine: Engine) -> None:
        saved_before = list(self._key_metric_checkpoint._saved)
        super().metrics_completed(engine)
        saved = self._key_metric_checkpoint._saved
        if saved and saved != saved_before:  # a new best was written
            model = Path(self.save_dir) / (self.key_metric_filename or saved[-1].filename)
            metric = engine.state.key_metric_name if hasattr(engine.state, "key_metric_name") else None
            record = {
                "model": model.name,
                "epoch": int(engine.state.epoch),
                "metric": metric,
                "value": float(engine.state.metrics[metric]) if metric in engine.state.metrics else None,
                "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            model.with_suffix(".json").write_text(json.dumps(record, indent=4) + "\n")


class ResumeCheckpointSaver(CheckpointSaver):
    """MONAI's :class:`CheckpointSaver` for resume checkpoints (``<file_prefix>_checkpoint_epoch=N.pt``, as ignite
    names them) that also removes the older ones that earlier, resumed runs left in ``save_dir`` once it has saved
    its own: MONAI's saver rotates only what it saved itself (the newest ``n_saved``), so every resume would otherwise
    leave one more full checkpoint behind.
    """

    def __init__(self, save_dir: str, save_dict: dict, file_prefix: str = "", n_saved: int = 1, **kwargs):
        super().__init__(save_dir, save_dict, file_prefix=file_prefix, n_saved=n_saved, **kwargs)
        self.file_prefix, self.n_saved = file_prefix, int(n_saved)

    def interval_completed(self, engine: Engine) -> None:
        super().interval_completed(engine)
        # ignite names them <prefix>_checkpoint_epoch=N.pt, or <prefix>_<object>_epoch=N.pt for a single object;
        # the ones this saver wrote are ignite's to rotate, the older ones of earlier runs are ours to remove
        prefix = f"{self.file_prefix}_" if self.file_prefix else ""
        pattern = re.compile("^" + re.escape(prefix) + r"[A-Za-z0-9]+_epoch=(\d+)\.pt$")
        own = {item.filename for item in self._interval_checkpoint._saved}
        for path in Path(self.save_dir).glob("*.pt"):
            match = pattern.search(path.name)
            if match and path.name not in own and int(match.group(1)) < engine.state.epoch:
                path.unlink()
