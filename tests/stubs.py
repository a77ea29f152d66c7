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


class PatchEchoNetwork(nn.Module):
    """A refiner whose heatmap is its input: logits of the patch's own intensities (clamped to (0, 1)) in each of
    ``out_channels`` channels. On an image of Gaussian blobs, it finds every blob exactly, to test the refinement
    stage around it."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device and a (trivial) state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = x[:, :1].clamp(1e-6, 1 - 1e-6)
        logits = torch.log(probabilities) - torch.log1p(-probabilities) + self.anchor
        return logits.expand(x.shape[0], self.out_channels, *x.shape[2:])
