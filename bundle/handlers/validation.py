"""Validation every ``interval`` epochs and after the last one."""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler

__all__ = ["PeriodicValidationHandler"]


class PeriodicValidationHandler(ValidationHandler):
    """MONAI's epoch-level :class:`~monai.handlers.ValidationHandler`, plus one validation when the training ends on
    an epoch that is not a multiple of ``interval`` (a short ``--max_epochs``, or a run stopped early). Without it, a
    training shorter than ``interval`` epochs never validates, so the best-model saver never writes ``model.pt``.

    Args:
        interval: validate every ``interval`` epochs.
        validator: the evaluator to run.
        exec_at_start: also validate before the first epoch.
    """

    def __init__(self, interval: int, validator=None, exec_at_start: bool = False):
        super().__init__(interval=interval, validator=validator, epoch_level=True, exec_at_start=exec_at_start)
        self._last_epoch = -1

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self._at_end)

    def __call__(self, engine: Engine) -> None:
        super().__call__(engine)
        self._last_epoch = engine.state.epoch

    def _at_end(self, engine: Engine) -> None:
        if engine.state.epoch > 0 and self._last_epoch != engine.state.epoch:
            self(engine)
