"""Turn chest X-ray landmark labels (the 6-landmark format of the GU2Net chest data) into a MONAI datalist.

Input: ``--images`` (PNG/JPEG/...; one per case) and ``--labels`` (``<stem>.txt`` per image: the first line is the
landmark count, 6, then one line ``x y`` per landmark, normalised to [0, 1] by the image width and height).
Pixels are ``x * width`` and ``y * height`` (x = column, y = row); this convention is an assumption about the format
that matters by at most half a pixel.

Errors on this data are reported in pixels: the datalist gives a spacing of 1 (one "mm" = one pixel), so every metric
of the bundle reads in pixels. Output (``--out``): ``landmarks/<stem>.csv`` and ``datalist.json`` with ``training``,
``validation`` and ``test`` split in file-name order by ``--fractions`` (default 0.7 0.1 0.2).

Usage: python -m scripts.prepare_chest --images chest/pngs --labels chest/labels --out data/chest
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bundle.error_line import run_main
from bundle.errors import InputError
from bundle.io.files import refuse_existing

NUM_LANDMARKS = 6
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_label(path: Path, num_landmarks: int = NUM_LANDMARKS) -> np.ndarray:
    """(K, 2) normalised coordinates; a malformed file raises naming the file and the line."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: empty label file.")
    try:
        count = int(lines[0])
    except ValueError:
        raise InputError(f"{path}, line 1: the landmark count is {lines[0]!r}, not an integer.") from None
    if count != num_landmarks or len(lines) - 1 != count:
        raise InputError(f"{path}: says {count} landmarks and has {len(lines) - 1}; expected {num_landmarks}.")
    points = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            x, y = (float(v) for v in line.split())
        except ValueError:
            raise InputError(f"{path}, line {number}: expected 'x y', got {line!r}.") from None
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise InputError(f"{path}, line {number}: ({x}, {y}) is not normalised to [0, 1].")
        points.append((x, y))
    return np.asarray(points)


def prepare(images: Path, labels: Path, out: Path, fractions=(0.7, 0.1, 0.2), overwrite: bool = False) -> dict:
    refuse_existing(out / "datalist.json", overwrite)
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{images}: no images.")
    (out / "landmarks").mkdir(parents=True, exist_ok=True)
    entries = []
    for image in files:
        label = labels / f"{image.stem}.txt"
        if not label.exists():
            raise InputError(f"{image}: no label file {label}.")
        with Image.open(image) as opened:
            size = np.array(opened.size, dtype=np.float64)  # (width, height)
        pixels = read_label(label) * size
        with open(out / "landmarks" / f"{image.stem}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "x", "y"])
            for k, (x, y) in enumerate(pixels):
                writer.writerow([str(k + 1), repr(float(x)), repr(float(y))])
        entries.append(
            {"image": str(image.resolve()), "landmarks": f"landmarks/{image.stem}.csv", "spacing": [1.0, 1.0]}
        )
    n_train = int(round(fractions[0] * len(entries)))
    n_validation = int(round(fractions[1] * len(entries)))
    datalist = {
        "training": entries[:n_train],
        "validation": entries[n_train : n_train + n_validation],
        "test": entries[n_train + n_validation :],
    }
    (out / "datalist.json").write_text(json.dumps(datalist, indent=4) + "\n")
    return datalist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--out", default="data/chest")
    parser.add_argument("--fractions", type=float, nargs=3, default=[0.7, 0.1, 0.2])
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier preparation in --out")
    args = parser.parse_args()
    datalist = prepare(Path(args.images), Path(args.labels), Path(args.out), args.fractions, args.overwrite)
    print(json.dumps({split: len(entries) for split, entries in datalist.items()}))


if __name__ == "__main__":
    sys.exit(run_main(main))
