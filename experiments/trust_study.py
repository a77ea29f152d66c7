"""The trust layer's settings, chosen on the out-of-fold table (``experiments/oof``, :mod:`experiments.crossfit`):
the error radii's difficulty and whether each landmark gets its own quantile, and the review's risk of a miss.

Every figure is cross-fitted a second time, over the folds of the table: the radii and the risk that judge fold f's
rows are fitted on the other folds' rows only (leave one fold out), so no row judges a fit it took part in. The
rules that choose, fixed before the figures were seen:

- **Radii** (0.9 coverage): among the variants whose overall coverage lies in [0.87, 0.93], the one whose worst
  landmark is covered most; within one point of that, the one with the smallest mean radius.
- **The refiner's largest move** (``refine_max_move_mm``): the limit with the fewest landmarks over 5 mm, then the
  smallest MRE, then the largest limit.
- **Risk** (budget 15 % of landmarks, misses over 5 mm): the variant whose riskiest 15 % of the out-of-fold rows
  (every variant flags the same share, so that none wins by flagging more) hold the most misses over 5 mm; among
  equal counts, the one that holds most landmarks over 3 mm off (more of them, so a steadier count), then the one
  whose most-flagged landmark type is flagged least (a type is not a reason). Beside it, the share the budget really
  flags on a fold when its threshold comes from the other folds (the budget's honesty).

The variants: radii from the final heatmap's width and peak, from the first stage's, or from neither (one scale per
landmark), pooled or per landmark (Mondrian); the risk from the heatmaps' features, the shape model's and the
refiner's, or all, with one intercept or one per landmark, fitted to misses over 3 or 5 mm, penalty 0.01 or 0.1.
A landmark whose refiner move was rejected takes the first stage's features (as the pipeline does).

``--write models`` then fits the chosen radii (``calibration.json``: ``both_stages`` from the final features and
errors, ``first_stage`` from the first stage's) and the chosen risk (``review_risk.json``, ``both_stages``) on every
row of the table. Usage::

    python -m experiments.trust_study [--table experiments/oof] [--out docs/studies/trust.md] [--write models]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np

from bundle.error_line import run_main
from bundle.errors import InputError
from bundle.uncertainty import RAW, ErrorCalibration, MissRisk
from experiments.crossfit import TABLE, read_table

REPO = Path(__file__).resolve().parents[1]
COVERAGE, BUDGET, MISS_MM = 0.9, 0.15, 5.0
COVERAGES = (0.8, 0.9, 0.95)
RADIUS_VARIANTS = {  # name: the two calibration features (a width in mm, a peak), or None for one scale per landmark
    "final heatmap": ("spread_mm", "confidence"),
    "first-stage heatmap": ("coarse_spread_mm", "coarse_confidence"),
    "per-landmark scale only": None,
}
RISK_FEATURES = {
    "heatmaps": ("wide_heatmap", "weak_peak", "wide_first_heatmap", "weak_first_peak", "second_peak"),
    "shape and refiner": ("shape_distance", "refiner_move"),
    "all": ("wide_heatmap", "weak_peak", "wide_first_heatmap", "weak_first_peak", "refiner_move",
            "shape_distance", "second_peak"),
}  # fmt: skip


def load_table(folder: Path = TABLE) -> dict:
    """The committed folds' rows as (N,) arrays, sorted by image then landmark; a rejected refiner move's landmark
    takes the first stage's features (as :class:`bundle.transforms.RefineLandmarksd` now does).

    Raises:
        ValueError: no rows, or an image without all its landmarks.
    """
    rows = read_table(folder)
    if not rows:
        raise InputError(f"no out-of-fold rows under {folder} (python -m experiments.crossfit).")
    rows.sort(key=lambda r: (int(r["image"]), int(r["landmark"])))
    table = {}
    for column in rows[0]:
        if column == "name":
            table[column] = np.array([r[column] for r in rows])
        else:
            table[column] = np.array([float(r[column]) for r in rows])
    for column in ("fold", "image", "landmark"):
        table[column] = table[column].astype(int)
    count = int(table["landmark"].max()) + 1
    if len(rows) % count or np.any(table["landmark"] != np.tile(np.arange(count), len(rows) // count)):
        raise InputError(f"{folder}: every image needs its {count} landmarks, one row each.")
    rejected = table["refine_rejected"] > 0
    for final, first in (("spread_mm", "coarse_spread_mm"), ("confidence", "coarse_confidence")):
        table[final] = np.where(rejected, table[first], table[final])
    return table


def _images(table: dict, values: np.ndarray) -> np.ndarray:
    """(N, ...) rows -> (I, K, ...)."""
    count = int(table["landmark"].max()) + 1
    return values.reshape(-1, count, *values.shape[1:])


def _features(table: dict, variant) -> np.ndarray:
    if variant is None:
        return np.ones((len(table["landmark"]), 2))
    return np.stack([table[variant[0]], table[variant[1]]], -1)


def fit_radii(
    table: dict, rows: np.ndarray, variant, per_landmark: bool, error: str = "error_mm", coverages=COVERAGES
) -> ErrorCalibration:
    """The calibration fitted on the selected rows (whole images)."""
    return ErrorCalibration.fit(
        _images(table, table[error][rows]),
        _images(table, _features(table, variant)[rows]),
        coverages,
        per_landmark=per_landmark,
    )


def cross_fitted_radii(table: dict, variant, per_landmark: bool, coverage: float = COVERAGE) -> np.ndarray:
    """(N,) radii in mm, each row's from a calibration fitted on the other folds' rows."""
    radius = np.full(len(table["fold"]), np.nan)
    features = _features(table, variant)
    for fold in np.unique(table["fold"]):
        held = table["fold"] == fold
        calibration = fit_radii(table, ~held, variant, per_landmark, coverages=(coverage,))
        radius[held] = calibration.radius(_images(table, features[held]), coverage).reshape(-1)
    return radius


def _raw(table: dict, rows=None) -> dict:
    """The risk's raw features of the selected rows (all: None)."""
    return {name: table[name] if rows is None else table[name][rows] for name in RAW}


