import numpy as np
import pytest
import torch

from bundle import inference_list
from bundle.io import colliding_stems, output_stem


@pytest.mark.parametrize(
    "path, stem",
    [("a/001.png", "001"), ("p1.v2.png", "p1.v2"), ("t1.nii.gz", "t1"), ("T1.NII.GZ", "T1"), ("scan.JPEG", "scan"),
     ("x.mha", "x"), ("notes.txt", "notes"), (".png", ".png")],
)  # fmt: skip
def test_output_stems_drop_the_image_suffix_only(path, stem):
    assert output_stem(path) == stem


def test_collisions_are_the_names_that_differ_by_suffix_alone():
    paths = ["d/scan.png", "d/scan.jpg", "d/p1.v1.png", "d/p1.v2.png", "d/t1.nii.gz", "e/t1.nii"]
    assert colliding_stems(paths) == {"scan": ["d/scan.png", "d/scan.jpg"], "t1": ["d/t1.nii.gz", "e/t1.nii"]}


def test_inference_refuses_colliding_names_before_anything_runs(tmp_path):
    for name in ("scan.png", "scan.jpg", "p1.v1.png", "p1.v2.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"would write the same output files \(scan: .*scan\.jpg, .*scan\.png\)"):
        inference_list(tmp_path)
    (tmp_path / "scan.jpg").unlink()
    assert [e["image"].split("/")[-1] for e in inference_list(tmp_path)] == ["p1.v1.png", "p1.v2.png", "scan.png"]


def _load(path, loader):
    return loader({"image": str(path)})["image"]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_pictures_are_read_as_their_grey_channel(tmp_path, mode):
    from monai.transforms import LoadImaged
    from PIL import Image

    from bundle.io import load_image_grey_pictures
    from bundle.transforms import AsGreyscaled

    grey = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)  # rows x columns
    picture = Image.fromarray(grey).convert(mode)
    if mode in ("RGBA", "LA"):
        picture.putalpha(Image.fromarray(np.full_like(grey, 77)))  # alpha is not intensity
    path = tmp_path / "p.png"
    picture.save(path)
    read = _load(path, load_image_grey_pictures("image", ensure_channel_first=True, image_only=True))
    assert read.shape == (1, 40, 30)  # MONAI's [x, y] order
    np.testing.assert_array_equal(read[0].numpy(), grey.T)
    # what MONAI's own reader and AsGreyscaled make of it, channel for channel
    default = AsGreyscaled("image")({"image": _load(path, LoadImaged("image", ensure_channel_first=True))})["image"]
    np.testing.assert_allclose(default.numpy(), read.numpy(), atol=0.5)
    torch.testing.assert_close(read.affine, default.affine)


def test_sixteen_bit_pictures_and_files_with_geometry_are_read_as_before(tmp_path):
    import nibabel as nib
    from monai.transforms import LoadImaged
    from PIL import Image

    from bundle.io import load_image_grey_pictures

    deep = np.random.default_rng(1).integers(0, 65536, (20, 25), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    affine = np.diag([0.5, 0.7, 1.2, 1.0])
    affine[:3, 3] = [4.0, -2.0, 9.0]
    nib.save(
        nib.Nifti1Image(np.random.default_rng(2).random((6, 7, 8)).astype(np.float32), affine), tmp_path / "v.nii.gz"
    )
    ours = load_image_grey_pictures("image", ensure_channel_first=True, image_only=True)
    theirs = LoadImaged("image", ensure_channel_first=True, image_only=True)
    for name in ("d.png", "v.nii.gz"):
        a, b = _load(tmp_path / name, ours), _load(tmp_path / name, theirs)
        torch.testing.assert_close(a.as_tensor(), b.as_tensor())
        torch.testing.assert_close(a.affine, b.affine)
    assert _load(tmp_path / "d.png", ours).max() > 255


def test_a_missing_or_unreadable_image_is_an_input_error_naming_the_file(tmp_path):
    from bundle.errors import InputError
    from bundle.io import load_image_grey_pictures

    loader = load_image_grey_pictures("image", ensure_channel_first=True, image_only=True)
    with pytest.raises(InputError, match=r"nowhere\.png: no such file\."):
        _load(tmp_path / "nowhere.png", loader)
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(InputError, match=r"text\.jpg: the image cannot be read \(\w+"):
        _load(tmp_path / "text.jpg", loader)


@pytest.mark.parametrize("shape, dims, message", [((1, 40, 30), 3, "a 2D image"), ((1, 6, 7, 8), 2, "a 3D image")])
def test_an_image_of_other_dimensions_than_the_models_is_refused_as_such(shape, dims, message):
    from monai.data import MetaTensor

    from bundle.errors import InputError
    from bundle.transforms import SqueezeSpatiald

    image = MetaTensor(torch.zeros(shape), meta={"filename_or_obj": "x.png"})
    with pytest.raises(InputError, match=rf"x\.png: {message} of shape .*; this model takes {dims}D images"):
        SqueezeSpatiald("image", spatial_dims=dims)({"image": image})
    flat = SqueezeSpatiald("image", spatial_dims=2)({"image": MetaTensor(torch.zeros(1, 6, 7, 1))})["image"]
    assert flat.shape == (1, 6, 7)  # a 2D image stored with a third axis of size 1 is 2D
