import math

import pytest
import torch

from bundle import CoorTransformerBlock, CoorTransformerDetector

SMALL = dict(features=(8, 16, 32), num_heads=(2, 1), kv_strides=(1, 2))


@pytest.mark.parametrize("shape", [(2, 1, 32, 24), (1, 2, 16, 12, 8)])
def test_output_is_one_logit_map_per_landmark(shape):
    net = CoorTransformerDetector(len(shape) - 2, shape[1], 5, **SMALL)
    assert net(torch.randn(shape)).shape == (shape[0], 5, *shape[2:])


def test_default_detector_shape_and_documented_size():
    net = CoorTransformerDetector()
    assert net(torch.randn(1, 1, 64, 48)).shape == (1, 19, 64, 48)
    assert sum(p.numel() for p in net.parameters()) == 4_532_699  # the figure in the docstring


@pytest.mark.parametrize("attention, expected", [("coor", True), ("vanilla", False), ("none", None)])
def test_attention_switch(attention, expected):
    net = CoorTransformerDetector(attention=attention, **SMALL)
    blocks = [m for m in net.modules() if isinstance(m, CoorTransformerBlock)]
    if expected is None:
        assert not blocks
    else:
        assert len(blocks) == 2 and all(b.use_coordinates is expected for b in blocks)
        assert [b.num_heads for b in blocks] == [2, 1] and [b.kv_stride for b in blocks] == [1, 2]
    assert net(torch.randn(1, 1, 16, 16)).shape == (1, 19, 16, 16)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = CoorTransformerDetector(out_channels=3, **SMALL)
    net(torch.randn(2, 1, 16, 12)).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_deterministic_under_a_seed():
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = CoorTransformerDetector(out_channels=3, **SMALL).eval()
        outputs.append(net(torch.ones(1, 1, 16, 12)))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_torchscript_matches_eager():
    torch.manual_seed(0)
    net = CoorTransformerDetector(out_channels=3, **SMALL).eval()
    x = torch.randn(1, 1, 16, 12)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


def test_input_size_not_divisible_is_a_clear_error():
    net = CoorTransformerDetector(**SMALL)
    with pytest.raises(ValueError, match=r"divisible by 2\^depth = 4, got input shape \[1, 1, 18, 16\]"):
        net(torch.randn(1, 1, 18, 16))


def test_bad_arguments():
    with pytest.raises(ValueError, match="attention"):
        CoorTransformerDetector(attention="window", **SMALL)
    with pytest.raises(ValueError, match="one per decoder stage"):
        CoorTransformerDetector(features=(8, 16, 32), num_heads=(2, 1, 1), kv_strides=(1, 2))
    with pytest.raises(ValueError, match="must divide"):
        CoorTransformerDetector(features=(8, 16, 32), num_heads=(2, 1), kv_strides=(2, 2))


def test_activation_normalisation_and_dropout_are_configurable():
    default = CoorTransformerDetector(**SMALL)
    assert not [m for m in default.modules() if isinstance(m, torch.nn.Dropout)]
    assert all(
        isinstance(m, torch.nn.ReLU) for m in default.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.PReLU))
    )
    net = CoorTransformerDetector(act=("leakyrelu", {"negative_slope": 0.1}), norm="instance", dropout=0.2, **SMALL)
    kinds = {type(m) for m in net.modules()}
    assert {
        torch.nn.LeakyReLU,
        torch.nn.InstanceNorm2d,
        torch.nn.Dropout,
    } <= kinds and torch.nn.BatchNorm2d not in kinds
    grouped = CoorTransformerDetector(norm=("group", {"num_groups": 4}), **SMALL)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in grouped.modules())
    # the same state-dict keys as the default where the layers have weights (shipped weights keep loading)
    assert set(CoorTransformerDetector(dropout=0.1, **SMALL).state_dict()) == set(default.state_dict())
    assert net(torch.randn(1, 1, 16, 16)).shape == (1, 19, 16, 16)


def test_key_value_strides_pool_each_stage_as_given():
    """kv_strides (deepest first) reach the stages: with (1, 2, 4) on a 32 x 32 input every stage's keys and values
    lie on the 4 x 4 grid of the deepest features."""
    net = CoorTransformerDetector(features=(8, 8, 8, 8), num_heads=(1, 1, 1), kv_strides=(1, 2, 4))
    seen = []
    for stage in net.decoder:
        stage.attention.pool.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape[2:])))
    net(torch.randn(1, 1, 32, 32))
    assert seen == [(4, 4)] * 6  # keys and values of three stages


def test_the_output_prior_sets_where_every_pixel_starts():
    network = CoorTransformerDetector(2, 1, 3, (8, 16, 16), num_heads=(1, 1), kv_strides=(1, 2), output_prior=0.01)
    torch.testing.assert_close(network.head.bias, torch.full((3,), math.log(0.01 / 0.99)))
    with pytest.raises(ValueError, match="output_prior"):
        CoorTransformerDetector(2, 1, 3, (8, 16, 16), num_heads=(1, 1), kv_strides=(1, 2), output_prior=1.0)
