"""Evaluation report: per-image and per-landmark radial errors, MRE and SDR, as CSV and JSON."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from ignite.engine import Engine, Events

from ..io.files import refuse_existing
from ..metrics import summarise_errors, summarise_trust
from .distributed import gather

__all__ = ["LandmarkReportWriter"]

logger = logging.getLogger("bundle")


class LandmarkReportWriter:
    """Write ``landmark_errors.csv`` (one row per image, one column per landmark, errors in mm) and
    ``landmark_report.json`` (MRE ± SD and SDR at each radius, overall and per landmark) when the evaluator completes.

    It takes the (N, K) errors that :class:`MeanRadialErrorHandler` keeps in ``engine.state.metric_details``
    (``save_details=True``), and the image file names of the evaluated batches, in the same order. Where the outputs
    carry error radii and review flags (:class:`bundle.transforms.FlagLandmarksd`), the report adds ``"trust"``: their
    coverage and what the flags catch (:func:`bundle.metrics.summarise_trust`), and the CSV a ``radius`` and a
    ``review`` column per landmark.

    Args:
        output_dir: where the two files go; existing files are refused at the start unless ``overwrite``.
        landmark_names: K names for the columns.
        metric_name: the name of the MRE handler in the evaluator (the key of ``key_val_metric``).
        radii: SDR radii, in mm (or normalised mm).
        overwrite: replace existing report files.
    """

    def __init__(
        self,
        output_dir: str,
        landmark_names: Sequence[str],
        metric_name: str = "val_mre",
        radii: Sequence[float] = (2.0, 2.5, 3.0, 4.0),
        overwrite: bool = False,
    ):
        self.output_dir = Path(output_dir)
        self.landmark_names = [str(n) for n in landmark_names]
        self.metric_name = metric_name
        self.radii = [float(r) for r in radii]
        self.overwrite = overwrite
        self.images: list[str] = []
        self.radii_mm: list[list[float]] = []
        self.review: list[list[bool]] = []

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.output_dir / "landmark_errors.csv", self.output_dir / "landmark_report.json"

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_names)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _started(self, engine: Engine) -> None:
        refuse_existing(self.paths, self.overwrite, "pass --overwrite true or another --output_dir.")
        self.images, self.radii_mm, self.review = [], [], []

    def _collect_names(self, engine: Engine) -> None:
        batch = engine.state.batch
        items = batch if isinstance(batch, list) else [batch]
        for item in items:
            self.images.append(str(item["image"].meta.get("filename_or_obj", len(self.images))))
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            if "pred_review" in item:
                self.radii_mm.append(torch.as_tensor(item["pred_error_radius"]).double().tolist())
                self.review.append(torch.as_tensor(item["pred_review"]).bool().tolist())

    def _write(self, engine: Engine) -> None:
        gathered = gather([(self.images, self.radii_mm, self.review)])  # one exchange: each process's three lists
        if gathered is None:  # another process than the first (the errors are gathered by the MRE handler)
            return
        self.images, self.radii_mm, self.review = (
            [item for part in parts for item in part] for parts in zip(*gathered)
        )
        errors = engine.state.metric_details.get(self.metric_name)
        if errors is None:
            raise RuntimeError(
                f"no per-image errors under metric_details[{self.metric_name!r}]: set save_details=True."
            )
        errors = torch.as_tensor(errors).double().cpu()
        if errors.shape != (len(self.images), len(self.landmark_names)):
            raise RuntimeError(
                f"{tuple(errors.shape)} errors for {len(self.images)} images and {len(self.landmark_names)} landmarks."
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = self.paths
        trust = len(self.review) == len(self.images) > 0
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            header = ["image", *self.landmark_names]
            if trust:
                header += [f"{n} radius" for n in self.landmark_names] + [f"{n} review" for n in self.landmark_names]
            writer.writerow(header)
            for i, (name, row) in enumerate(zip(self.images, errors.tolist())):
                cells = [name, *(f"{e:.4f}" for e in row)]
                if trust:
                    cells += [f"{r:.3f}" for r in self.radii_mm[i]] + [int(r) for r in self.review[i]]
                writer.writerow(cells)
        report = summarise_errors(errors, self.landmark_names, self.radii)
        if trust:
            report["trust"] = summarise_trust(errors.numpy(), self.radii_mm, self.review, self.landmark_names)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        logger.info(
            f"evaluation finished: MRE {report['mre']:.3f} on {report['images']} images; {csv_path.name} and "
            f"{json_path.name} in {self.output_dir}"
        )
