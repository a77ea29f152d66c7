"""Reading images, pictures (PNG, JPEG, BMP) straight into one grey channel, and unreadable files refused by name."""

from __future__ import annotations

import os

from monai.data import PILReader
from monai.transforms import LoadImaged

from ..errors import InputError

__all__ = ["GreyPictureReader", "LoadImageOrRefused", "load_image_grey_pictures"]

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


class UnreadableImageError(InputError):
    """An image file that is missing or cannot be read: ``"<path>: <reason>"``, with ``reason`` alone for a caller
    whose own message names the file already."""

    def __init__(self, where: str, reason: str):
        super().__init__(where, reason)
        self.where, self.reason = where, reason

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class LoadImageOrRefused(LoadImaged):
    """MONAI's :class:`LoadImaged`, but a file that is missing or cannot be read is an :class:`InputError` naming it
    (MONAI's readers raise many kinds, from PIL, ITK, nibabel or pydicom, and a server must tell them from its own
    failures: MONAI Label answers an InputError with a 4xx and its message)."""

    def __call__(self, data, reader=None):
        try:
            return super().__call__(data, reader)
        except Exception as e:  # noqa: BLE001 - readers raise many kinds; all mean "unreadable"
            names = [str(data[k]) for k in self.key_iterator(dict(data)) if isinstance(data[k], (str, os.PathLike))]
            where = ", ".join(names) or "the image"
            missing = [n for n in names if not os.path.exists(n)]
            if missing:
                raise UnreadableImageError(", ".join(missing), "no such file.") from e
            raise UnreadableImageError(where, f"the image cannot be read ({type(e).__name__}: {e})") from e


def load_image_grey_pictures(keys, **kwargs) -> LoadImaged:
    """:class:`LoadImageOrRefused` (``kwargs`` as MONAI's :class:`LoadImaged` takes them) with
    :class:`GreyPictureReader` for PNG, JPEG and BMP. The reader is registered, not named: named readers are tried on
    every file whatever its suffix, while a registered one keeps MONAI's choice by suffix, so NIfTI, MHA and DICOM go
    to the readers they went to before."""
    loader = LoadImageOrRefused(keys, **kwargs)
    loader.register(GreyPictureReader())
    return loader
