"""How the shipped pipeline copes with images unlike its training images, and whether it says so: radial errors,
error-radius coverage and review flags on a datalist split under perturbations that stand in for other X-ray
machines and other exports.

Each perturbation is applied to the image as read (inserted after :class:`~bundle.transforms.PixelSpacingd`, found by
its type in the config's preprocessing), as a new file would present it:

- intensity: ``inverted`` (a MONOCHROME1 export), ``gamma_0.5``/``gamma_2.0`` (other contrast curves), ``noise``
  (5 % of the range), ``blur`` (0.5 mm SD);
- field of view: ``wide`` (60 mm of black on the right), ``crop_top`` (the top 40 mm collimated away);
- pixel size: ``pixels_0.14mm`` (resampled, the spacing given), ``unknown_0.05`` to ``unknown_0.5`` (0.05 to 0.5 mm:
  a detector, film, a web export or a scanned print; resampled to that pixel size, and the spacing not given: the
  pipeline assumes 0.1 mm and estimates it);
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

from bundle import bundled_landmark_set, load_datalist
from bundle.error_line import run_main
from bundle.errors import InputError
from bundle.geometry import affine_spacing, map_points
from bundle.metrics import summarise_trust
from bundle.transforms import LoadLandmarksd, PixelSpacingd

REPO = Path(__file__).resolve().parents[1]
INTENSITY = ("none", "inverted", "gamma_0.5", "gamma_2.0", "noise", "blur")
FIELD = ("wide", "crop_top")
SPACING = ("pixels_0.14mm", "unknown_0.05", "unknown_0.08", "unknown_0.125", "unknown_0.15", "unknown_0.25",
           "unknown_0.375", "unknown_0.5")  # fmt: skip
ORIENTATION = ("mirrored", "rotated_90", "rotated_180")
PERTURBATIONS = INTENSITY + FIELD + SPACING + ORIENTATION
ASSUMED_SPACING = 0.1


class Perturbd(MapTransform):
    """One of :data:`PERTURBATIONS` applied to ``image`` (a channel-first 2D MetaTensor with its spacing in the
    affine). Sets ``meta["truth_affine"]``: the new file's pixels -> the original world frame."""

    def __init__(self, kind: str, seed: int = 0):
        super().__init__("image")
        if kind not in PERTURBATIONS:
            raise InputError(f"kind must be one of {PERTURBATIONS}, got {kind!r}.")
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
    orientation, spacing_error, plausible, sizes = [], [], [], []
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
            sizes.append(float(np.sqrt(((d["true_landmarks"] - d["true_landmarks"].mean(0)) ** 2).sum())))
    return {
        "errors": np.stack(errors),
        "radii": np.stack(radii),
        "review": np.stack(review),
        "orientation": orientation,
        "plausible": plausible,
        "spacing_error": spacing_error,
        "true_size_mm": sizes,
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
        row["spacing_error_sd"] = float(spacing_error.std(ddof=1))
        row["spacing_error_abs_mean"] = float(np.abs(spacing_error).mean())
        row["spacing_error_abs_p90"] = float(np.quantile(np.abs(spacing_error), 0.9))
        # by the anatomy's true size (children's heads are smaller): the mean error in each fifth of the sizes
        size = np.asarray(run["true_size_mm"])
        edges = np.quantile(size, np.linspace(0, 1, 6))
        fifth = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, 4)
        row["spacing_error_by_size_fifth"] = [
            {"size_mm": [float(edges[i]), float(edges[i + 1])], "mean": float(spacing_error[fifth == i].mean())}
            for i in range(5)
            if (fifth == i).any()
        ]
    return row


def foreign(folder: str, ckpt_dir: str, configs: list[str]) -> dict:
    """Images of another anatomy (no truth): how many the pipeline calls implausible, and how many landmarks it
    flags."""
    steps, network, post = _pipeline(ckpt_dir, configs, True, "none")
    steps = [s for s in steps if not isinstance(s, (Perturbd, LoadLandmarksd))]  # no truth to load
    images = sorted(p for p in Path(folder).iterdir() if p.is_file())
    implausible, flagged, seconds = [], [], []
    for path in images:
        d = {"image": str(path)}
        for step in steps:
            d = step(d)
        start = time.perf_counter()
        with torch.inference_mode():
            d["pred"] = network(d["image"][None].as_tensor())[0]
        d = _post_without_truth(post)(d)
        seconds.append(time.perf_counter() - start)
        implausible.append(not d["shape_plausible"])
        flagged.append(float(torch.as_tensor(d["pred_review"]).float().mean()))
    return {
        "folder": folder,
        "images": len(images),
        "implausible": float(np.mean(implausible)),
        "flagged": float(np.mean(flagged)),
        "seconds_per_image": float(np.median(seconds)),
    }


