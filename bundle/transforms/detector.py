"""The first stage and its trust loop in one owner, :class:`LandmarkDetector`: the network and its weights, the grid,
the decoding, the shape model's judgement, and the first stage run again on another view of the image when its
answer is implausible: another orientation (a mirrored or rotated radiograph), or another scale (a pixel spacing
estimated from the anatomy).

Each view is the fine image (:class:`ResampleToSpacingd`'s copy) flipped, rotated or relabelled with MONAI's own
transforms, which update its affine, so decoded points land in world mm of the file as they always do, and pixels
in the file's own pixels. MONAI has no test-time search over orientations or scales, hence this module.
Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Flip, MapTransform, Rotate90

from ..errors import InputError
from ..geometry import affine_spacing
from ..io import image_filename
from ..model_files import load_weights, module_device

__all__ = ["LandmarkDetector", "DetectLandmarksd", "ORIENTATIONS", "orient"]

logger = logging.getLogger(__name__)

# how an image may differ from the view the network expects; each is undone by orient
ORIENTATIONS = ("as_acquired", "mirrored", "rotated_90", "rotated_180", "rotated_270")
# the decoded keys in world mm (points, and the heatmap's width), relabelled with the spacing
WORLD_KEYS = ("pred_landmarks", "pred_candidates", "pred_spread")


def orient(image: MetaTensor, orientation: str) -> MetaTensor:
    """The view of ``image`` (C, *S) that undoes ``orientation`` (one of :data:`ORIENTATIONS`), which names how the
    image differs from the view the network expects: ``"mirrored"``, the first array axis reversed (x, the columns of
    a 2D picture: a patient facing left), undone by flipping it back; ``"rotated_k"``, the picture turned k degrees
    clockwise as displayed (MONAI's :class:`Rotate90` with k / 90 quarter turns from axis 0, x, towards axis 1, y,
    which point right and down), undone by as many quarter turns back. The affine follows, so the anatomy keeps its
    world coordinates.

    Raises:
        ValueError: an unknown orientation, or a rotation of an image that is not 2D.
    """
    if orientation not in ORIENTATIONS:
        raise InputError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}.")
    if orientation == "as_acquired":
        return image
    if orientation == "mirrored":
        return Flip(spatial_axis=0)(image)
    if image.ndim - 1 != 2:
        raise InputError(f"{orientation!r} is a rotation of a 2D image; this image is {image.ndim - 1}D.")
    return Rotate90(k=4 - int(orientation.split("_")[1]) // 90, spatial_axes=(0, 1))(image)


class LandmarkDetector(torch.nn.Module):
    """The first stage and its trust loop, owned in one place: the network and its weights, the view onto the
    network's grid, the decoding, the shape model's judgement, and the search over orientations and scales that runs
    the network again when the answer is implausible. Like MONAI's ``RetinaNetDetector``, it is a module that holds
    the network and the steps around it; the configs name it once.

    Used twice in a run: as the engine's network (:meth:`forward`: grid images to logits, the weights read through the
    model-file loader first, so they are loaded once, and again only when the file changes, as after MONAI Label's
    ``/train``), and through :class:`DetectLandmarksd` after it (:meth:`detect`: logits to judged landmarks, with
    the search).

    Orientation: if the configuration is implausible, or at least ``retry_implausible`` of its landmarks are, the
    network runs again on each view of ``orientations`` (:func:`orient`) until one is wholly plausible; the best
    plausible view is kept (then most inliers); when none is plausible, the image as acquired is kept, and flagged
    downstream. The view's fine image replaces the fine image key (so that the refiner cuts its patches in the view's
    frame), and ``orientation`` records the view kept. Plausible images cost nothing more.

    Spacing: only for images whose spacing was assumed (``meta["spacing_source"] == "assumed"``) and whose
    configuration is plausible (else the assumption stays, and so does ``"assumed"``): the configuration's size (the
    shape model's fit, in the image's assumed mm) against the training population's mean size in mm gives the
    spacing. The fine image's affine, its ``meta["source_affine"]`` and the grid image's are relabelled with the
    estimate (``"estimated"``), the decoded world keys with them (pixels do not change); if the grid the network would
    then see differs by more than ``spacing_tolerance`` in scale from the one it saw (the assumption fitted the image
    to the grid), the network runs again on it, and an answer that is then implausible keeps the assumption (the
    configuration was judged up to scale: noise or another anatomy can look like a cephalogram at some size, but not
    when the network sees it at that size). The estimate's error is the spread of anatomical size in the
    training population (about 6 % SD for ISBI 2015's cephalograms, children and adults): a head smaller than the
    population's mean, a child's, is taken for an average one seen at larger pixels, so its spacing comes out larger
    than the true one, and its millimetres too large by the same ratio (the model card measures it).

    Args:
        network: the first stage, (B, C, *S) -> (B, K, *S) logits.
        to_grid: the transforms that put the fine image on the network's grid (the config's ``to_grid``).
        decode: the post-processing transforms from logits to landmarks (sigmoid, :class:`DecodeLandmarksd`).
        weights: the state dict file (``models/model.pt``); None: the network is used as it is.
        judge: the shape model's judgement (:class:`PlausibleLandmarksd` with ``choose``); None: no judgement, and so
            no search (``--trust false``).
        orientations: the views to try, in order (from :data:`ORIENTATIONS`; rotations only for 2D).
        retry_implausible: implausible landmarks that make a plausible image try the other views too.
        estimate_spacing: estimate an assumed spacing from the anatomy.
        spacing_tolerance: relative scale change of the grid above which the network runs again.
        min_peak_to_estimate: the median first-stage heatmap peak below which no spacing is estimated: a configuration
            judged up to scale is evidence of the anatomy's size only where the network found the anatomy (on noise
            it draws its prior, an average configuration, with peaks near 0.05; development images' median peaks are
            0.77 or more: docs/studies/spacing_range.md).
        image_key: where the grid image goes (the post-processing's reference image); pred_key: the logits.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        to_grid: Sequence[Callable],
        decode: Sequence[Callable],
        weights: str | os.PathLike | None = None,
        judge: Callable | None = None,
        orientations: Sequence[str] = ("mirrored", "rotated_180", "rotated_90", "rotated_270"),
        retry_implausible: int = 3,
        estimate_spacing: bool = True,
        spacing_tolerance: float = 0.05,
        min_peak_to_estimate: float = 0.35,
        image_key: str = "image",
        pred_key: str = "pred",
    ):
        super().__init__()
        unknown = [o for o in orientations if o not in ORIENTATIONS]
        if unknown:
            raise InputError(f"unknown orientations {unknown}; use {ORIENTATIONS}.")
        if not spacing_tolerance >= 0:
            raise InputError(f"spacing_tolerance must be >= 0, got {spacing_tolerance}.")
        self.network, self.to_grid, self.decode, self.judge = network, list(to_grid), list(decode), judge
        self.weights, self.image_key, self.pred_key = weights, image_key, pred_key
        self.orientations = [o for o in orientations if o != "as_acquired"]
        self.retry_implausible, self.estimate_spacing = int(retry_implausible), bool(estimate_spacing)
        self.spacing_tolerance, self.min_peak_to_estimate = float(spacing_tolerance), float(min_peak_to_estimate)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, *S) grid images -> (B, K, *S) logits, with the weights as their file is now."""
        if self.weights is not None:
            load_weights(self.network, self.weights, "the first stage's weights", "train them (configs/train.json).")
        return self.network(images)

    # ------------------------------------------------------------------ one view
    def _judged(self, d: dict) -> dict:
        d = self.decoded(d)
        return self.judge(d) if self.judge is not None else d

    def pass_on(self, data: Mapping, view: MetaTensor) -> dict:
        """``data`` with the grid image, the logits and every decoded key replaced by those of ``view`` (the fine
        image, as the network should see it)."""
        d = dict(data)
        d[self.image_key] = view
        for transform in self.to_grid:
            d = transform(d)
        self.eval()
        device = module_device(self.network)
        with torch.inference_mode():
            d[self.pred_key] = self(torch.as_tensor(d[self.image_key])[None].to(device))[0]
        return self._judged(d)

    # ------------------------------------------------------------------ the whole first stage
    def detect(self, data: Mapping, fine_key: str = "fine_image") -> dict:
        """The engine's logits (``pred_key``) decoded (:meth:`decoded`), then judged and searched (:meth:`search`)."""
        return self.search(self.decoded(data), fine_key)

    def decoded(self, data: Mapping) -> dict:
        """``data`` with the logits decoded into landmarks (sigmoid, peaks), not yet judged."""
        d = dict(data)
        for transform in self.decode:
            d = transform(d)
        return d

    def search(self, data: Mapping, fine_key: str = "fine_image") -> dict:
        """Decoded landmarks judged by the shape model, then the orientation and spacing searched on the fine image
        under ``fine_key`` (without a ``judge``, as they are)."""
        d = dict(data)
        d["orientation"] = "as_acquired"
        if self.judge is None:
            return d
        d = self.find_orientation(self.judge(d), fine_key)
        if self.estimate_spacing:
            d = self.find_spacing(d, fine_key)
        return d

    def find_orientation(self, data: Mapping, fine_key: str) -> dict:
        """``data``, or the pass on the plausible view that replaces it (see the class docstring)."""
        d = dict(data)
        implausible = int(torch.as_tensor(d.get("shape_implausible", torch.zeros(0))).sum())
        if d.get("shape_plausible", True) and implausible < self.retry_implausible:
            return d
        best, best_rank = d, _ranking(d)
        dims = d[fine_key].ndim - 1
        for orientation in self.orientations:
            if orientation.startswith("rotated") and dims != 2:
                continue
            view = orient(d[fine_key], orientation)
            trial = self.pass_on(d, view)
            trial[fine_key], trial["orientation"] = view, orientation
            rank = _ranking(trial)
            if rank[0] and rank > best_rank:  # only a plausible view replaces the image as acquired
                best, best_rank = trial, rank
            if rank[0] and rank[2] == 0:
                break
        if best["orientation"] != "as_acquired":
            logger.warning(
                f"{image_filename(d[fine_key])}: the image is {best['orientation'].replace('_', ' ')} "
                f"{'degrees clockwise ' if best['orientation'].startswith('rotated') else ''}against the view the "
                "model expects; its landmarks were found on the view turned back, in the file's own pixels."
            )
        return best

    def find_spacing(self, data: Mapping, fine_key: str) -> dict:
        """``data`` with an assumed spacing estimated from the anatomy (see the class docstring)."""
        d = dict(data)
        fine = d[fine_key]
        if fine.meta.get("spacing_source") != "assumed" or not d.get("shape_plausible", False):
            return d
        peaks = torch.as_tensor(d.get("pred_confidence", torch.ones(1)), dtype=torch.float64)
        if float(peaks.median()) < self.min_peak_to_estimate:  # the network did not find the anatomy: no size to read
            return d
        factor = self.judge.model.size_mean / float(d["shape_size"])
        if not 0.1 <= factor <= 10.0:  # pixels of 0.01 to 1 mm for an assumed 0.1: no radiograph of this anatomy
            return d
        dims = fine.ndim - 1
        relabelled = _relabel(fine, factor)
        grid = dict(d)
        grid[self.image_key] = relabelled
        for transform in self.to_grid:
            grid = transform(grid)
        before = affine_spacing(d[self.image_key].affine, dims) * factor
        after = affine_spacing(grid[self.image_key].affine, dims)
        if float(torch.max(torch.abs(after / before - 1.0))) > self.spacing_tolerance:
            again = self.pass_on(d, relabelled)
            if not again.get("shape_plausible", False):  # judged up to scale, but no anatomy at the estimated size
                return dict(data)
            d = again
        else:
            d[self.image_key] = _relabel(d[self.image_key], factor)
            for world_key in WORLD_KEYS:
                if world_key in d:
                    d[world_key] = torch.as_tensor(d[world_key], dtype=torch.float64) * factor
            d["shape_size"] = float(d["shape_size"]) * factor
        d[fine_key] = relabelled
        return d


