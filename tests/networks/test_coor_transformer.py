import math

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from bundle import CoorTransformerBlock
from scripts.benchmark import explicit_attention


def _normed(block: CoorTransformerBlock, x: torch.Tensor) -> torch.Tensor:
    return block.norm1(x.movedim(1, -1)).movedim(-1, 1)


@pytest.mark.parametrize("shape, kv_stride", [((2, 32, 16, 12), 1), ((2, 32, 16, 12), 2), ((1, 16, 8, 6, 4), 2)])
def test_shapes(shape, kv_stride):
    block = CoorTransformerBlock(len(shape) - 2, shape[1], num_heads=4, kv_stride=kv_stride)
    assert block(torch.randn(shape)).shape == shape


@pytest.mark.parametrize("shape", [(1, 8, 9, 7), (1, 8, 5, 6, 4)])
def test_zero_offsets_sample_the_input_exactly(shape):
    torch.manual_seed(0)
    block = CoorTransformerBlock(len(shape) - 2, 8)
    n = _normed(block, torch.randn(shape))
    torch.testing.assert_close(block.sample_coordinates(n), n, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(1, 4, 9, 7), (1, 4, 6, 5, 7)])
def test_offsets_move_the_sampling_point_along_the_right_axis(shape):
    spatial_dims = len(shape) - 2
    torch.manual_seed(0)
    x = torch.randn(shape)
    for axis in range(spatial_dims):
        block = CoorTransformerBlock(spatial_dims, 4, offset_range=2.0)
        with torch.no_grad():
            block.offset_net[2].bias[axis] = math.atanh(0.5)  # tanh(.) * 2 = +1 pixel along `axis`
        n = _normed(block, x)
        sampled = block.sample_coordinates(n)
        inner = [slice(None), slice(None)] + [slice(0, -1) if d == axis else slice(None) for d in range(spatial_dims)]
        shifted = [slice(None), slice(None)] + [
            slice(1, None) if d == axis else slice(None) for d in range(spatial_dims)
        ]
        torch.testing.assert_close(sampled[tuple(inner)], n[tuple(shifted)], atol=1e-4, rtol=0)


def test_gradients_reach_the_offset_network():
    torch.manual_seed(0)
    block = CoorTransformerBlock(2, 16, num_heads=2)
    block(torch.randn(2, 16, 8, 8)).square().mean().backward()
    for parameter in block.offset_net.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
    assert block.offset_net[2].weight.grad.abs().max() > 0


def test_vanilla_attention_has_no_coordinate_module_and_every_parameter_learns():
    vanilla = CoorTransformerBlock(2, 16, num_heads=2, use_coordinates=False)
    assert vanilla.offset_net is None  # an unused parameter would stop DistributedDataParallel
    vanilla(torch.randn(2, 16, 8, 8)).square().mean().backward()
    assert all(p.grad is not None for p in vanilla.parameters())
    torch.jit.script(vanilla)


@pytest.mark.parametrize("shape", [(2, 16, 8, 6), (1, 8, 4, 6, 4)])
def test_torchscript_matches_eager(shape):
    torch.manual_seed(0)
    block = CoorTransformerBlock(len(shape) - 2, shape[1], num_heads=2, kv_stride=2).eval()
    x = torch.randn(shape)
    torch.testing.assert_close(torch.jit.script(block)(x), block(x))


class ExplicitAttentionBlock(CoorTransformerBlock):
    """The same block with the attention matrix materialised: the memory reference."""

    def attend(self, q, k, v):
        return explicit_attention(q, k, v)


def _largest_allocation(fn) -> int:
    """Largest single CPU allocation (bytes) of any operator while running fn."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.cpu_memory_usage for event in prof.events())


def test_no_positions_by_positions_matrix_on_a_128x128_stage():
    torch.manual_seed(0)
    block = CoorTransformerBlock(2, 32, num_heads=1)
    x = torch.randn(1, 32, 128, 128)
    matrix_bytes = (128 * 128) ** 2 * 4  # one float32 HW x HW matrix: 1 GiB

    def train_step():
        block(x).square().mean().backward()

    assert _largest_allocation(train_step) < matrix_bytes / 16

    reference = ExplicitAttentionBlock(2, 32, num_heads=1)
    reference.load_state_dict(block.state_dict())
    with torch.no_grad():
        expected = reference(x)
        assert _largest_allocation(lambda: reference(x)) >= matrix_bytes
        torch.testing.assert_close(block(x), expected, atol=1e-4, rtol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        CoorTransformerBlock(2, 30, num_heads=4)
    with pytest.raises(ValueError, match="spatial_dims"):
        CoorTransformerBlock(1, 8)
    with pytest.raises(ValueError, match="kv_stride"):
        CoorTransformerBlock(2, 8, kv_stride=2)(torch.randn(1, 8, 6, 5))


def _reference_forward(block: CoorTransformerBlock, x: torch.Tensor, values_from: str) -> torch.Tensor:
    """The block's definition written out: queries and keys from the coordinate-indexed features, values from the
    normed input (``values_from="input"``), or, wrongly, from the sampled features (``"sampled"``)."""
    b, c, *spatial = x.shape
    n = _normed(block, x)
    sampled = block.sample_coordinates(n)

    def tokens(t):
        return t.flatten(2).transpose(1, 2)

    def heads(t):
        return t.reshape(b, -1, block.num_heads, c // block.num_heads).transpose(1, 2)

    q = heads(block.q(tokens(sampled)))
    k = heads(block.k(tokens(block.pool(sampled))))
    v = heads(block.v(tokens(block.pool(n if values_from == "input" else sampled))))
    attended = block.proj(explicit_attention(q, k, v).transpose(1, 2).reshape(b, -1, c))
    y = tokens(x) + attended
    y = y + block.mlp(block.norm2(y))
    return y.transpose(1, 2).reshape(b, c, *spatial)


@pytest.mark.parametrize("shape, kv_stride", [((2, 8, 8, 6), 1), ((1, 8, 8, 6), 2), ((1, 8, 4, 6, 4), 2)])
def test_queries_and_keys_come_from_the_coordinates_and_values_from_the_input(shape, kv_stride):
    """The block's defining property (Zhu et al.): with non-zero offsets the sampled features differ from the input,
    and the output is the one with values from the input, not from the sampled features."""
    torch.manual_seed(0)
    block = CoorTransformerBlock(len(shape) - 2, shape[1], num_heads=2, kv_stride=kv_stride).eval()
    with torch.no_grad():
        block.offset_net[2].weight.normal_(0, 0.5)  # offsets that vary over positions and axes
    x = torch.randn(shape)
    with torch.no_grad():
        n = _normed(block, x)
        assert (block.sample_coordinates(n) - n).abs().max() > 0.1
        output = block(x)
        torch.testing.assert_close(output, _reference_forward(block, x, "input"), atol=1e-5, rtol=1e-5)
        assert (output - _reference_forward(block, x, "sampled")).abs().max() > 1e-3
