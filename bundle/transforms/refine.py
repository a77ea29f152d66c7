"""The refinement stage: each landmark found again in a fine patch around the first stage's estimate.

For landmark k, a patch of the image at the refiner's spacing (:mod:`.patches`) goes through the refiner network,
whose channel k is that landmark's heatmap in the patch; the codec decodes it sub-pixel, and the patch's affine
takes the point to world mm. MONAI has no two-stage (coarse-to-fine) landmark component, so it is written here, as
a postprocessing transform after :class:`DecodeLandmarksd`. Conventions: see :mod:`bundle`.
"""

from __future__ import annotations

import os
from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ..codecs import GaussianHeatmapCodec
from ..errors import InputError
from ..geometry import map_points
from ..io import image_filename
from ..model_files import load_weights, module_device
from .patches import patch_affines, sample_patches

__all__ = ["decode_patches", "DecodePatchLandmarkd", "RefineLandmarksd"]

REFINER_MISSING = "train the refiner (configs/refiner.json) or run the first stage alone with --refine false."


def decode_patches(
    heatmaps: torch.Tensor, affines: torch.Tensor, codec: GaussianHeatmapCodec
) -> tuple[torch.Tensor, torch.Tensor]:
    """N single-landmark heatmaps (N, *P) on N patches -> (N, D) world mm (float64) and (N,) confidence.

    Raises:
        ValueError: a heatmap holds NaN or infinite values.
    """
    if not bool(torch.isfinite(heatmaps).all()):
        raise InputError("the refiner's output holds NaN or infinite values: its weights are broken, or the image is.")
    grid, confidence = codec.decode(heatmaps[:, None])  # (N, 1, D), (N, 1)
    grid = grid[:, 0].double().cpu()
    affines = torch.as_tensor(affines, dtype=torch.float64).cpu()
    dims = grid.shape[-1]
    world = (affines[:, :dims, :dims] @ grid[..., None])[..., 0] + affines[:, :dims, dims]
    return world, confidence[:, 0].double().cpu()


