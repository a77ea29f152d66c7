"""Focal loss on soft heatmap targets, with the per-landmark mask of this package's losses."""

from __future__ import annotations

import torch
from monai.losses import FocalLoss
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from ..errors import InputError
from ._reduction import reduce_heatmap_loss

__all__ = ["HeatmapFocalLoss"]


class HeatmapFocalLoss(_Loss):
    """Sigmoid focal loss (Lin et al., ICCV 2017) for landmark heatmaps: the focal baseline of Zhu et al.'s Table II.

    The element-wise loss is MONAI's :class:`monai.losses.FocalLoss` (``use_softmax=False``, soft targets accepted);
    this class only adds the per-landmark mask (B, K) and the masked mean that :class:`bundle.CentralLoss` uses, so
    the two are compared on the same footing.

    Args:
        gamma: focusing exponent (MONAI's default 2).
        alpha: optional weight of the positive (landmark) term in [0, 1], as in MONAI's FocalLoss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shapes: input logits (B, K, *S); target (B, K, *S) in [0, 1]; mask (B, K) or None.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, reduction: str = "mean"):
        super().__init__(reduction=LossReduction(reduction).value)
        self.focal = FocalLoss(include_background=True, gamma=gamma, alpha=alpha, use_softmax=False, reduction="none")

    def forward(self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if input.shape != target.shape:
            raise InputError(f"input {tuple(input.shape)} and target {tuple(target.shape)} must have the same shape.")
        loss = self.focal(input.float(), target.float())
        return reduce_heatmap_loss(loss, mask, self.reduction)
