"""Landmarks from a label image: value k + 1 marks landmark k (what MONAI Label's ``/infer`` returns, and what 3D
Slicer's *Submit Label* uploads after the disks were moved in the Segment Editor). Read only.

Each landmark is the centroid of its value's pixels, in world millimetres through the image's grid (the shape and
affine of the image the labels belong to, as loaded: ``FileSettings.grid``), or through the label image's own affine
when no grid is given. Why not the label's affine always: 3D Slicer loads a picture without geometry (PNG, JPEG) at
1 mm per pixel in a frame of its own, and exports the label in it, while the bundle gives the picture its pixel
spacing; the label's pixels are the picture's pixels, which is what this relies on in 2D. In 3D the label's geometry
must be the image's (within half a voxel), or the label belongs to another grid and is refused.

A value that is absent is a landmark that is not visible (landmarks are named by value, 1 to K). A value in
several separate blobs (pixels connected across faces, edges and corners count as one) is an error naming it, as are
values beyond the landmarks and non-integer labels. MONAI has no reader of points from a label image, hence this one.
"""

from __future__ import annotations

import numpy as np
from monai.data.utils import to_affine_nd
from scipy import ndimage

from ...geometry import affine_spacing, map_points
from ..landmarks import FileSettings, LandmarkFileError, Landmarks

__all__ = ["LABEL_IMAGE_FORMATS"]


class _LabelImage:
    """A label image format of one suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``)."""

    def __init__(self, suffix: str):
        self.suffix = suffix

    def read(self, path, settings: FileSettings) -> Landmarks:
        labels, affine = _load(path, settings.spatial_dims)
        count = settings.num_landmarks
        present = [int(v) for v in np.unique(labels) if v != 0]
        if count is None:
            count = max(present, default=0)
        beyond = [v for v in present if not 1 <= v <= count]
        if beyond:
            raise LandmarkFileError(
                path, f"holds values {beyond}; landmark k is value k + 1, for {count} landmarks values 1 to {count}."
            )
        if settings.grid is not None:
            affine = _grid_affine(path, labels.shape, affine, settings.grid)
        dims = labels.ndim
        points = np.full((count, dims), np.nan)
        structure = ndimage.generate_binary_structure(dims, dims)
        boxes = ndimage.find_objects(labels)  # one pass: the bounding box of each value
        for value in present:
            box = boxes[value - 1]
            mask = labels[box] == value
            _, blobs = ndimage.label(mask, structure=structure)
            if blobs > 1:
                raise LandmarkFileError(
                    path,
                    f"value {value} is in {blobs} separate blobs; one blob marks a landmark.",
                )
            points[value - 1] = np.argwhere(mask).mean(axis=0) + [s.start for s in box]  # pixels
        return Landmarks(map_points(points, affine).numpy())

    def write(self, path, landmarks: Landmarks, settings: FileSettings) -> None:
        raise LandmarkFileError(
            path, "label images are read here, not written: inference writes them (its label output, disks of k + 1)."
        )


def _load(path, spatial_dims: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The label array (array-axis order, x first) with trailing size-1 axes beyond ``spatial_dims`` dropped (3D Slicer
    exports a 2D label as a volume of one slice), and its affine (RAS, MONAI's convention)."""
    from monai.transforms import LoadImage

    try:
        image = LoadImage(image_only=True, dtype=None)(str(path))
    except Exception as e:  # noqa: BLE001 - readers raise many kinds; all mean "unreadable"
        raise LandmarkFileError(path, f"cannot be read as a label image ({type(e).__name__}: {e}).") from None
    labels = np.asarray(image)
    dims = spatial_dims or labels.ndim
    while labels.ndim > dims and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.ndim != dims:
        raise LandmarkFileError(
            path, f"a label image of shape {labels.shape} for {dims}D landmarks (several layers or channels?)."
        )
    if not np.array_equal(labels, np.round(labels)) or labels.min(initial=0) < 0:
        raise LandmarkFileError(path, "a label image holds whole numbers >= 0 (0: background, k + 1: landmark k).")
    return labels.astype(np.int64), to_affine_nd(dims, np.asarray(image.affine, dtype=np.float64))


def _grid_affine(path, shape: tuple, own: np.ndarray, grid) -> np.ndarray:
    """The image's affine, after checking that the label lies on the image's pixels: the same shape, and in 3D the
    same geometry within half a voxel at every corner."""
    image_shape = tuple(int(n) for n in grid[0])
    image_affine = to_affine_nd(len(shape), np.asarray(grid[1], dtype=np.float64))
    if tuple(shape) != image_shape:
        raise LandmarkFileError(
            path,
            f"the label image is {' x '.join(map(str, shape))} pixels, its image {' x '.join(map(str, image_shape))}.",
        )
    if len(shape) == 3:
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1).T
        apart = float((map_points(corners, own) - map_points(corners, image_affine)).norm(dim=-1).max())
        voxel = float(affine_spacing(image_affine, 3).min())
        if apart > voxel / 2:
            raise LandmarkFileError(
                path, f"the label image's geometry is not its image's: their corners are {apart:.2f} mm apart."
            )
    return image_affine


LABEL_IMAGE_FORMATS = {f"label{s}": _LabelImage(s) for s in (".nii.gz", ".nii", ".nrrd", ".mha")}
