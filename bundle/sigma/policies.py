"""Policies that set each landmark's heatmap sigma during training: fixed, AdaLoss, and a reinforcement-learning agent.

The reinforcement-learning agent (:class:`SigmaAgent`) is this package's reading of Zhou et al., "Learn Fine-grained
Adaptive Loss for Multiple Anatomical Landmark Detection in Medical Images" (IEEE JBHI 25(10), 2021; arXiv
2105.09124). The full text was not available when it was written. What is known of the paper:

- the network and the target precision (the heatmap sigma) are optimised at the same time;
- reinforcement learning searches the objective dynamically during training, one precision per landmark;
- an early-stop strategy ends the agent's interaction, trading exploration against exploitation.

Every other detail below is a choice made here, not the paper's; ``docs/studies/adaptive_sigma.md`` lists them.

All policies share one interface, so that one handler (:class:`bundle.handlers.AdaptiveSigmaHandler`) and one switch
(``sigma_policy`` in ``configs/adaptive_sigma.json``) serve them all. A policy owns no sigma: each step gets the
sigmas in use and returns the next ones, so the codec stays the one owner of the heatmap settings.

Units: sigma in grid pixels of the heatmap (as :class:`bundle.GaussianHeatmapCodec`); validation errors in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError

__all__ = ["AdaLossSigma", "FixedSigma", "SigmaAgent", "SigmaObservation", "SigmaStep", "ACTIONS"]

ACTIONS = ("narrow", "keep", "widen")


@dataclass
class SigmaObservation:
    """What a policy sees at one decision, for K landmarks.

    Attributes:
        val_error: (K,) mean validation radial error of each landmark (mm), NaN where no validation image has it.
        train_loss: (K,) mean training loss of each landmark's heatmap channel since the last decision.
        train_loss_var: (K,) variance of that channel's per-iteration training loss since the last decision.
        progress: fraction of the training done, in [0, 1] (epoch / max_epochs).
    """

    val_error: torch.Tensor
    train_loss: torch.Tensor
    train_loss_var: torch.Tensor
    progress: float


@dataclass
class SigmaStep:
    """A policy's decision: the next sigmas (K,), the action per landmark (one of :data:`ACTIONS`, or ``"frozen"``),
    and the reward each landmark's previous action earned (NaN where there was none)."""

    sigma: torch.Tensor
    actions: list[str]
    rewards: torch.Tensor


def _as_sigma(sigma: torch.Tensor, num_landmarks: int) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float64).flatten()
    if sigma.numel() == 1:
        sigma = sigma.expand(num_landmarks)
    if sigma.numel() != num_landmarks:
        raise InputError(f"expected 1 or {num_landmarks} sigmas, got {sigma.numel()}.")
    return sigma.clone()


