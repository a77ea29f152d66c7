"""Landmarks read from a label image (value k + 1 at landmark k): the centroid of each value, in world mm through the
image's grid; a missing value is not visible; a value in several blobs, values beyond the landmarks, another grid
and unreadable files are errors that name what is wrong."""

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from bundle.io import LandmarkFileError, read_landmarks, write_landmarks
from bundle.io.landmarks import Landmarks
from bundle.transforms import LoadLandmarksd, PixelSpacingd
from bundle.transforms.label_map import landmark_label_map

SLICER_PICTURE = np.diag([-1.0, -1.0, 1.0, 1.0])  # 3D Slicer's frame of a picture: 1 mm per pixel, LPS along the axes


def _save(path, labels, affine=SLICER_PICTURE, dtype=np.int16):
    nib.save(nib.Nifti1Image(labels.astype(dtype), affine), str(path))
    return path


def _slicer_2d(path, labels):
    """A 2D label as 3D Slicer exports it: a volume of one slice, int16, in its frame of the picture."""
    return _save(path, labels[..., None])


def test_round_trip_of_the_label_image_inference_returns_within_half_a_pixel(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.uniform(30, 570, size=(19, 2))
    pixels[1] = pixels[0] + [12.0, 5.0]  # 1.3 mm apart: disks that would overlap at 1.5 mm shrink instead
    spacing = np.array([0.1, 0.1])
    labels = landmark_label_map(pixels, (600, 700), spacing, radius_mm=1.5)
    grid = ((600, 700), np.diag([0.1, 0.1, 1.0]))  # the picture as the bundle loads it: 0.1 mm per pixel, origin 0
    landmarks = read_landmarks(_slicer_2d(tmp_path / "a.nii.gz", labels), 19, spatial_dims=2, grid=grid)
    assert landmarks.visible.all() and landmarks.spatial_dims == 2
    # a whole disk of 15 pixels comes back within 0.15 pixels; smaller disks (of close landmarks) within half a pixel
    errors = np.abs(landmarks.coordinates / spacing - pixels).max(axis=1)
    gaps = np.linalg.norm(pixels[:, None] - pixels[None], axis=-1) + np.diag(np.full(19, np.inf))
    whole = gaps.min(axis=1) >= 2 * 15
    assert whole.sum() >= 10 and errors[whole].max() < 0.15 and errors.max() < 0.5, errors


def test_the_centroid_goes_through_the_images_affine_and_a_missing_value_is_not_visible(tmp_path):
    labels = np.zeros((40, 30), dtype=np.int16)
    labels[10:13, 4:7] = 1  # centroid (11, 5)
    labels[20, 20] = 3  # landmark 2; value 2 (landmark 1) is absent
    affine = np.array([[0.2, 0.0, 5.0], [0.0, 0.3, -1.0], [0.0, 0.0, 1.0]])
    landmarks = read_landmarks(_slicer_2d(tmp_path / "a.nii.gz", labels), 3, spatial_dims=2, grid=((40, 30), affine))
    np.testing.assert_allclose(landmarks.coordinates[0], [0.2 * 11 + 5.0, 0.3 * 5 - 1.0])
    np.testing.assert_allclose(landmarks.coordinates[2], [0.2 * 20 + 5.0, 0.3 * 20 - 1.0])
    assert landmarks.visible.tolist() == [True, False, True] and np.isnan(landmarks.coordinates[1]).all()


def test_a_3d_label_reads_through_its_geometry_which_must_be_its_images(tmp_path):
    affine = np.array([[-2.0, 0, 0, 40.0], [0, 2.0, 0, -30.0], [0, 0, 3.0, 10.0], [0, 0, 0, 1.0]])
    labels = np.zeros((10, 12, 8), dtype=np.uint8)
    labels[2:4, 5, 6] = 1  # centroid (2.5, 5, 6)
    path = _save(tmp_path / "a.nii.gz", labels, affine)
    expected = (affine @ [2.5, 5.0, 6.0, 1.0])[:3]
    np.testing.assert_allclose(read_landmarks(path, 1, spatial_dims=3).coordinates[0], expected)  # its own affine
    same = read_landmarks(path, 1, spatial_dims=3, grid=((10, 12, 8), affine))
    np.testing.assert_allclose(same.coordinates[0], expected)
    shifted = affine.copy()
    shifted[0, 3] += 1.5  # 1.5 mm: more than half the smallest voxel (2 mm)
    with pytest.raises(LandmarkFileError, match=r"geometry is not its image's: .* 1\.50 mm apart"):
        read_landmarks(path, 1, spatial_dims=3, grid=((10, 12, 8), shifted))
    shifted[0, 3] = 40.5  # half a millimetre: the same grid as far as pixels go
    np.testing.assert_allclose(read_landmarks(path, 1, spatial_dims=3, grid=((10, 12, 8), shifted)).coordinates[0],
                               (shifted @ [2.5, 5.0, 6.0, 1.0])[:3])  # fmt: skip


def _affine(matrix, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = matrix, origin
    return affine


_DIAGONAL = np.diag([-2.0, 2.0, 3.0])  # the smallest voxel edge 2 mm: the label may be 1 mm off at any corner
_OBLIQUE = np.array([[0.5**0.5, -4 * 0.5**0.5, 0], [0.5**0.5, 4 * 0.5**0.5, 0], [0, 0, 3.0]])  # edges 1, 4, 3 mm


@pytest.mark.parametrize(
    "image_affine, label_affine, same",
    [
        # exactly half the smallest voxel apart (a 1 mm shift) is the same grid; origin 0, so that no translation
        # enters the voxel size
        (_affine(_DIAGONAL), _affine(_DIAGONAL, (1.0, 0, 0)), True),
        # x spacing 2 against 2.105: 9 voxels along, the far corner is 0.945 mm off (one voxel more would be 1.05)
        (_affine(_DIAGONAL), _affine(np.diag([-2.105, 2.0, 3.0])), True),
        # the same spacing error pivoted on the far corner: 1.06 mm off at voxel 0, 0.94 mm at voxel 1
        (_affine(_DIAGONAL), _affine(np.diag([-2.118, 2.0, 3.0]), (9 * 0.118, 0, 0)), False),
        # oblique axes: the smallest voxel edge is a column's length (1 mm), not a row's
        (_affine(_OBLIQUE), _affine(_OBLIQUE, (0.6, 0, 0)), False),
        (_affine(_OBLIQUE), _affine(_OBLIQUE, (0.4, 0, 0)), True),
    ],
    ids=["half_a_voxel", "inside_at_the_far_corner", "beyond_at_the_near_corner", "oblique_beyond", "oblique_inside"],
)
def test_a_3d_label_must_lie_within_half_a_voxel_of_its_image_at_every_corner(
    tmp_path, image_affine, label_affine, same
):
    labels = np.zeros((10, 12, 8), dtype=np.uint8)
    labels[2:4, 5, 6] = 1
    path = _save(tmp_path / "a.nii.gz", labels, label_affine)
    grid = ((10, 12, 8), image_affine)
    if same:
        expected = (image_affine @ [2.5, 5.0, 6.0, 1.0])[:3]  # through the image's own geometry
        np.testing.assert_allclose(read_landmarks(path, 1, spatial_dims=3, grid=grid).coordinates[0], expected)
    else:
        with pytest.raises(LandmarkFileError, match="geometry is not its image's"):
            read_landmarks(path, 1, spatial_dims=3, grid=grid)


def test_without_an_image_a_label_reads_through_its_own_geometry_and_counts_its_values(tmp_path):
    path = _slicer_2d(tmp_path / "a.nii.gz", np.zeros((8, 8)))
    assert read_landmarks(path, spatial_dims=2).coordinates.shape == (0, 2)  # no values, no count: no landmarks
    labels = np.zeros((8, 8))
    labels[6, 1], labels[2, 3] = 1, 2  # the largest value, 2, says there are two landmarks
    path = _slicer_2d(tmp_path / "b.nii.gz", labels)
    # Slicer's frame of a picture is LPS along the pixel axes: x and y negated in RAS
    np.testing.assert_allclose(read_landmarks(path, spatial_dims=2).coordinates, [[-6.0, -1.0], [-2.0, -3.0]])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a.__setitem__((slice(30, 32), slice(30, 32)), 2), r"value 2 is in 2 separate blobs"),
        (lambda a: a.__setitem__((35, 5), 4), r"holds values \[4\]; .* values 1 to 3"),
    ],
)
def test_a_value_in_two_blobs_or_beyond_the_landmarks_is_named(tmp_path, edit, message):
    labels = np.zeros((40, 40), dtype=np.int16)
    labels[5:8, 5:8], labels[10:12, 10:12] = 1, 2
    edit(labels)
    with pytest.raises(LandmarkFileError, match=message):
        read_landmarks(_slicer_2d(tmp_path / "a.nii.gz", labels), 3, spatial_dims=2, grid=((40, 40), np.eye(3)))


