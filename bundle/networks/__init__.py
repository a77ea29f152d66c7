"""Networks: the CoorTransformer block and the detector."""

from bundle.networks.attention import ChannelSpatialAttention, make_attention_block
from bundle.networks.coor_transformer import CoorTransformerBlock, explicit_attention
from bundle.networks.detector import CoorTransformerDetector

__all__ = [
    "ChannelSpatialAttention",
    "CoorTransformerBlock",
    "CoorTransformerDetector",
    "explicit_attention",
    "make_attention_block",
]
