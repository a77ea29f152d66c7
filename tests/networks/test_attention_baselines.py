"""The Table IV baselines: shifted-window attention and deformable attention."""

import pytest
import torch

from bundle import CoorTransformerBlock, CoorTransformerDetector
from bundle.networks import DeformableAttentionBlock, ShiftedWindowBlock, WindowAttentionLayer
from bundle.networks.attention import ATTENTION_KINDS, make_attention_block


def _changed(layer: torch.nn.Module, x: torch.Tensor, where: tuple) -> torch.Tensor:
    """(*S) bool: the output positions that change when the input at ``where`` (spatial index) changes."""
    torch.manual_seed(1)
    bumped = x.clone()
    bumped[(0, slice(None)) + where] += torch.randn(x.shape[1])  # random over channels: LayerNorm keeps it
    return (layer(bumped) - layer(x)).abs().sum(1)[0] > 1e-5


def _copy_shared(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Copy the parameters the two blocks share by name (norms, projections, MLP) from source to target."""
    mine = target.state_dict()
    target.load_state_dict({k: v for k, v in source.state_dict().items() if k in mine}, strict=False)


def test_a_window_layer_mixes_only_inside_its_window():
    torch.manual_seed(0)
    layer = WindowAttentionLayer(2, 16, num_heads=2, window_size=4).eval()
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[4:8, 0:4] = True
    assert torch.equal(_changed(layer, torch.randn(1, 16, 8, 8), (5, 2)), expected)


def test_a_shifted_layer_mixes_across_windows_but_not_across_the_wrap_around():
    torch.manual_seed(0)
    layer = WindowAttentionLayer(2, 16, num_heads=2, window_size=4, shifted=True).eval()
    # windows start at 2 and 6 after the shift by 2; rows 6, 7 and 0, 1 share a window but not a region
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[0:2, 2:6] = True
    assert torch.equal(_changed(layer, torch.randn(1, 16, 8, 8), (1, 2)), expected)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:6, 2:6] = True
    assert torch.equal(_changed(layer, torch.randn(1, 16, 8, 8), (3, 4)), expected)


def test_one_padded_window_without_bias_is_vanilla_attention_over_the_image():
    """A 5 x 6 grid in an 8-pixel window is one window padded with 39 tokens: with a zero position bias it must equal
    plain self-attention over the 30 real tokens, so padding never takes part."""
    torch.manual_seed(0)
    layer = WindowAttentionLayer(2, 8, num_heads=2, window_size=8).eval()
    vanilla = CoorTransformerBlock(2, 8, num_heads=2, use_coordinates=False).eval()
    with torch.no_grad():
        layer.relative_bias.zero_()
        for i, name in enumerate("qkv"):
            getattr(vanilla, name).weight.copy_(layer.qkv.weight[8 * i : 8 * (i + 1)])
            getattr(vanilla, name).bias.copy_(layer.qkv.bias[8 * i : 8 * (i + 1)])
    _copy_shared(layer, vanilla)
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(layer(x), vanilla(x), atol=1e-5, rtol=1e-5)


def test_relative_position_bias_is_shared_by_equal_offsets():
    layer = WindowAttentionLayer(2, 8, window_size=3)
    index = layer.relative_index  # (9, 9)
    assert index.shape == (9, 9) and int(index.max()) == 5**2 - 1
    assert index[0, 4] == index[4, 8]  # (0,0)->(1,1) and (1,1)->(2,2): the same offset
    assert index[0, 1] != index[0, 3]  # one column apart vs one row apart
    assert torch.equal(index.diagonal(), torch.full((9,), 12))  # zero offset: the table's centre


@pytest.mark.parametrize("stride", [1, 2])
def test_deformable_with_zero_offsets_is_vanilla_attention_on_pooled_keys(stride):
    """At initialisation (zero offsets) the keys and values are sampled at the centres of stride blocks: bilinear
    sampling there is the block's mean, so the block equals vanilla attention with keys and values pooled by stride."""
    torch.manual_seed(0)
    deformable = DeformableAttentionBlock(2, 16, num_heads=2, stride=stride).eval()
    vanilla = CoorTransformerBlock(2, 16, num_heads=2, kv_stride=stride, use_coordinates=False).eval()
    _copy_shared(deformable, vanilla)
    x = torch.randn(2, 16, 8, 12)
    torch.testing.assert_close(deformable(x), vanilla(x), atol=1e-5, rtol=1e-5)


def test_deformable_offsets_move_the_keys():
    """An offset of +1 pixel along an axis samples every reference point one pixel further along it."""
    torch.manual_seed(0)
    block = DeformableAttentionBlock(2, 8, num_heads=1, stride=1, offset_range=2.0).eval()
    with torch.no_grad():
        block.offset_net[2].bias[1] = torch.atanh(torch.tensor(0.5))  # tanh(.) * 2 = +1 pixel along the last axis
    n = torch.randn(1, 8, 6, 7)
    sampled = block.sample_keys(n, block.q(n.movedim(1, -1)).movedim(-1, 1))
    torch.testing.assert_close(sampled[..., :-1], n[..., 1:], atol=1e-5, rtol=0)


def _window(dims: int, channels: int) -> torch.nn.Module:
    return ShiftedWindowBlock(dims, channels, num_heads=2, window_size=4)


def _deformable(dims: int, channels: int) -> torch.nn.Module:
    return DeformableAttentionBlock(dims, channels, num_heads=2, stride=2, offset_groups=2)


@pytest.mark.parametrize("make", [_window, _deformable])
@pytest.mark.parametrize("shape", [(2, 16, 8, 12), (1, 8, 4, 6, 4), (2, 16, 10, 14)])
def test_baseline_blocks_shapes_gradients_and_torchscript(make, shape):
    torch.manual_seed(0)
    block = make(len(shape) - 2, shape[1]).eval()
    x = torch.randn(shape, requires_grad=True)
    y = block(x)
    assert y.shape == shape
    torch.testing.assert_close(torch.jit.script(block)(x), y)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())
    if make is _deformable:
        assert block.offset_net[2].weight.grad.abs().max() > 0  # the offsets learn


