"""The robustness perturbations change what they say and keep the geometry right (the truth stays in world mm)."""

import pytest
import torch
from monai.data import MetaTensor

from bundle.geometry import affine_spacing, map_points
from scripts.robustness import PERTURBATIONS, Perturbd


def _image():
    values = torch.linspace(0, 200, 70 * 84).reshape(1, 70, 84)
    affine = torch.diag(torch.tensor([0.1, 0.1, 1.0], dtype=torch.float64))
    return {"image": MetaTensor(values, affine=affine, meta={"filename_or_obj": "x.png"})}


def test_intensity_perturbations_keep_the_grid_and_change_the_values():
    original = _image()["image"]
    for kind in ("inverted", "gamma_0.5", "gamma_2.0", "noise", "blur"):
        image = Perturbd(kind)(_image())["image"]
        assert image.shape == original.shape, kind
        torch.testing.assert_close(image.affine, original.affine)
        assert not torch.allclose(image.float(), original.float()), kind
    inverted = Perturbd("inverted")(_image())["image"]
    torch.testing.assert_close(inverted + original, torch.full_like(original, 200.0))
    assert Perturbd("none")(_image())["image"] is not None


def test_geometric_perturbations_keep_world_positions():
    original = _image()["image"]
    coarse = Perturbd("pixels_0.14mm")(_image())["image"]
    assert coarse.shape == (1, 50, 60)
    torch.testing.assert_close(affine_spacing(coarse.affine, 2), torch.tensor([0.14, 0.14], dtype=torch.float64))
    wide = Perturbd("wide")(_image())["image"]
    assert wide.shape == (1, 670, 84) and float(wide[0, 70:].abs().max()) == 0
    point = torch.tensor([[12.0, 30.0]])
    torch.testing.assert_close(map_points(point, wide.affine), map_points(point, original.affine))


def test_an_unknown_perturbation_is_refused():
    assert "none" in PERTURBATIONS
    with pytest.raises(ValueError, match="kind must be one of"):
        Perturbd("upside_down")