class DecodePatchLandmarkd(MapTransform):
    """The refiner's output on one training patch (K, *P) -> its landmark in world mm, for validation metrics.

    Writes ``pred_landmarks`` and ``true_landmarks``, both (K, D) float64 and NaN except row
    ``landmark_index`` (so the radial-error metrics, which skip NaN rows, count each patch once, under its own
    landmark). Heatmaps must be probabilities.

    Args:
        keys: the heatmap key.
        codec: the refiner's heatmap codec.
        ref_key: the patch (its affine); landmarks_key: the true (K, D) world mm.
    """

    def __init__(
        self,
        keys: KeysCollection,
        codec: GaussianHeatmapCodec,
        ref_key: str = "image",
        landmarks_key: str = "landmarks",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.codec, self.ref_key, self.landmarks_key = codec, ref_key, landmarks_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        k = int(d["landmark_index"])
        truth = torch.as_tensor(d[self.landmarks_key], dtype=torch.float64).cpu()
        for key in self.key_iterator(d):
            world, _ = decode_patches(torch.as_tensor(d[key])[k : k + 1], d[self.ref_key].affine[None], self.codec)
            pred = torch.full_like(truth, float("nan"))
            pred[k] = world[0]
            d["pred_landmarks"] = pred
        true = torch.full_like(truth, float("nan"))
        true[k] = truth[k]
        d["true_landmarks"] = true
        return d


class RefineLandmarksd(MapTransform):
    """Replace the first stage's landmarks by the refiner's: one patch per landmark, centred on its estimate.

    Reads ``{prefix}landmarks`` (K, D) world mm from :class:`DecodeLandmarksd`, keeps it as ``coarse_landmarks`` (and
    the first stage's confidence and spread as ``coarse_confidence`` and ``coarse_spread``), writes the refiner's
    proposed move ``refine_move_mm`` (K,), and overwrites ``{prefix}landmarks``, ``{prefix}pixels`` (original-image pixels, through
    ``meta["source_affine"]``), ``{prefix}confidence`` (the refiner's heatmap peak) and ``{prefix}spread`` (its
    heatmap's width around the point, mm per axis). All K patches go through the network as one batch, in eval mode
    and without gradients.

    The refiner learnt to correct first-stage misses up to ``max_move_mm`` (its training offsets' limit); a point it
    moves further than that lies outside what it was trained for, and on validation images such moves were mostly to
    a similar structure nearby (9 to 13 mm off where the first stage was within 3 mm). Such a landmark keeps the first
    stage's point and its features (its confidence and spread, which set its radius; NaN where the first stage's are
    not in the data, so that the radius is the widest and the landmark is reviewed), and ``refine_rejected`` (K,) bool
    marks it.

    Args:
        keys: the fine image (channel-first MetaTensor at the refiner's spacing, intensities as in its training),
            e.g. a copy of the image taken before the resize to the first stage's grid. The image is not read again.
        network: the refiner, (K, C, *P) -> (K, K, *P) logits.
        codec: the refiner's heatmap codec (its sigma in patch pixels, its decoder).
        patch_size: D pixel counts; spacing: mm per patch pixel (as in the refiner's training).
        weights: a state dict file (``models/refiner/model.pt``) loaded into ``network`` through the model-file loader
            (:mod:`bundle.model_files`: at the first image, and again when the file changes), so that whoever builds
            this transform from the config (a bundle run, MONAI Label's ``BundleInferTask``, which runs no handlers,
            before and after its ``/train``) gets the refiner as its file is now; None: ``network`` is used as it is.
        max_move_mm: the farthest the refiner may move a landmark (None: no limit).
        prefix: of the decoded keys.

    Raises:
        FileNotFoundError: ``weights`` is given and missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        network: torch.nn.Module,
        codec: GaussianHeatmapCodec,
        patch_size: Sequence[int],
        spacing: float,
        weights: str | os.PathLike | None = None,
        max_move_mm: float | None = None,
        prefix: str = "pred_",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        if max_move_mm is not None and not max_move_mm > 0:
            raise InputError(f"max_move_mm must be > 0 or None, got {max_move_mm}.")
        self.max_move_mm = None if max_move_mm is None else float(max_move_mm)
        self.network, self.codec, self.weights = network, codec, weights
        self._load()  # a missing file is an error at once, not at the first image
        self.patch_size, self.spacing, self.prefix = [int(s) for s in patch_size], float(spacing), prefix

    def _load(self) -> None:
        if self.weights is not None:
            load_weights(self.network, self.weights, "the refiner's weights", REFINER_MISSING)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        self._load()
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            coarse = torch.as_tensor(d[f"{self.prefix}landmarks"], dtype=torch.float64).cpu()
            count = coarse.shape[0]
            affines = patch_affines(coarse, self.patch_size, self.spacing, image.affine)
            patches = sample_patches(image, image.affine, affines, self.patch_size)
            device = module_device(self.network)
            self.network.eval()
            with torch.inference_mode():
                logits = self.network(patches.to(device))
            if logits.shape[:2] != (count, count):
                raise InputError(
                    f"{image_filename(image)}: the refiner gives {logits.shape[1]} channels for {count} landmarks."
                )
            own = torch.arange(count, device=logits.device)
            heatmaps = torch.sigmoid(logits[own, own].float())  # patch k, channel k: (K, *P)
            world, confidence = decode_patches(heatmaps, affines, self.codec)
            grid, _ = self.codec.decode(heatmaps[:, None])
            spread = self.codec.spread(heatmaps[:, None], grid)[:, 0].double().cpu() * self.spacing
            moved = torch.linalg.vector_norm(world - coarse, dim=-1)
            rejected = (
                moved > self.max_move_mm if self.max_move_mm is not None else torch.zeros(count, dtype=torch.bool)
            )
            world = torch.where(rejected[:, None], coarse, world)
            source = image.meta.get("source_affine", image.affine)
            d["coarse_landmarks"] = coarse
            refined = {"confidence": confidence, "spread": spread}
            for name in ("confidence", "spread"):  # the first stage's, kept as the landmarks are
                if f"{self.prefix}{name}" in d:
                    first = torch.as_tensor(d[f"{self.prefix}{name}"], dtype=torch.float64).cpu()
                    d[f"coarse_{name}"] = first
                    # a rejected move keeps the first stage's point, so the point's features are the first stage's too:
                    # the refiner's heatmap describes a point that is not reported
                    refined[name] = torch.where(rejected, first, refined[name])
                elif bool(rejected.any()):
                    refined[name] = torch.where(rejected, float("nan"), refined[name])
            confidence, spread = refined["confidence"], refined["spread"]
            d["refine_move_mm"] = moved
            d["refine_rejected"] = rejected
            d[f"{self.prefix}landmarks"] = world
            d[f"{self.prefix}pixels"] = map_points(world, source, invert=True)
            d[f"{self.prefix}confidence"] = confidence
            d[f"{self.prefix}spread"] = spread
        return d
