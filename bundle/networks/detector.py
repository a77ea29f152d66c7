"""CoorTransformerDetector: a U-Net with CoorTransformer blocks in the decoder, one heatmap channel per landmark."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool

from .attention import ChannelSpatialAttention, make_attention_block

__all__ = ["CoorTransformerDetector"]


def _conv_block(spatial_dims: int, in_channels: int, out_channels: int, act, norm, dropout) -> nn.Sequential:
    """Two conv-norm-dropout-activation layers (3x3 or 3x3x3; MONAI's :class:`Convolution`, order NDA)."""
    return nn.Sequential(
        *(
            Convolution(spatial_dims, c, out_channels, kernel_size=3, act=act, norm=norm, dropout=dropout)
            for c in (in_channels, out_channels)
        )
    )


class DecoderStage(nn.Module):
    """One decoder stage of :class:`CoorTransformerDetector`: the transformer block on the coarse features, a
    transposed convolution up-sampling by 2 to the skip connection's channels, concatenation with the skip, a conv
    block, then channel and spatial attention.

    Shapes: ``x`` (B, in_channels, *S), ``skip`` (B, skip_channels, *2S) -> (B, skip_channels, *2S).

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the coarse input.
        skip_channels: channels of the skip connection, and of the output.
        attention: the transformer block (from :func:`make_attention_block`; ``nn.Identity`` for none).
        act, norm, dropout: of the conv block, as MONAI's :class:`Convolution` takes them.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        attention: nn.Module,
        act="RELU",
        norm="BATCH",
        dropout=None,
    ):
        super().__init__()
        self.attention = attention
        self.up = Conv[Conv.CONVTRANS, spatial_dims](in_channels, skip_channels, kernel_size=2, stride=2)
        self.conv = _conv_block(spatial_dims, 2 * skip_channels, skip_channels, act, norm, dropout)
        self.channel_spatial = ChannelSpatialAttention(spatial_dims, skip_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(self.attention(x))
        return self.channel_spatial(self.conv(torch.cat([x, skip], dim=1)))


class CoorTransformerDetector(nn.Module):
    """Heatmap landmark detector of Zhu et al. (Neural Networks 187, 2025): U-Net encoder of conv-norm-activation
    blocks (batch norm and ReLU by default, as in the paper) with max-pool down-sampling; decoder stages
    (:class:`DecoderStage`, deepest first) of a transformer block at the stage's input resolution, transposed-conv
    up-sampling, skip concatenation, a conv block and channel + spatial attention; a 1x1 conv head giving one logit map
    per landmark.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: K, the number of landmarks.
        features: channels per level, full resolution first; ``len(features) - 1`` down-samplings (the depth).
        attention: decoder transformer kind: ``"coor"`` (default), ``"vanilla"``, ``"swin"``, ``"deformable"`` or
            ``"none"`` (see :func:`bundle.networks.attention.make_attention_block`).
        num_heads: heads per decoder stage, deepest first (the paper's 8, 4, 2, 1).
        kv_strides: key/value pooling stride per decoder stage, deepest first; stage s's must divide 2^s. The default
            (1, 2, 4, 8) puts every stage's keys and values on the deepest grid (832 keys for a 512x416 input).
        offset_range: CoorTransformer offset bound in pixels of each stage.
        mlp_ratio: transformer MLP expansion.
        window_size: window edge in pixels of each stage, for ``attention="swin"`` only.
        act: activation of the conv blocks, as MONAI's :class:`Convolution` takes it (a name, or a name and its
            arguments: ``("leakyrelu", {"negative_slope": 0.1})``); the paper's ReLU by default.
        norm: normalisation of the conv blocks, likewise (``"batch"``, ``"instance"``, ``("group", {"num_groups":
            8})``...); batch norm by default. With batch 1 (3D), instance or group norm trains better.
        dropout: dropout probability of the conv blocks (None: no dropout layer).
        output_prior: if given, the head's bias starts at ``logit(output_prior)``, so that every pixel starts as a
            probability of about ``output_prior`` instead of 0.5 (the prior-probability initialisation of Lin et al.,
            "Focal Loss for Dense Object Detection", ICCV 2017). With Gaussian targets covering a small fraction of a
            map, a network starting at 0.5 spends its first hundreds of steps pushing the background down before any
            peak forms: on 64 x 64 refiner patches, 300 steps of a U-Net from 0.5 left a mean error of 7.3 mm, while
            from 0.01 (bias -4.6) 200 steps reached 0.8 mm. None keeps PyTorch's default initialisation.

    Shapes: input (B, in_channels, *S) with every spatial size divisible by 2^depth (16 by default); output
    logits (B, K, *S). Apply ``sigmoid`` for heatmaps.

    Size, measured with ``python experiments/model_size.py`` (defaults, 2D, K = 19, 1x1x512x416, torch 2.13 CPU):
    4,532,699 parameters (18.1 MB as float32); 97.4 GFLOPs forward (multiply-add = 2; ``torch.utils.flop_counter``):
    65.7 in convolutions, 12.1 in linear layers, 19.7 in attention (``grid_sample`` and element-wise ops not counted).

    Example::

        >>> net = CoorTransformerDetector(spatial_dims=2, in_channels=1, out_channels=19)
        >>> net(torch.randn(1, 1, 512, 416)).shape
        torch.Size([1, 19, 512, 416])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        features: Sequence[int] = (32, 64, 128, 192, 192),
        attention: str = "coor",
        num_heads: Sequence[int] = (8, 4, 2, 1),
        kv_strides: Sequence[int] = (1, 2, 4, 8),
        offset_range: float = 2.0,
        mlp_ratio: float = 4.0,
        window_size: int = 7,
        act: str | tuple = "RELU",
        norm: str | tuple = "BATCH",
        dropout: float | None = None,
        output_prior: float | None = None,
    ):
        super().__init__()
        if output_prior is not None and not 0 < output_prior < 1:
            raise ValueError(f"output_prior must be in (0, 1), got {output_prior}.")
        features = [int(f) for f in features]
        depth = len(features) - 1
        if depth < 1:
            raise ValueError(f"features needs at least 2 levels, got {features}.")
        if len(num_heads) != depth or len(kv_strides) != depth:
            raise ValueError(f"num_heads and kv_strides need {depth} entries (one per decoder stage), deepest first.")
        for s, stride in enumerate(kv_strides):
            if (2**s) % int(stride) != 0:
                raise ValueError(f"kv_strides[{s}] = {stride} must divide 2^{s} (the stage's guaranteed divisibility).")
        self.spatial_dims = spatial_dims
        self.depth = depth
        self.encoder = nn.ModuleList(
            [
                _conv_block(spatial_dims, in_channels if i == 0 else features[i - 1], features[i], act, norm, dropout)
                for i in range(depth + 1)
            ]
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2)
        stages = []
        for s in range(depth):
            level = depth - s  # resolution level of the stage's input
            block = make_attention_block(
                attention,
                spatial_dims,
                features[level],
                int(num_heads[s]),
                int(kv_strides[s]),
                offset_range,
                mlp_ratio,
                window_size,
            )
            stages.append(DecoderStage(spatial_dims, features[level], features[level - 1], block, act, norm, dropout))
        self.decoder = nn.ModuleList(stages)
        self.head = Conv[Conv.CONV, spatial_dims](features[0], out_channels, kernel_size=1)
        if output_prior is not None:
            nn.init.constant_(self.head.bias, math.log(output_prior / (1 - output_prior)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.depth
        for size in x.shape[2:]:
            if size % multiple != 0:
                raise ValueError(
                    "CoorTransformerDetector: every spatial size must be divisible by 2^depth = "
                    + str(multiple)
                    + ", got input shape "
                    + str(list(x.shape))
                    + "; resize or pad the image (e.g. monai.transforms.DivisiblePad)."
                )
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for stage in self.decoder:
            x = stage(x, skips.pop())
        return self.head(x)
