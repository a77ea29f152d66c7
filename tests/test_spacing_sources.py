"""Whatever file the pixels come in, the same pixels at the same spacing give the same landmarks: a PNG with the
spacing given, NIfTI, MHA, and DICOM with PixelSpacing or ImagerPixelSpacing (DX), through the shipped pipeline."""

from __future__ import annotations

import json

import itk
import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from bundle.transforms import PixelSpacingd
from tests.conftest import run_inference, shared_data
from tests.test_workflows import REPO

SPACING = 0.125


def _dicom(path, pixels: np.ndarray, tag: str | None) -> None:
    """A DX DICOM of ``pixels`` (rows, columns), its spacing in ``tag`` (or none)."""
    import pydicom  # requirements-dev.txt: writes the test's DICOM files
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray image storage, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    data = Dataset()
    data.file_meta = meta
    data.SOPClassUID, data.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    data.Modality, data.PatientName = "DX", "Test"
    data.StudyInstanceUID, data.SeriesInstanceUID = generate_uid(), generate_uid()
    data.Rows, data.Columns = pixels.shape
    data.SamplesPerPixel, data.PhotometricInterpretation = 1, "MONOCHROME2"
    data.BitsAllocated, data.BitsStored, data.HighBit, data.PixelRepresentation = 16, 16, 15, 0
    if tag is not None:
        setattr(data, tag, [SPACING, SPACING])
    data.PixelData = pixels.astype(np.uint16).tobytes()
    data.save_as(str(path), enforce_file_format=True)
    written = pydicom.dcmread(str(path))  # the file holds the spacing in that tag alone, or none
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        assert (list(getattr(written, name)) == [SPACING, SPACING]) if name == tag else name not in written


def _files(folder, pixels: np.ndarray) -> dict:
    """The same pixels (rows, columns) in every format; {name: (path, spacing to give)}."""
    folder.mkdir()
    Image.fromarray(pixels.astype(np.uint8)).save(folder / "picture.png")
    nib.save(nib.Nifti1Image(pixels.T.astype(np.float32), np.diag([SPACING, SPACING, 1.0, 1.0])), folder / "x.nii.gz")
    image = itk.image_from_array(pixels.astype(np.float32))
    image.SetSpacing((SPACING, SPACING))
    itk.imwrite(image, str(folder / "x.mha"))
    _dicom(folder / "imager.dcm", pixels, "ImagerPixelSpacing")
    _dicom(folder / "calibrated.dcm", pixels, "PixelSpacing")
    return {
        "png": (folder / "picture.png", [SPACING, SPACING]),
        "nifti": (folder / "x.nii.gz", None),
        "mha": (folder / "x.mha", None),
        "dicom_imager": (folder / "imager.dcm", None),
        "dicom_calibrated": (folder / "calibrated.dcm", None),
    }


@pytest.mark.parametrize("tag", ["ImagerPixelSpacing", "PixelSpacing"])
def test_a_dicom_radiograph_has_the_spacing_its_header_gives(tmp_path, tag):
    from monai.transforms import LoadImaged

    from bundle.transforms import SqueezeSpatiald

    _dicom(tmp_path / "x.dcm", np.zeros((30, 40)), tag)
    d = SqueezeSpatiald("image")(LoadImaged("image", ensure_channel_first=True)({"image": str(tmp_path / "x.dcm")}))
    d = PixelSpacingd("image")(d)
    assert d["image"].shape[1:] == (40, 30)  # x = column, as for pictures
    assert torch.linalg.vector_norm(d["image"].affine[:2, :2], dim=0).tolist() == [SPACING, SPACING]
    assert d["image"].meta["spacing_source"] == "file"


def test_a_dicom_without_a_spacing_needs_one(tmp_path):
    from monai.transforms import LoadImaged

    from bundle.transforms import SqueezeSpatiald

    _dicom(tmp_path / "x.dcm", np.zeros((30, 40)), None)
    d = SqueezeSpatiald("image")(LoadImaged("image", ensure_channel_first=True)({"image": str(tmp_path / "x.dcm")}))
    with pytest.raises(ValueError, match="no pixel spacing"):
        PixelSpacingd("image")(dict(d))
    assert PixelSpacingd("image", default_spacing=[0.1, 0.1])(d)["image"].meta["spacing_source"] == "assumed"


def _landmarks(path, spacing, out) -> np.ndarray:
    run_inference(path, out, spacing=spacing, overlay=False)
    result = json.loads(next(p for p in out.glob("*.json") if not p.name.endswith(".mrk.json")).read_text())
    assert result["spacing"] == pytest.approx([SPACING, SPACING])
    assert result["spacing_source"] == ("given" if spacing else "file")
    return np.array([landmark["pixel"] for landmark in result["landmarks"]])


@pytest.mark.slow
def test_the_same_pixels_give_the_same_landmarks_in_every_format(tmp_path):
    """A cephalogram when ../shared is there (one of ISBI's, at 0.125 mm), else the demo picture: the pipeline's
    path is the same either way, and the landmarks must agree within half a pixel."""
    try:
        picture = Image.open(shared_data("isbi2015") / "images" / "151.jpg").convert("L")
        picture = picture.resize((1548, 1920), Image.BILINEAR)  # 0.1 mm pixels to 0.125 mm
    except pytest.skip.Exception:
        picture = Image.open(REPO / "data" / "demo" / "images" / "001.png").convert("L").resize((960, 1200))
    pixels = np.asarray(picture)
    found = {
        name: _landmarks(path, spacing, tmp_path / name)
        for name, (path, spacing) in _files(tmp_path / "in", pixels).items()
    }
    for name, landmarks in found.items():
        assert np.abs(landmarks - found["png"]).max() < 0.5, name
