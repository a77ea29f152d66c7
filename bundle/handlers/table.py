"""One CSV of all predicted landmarks of an inference run."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import torch
from ignite.engine import Engine, Events

from ..io.files import refuse_existing

__all__ = ["LandmarkTableWriter"]


class LandmarkTableWriter:
    """Collect the decoded landmarks of every image (``pred_landmarks``, ``pred_pixels``, ``pred_confidence`` from
    :class:`bundle.transforms.DecodeLandmarksd`) and write ``<output_dir>/landmarks.csv`` when the run completes:
    one row per image and landmark, ``image,index,name,x_px,y_px[,z_px],x_mm,y_mm[,z_mm],confidence``.

    Args:
        output_dir: destination; an existing table is refused at the start unless ``overwrite``.
        landmark_names: K names.
        filename: the table's name.
        overwrite: replace an existing table.
    """

    def __init__(
        self, output_dir: str, landmark_names: Sequence[str], filename: str = "landmarks.csv", overwrite: bool = False
    ):
        self.path = Path(output_dir) / filename
        self.landmark_names = [str(n) for n in landmark_names]
        self.overwrite = overwrite
        self.rows: list[list] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _started(self, engine: Engine) -> None:
        refuse_existing(self.path, self.overwrite, "pass --overwrite true or another --output_dir.")
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            image = str(item["image"].meta.get("filename_or_obj", ""))
            world = torch.as_tensor(item["pred_landmarks"]).double().tolist()
            pixels = torch.as_tensor(item["pred_pixels"]).double().tolist()
            confidence = torch.as_tensor(item["pred_confidence"]).double().tolist()
            for k, name in enumerate(self.landmark_names):
                self.rows.append([image, k, name, *pixels[k], *world[k], confidence[k]])

    def _write(self, engine: Engine) -> None:
        if not self.rows:
            return
        dims = (len(self.rows[0]) - 4) // 2
        axes = "xyz"[:dims]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")  # renamed when complete: never half a table
        with open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["image", "index", "name", *(f"{a}_px" for a in axes), *(f"{a}_mm" for a in axes), "confidence"]
            )
            for row in self.rows:
                writer.writerow(row[:3] + [f"{v:.4f}" for v in row[3:-1]] + [f"{row[-1]:.4f}"])
        os.replace(partial, self.path)
