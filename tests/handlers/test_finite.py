"""NonFiniteGuard: a diverging training stops at once with a readable error, before a backward pass or an optimizer
step touches the weights, and a healthy one is left alone."""

from __future__ import annotations

import copy

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer

from bundle.errors import user_error
from bundle.handlers import NonFiniteGuard


def _batches(n: int, nan_at: int | None = None) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(n):
        image = torch.randn(2, 3, generator=generator)
        if index == nan_at:
            image[0, 0] = float("nan")
        batches.append({"image": image, "label": torch.randn(2, 1, generator=generator)})
    return batches


def _trainer(network, batches, lr=0.1, epochs=1, guard=True) -> SupervisedTrainer:
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=batches,
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=lr),
        loss_function=torch.nn.MSELoss(),
        decollate=False,
    )
    if guard:
        NonFiniteGuard(network).attach(trainer)
    return trainer


def test_a_nan_loss_stops_the_run_before_its_backward_pass_and_step():
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    weights = []
    trainer = _trainer(network, _batches(4, nan_at=2))

    @trainer.on(Events.ITERATION_COMPLETED)
    def remember(engine):
        weights.append(copy.deepcopy(network.state_dict()))

    with pytest.raises(FloatingPointError, match=r"training loss is nan at epoch 1, iteration 3\. Start again"):
        trainer.run()
    assert len(weights) == 2  # iterations 1 and 2 completed, 3 stopped
    for name, value in network.state_dict().items():  # the NaN batch changed nothing
        assert torch.equal(value, weights[-1][name]) and torch.isfinite(value).all()
    assert network.weight.grad is None or torch.isfinite(network.weight.grad).all()


def test_weights_made_non_finite_by_a_step_from_a_finite_loss_are_caught_after_that_iteration():
    network = torch.nn.Linear(3, 1)
    trainer = _trainer(network, _batches(3), lr=float("inf"))
    with pytest.raises(
        FloatingPointError,
        match=r"parameter tensor\(s\) are no longer finite \(first: weight\) " r"at epoch 1, iteration 1",
    ):
        trainer.run()


def test_after_the_first_epoch_the_error_points_to_the_resume_checkpoint():
    network = torch.nn.Linear(3, 1)
    batches = _batches(2)
    trainer = _trainer(network, batches, epochs=2)

    @trainer.on(Events.EPOCH_COMPLETED)
    def poison(engine):
        batches[0]["image"][0, 0] = float("inf")

    with pytest.raises(FloatingPointError, match=r"epoch 2, iteration 3\. The last resume checkpoint .*--resume_tr"):
        trainer.run()


def test_a_healthy_training_is_unchanged_by_the_guard():
    results = []
    for guard in (True, False):
        torch.manual_seed(0)
        network = torch.nn.Linear(3, 1)
        _trainer(network, _batches(4), epochs=3, guard=guard).run()
        results.append(network.state_dict())
    for name in results[0]:
        assert torch.equal(results[0][name], results[1][name])


def test_engines_without_monai_iteration_events_are_checked_after_each_iteration():
    losses = iter([1.0, float("-inf")])
    engine = Engine(lambda e, batch: [{"loss": torch.tensor(next(losses))}])  # decollated output
    NonFiniteGuard().attach(engine)
    with pytest.raises(FloatingPointError, match="training loss is -inf at epoch 1, iteration 2"):
        engine.run([0, 1, 2])


def test_the_error_is_summarised_for_the_user():
    engine = Engine(lambda e, batch: {"loss": torch.tensor(float("nan"))})
    NonFiniteGuard().attach(engine)
    with pytest.raises(FloatingPointError) as error:
        engine.run([0])
    assert user_error(error.value) is error.value
