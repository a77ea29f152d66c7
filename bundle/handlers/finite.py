"""Stop a training whose loss or weights stop being finite, with an error that says where and what to do."""

from __future__ import annotations

import math

import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys

from ..errors import DivergedError

__all__ = ["NonFiniteGuard"]


class NonFiniteGuard:
    """Raise :class:`FloatingPointError` as soon as the training loss, or any of ``network``'s parameters, is NaN or
    infinite.

    Why: a diverged training otherwise runs on to ``max_epochs`` printing ``train_loss: nan``, saves resume
    checkpoints of NaN weights every epoch and exits 0 (a paper-size ISBI run with float16 autocast did exactly that
    on an H100; see ``docs/studies/gpu.md``), or it crashes without a word: a backward pass through ``grid_sample`` with
    non-finite sampling points ends the process with a segmentation fault on the CPU.

    The loss is checked when MONAI's trainers fire ``LOSS_COMPLETED``, before the backward pass (engines without that
    event: after the iteration); the parameters after each iteration, since a step can make weights non-finite from
    a finite loss. Both run before the epoch-level checkpoint saver, so the last resume checkpoint always holds finite
    weights and the run can go on from it with ``--resume_training true`` after lowering ``max_learning_rate`` or
    changing ``amp_dtype``. ignite's ``TerminateOnNan`` ends the run quietly instead, which would leave a
    half-trained model looking like a finished one.

    Args:
        network: the trained network, whose parameters are checked too; None checks the loss only.
        loss_key: where the engine's output holds the loss (MONAI: ``"loss"``).
    """

    def __init__(self, network: torch.nn.Module | None = None, loss_key: str = CommonKeys.LOSS):
        self.network = network
        self.loss_key = loss_key

    def attach(self, engine: Engine) -> None:
        loss_event = IterationEvents.LOSS_COMPLETED
        engine.add_event_handler(
            loss_event if loss_event in engine._allowed_events else Events.ITERATION_COMPLETED, self.check_loss
        )
        if self.network is not None:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.check_parameters)

    def check_loss(self, engine: Engine) -> None:
        output = engine.state.output
        if isinstance(output, (list, tuple)):  # decollated: every item carries the batch loss
            output = output[0]
        value = float(torch.as_tensor(output[self.loss_key]).detach().float().sum())
        if not math.isfinite(value):
            self._fail(engine, f"the training loss is {value}")

    def check_parameters(self, engine: Engine) -> None:
        names, params = zip(*self.network.named_parameters())
        finite = torch.stack([torch.isfinite(p.detach()).all() for p in params])
        if not bool(finite.all()):  # one device synchronisation per iteration, not one per tensor
            bad = [n for n, ok in zip(names, finite.tolist()) if not ok]
            self._fail(engine, f"{len(bad)} parameter tensor(s) are no longer finite (first: {bad[0]})")

    @staticmethod
    def _fail(engine: Engine, problem: str) -> None:
        state = engine.state
        remedy = "lowering max_learning_rate, or with mixed precision off (--amp false)"
        if state.epoch > 1:
            remedy = (
                "The last resume checkpoint (end of the previous epoch) holds finite weights: continue from it with "
                f"--resume_training true after {remedy}"
            )
        else:
            remedy = f"Start again after {remedy}"
        raise DivergedError(
            f"Training diverged: {problem} at epoch {state.epoch}, iteration {state.iteration}. {remedy}."
        )