def test_blobs_touching_at_a_corner_are_one_and_another_grid_is_refused(tmp_path):
    labels = np.zeros((20, 20), dtype=np.int16)
    labels[4, 4] = labels[5, 5] = 1  # diagonal neighbours: one blob, centroid (4.5, 4.5)
    path = _slicer_2d(tmp_path / "a.nii.gz", labels)
    np.testing.assert_allclose(
        read_landmarks(path, 1, spatial_dims=2, grid=((20, 20), np.eye(3))).coordinates[0], [4.5, 4.5]
    )
    with pytest.raises(LandmarkFileError, match="the label image is 20 x 20 pixels, its image 20 x 24"):
        read_landmarks(path, 1, spatial_dims=2, grid=((20, 24), np.eye(3)))


def test_bad_label_files_are_refused_by_name(tmp_path):
    grid = ((8, 8), np.eye(3))
    fractional = _save(tmp_path / "fractional.nii.gz", np.full((8, 8, 1), 0.5), dtype=np.float32)
    with pytest.raises(LandmarkFileError, match="fractional.nii.gz: a label image holds whole numbers"):
        read_landmarks(fractional, 1, spatial_dims=2, grid=grid)
    layers = _save(tmp_path / "layers.nii.gz", np.zeros((8, 8, 2)))
    with pytest.raises(LandmarkFileError, match=r"shape \(8, 8, 2\) for 2D landmarks"):
        read_landmarks(layers, 1, spatial_dims=2, grid=grid)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    with pytest.raises(LandmarkFileError, match="broken.nii.gz: cannot be read as a label image"):
        read_landmarks(broken, 1, spatial_dims=2, grid=grid)
    with pytest.raises(LandmarkFileError, match="read here, not written"):
        write_landmarks(tmp_path / "out.nii.gz", Landmarks(np.zeros((1, 2))))