def cross_fitted_risk(table: dict, features, per_landmark: bool, miss_mm: float, penalty: float, budget: float):
    """(N,) risks and (N,) flags, each row's from a risk fitted on the other folds' rows (its threshold at
    ``budget`` of those rows)."""
    count = int(table["landmark"].max()) + 1
    risk, flagged = np.full(len(table["fold"]), np.nan), np.zeros(len(table["fold"]), bool)
    for fold in np.unique(table["fold"]):
        held = table["fold"] == fold
        model = MissRisk.fit(
            _raw(table, ~held), table["error_mm"][~held], table["landmark"][~held], count, features,
            miss_mm=miss_mm, penalty=penalty, per_landmark=per_landmark,
        )  # fmt: skip
        risk[held] = model.probability(_raw(table, held), table["landmark"][held])
        flagged[held] = risk[held] >= model.threshold(budget)
    return risk, flagged


def structural_flags(table: dict) -> np.ndarray:
    """(N,) the flags that stay as they are: implausible, searched again, a rejected move, an implausible image."""
    return (
        (table["shape_implausible"] > 0)
        | (table["shape_reseek"] > 0)
        | (table["refine_rejected"] > 0)
        | (table["shape_plausible"] < 1)
    )


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95 % by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def _per_landmark(table: dict, values: np.ndarray) -> np.ndarray:
    count = int(table["landmark"].max()) + 1
    return np.array([values[table["landmark"] == k].mean() for k in range(count)])


