import math

import pytest
import torch
import torch.nn.functional as F

from bundle import CentralLoss, GaussianHeatmapCodec

TARGETS = (0.0, 0.1, 0.9, 1.0)


def _logit(p: float) -> float:
    p = min(max(p, 1e-13), 1 - 1e-13)  # logits of +-30 stand in for the infinite logits of 0 and 1
    return math.log(p / (1 - p))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_r0_is_binary_cross_entropy_on_soft_targets(reduction):
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 6) * 4, torch.rand(2, 3, 8, 6)
    expected = F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)
    torch.testing.assert_close(CentralLoss(r=0, reduction=reduction)(logits, target), expected)


def test_r0_with_pos_weight_is_weighted_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 6) * 4, torch.rand(2, 3, 8, 6)
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(5.0))
    torch.testing.assert_close(CentralLoss(r=0, pos_weight=5.0)(logits, target), expected)


def test_known_values():
    logits = torch.zeros(1, 2, 1, 1)  # px = 0.5
    target = torch.tensor([1.0, 0.25]).reshape(1, 2, 1, 1)
    loss = CentralLoss(reduction="none")(logits, target).flatten()
    # py = 1: 0.5^2 * log 2; py = 0.25: 0.25^2 * (0.25 + 0.75) * log 2
    torch.testing.assert_close(loss, torch.tensor([0.25 * math.log(2), 0.0625 * math.log(2)]))
    literal = CentralLoss(form="literal", reduction="none")(logits, target).flatten()
    torch.testing.assert_close(literal, torch.tensor([0.25 * math.log(2), 0.25 * 0.0625 * math.log(2)]))


@pytest.mark.parametrize("py", TARGETS)
def test_zero_where_prediction_equals_target(py):
    logits = torch.full((1, 1, 4, 4), _logit(py))
    target = torch.full((1, 1, 4, 4), py)
    assert CentralLoss(reduction="none")(logits, target).abs().max() < 1e-12
    if 0 < py < 1:  # cross-entropy is not zero there: the modulating term is what makes it vanish
        assert CentralLoss(r=0)(logits, target) > 0.3


def test_background_gets_a_gradient_only_in_the_two_term_form():
    target = torch.zeros(1, 1, 3, 3)
    target[0, 0, 1, 1] = 1.0
    for form, expect_background_gradient in (("two_term", True), ("literal", False)):
        logits = torch.zeros(1, 1, 3, 3, requires_grad=True)
        CentralLoss(form=form)(logits, target).backward()
        background = logits.grad[0, 0][target[0, 0] == 0]
        assert bool((background != 0).all()) is expect_background_gradient, form


def _fit_free_logit_map(form: str) -> tuple[torch.Tensor, torch.Tensor]:
    target, _ = GaussianHeatmapCodec(2).encode(torch.tensor([[[15.3, 12.6]]]), (32, 28), sigma=2.0)
    logits = torch.zeros_like(target, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.3)
    loss_fn = CentralLoss(form=form)
    for _ in range(300):
        optimiser.zero_grad()
        loss_fn(logits, target).backward()
        optimiser.step()
    return torch.sigmoid(logits.detach()), target


def test_fitting_drives_background_down_with_the_default_form():
    probability, target = _fit_free_logit_map("two_term")
    assert probability[target == 0].max() < 0.05
    assert (probability - target).abs().max() < 0.1


def test_literal_form_is_degenerate_background_stays_at_one_half():
    """Documents why the literal one-term form is not the default (DESIGN.md §4)."""
    probability, target = _fit_free_logit_map("literal")
    background = probability[target == 0]
    assert (background - 0.5).abs().max() < 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_finite_under_autocast(dtype):
    logits = torch.linspace(-30, 30, 2 * 3 * 50).reshape(2, 3, 10, 5).to(dtype).requires_grad_()
    target = torch.rand(2, 3, 10, 5).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        loss = CentralLoss()(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert torch.isfinite(logits.grad).all()


def test_mask_removes_a_landmark_and_does_not_dilute_the_mean():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    loss = CentralLoss()(logits, target, mask)
    changed = target.clone()
    changed[0, 1] = 1 - changed[0, 1]
    torch.testing.assert_close(CentralLoss()(logits, changed, mask), loss)
    elements = CentralLoss(reduction="none")(logits, target)
    expected = (elements[0, [0, 2]].sum() + elements[1].sum()) / (5 * 64)
    torch.testing.assert_close(loss, expected)


def test_all_masked_gives_zero_not_nan():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    loss = CentralLoss()(logits, torch.rand(1, 2, 4, 4), torch.zeros(1, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_three_dimensional_input():
    logits, target = torch.randn(1, 2, 4, 5, 6), torch.rand(1, 2, 4, 5, 6)
    assert CentralLoss(reduction="none")(logits, target).shape == (1, 2, 4, 5, 6)


def test_one_dimensional_input():
    logits, target = torch.randn(2, 3, 7), torch.rand(2, 3, 7)
    assert CentralLoss(reduction="none")(logits, target).shape == (2, 3, 7)


@pytest.mark.parametrize("r", [0.5, 1.0, 3.0])
def test_the_exponent_modulates_cross_entropy_by_the_difference(r):
    logits, target = torch.randn(1, 2, 5, 4), torch.rand(1, 2, 5, 4)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = (target - torch.sigmoid(logits)).abs() ** r * cross_entropy
    torch.testing.assert_close(CentralLoss(r=r, reduction="none")(logits, target), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="same shape"):
        CentralLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        CentralLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(2))
    with pytest.raises(ValueError, match="r must be"):
        CentralLoss(r=-1)
    with pytest.raises(ValueError, match="pos_weight must be > 0"):
        CentralLoss(pos_weight=0.0)
    with pytest.raises(ValueError, match="input must be"):
        CentralLoss()(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="form"):
        CentralLoss(form="one_term")
    with pytest.raises(ValueError):
        CentralLoss(reduction="median")
