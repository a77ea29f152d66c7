"""Reading pictures (PNG, JPEG, BMP) straight into one grey channel."""

from __future__ import annotations

from monai.data import PILReader
from monai.transforms import LoadImaged

__all__ = ["GreyPictureReader", "load_image_grey_pictures"]

# PIL modes of several channels, or of a palette, that one grey channel (mode "L") represents
_TO_GREY = ("RGB", "RGBA", "RGBX", "LA", "La", "P", "PA", "CMYK", "YCbCr")


def _grey(picture):
    """A colour, palette or grey + alpha picture as PIL mode ``"L"``; 16-bit and float pictures unchanged."""
    return picture.convert("L") if picture.mode in _TO_GREY else picture


class GreyPictureReader(PILReader):
    """MONAI's :class:`~monai.data.PILReader` that hands over one grey channel.

    Radiographs are often stored as RGB JPEGs with R = G = B; MONAI's reader gives three float channels, which
    :class:`~bundle.transforms.AsGreyscaled` then averages: three times the memory and 45 ms of a 1935 x 2400
    image's 64 ms read. PIL's own conversion to ``"L"`` (ITU-R 601 luma, which is the value itself when R = G = B)
    drops alpha, as :class:`AsGreyscaled` does; a true colour picture gets luma instead of the channel mean.
    """

    def __init__(self, **kwargs):
        super().__init__(converter=_grey, **kwargs)


def load_image_grey_pictures(keys, **kwargs) -> LoadImaged:
    """MONAI's :class:`LoadImaged` (``kwargs`` as it takes them) with :class:`GreyPictureReader` for PNG, JPEG and
    BMP. The reader is registered, not named: named readers are tried on every file whatever its suffix, while a
    registered one keeps MONAI's choice by suffix, so NIfTI, MHA and DICOM go to the readers they went to before."""
    loader = LoadImaged(keys, **kwargs)
    loader.register(GreyPictureReader())
    return loader
