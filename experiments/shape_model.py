"""Which shape model: the number of principal modes and the decision threshold, measured by leave-one-out on the
annotated configurations of the training and validation images (never the test splits).

For each configuration left out, a model fitted on the others judges it:

- ``prediction_mm``: the mean distance from each landmark to where the model expects it given the others (the point
  that the refiner searches when a landmark is implausible);
- ``false_flags``: the fraction of landmarks called implausible, with 1 mm of detection noise added to every
  landmark (a correct detection);
- ``caught_10mm`` / ``caught_5mm``: the fraction caught when one landmark is moved 10 mm / 5 mm in a random
  direction (a gross miss).

Zero modes is the mean shape with an isotropic scatter (a Procrustes distance); all modes the full conditional
Gaussian; between them, a point distribution model with that many modes.

Usage: python -m experiments.shape_model --datalist data/isbi2015/datalist.json [--markdown docs/studies/shape_model.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bundle import bundled_landmark_set, load_datalist
from bundle.data import configurations_from_datalist
from bundle.error_line import run_main
from bundle.shape import ShapeModel

REPO = Path(__file__).resolve().parents[1]

MODES = (0, 2, 5, 10, 20, None)
THRESHOLDS = (13.8, 18.4)  # chi-square with 2 degrees of freedom at 0.999 and 0.9999


def configurations(datalist: str, splits=("training", "validation")) -> tuple[np.ndarray, list[str]]:
    """(N, K, D) annotated configurations in the network's frame, and the landmark names."""
    names = bundled_landmark_set("isbi2015").names
    entries = [e for split in splits for e in load_datalist(datalist, split)]
    return configurations_from_datalist(entries, len(names)), names


def study(shapes: np.ndarray, names: list[str], seed: int = 0) -> list[dict]:
    rows = []
    for modes in MODES:
        for threshold in THRESHOLDS:
            rng = np.random.default_rng(seed)
            prediction, false_flags, caught = [], [], {5: [], 10: []}
            for i in range(len(shapes)):
                model = ShapeModel.fit(np.delete(shapes, i, 0), names, modes=modes, threshold=threshold)
                noisy = shapes[i] + rng.normal(0, 1.0, shapes[i].shape)
                fit = model.fit_configuration(noisy, noise_mm=1.0)
                prediction.append(np.linalg.norm(fit.predicted - shapes[i], axis=1).mean())
                false_flags.append(fit.implausible.mean())
                for distance in caught:
                    k, angle = rng.integers(len(names)), rng.uniform(0, 2 * np.pi)
                    moved = noisy.copy()
                    moved[k] += distance * np.array([np.cos(angle), np.sin(angle)])
                    caught[distance].append(bool(model.fit_configuration(moved, noise_mm=1.0).implausible[k]))
            rows.append(
                {
                    "modes": "all" if modes is None else modes,
                    "threshold": threshold,
                    "prediction_mm": float(np.mean(prediction)),
                    "false_flags": float(np.mean(false_flags)),
                    "caught_5mm": float(np.mean(caught[5])),
                    "caught_10mm": float(np.mean(caught[10])),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict], count: int, command: str) -> str:
    lines = [
        "# Choosing the shape model",
        "",
        f"Leave-one-out over the {count} annotated configurations of ISBI 2015's training and validation images",
        "(the mean of the two doctors, in the network's frame), by `experiments/shape_model.py`:",
        "",
        "```bash",
        command,
        "```",
        "",
        "| modes | threshold | prediction error (mm) | false flags | 5 mm miss caught | 10 mm miss caught |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['modes']} | {r['threshold']} | {r['prediction_mm']:.2f} | {100 * r['false_flags']:.2f} % "
            f"| {100 * r['caught_5mm']:.1f} % | {100 * r['caught_10mm']:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datalist", required=True)
    parser.add_argument("--markdown")
    args = parser.parse_args(argv)
    shapes, names = configurations(args.datalist)
    rows = study(shapes, names)
    if args.markdown:
        command = "python -m experiments.shape_model " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(args.markdown).write_text(markdown(rows, len(shapes), command))


if __name__ == "__main__":
    sys.exit(run_main(main))
