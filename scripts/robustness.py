"""How the shipped pipeline copes with images unlike its training images: radial errors on a datalist split under
perturbations that stand in for other X-ray machines, with and without the refinement stage.

Each perturbation is applied to the image as read (after its spacing is recorded), before the bundle's own
preprocessing, and changes the geometry only through the image's affine, so the true landmarks (world mm) stay right:

- ``none``: the image as it is;
- ``inverted``: bone dark, air bright (a MONOCHROME1 export, or an inverted look-up table);
- ``gamma_0.5``, ``gamma_2.0``: another contrast curve;
- ``noise``: Gaussian noise of 5 % of the intensity range (a noisier detector);
- ``blur``: Gaussian blur of 0.5 mm SD (a softer detector or a larger focal spot);
- ``pixels_0.14mm``: the image resampled to 0.14 mm pixels (a detector with larger pixels; the spacing is known);
- ``wide``: 60 mm of black added on the right (another field of view and aspect ratio, a collimated edge).

Selection happens on validation images only: run it on ``validation`` (the default) while developing, and on the
test splits once, to report.

Usage: python -m scripts.robustness --datalist data/isbi2015/datalist.json [--split validation] [--ckpt_dir models]
       [--config_file extra.json ...] [--json out.json] [--markdown docs/robustness.md]
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
from monai.transforms import GaussianSmooth, MapTransform, Resize, SpatialPad

from bundle import load_datalist
from bundle.errors import run_main
from bundle.geometry import affine_spacing
from bundle.transforms import LoadLandmarksd

REPO = Path(__file__).resolve().parents[1]
PERTURBATIONS = ("none", "inverted", "gamma_0.5", "gamma_2.0", "noise", "blur", "pixels_0.14mm", "wide")


class Perturbd(MapTransform):
    """One of :data:`PERTURBATIONS` applied to ``image`` (channel-first MetaTensor with its spacing in the affine)."""

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
        if self.kind == "inverted":
            image = high - (image - low)
        elif self.kind.startswith("gamma"):
            image = low + (high - low) * unit ** float(self.kind.split("_")[1])
        elif self.kind == "noise":
            generator = torch.Generator().manual_seed(self.seed)
            image = image + 0.05 * (high - low) * torch.randn(image.shape, generator=generator)
        elif self.kind == "blur":
            image = GaussianSmooth(sigma=(0.5 / spacing).tolist())(image)
        elif self.kind == "pixels_0.14mm":
            size = [max(1, round(s * float(c) / 0.14)) for s, c in zip(image.shape[1:], spacing)]
            image = Resize(spatial_size=size, mode="area")(image)
        elif self.kind == "wide":
            extra = round(60.0 / float(spacing[0]))
            image = SpatialPad(spatial_size=[image.shape[1] + extra, *image.shape[2:]], method="end")(image)
        d["image"] = image
        return d


def evaluate(datalist: str, split: str, kind: str, ckpt_dir: str, configs: list[str], refine: bool) -> np.ndarray:
    """(N, K) radial errors in mm of the inference pipeline (``configs/inference.json`` + ``configs``) on ``split``,
    every image perturbed by ``kind``."""
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "inference.json"), *configs])
    parser.update({"bundle_root": str(REPO), "ckpt_dir": ckpt_dir, "device": "$torch.device('cpu')", "refine": refine})
    fine = parser.get_parsed_content("preprocessing_fine", instantiate=True)
    steps = [fine[0], *fine[1:4], Perturbd(kind), *fine[4:]]  # after the spacing is in the affine
    steps += [parser.get_parsed_content("keep_fine_image"), *parser.get_parsed_content("to_grid")]
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(Path(ckpt_dir) / "model.pt", map_location="cpu", weights_only=True))
    network.eval()
    decode = parser.get_parsed_content("decode") + ([parser.get_parsed_content("refine_landmarks")] if refine else [])
    load_landmarks = LoadLandmarksd("landmarks", num_landmarks=parser.get_parsed_content("num_landmarks"))
    errors = []
    for entry in load_datalist(datalist, split):
        d = dict(entry)
        for step in steps[:4]:
            d = step(d)
        d = load_landmarks(d)  # read against the spacing as loaded, before any perturbation
        for step in steps[4:]:
            d = step(d)
        with torch.inference_mode():
            d["pred"] = network(d["image"][None].as_tensor())[0]
        for step in decode:
            d = step(d)
        errors.append(torch.linalg.vector_norm(d["pred_landmarks"] - d["landmarks"], dim=-1).numpy())
    return np.stack(errors)


def markdown(result: dict) -> str:
    lines = [
        "# Robustness to other machines' images",
        "",
        f"Measured by `{result['command']}`: mean radial error (mm) on `{result['split']}` ({result['images']} images)"
        " against the datalist's landmarks, the perturbations of `scripts/robustness.py` applied to every image.",
        "",
        "| perturbation | first stage | both stages | worst landmark error, both stages |",
        "|---|---|---|---|",
    ]
    for kind, row in result["rows"].items():
        lines.append(f"| {kind} | {row['first_stage']:.2f} | {row['both_stages']:.2f} | {row['max_both']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--ckpt_dir", default=str(REPO / "models"))
    parser.add_argument("--config_file", nargs="*", default=[], help="overlays after configs/inference.json")
    parser.add_argument("--kinds", nargs="*", default=list(PERTURBATIONS), choices=PERTURBATIONS)
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows, started = {}, time.time()
    for kind in args.kinds:
        first = evaluate(args.datalist, args.split, kind, args.ckpt_dir, args.config_file, refine=False)
        both = evaluate(args.datalist, args.split, kind, args.ckpt_dir, args.config_file, refine=True)
        rows[kind] = {
            "first_stage": float(first.mean()),
            "both_stages": float(both.mean()),
            "max_both": float(both.max()),
        }
        print(kind, json.dumps(rows[kind]), flush=True)
    result = {
        "command": "python -m scripts.robustness " + " ".join(argv if argv is not None else sys.argv[1:]),
        "split": args.split,
        "images": len(load_datalist(args.datalist, args.split)),
        "seconds": time.time() - started,
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))


if __name__ == "__main__":
    sys.exit(run_main(main))