def _post_without_truth(post):
    from monai.transforms import Compose, CopyItemsd

    return Compose([t for t in post.transforms if not isinstance(t, CopyItemsd)])


def markdown(result: dict, hands: dict | None = None) -> str:
    """docs/studies/robustness.md from the JSON of a run (and of a ``--foreign`` run on hand radiographs)."""
    rows = result["rows"]
    lines = [
        "# Robustness: other machines' images, and whether the output says so",
        "",
        f"Measured by `{result['command']}` ({rows[0]['images']} images of the `{result['split']}` split, each",
        "perturbed as the rows say; `experiments/robustness.py` describes each perturbation). Errors in true mm",
        "against the mean of the two doctors, whatever spacing the pipeline believed. Coverage: share of landmarks",
        "within their 90 % error radius. Flagged: share with `review: true`. Gross: landmarks more than 5 mm off,",
        "and the share of them flagged. Orientation: share of images found in the orientation they were given.",
        "",
        "| perturbation | MRE (mm) | worst (mm) | coverage | flagged | gross (> 5 mm) | gross flagged | orientation"
        " | spacing error (mean ± SD) | s per image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        caught = "-" if r["gross_flagged"] is None else f"{100 * r['gross_flagged']:.0f} %"
        spacing = (
            f"{100 * r['spacing_error_mean']:+.1f} ± {100 * r['spacing_error_sd']:.1f} %"
            if "spacing_error_mean" in r
            else "-"
        )
        lines.append(
            f"| {r['kind']} | {r['mre_mm']:.2f} | {r['max_mm']:.1f} | {100 * r['coverage']:.1f} % "
            f"| {100 * r['flagged']:.1f} % | {r['gross']} | {caught} | {100 * r['orientation_right']:.0f} % "
            f"| {spacing} | {r['seconds_per_image']:.2f} |"
        )
    pooled = result["pooled"]
    lines += [
        "",
        f"Pooled over the perturbations: coverage {100 * pooled['coverage']:.1f} %, {100 * pooled['flagged']:.1f} % "
        f"flagged, {pooled['gross']} gross misses of which {100 * pooled['gross_flagged']:.0f} % flagged.",
    ]
    sized = [r for r in rows if "spacing_error_by_size_fifth" in r]
    if sized:
        lines += [
            "",
            "## The estimated spacing by the size of the head",
            "",
            "Mean error of the estimated pixel spacing in each fifth of the true configuration sizes (centroid size",
            "of the 19 landmarks in mm; ISBI 2015 holds no ages, and a small head is most often a child's):",
            "",
            "| pixel size | " + " | ".join(f"fifth {i + 1}" for i in range(5)) + " |",
            "|---|" + "---|" * 5,
        ]
        for r in sized:
            cells = [
                f"{f['size_mm'][0]:.0f}-{f['size_mm'][1]:.0f} mm: {100 * f['mean']:+.1f} %"
                for f in r["spacing_error_by_size_fifth"]
            ]
            lines.append(f"| {r['kind']} | " + " | ".join(cells) + " |")
    if hands:
        lines += [
            "",
            "## Not a cephalogram",
            "",
            f"The {hands['images']} hand radiographs of `{hands['folder']}` given to the cephalometric model: "
            f"{100 * hands['implausible']:.0f} % called implausible (`plausible: false`, a warning naming the file), "
            f"{100 * hands['flagged']:.0f} % of their landmarks flagged; {hands['seconds_per_image']:.2f} s per image "
            "(every orientation is tried before giving up).",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datalist")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--ckpt_dir", default=str(REPO / "models"))
    parser.add_argument("--config_file", nargs="*", default=[], help="overlays after configs/inference.json")
    parser.add_argument("--kinds", nargs="*", default=list(PERTURBATIONS), choices=PERTURBATIONS)
    parser.add_argument("--refine", default="true", choices=["true", "false"])
    parser.add_argument("--foreign", help="a folder of images of another anatomy, run without truth")
    parser.add_argument("--json", help="write the rows and the pooled figures here")
    parser.add_argument("--markdown", nargs=2, metavar=("RUN_JSON", "OUT_MD"), help="render a run's JSON and stop")
    parser.add_argument("--hands", help="with --markdown: the JSON of a --foreign run to add")
    args = parser.parse_args(argv)
    if args.markdown:
        hands = json.loads(Path(args.hands).read_text()) if args.hands else None
        Path(args.markdown[1]).write_text(markdown(json.loads(Path(args.markdown[0]).read_text()), hands))
        return
    if args.foreign:
        result = foreign(args.foreign, args.ckpt_dir, args.config_file)
        print(json.dumps(result), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return
    if not args.datalist:
        parser.error("--datalist is needed to measure")
    names = bundled_landmark_set("isbi2015").names
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
