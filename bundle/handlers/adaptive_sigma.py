"""Per-landmark heatmap sigma set during training by a policy (fixed, AdaLoss or the reinforcement-learning agent)."""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
from pathlib import Path
from typing import Sequence

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys, convert_to_tensor

from ..codecs import GaussianHeatmapCodec
from ..sigma.policies import SigmaObservation

__all__ = ["AdaptiveSigmaHandler"]

logger = logging.getLogger(__name__)


class AdaptiveSigmaHandler:
    """Give each landmark's heatmap target the sigma a policy chooses, every ``interval`` epochs, during training.

    Attach it to the trainer. It watches:

    - every training iteration: the loss of each landmark's channel (the training loss function with
      ``reduction="none"``, on ``pred`` and ``label`` of the iteration's output, averaged over batch and space);
    - every validation of ``validator``: each landmark's mean radial error, from the (N, K) errors the MRE handler
      keeps (``engine.state.metric_details[metric_name]``, its ``save_details``).

    After a validation that ends ``interval`` or more epochs after the last decision, the policy gets a
    :class:`~bundle.sigma.policies.SigmaObservation` and returns the next sigmas, which the handler writes to the
    codec (``codec.sigma``). The codec is the one the training targets are made with
    (:class:`bundle.transforms.GaussianHeatmapd` reads it at every call and is never cached by MONAI's caching
    datasets) and the one validation decodes with (with ``blur_sigma="sigma"``, DARK's blur follows it), so the very
    next epoch trains on the new targets.

    Logging: one row per landmark and decision in ``<log_dir>/sigma_history.csv`` (epoch, landmark, sigma before and
    after, action, reward, validation error, training loss and its variance, frozen), TensorBoard scalars
    ``sigma/<landmark>`` in ``log_dir``, and ``<log_dir>/sigma_history.png`` (sigma per landmark over the epochs)
    when the training completes. ``sigma.json`` holds the sigmas of the last decision and those the best
    validation's model was trained with, for decoding with them later (``--sigma``).

    Resume: put the handler in the resume checkpoint's ``save_dict`` (``configs/adaptive_sigma.json`` does); its
    ``state_dict`` holds the sigmas, the policy (weights, baseline, generator, frozen landmarks) and the windows.
    Rows of the CSV after the restored epoch (written by the interrupted run after its last checkpoint) are dropped.

    One process only: under ``torchrun`` with several processes it refuses to attach (each rank would decide on its
    own shard of the data).

    Args:
        codec: the heatmap codec of the training targets.
        policy: a :mod:`bundle.sigma.policies` policy with ``num_landmarks`` = K.
        loss: the training loss function (its ``reduction`` is replaced by ``"none"`` in a copy).
        validator: the evaluator whose validations drive the decisions.
        interval: epochs between decisions (a decision waits for the first validation at or after it).
        metric_name: the MRE handler's name in ``validator``.
        log_dir: where the CSV, the plot, ``sigma.json`` and the TensorBoard scalars go; None: no files.
        landmark_names: K names for the logs (default ``"0"``, ``"1"``, ...).
    """

    csv_name, plot_name, json_name = "sigma_history.csv", "sigma_history.png", "sigma.json"
    columns = (
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

    def __init__(
        self,
        codec: GaussianHeatmapCodec,
        policy,
        loss: torch.nn.Module,
        validator: Engine,
        interval: int = 5,
        metric_name: str = "val_mre",
        log_dir: str | None = None,
        landmark_names: Sequence[str] | None = None,
    ):
        if interval < 1:
            raise ValueError(f"interval must be >= 1 epoch, got {interval}.")
        k = policy.num_landmarks
        if landmark_names is not None and len(landmark_names) != k:
            raise ValueError(f"{len(landmark_names)} landmark names for a policy of {k} landmarks.")
        sigma = torch.as_tensor(codec.sigma, dtype=torch.float64).flatten()
        if sigma.numel() not in (1, k):
            raise ValueError(f"the codec has {sigma.numel()} sigmas, the policy {k} landmarks.")
        self.codec, self.policy, self.validator = codec, policy, validator
        self.elementwise_loss = copy.copy(loss)
        self.elementwise_loss.reduction = "none"
        self.interval, self.metric_name = int(interval), metric_name
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.names = [str(n) for n in landmark_names] if landmark_names is not None else [str(i) for i in range(k)]
        self.sigma = sigma.expand(k).clone()
        self.best_sigma = self.sigma.clone()
        self.best_error = float("inf")
        self.last_decision_epoch = 0
        self._reset_window()
        self._trainer: Engine | None = None
        self._resumed_epoch: int | None = None
        self._writer = None
        self._announced_done = False
        self._csv_checked = False

    # ------------------------------------------------------------------ wiring
    def attach(self, engine: Engine) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                raise ValueError(
                    "AdaptiveSigmaHandler does not support several processes yet (each would decide on its own shard "
                    "of the data, and the ranks' targets would differ): train with configs/adaptive_sigma.json on one "
                    "process."
                )
        self._trainer = engine
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_loss)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        self.validator.add_event_handler(Events.COMPLETED, self._validated)

    def _started(self, engine: Engine) -> None:
        self._set_codec(self.sigma)  # a resume checkpoint, loaded after this, sets the codec again

    def _set_codec(self, sigma: torch.Tensor) -> None:
        self.sigma = sigma.clone()
        self.codec.sigma = self.sigma.float().clone()

    # ------------------------------------------------------------------ statistics
    def _reset_window(self) -> None:
        self.window = {"count": 0, "sum": None, "sum_sq": None}

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
        per_landmark = convert_to_tensor(element.flatten(2).mean(-1), track_meta=False).double().cpu()  # (B, K)
        window = self.window
        window["count"] += per_landmark.shape[0]
        window["sum"] = per_landmark.sum(0) if window["sum"] is None else window["sum"] + per_landmark.sum(0)
        squares = (per_landmark**2).sum(0)
        window["sum_sq"] = squares if window["sum_sq"] is None else window["sum_sq"] + squares

    def _observation(self, engine: Engine, trainer: Engine) -> SigmaObservation | None:
        details = getattr(engine.state, "metric_details", {}) or {}
        errors = details.get(self.metric_name)
        if errors is None:
            raise RuntimeError(
                f"AdaptiveSigmaHandler needs the validator's per-landmark errors under metric_details"
                f"[{self.metric_name!r}]: give the evaluator a MeanRadialErrorHandler of that name with "
                "save_details=True."
            )
        errors = convert_to_tensor(errors, track_meta=False).double().reshape(-1, self.policy.num_landmarks)
        k = self.policy.num_landmarks
        nan = torch.full((k,), float("nan"), dtype=torch.float64)
        count = self.window["count"]
        if count:
            mean = self.window["sum"] / count
            var = (self.window["sum_sq"] / count - mean**2).clamp_min(0) * count / max(count - 1, 1)
        else:
            mean, var = nan, nan
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
        self._reset_window()
        self._log(epoch, before, step, observation)
        if self.policy.done and not self._announced_done:
            self._announced_done = True
            logger.info("adaptive sigma: every landmark is frozen at epoch %d; sigma %s", epoch, self._text())

    def _text(self) -> str:
        return ", ".join(f"{n} {s:.2f}" for n, s in zip(self.names, self.sigma.tolist()))

    # ------------------------------------------------------------------ logs
    def _log(self, epoch: int, before: torch.Tensor, step, observation: SigmaObservation) -> None:
        changed = sum(a in ("narrow", "widen") for a in step.actions)
        logger.info("adaptive sigma at epoch %d: %d landmark(s) changed; sigma %s", epoch, changed, self._text())
        if self.log_dir is None:
            return
        path = self.log_dir / self.csv_name
        if not self._csv_checked:  # a new run starts the history anew; a resumed one keeps its rows up to the resume
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._drop_rows_after(self._resumed_epoch if self._resumed_epoch is not None else 0)
            self._csv_checked = True
        new_file = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(self.columns)
            for k, name in enumerate(self.names):
                writer.writerow(
                    [
                        epoch,
                        k,
                        name,
                        f"{float(before[k]):.6g}",
                        f"{float(step.sigma[k]):.6g}",
                        step.actions[k],
                        _number(step.rewards[k]),
                        _number(observation.val_error[k]),
                        _number(observation.train_loss[k]),
                        _number(observation.train_loss_var[k]),
                        int(bool(self.policy.frozen[k])),
                    ]
                )
        writer = self._tensorboard()
        for name, value in zip(self.names, step.sigma.tolist()):
            writer.add_scalar(f"sigma/{name}", value, epoch)
        writer.add_scalar("sigma/frozen_landmarks", int(self.policy.frozen.sum()), epoch)
        writer.flush()
        self._write_json()

    def _tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def _write_json(self) -> None:
        record = {
            "landmark_names": self.names,
            "sigma": [round(s, 6) for s in self.sigma.tolist()],
            "best_sigma": [round(s, 6) for s in self.best_sigma.tolist()],
            "best_val_mre_mm": None if math.isinf(self.best_error) else self.best_error,
            "unit": "grid pixels",
        }
        (self.log_dir / self.json_name).write_text(json.dumps(record, indent=2) + "\n")

    def _drop_rows_after(self, epoch: int) -> None:
        path = self.log_dir / self.csv_name
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if int(r[0]) <= epoch]
        if len(kept) != len(rows):
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows(kept)

    def _completed(self, engine: Engine) -> None:
        if self.log_dir is None:
            return
        self._write_json()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        path = self.log_dir / self.csv_name
        if path.exists():
            plot_sigma_history(path, self.log_dir / self.plot_name)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        window = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in self.window.items()}
        return {
            "sigma": self.sigma.clone(),
            "best_sigma": self.best_sigma.clone(),
            "best_error": torch.tensor(self.best_error, dtype=torch.float64),
            "last_decision_epoch": self.last_decision_epoch,
            "window": window,
            "policy": self.policy.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.sigma = state["sigma"].clone().double()
        self.best_sigma = state["best_sigma"].clone().double()
        self.best_error = float(state["best_error"])
        self.last_decision_epoch = int(state["last_decision_epoch"])
        self.window = dict(state["window"])
        self.policy.load_state_dict(state["policy"])
        self._resumed_epoch = self.last_decision_epoch
        self._set_codec(self.sigma)


def _number(value) -> str:
    value = float(value)
    return "" if math.isnan(value) else f"{value:.6g}"


def plot_sigma_history(csv_path: str | Path, png_path: str | Path) -> None:
    """Plot sigma after each decision against the epoch, one line per landmark, from ``sigma_history.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, tuple[list[int], list[float]]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            epochs, sigmas = series.setdefault(row["name"], ([], []))
            if not epochs:
                epochs.append(0)
                sigmas.append(float(row["sigma_before"]))
            epochs.append(int(row["epoch"]))
            sigmas.append(float(row["sigma_after"]))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, (epochs, sigmas) in series.items():
        axes.step(epochs, sigmas, where="post", label=name, linewidth=1)
    axes.set_xlabel("epoch")
    axes.set_ylabel("sigma (grid pixels)")
    axes.set_title("Heatmap sigma per landmark")
    if len(series) <= 20:
        axes.legend(fontsize=6, ncol=2, loc="best")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
