import numpy as np
import pytest
import torch

from bundle.geometry import map_points, spacing_affine


def test_the_known_isbi_point_goes_to_millimetres_and_back():
    affine = spacing_affine([0.1, 0.1])
    world = map_points(np.array([[835.0, 996.0]]), affine)
    torch.testing.assert_close(world, torch.tensor([[83.5, 99.6]], dtype=torch.float64))
    torch.testing.assert_close(
        map_points(world, affine, invert=True), torch.tensor([[835.0, 996.0]], dtype=torch.float64)
    )


@pytest.mark.parametrize("dims", [2, 3])
def test_a_rotated_translated_affine_round_trips(dims):
    rng = np.random.default_rng(dims)
    q, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    affine = np.eye(dims + 1)
    affine[:dims, :dims] = q * rng.uniform(0.2, 2.0, size=dims)
    affine[:dims, dims] = rng.normal(size=dims) * 50
    points = rng.normal(size=(5, dims)) * 100
    world = map_points(points, torch.as_tensor(affine))
    np.testing.assert_allclose(world.numpy(), points @ affine[:dims, :dims].T + affine[:dims, dims], atol=1e-9)
    np.testing.assert_allclose(map_points(world, torch.as_tensor(affine), invert=True).numpy(), points, atol=1e-9)


def test_a_2d_point_takes_monai_s_4x4_affine_of_a_2d_image():
    affine = torch.diag(torch.tensor([0.5, 0.25, 1.0, 1.0], dtype=torch.float64))
    affine[:2, 3] = torch.tensor([10.0, -4.0])
    torch.testing.assert_close(
        map_points(torch.tensor([[2.0, 8.0]]), affine), torch.tensor([[11.0, -2.0]], dtype=torch.float64)
    )


@pytest.mark.parametrize("spacing", [[0.1, -0.1], [0.0, 1.0], [float("nan"), 1.0], [], [1, 1, 1, 1]])
def test_bad_spacings_are_refused(spacing):
    with pytest.raises(ValueError, match="spacing must be 1 to 3 positive numbers"):
        spacing_affine(spacing)


def test_the_spacing_affine_is_the_diagonal_of_the_spacing_and_one():
    torch.testing.assert_close(
        spacing_affine([0.1, 0.2]), torch.diag(torch.tensor([0.1, 0.2, 1.0], dtype=torch.float64))
    )
    torch.testing.assert_close(spacing_affine([2.0]), torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64)))


def test_points_that_carry_an_earlier_mapping_are_mapped_afresh_and_come_back_plain():
    """MONAI's ApplyTransformToPoints returns a MetaTensor that remembers its affine; mapped again with the inverse,
    such a tensor would be composed with that remembered affine. map_points takes the values only."""
    from monai.data import MetaTensor
    from monai.transforms import ApplyTransformToPoints

    first = torch.diag(torch.tensor([2.0, 3.0, 1.0, 1.0], dtype=torch.float64))
    first[0, 3] = 5.0
    carried = ApplyTransformToPoints(dtype=torch.float64, affine=first, invert_affine=False)(
        torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)
    )[0]
    assert isinstance(carried, MetaTensor)
    second = spacing_affine([10.0, 10.0])
    back = map_points(carried, second, invert=True)
    torch.testing.assert_close(back, torch.tensor([[0.7, 0.3]], dtype=torch.float64))
    assert type(back) is torch.Tensor and type(map_points(carried, second)) is torch.Tensor


def test_the_spacing_of_a_rotated_anisotropic_affine_is_its_column_lengths():
    from bundle.geometry import affine_spacing

    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.eye(3)
    affine[:2, :2] = rotation @ np.diag([0.1, 0.2])  # rows of this matrix have other lengths than its columns
    np.testing.assert_allclose(affine_spacing(affine, 2).numpy(), [0.1, 0.2], atol=1e-12)


def test_only_2d_pictures_without_geometry_have_a_picture_spacing(tmp_path):
    import nibabel as nib
    from monai.transforms import LoadImage
    from PIL import Image

    from bundle.io import picture_spacing
    from bundle.transforms import PixelSpacingd

    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "p.png")
    nib.save(nib.Nifti1Image(np.zeros((50, 40), np.float32), np.diag([0.3, 0.3, 1.0, 1.0])), tmp_path / "p.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), tmp_path / "v.nii.gz")

    def loaded(name, spacing=None):
        image = LoadImage(image_only=True, ensure_channel_first=True)(str(tmp_path / name))
        return PixelSpacingd("image")({"image": image, "spacing": spacing})["image"]

    assert picture_spacing(loaded("p.png", [0.1, 0.2])) == pytest.approx([0.1, 0.2])
    assert picture_spacing(loaded("p.nii.gz")) is None  # 2D, but with geometry: Slicer shows it in its own mm
    assert picture_spacing(loaded("v.nii.gz")) is None
