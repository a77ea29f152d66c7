"""Per-landmark heatmap sigma set during training by a policy (fixed, AdaLoss or the reinforcement-learning agent):
the handler that decides, and the writer of its history."""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys, convert_to_tensor

from ..codecs import GaussianHeatmapCodec
from ..errors import InputError
from ..io.files import write_whole
from ..sigma.policies import SigmaObservation

__all__ = ["AdaptiveSigmaHandler", "SigmaHistoryWriter"]

logger = logging.getLogger(__name__)

COLUMNS = (
    "epoch",
    "landmark",
    "name",
    "sigma_before",
    "sigma_after",
    "action",
    "reward",
    "val_error_mm",
    "train_loss",
    "train_loss_var",
    "frozen",
)


class LossWindow:
    """Each landmark's training loss over the images since the last decision: count, mean and sample variance."""

    def __init__(self):
        self.count, self.total, self.squares = 0, None, None

    def add(self, per_landmark: torch.Tensor) -> None:
        """(B, K) losses of one iteration's images."""
        self.count += per_landmark.shape[0]
        total, squares = per_landmark.sum(0), (per_landmark**2).sum(0)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares

    def mean_var(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) mean and sample variance; NaN for an empty window of ``count`` landmarks."""
        if not self.count:
            nan = torch.full((count,), float("nan"), dtype=torch.float64)
            return nan, nan
        mean = self.total / self.count
        var = (self.squares / self.count - mean**2).clamp_min(0) * self.count / max(self.count - 1, 1)
        return mean, var

    def state_dict(self) -> dict:
        return {"count": self.count, "sum": self.total, "sum_sq": self.squares}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.total, self.squares = state["count"], state["sum"], state["sum_sq"]


class AdaptiveSigmaHandler:
    """Give each landmark's heatmap target the sigma a policy chooses, every ``interval`` epochs, during training.

    Attach it to the trainer. It watches every training iteration (the loss of each landmark's channel: the training
    loss function with ``reduction="none"`` on the output's ``pred`` and ``label``, averaged over batch and space) and
    every validation of ``validator`` (each landmark's mean radial error, from the (N, K) errors that the MRE handler
    keeps in ``engine.state.metric_details[metric_name]``, its ``save_details``).

    After a validation that ends ``interval`` or more epochs after the last decision, the policy gets a
    :class:`~bundle.sigma.policies.SigmaObservation` and returns the next sigmas, which the handler writes to the
    codec (``codec.sigma``). The codec is the one the training targets are made with
    (:class:`bundle.transforms.GaussianHeatmapd` reads it at every call and is never cached by MONAI's caching
    datasets) and the one validation decodes with (with ``blur_sigma="sigma"``, DARK's blur follows it), so the very
    next epoch trains on the new targets.

    What it publishes: the sigmas in the trainer's ``engine.state.metrics`` (``sigma_<name>`` per landmark and
    ``sigma_frozen``, the count of frozen landmarks), where MONAI's ``StatsHandler`` and ``TensorBoardStatsHandler``
    find them; one line per decision in the log; and ``history``, one record per landmark and decision, which
    :class:`SigmaHistoryWriter` writes to files.

    Resume: put the handler in the resume checkpoint's ``save_dict`` (``configs/adaptive_sigma.json`` does); its
    ``state_dict`` holds the sigmas, the best validation's sigmas, the policy (weights, baseline, generator, frozen
    landmarks), the loss window and the history, so a resumed run continues exactly.

    One process only: under ``torchrun`` with several processes it refuses to attach (each rank would decide on its
    own shard of the data).

    Args:
        codec: the heatmap codec of the training targets.
        policy: a :mod:`bundle.sigma.policies` policy with ``num_landmarks`` = K.
        loss: the training loss function (its ``reduction`` is replaced by ``"none"`` in a copy).
        validator: the evaluator whose validations drive the decisions.
        interval: epochs between decisions (a decision waits for the first validation at or after it).
        metric_name: the MRE handler's name in ``validator``.
        landmark_names: K names (default ``"1"`` .. ``"K"``, as :class:`bundle.io.Landmarks` names them).
    """

    def __init__(
        self,
        codec: GaussianHeatmapCodec,
        policy,
        loss: torch.nn.Module,
        validator: Engine,
        interval: int = 5,
        metric_name: str = "val_mre",
        landmark_names: Sequence[str] | None = None,
    ):
        if interval < 1:
            raise InputError(f"interval must be >= 1 epoch, got {interval}.")
        k = policy.num_landmarks
        if landmark_names is not None and len(landmark_names) != k:
            raise InputError(f"{len(landmark_names)} landmark names for a policy of {k} landmarks.")
        sigma = torch.as_tensor(codec.sigma, dtype=torch.float64).flatten()
        if sigma.numel() not in (1, k):
            raise InputError(f"the codec has {sigma.numel()} sigmas, the policy {k} landmarks.")
        self.codec, self.policy, self.validator = codec, policy, validator
        self.elementwise_loss = copy.copy(loss)
        self.elementwise_loss.reduction = "none"
        self.interval, self.metric_name = int(interval), metric_name
        self.names = [str(n) for n in landmark_names] if landmark_names is not None else [str(i + 1) for i in range(k)]
        self.sigma = sigma.expand(k).clone()
        self.best_sigma = self.sigma.clone()
        self.best_error = float("inf")
        self.last_decision_epoch = 0
        self.window = LossWindow()
        self.history: list[dict] = []
        self._trainer: Engine | None = None
        self._announced_done = False

    # ------------------------------------------------------------------ wiring
    def attach(self, engine: Engine) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                raise InputError(
                    "AdaptiveSigmaHandler does not support several processes yet (each would decide on its own shard "
                    "of the data, and the ranks' targets would differ): train with configs/adaptive_sigma.json on one "
                    "process."
                )
        self._trainer = engine
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_loss)
        self.validator.add_event_handler(Events.COMPLETED, self._validated)

    def _started(self, engine: Engine) -> None:
        self._set_codec(self.sigma)  # a resume checkpoint, loaded after this, sets the codec again
        self._publish()

    def _set_codec(self, sigma: torch.Tensor) -> None:
        self.sigma = sigma.clone()
        self.codec.sigma = self.sigma.float().clone()

    def _publish(self) -> None:
        if self._trainer is None:
            return
        metrics = self._trainer.state.metrics
        for name, value in zip(self.names, self.sigma.tolist()):
            metrics[f"sigma_{name}"] = float(value)
        metrics["sigma_frozen"] = int(self.policy.frozen.sum())

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def _collect_loss(self, engine: Engine) -> None:
        output = engine.state.output  # a dict, or a list of one dict per image (MONAI's decollate)
        items = output if isinstance(output, list) else [output]
        if not items or not all(isinstance(i, dict) and CommonKeys.PRED in i and CommonKeys.LABEL in i for i in items):
            raise RuntimeError(
                "AdaptiveSigmaHandler needs the trainer's output to hold 'pred' (logits) and 'label' (the heatmap "
                "targets), as MONAI's SupervisedTrainer gives them."
            )
        if isinstance(output, list):
            pred = torch.stack([torch.as_tensor(i[CommonKeys.PRED]) for i in items])
            label = torch.stack([torch.as_tensor(i[CommonKeys.LABEL]) for i in items])
        else:
            pred, label = output[CommonKeys.PRED], output[CommonKeys.LABEL]
        element = self.elementwise_loss(torch.as_tensor(pred).float(), torch.as_tensor(label).float())
        self.window.add(convert_to_tensor(element.flatten(2).mean(-1), track_meta=False).double().cpu())  # (B, K)

    def _observation(self, engine: Engine, trainer: Engine) -> SigmaObservation:
        details = getattr(engine.state, "metric_details", {}) or {}
        errors = details.get(self.metric_name)
        if errors is None:
            raise RuntimeError(
                f"AdaptiveSigmaHandler needs the validator's per-landmark errors under metric_details"
                f"[{self.metric_name!r}]: give the evaluator a MeanRadialErrorHandler of that name with "
                "save_details=True."
            )
        errors = convert_to_tensor(errors, track_meta=False).double().reshape(-1, self.policy.num_landmarks)
        mean, var = self.window.mean_var(self.policy.num_landmarks)
        max_epochs = trainer.state.max_epochs or 1
        return SigmaObservation(errors.nanmean(0), mean, var, min(1.0, trainer.state.epoch / max_epochs))

    # ------------------------------------------------------------------ decisions
    def _validated(self, engine: Engine) -> None:
        trainer = self._trainer
        if trainer is None or trainer.state.epoch == 0:
            return
        observation = self._observation(engine, trainer)
        overall = float(observation.val_error.nanmean())
        if overall < self.best_error:  # the model validated now was trained with the current sigmas
            self.best_error, self.best_sigma = overall, self.sigma.clone()
        epoch = trainer.state.epoch
        if epoch - self.last_decision_epoch < self.interval:
            return
        before = self.sigma.clone()
        step = self.policy.step(before, observation)
        self._set_codec(step.sigma)
        self.last_decision_epoch = epoch
        self.window = LossWindow()
        self._record(epoch, before, step, observation)
        self._publish()
        changed = sum(a in ("narrow", "widen") for a in step.actions)
        logger.info("adaptive sigma at epoch %d: %d landmark(s) changed; sigma %s", epoch, changed, self._text())
        if self.policy.done and not self._announced_done:
            self._announced_done = True
            logger.info("adaptive sigma: every landmark is frozen at epoch %d; sigma %s", epoch, self._text())

    def _text(self) -> str:
        return ", ".join(f"{n} {s:.2f}" for n, s in zip(self.names, self.sigma.tolist()))

    def _record(self, epoch: int, before: torch.Tensor, step, observation: SigmaObservation) -> None:
        for k, name in enumerate(self.names):
            self.history.append(
                {
                    "epoch": epoch,
                    "landmark": k,
                    "name": name,
                    "sigma_before": float(before[k]),
                    "sigma_after": float(step.sigma[k]),
                    "action": step.actions[k],
                    "reward": float(step.rewards[k]),
                    "val_error_mm": float(observation.val_error[k]),
                    "train_loss": float(observation.train_loss[k]),
                    "train_loss_var": float(observation.train_loss_var[k]),
                    "frozen": int(bool(self.policy.frozen[k])),
                }
            )

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        return {
            "sigma": self.sigma.clone(),
            "best_sigma": self.best_sigma.clone(),
            "best_error": torch.tensor(self.best_error, dtype=torch.float64),
            "last_decision_epoch": self.last_decision_epoch,
            "window": self.window.state_dict(),
            "policy": self.policy.state_dict(),
            "history": copy.deepcopy(self.history),
        }

    def load_state_dict(self, state: dict) -> None:
        self.sigma = state["sigma"].clone().double()
        self.best_sigma = state["best_sigma"].clone().double()
        self.best_error = float(state["best_error"])
        self.last_decision_epoch = int(state["last_decision_epoch"])
        self.window = LossWindow()
        self.window.load_state_dict(state["window"])
        self.policy.load_state_dict(state["policy"])
        self.history = copy.deepcopy(state.get("history", []))
        self._set_codec(self.sigma)
        self._publish()


class SigmaHistoryWriter:
    """Write an :class:`AdaptiveSigmaHandler`'s decisions to ``<output_dir>/sigma_history.csv`` (one row per landmark
    and decision: epoch, landmark, sigma before and after, action, reward, validation error, training loss and its
    variance, frozen) and its sigmas to ``<output_dir>/sigma.json`` (those of the last decision, and those the best
    validation's model was trained with, for decoding with them later: ``--sigma``), after every epoch that made a
    decision and when the training completes. Both files are written whole from the handler's history, so a resumed
    run's files are exactly an unbroken run's.

    Args:
        handler: the :class:`AdaptiveSigmaHandler`.
        output_dir: where the files go.
    """

    csv_name, json_name = "sigma_history.csv", "sigma.json"

    def __init__(self, handler: AdaptiveSigmaHandler, output_dir: str | os.PathLike):
        self.handler, self.output_dir = handler, Path(output_dir)
        self._written = -1

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _epoch_completed(self, engine: Engine) -> None:
        if len(self.handler.history) != self._written:
            self.write(engine)

    def write(self, engine: Engine | None = None) -> None:
        write_whole(self.output_dir / self.csv_name, self._history)
        handler = self.handler
        record = {
            "landmark_names": handler.names,
            "sigma": [round(s, 6) for s in handler.sigma.tolist()],
            "best_sigma": [round(s, 6) for s in handler.best_sigma.tolist()],
            "best_val_mre_mm": None if math.isinf(handler.best_error) else handler.best_error,
            "unit": "grid pixels",
        }
        (self.output_dir / self.json_name).write_text(json.dumps(record, indent=2) + "\n")
        self._written = len(handler.history)

    def _history(self, f) -> None:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in self.handler.history:
            writer.writerow([_cell(row[c]) for c in COLUMNS])


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)
