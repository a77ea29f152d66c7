"""Networks: the CoorTransformer block and the detector."""

from .attention import ChannelSpatialAttention, make_attention_block
from .coor_transformer import CoorTransformerBlock
from .detector import CoorTransformerDetector

__all__ = [
    "ChannelSpatialAttention",
    "CoorTransformerBlock",
    "CoorTransformerDetector",
    "make_attention_block",
]
