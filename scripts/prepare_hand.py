"""Turn a local copy of the Digital Hand Atlas setup (Payer et al.'s layout) into a MONAI datalist.

Input (``--source``): ``images/<id>.mha`` (2D radiographs stored as 3D with Z = 1) and ``setup/all.csv`` (no header,
``id,x1,y1,...,x37,y37`` in pixels, x = column, y = row), ``setup/cv/set{1,2,3}/{train,test}.txt``. Only ids with
an image are used (the annotation file covers all 910 atlas images).

Output (``--out``): ``landmarks/<id>.csv`` in world mm computed with MONAI's own reader and affine for each image (so
that landmarks and image agree exactly, whatever the header's origin and orientation), and ``datalist.json`` with
``training`` (the cross-validation set's train list, less every ``--validation_every``-th id), ``validation`` (those
ids) and ``test`` (its test list).

Errors on this data are reported in normalised mm: ``50 * |p - g| / |g_a - g_b|`` for a wrist-width landmark pair.
``configs/hand.json`` uses Payer et al.'s pair, 0-based (1, 5); the GU2Net code uses (0, 4). Say which.
The images are for research only: keep ``--out`` outside version control (``data/hand`` is git-ignored).

Usage: python -m scripts.prepare_hand --source ../shared/data/hand --out data/hand --cv_set 1
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
from monai.transforms import LoadImage

from bundle.error_line import run_main
from bundle.errors import InputError
from bundle.geometry import map_points
from bundle.io.files import refuse_existing
from bundle.transforms import SqueezeSpatiald

NUM_LANDMARKS = 37


def read_annotations(path: Path) -> dict[str, np.ndarray]:
    """Pixels (37, 2) by image id from ``all.csv``; a malformed row raises naming the line."""
    annotations = {}
    with open(path) as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 1 + 2 * NUM_LANDMARKS:
                raise InputError(f"{path}, line {line_number}: {len(row)} fields, expected {1 + 2 * NUM_LANDMARKS}.")
            try:
                values = np.array([float(v) for v in row[1:]])
            except ValueError:
                raise InputError(f"{path}, line {line_number}: a coordinate is not a number.") from None
            annotations[row[0].strip()] = values.reshape(NUM_LANDMARKS, 2)
    return annotations


def world_landmarks(image_path: Path, pixels: np.ndarray) -> np.ndarray:
    """Pixels (x = column, y = row) -> world mm through the affine MONAI gives the (squeezed 2D) image."""
    image = LoadImage(image_only=True, ensure_channel_first=True)(str(image_path))
    image = SqueezeSpatiald("image", 2)({"image": image})["image"]
    return map_points(torch.as_tensor(pixels, dtype=torch.float64), image.affine, invert=False).numpy()


def prepare(source: Path, out: Path, cv_set: int = 1, validation_every: int = 10, overwrite: bool = False) -> dict:
    refuse_existing(out / "datalist.json", overwrite)
    annotations = read_annotations(source / "setup" / "all.csv")
    images = {p.stem: p for p in sorted((source / "images").glob("*.mha"))}
    if not images:
        raise InputError(f"{source / 'images'}: no .mha images.")
    folder = source / "setup" / "cv" / f"set{cv_set}"
    lists = {
        name: [i.strip() for i in (folder / f"{name}.txt").read_text().split() if i.strip()]
        for name in ("train", "test")
    }
    (out / "landmarks").mkdir(parents=True, exist_ok=True)

    def entry(image_id: str) -> dict:
        world = world_landmarks(images[image_id], annotations[image_id])
        with open(out / "landmarks" / f"{image_id}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "x", "y"])
            for k, (x, y) in enumerate(world):
                writer.writerow([str(k + 1), repr(float(x)), repr(float(y))])
        return {"image": str(images[image_id].resolve()), "landmarks": f"landmarks/{image_id}.csv"}

    train = [i for i in lists["train"] if i in images and i in annotations]
    test = [i for i in lists["test"] if i in images and i in annotations]
    held_out = (
        set(train[validation_every - 1 :: validation_every]) if len(train) >= validation_every else set(train[-1:])
    )
    datalist = {
        "training": [entry(i) for i in train if i not in held_out],
        "validation": [entry(i) for i in train if i in held_out],
        "test": [entry(i) for i in test],
    }
    (out / "datalist.json").write_text(json.dumps(datalist, indent=4) + "\n")
    return datalist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--out", default="data/hand")
    parser.add_argument("--cv_set", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--validation_every", type=int, default=10)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier preparation in --out")
    args = parser.parse_args()
    datalist = prepare(Path(args.source), Path(args.out), args.cv_set, args.validation_every, args.overwrite)
    print(json.dumps({split: len(entries) for split, entries in datalist.items()}))


if __name__ == "__main__":
    sys.exit(run_main(main))