def radius_rows(table: dict) -> list[dict]:
    rows = []
    for (name, variant), per_landmark in itertools.product(RADIUS_VARIANTS.items(), (False, True)):
        radius = cross_fitted_radii(table, variant, per_landmark)
        covered = table["error_mm"] <= radius
        by_landmark = _per_landmark(table, covered)
        rows.append(
            {
                "difficulty": name,
                "per_landmark": per_landmark,
                "coverage": float(covered.mean()),
                "worst_landmark": str(table["name"][int(np.argmin(by_landmark))]),
                "worst_coverage": float(by_landmark.min()),
                "mean_radius_mm": float(radius.mean()),
            }
        )
    return rows


def choose_radii(rows: list[dict]) -> dict:
    fit = [r for r in rows if 0.87 <= r["coverage"] <= 0.93] or rows
    best = max(r["worst_coverage"] for r in fit)
    return min((r for r in fit if r["worst_coverage"] >= best - 0.01), key=lambda r: r["mean_radius_mm"])


def risk_rows(table: dict, budget: float = BUDGET) -> list[dict]:
    misses = table["error_mm"] > MISS_MM
    rows = []
    grid = itertools.product(RISK_FEATURES.items(), (False, True), (3.0, 5.0), (0.01, 0.1))
    for (name, features), per_landmark, miss_mm, penalty in grid:
        risk, flagged = cross_fitted_risk(table, features, per_landmark, miss_mm, penalty, budget)
        riskiest = risk >= np.quantile(risk, 1 - budget)  # the same share for every variant
        rows.append(
            {
                "features": name,
                "per_landmark": per_landmark,
                "target_mm": miss_mm,
                "penalty": penalty,
                "flagged": float(flagged.mean()),
                "caught": int((riskiest & misses).sum()),
                "misses": int(misses.sum()),
                "caught_3mm": int((riskiest & (table["error_mm"] > 3.0)).sum()),
                "most_flagged_type": float(_per_landmark(table, riskiest).max()),
            }
        )
    return rows


def choose_risk(rows: list[dict]) -> dict:
    return min(rows, key=lambda r: (-r["caught"], -r["caught_3mm"], r["most_flagged_type"]))


def review_rows(table: dict, radius: np.ndarray, risk_flags: np.ndarray) -> list[dict]:
    """The review as 0.8.0 made it (structural flags and radii over 3 mm) against structural flags and the risk."""
    misses = table["error_mm"] > MISS_MM
    structural = structural_flags(table)
    rows = []
    for name, flagged in (
        ("0.8.0's rule: structural + radius over 3 mm (these radii)", structural | (radius > 3.0)),
        ("structural only", structural),
        ("structural + risk at the budget", structural | risk_flags),
    ):
        caught = int((flagged & misses).sum())
        low, high = wilson(caught, int(misses.sum()))
        rows.append(
            {
                "review": name,
                "flagged": float(flagged.mean()),
                "caught": caught,
                "misses": int(misses.sum()),
                "interval": [low, high],
                "most_flagged_type": float(_per_landmark(table, flagged).max()),
            }
        )
    return rows


