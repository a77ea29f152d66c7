"""AdaptiveSigmaHandler on small ignite engines, its overlay configs/adaptive_sigma.json, and the cache it must not
freeze."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from ignite.engine import Engine, Events
from monai.bundle import ConfigParser
from monai.data import CacheDataset
from monai.transforms import Compose, Lambdad

from bundle import CentralLoss, GaussianHeatmapCodec
from bundle.handlers import AdaptiveSigmaHandler, SigmaHistoryWriter
from bundle.sigma import ACTIONS, AdaLossSigma, FixedSigma, SigmaAgent
from bundle.transforms import GaussianHeatmapd
from tests.conftest import REPO_ROOT

K = 2
PRED = torch.linspace(-3, 3, K * 8 * 8).reshape(1, K, 8, 8)


def widening_agent() -> SigmaAgent:
    agent = SigmaAgent(K, learning_rate=0.0, exploration=0.0, patience=100)
    agent.weights[ACTIONS.index("widen"), 0] = 50.0
    return agent


def engines(codec: GaussianHeatmapCodec, errors: torch.Tensor, with_details: bool = True) -> tuple[Engine, Engine]:
    """A trainer whose every iteration outputs ``PRED`` and the codec's current target (as MONAI's trainer does,
    decollated), and a validator run after every epoch that stores the (N, K) ``errors`` as the MRE handler would."""

    def train_step(engine, batch):
        label, _ = codec.encode(torch.tensor([[2.0, 3.0], [5.0, 4.5]]), (8, 8))
        return [{"pred": PRED[0], "label": label, "loss": torch.tensor(0.0)}]

    validator = Engine(lambda e, b: None)

    @validator.on(Events.STARTED)
    def _details(engine):
        engine.state.metric_details = {"val_mre": errors} if with_details else {}

    trainer = Engine(train_step)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))
    return trainer, validator


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_decisions_reach_the_codec_and_are_published_and_written(tmp_path):
    codec = GaussianHeatmapCodec(2, sigma=2.0)
    errors = torch.tensor([[1.0, 3.0], [2.0, 5.0]], dtype=torch.float64)
    trainer, validator = engines(codec, errors)
    handler = AdaptiveSigmaHandler(
        codec, widening_agent(), CentralLoss(), validator, interval=2, landmark_names=["a", "b"]
    )
    handler.attach(trainer)
    SigmaHistoryWriter(handler, str(tmp_path)).attach(trainer)
    seen, published = [], []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(torch.as_tensor(codec.sigma).clone()))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: published.append(e.state.metrics["sigma_a"]))
    trainer.run([0, 1], max_epochs=4)

    # decisions after the validations of epochs 2 and 4; epoch 3 already trained on the widened targets
    assert [s.tolist() for s in seen] == [[2.0, 2.0], [2.0, 2.0], [2.5, 2.5], [2.5, 2.5]]
    assert torch.allclose(torch.as_tensor(codec.sigma), torch.tensor([3.125, 3.125]))
    # the trainer's metrics carry the sigmas, for MONAI's stats and TensorBoard handlers
    assert published == [2.0, 2.5, 2.5, 3.125] and trainer.state.metrics["sigma_frozen"] == 0
    rows = read_rows(tmp_path / "sigma_history.csv")
    assert [(r["epoch"], r["name"], r["action"]) for r in rows] == [
        ("2", "a", "widen"), ("2", "b", "widen"), ("4", "a", "widen"), ("4", "b", "widen"),
    ]  # fmt: skip
    assert [float(r["val_error_mm"]) for r in rows[:2]] == [1.5, 4.0]  # per landmark, over the images
    assert float(rows[2]["reward"]) == 0.0  # the same errors again: no improvement
    # per-landmark training loss: the loss of each channel on the targets of the window's sigma (2 here)
    label, _ = GaussianHeatmapCodec(2, sigma=2.0).encode(torch.tensor([[2.0, 3.0], [5.0, 4.5]]), (8, 8))
    expected = CentralLoss(reduction="none")(PRED, label[None]).mean((0, 2, 3))
    assert [float(r["train_loss"]) for r in rows[:2]] == pytest.approx(expected.tolist(), rel=1e-5)
    assert [float(r["train_loss_var"]) for r in rows[:2]] == pytest.approx([0.0, 0.0], abs=1e-12)
    record = json.loads((tmp_path / "sigma.json").read_text())
    assert record["sigma"] == [3.125, 3.125] and record["best_sigma"] == [2.0, 2.0]  # the best: the first validation
    assert not list(tmp_path.glob("events.out.tfevents.*"))  # no writer of its own: MONAI's handlers log the metrics


def test_the_default_names_are_those_of_landmark_files():
    handler = AdaptiveSigmaHandler(GaussianHeatmapCodec(2), FixedSigma(3), CentralLoss(), Engine(lambda e, b: None))
    assert handler.names == ["1", "2", "3"]


def test_a_resumed_handler_restores_sigma_policy_and_history_and_its_files_equal_an_unbroken_runs(tmp_path):
    errors = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    codec = GaussianHeatmapCodec(2, sigma=2.0)
    trainer, validator = engines(codec, errors)
    unbroken = AdaptiveSigmaHandler(codec, widening_agent(), CentralLoss(), validator, interval=2)
    unbroken.attach(trainer)
    SigmaHistoryWriter(unbroken, str(tmp_path / "unbroken")).attach(trainer)
    trainer.run([0, 1], max_epochs=4)

    codec1 = GaussianHeatmapCodec(2, sigma=2.0)
    trainer1, validator1 = engines(codec1, errors)
    first = AdaptiveSigmaHandler(codec1, widening_agent(), CentralLoss(), validator1, interval=2)
    first.attach(trainer1)
    SigmaHistoryWriter(first, str(tmp_path / "resumed")).attach(trainer1)
    trainer1.run([0, 1], max_epochs=2)
    state = first.state_dict()

    codec2 = GaussianHeatmapCodec(2, sigma=2.0)
    trainer2, validator2 = engines(codec2, errors)
    second = AdaptiveSigmaHandler(codec2, widening_agent(), CentralLoss(), validator2, interval=2)
    second.attach(trainer2)
    SigmaHistoryWriter(second, str(tmp_path / "resumed")).attach(trainer2)
    second.load_state_dict(state)
    assert torch.as_tensor(codec2.sigma).tolist() == [2.5, 2.5]
    trainer2.load_state_dict({"epoch": 2, "max_epochs": 4, "epoch_length": 2})
    trainer2.run([0, 1])
    for name in ("sigma_history.csv", "sigma.json"):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "unbroken" / name).read_text()
    assert torch.allclose(torch.as_tensor(codec2.sigma), torch.tensor([3.125, 3.125]))


def test_missing_per_landmark_errors_or_outputs_are_errors_not_silence():
    codec = GaussianHeatmapCodec(2, sigma=2.0)
    trainer, validator = engines(codec, torch.ones(1, K), with_details=False)
    AdaptiveSigmaHandler(codec, widening_agent(), CentralLoss(), validator, interval=1).attach(trainer)
    with pytest.raises(RuntimeError, match="save_details=True"):
        trainer.run([0], max_epochs=1)

    bare = Engine(lambda e, b: {"loss": torch.tensor(0.0)})
    AdaptiveSigmaHandler(codec, widening_agent(), CentralLoss(), Engine(lambda e, b: None)).attach(bare)
    with pytest.raises(RuntimeError, match="'pred'"):
        bare.run([0], max_epochs=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"interval": 0}, "interval"),
        ({"landmark_names": ["a"]}, "1 landmark names"),
        ({"codec": GaussianHeatmapCodec(2, sigma=[1.0, 2.0, 3.0])}, "3 sigmas"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    settings = {"codec": GaussianHeatmapCodec(2), "policy": widening_agent(), "loss": CentralLoss(), **kwargs}
    with pytest.raises(ValueError, match=match):
        AdaptiveSigmaHandler(validator=Engine(lambda e, b: None), **settings)


def test_a_cached_dataset_makes_targets_with_the_sigma_of_the_moment():
    """MONAI's CacheDataset caches up to the first random transform; the target transform must not be cached even
    with no random transform before it (a config without augmentation), or a changed sigma would never arrive."""
    codec = GaussianHeatmapCodec(2, sigma=2.0)
    transform = Compose(
        [Lambdad("image", lambda x: x), GaussianHeatmapd("points", codec=codec, ref_key="image", output_key="label")]
    )
    dataset = CacheDataset([{"image": torch.zeros(1, 32, 32), "points": torch.tensor([[10.0, 12.0]])}], transform)
    narrow = dataset[0]["label"]
    codec.sigma = 4.0
    wide = dataset[0]["label"]
    assert wide.sum() > 3.5 * narrow.sum()
    assert torch.equal(wide, codec.encode(torch.tensor([[10.0, 12.0]]), (32, 32))[0])


def _overlay(*overrides: dict) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO_ROOT / "configs" / c) for c in ("train.json", "demo.json", "adaptive_sigma.json")])
    for override in overrides:
        parser.update(override)
    return parser


@pytest.mark.parametrize("name, kind", [("rl", SigmaAgent), ("adaloss", AdaLossSigma), ("fixed", FixedSigma)])
def test_the_overlay_switches_the_handler_on_with_each_policy(name, kind):
    parser = _overlay({"sigma_policy": name, "device": "$torch.device('cpu')"})
    handler = parser.get_parsed_content("adaptive_sigma")
    assert isinstance(handler.policy, kind) and handler.policy.num_landmarks == 6
    assert handler.codec is parser.get_parsed_content("heatmap_codec")
    assert parser.get_parsed_content("heatmap_codec").blur_sigma == "sigma"
    assert any(h is handler for h in parser.get_parsed_content("train#handlers"))
    assert parser.get_parsed_content("train#checkpoint#save_dict")["adaptive_sigma"] is handler
    # the validation decodes with the codec the handler changes
    decode = parser.get_parsed_content("validate#postprocessing").transforms[1]
    assert decode.codec is handler.codec


def test_an_unknown_policy_name_is_refused():
    parser = _overlay({"sigma_policy": "agent", "device": "$torch.device('cpu')"})
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the error of a component it instantiates
        parser.get_parsed_content("adaptive_sigma")
    assert "sigma_policy must be one of ['adaloss', 'fixed', 'rl'], got 'agent'" in str(raised.value.__cause__)


def test_several_processes_are_refused_and_one_is_not(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    handler = AdaptiveSigmaHandler(GaussianHeatmapCodec(2), widening_agent(), CentralLoss(), Engine(lambda e, b: None))
    with pytest.raises(ValueError, match="several processes"):
        handler.attach(Engine(lambda e, b: None))
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 1)
    handler.attach(Engine(lambda e, b: None))


class SpyPolicy(FixedSigma):
    """The fixed policy, keeping what it was shown."""

    def __init__(self, num_landmarks: int):
        super().__init__(num_landmarks)
        self.observations = []

    def step(self, sigma, observation):
        self.observations.append(observation)
        return super().step(sigma, observation)


def test_the_policy_sees_the_loss_mean_and_variance_of_the_window_and_the_progress(tmp_path):
    """Per-landmark training loss: mean and sample variance over the window's images; progress = epoch / max_epochs;
    a validation before the first epoch decides nothing."""
    codec = GaussianHeatmapCodec(2, sigma=2.0)
    label, _ = codec.encode(torch.tensor([[2.0, 3.0], [5.0, 4.5]]), (8, 8))
    scales = iter([1.0, 2.0, 0.5, 3.0, 1.5, 2.5, 1.0, 1.0])

    def train_step(engine, batch):
        return [{"pred": PRED[0] * next(scales), "label": label}]

    validator = Engine(lambda e, b: None)
    validator.add_event_handler(
        Events.STARTED, lambda e: setattr(e.state, "metric_details", {"val_mre": torch.ones(1, K)})
    )
    trainer = Engine(train_step)
    trainer.add_event_handler(Events.STARTED, lambda e: validator.run([0]))  # as exec_at_start would
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))
    policy = SpyPolicy(K)
    handler = AdaptiveSigmaHandler(codec, policy, CentralLoss(), validator, interval=2)
    handler.attach(trainer)
    trainer.run([0, 1], max_epochs=4)

    assert [o.progress for o in policy.observations] == [0.5, 1.0]
    losses = torch.stack([CentralLoss(reduction="none")(PRED * s, label[None]).mean((0, 2, 3)) for s in
                          (1.0, 2.0, 0.5, 3.0)]).double()  # fmt: skip
    assert torch.allclose(policy.observations[0].train_loss, losses.mean(0), rtol=1e-5)
    assert torch.allclose(policy.observations[0].train_loss_var, losses.var(0), rtol=1e-4)
    assert [r["epoch"] for r in handler.history] == [2, 2, 4, 4]
