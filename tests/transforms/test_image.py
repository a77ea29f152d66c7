import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from bundle.geometry import map_points
from bundle.transforms import FinitePixelsd, ShrinkLarged


def _image(shape=(30, 21), spacing=(0.1, 0.2)):
    affine = torch.diag(torch.tensor([*spacing, 1.0, 1.0], dtype=torch.float64))
    values = torch.arange(np.prod(shape), dtype=torch.float32).reshape(1, *shape)
    return MetaTensor(values, affine=affine, meta={"filename_or_obj": "big.png"})


def test_small_images_pass_unchanged():
    image = _image()
    assert ShrinkLarged("image", max_pixels=630)({"image": image})["image"] is image


def test_large_images_are_block_averaged_and_keep_their_geometry(caplog):
    image = _image()
    with caplog.at_level("WARNING"):
        shrunk = ShrinkLarged("image", max_pixels=100)({"image": image})["image"]
    # 630 pixels: factor 2 leaves 15 x 10 = 150 > 100, factor 3 gives 10 x 7 = 70
    assert shrunk.shape == (1, 10, 7) and "averaged down 3x to [10, 7]" in caplog.text
    torch.testing.assert_close(shrunk[0, 0, 0], image[0, :3, :3].mean())  # a 3 x 3 block's mean
    # the new pixel (0, 0) is the centre of the old block 0..2, i.e. old pixel (1, 1); spacing 3 times larger
    world = map_points(torch.tensor([[0.0, 0.0], [9.0, 6.0]]), shrunk.affine, invert=False)
    torch.testing.assert_close(world, torch.tensor([[0.1, 0.2], [2.8, 3.8]], dtype=torch.float64))


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        ShrinkLarged("image", max_pixels=0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_an_image_with_a_non_finite_value_is_refused_by_name(value):
    image = _image()
    image[0, 4, 7] = value
    with pytest.raises(ValueError, match=r"big\.png: 1 of 630 values are NaN or infinite"):
        FinitePixelsd("image")({"image": image})


def test_finite_and_integer_images_pass_unchanged():
    image = _image()
    assert FinitePixelsd("image")({"image": image})["image"] is image
    integers = MetaTensor(torch.zeros(1, 4, 4, dtype=torch.uint8))
    assert FinitePixelsd("image")({"image": integers})["image"] is integers


def _picture(shape, spacing, assumed=False):
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.rand(1, *shape), affine=affine, meta={"filename_or_obj": "p.png"})
    image.meta["spacing_source"] = "assumed" if assumed else "given"
    return image


def test_fitting_to_the_grid_keeps_the_aspect_ratio_and_pads_symmetrically():
    from bundle.transforms import FitToGridd

    # 300 x 600 pixels of 0.5 mm (150 x 300 mm) on a 100 x 100 grid: 3 mm per grid pixel, 50 x 100, padded 25 + 25
    out = FitToGridd("image", [100, 100])({"image": _picture((300, 600), (0.5, 0.5))})["image"]
    assert out.shape == (1, 100, 100)
    torch.testing.assert_close(out.affine[:2, :2], torch.diag(torch.tensor([3.0, 3.0], dtype=torch.float64)))
    assert out[0, :25].abs().max() == 0 and out[0, 75:].abs().max() == 0 and out[0, 25:75].abs().max() > 0
    # the first image pixel's centre region: grid (25, 0) covers original pixels 0..5 by 0..5, centre 2.5 -> 1.25 mm
    world = map_points(torch.tensor([[25.0, 0.0]]), out.affine)
    torch.testing.assert_close(world, torch.tensor([[1.25, 1.25]], dtype=torch.float64))


def test_a_known_spacing_sets_the_grid_pixel_unless_the_image_is_too_large():
    from bundle.transforms import FitToGridd

    fit = FitToGridd("image", [100, 100], grid_spacing=2.0)
    small = fit({"image": _picture((100, 60), (1.0, 1.0))})["image"]  # 100 x 60 mm: 50 x 30 grid pixels of 2 mm
    torch.testing.assert_close(small.affine[:2, :2], torch.diag(torch.tensor([2.0, 2.0], dtype=torch.float64)))
    assert (small[0].abs().sum(1) > 0).sum() == 50 and (small[0].abs().sum(0) > 0).sum() == 30
    large = fit({"image": _picture((400, 300), (1.0, 1.0))})["image"]  # 400 mm: fitted at 4 mm per grid pixel
    torch.testing.assert_close(large.affine[:2, :2], torch.diag(torch.tensor([4.0, 4.0], dtype=torch.float64)))
    guessed = fit({"image": _picture((100, 60), (1.0, 1.0), assumed=True)})["image"]  # size in mm unknown: fitted
    torch.testing.assert_close(guessed.affine[:2, :2], torch.diag(torch.tensor([1.0, 1.0], dtype=torch.float64)))


def test_fitting_refuses_a_grid_of_other_dimensions_and_bad_settings():
    from bundle.transforms import FitToGridd

    with pytest.raises(ValueError, match="3D grid"):
        FitToGridd("image", [10, 10, 10])({"image": _picture((20, 20), (1.0, 1.0))})
    with pytest.raises(ValueError):
        FitToGridd("image", [10, 10], grid_spacing=0)
