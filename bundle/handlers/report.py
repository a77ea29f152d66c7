"""Evaluation report: per-image and per-landmark radial errors, MRE and SDR, as CSV and JSON."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from ignite.engine import Engine

from ..metrics import summarise_errors, summarise_trust
from .run_file import RunFileWriter

__all__ = ["LandmarkReportWriter"]

logger = logging.getLogger("bundle")


class LandmarkReportWriter(RunFileWriter):
    """Write ``landmark_errors.csv`` (one row per image, one column per landmark, errors in mm) and
    ``landmark_report.json`` (MRE ± SD and SDR at each radius, overall and per landmark) when the evaluator completes.

    It takes the (N, K) errors that :class:`MeanRadialErrorHandler` keeps in ``engine.state.metric_details``
    (``save_details=True``), and, in the same order, each output's image file name, error radii and review flags
    (a :class:`RunFileWriter`: under ``torchrun`` the first process writes everyone's). Where the outputs
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

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.output_dir / "landmark_errors.csv", self.output_dir / "landmark_report.json"

    def _item(self, item: dict) -> tuple:
        """(image file name, error radii or None, review flags or None) of one output."""
        image = str(item["image"].meta.get("filename_or_obj", "")) if "image" in item else item["result"]["image"]
        if "pred_review" not in item:
            return image, None, None
        return (
            image,
            torch.as_tensor(item["pred_error_radius"]).double().tolist(),
            torch.as_tensor(item["pred_review"]).bool().tolist(),
        )

    def _write(self, records: list[tuple], engine: Engine) -> None:
        self.images = [image for image, _, _ in records]
        self.radii_mm = [radii for _, radii, review in records if review is not None]
        self.review = [review for _, _, review in records if review is not None]
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
        csv_path, json_path = self.paths
        trust = len(self.review) == len(self.images) > 0

        def table(f) -> None:
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

        self._publish(table, csv_path)
        report = summarise_errors(errors, self.landmark_names, self.radii)
        if trust:
            report["trust"] = summarise_trust(errors.numpy(), self.radii_mm, self.review, self.landmark_names)
        self._publish(lambda f: f.write(json.dumps(report, indent=2) + "\n"), json_path)
        logger.info(
            f"evaluation finished: MRE {report['mre']:.3f} on {report['images']} images; {csv_path.name} and "
            f"{json_path.name} in {self.output_dir}"
        )
