"""Generate the embedded demo data set: synthetic 2D radiograph-like images whose landmarks are defined by shapes.

Each 192x192 image (0.5 mm/px) holds a large ellipse (landmarks 5 and 6: the tips of its major axis), a bright
triangle inside it (landmarks 1-3: its vertices) and a small dark disk (landmark 4: its centre), under a random
pose (rotation, scale, translation) with shape variation, a smooth background, blur, noise and contrast changes.
Shapes are drawn at 4x resolution and averaged down, so the edges are sub-pixel accurate.

Usage:
  python -m tools.make_demo_data [--out data/demo] [--seed 0] [--train 40 --validation 10 --test 10] [--overwrite]
Deterministic under the seed: the committed data set is what this script writes with the defaults.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from bundle.error_line import run_main
from bundle.io.files import refuse_existing

SIZE = 192  # pixels per side
SPACING = 0.5  # mm per pixel
SUPERSAMPLE = 4
NAMES = ["triangle_apex", "triangle_left", "triangle_right", "disk_centre", "ellipse_top", "ellipse_bottom"]


def _pose(rng: np.random.RandomState) -> np.ndarray:
    """3x3 similarity transform of template coordinates (pixels, origin at the image centre) to pixels."""
    angle = np.deg2rad(rng.uniform(-20, 20))
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-12, 12, size=2) + (SIZE - 1) / 2
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, shift[0]], [s, c, shift[1]], [0, 0, 1]])


def _apply(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ pose[:2, :2].T + pose[:2, 2]


def _hi(points: np.ndarray) -> list[tuple[float, float]]:
    """Pixel-centre coordinates -> the super-sampled canvas (PIL: pixel (i, j) covers [i, i + 1))."""
    return [tuple((p + 0.5) * SUPERSAMPLE) for p in points]


def make_case(rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """One image (H, W) uint8 and its landmarks (6, 2) in pixels, (x = column, y = row)."""
    pose = _pose(rng)
    # template (pixels, centred): ellipse along y, triangle in the upper half, disk in the lower half
    half_axes = np.array([rng.uniform(42, 50), rng.uniform(62, 72)])
    ellipse_outline = np.stack(
        [half_axes[0] * np.cos(t := np.linspace(0, 2 * np.pi, 256, endpoint=False)), half_axes[1] * np.sin(t)], 1
    )
    triangle = np.array([[0.0, -40.0], [-24.0, -4.0], [24.0, -4.0]]) + rng.uniform(-6, 6, size=(3, 2))
    disk_centre = np.array([0.0, 30.0]) + rng.uniform(-8, 8, size=2)
    disk_radius = rng.uniform(7, 10)
    disk_outline = disk_centre + disk_radius * np.stack([np.cos(t), np.sin(t)], 1)
    tips = np.array([[0.0, -half_axes[1]], [0.0, half_axes[1]]])

    levels = {"ellipse": rng.uniform(0.45, 0.6), "triangle": rng.uniform(0.8, 0.95), "disk": rng.uniform(0.1, 0.2)}
    canvas = Image.new("F", (SIZE * SUPERSAMPLE, SIZE * SUPERSAMPLE), 0.0)
    draw = ImageDraw.Draw(canvas)
    draw.polygon(_hi(_apply(pose, ellipse_outline)), fill=levels["ellipse"])
    draw.polygon(_hi(_apply(pose, triangle)), fill=levels["triangle"])
    draw.polygon(_hi(_apply(pose, disk_outline)), fill=levels["disk"])
    shapes = np.asarray(canvas).reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean((1, 3))

    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    direction = rng.uniform(-1, 1, size=2)
    background = 0.15 + 0.1 * (direction[0] * xx + direction[1] * yy)
    background += gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)), 12) * 2.0
    image = np.where(shapes > 0, shapes, background)
    image = gaussian_filter(image, rng.uniform(0.5, 1.5))
    image = np.clip(image, 0, 1) ** rng.uniform(0.8, 1.25) * rng.uniform(0.75, 1.0)
    image = image + rng.normal(0, rng.uniform(0.02, 0.06), image.shape)
    landmarks = _apply(pose, np.concatenate([triangle, disk_centre[None], tips]))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), landmarks


def write(out: Path, seed: int, counts: dict[str, int], overwrite: bool = False) -> dict:
    refuse_existing(out / "datalist.json", overwrite)
    rng = np.random.RandomState(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "landmarks").mkdir(parents=True, exist_ok=True)
    datalist, index = {}, 0
    for split, count in counts.items():
        datalist[split] = []
        for _ in range(count):
            index += 1
            image, landmarks = make_case(rng)
            stem = f"{index:03d}"
            Image.fromarray(image).save(out / "images" / f"{stem}.png", optimize=True)
            with open(out / "landmarks" / f"{stem}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["name", "x", "y"])
                for name, (x, y) in zip(NAMES, landmarks * SPACING):
                    writer.writerow([name, f"{x:.4f}", f"{y:.4f}"])
            datalist[split].append(
                {"image": f"images/{stem}.png", "landmarks": f"landmarks/{stem}.csv", "spacing": [SPACING, SPACING]}
            )
    (out / "datalist.json").write_text(json.dumps(datalist, indent=4) + "\n")
    return datalist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "demo"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--validation", type=int, default=10)
    parser.add_argument("--test", type=int, default=10)
    parser.add_argument("--overwrite", action="store_true", help="replace the data set in --out")
    args = parser.parse_args()
    counts = {"training": args.train, "validation": args.validation, "test": args.test}
    datalist = write(Path(args.out), args.seed, counts, args.overwrite)
    print(json.dumps({split: len(items) for split, items in datalist.items()}))


if __name__ == "__main__":
    sys.exit(run_main(main))
