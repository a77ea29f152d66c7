"""Landmark evaluation report: predictions against one or more ground truths, per split, as markdown, JSON and figures.

Predictions are the ``<stem>.json`` files that ``configs/inference.json`` writes (world mm and original-image pixels).
Ground truths are datalists (``name=path``; e.g. the mean and the senior doctor of ISBI 2015), whose entries give the
image, its landmark file and its spacing. For each split and each ground truth: MRE ± SD and SDR at each radius,
overall and per landmark, in original-image millimetres (or normalised millimetres with ``--normalize_pair``).

``--gu2net SPLIT`` adds the figures of the GU2Net protocol, labelled as such: predictions and ground truth are
compared on the 416 x 512 (width x height) network grid and a grid pixel counts as 0.46875 mm, over SPLIT (for ISBI
2015, ``test`` = Test1 + Test2, 250 images). That is how the GU2Net code, and most likely the CoorTransformer paper,
report; it is not the challenge's protocol.

Figures: per-landmark box plots (first ground truth, each split), the SDR-versus-radius curve (every split and ground
truth), and a gallery of the worst images (first ground truth; ground truth green, prediction red, numbered).

Usage:
  python -m scripts.landmark_report --predictions runs/inference_isbi \
      --datalist mean=data/isbi2015/datalist_mean.json senior=data/isbi2015/datalist_senior.json \
      --splits test1 test2 --gu2net test --out runs/report_isbi2015
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch
from monai.transforms import LoadImage
from PIL import Image, ImageDraw

from bundle.data import load_datalist
from bundle.error_line import run_main
from bundle.errors import InputError, OutputExistsError
from bundle.geometry import map_points, spacing_affine
from bundle.io import NO_GEOMETRY_SUFFIXES, output_stem, read_landmarks
from bundle.metrics import radial_errors, summarise_errors
from bundle.transforms import SqueezeSpatiald

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

GU2NET_GRID = (416, 512)  # (width, height) = MONAI's (x, y)
GU2NET_MM_PER_PIXEL = 0.46875


def load_predictions(folder: Path) -> dict[str, dict]:
    """``<stem>.json`` inference outputs by stem: ``world`` and ``pixel`` (K, D) arrays and the landmark names."""
    predictions = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if "landmarks" not in data or path.name.endswith(".mrk.json"):
            continue
        items = data["landmarks"]
        predictions[path.name[: -len(".json")]] = {
            "world": np.array([item["world"] for item in items], dtype=np.float64),
            "pixel": np.array([item["pixel"] for item in items], dtype=np.float64),
            "names": [item["name"] for item in items],
        }
    if not predictions:
        raise InputError(f"{folder}: no prediction files (<stem>.json from configs/inference.json).")
    return predictions


def match(entries: list, predictions: dict[str, dict], num_landmarks: int | None = None) -> list[dict]:
    """Pair each datalist entry with its prediction; a missing prediction is an error naming the image."""
    cases = []
    for entry in entries:
        stem = output_stem(entry["image"])
        if stem not in predictions:
            raise InputError(f"no prediction for {entry['image']} (looked for {stem}.json).")
        spacing = entry.get("spacing")
        truth = read_landmarks(entry["landmarks"], num_landmarks, spacing=spacing)
        affine = spacing_affine(spacing) if spacing is not None else _file_affine(entry["image"])
        cases.append(
            {"stem": stem, "image": entry["image"], "pixel_affine": affine, "truth": truth, **predictions[stem]}
        )
    return cases


def _file_affine(image: str) -> torch.Tensor:
    """The pixel-to-world affine of a 2D image file with geometry (e.g. the hand atlas's .mha); a format without
    geometry needs a datalist spacing: millimetres would be meaningless."""
    if image.lower().endswith(NO_GEOMETRY_SUFFIXES):
        raise InputError(f"{image}: the datalist gives no 'spacing' (mm per pixel) for this format.")
    loaded = LoadImage(image_only=True, ensure_channel_first=True)(image)
    return SqueezeSpatiald("image", 2)({"image": loaded})["image"].affine


def world_errors(cases: list[dict], normalize_pair=None, normalize_length: float = 50.0) -> np.ndarray:
    """(N, K) radial errors in mm (or normalised mm) between predicted and true world coordinates."""
    y_pred = torch.tensor(np.stack([c["world"] for c in cases]))
    y = torch.tensor(np.stack([c["truth"].coordinates for c in cases]))
    return radial_errors(y_pred, y, normalize_pair=normalize_pair, normalize_length=normalize_length).numpy()


def gu2net_errors(cases: list[dict]) -> np.ndarray:
    """(N, K) errors of the GU2Net protocol: distances on the 416 x 512 grid times 0.46875 mm (2D images)."""
    rows = []
    for case in cases:
        with Image.open(case["image"]) as image:
            size = np.array(image.size, dtype=np.float64)  # (width, height) = (x, y)
        scale = np.array(GU2NET_GRID) / size
        truth_pixels = map_points(case["truth"].coordinates, case["pixel_affine"], invert=True).numpy()
        rows.append(GU2NET_MM_PER_PIXEL * np.linalg.norm((case["pixel"] - truth_pixels) * scale, axis=1))
    return np.stack(rows)


def _box_plot(errors: np.ndarray, names: list[str], title: str, path: Path, unit: str) -> None:
    figure, axis = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 4))
    axis.boxplot([errors[:, k][~np.isnan(errors[:, k])] for k in range(len(names))], showfliers=True)
    axis.set_xticks(range(1, len(names) + 1), [f"{k + 1}" for k in range(len(names))])
    axis.set_xlabel("landmark")
    axis.set_ylabel(f"radial error ({unit})")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _sdr_curve(curves: dict[str, np.ndarray], path: Path, unit: str, max_radius: float) -> None:
    radii = np.linspace(0, max_radius, 201)
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, errors in curves.items():
        valid = errors[~np.isnan(errors)]
        axis.plot(radii, [100 * np.mean(valid <= r + 1e-6) for r in radii], label=label)
    axis.set_xlabel(f"radius ({unit})")
    axis.set_ylabel("successful detection rate (%)")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _worst_gallery(cases: list[dict], errors: np.ndarray, path: Path, count: int = 6, width: int = 480) -> list[str]:
    """Downscaled images of the ``count`` worst cases with numbered ground truth (green) and prediction (red)."""
    order = np.argsort(-np.nanmean(errors, axis=1))[:count]
    tiles = []
    for index in order:
        case = cases[index]
        with Image.open(case["image"]) as image:
            grey = image.convert("L")
        scale = width / grey.size[0]
        tile = grey.resize((width, round(grey.size[1] * scale))).convert("RGB")
        draw = ImageDraw.Draw(tile)
        truth_pixels = map_points(case["truth"].coordinates, case["pixel_affine"], invert=True).numpy()
        for k, (t, p) in enumerate(zip(truth_pixels, case["pixel"])):
            (tx, ty), (px, py) = (t + 0.5) * scale, (p + 0.5) * scale
            draw.line([(tx, ty), (px, py)], fill=(255, 255, 0))
            draw.ellipse([tx - 3, ty - 3, tx + 3, ty + 3], outline=(0, 255, 0))
            draw.line([(px - 3, py - 3), (px + 3, py + 3)], fill=(255, 0, 0))
            draw.line([(px - 3, py + 3), (px + 3, py - 3)], fill=(255, 0, 0))
            draw.text((px + 4, py - 4), str(k + 1), fill=(255, 80, 80))
        caption = f"{case['stem']}: MRE {np.nanmean(errors[index]):.2f}"
        draw.rectangle([0, 0, 8 + 7 * len(caption), 18], fill=(0, 0, 0))
        draw.text((5, 4), caption, fill=(255, 255, 255))
        tiles.append(tile)
    columns = min(3, len(tiles))
    rows = -(-len(tiles) // columns)
    height = max(t.size[1] for t in tiles)
    gallery = Image.new("RGB", (columns * width, rows * height))
    for i, tile in enumerate(tiles):
        gallery.paste(tile, ((i % columns) * width, (i // columns) * height))
    gallery.save(path)
    return [cases[i]["stem"] for i in order]


def _table(rows: list[tuple[str, dict]], radii: list[float], unit: str) -> list[str]:
    header = f"| | images | MRE ± SD ({unit}) | " + " | ".join(f"SDR {r:g}" for r in radii) + " |"
    lines = [header, "|" + "---|" * (3 + len(radii))]
    for label, s in rows:
        sdr = " | ".join(f"{s['sdr'][f'{r:g}']:.2f} %" for r in radii)
        lines.append(f"| {label} | {s['images']} | {s['mre']:.3f} ± {s['sd']:.3f} | {sdr} |")
    return lines


def make_report(
    predictions: Path,
    datalists: dict[str, Path],
    splits: list[str],
    out: Path,
    radii: list[float],
    gu2net_split: str | None = None,
    normalize_pair=None,
    normalize_length: float = 50.0,
    num_landmarks: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Compute everything, write ``report.md``, ``report.json`` and the figures under ``out``; return the JSON."""
    if (out / "report.json").exists() and not overwrite:
        raise OutputExistsError(f"{out / 'report.json'} exists: pass --overwrite or another --out.")
    out.mkdir(parents=True, exist_ok=True)
    predicted = load_predictions(predictions)
    unit = "normalised mm" if normalize_pair is not None else "mm"
    report = {"unit": unit, "radii": radii, "splits": {}, "figures": {}}
    if normalize_pair is not None:
        report["normalize_pair"] = [int(i) for i in normalize_pair]
        report["normalize_length"] = normalize_length
    curves, first_truth = {}, next(iter(datalists))
    names = None
    for split in splits:
        report["splits"][split] = {}
        for truth, datalist in datalists.items():
            cases = match(load_datalist(datalist, split), predicted, num_landmarks)
            names = cases[0]["truth"].names
            errors = world_errors(cases, normalize_pair, normalize_length)
            summary = summarise_errors(torch.tensor(errors), names, radii)
            summary["per_image"] = {c["stem"]: float(np.nanmean(e)) for c, e in zip(cases, errors)}
            report["splits"][split][truth] = summary
            curves[f"{split}, {truth}"] = errors
            if truth == first_truth:
                figure = out / f"boxplot_{split}.png"
                _box_plot(errors, names, f"{split}: radial error per landmark ({truth} ground truth)", figure, unit)
                report["figures"][f"boxplot_{split}"] = figure.name
                worst = out / f"worst_{split}.png"
                report["figures"][f"worst_{split}"] = worst.name
                report["splits"][split][truth]["worst_images"] = _worst_gallery(cases, errors, worst)
    _sdr_curve(curves, out / "sdr_curve.png", unit, max_radius=max(10.0, 2.5 * max(radii)))
    report["figures"]["sdr_curve"] = "sdr_curve.png"
    if gu2net_split is not None:
        report["gu2net_protocol"] = {}
        for truth, datalist in datalists.items():
            cases = match(load_datalist(datalist, gu2net_split), predicted, num_landmarks)
            summary = summarise_errors(torch.tensor(gu2net_errors(cases)), cases[0]["truth"].names, radii)
            summary.pop("per_landmark")
            report["gu2net_protocol"][truth] = {"split": gu2net_split, **summary}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report, splits, datalists, names, radii, unit) + "\n")
    return report


