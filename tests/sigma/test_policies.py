"""The sigma policies: the agent on a toy problem, its learning rule, determinism and resume; AdaLoss; fixed."""

from __future__ import annotations

import io
import math

import pytest
import torch

from bundle.sigma import ACTIONS, AdaLossSigma, FixedSigma, SigmaAgent, SigmaObservation, select_policy

BEST_SIGMA = 2.5


def toy_errors(sigma: torch.Tensor, step: int) -> torch.Tensor:
    """A toy training: landmark errors (mm) that fall as the training goes on (to a plateau at step 10) and grow with
    the squared log-distance of sigma from the best sigma, 2.5 grid pixels for every landmark."""
    training = 1.0 + max(0.0, 1.0 - step / 10)
    return training * (1.0 + (torch.log(sigma / BEST_SIGMA)) ** 2)


def run_toy(agent: SigmaAgent, sigma: torch.Tensor, steps: int, start: int = 0) -> tuple[torch.Tensor, list]:
    history = []
    for step in range(start, start + steps):
        error = toy_errors(sigma, step)
        observation = SigmaObservation(error, error / 10, torch.zeros_like(error), step / 60)
        decision = agent.step(sigma, observation)
        history.append((decision.sigma.clone(), list(decision.actions), agent.frozen.clone()))
        sigma = decision.sigma
        if agent.done:
            break
    return sigma, history


def toy_outcome(seed: int, learning_rate: float) -> tuple[bool, list]:
    """Landmark 0 starts at sigma 0.5 (the best is 2.5); landmarks 1-3 start at 2.5. Success: within 80 decisions
    the agent is done (every landmark frozen), with landmark 0 widened to [1.5, 4] and the others left in it."""
    agent = SigmaAgent(4, learning_rate=learning_rate, seed=seed)
    sigma, history = run_toy(agent, torch.tensor([0.5, 2.5, 2.5, 2.5], dtype=torch.float64), steps=80)
    success = agent.done and bool(((sigma >= 1.5) & (sigma <= 4.0)).all())
    return success, history


def test_the_agent_widens_a_far_too_narrow_target_then_freezes():
    """Over 30 seeds (the toy is deterministic, so these counts are exact: 23 of 30 measured), the learning agent
    succeeds far more often than the same agent with its learning switched off (7 of 30): the policy it learns, not
    its exploration, widens the narrow target. Frozen landmarks never move again."""
    learning = [toy_outcome(seed, 1.0) for seed in range(30)]
    not_learning = [toy_outcome(seed, 0.0)[0] for seed in range(30)]
    assert sum(s for s, _ in learning) >= 20
    assert sum(not_learning) <= 12
    for _, history in learning:
        for (s_before, _, frozen), (s_after, _, _) in zip(history, history[1:]):
            assert torch.equal(s_before[frozen], s_after[frozen])
        assert "widen" in [h[1][0] for h in history]


def test_the_learning_rule_is_reinforce_with_a_baseline():
    """One step by hand: two landmarks acted, rewards 0.3 and -0.1; the baseline b is their mean 0.1 and the scale c
    their mean absolute deviation 0.2 (the first rewards), so W += lr * mean_k ((r_k - b) / c) (onehot(a_k) -
    pi(s_k)) s_k^T."""
    agent = SigmaAgent(2, learning_rate=0.5, keep_bias=0.0, seed=0)
    state = torch.tensor([[1.0, -1.0, 0.0, 0.0, 0.1, 0.0], [1.0, 0.2, 0.0, 0.0, 0.1, 0.0]], dtype=torch.float64)
    agent.last_state, agent.last_action = state, torch.tensor([2, 0])  # widen, narrow
    before = agent.weights.clone()
    pi = agent.probabilities(state)
    agent._learn(torch.tensor([0.3, -0.1], dtype=torch.float64))
    advantage = torch.tensor([1.0, -1.0], dtype=torch.float64)
    one_hot = torch.eye(3, dtype=torch.float64)[[2, 0]]
    expected = before + 0.5 * ((advantage[:, None, None] * (one_hot - pi)[:, :, None] * state[:, None, :]).mean(0))
    assert torch.allclose(agent.weights, expected)
    assert agent.baseline == pytest.approx(0.1) and agent.reward_scale == pytest.approx(0.2)
    # the rewarded action (widen at the low sigma) became more likely there, the punished one less
    assert agent.probabilities(state)[0, 2] > pi[0, 2] and agent.probabilities(state)[1, 0] < pi[1, 0]


def always_widening_agent(**kwargs) -> SigmaAgent:
    agent = SigmaAgent(1, learning_rate=0.0, exploration=0.0, **kwargs)
    agent.weights[ACTIONS.index("widen"), 0] = 50.0  # the policy widens with probability 1 - 1e-21
    return agent


def observe(error: float) -> SigmaObservation:
    return SigmaObservation(torch.tensor([error]), torch.tensor([1.0]), torch.tensor([0.0]), 0.5)


