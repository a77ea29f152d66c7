"""Central loss of Zhu et al. for sigmoid heatmaps, with cross-entropy and weighted cross-entropy as special cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from ..errors import InputError
from ._reduction import reduce_heatmap_loss

__all__ = ["CentralLoss"]

_FORMS = ("two_term", "literal")


class CentralLoss(_Loss):
    """Central loss for per-pixel sigmoid landmark heatmaps.

    Zhu et al., "Central loss guides coordinated Transformer for reliable anatomical landmark detection",
    Neural Networks 187, 2025 (arXiv 2023: "Coordinated Transformer with Position & Sample-aware Central Loss").

    With ``px = sigmoid(logit)`` and a soft target ``py`` in [0, 1] (a Gaussian heatmap), the default ``"two_term"``
    form is::

        CL(px, py) = -|py - px|^r * [ w * py * log(px) + (1 - py) * log(1 - px) ]

    The paper prints ``-py * |py - px|^r * log(px)``. Taken literally for sigmoid outputs that is zero wherever
    ``py = 0``, so background pixels get no gradient and stay wherever they start (see DESIGN.md §4 and the test
    that documents it); ``form="literal"`` keeps it for the ablation. The two-term form is what the paper's claims
    require: ``r = 0`` is binary cross-entropy, and the loss vanishes when ``px = py`` for any target value.

    Special cases (the baselines of the paper's Table II): ``r=0`` is binary cross-entropy on soft targets;
    ``r=0, pos_weight=w`` is weighted cross-entropy (``w`` multiplies the landmark term, as ``pos_weight`` of
    ``torch.nn.BCEWithLogitsLoss``). The focal-loss baseline is :class:`bundle.HeatmapFocalLoss`.

    Computed from logits with log-sigmoid, in float32 even under autocast, so it is finite for any logit.
    MONAI doesn't provide this loss, so it is written here.

    Args:
        r: exponent of the difference-modulating term ``|py - px|^r`` (the paper uses 2; 0 gives cross-entropy).
        form: ``"two_term"`` (default) or ``"literal"`` (the one-term form as printed, for the ablation).
        pos_weight: weight ``w`` of the landmark (``py``) term; 1 by default.
        reduction: MONAI's ``"mean"`` (default), ``"sum"`` or ``"none"``; see
            :func:`bundle.losses._reduction.reduce_heatmap_loss` for how a mask enters the mean.

    Shapes:
        input: logits (B, K, *S); target: heatmaps in [0, 1], (B, K, *S); mask (optional): (B, K).

    Example::

        >>> loss = CentralLoss(r=2)
        >>> logits = torch.zeros(2, 19, 64, 52, requires_grad=True)
        >>> target = torch.rand(2, 19, 64, 52)
        >>> loss(logits, target).backward()
    """

    def __init__(self, r: float = 2.0, form: str = "two_term", pos_weight: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction=LossReduction(reduction).value)
        if r < 0:
            raise InputError(f"r must be >= 0, got {r}.")
        if form not in _FORMS:
            raise InputError(f"form must be one of {_FORMS}, got {form!r}.")
        if pos_weight <= 0:
            raise InputError(f"pos_weight must be > 0, got {pos_weight}.")
        self.r = float(r)
        self.form = form
        self.pos_weight = float(pos_weight)

    def forward(self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: input: logits (B, K, *S); target: (B, K, *S) in [0, 1]; mask: (B, K) or None."""
        if input.shape != target.shape:
            raise InputError(f"input {tuple(input.shape)} and target {tuple(target.shape)} must have the same shape.")
        if input.ndim < 3:
            raise InputError(f"input must be (B, K, *spatial), got {tuple(input.shape)}.")
        logits = input.float()
        target = target.float()
        log_p = F.logsigmoid(logits)
        landmark_term = self.pos_weight * target * log_p
        if self.form == "two_term":
            cross_entropy = -(landmark_term + (1.0 - target) * F.logsigmoid(-logits))
        else:
            cross_entropy = -landmark_term
        if self.r != 0.0:
            cross_entropy = (target - torch.sigmoid(logits)).abs().pow(self.r) * cross_entropy
        return reduce_heatmap_loss(cross_entropy, mask, self.reduction)
