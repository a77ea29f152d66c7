"""How the shipped pipeline copes with images unlike its training images, and whether it says so: radial errors,
error-radius coverage and review flags on a datalist split under perturbations that stand in for other X-ray
machines and other exports.

Each perturbation is applied to the image as read (inserted after :class:`~bundle.transforms.PixelSpacingd`, found by
its type in the config's preprocessing), as a new file would present it:

- intensity: ``inverted`` (a MONOCHROME1 export), ``gamma_0.5``/``gamma_2.0`` (other contrast curves), ``noise``
  (5 % of the range), ``blur`` (0.5 mm SD);
- field of view: ``wide`` (60 mm of black on the right), ``crop_top`` (the top 40 mm collimated away);
- pixel size: ``pixels_0.14mm`` (resampled, the spacing given), ``unknown_0.08``/``unknown_0.125``/``unknown_0.15``
  (resampled to that pixel size, and the spacing not given: the pipeline assumes 0.1 mm and estimates it);
- orientation: ``mirrored`` (the patient faces left), ``rotated_90``/``rotated_180`` (the file turned).

The geometric ones make a new file: its pixels get a plain affine (the spacing, or the assumption), and the
transform's own affine is kept to map predicted pixels back to the original world frame, where the truth (the
datalist's landmarks, world mm) stays right. Errors are therefore in true millimetres whatever spacing the pipeline
believed; the spacing estimate's own error is reported beside them.

Selection happens on validation images only: run it on ``validation`` while developing, and on the test splits once,
to report.

Usage: python -m experiments.robustness --datalist data/isbi2015/datalist.json [--split validation]
       [--kinds none mirrored ...] [--ckpt_dir models] [--config_file extra.json ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.transforms import Flip, GaussianSmooth, MapTransform, Resize, Rotate90, SpatialCrop, SpatialPad

from bundle import load_datalist
from bundle.errors import run_main
from bundle.geometry import affine_spacing, map_points
from bundle.metrics import summarise_trust
from bundle.transforms import PixelSpacingd

REPO = Path(__file__).resolve().parents[1]
INTENSITY = ("none", "inverted", "gamma_0.5", "gamma_2.0", "noise", "blur")
FIELD = ("wide", "crop_top")
SPACING = ("pixels_0.14mm", "unknown_0.08", "unknown_0.125", "unknown_0.15")
ORIENTATION = ("mirrored", "rotated_90", "rotated_180")
PERTURBATIONS = INTENSITY + FIELD + SPACING + ORIENTATION
ASSUMED_SPACING = 0.1


class Perturbd(MapTransform):
    """One of :data:`PERTURBATIONS` applied to ``image`` (a channel-first 2D MetaTensor with its spacing in the
    affine). Sets ``meta["truth_affine"]``: the new file's pixels -> the original world frame."""

    def __init__(self, kind: str, seed: int = 0):
        super().__init__("image")
        if kind not in PERTURBATIONS:
            raise ValueError(f"kind must be one of {PERTURBATIONS}, got {kind!r}.")
        self.kind, self.seed = kind, seed

    def __call__(self, data):
        d = dict(data)
        image = d["image"].float()
        low, high = float(image.min()), float(image.max())
        unit = (image - low) / max(high - low, 1e-12)
        spacing = affine_spacing(image.affine, image.ndim - 1)
        kind, new_file = self.kind, None
        if kind == "inverted":
            image = high - (image - low)
        elif kind.startswith("gamma"):
            image = low + (high - low) * unit ** float(kind.split("_")[1])
        elif kind == "noise":
            generator = torch.Generator().manual_seed(self.seed)
            image = image + 0.05 * (high - low) * torch.randn(image.shape, generator=generator)
        elif kind == "blur":
            image = GaussianSmooth(sigma=(0.5 / spacing).tolist())(image)
        elif kind == "wide":
            extra = round(60.0 / float(spacing[0]))
            image = SpatialPad(spatial_size=[image.shape[1] + extra, *image.shape[2:]], method="end")(image)
        elif kind == "crop_top":
            start = round(40.0 / float(spacing[1]))
            image = SpatialCrop(roi_start=[0, start], roi_end=list(image.shape[1:]))(image)
        elif kind == "pixels_0.14mm" or kind.startswith("unknown"):
            target = 0.14 if kind == "pixels_0.14mm" else float(kind.split("_")[1])
            size = [max(1, round(s * float(c) / target)) for s, c in zip(image.shape[1:], spacing)]
            image = Resize(spatial_size=size, mode="area")(image)
            if kind.startswith("unknown"):
                new_file = [ASSUMED_SPACING] * 2
        elif kind == "mirrored":
            image, new_file = Flip(spatial_axis=0)(image), spacing.tolist()
        elif kind.startswith("rotated"):
            image = Rotate90(k=int(kind.split("_")[1]) // 90, spatial_axes=(0, 1))(image)
            new_file = spacing.tolist()[::-1] if kind == "rotated_90" else spacing.tolist()
        image.meta["truth_affine"] = image.affine.clone().double()
        image.meta["spatial_shape"] = list(image.shape[1:])  # as the new file would be loaded
        image.meta["source_affine"] = image.affine.clone()  # the new file's pixels are the ones to report
        if new_file is not None:  # a file of its own: a plain affine, the spacing given or assumed
            plain = torch.eye(image.affine.shape[0], dtype=torch.float64)
            plain[0, 0], plain[1, 1] = new_file
            image.affine = plain
            image.meta["source_affine"] = plain.clone()
            if kind.startswith("unknown"):
                image.meta["spacing_source"] = "assumed"
        d["image"] = image
        return d


def _pipeline(ckpt_dir: str, configs: list[str], refine: bool, kind: str):
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "inference.json"), str(REPO / "configs" / "evaluate.json"), *configs])
    parser.update({"bundle_root": str(REPO), "ckpt_dir": ckpt_dir, "device": "$torch.device('cpu')", "refine": refine})
    steps = list(parser.get_parsed_content("preprocessing").transforms)
    at = next(i for i, t in enumerate(steps) if isinstance(t, PixelSpacingd)) + 1
    steps.insert(at, Perturbd(kind))
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(Path(ckpt_dir) / "model.pt", map_location="cpu", weights_only=True))
    network.eval()
    post = parser.get_parsed_content("postprocessing")
    return steps, network, post


