"""Turn a local copy of the ISBI 2015 cephalometric data into a MONAI datalist with one landmark file per image.

Reads either layout:

- the official distribution: ``RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp`` and
  ``AnnotationsByMD/{400_senior,400_junior}/NNN.txt`` (19 lines ``x,y`` in pixels, then classification lines);
- the project's ``../shared/data/isbi2015``: ``images/NNN.jpg`` and ``annotations/all_{senior,junior,challenge}.csv``
  (``id,x1,y1,...,x19,y19`` in millimetres).

Writes, under ``--out``: ``landmarks_<truth>/NNN.csv`` (world mm at 0.1 mm/px; x = column, y = row) for each ground
truth asked for, and ``datalist_<truth>.json`` with the splits ``training`` (001-130), ``validation`` (131-150),
``test1`` (151-300), ``test2`` (301-400) and ``test`` (151-400, the combined test set of the GU2Net protocol);
``datalist.json`` is the first ground truth's. Image paths point at the source images (nothing is copied).

Ground truths: ``mean`` (of the two doctors, the default), ``senior``, ``junior``, ``challenge`` (the challenge's own:
senior except landmark 16 on images 301-400; only in the CSV layout).

The data are for research only: keep ``--out`` outside version control (``data/isbi2015`` is git-ignored).

Usage:
  python -m scripts.prepare_isbi2015 --source ../shared/data/isbi2015 --out data/isbi2015 --ground_truth mean senior
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from bundle.error_line import run_main
from bundle.errors import InputError
from bundle.io.files import refuse_existing

SPACING = 0.1  # mm per pixel
NUM_LANDMARKS = 19
NAMES = [
    "sella", "nasion", "orbitale", "porion", "subspinale", "supramentale", "pogonion", "menton", "gnathion", "gonion",
    "lower_incisal_incision", "upper_incisal_incision", "upper_lip", "lower_lip", "subnasale", "soft_tissue_pogonion",
    "posterior_nasal_spine", "anterior_nasal_spine", "articulare",
]  # fmt: skip
SPLITS = {"training": (1, 130), "validation": (131, 150), "test1": (151, 300), "test2": (301, 400), "test": (151, 400)}
OFFICIAL_FOLDERS = {"TrainingData": (1, 150), "Test1Data": (151, 300), "Test2Data": (301, 400)}
TRUTHS = ("mean", "senior", "junior", "challenge")


def _read_official_txt(path: Path) -> np.ndarray:
    """(19, 2) pixels from an official annotation file; the lines after the 19th are classification labels."""
    lines = path.read_text().splitlines()
    if len(lines) < NUM_LANDMARKS:
        raise InputError(f"{path}: {len(lines)} lines, expected at least {NUM_LANDMARKS} 'x,y' lines.")
    points = []
    for i, line in enumerate(lines[:NUM_LANDMARKS], start=1):
        try:
            x, y = (float(v) for v in line.split(","))
        except ValueError:
            raise InputError(f"{path}, line {i}: expected 'x,y' in pixels, got {line!r}.") from None
        points.append((x, y))
    return np.asarray(points)


def _official(source: Path) -> tuple[dict[int, Path], dict[str, dict[int, np.ndarray]]]:
    images = {}
    for folder, (first, last) in OFFICIAL_FOLDERS.items():
        for path in sorted((source / "RawImage" / folder).glob("*.bmp")):
            if not first <= int(path.stem) <= last:
                raise InputError(f"{path}: image {path.stem} does not belong in {folder} ({first:03d}-{last:03d}).")
            images[int(path.stem)] = path
    pixels = {}
    for doctor in ("senior", "junior"):
        folder = source / "AnnotationsByMD" / f"400_{doctor}"
        pixels[doctor] = {int(p.stem): _read_official_txt(p) for p in sorted(folder.glob("*.txt"))}
    return images, pixels


def _shared(source: Path) -> tuple[dict[int, Path], dict[str, dict[int, np.ndarray]]]:
    images = {int(p.stem): p for p in sorted((source / "images").glob("*.jpg"))}
    pixels = {}
    for truth in ("senior", "junior", "challenge"):
        table = np.loadtxt(source / "annotations" / f"all_{truth}.csv", delimiter=",", ndmin=2)
        if table.shape[1] != 1 + 2 * NUM_LANDMARKS:
            raise InputError(f"all_{truth}.csv: {table.shape[1]} columns, expected {1 + 2 * NUM_LANDMARKS}.")
        pixels[truth] = {int(row[0]): row[1:].reshape(NUM_LANDMARKS, 2) / SPACING for row in table}
    return images, pixels


def load_source(source: Path) -> tuple[dict[int, Path], dict[str, dict[int, np.ndarray]]]:
    """Images by id, and landmark pixels by ground truth and id (x = column, y = row)."""
    if (source / "RawImage").is_dir():
        images, pixels = _official(source)
    elif (source / "annotations" / "all_senior.csv").is_file():
        images, pixels = _shared(source)
    else:
        raise InputError(
            f"{source}: neither the official layout (RawImage/, AnnotationsByMD/) nor images/ + annotations/."
        )
    if not images:
        raise InputError(f"{source}: no images found.")
    pixels["mean"] = {
        i: (pixels["senior"][i] + pixels["junior"][i]) / 2 for i in pixels["senior"] if i in pixels["junior"]
    }
    return images, pixels


def prepare(source: Path, out: Path, truths: list[str], overwrite: bool = False) -> dict[str, dict]:
    """Write landmark files and datalists; returns the datalists by ground truth."""
    refuse_existing(out / "datalist.json", overwrite)
    images, pixels = load_source(source)
    datalists = {}
    for truth in truths:
        if truth not in pixels:
            raise InputError(f"ground truth {truth!r} is not available from {source} (have {sorted(pixels)}).")
        folder = out / f"landmarks_{truth}"
        folder.mkdir(parents=True, exist_ok=True)
        for index, points in pixels[truth].items():
            with open(folder / f"{index:03d}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["name", "x", "y"])
                for name, (x, y) in zip(NAMES, points * SPACING):
                    writer.writerow([name, repr(round(float(x), 6)), repr(round(float(y), 6))])
        datalist = {}
        for split, (first, last) in SPLITS.items():
            ids = [i for i in sorted(images) if first <= i <= last and i in pixels[truth]]
            datalist[split] = [
                {
                    "image": str(images[i].resolve()),
                    "landmarks": f"landmarks_{truth}/{i:03d}.csv",
                    "spacing": [SPACING] * 2,
                }
                for i in ids
            ]
        (out / f"datalist_{truth}.json").write_text(json.dumps(datalist, indent=4) + "\n")
        datalists[truth] = datalist
    (out / "datalist.json").write_text((out / f"datalist_{truths[0]}.json").read_text())
    return datalists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the official distribution or ../shared/data/isbi2015")
    parser.add_argument("--out", default="data/isbi2015")
    parser.add_argument("--ground_truth", nargs="+", default=["mean", "senior"], choices=TRUTHS)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier preparation in --out")
    args = parser.parse_args()
    datalists = prepare(Path(args.source), Path(args.out), args.ground_truth, args.overwrite)
    print(json.dumps({t: {s: len(e) for s, e in d.items()} for t, d in datalists.items()}))


if __name__ == "__main__":
    sys.exit(run_main(main))