def _ranking(d: Mapping) -> tuple:
    """Which of two judged passes is better: plausible first, then more inliers, then fewer implausible landmarks,
    then a higher mean confidence."""
    implausible = torch.as_tensor(d.get("shape_implausible", torch.zeros(0)))
    confidence = torch.as_tensor(d.get("pred_confidence", torch.zeros(1)), dtype=torch.float64)
    return (
        bool(d.get("shape_plausible", False)),
        int(d.get("shape_inliers", 0)),
        -int(implausible.sum()),
        float(confidence.mean()),
    )


class DetectLandmarksd(MapTransform):
    """The first stage's landmarks from the engine's logits: :meth:`LandmarkDetector.detect` on the fine image under
    ``keys`` (its search may replace it with a turned or relabelled view).

    Args:
        keys: the fine image key (``fine_image``).
        detector: the :class:`LandmarkDetector` that was the engine's network.
    """

    def __init__(self, keys: KeysCollection, detector: LandmarkDetector, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.detector = detector

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d = self.detector.detect(d, key)
        return d


def _relabel(image: MetaTensor, factor: float) -> MetaTensor:
    """A shallow copy of ``image`` whose affine and ``meta["source_affine"]`` map to ``factor`` times the world
    coordinates (every pixel ``factor`` times larger), with ``meta["spacing_source"] = "estimated"``."""
    out = image.clone()
    dims = image.ndim - 1
    scale = torch.ones(4 if out.affine.shape[0] == 4 else dims + 1, dtype=torch.float64)
    scale[: out.affine.shape[0] - 1] = factor
    out.affine = torch.diag(scale) @ out.affine.double()
    source = torch.as_tensor(out.meta.get("source_affine", image.affine), dtype=torch.float64)
    out.meta["source_affine"] = torch.diag(scale[: source.shape[0]]) @ source
    out.meta["spacing_source"] = "estimated"
    return out
