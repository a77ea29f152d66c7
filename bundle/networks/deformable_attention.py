"""Deformable attention (DAT): a baseline of the paper's Table IV."""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv

__all__ = ["DeformableAttentionBlock"]


class DeformableAttentionBlock(nn.Module):
    """Pre-norm transformer block with the deformable attention of Xia et al. ("Vision Transformer with Deformable
    Attention", CVPR 2022), in 2D or 3D.

    With ``n = LayerNorm(x)`` and ``q = W_q n`` at every position:

    - reference points: a uniform grid with one point per ``stride^D`` block (``S / stride`` per axis, at the blocks'
      centres, in ``grid_sample``'s normalised [-1, 1] units, pixel centres at -1 and +1);
    - offsets from the queries: per group of ``offset_groups`` channel groups, a depthwise conv of kernel
      ``2 stride + 1`` (3 for stride 1) and stride ``stride``, GELU, a 1x1 conv to D offsets, bounded as
      ``tanh(.) * offset_range`` in pixels of this stage and zero at initialisation;
    - keys and values from ``n`` sampled (bilinear, ``grid_sample``) at reference points plus offsets:
      ``K = W_k n~``, ``V = W_v n~``;
    - every query attends to the ``N / stride^D`` deformed keys, ``num_heads`` heads,
      ``scaled_dot_product_attention``; ``x = x + proj(.)``, then ``x = x + MLP(LayerNorm(x))``.

    What differs from :class:`CoorTransformerBlock`: there, every position gets its own offset, the sampled features
    give the *queries and keys* and the values stay on the grid; here the offsets deform a *coarse set of key/value
    points*, queries stay on the grid. DAT's deformable relative position bias is left out (CoorTransformer has none
    either), so the two differ only in where the sampling enters.

    MONAI has no deformable attention; scriptable with ``torch.jit.script``.

    Args:
        spatial_dims: 2 or 3.
        channels: C (divisible by ``num_heads`` and ``offset_groups``).
        num_heads: attention heads.
        stride: reference-grid stride per axis (the detector's ``kv_strides``); every spatial size divisible by it.
        offset_range: maximum offset in pixels of this stage.
        offset_groups: channel groups with their own offsets (DAT's groups).
        mlp_ratio: MLP expansion.

    Shapes: (B, C, *S) -> (B, C, *S).

    Example::

        >>> block = DeformableAttentionBlock(spatial_dims=2, channels=64, num_heads=4, stride=2)
        >>> block(torch.randn(1, 64, 32, 26)).shape
        torch.Size([1, 64, 32, 26])
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        num_heads: int = 1,
        stride: int = 1,
        offset_range: float = 2.0,
        offset_groups: int = 1,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if channels % num_heads != 0 or channels % offset_groups != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads and offset_groups.")
        if stride < 1 or offset_range < 0:
            raise ValueError("stride must be >= 1 and offset_range >= 0.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.num_heads = num_heads
        self.stride = stride
        self.offset_range = float(offset_range)
        self.groups = offset_groups
        conv = Conv[Conv.CONV, spatial_dims]
        group_channels = channels // offset_groups
        kernel = 2 * stride + 1 if stride > 1 else 3
        self.norm1 = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.offset_net = nn.Sequential(
            conv(group_channels, group_channels, kernel, stride=stride, padding=kernel // 2, groups=group_channels),
            nn.GELU(),
            conv(group_channels, spatial_dims, kernel_size=1),
        )
        nn.init.zeros_(self.offset_net[2].weight)
        nn.init.zeros_(self.offset_net[2].bias)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def reference_points(self, spatial: List[int], x: torch.Tensor) -> torch.Tensor:
        """(1, *S / stride, D): the centres of the stride blocks in normalised units, last axis first."""
        axes: List[torch.Tensor] = []
        for s in spatial:
            centres = torch.arange(s // self.stride, device=x.device, dtype=x.dtype) * self.stride
            centres = centres + (self.stride - 1) / 2.0
            axes.append(centres * (2.0 / max(s - 1, 1)) - 1.0)
        mesh = torch.meshgrid(axes, indexing="ij")
        return torch.stack(mesh[::-1], dim=-1).unsqueeze(0)

    def sample_keys(self, n: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """(B, C, *S / stride): ``n`` sampled at the reference points plus the offsets predicted from ``q``."""
        b, c = n.shape[0], n.shape[1]
        spatial: List[int] = list(n.shape[2:])
        grouped_q = q.reshape([b * self.groups, c // self.groups] + spatial)
        offsets = torch.tanh(self.offset_net(grouped_q)) * self.offset_range  # (B G, D, *S / stride), pixels
        scale = torch.tensor([2.0 / max(s - 1, 1) for s in spatial], device=n.device, dtype=n.dtype)
        grid = self.reference_points(spatial, n) + (offsets.movedim(1, -1) * scale).flip(-1)
        grouped_n = n.reshape([b * self.groups, c // self.groups] + spatial)
        sampled = F.grid_sample(grouped_n, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return sampled.reshape([b, c] + list(sampled.shape[2:]))

    def _heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        b, n, c = tokens.shape
        return tokens.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        spatial: List[int] = list(x.shape[2:])
        for s in spatial:
            if s % self.stride != 0:
                raise ValueError(
                    "DeformableAttentionBlock: spatial size "
                    + str(spatial)
                    + " is not divisible by "
                    + str(self.stride)
                )
        n = self.norm1(x.movedim(1, -1))  # (B, *S, C)
        q = self.q(n)
        n, q = n.movedim(-1, 1), q.movedim(-1, 1)  # (B, C, *S)
        keys = self.sample_keys(n, q).flatten(2).transpose(1, 2)  # (B, M, C)
        k, v = self.k(keys), self.v(keys)
        attended = F.scaled_dot_product_attention(
            self._heads(q.flatten(2).transpose(1, 2)), self._heads(k), self._heads(v)
        )
        attended = self.proj(attended.transpose(1, 2).reshape(b, -1, c))
        x = x + attended.transpose(1, 2).reshape([b, c] + spatial)
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape([b, c] + spatial)
