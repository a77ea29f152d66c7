"""One CSV of all predicted landmarks of an inference run."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Sequence

from ignite.engine import Engine

from ..errors import InputError
from .run_file import RunFileWriter

__all__ = ["LandmarkTableWriter"]

logger = logging.getLogger("bundle")


class LandmarkTableWriter(RunFileWriter):
    """Collect every image's result record (``result``, from :class:`bundle.transforms.LandmarkResultd`) and write
    ``<output_dir>/landmarks.csv`` when the run completes: one row per image and landmark,
    ``image,index,name,x_px,y_px[,z_px],x_mm,y_mm[,z_mm],confidence,visible,error_radius_mm,review,``
    ``spacing_x,spacing_y[,spacing_z],spacing_source,orientation``: pixels of the file (x = column), world mm, the
    spacing used (mm per pixel) and where it came from, the orientation found. An empty ``error_radius_mm`` means
    no calibration; a landmark outside the image keeps its coordinates with ``visible`` 0.

    Args:
        output_dir: destination; an existing table is refused at the start unless ``overwrite``.
        landmark_names: K names (checked against the records').
        filename: the table's name.
        overwrite: replace an existing table.
    """

    def __init__(
        self, output_dir: str, landmark_names: Sequence[str], filename: str = "landmarks.csv", overwrite: bool = False
    ):
        self.path = Path(output_dir) / filename
        self.landmark_names = [str(n) for n in landmark_names]
        self.overwrite = overwrite
        self.records: list[dict] = []

    def _record(self, record: dict) -> dict:
        names = [landmark["name"] for landmark in record["landmarks"]]
        if names != self.landmark_names:
            raise InputError(f"{record['image']}: landmarks {names}, expected {self.landmark_names}.")
        return record

    def _write(self, records: list[dict], engine: Engine) -> None:
        self.records = records
        if not self.records:
            return
        dims = len(self.records[0]["spacing"])
        axes = "xyz"[:dims]
        self._publish(lambda f: self._table(f, axes))
        self._log()

    def _table(self, f, axes: str) -> None:
        writer = csv.writer(f)
        writer.writerow(
            ["image", "index", "name", *(f"{a}_px" for a in axes), *(f"{a}_mm" for a in axes), "confidence"]
            + ["visible", "error_radius_mm", "review", *(f"spacing_{a}" for a in axes)]
            + ["spacing_source", "orientation"]
        )
        for record in self.records:
            tail = [*(f"{v:.6g}" for v in record["spacing"]), record["spacing_source"], record["orientation"]]
            for landmark in record["landmarks"]:
                radius = landmark.get("error_radius_mm")
                writer.writerow(
                    [record["image"], landmark["index"], landmark["name"]]
                    + [f"{v:.4f}" for v in landmark["pixel"]]
                    + [f"{v:.4f}" for v in landmark["world"]]
                    + [f"{landmark['confidence']:.4f}", int(landmark["visible"])]
                    + ["" if radius is None else f"{radius:.3f}", int(landmark["review"])]
                    + tail
                )

    def _log(self) -> None:
        flagged = sum(landmark["review"] for record in self.records for landmark in record["landmarks"])
        images = sum(any(landmark["review"] for landmark in record["landmarks"]) for record in self.records)
        implausible = sum(record.get("plausible") is False for record in self.records)
        logger.info(
            f"inference finished: {len(self.records)} images, outputs in {self.path.parent} ({self.path.name} and one "
            f"<image>.json each); {flagged} landmarks flagged for review in {images} images"
            + (f", {implausible} images implausible as a whole" if implausible else "")
            + "."
        )
