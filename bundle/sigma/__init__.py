"""Per-landmark heatmap sigma chosen during training: the policies, and how a config picks one."""

from __future__ import annotations

from ..errors import InputError
from .policies import ACTIONS, AdaLossSigma, FixedSigma, SigmaAgent, SigmaObservation, SigmaStep

__all__ = ["ACTIONS", "AdaLossSigma", "FixedSigma", "SigmaAgent", "SigmaObservation", "SigmaStep", "select_policy"]


def select_policy(policies: dict, name: str):
    """The policy called ``name`` among ``policies`` (the ``sigma_policies`` of ``configs/adaptive_sigma.json``).

    Raises:
        ValueError: no policy of that name, listing the names there are.
    """
    if name not in policies:
        raise InputError(f"sigma_policy must be one of {sorted(policies)}, got {name!r}.")
    return policies[name]