class _Policy:
    """What every policy shares: K, the sigma bounds, the frozen landmarks."""

    def __init__(self, num_landmarks: int, sigma_min: float = 0.5, sigma_max: float = 8.0):
        if num_landmarks < 1:
            raise InputError(f"num_landmarks must be >= 1, got {num_landmarks}.")
        if not 0 < sigma_min < sigma_max:
            raise InputError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
        self.num_landmarks = int(num_landmarks)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.frozen = torch.zeros(self.num_landmarks, dtype=torch.bool)

    @property
    def done(self) -> bool:
        """True when no landmark's sigma will change again."""
        return bool(self.frozen.all())

    def _clamp(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma.clamp(self.sigma_min, self.sigma_max)

    def state_dict(self) -> dict:
        return {"frozen": self.frozen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.frozen = state["frozen"].clone().bool()


class FixedSigma(_Policy):
    """The baseline: every sigma stays as configured (the agent is off; only the logging runs)."""

    def __init__(self, num_landmarks: int, sigma_min: float = 0.5, sigma_max: float = 8.0):
        super().__init__(num_landmarks, sigma_min, sigma_max)
        self.frozen[:] = True

    def step(self, sigma: torch.Tensor, observation: SigmaObservation) -> SigmaStep:
        sigma = _as_sigma(sigma, self.num_landmarks)
        nan = torch.full((self.num_landmarks,), float("nan"), dtype=torch.float64)
        return SigmaStep(sigma, ["frozen"] * self.num_landmarks, nan)


class AdaLossSigma(_Policy):
    """AdaLoss (Teixeira et al., "Adaloss: Adaptive Loss Function for Landmark Localization", arXiv 1908.01070, 2019):
    start imprecise, and tighten each target as its training loss settles.

    Our reading (the paper's exact rule was not available): at each decision, landmark k's sigma is divided by
    ``factor`` when the variance of its per-iteration training loss over the last window is below the variance over
    the window before (the loss has settled at this precision); otherwise it stays. It never widens. A landmark
    freezes at ``sigma_min``.

    Args:
        num_landmarks: K.
        factor: the narrowing factor, > 1.
        sigma_min, sigma_max: the bounds, grid pixels.
    """

    def __init__(self, num_landmarks: int, factor: float = 1.1, sigma_min: float = 0.5, sigma_max: float = 8.0):
        super().__init__(num_landmarks, sigma_min, sigma_max)
        if factor <= 1:
            raise InputError(f"factor must be > 1, got {factor}.")
        self.factor = float(factor)
        self.previous_var = torch.full((self.num_landmarks,), float("nan"), dtype=torch.float64)

    def step(self, sigma: torch.Tensor, observation: SigmaObservation) -> SigmaStep:
        sigma = _as_sigma(sigma, self.num_landmarks)
        var = torch.as_tensor(observation.train_loss_var, dtype=torch.float64)
        settled = (var < self.previous_var) & ~self.frozen  # NaN (first window) compares False
        new_sigma = torch.where(settled, self._clamp(sigma / self.factor), sigma)
        actions = ["frozen" if f else ("narrow" if s else "keep") for f, s in zip(self.frozen.tolist(), settled)]
        self.previous_var = var.clone()
        self.frozen = self.frozen | (new_sigma <= self.sigma_min * (1 + 1e-9))
        nan = torch.full((self.num_landmarks,), float("nan"), dtype=torch.float64)
        return SigmaStep(new_sigma, actions, nan)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "previous_var": self.previous_var.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.previous_var = state["previous_var"].clone().double()


class SigmaAgent(_Policy):
    """A reinforcement-learning agent that narrows, keeps or widens each landmark's sigma, with early stop.

    The choices made here (Zhou et al.'s full text was not available; see the module docstring):

    - **Decisions**: at each call of :meth:`step` (the handler calls it every ``interval`` epochs, after a validation),
      every landmark that is not frozen takes one action of :data:`ACTIONS`: ``sigma / factor``, ``sigma``,
      ``sigma * factor``, clamped to ``[sigma_min, sigma_max]``.
    - **State** of landmark k, six features: 1 (a bias); its log-sigma scaled to [-1, 1] between the bounds; the
      relative change of its validation error since its last action; the relative change of its training loss since
      then; the fraction of training done; and the direction of its last change (-1 narrowed, 1 widened, 0 kept)
      times that error change, which tells "the last move paid, go on" from "it did not, go back". Relative changes
      are clipped to [-1, 1].
    - **Reward** of landmark k's last action: the relative improvement of its validation error since that action,
      ``(e_before - e_now) / e_before``. Relative, so that landmarks with large and small errors weigh alike.
    - **Policy**: one linear softmax policy shared by all landmarks (19 landmarks x a few decisions are too few
      samples for one policy each): ``pi(a | s) = softmax(W s)``, W (3, 6). W starts at zero except for a bias
      towards ``keep`` (``keep_bias``), so the agent starts cautious.
    - **Learning**: REINFORCE with a baseline. When rewards arrive, ``W += lr * mean_k (r_k - b) grad log pi(a_k |
      s_k)``; the baseline b is an exponential moving average of the mean reward (``baseline_momentum``), which
      also removes the common trend of a training whose every error falls.
    - **Early stop**: each landmark keeps its best validation error and the sigma it was measured at. A change of
      sigma (narrow or widen) that does not lead to a new best error, lower than the best by more than the fraction
      ``min_improvement``, is a strike; a new best clears the strikes; ``keep`` neither strikes nor clears (it tries
      nothing). After ``patience`` strikes in a row the landmark's search has stopped paying off: it freezes at its
      best sigma (exploitation), for the rest of the training. The agent is done when every landmark is frozen.
      (Patience on the best error, not on the reward: undoing a bad move always earns a positive reward, so a
      reward-based count could oscillate around the optimum for ever.)
    - **Randomness**: actions are drawn from the policy with the agent's own generator, seeded, saved and restored
      with the agent, so that runs repeat and a resumed run continues the same sequence.

    Args:
        num_landmarks: K.
        factor: the multiplicative step of narrow and widen, > 1.
        sigma_min, sigma_max: the bounds, grid pixels.
        learning_rate: the policy's step size.
        keep_bias: the initial preference (logit) of ``keep``.
        baseline_momentum: the moving average's momentum, in [0, 1).
        patience: failed changes in a row before a landmark freezes, >= 1.
        min_improvement: the relative improvement of the best error that counts as a new best, >= 0.
        seed: the seed of the agent's generator.
    """

    num_features = 6

    def __init__(
        self,
        num_landmarks: int,
        factor: float = 1.25,
        sigma_min: float = 0.5,
        sigma_max: float = 8.0,
        learning_rate: float = 1.0,
        keep_bias: float = 1.0,
        baseline_momentum: float = 0.5,
        patience: int = 3,
        min_improvement: float = 0.0,
        exploration: float = 0.5,
        seed: int = 0,
    ):
        super().__init__(num_landmarks, sigma_min, sigma_max)
        if factor <= 1 or learning_rate < 0 or not 0 <= baseline_momentum < 1 or patience < 1 or min_improvement < 0:
            raise InputError(
                "need factor > 1, learning_rate >= 0, 0 <= baseline_momentum < 1, patience >= 1 and min_improvement >= 0."
            )
        self.factor, self.learning_rate = float(factor), float(learning_rate)
        self.baseline_momentum, self.patience = float(baseline_momentum), int(patience)
        self.min_improvement = float(min_improvement)
        if not 0 <= exploration <= 1:
            raise InputError(f"exploration must be in [0, 1], got {exploration}.")
        self.exploration = float(exploration)
        self.weights = torch.zeros(len(ACTIONS), self.num_features, dtype=torch.float64)
        self.weights[ACTIONS.index("keep"), 0] = float(keep_bias)
        self.baseline = float("nan")
        self.reward_scale = float("nan")
        self.generator = torch.Generator().manual_seed(int(seed))
        k = self.num_landmarks
        self.last_state = torch.full((k, self.num_features), float("nan"), dtype=torch.float64)
        self.last_action = torch.full((k,), -1, dtype=torch.long)
        self.last_error = torch.full((k,), float("nan"), dtype=torch.float64)
        self.last_loss = torch.full((k,), float("nan"), dtype=torch.float64)
        self.last_changed = torch.zeros(k, dtype=torch.bool)
        self.best_error = torch.full((k,), math.inf, dtype=torch.float64)
        self.best_sigma = torch.full((k,), math.nan, dtype=torch.float64)
        self.strikes = torch.zeros(k, dtype=torch.long)

    def probabilities(self, state: torch.Tensor) -> torch.Tensor:
        """pi(. | s) for states (K, 6): (K, 3)."""
        return torch.softmax(state @ self.weights.T, dim=-1)

    def _state(self, sigma: torch.Tensor, error: torch.Tensor, loss: torch.Tensor, progress: float) -> torch.Tensor:
        low, high = math.log(self.sigma_min), math.log(self.sigma_max)
        position = 2 * (sigma.log() - low) / (high - low) - 1
        error_change = ((self.last_error - error) / self.last_error).nan_to_num(0.0).clamp(-1, 1)
        loss_change = ((self.last_loss - loss) / self.last_loss).nan_to_num(0.0).clamp(-1, 1)
        direction = torch.where(self.last_changed, self.last_action.double() - 1, torch.zeros_like(sigma))  # -1, 0, 1
        ones = torch.ones_like(sigma)
        return torch.stack([ones, position, error_change, loss_change, progress * ones, direction * error_change], -1)

    def step(self, sigma: torch.Tensor, observation: SigmaObservation) -> SigmaStep:
        sigma = _as_sigma(sigma, self.num_landmarks)
        error = torch.as_tensor(observation.val_error, dtype=torch.float64)
        loss = torch.as_tensor(observation.train_loss, dtype=torch.float64)

        rewards = ((self.last_error - error) / self.last_error).where(self.last_action >= 0, torch.tensor(float("nan")))
        self._learn(rewards)
        new_best = error < self.best_error * (1 - self.min_improvement)  # NaN compares False
        self.best_error = torch.where(new_best, error, self.best_error)
        self.best_sigma = torch.where(new_best, sigma, self.best_sigma)
        failed = self.last_changed & ~new_best & ~self.frozen
        self.strikes = torch.where(new_best, 0, torch.where(failed, self.strikes + 1, self.strikes))
        freezing = ~self.frozen & (self.strikes >= self.patience)
        sigma = torch.where(freezing & ~torch.isnan(self.best_sigma), self.best_sigma, sigma)
        self.frozen = self.frozen | freezing

        state = self._state(sigma, error, loss, float(observation.progress))
        explore = self.exploration * (1.0 - min(max(float(observation.progress), 0.0), 1.0))
        behaviour = (1 - explore) * self.probabilities(state) + explore / len(ACTIONS)
        drawn = torch.multinomial(behaviour, 1, generator=self.generator)[:, 0]
        active = ~self.frozen & torch.isfinite(error)
        action = torch.where(active, drawn, torch.full_like(drawn, -1))
        scale = torch.tensor([1 / self.factor, 1.0, self.factor], dtype=torch.float64)
        new_sigma = torch.where(active, self._clamp(sigma * scale[action.clamp_min(0)]), sigma)

        self.last_state, self.last_action, self.last_changed = state, action, new_sigma != sigma
        self.last_error, self.last_loss = error.clone(), loss.clone()
        names = ["frozen" if f else (ACTIONS[a] if a >= 0 else "keep") for f, a in zip(self.frozen.tolist(), action)]
        return SigmaStep(new_sigma, names, rewards)

    def _learn(self, rewards: torch.Tensor) -> None:
        """One REINFORCE step from the rewards of the last actions (NaN: no action to judge)."""
        acted = (self.last_action >= 0) & ~torch.isnan(rewards)
        if not bool(acted.any()):
            return
        mean_reward = float(rewards[acted].mean())
        baseline = mean_reward if math.isnan(self.baseline) else self.baseline
        spread = float((rewards[acted] - baseline).abs().mean())
        scale = spread if math.isnan(self.reward_scale) else self.reward_scale
        advantage = (rewards[acted] - baseline) / max(scale, 1e-8)
        state, action = self.last_state[acted], self.last_action[acted]
        one_hot = torch.nn.functional.one_hot(action, len(ACTIONS)).double()
        grad_log_pi = (one_hot - self.probabilities(state))[:, :, None] * state[:, None, :]  # (n, 3, 5)
        self.weights += self.learning_rate * (advantage[:, None, None] * grad_log_pi).mean(0)
        self.baseline = self.baseline_momentum * baseline + (1 - self.baseline_momentum) * mean_reward
        self.reward_scale = self.baseline_momentum * scale + (1 - self.baseline_momentum) * spread

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "weights": self.weights.clone(),
            "baseline": torch.tensor(self.baseline, dtype=torch.float64),
            "reward_scale": torch.tensor(self.reward_scale, dtype=torch.float64),
            "generator": self.generator.get_state(),
            "last_state": self.last_state.clone(),
            "last_action": self.last_action.clone(),
            "last_error": self.last_error.clone(),
            "last_loss": self.last_loss.clone(),
            "last_changed": self.last_changed.clone(),
            "best_error": self.best_error.clone(),
            "best_sigma": self.best_sigma.clone(),
            "strikes": self.strikes.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.weights = state["weights"].clone().double()
        self.baseline = float(state["baseline"])
        self.reward_scale = float(state["reward_scale"])
        self.generator.set_state(state["generator"])
        for name in (
            "last_state",
            "last_action",
            "last_changed",
            "last_error",
            "last_loss",
            "best_error",
            "best_sigma",
        ):
            setattr(self, name, state[name].clone())
        for name in ("strikes",):
            setattr(self, name, state[name].clone())
