import torch
from monai.losses import FocalLoss

from bundle import HeatmapFocalLoss


def test_matches_monai_focal_loss_without_mask():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 6) * 3, torch.rand(2, 3, 8, 6)
    expected = FocalLoss(gamma=2.0, use_softmax=False, reduction="mean")(logits, target)
    torch.testing.assert_close(HeatmapFocalLoss(gamma=2.0)(logits, target), expected)


def test_masked_landmark_contributes_nothing():
    torch.manual_seed(0)
    logits, target = torch.randn(1, 2, 8, 6, requires_grad=True), torch.rand(1, 2, 8, 6)
    loss = HeatmapFocalLoss()(logits, target, torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert logits.grad[0, 1].abs().max() == 0 and logits.grad[0, 0].abs().max() > 0
    torch.testing.assert_close(loss, HeatmapFocalLoss()(logits[:, :1], target[:, :1]))
