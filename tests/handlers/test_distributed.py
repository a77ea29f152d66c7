"""Handlers under torchrun: those marked first-process-only attach in the first process alone."""

from __future__ import annotations

import json

from ignite.engine import Engine, Events

from bundle.handlers import FirstProcessOnly
from bundle.handlers import distributed as distributed_module
from tests.conftest import REPO_ROOT


class _Counter:
    def __init__(self):
        self.calls = 0

    def attach(self, engine):
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda _: setattr(self, "calls", self.calls + 1))


def test_a_marked_handler_runs_in_the_first_process_and_nowhere_else(monkeypatch):
    for first, expected in ((True, 3), (False, 0)):
        monkeypatch.setattr(distributed_module, "first_process", lambda first=first: first)
        counter, engine = _Counter(), Engine(lambda e, b: None)
        FirstProcessOnly(counter).attach(engine)
        engine.run([0, 1, 2])
        assert counter.calls == expected


def test_one_process_is_the_first():
    assert distributed_module.first_process() is True  # no process group here


def test_the_training_marks_what_it_says_or_writes_once_and_torchrun_needs_no_list():
    train = json.loads((REPO_ROOT / "configs" / "train.json").read_text())
    marked = [h["handler"]["_target_"] for h in train["train"]["handlers"] if "FirstProcessOnly" in h["_target_"]]
    assert marked == [
        "bundle.handlers.ShapeModelWriter",
        "TensorBoardStatsHandler",
        "ignite.handlers.ProgressBar",
        "bundle.handlers.TrainingSummary",
    ]
    multi = json.loads((REPO_ROOT / "configs" / "multi_gpu_train.json").read_text())
    assert not any("handlers" in key and key.startswith("train#") for key in multi)
