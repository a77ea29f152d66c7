"""Test doubles that configs can build with ``_target_`` (the tests put the repository root on ``sys.path``)."""

from __future__ import annotations

import torch
import torch.nn as nn

from bundle import GaussianHeatmapCodec


class KnownHeatmapNetwork(nn.Module):
    """Ignores its input and returns logits whose sigmoid is a Gaussian at each of ``grid_points`` (K, D), given in
    grid coordinates of the network input: a network whose answer is known exactly, to test everything around it."""

    def __init__(self, grid_points: list, sigma: float = 2.0):
        super().__init__()
        self.register_buffer("grid_points", torch.tensor(grid_points, dtype=torch.float32), persistent=False)
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codec = GaussianHeatmapCodec(x.ndim - 2)
        heatmaps, _ = codec.encode(self.grid_points.to(x.device), x.shape[2:], self.sigma)
        probabilities = heatmaps.clamp(1e-6, 1 - 1e-6)
        logits = torch.log(probabilities) - torch.log1p(-probabilities)
        return logits.unsqueeze(0).expand(x.shape[0], *logits.shape)