def test_rewards_are_relative_improvements_and_failed_changes_freeze_at_the_best_sigma():
    agent = always_widening_agent(patience=2, factor=1.25)
    first = agent.step(torch.tensor([2.0]), observe(2.0))  # best 2.0 at sigma 2
    assert math.isnan(first.rewards[0]) and first.sigma.item() == 2.5 and first.actions == ["widen"]
    second = agent.step(first.sigma, observe(1.5))  # new best 1.5 at sigma 2.5
    assert second.rewards[0].item() == pytest.approx(0.25) and second.sigma.item() == pytest.approx(3.125)
    third = agent.step(second.sigma, observe(1.6))  # the widening did not pay: strike 1
    assert third.rewards[0].item() == pytest.approx(-0.1 / 1.5) and not agent.done
    fourth = agent.step(third.sigma, observe(1.7))  # strike 2 = patience: frozen at the best sigma
    assert agent.done and fourth.actions == ["frozen"] and fourth.sigma.item() == pytest.approx(2.5)
    fifth = agent.step(fourth.sigma, observe(1.0))
    assert fifth.actions == ["frozen"] and fifth.sigma.item() == pytest.approx(2.5)


def test_keeping_neither_strikes_nor_clears_and_min_improvement_sets_what_counts_as_a_new_best():
    agent = SigmaAgent(1, learning_rate=0.0, exploration=0.0, keep_bias=50.0, patience=1)
    sigma = torch.tensor([2.0])
    for error in (2.0, 2.5, 3.0, 3.5):  # always keeps: never frozen, however the error goes
        sigma = agent.step(sigma, observe(error)).sigma
    assert not agent.done and sigma.item() == 2.0
    strict = always_widening_agent(patience=1, min_improvement=0.1)
    strict.step(torch.tensor([2.0]), observe(2.0))
    strict.step(torch.tensor([2.5]), observe(1.9))  # 5 % better than the best: not a new best under 10 %
    assert strict.done


def test_sigma_stays_within_its_bounds():
    agent = SigmaAgent(3, sigma_min=1.0, sigma_max=2.0, keep_bias=-10.0, patience=100, seed=1)
    sigma = torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64)
    for step in range(40):
        error = torch.full((3,), 1.0 + 1 / (step + 1), dtype=torch.float64)
        sigma = agent.step(sigma, SigmaObservation(error, error, error, 0.0)).sigma
        assert ((sigma >= 1.0) & (sigma <= 2.0)).all()


def test_a_landmark_without_validation_error_is_not_moved():
    agent = SigmaAgent(2, keep_bias=-10.0, seed=0)
    error = torch.tensor([1.0, float("nan")], dtype=torch.float64)
    decision = agent.step(torch.tensor([2.0, 2.0]), SigmaObservation(error, error, error, 0.0))
    assert decision.sigma[1] == 2.0 and decision.actions[1] == "keep"


def test_the_agent_is_deterministic_under_a_seed():
    start = torch.tensor([0.5, 2.5, 1.0, 4.0], dtype=torch.float64)
    _, a = run_toy(SigmaAgent(4, seed=3), start, steps=15)
    _, b = run_toy(SigmaAgent(4, seed=3), start, steps=15)
    _, c = run_toy(SigmaAgent(4, seed=4), start, steps=15)
    assert [h[1] for h in a] == [h[1] for h in b]
    assert [h[1] for h in a] != [h[1] for h in c]


def test_a_resumed_agent_continues_as_an_unbroken_one():
    start = torch.tensor([0.5, 2.5, 1.0, 4.0], dtype=torch.float64)
    unbroken = SigmaAgent(4, seed=5)
    _, expected = run_toy(unbroken, start, steps=12)

    first = SigmaAgent(4, seed=5)
    sigma, before = run_toy(first, start, steps=6)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as the resume checkpoint stores it
    buffer.seek(0)
    second = SigmaAgent(4, seed=99)  # the seed given at resume does not matter: the generator is restored
    second.load_state_dict(torch.load(buffer, weights_only=True))
    _, after = run_toy(second, sigma, steps=6, start=6)
    assert [h[1] for h in before + after] == [h[1] for h in expected]
    assert torch.equal((before + after)[-1][0], expected[-1][0])


def test_adaloss_narrows_a_landmark_whose_loss_settled_and_never_widens():
    policy = AdaLossSigma(3, factor=2.0, sigma_min=0.5)
    sigma = torch.tensor([4.0, 4.0, 0.8], dtype=torch.float64)
    error = torch.ones(3)
    first = policy.step(sigma, SigmaObservation(error, error, torch.tensor([1.0, 1.0, 1.0]), 0.1))
    assert torch.equal(first.sigma, sigma) and first.actions == ["keep"] * 3  # no earlier window to compare with
    second = policy.step(first.sigma, SigmaObservation(error, error, torch.tensor([0.5, 2.0, 0.5]), 0.2))
    assert second.sigma.tolist() == [2.0, 4.0, 0.5]  # settled: halved; unsettled: kept; clamped to sigma_min
    assert second.actions == ["narrow", "keep", "narrow"]
    assert policy.frozen.tolist() == [False, False, True]
    third = policy.step(second.sigma, SigmaObservation(error, error, torch.tensor([0.1, 0.1, 0.1]), 0.3))
    assert third.sigma.tolist() == [1.0, 2.0, 0.5] and third.actions[2] == "frozen"