def test_the_swin_pair_is_a_window_layer_then_a_shifted_one():
    block = ShiftedWindowBlock(2, 8, num_heads=2, window_size=6)
    assert [layer.shift for layer in block.layers] == [0, 3]
    assert [layer.window_size for layer in block.layers] == [6, 6]


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="divisible"):
        DeformableAttentionBlock(2, 10, num_heads=3)
    with pytest.raises(ValueError, match="not divisible by 2"):
        DeformableAttentionBlock(2, 8, stride=2)(torch.randn(1, 8, 5, 6))
    with pytest.raises(ValueError, match="window_size"):
        WindowAttentionLayer(2, 8, window_size=1)
    WindowAttentionLayer(2, 8, window_size=2)  # the smallest window
    with pytest.raises(ValueError, match="stride must be >= 1"):
        DeformableAttentionBlock(2, 8, stride=0)
    with pytest.raises(ValueError, match="attention must be one of"):
        make_attention_block("axial", 2, 8, 1)


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_every_kind_in_the_detector_trains_every_parameter_and_scripts(attention):
    torch.manual_seed(0)
    net = CoorTransformerDetector(out_channels=3, features=(8, 16, 32), num_heads=(2, 1), kv_strides=(1, 2),
                                  attention=attention, window_size=4)  # fmt: skip
    x = torch.randn(2, 1, 16, 12)
    net(x).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    net.eval()
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


def test_a_shifted_layer_on_a_padded_grid_matches_brute_force_masked_attention():
    """7 x 9 pixels in 4-pixel windows shifted by 2 (padded to 8 x 12): each real pixel attends exactly to the real
    pixels of its shifted window that the wrap-around did not bring there (zero position bias)."""
    torch.manual_seed(0)
    layer = WindowAttentionLayer(2, 8, num_heads=2, window_size=4, shifted=True).eval()
    with torch.no_grad():
        layer.relative_bias.zero_()
    x = torch.randn(1, 8, 7, 9)
    padded, w, s = [8, 12], 4, 2
    coords = torch.stack(torch.meshgrid(torch.arange(7), torch.arange(9), indexing="ij"), -1).reshape(-1, 2)
    rolled = (coords - s) % torch.tensor(padded)  # where each pixel sits after the roll by -s
    region = (rolled >= torch.tensor(padded) - w).long() + (rolled >= torch.tensor(padded) - s).long()
    same = ((rolled[:, None] // w == rolled[None] // w) & (region[:, None] == region[None])).all(-1)
    n = layer.norm1(x.flatten(2).transpose(1, 2))[0]  # (63, C)
    q, k, v = layer.qkv(n).reshape(63, 3, 2, 4).permute(1, 2, 0, 3)  # each (heads, 63, d)
    scores = (q @ k.transpose(1, 2) / 2.0).masked_fill(~same, float("-inf"))
    attended = (scores.softmax(-1) @ v).transpose(0, 1).reshape(63, 8)
    out = x.flatten(2).transpose(1, 2)[0] + layer.proj(attended)
    out = out + layer.mlp(layer.norm2(out))
    torch.testing.assert_close(layer(x), out.T.reshape(1, 8, 7, 9), atol=1e-5, rtol=1e-5)