def test_training_reads_a_label_image_on_the_picture_it_labels(tmp_path):
    """LoadLandmarksd, as training runs it: the picture at its given spacing, the label from 3D Slicer."""
    picture = tmp_path / "image.png"
    Image.fromarray(np.zeros((60, 80), dtype=np.uint8)).save(picture)  # 80 columns (x), 60 rows (y)
    labels = np.zeros((80, 60), dtype=np.int16)
    labels[50:53, 20:23] = 1  # x = column 51, y = row 21
    label = _slicer_2d(tmp_path / "image.nii.gz", labels)
    image = MetaTensor(torch.zeros(1, 80, 60), meta={"filename_or_obj": str(picture), "spatial_shape": (80, 60)})
    data = PixelSpacingd("image")({"image": image, "spacing": [0.2, 0.25], "landmarks": str(label)})
    out = LoadLandmarksd("landmarks", num_landmarks=1, spatial_dims=2)(data)
    np.testing.assert_allclose(out["landmarks"].numpy(), [[51 * 0.2, 21 * 0.25]])


def test_the_shape_model_reads_a_label_image_on_the_picture_it_labels(tmp_path):
    """The training's shape model takes a label image's landmarks in the picture's mm, as LoadLandmarksd does, not
    through the label file's own (Slicer's 1 mm) frame."""
    from bundle.data import configurations_from_datalist

    picture = tmp_path / "image.png"
    Image.fromarray(np.zeros((60, 80), dtype=np.uint8)).save(picture)
    labels = np.zeros((80, 60), dtype=np.int16)
    labels[50:53, 20:23] = 1  # x = column 51, y = row 21
    entry = {"image": str(picture), "label": str(_slicer_2d(tmp_path / "image.nii.gz", labels)), "spacing": [0.2, 0.25]}
    np.testing.assert_allclose(configurations_from_datalist([entry], 1), [[[51 * 0.2, 21 * 0.25]]])
