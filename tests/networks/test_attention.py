import pytest
import torch
from monai.networks.blocks import ChannelSELayer

from bundle import ChannelSpatialAttention


@pytest.mark.parametrize("shape", [(2, 16, 12, 10), (1, 8, 6, 5, 4)])
def test_shape_is_kept(shape):
    assert ChannelSpatialAttention(len(shape) - 2, shape[1])(torch.randn(shape)).shape == shape


def _with_spatial_gate(module: ChannelSpatialAttention, bias: float) -> ChannelSpatialAttention:
    with torch.no_grad():
        module.spatial.weight.zero_()
        module.spatial.bias.fill_(bias)
    return module


def test_it_is_channel_attention_gated_by_a_spatial_map():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 10)
    module = ChannelSpatialAttention(2, 16).eval()
    channel = ChannelSELayer(2, 16, r=8)
    channel.load_state_dict(module.channel.state_dict())
    torch.testing.assert_close(_with_spatial_gate(module, 30.0)(x), channel(x))  # gate open: channel attention only
    assert _with_spatial_gate(module, -30.0)(x).abs().max() < 1e-10  # gate shut


def test_the_spatial_gate_sees_the_mean_and_the_maximum_over_channels():
    module = ChannelSpatialAttention(2, 16).eval()
    with torch.no_grad():
        module.spatial.weight.zero_()
        module.spatial.bias.zero_()
        centre = module.spatial.weight.shape[-1] // 2
        module.spatial.weight[0, 1, centre, centre] = 1.0  # gate = sigmoid(max over channels) at each position
    module.channel = torch.nn.Identity()
    x = torch.rand(1, 16, 5, 6)
    torch.testing.assert_close(module(x), x * torch.sigmoid(x.amax(1, keepdim=True)))


def test_it_is_translation_equivariant_away_from_borders():
    torch.manual_seed(0)
    module = ChannelSpatialAttention(2, 8).eval()
    x = torch.zeros(1, 8, 40, 40)
    x[..., 10:14, 10:14] = torch.randn(1, 8, 4, 4)
    shifted = torch.roll(x, shifts=(7, 5), dims=(2, 3))
    torch.testing.assert_close(module(shifted), torch.roll(module(x), shifts=(7, 5), dims=(2, 3)), atol=1e-6, rtol=0)
