"""CoorTransformer block: self-attention whose queries and keys come from coordinate-indexed features."""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Pool

__all__ = ["CoorTransformerBlock"]


class CoorTransformerBlock(nn.Module):
    """Pre-norm transformer block with the coordinate module of Zhu et al.'s CoorTransformer, in 2D or 3D.

    Zhu et al., "Central loss guides coordinated Transformer for reliable anatomical landmark detection",
    Neural Networks 187, 2025.

    With ``n = LayerNorm(x)``:

    - coordinate module: a reference grid with one point per position, normalised to [-1, 1] (-1 at the first pixel
      centre, +1 at the last, on every axis), plus offsets predicted from ``n`` by a depthwise-then-pointwise conv,
      bounded as ``tanh(.) * offset_range`` (in pixels of this stage) and zero at initialisation. ``grid_sample``
      (bilinear, ``align_corners=True``) samples ``n`` at those points: the coordinate-indexed features ``x^p``. With
      zero offsets ``x^p`` equals ``n`` exactly.
    - attention: ``Q, K`` from ``x^p``, ``V`` from ``n``; ``softmax(Q K^T / sqrt(d)) V`` over ``num_heads`` heads
      through ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels: no (N x N)
      matrix is materialised). With ``kv_stride = s > 1`` keys and values are average-pooled by ``s`` per axis
      (N queries, N / s^D keys) for high-resolution stages.
    - ``x = x + proj(attention)``; ``x = x + MLP(LayerNorm(x))`` with expansion ``mlp_ratio``.

    ``use_coordinates=False`` gives plain (vanilla) self-attention with Q, K, V all from ``n``: the baseline of the
    paper's Table IV, with everything else identical and no offset network (so no parameter goes without a gradient).

    Scriptable with ``torch.jit.script``.

    Args:
        spatial_dims: 2 or 3.
        channels: C, the feature channels (divisible by ``num_heads``).
        num_heads: attention heads.
        kv_stride: key/value pooling stride per axis (1: full attention).
        offset_range: maximum offset in pixels of this stage.
        mlp_ratio: hidden size of the MLP as a multiple of C.
        use_coordinates: False for vanilla self-attention.

    Shapes: input (B, C, *S) -> output (B, C, *S); every spatial size divisible by ``kv_stride``.

    Example::

        >>> block = CoorTransformerBlock(spatial_dims=2, channels=64, num_heads=4, kv_stride=2)
        >>> block(torch.randn(1, 64, 32, 26)).shape
        torch.Size([1, 64, 32, 26])
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        num_heads: int = 1,
        kv_stride: int = 1,
        offset_range: float = 2.0,
        mlp_ratio: float = 4.0,
        use_coordinates: bool = True,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        if kv_stride < 1 or offset_range < 0:
            raise ValueError("kv_stride must be >= 1 and offset_range >= 0.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.num_heads = num_heads
        self.kv_stride = kv_stride
        self.offset_range = float(offset_range)
        self.use_coordinates = use_coordinates

        conv = Conv[Conv.CONV, spatial_dims]
        self.norm1 = nn.LayerNorm(channels)
        # vanilla builds no offset network: a parameter without a gradient stops DistributedDataParallel
        self.offset_net = None
        if use_coordinates:
            self.offset_net = nn.Sequential(
                conv(channels, channels, kernel_size=3, padding=1, groups=channels),
                nn.GELU(),
                conv(channels, spatial_dims, kernel_size=1),
            )
            nn.init.zeros_(self.offset_net[2].weight)
            nn.init.zeros_(self.offset_net[2].bias)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        self.pool = Pool[Pool.AVG, spatial_dims](kernel_size=kv_stride) if kv_stride > 1 else nn.Identity()
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def reference_grid(self, spatial: List[int], x: torch.Tensor) -> torch.Tensor:
        """(1, *S, D) sampling grid of the pixel centres in ``grid_sample``'s order (last axis first)."""
        axes = [torch.linspace(-1.0, 1.0, s, device=x.device, dtype=x.dtype) for s in spatial]
        mesh = torch.meshgrid(axes, indexing="ij")
        return torch.stack(mesh[::-1], dim=-1).unsqueeze(0)

    def sample_coordinates(self, n: torch.Tensor) -> torch.Tensor:
        """Coordinate-indexed features x^p (B, C, *S): ``n`` sampled at the reference grid plus learnt offsets (``n``
        itself for vanilla attention)."""
        spatial: List[int] = list(n.shape[2:])
        offset_net = self.offset_net
        if offset_net is None:
            return n
        # offsets in pixels, (B, D, *S) in array-axis order; grid_sample wants normalised units, last axis first
        offsets = torch.tanh(offset_net(n)) * self.offset_range
        scale = torch.tensor([2.0 / max(s - 1, 1) for s in spatial], device=n.device, dtype=n.dtype)
        offsets = offsets.movedim(1, -1) * scale
        grid = self.reference_grid(spatial, n) + offsets.flip(-1)
        return F.grid_sample(n, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def _heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        b, n, c = tokens.shape
        return tokens.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) -> (B, N, C)."""
        return x.flatten(2).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Multi-head attention, q (B, h, N, d), k and v (B, h, M, d) -> (B, h, N, d), never forming (N x M)."""
        return F.scaled_dot_product_attention(q, k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        spatial: List[int] = list(x.shape[2:])
        for s in spatial:
            if s % self.kv_stride != 0:
                raise ValueError(
                    "CoorTransformerBlock: spatial size "
                    + str(spatial)
                    + " is not divisible by kv_stride "
                    + str(self.kv_stride)
                )
        n = self.norm1(x.movedim(1, -1)).movedim(-1, 1)
        source = self.sample_coordinates(n)
        q = self.q(self._tokens(source))
        k = self.k(self._tokens(self.pool(source)))
        v = self.v(self._tokens(self.pool(n)))
        attended = self.attend(self._heads(q), self._heads(k), self._heads(v))
        attended = self.proj(attended.transpose(1, 2).reshape(b, -1, c))
        x = x + attended.transpose(1, 2).reshape([b, c] + spatial)
        tokens = self._tokens(x)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape([b, c] + spatial)
