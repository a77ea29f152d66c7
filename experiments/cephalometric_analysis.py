"""How well the clinical measurements come out: on ISBI 2015's test splits, each measurement's class from the
predicted landmarks against its class from the mean of the two doctors' landmarks (the challenge's second task), the
mean absolute difference of the values, and the same for the junior doctor against the senior one.

Predictions are the ``<stem>.json`` files of ``run inference`` (their ``world`` landmarks, mm at the images' 0.1 mm;
their measurements are those :class:`bundle.analysis.MeasurementSet` computes, which this recomputes from them, so that
predictions made before measurements existed serve as well). Agreement: the share of images whose class is the
truth's; balanced: the mean over the truth's classes of the share found (the challenge's "successful classification
rate" divides by 3 instead, which differs for MW only).

Usage: python -m experiments.cephalometric_analysis --predictions runs/v8/test_pred --annotations
       ../shared/data/isbi2015/annotations [--splits test1 test2] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from bundle import bundled_landmark_set
from bundle.analysis import MeasurementSet
from bundle.error_line import run_main
from bundle.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SPLITS = {"test1": range(151, 301), "test2": range(301, 401)}
ISBI = ("ANB", "SNB", "SNA", "ODI", "APDI", "FHI", "FMA", "MW")
# published task-2 figures we could verify (abstracts); each with its protocol as stated there
PUBLISHED = [
    (
        "Lindner and Cootes, ISBI 2015 challenge (random-forest regression voting)",
        "77 to 79 % accuracy, two sets of 150 images (abstract)",
    ),
    (
        "Arik, Ibragimov and Xing, J Med Imaging 4(1), 2017 (CNN + shape model)",
        "76 % average classification accuracy, test set (abstract)",
    ),
]


def annotations(folder: Path, doctor: str) -> dict[int, np.ndarray]:
    """{image id: (19, 2) mm} from ``all_<doctor>.csv`` (x = column)."""
    out = {}
    with open(folder / f"all_{doctor}.csv") as f:
        for row in csv.reader(f):
            if row and row[0].strip().isdigit():
                out[int(row[0])] = np.array([float(v) for v in row[1:39]]).reshape(19, 2)
    if not out:
        raise InputError(f"{folder / f'all_{doctor}.csv'}: no annotation rows.")
    return out


def predictions(folder: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """{image id: (19, 2) mm} and {image id: (19,) error radii in mm (NaN: none)} of the prediction files."""
    out, radii = {}, {}
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith(".mrk.json") or not path.stem.isdigit():
            continue
        record = json.loads(path.read_text())
        out[int(path.stem)] = np.array([landmark["world"] for landmark in record["landmarks"]])
        radii[int(path.stem)] = np.array(
            [np.nan if landmark.get("error_radius_mm") is None else landmark["error_radius_mm"] for landmark in
             record["landmarks"]]
        )  # fmt: skip
    if not out:
        raise InputError(f"{folder}: no <id>.json predictions.")
    return out, radii


def classes_and_values(
    measurements: MeasurementSet, shapes: dict[int, np.ndarray], ids, radii: dict | None = None
) -> tuple[dict, dict, dict]:
    """Per measurement, the classes, values and borderline marks (with ``radii``) of the images ``ids``."""
    classes, values, borderline = {}, {}, {}
    for i in ids:
        result = measurements.evaluate(shapes[i], None if radii is None else radii[i], samples=500 if radii else 0)
        for name, m in result.items():
            classes.setdefault(name, []).append(m["class"])
            values.setdefault(name, []).append(np.nan if m["value"] is None else m["value"])
            borderline.setdefault(name, []).append(m["borderline"])
    as_array = {k: np.array(v, dtype=object) for k, v in classes.items()}
    return as_array, {k: np.array(v) for k, v in values.items()}, {k: np.array(v) for k, v in borderline.items()}


def agreement(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(share equal, mean over the truth's classes of the share found there), in %."""
    equal = found == truth
    recalls = [equal[truth == c].mean() for c in sorted(set(truth.tolist()), key=str) if c is not None]
    return 100.0 * float(equal.mean()), 100.0 * float(np.mean(recalls))


