"""Per-image landmark files of an inference run (``<stem>.json``, ``<stem>.mrk.json``, ``<stem>_overlay.png``), written
from the evaluator's outputs. The run's own files (tables, report) are the :class:`RunFileWriter`'s; every file a run
writes is written by a handler of this package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events

from ..errors import InputError
from ..geometry import affine_spacing, map_points
from ..io import Landmarks, image_filename, loaded_shape, output_paths, picture_spacing, write_landmarks
from ..io.files import refuse_existing
from ..switches import as_bool
from ..transforms.output import record_parts
from .overlay import draw_overlay

__all__ = ["LandmarkFiles", "LandmarkFileSaver"]


class LandmarkFiles:
    """Write each image's predicted landmarks: ``<stem>.json``, ``<stem>.mrk.json`` (3D Slicer) and, in 2D,
    ``<stem>_overlay.png`` (the original image with the numbered landmarks) in ``output_dir``.

    The JSON holds ``{"image": path, "units": {...}, "spacing": [...] (mm per pixel used), "spacing_source":
    "file" | "given" | "estimated" | "assumed", "orientation": "as_acquired" | "mirrored" | "rotated_90" | ...,
    "plausible": bool,
    "error_radius_coverage": 0.9, "landmarks": [{"index": k, "name": ..., "world": [...] (mm), "pixel": [...]
    (original-image pixels, x = column), "confidence": c, "visible": bool, "error_radius_mm": r, "review": bool,
    "review_reasons": [...]}, ...]}``, from the keys that :class:`DecodeLandmarksd` and the trust transforms
    (:class:`FlagLandmarksd`, ...) write; fields they did not write are null or false. If any of an image's files
    exists, nothing is written for it and this raises, unless ``overwrite``. The overlay shows the image in the file's
    own orientation, each landmark numbered by its JSON index with a circle of its error radius, flagged landmarks
    in another colour, and a legend of the names.

    Args:
        key: the decoded world-landmark key (``pred_landmarks``); ``pred_pixels``/``pred_confidence`` sit beside it.
        output_dir: destination folder.
        landmark_names: K names.
        ref_key: the image (for its file name and spacing).
        overlay: write the 2D overlay PNG.
        overlay_key: the image the overlay is drawn on, as it is in memory (the landmarks go onto it through its
            affine): the inference config hands it the refiner's fine copy (0.3 mm per pixel, a ninth of an ISBI
            image's pixels), so that no image is read twice and the PNG costs milliseconds; None: ``ref_key``'s.
        overlay_size: the overlay's long side at most, in pixels (the original image's size below it).
        tracing: pairs of landmark names to join by a line in the overlay (a cephalometric tracing: SN, FH, ...).
        overwrite: replace existing files.
    """

    def __init__(
        self,
        output_dir: str,
        landmark_names: Sequence[str],
        ref_key: str = "image",
        prefix: str = "pred_",
        overlay: bool = True,
        overlay_key: str | None = None,
        overlay_size: int = 1200,
        tracing: Sequence[Sequence[str]] = (),
        overwrite: bool = False,
        key: str = "pred_landmarks",
    ):
        self.key = key
        unknown = [n for pair in tracing for n in pair if n not in list(landmark_names)]
        if unknown or any(len(pair) != 2 for pair in tracing):
            raise InputError(f"tracing must be pairs of the landmark names; unknown {unknown}.")
        self.tracing = [(list(landmark_names).index(a), list(landmark_names).index(b)) for a, b in tracing]
        if overlay_size < 64:
            raise InputError(f"overlay_size must be at least 64 pixels, got {overlay_size}.")
        self.overlay_key, self.overlay_size = overlay_key or ref_key, int(overlay_size)
        self.output_dir = Path(output_dir)
        self.landmark_names = [str(n) for n in landmark_names]
        self.ref_key, self.prefix = ref_key, prefix
        self.overlay, self.overwrite = as_bool(overlay, "overlay"), as_bool(overwrite, "overwrite")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> None:
        """Write the files of the image whose output is ``data``."""
        d, key = data, self.key
        if key in d:
            image = d[self.ref_key]
            dims = image.ndim - 1
            paths = output_paths(image_filename(image), self.output_dir, overlay=dims == 2 and self.overlay)
            refuse_existing(paths, self.overwrite, "pass --overwrite true or another --output_dir.")
            landmarks, extra = record_parts(d, key, image, self.landmark_names, self.prefix)
            # each file to a hidden temporary name first, renamed when all are written: a failure part-way leaves
            # no half-written file, and the JSON (the result a re-run looks for) is renamed last
            partial = [p.with_name(f".{p.name}.partial") for p in paths]
            self.output_dir.mkdir(parents=True, exist_ok=True)
            try:
                if len(paths) == 3:
                    picture = d[self.overlay_key]
                    on_picture = map_points(torch.as_tensor(d[key]), picture.affine, invert=True)
                    spacing = float(affine_spacing(picture.affine, 2).mean())
                    radii = [None if r is None else r / spacing for r in extra["error_radius_mm"]]
                    draw_overlay(
                        picture,
                        on_picture.numpy(),
                        partial[2],
                        names=self.landmark_names,
                        radii=radii,
                        review=extra["review"],
                        file_affine=image.meta.get("source_affine"),
                        long_side=min(self.overlay_size, max(loaded_shape(image, 2))),
                        lines=self.tracing,
                    )
                shown = Landmarks(landmarks.coordinates, landmarks.names, np.asarray(extra["visible"], bool))
                write_landmarks(partial[1], shown, True, "mrk.json", picture_spacing=picture_spacing(image))
                write_landmarks(partial[0], landmarks, overwrite=True, fmt="json", extra=extra)
            except BaseException:
                for p in partial:
                    p.unlink(missing_ok=True)
                raise
            for temporary, final in reversed(list(zip(partial, paths))):
                os.replace(temporary, final)


class LandmarkFileSaver:
    """Write every image's files (:class:`LandmarkFiles`) from its post-processed output at each iteration.

    The files are written by a handler rather than by a post-processing transform because MONAI Label runs the
    bundle's ``postprocessing`` (and not its handlers) for ``/infer``, and must not write into the bundle's folder.

    Args:
        saver: the :class:`LandmarkFiles` that writes one image's files.
    """

    def __init__(self, saver):
        self.saver = saver

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        # MONAI's post-processing writes a key of the batch that it changes back into the batch, not the output (the
        # fine copy of the image, which the overlay is drawn on, stays there): each item is the two merged
        output, batch = engine.state.output, engine.state.batch
        outputs = output if isinstance(output, list) else [output]
        batches = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
        for item, inputs in zip(outputs, batches):
            self.saver({**inputs, **item})
