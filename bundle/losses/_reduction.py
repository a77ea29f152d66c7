"""Masked reduction shared by the heatmap losses of this package."""

from __future__ import annotations

import torch
from monai.utils import LossReduction

from ..errors import InputError


def reduce_heatmap_loss(loss: torch.Tensor, mask: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Reduce an element-wise heatmap loss with MONAI's ``reduction`` conventions and a per-landmark mask.

    Args:
        loss: element-wise loss, shape (B, K, *S).
        mask: per-landmark weights, shape (B, K) (1 = landmark counts, 0 = ignore it, e.g. outside the field of view),
            or None for all ones.
        reduction: ``"none"`` returns the masked (B, K, *S) map; ``"sum"`` its sum; ``"mean"`` the sum divided by the
            number of elements of the landmarks that count (so masking a landmark does not dilute the others). With
            every landmark masked, ``"mean"`` gives 0 (with a gradient graph), not NaN.
    """
    reduction = LossReduction(reduction).value
    if mask is not None:
        if mask.shape != loss.shape[:2]:
            raise InputError(f"mask must have shape (B, K) = {tuple(loss.shape[:2])}, got {tuple(mask.shape)}.")
        mask = mask.to(dtype=loss.dtype, device=loss.device).reshape(*mask.shape, *([1] * (loss.ndim - 2)))
        loss = loss * mask
    if reduction == LossReduction.NONE.value:
        return loss
    total = loss.sum()
    if reduction == LossReduction.SUM.value:
        return total
    per_channel = loss[0, 0].numel()
    count = loss.shape[0] * loss.shape[1] * per_channel if mask is None else mask.sum() * per_channel
    return total / torch.clamp(torch.as_tensor(count, dtype=loss.dtype, device=loss.device), min=1.0)
