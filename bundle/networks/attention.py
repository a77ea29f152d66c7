"""Attention modules of the detector: the transformer-block switch, and the decoder's channel and spatial attention."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Conv

from .coor_transformer import CoorTransformerBlock
from .deformable_attention import DeformableAttentionBlock
from .window_attention import ShiftedWindowBlock

__all__ = ["ATTENTION_KINDS", "make_attention_block", "ChannelSpatialAttention"]

ATTENTION_KINDS = ("coor", "vanilla", "swin", "deformable", "none")


def make_attention_block(
    kind: str,
    spatial_dims: int,
    channels: int,
    num_heads: int,
    kv_stride: int = 1,
    offset_range: float = 2.0,
    mlp_ratio: float = 4.0,
    window_size: int = 7,
) -> nn.Module:
    """The transformer block of one decoder stage, by name: the switch of the paper's Table IV.

    - ``"coor"``: :class:`CoorTransformerBlock`;
    - ``"vanilla"``: the same block with Q, K, V from the features (plain self-attention, keys and values pooled by
      ``kv_stride``);
    - ``"swin"``: :class:`ShiftedWindowBlock`, a window and a shifted-window layer of ``window_size`` pixels
      (``kv_stride`` and ``offset_range`` unused: windows bound the cost);
    - ``"deformable"``: :class:`DeformableAttentionBlock` with ``kv_stride`` as its reference-grid stride;
    - ``"none"``: identity (the U-Net baseline).
    """
    if kind == "none":
        return nn.Identity()
    if kind in ("coor", "vanilla"):
        return CoorTransformerBlock(
            spatial_dims,
            channels,
            num_heads=num_heads,
            kv_stride=kv_stride,
            offset_range=offset_range,
            mlp_ratio=mlp_ratio,
            use_coordinates=kind == "coor",
        )
    if kind == "swin":
        return ShiftedWindowBlock(spatial_dims, channels, num_heads, window_size=window_size, mlp_ratio=mlp_ratio)
    if kind == "deformable":
        return DeformableAttentionBlock(
            spatial_dims, channels, num_heads, stride=kv_stride, offset_range=offset_range, mlp_ratio=mlp_ratio
        )
    raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}.")


class ChannelSpatialAttention(nn.Module):
    """Channel attention (squeeze-and-excitation, MONAI's ChannelSELayer) followed by spatial attention.

    The spatial part (as in CBAM, Woo et al., ECCV 2018) gates every position by
    ``sigmoid(conv([mean_c(x), max_c(x)]))``; MONAI has no such layer. Shapes: (B, C, *S) -> (B, C, *S).

    Args:
        spatial_dims: 2 or 3.
        channels: C.
        reduction: squeeze ratio of the channel attention.
        kernel_size: kernel of the spatial attention's conv.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelSELayer(spatial_dims, channels, r=reduction)
        self.spatial = Conv[Conv.CONV, spatial_dims](2, 1, kernel_size=kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel(x)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))