def _markdown(report: dict, splits: list[str], datalists: dict, names: list[str], radii: list[float], unit: str) -> str:
    lines = ["# Landmark evaluation report", ""]
    lines.append(
        f"Radial errors in original-image {unit}; SDR(r) = share of errors <= r. Ground truths: "
        + ", ".join(f"`{t}` ({Path(p).name})" for t, p in datalists.items())
        + "."
    )
    if "normalize_pair" in report:
        a, b = report["normalize_pair"]
        lines.append(
            f"Errors normalised so that landmarks {a + 1} and {b + 1} (1-based) are "
            f"{report['normalize_length']:g} mm apart in every image."
        )
    lines += ["", "## Overall", ""]
    rows = [(f"{split}, {truth}", report["splits"][split][truth]) for split in splits for truth in datalists]
    lines += _table(rows, radii, unit)
    if "gu2net_protocol" in report:
        lines += [
            "",
            "## GU2Net protocol (for comparison with papers that use it)",
            "",
            "Errors on the 416 x 512 network grid at 0.46875 mm per grid pixel, not in the original image.",
            "",
        ]
        rows = [(f"{v['split']}, {t}", v) for t, v in report["gu2net_protocol"].items()]
        lines += _table(rows, radii, "mm, GU2Net protocol")
    first = next(iter(datalists))
    for split in splits:
        s = report["splits"][split][first]
        lines += [
            "",
            f"## {split}: per landmark ({first} ground truth)",
            "",
            f"![box plot]({report['figures'][f'boxplot_{split}']})",
            "",
            f"| # | landmark | MRE ± SD ({unit}) | " + " | ".join(f"SDR {r:g}" for r in radii) + " |",
            "|" + "---|" * (3 + len(radii)),
        ]
        for k, landmark in enumerate(s["per_landmark"]):
            sdr = " | ".join(f"{landmark['sdr'][f'{r:g}']:.1f} %" for r in radii)
            lines.append(f"| {k + 1} | {landmark['name']} | {landmark['mre']:.3f} ± {landmark['sd']:.3f} | {sdr} |")
        lines += [
            "",
            f"Worst images: {', '.join(s['worst_images'])}",
            "",
            f"![worst cases]({report['figures'][f'worst_{split}']})",
        ]
    lines += ["", "## Successful detection rate against radius", "", "![SDR curve](sdr_curve.png)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, help="folder of <stem>.json inference outputs")
    parser.add_argument("--datalist", nargs="+", required=True, help="name=path of each ground-truth datalist")
    parser.add_argument("--splits", nargs="+", default=["test"])
    parser.add_argument("--radii", type=float, nargs="+", default=[2.0, 2.5, 3.0, 4.0])
    parser.add_argument("--gu2net", default=None, help="split for the GU2Net-protocol figures (ISBI: test)")
    parser.add_argument("--normalize_pair", type=int, nargs=2, default=None, help="0-based landmark pair (hand: 1 5)")
    parser.add_argument("--normalize_length", type=float, default=50.0)
    parser.add_argument("--num_landmarks", type=int, default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    datalists = dict(item.split("=", 1) for item in args.datalist)
    report = make_report(
        Path(args.predictions),
        {k: Path(v) for k, v in datalists.items()},
        args.splits,
        Path(args.out),
        args.radii,
        args.gu2net,
        args.normalize_pair,
        args.normalize_length,
        args.num_landmarks,
        args.overwrite,
    )
    print(json.dumps({s: {t: round(v["mre"], 4) for t, v in d.items()} for s, d in report["splits"].items()}))


if __name__ == "__main__":
    sys.exit(run_main(main))
