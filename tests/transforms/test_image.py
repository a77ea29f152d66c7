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
