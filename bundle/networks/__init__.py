"""Networks: the CoorTransformer block, the attention baselines of Table IV, and the detector."""

from .attention import ChannelSpatialAttention, make_attention_block
from .coor_transformer import CoorTransformerBlock
from .deformable_attention import DeformableAttentionBlock
from .detector import CoorTransformerDetector
from .window_attention import ShiftedWindowBlock, WindowAttentionLayer

__all__ = [
    "ChannelSpatialAttention",
    "CoorTransformerBlock",
    "CoorTransformerDetector",
    "DeformableAttentionBlock",
    "ShiftedWindowBlock",
    "WindowAttentionLayer",
    "make_attention_block",
]