def _percent(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


MAX_MOVES = (2.0, 3.0, 4.0, 5.0, 6.0)


def max_move_rows(table: dict) -> list[dict]:
    """The refiner's ``max_move_mm`` (the farthest move kept) at each of :data:`MAX_MOVES`, replayed on the table: a
    move over the limit keeps the first stage's point (``coarse_error_mm``). The table was made at the shipped 6 mm,
    so moves rejected there are rejected at every limit here (their refined error is not in the table)."""
    misses = table["error_mm"] > MISS_MM
    rows = []
    for limit in MAX_MOVES:
        rejected = (table["refine_rejected"] > 0) | (table["proposed_move_mm"] > limit)
        error = np.where(rejected, table["coarse_error_mm"], table["error_mm"])
        rows.append(
            {
                "max_move_mm": limit,
                "rejected": float(rejected.mean()),
                "mre_mm": float(error.mean()),
                "over_5mm": int((error > MISS_MM).sum()),
                "misses_at_6mm": int(misses.sum()),
            }
        )
    return rows


def choose_max_move(rows: list[dict]) -> dict:
    """The limit with the fewest landmarks over 5 mm, then the smallest MRE, then the largest limit (the refiner's
    training range)."""
    return min(rows, key=lambda r: (r["over_5mm"], round(r["mre_mm"], 3), -r["max_move_mm"]))


def markdown(
    table: dict, radii: list[dict], radius_choice: dict, risks: list[dict], risk_choice: dict, reviews, moves
) -> str:
    folds = sorted(set(table["fold"].tolist()))
    images = len(set(table["image"].tolist()))
    lines = [
        "# Trust settings chosen on the out-of-fold table",
        "",
        f"Rows: {len(table['fold'])} ({images} images x {int(table['landmark'].max()) + 1} landmarks) of folds "
        f"{folds} of `experiments/oof` (`python -m experiments.crossfit`); out-of-fold MRE "
        f"{table['error_mm'].mean():.3f} mm, {int((table['error_mm'] > MISS_MM).sum())} landmarks over {MISS_MM:g} mm. "
        "Each figure is cross-fitted again over these folds (the fit that judges a fold never saw it). "
        "Command: `python -m experiments.trust_study`. Test1, Test2 and the hand radiographs are not read.",
        "",
        f"## Error radii at {COVERAGE:g} coverage",
        "",
        "| difficulty | per landmark | coverage | worst landmark | its coverage | mean radius (mm) |",
        "|---|---|---|---|---|---|",
    ]
    for r in radii:
        lines.append(
            f"| {r['difficulty']} | {'yes' if r['per_landmark'] else 'no'} | {_percent(r['coverage'])} | "
            f"{r['worst_landmark']} | {_percent(r['worst_coverage'])} | {r['mean_radius_mm']:.2f} |"
        )
    lines += [
        "",
        f"Chosen (coverage in [87, 93] %, then the best-covered worst landmark, then the smallest radius): "
        f"**{radius_choice['difficulty']}, {'per landmark' if radius_choice['per_landmark'] else 'pooled'}**.",
        "",
        f"## The review's risk at a budget of {100 * BUDGET:g} % of landmarks",
        "",
        f"The riskiest {100 * BUDGET:g} % of the out-of-fold rows by each variant: the misses they hold and how often "
        "its most-flagged landmark type is among them; and the share the budget flags on a fold when its threshold "
        "comes from the other folds.",
        "",
        "| features | per landmark | miss target (mm) | penalty | budget flags | misses > 5 mm caught | > 3 mm caught "
        "| most-flagged type |",
        "|---|---|---|---|---|---|---|---|",
    ]
    over3 = int((table["error_mm"] > 3.0).sum())
    for r in risks:
        lines.append(
            f"| {r['features']} | {'yes' if r['per_landmark'] else 'no'} | {r['target_mm']:g} | {r['penalty']:g} | "
            f"{_percent(r['flagged'])} | {r['caught']} of {r['misses']} | {r['caught_3mm']} of {over3} | "
            f"{_percent(r['most_flagged_type'])} |"
        )
    lines += [
        "",
        "Chosen (most misses over 5 mm caught, then over 3 mm, then the least-flagged most-flagged type): "
        f"**{risk_choice['features']}, "
        f"{'one intercept per landmark' if risk_choice['per_landmark'] else 'one intercept'}, misses over "
        f"{risk_choice['target_mm']:g} mm, penalty {risk_choice['penalty']:g}**.",
        "",
        "## The review as a whole",
        "",
        "Structural flags (implausible, searched again, a rejected refiner move, an implausible image) stay as they "
        "are; the risk replaces the radius over 3 mm.",
        "",
        "| review | flagged | misses > 5 mm caught (95 % interval) | most-flagged type |",
        "|---|---|---|---|",
    ]
    for r in reviews:
        low, high = r["interval"]
        lines.append(
            f"| {r['review']} | {_percent(r['flagged'])} | {r['caught']} of {r['misses']} "
            f"({_percent(low)} to {_percent(high)}) | {_percent(r['most_flagged_type'])} |"
        )
    move_choice = choose_max_move(moves)
    lines += [
        "",
        "## The refiner's largest move",
        "",
        "Replayed on the table: a move over the limit keeps the first stage's point. Moves the shipped 6 mm rejected "
        "stay rejected (their refined point is not in the table), so only limits up to 6 mm can be judged.",
        "",
        "| max_move_mm | rejected | MRE (mm) | landmarks > 5 mm |",
        "|---|---|---|---|",
    ]
    for r in moves:
        lines.append(f"| {r['max_move_mm']:g} | {_percent(r['rejected'])} | {r['mre_mm']:.3f} | {r['over_5mm']} |")
    lines += [
        "",
        "Chosen (fewest landmarks over 5 mm, then the smallest MRE, then the largest limit): "
        f"**{move_choice['max_move_mm']:g} mm** (`refine_max_move_mm` in `configs/inference.json`).",
    ]
    return "\n".join(lines) + "\n"


def write_models(table: dict, radius_choice: dict, risk_choice: dict, folder: Path) -> None:
    """Fit the chosen radii and risk on every row of the table and write them beside the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    every = np.ones(len(table["fold"]), bool)
    folds = sorted(set(table["fold"].tolist()))
    source = f"out-of-fold rows of ISBI 2015 001-150, folds {folds} of experiments/oof (experiments/trust_study.py)"
    variant = RADIUS_VARIANTS[radius_choice["difficulty"]]
    if variant == ("coarse_spread_mm", "coarse_confidence"):
        raise InputError("the pipeline's radii read the final heatmap's features; this variant needs a new key.")
    both = fit_radii(table, every, variant, radius_choice["per_landmark"])
    both.description = f"{source}; difficulty: {radius_choice['difficulty']}"
    first_variant = None if variant is None else ("coarse_spread_mm", "coarse_confidence")
    first = fit_radii(table, every, first_variant, radius_choice["per_landmark"], error="coarse_error_mm")
    first.description = f"{source}; the first stage's errors and features"
    both.save(folder / "calibration.json", "both_stages")
    first.save(folder / "calibration.json", "first_stage")
    count = int(table["landmark"].max()) + 1
    risk = MissRisk.fit(
        _raw(table), table["error_mm"], table["landmark"], count, RISK_FEATURES[risk_choice["features"]],
        miss_mm=risk_choice["target_mm"], penalty=risk_choice["penalty"], per_landmark=risk_choice["per_landmark"],
        description=source,
    )  # fmt: skip
    risk.save(folder / "review_risk.json", "both_stages")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "studies" / "trust.md")
    parser.add_argument("--write", type=Path, default=None, help="fit the chosen settings on every row, write here")
    args = parser.parse_args(argv)
    table = load_table(args.table)
    if len(set(table["fold"].tolist())) < 2:
        raise InputError(f"{args.table}: the study needs at least two folds, to fit on one and judge another.")
    radii = radius_rows(table)
    radius_choice = choose_radii(radii)
    risks = risk_rows(table)
    risk_choice = choose_risk(risks)
    radius = cross_fitted_radii(table, RADIUS_VARIANTS[radius_choice["difficulty"]], radius_choice["per_landmark"])
    _, risk_flags = cross_fitted_risk(
        table, RISK_FEATURES[risk_choice["features"]], risk_choice["per_landmark"], risk_choice["target_mm"],
        risk_choice["penalty"], BUDGET,
    )  # fmt: skip
    reviews = review_rows(table, radius, risk_flags)
    moves = max_move_rows(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(table, radii, radius_choice, risks, risk_choice, reviews, moves))
    summary = {"radii": radius_choice, "risk": risk_choice, "review": reviews, "max_move": choose_max_move(moves)}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=4) + "\n")  # the model zoo's JSON style
    print(json.dumps(summary))
    if args.write is not None:
        write_models(table, radius_choice, risk_choice, args.write)


if __name__ == "__main__":
    run_main(main)