def evaluate(datalist: str, split: str, kind: str, ckpt_dir: str, configs: list[str], refine: bool = True) -> dict:
    """Run the pipeline on ``split`` with every image perturbed by ``kind``; errors in true mm, per image and
    landmark, with the radii, flags and what the pipeline reported."""
    steps, network, post = _pipeline(ckpt_dir, configs, refine, kind)
    errors, radii, review, seconds = [], [], [], []
    orientation, spacing_error, plausible = [], [], []
    for entry in load_datalist(datalist, split):
        d = {**entry}
        if kind.startswith("unknown"):
            d.pop("spacing", None)
        for step in steps:
            if isinstance(step, PixelSpacingd) and kind.startswith("unknown"):
                d = PixelSpacingd("image", default_spacing=entry["spacing"])({**d, "spacing": entry["spacing"]})
                continue
            d = step(d)
        start = time.perf_counter()
        with torch.inference_mode():
            d["pred"] = network(d["image"][None].as_tensor())[0]
        d = post(d)
        seconds.append(time.perf_counter() - start)
        truth_affine = d["fine_image"].meta["truth_affine"]
        predicted = map_points(torch.as_tensor(d["pred_pixels"]), truth_affine)
        errors.append(torch.linalg.vector_norm(predicted - d["true_landmarks"], dim=-1).numpy())
        radii.append(torch.as_tensor(d["pred_error_radius"]).numpy())
        review.append(torch.as_tensor(d["pred_review"]).numpy())
        orientation.append(d.get("orientation", "as_acquired"))
        plausible.append(bool(d.get("shape_plausible", True)))
        if kind.startswith("unknown"):
            used = float(affine_spacing(d["image"].meta["source_affine"], 2)[0])
            true = float(affine_spacing(truth_affine, 2)[0])
            spacing_error.append(used / true - 1.0)
    return {
        "errors": np.stack(errors),
        "radii": np.stack(radii),
        "review": np.stack(review),
        "orientation": orientation,
        "plausible": plausible,
        "spacing_error": spacing_error,
        "seconds": seconds,
    }


def summary(kind: str, run: dict, names: list[str]) -> dict:
    trust = summarise_trust(run["errors"], run["radii"], run["review"], names)
    expected = kind if kind in ORIENTATION else "as_acquired"
    row = {
        "kind": kind,
        "images": len(run["errors"]),
        "mre_mm": float(run["errors"].mean()),
        "max_mm": float(run["errors"].max()),
        "coverage": trust["coverage"],
        "flagged": trust["flagged"],
        "gross": trust["gross"],
        "gross_flagged": trust["gross_flagged"],
        "orientation_right": float(np.mean([o == expected for o in run["orientation"]])),
        "plausible": float(np.mean(run["plausible"])),
        "seconds_per_image": float(np.median(run["seconds"])),
    }
    if run["spacing_error"]:
        spacing_error = np.asarray(run["spacing_error"])
        row["spacing_error_mean"] = float(spacing_error.mean())
        row["spacing_error_abs_mean"] = float(np.abs(spacing_error).mean())
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--ckpt_dir", default=str(REPO / "models"))
    parser.add_argument("--config_file", nargs="*", default=[], help="overlays after configs/inference.json")
    parser.add_argument("--kinds", nargs="*", default=list(PERTURBATIONS), choices=PERTURBATIONS)
    parser.add_argument("--refine", default="true", choices=["true", "false"])
    parser.add_argument("--json", help="write the rows and the pooled figures here")
    args = parser.parse_args(argv)
    names = json.loads((REPO / "configs" / "inference.json").read_text())["landmark_names"]
    rows, pooled = [], {"errors": [], "radii": [], "review": []}
    for kind in args.kinds:
        run = evaluate(args.datalist, args.split, kind, args.ckpt_dir, args.config_file, args.refine == "true")
        rows.append(summary(kind, run, names))
        for key in pooled:
            pooled[key].append(run[key])
        print(json.dumps(rows[-1]), flush=True)
    overall = summarise_trust(*(np.concatenate(pooled[k]) for k in ("errors", "radii", "review")), names)
    overall = {k: v for k, v in overall.items() if k != "per_landmark"}
    print(json.dumps({"pooled": overall}), flush=True)
    if args.json:
        command = "python -m experiments.robustness " + " ".join(argv if argv is not None else sys.argv[1:])
        result = {"command": command, "split": args.split, "rows": rows, "pooled": overall}
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(run_main(main))