def test_adaloss_resumes():
    policy = AdaLossSigma(2)
    error = torch.ones(2)
    policy.step(torch.tensor([3.0, 3.0]), SigmaObservation(error, error, torch.tensor([1.0, 1.0]), 0.1))
    restored = AdaLossSigma(2)
    restored.load_state_dict(policy.state_dict())
    decision = restored.step(torch.tensor([3.0, 3.0]), SigmaObservation(error, error, torch.tensor([0.5, 2.0]), 0.2))
    assert decision.actions == ["narrow", "keep"]


def test_fixed_sigma_changes_nothing():
    policy = FixedSigma(3)
    error = torch.ones(3)
    decision = policy.step(torch.tensor(2.0), SigmaObservation(error, error, error, 0.5))
    assert decision.sigma.tolist() == [2.0, 2.0, 2.0] and policy.done


@pytest.mark.parametrize(
    "make",
    [
        lambda: SigmaAgent(3, factor=1.0),
        lambda: SigmaAgent(3, patience=0),
        lambda: SigmaAgent(3, sigma_min=2.0, sigma_max=1.0),
        lambda: SigmaAgent(0),
        lambda: AdaLossSigma(3, factor=0.9),
        lambda: AdaLossSigma(3, sigma_min=0.0),
    ],
)
def test_bad_arguments_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_a_wrong_number_of_sigmas_is_refused():
    error = torch.ones(3)
    with pytest.raises(ValueError, match="expected 1 or 3 sigmas"):
        SigmaAgent(3).step(torch.ones(2), SigmaObservation(error, error, error, 0.0))


def test_select_policy_names_the_choices():
    policies = {"fixed": FixedSigma(2), "rl": SigmaAgent(2)}
    assert isinstance(select_policy(policies, "rl"), SigmaAgent)
    with pytest.raises(ValueError, match=r"\['fixed', 'rl'\]"):
        select_policy(policies, "agent")
    assert ACTIONS == ("narrow", "keep", "widen")


def test_the_state_features_known_values():
    agent = SigmaAgent(3, sigma_min=0.5, sigma_max=8.0)
    agent.last_error = torch.tensor([2.0, 1.0, float("nan")], dtype=torch.float64)
    agent.last_loss = torch.tensor([2.0, 1.0, float("nan")], dtype=torch.float64)
    agent.last_changed = torch.tensor([True, True, False])
    agent.last_action = torch.tensor([ACTIONS.index("widen"), ACTIONS.index("narrow"), ACTIONS.index("keep")])
    sigma = torch.tensor([0.5, 2.0, 8.0], dtype=torch.float64)
    error = torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64)
    loss = torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)
    state = agent._state(sigma, error, loss, 0.25)
    expected = torch.tensor(
        [
            # bias, log-sigma in [-1, 1], error change, loss change, progress, direction x error change
            [1.0, -1.0, 0.5, 0.75, 0.25, 0.5],  # widened, and the error halved: go on
            [1.0, 0.0, -1.0, -0.5, 0.25, 1.0],  # narrowed, and the error tripled (clipped to -1): go back
            [1.0, 1.0, 0.0, 0.0, 0.25, 0.0],  # no earlier error or loss: no change
        ],
        dtype=torch.float64,
    )
    assert torch.allclose(state, expected)


def test_narrowing_is_judged_and_named_like_widening():
    agent = SigmaAgent(1, learning_rate=0.0, exploration=0.0, patience=5)
    agent.weights[ACTIONS.index("narrow"), 0] = 50.0
    first = agent.step(torch.tensor([4.0]), observe(2.0))
    second = agent.step(first.sigma, observe(1.0))
    assert first.actions == second.actions == ["narrow"]
    assert first.sigma.item() == pytest.approx(3.2) and second.rewards[0].item() == pytest.approx(0.5)


def test_adaloss_keeps_a_sigma_whose_loss_variance_did_not_fall_and_refuses_a_factor_of_one():
    policy = AdaLossSigma(1, factor=2.0)
    error = torch.ones(1)
    policy.step(torch.tensor([4.0]), SigmaObservation(error, error, torch.tensor([1.0]), 0.1))
    same = policy.step(torch.tensor([4.0]), SigmaObservation(error, error, torch.tensor([1.0]), 0.2))
    assert same.actions == ["keep"] and same.sigma.item() == 4.0
    with pytest.raises(ValueError):
        AdaLossSigma(1, factor=1.0)