def study(predicted: dict, senior: dict, junior: dict, splits: list[str], radii: dict | None = None) -> dict:
    cephalometric = bundled_landmark_set("isbi2015")
    measurements = MeasurementSet(cephalometric.measurements, cephalometric.names)
    mean = {i: (senior[i] + junior[i]) / 2 for i in senior}
    result = {}
    for split in splits:
        ids = [i for i in SPLITS[split] if i in predicted]
        if len(ids) != len(SPLITS[split]):
            raise InputError(f"{split}: predictions for {len(ids)} of its {len(SPLITS[split])} images.")
        truth_classes, truth_values, _ = classes_and_values(measurements, mean, ids)
        found_classes, found_values, borderline = classes_and_values(measurements, predicted, ids, radii)
        senior_classes, senior_values, _ = classes_and_values(measurements, senior, ids)
        junior_classes, junior_values, _ = classes_and_values(measurements, junior, ids)
        rows = {}
        for m in measurements.measurements:
            if not m.classes:
                continue
            name = m.name
            accuracy, balanced = agreement(found_classes[name], truth_classes[name])
            sure = ~borderline[name].astype(bool)
            equal = found_classes[name] == truth_classes[name]
            observer, observer_balanced = agreement(junior_classes[name], senior_classes[name])
            rows[name] = {
                "agreement": accuracy,
                "balanced": balanced,
                "mad": float(np.nanmean(np.abs(found_values[name] - truth_values[name]))),
                "borderline": 100.0 * float((~sure).mean()),
                "agreement_not_borderline": 100.0 * float(equal[sure].mean()) if sure.any() else None,
                "agreement_borderline": 100.0 * float(equal[~sure].mean()) if (~sure).any() else None,
                "unit": m.unit,
                "junior_vs_senior_agreement": observer,
                "junior_vs_senior_balanced": observer_balanced,
                "junior_vs_senior_mad": float(np.nanmean(np.abs(junior_values[name] - senior_values[name]))),
            }
        isbi = [rows[n] for n in ISBI]
        result[split] = {
            "images": len(ids),
            "measurements": rows,
            "isbi_mean_agreement": float(np.mean([r["agreement"] for r in isbi])),
            "isbi_mean_balanced": float(np.mean([r["balanced"] for r in isbi])),
            "isbi_junior_vs_senior_mean_agreement": float(np.mean([r["junior_vs_senior_agreement"] for r in isbi])),
            "isbi_borderline": float(np.mean([r["borderline"] for r in isbi])),
            "isbi_agreement_not_borderline": float(np.nanmean([r["agreement_not_borderline"] or np.nan for r in isbi])),
            "isbi_agreement_borderline": float(np.nanmean([r["agreement_borderline"] or np.nan for r in isbi])),
        }
    return result


def markdown(result: dict, command: str) -> str:
    splits = list(result)
    lines = [
        "# Cephalometric measurements: how often the class comes out right",
        "",
        "Each measurement's class from the shipped model's landmarks against its class from the mean of the two",
        "doctors' landmarks, on ISBI 2015's test splits (the challenge's second task; its eight measurements first,",
        "defined as its evaluation code computes them: `configs/inference.json`, `measurements`). Agreement: share of",
        "images with the truth's class; balanced: the mean over the truth's classes of the share found; MAD: mean",
        "absolute difference of the values. Beside them, the junior doctor's landmarks against the senior's.",
        "",
        "```bash",
        command,
        "```",
        "",
        "| measurement | "
        + " | ".join(f"{s}: agreement / balanced / MAD | {s}: junior vs senior" for s in splits)
        + " |",
        "|---|" + "---|---|" * len(splits),
    ]
    names = list(result[splits[0]]["measurements"])
    for name in names:
        cells = []
        for s in splits:
            r = result[s]["measurements"][name]
            unit = f" {r['unit']}" if r["unit"] else ""
            cells.append(f"{r['agreement']:.1f} % / {r['balanced']:.1f} % / {r['mad']:.2f}{unit}")
            cells.append(f"{r['junior_vs_senior_agreement']:.1f} % (MAD {r['junior_vs_senior_mad']:.2f}{unit})")
        bold = f"**{name}**" if name in ISBI else name
        lines.append(f"| {bold} | " + " | ".join(cells) + " |")
    lines.append(
        "| **ISBI's eight, mean** | "
        + " | ".join(
            f"**{result[s]['isbi_mean_agreement']:.1f} %** / {result[s]['isbi_mean_balanced']:.1f} % | "
            f"{result[s]['isbi_junior_vs_senior_mean_agreement']:.1f} %"
            for s in splits
        )
        + " |"
    )
    lines += ["", "Borderline classes (the 90 % interval from the landmarks' error radii holds a class threshold):", ""]
    for s in splits:
        r = result[s]
        lines.append(
            f"- {s}: {r['isbi_borderline']:.1f} % of the eight measurements borderline; agreement "
            f"{r['isbi_agreement_not_borderline']:.1f} % where not, {r['isbi_agreement_borderline']:.1f} % where they are."
        )
    lines += ["", "Published figures of the challenge's second task that we could verify (their protocols differ):", ""]
    lines += [f"- {who}: {what}." for who, what in PUBLISHED]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--annotations", required=True, help="the folder of all_senior.csv and all_junior.csv")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args(argv)
    folder = Path(args.annotations)
    predicted, radii = predictions(Path(args.predictions))
    radii = radii if all(np.isfinite(r).all() for r in radii.values()) else None
    result = study(predicted, annotations(folder, "senior"), annotations(folder, "junior"), args.splits, radii)
    print(json.dumps({s: {k: v for k, v in r.items() if k != "measurements"} for s, r in result.items()}, indent=2))
    command = "python -m experiments.cephalometric_analysis " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(result, command))


if __name__ == "__main__":
    sys.exit(run_main(main))
