"""Networks: the CoorTransformer block and the detector."""

from .attention import ChannelSpatialAttention, make_attention_block
from .coor_transformer import CoorTransformerBlock, explicit_attention
from .detector import CoorTransformerDetector

__all__ = [
    "ChannelSpatialAttention",
    "CoorTransformerBlock",
    "CoorTransformerDetector",
    "explicit_attention",
    "make_attention_block",
]
