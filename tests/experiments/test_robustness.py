"""The robustness perturbations change what they say, keep the geometry right (the truth stays in world mm), and
make the new files they stand for (mirrored, turned, of unknown spacing) with the affine that maps them back."""

import pytest
import torch
from monai.data import MetaTensor

from bundle.geometry import affine_spacing, map_points
from experiments.robustness import PERTURBATIONS, Perturbd


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
    unchanged = Perturbd("none")(_image())["image"]
    torch.testing.assert_close(unchanged.as_tensor(), original.as_tensor())
    torch.testing.assert_close(unchanged.meta["source_affine"], original.affine)


def test_geometric_perturbations_keep_world_positions():
    original = _image()["image"]
    coarse = Perturbd("pixels_0.14mm")(_image())["image"]
    assert coarse.shape == (1, 50, 60)
    torch.testing.assert_close(affine_spacing(coarse.affine, 2), torch.tensor([0.14, 0.14], dtype=torch.float64))
    wide = Perturbd("wide")(_image())["image"]
    assert wide.shape == (1, 670, 84) and float(wide[0, 70:].abs().max()) == 0
    point = torch.tensor([[12.0, 30.0]])
    torch.testing.assert_close(map_points(point, wide.affine), map_points(point, original.affine))
    tall = {"image": MetaTensor(torch.arange(70 * 500.0).reshape(1, 70, 500), affine=original.affine.clone())}
    cropped = Perturbd("crop_top")(tall)["image"]  # 40 mm off the top: 400 rows of 0.1 mm, 100 left
    assert cropped.shape == (1, 70, 100) and cropped.meta["spatial_shape"] == [70, 100]
    assert float(cropped[0, 12, 30]) == float(tall["image"][0, 12, 430])  # the same anatomy...
    torch.testing.assert_close(  # ...at the same place in the world
        map_points(torch.tensor([[12.0, 30.0]]), cropped.affine),
        map_points(torch.tensor([[12.0, 430.0]]), original.affine),
    )


@pytest.mark.parametrize("kind", ["mirrored", "rotated_90", "rotated_180", "unknown_0.125"])
def test_a_new_file_has_a_plain_affine_and_maps_back_to_the_truth(kind):
    original = _image()["image"]
    made = Perturbd(kind)(_image())["image"]
    # a file of its own: its spacing (given, or for "unknown" the 0.1 mm assumed) and its first pixel at the origin
    plain = torch.eye(3, dtype=torch.float64)
    plain[0, 0] = plain[1, 1] = 0.1
    torch.testing.assert_close(made.affine, plain)
    torch.testing.assert_close(made.meta["source_affine"], plain)
    assert made.meta.get("spacing_source") == ("assumed" if kind.startswith("unknown") else None)
    # a pixel of the new file, through the kept affine, is where the same anatomy is in the original
    brightest = torch.nonzero(made[0] == made[0].max())[0].double()
    torch.testing.assert_close(
        map_points(brightest[None], made.meta["truth_affine"]),
        map_points(torch.tensor([[69.0, 83.0]], dtype=torch.float64), original.affine),
        atol=0.2,
        rtol=0,
    )


def test_an_unknown_perturbation_is_refused():
    assert "none" in PERTURBATIONS
    with pytest.raises(ValueError, match="kind must be one of"):
        Perturbd("upside_down")
