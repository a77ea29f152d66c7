"""Shifted-window (Swin) attention: a baseline of the paper's Table IV."""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ShiftedWindowBlock", "WindowAttentionLayer"]


class WindowAttentionLayer(nn.Module):
    """One pre-norm Swin transformer layer (Liu et al., "Swin Transformer", ICCV 2021), in 2D or 3D.

    With ``n = LayerNorm(x)`` on a grid padded at its far ends to a multiple of the window ``w`` per axis: (shifted
    layers) roll the grid by ``-w // 2`` on every axis; multi-head self-attention inside each ``w^D`` window with a
    learnt relative position bias (one per head and relative offset, ``(2w - 1)^D`` of them), where a token attends
    only to tokens of its own region: tokens brought together by the roll's wrap-around, and padding, are masked;
    roll back, crop, ``x = x + proj(.)``; then ``x = x + MLP(LayerNorm(x))``.

    Written here rather than taken from MONAI's ``SwinUNETR`` blocks because those are built for an encoder
    (patch-merging stages, einops rearranges) and cannot be compiled by ``torch.jit.script``; this one can, and pads
    any grid (a stage smaller than a window is one padded window).

    Args:
        spatial_dims: 2 or 3.
        channels: C (divisible by ``num_heads``).
        num_heads: attention heads.
        window_size: w, the window edge in pixels of this stage.
        shifted: roll the windows by ``w // 2`` (the second layer of a Swin pair).
        mlp_ratio: MLP expansion.

    Shapes: (B, C, *S) -> (B, C, *S), any S.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        num_heads: int = 1,
        window_size: int = 7,
        shifted: bool = False,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if channels % num_heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        if window_size < 2:
            raise ValueError(f"window_size must be >= 2, got {window_size}.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift = window_size // 2 if shifted else 0
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.relative_bias = nn.Parameter(torch.zeros((2 * window_size - 1) ** spatial_dims, num_heads))
        nn.init.trunc_normal_(self.relative_bias, std=0.02)
        self.register_buffer("relative_index", self._relative_index(spatial_dims, window_size), persistent=False)
        # (B, n_1, w, n_2, w, ..., C) -> (B, n_1, n_2, ..., w, w, ..., C)
        self.to_windows: List[int] = [0] + [1 + 2 * i for i in range(spatial_dims)]
        self.to_windows += [2 + 2 * i for i in range(spatial_dims)] + [1 + 2 * spatial_dims]
        self.from_windows: List[int] = [self.to_windows.index(i) for i in range(len(self.to_windows))]

    @staticmethod
    def _relative_index(spatial_dims: int, window: int) -> torch.Tensor:
        """(T, T) index into the bias table of each (query, key) pair of a window, T = w^D."""
        axes = [torch.arange(window) for _ in range(spatial_dims)]
        coords = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1).reshape(-1, spatial_dims)
        relative = coords[:, None, :] - coords[None, :, :] + (window - 1)
        index = torch.zeros(relative.shape[:2], dtype=torch.long)
        for d in range(spatial_dims):
            index = index * (2 * window - 1) + relative[..., d]
        return index

    def _regions(self, size: List[int], padded: List[int], device: torch.device) -> torch.Tensor:
        """(*padded) region label of every position of the rolled grid: tokens attend within one label only.

        Per axis, in the rolled frame: the wrap-around puts the last ``shift`` positions next to the first ones, so
        the last window is split at ``padded - shift``; padding (source position beyond ``size``) is its own label.
        """
        labels = torch.zeros(padded, dtype=torch.long, device=device)
        w = self.window_size
        for d in range(self.spatial_dims):
            p = torch.arange(padded[d], device=device)
            axis = (p >= padded[d] - w).long() + (p >= padded[d] - self.shift).long()
            source = (p + self.shift) % padded[d]
            axis = torch.where(source >= size[d], torch.full_like(axis, 3), axis)
            view = [1] * self.spatial_dims
            view[d] = padded[d]
            labels = labels * 4 + axis.reshape(view)
        return labels

    def _windows(self, x: torch.Tensor, counts: List[int]) -> torch.Tensor:
        """(B, *padded, E) -> (B, n_windows, w^D, E)."""
        b, e = x.shape[0], x.shape[-1]
        shape = [b]
        for n in counts:
            shape += [n, self.window_size]
        x = x.reshape(shape + [e]).permute(self.to_windows)
        windows = 1
        for n in counts:
            windows *= n
        return x.reshape(b, windows, -1, e)

    def _unwindows(self, x: torch.Tensor, counts: List[int]) -> torch.Tensor:
        """(B, n_windows, w^D, E) -> (B, *padded, E)."""
        b, e = x.shape[0], x.shape[-1]
        shape = [b] + counts + [self.window_size] * self.spatial_dims + [e]
        x = x.reshape(shape).permute(self.from_windows)
        return x.reshape([b] + [n * self.window_size for n in counts] + [e])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        size: List[int] = list(x.shape[2:])
        w = self.window_size
        counts: List[int] = [(s + w - 1) // w for s in size]
        padded: List[int] = [n * w for n in counts]
        dims: List[int] = [1 + d for d in range(self.spatial_dims)]
        n = self.norm1(x.movedim(1, -1))  # (B, *S, C)
        pad: List[int] = [0, 0]
        for d in range(self.spatial_dims - 1, -1, -1):
            pad += [0, padded[d] - size[d]]
        n = F.pad(n, pad)
        if self.shift > 0:
            n = torch.roll(n, [-self.shift] * self.spatial_dims, dims)
        tokens = self._windows(n, counts)  # (B, W, T, C)
        windows, t = tokens.shape[1], tokens.shape[2]
        qkv = self.qkv(tokens).reshape(b, windows, t, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each (B, W, heads, T, d)
        regions = self._windows(self._regions(size, padded, x.device)[None, ..., None], counts)[0, :, :, 0]
        allowed = regions[:, :, None] == regions[:, None, :]  # (W, T, T)
        bias = self.relative_bias[self.relative_index.reshape(-1)].reshape(t, t, self.num_heads).permute(2, 0, 1)
        mask = bias.to(q.dtype)[None] + torch.zeros_like(allowed, dtype=q.dtype).masked_fill(
            ~allowed, float("-inf")
        ).unsqueeze(1)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, W, heads, T, d)
        attended = self.proj(attended.transpose(2, 3).reshape(b, windows, t, c))
        attended = self._unwindows(attended, counts)
        if self.shift > 0:
            attended = torch.roll(attended, [self.shift] * self.spatial_dims, dims)
        for d in range(self.spatial_dims):
            attended = attended.narrow(1 + d, 0, size[d])
        x = x + attended.movedim(-1, 1)
        tokens = x.movedim(1, -1)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.movedim(-1, 1).contiguous()


class ShiftedWindowBlock(nn.Module):
    """The Swin pair: a window layer then a shifted-window layer (:class:`WindowAttentionLayer`), so that windows
    exchange information; the detector's ``attention="swin"`` block.

    Args: as :class:`WindowAttentionLayer` (without ``shifted``). Shapes: (B, C, *S) -> (B, C, *S).

    Example::

        >>> block = ShiftedWindowBlock(spatial_dims=2, channels=64, num_heads=4, window_size=7)
        >>> block(torch.randn(1, 64, 20, 26)).shape
        torch.Size([1, 64, 20, 26])
    """

    def __init__(
        self, spatial_dims: int, channels: int, num_heads: int = 1, window_size: int = 7, mlp_ratio: float = 4.0
    ):
        super().__init__()
        self.layers = nn.Sequential(
            WindowAttentionLayer(spatial_dims, channels, num_heads, window_size, False, mlp_ratio),
            WindowAttentionLayer(spatial_dims, channels, num_heads, window_size, True, mlp_ratio),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
