"""One CSV of all predicted landmarks of an inference run."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Sequence

from ignite.engine import Engine, Events

from ..errors import InputError
from ..io.files import refuse_existing
from .distributed import gather

__all__ = ["LandmarkTableWriter"]

logger = logging.getLogger("bundle")


class LandmarkTableWriter:
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

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _started(self, engine: Engine) -> None:
        refuse_existing(self.path, self.overwrite, "pass --overwrite true or another --output_dir.")
        self.records = []

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            record = item["result"]
            names = [landmark["name"] for landmark in record["landmarks"]]
            if names != self.landmark_names:
                raise InputError(f"{record['image']}: landmarks {names}, expected {self.landmark_names}.")
            self.records.append(record)

    def _write(self, engine: Engine) -> None:
        records = gather(self.records)
        if records is None:  # another process than the first: the first writes everyone's
            return
        self.records = records
        if not self.records:
            return
        dims = len(self.records[0]["spacing"])
        axes = "xyz"[:dims]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")  # renamed when complete: never half a table
        with open(partial, "w", newline="") as f:
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
        os.replace(partial, self.path)
        flagged = sum(landmark["review"] for record in self.records for landmark in record["landmarks"])
        images = sum(any(landmark["review"] for landmark in record["landmarks"]) for record in self.records)
        implausible = sum(record.get("plausible") is False for record in self.records)
        logger.info(
            f"inference finished: {len(self.records)} images, outputs in {self.path.parent} ({self.path.name} and one "
            f"<image>.json each); {flagged} landmarks flagged for review in {images} images"
            + (f", {implausible} images implausible as a whole" if implausible else "")
            + "."
        )
