"""The trust study (experiments/trust_study.py): figures cross-fitted over the table's folds, the rules that choose,
and the files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bundle.uncertainty import ErrorCalibration, MissRisk
from experiments.crossfit import COLUMNS, write_table
from experiments.trust_study import (
    choose_max_move,
    choose_radii,
    choose_risk,
    cross_fitted_radii,
    cross_fitted_risk,
    load_table,
    main,
    max_move_rows,
    wilson,
)

COUNT = 4  # landmarks per image


def _rows(fold: int, images: range, rng) -> list[dict]:
    """Rows whose error grows with the final heatmap's width; misses come with a large shape distance."""
    rows = []
    for image in images:
        for k in range(COUNT):
            spread = rng.uniform(0.8, 1.6)
            distance = rng.chisquare(2)
            error = abs(rng.normal()) * spread * (1 + k) / 2 + (6.0 if distance > 8 else 0.0)
            row = dict.fromkeys(COLUMNS, 0.0)
            row.update(
                fold=fold, image=image, landmark=k, name=f"p{k}", error_mm=error, coarse_error_mm=error * 1.2,
                confidence=rng.uniform(0.2, 0.8), spread_mm=spread, coarse_confidence=0.8,
                coarse_spread_mm=rng.uniform(3, 4), proposed_move_mm=rng.uniform(0, 2), move_mm=0.5,
                shape_plausible=1, shape_mahalanobis=distance, candidate_score_1=0.8, candidate_score_2=0.05,
            )  # fmt: skip
            rows.append(row)
    return rows


@pytest.fixture
def table_folder(tmp_path):
    rng = np.random.default_rng(0)
    for fold in range(3):
        write_table(_rows(fold, range(1 + 40 * fold, 41 + 40 * fold), rng), tmp_path / f"fold{fold}.csv")
    return tmp_path


def test_a_folds_radii_and_risks_come_from_the_other_folds_only(table_folder):
    table = load_table(table_folder)
    radius = cross_fitted_radii(table, ("spread_mm", "confidence"), per_landmark=True)
    _, flags = cross_fitted_risk(table, ("shape_distance", "wide_heatmap"), False, 5.0, 0.01, 0.15)
    changed = {k: v.copy() for k, v in table.items()}
    held = changed["fold"] == 1
    changed["error_mm"][held] *= 10  # fold 1's own errors judge fold 1: they must not set its radii or threshold
    np.testing.assert_array_equal(cross_fitted_radii(changed, ("spread_mm", "confidence"), True)[held], radius[held])
    np.testing.assert_array_equal(
        cross_fitted_risk(changed, ("shape_distance", "wide_heatmap"), False, 5.0, 0.01, 0.15)[1][held], flags[held]
    )
    assert not np.array_equal(cross_fitted_radii(changed, ("spread_mm", "confidence"), True)[~held], radius[~held])
    covered = table["error_mm"] <= radius
    assert 0.85 <= covered.mean() <= 0.95  # exchangeable folds: the stated 90 % holds out of fold
    assert flags.mean() == pytest.approx(0.15, abs=0.03)


def test_a_rejected_refiner_move_takes_the_first_stages_features_and_a_broken_table_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    rows = _rows(0, range(1, 4), rng)
    rows[1].update(refine_rejected=1, coarse_spread_mm=3.3, coarse_confidence=0.7)
    write_table(rows, tmp_path / "fold0.csv")
    table = load_table(tmp_path)
    assert table["spread_mm"][1] == pytest.approx(3.3) and table["confidence"][1] == pytest.approx(0.7)
    assert table["spread_mm"][0] == pytest.approx(rows[0]["spread_mm"], rel=1e-5)
    write_table(rows[:-1], tmp_path / "fold0.csv")  # an image short of a landmark
    with pytest.raises(ValueError, match="every image needs its 4 landmarks"):
        load_table(tmp_path)
    with pytest.raises(ValueError, match="no out-of-fold rows"):
        load_table(tmp_path / "empty")


def test_the_rules_choose_as_the_docstring_says():
    radii = [
        {"coverage": 0.95, "worst_coverage": 0.93, "mean_radius_mm": 3.0},  # over the band: out
        {"coverage": 0.90, "worst_coverage": 0.80, "mean_radius_mm": 2.5},
        {"coverage": 0.89, "worst_coverage": 0.795, "mean_radius_mm": 2.0},  # within a point, smaller: chosen
        {"coverage": 0.91, "worst_coverage": 0.70, "mean_radius_mm": 1.0},
    ]
    assert choose_radii(radii) is radii[2]
    risks = [
        {"caught": 5, "caught_3mm": 10, "most_flagged_type": 0.5},
        {"caught": 6, "caught_3mm": 8, "most_flagged_type": 0.9},
        {"caught": 6, "caught_3mm": 9, "most_flagged_type": 0.7},
        {"caught": 6, "caught_3mm": 9, "most_flagged_type": 0.6},
    ]
    assert choose_risk(risks) is risks[3]


def test_wilsons_interval_has_its_known_values():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)
    assert all(np.isnan(wilson(0, 0)))


def test_the_study_writes_its_tables_and_the_chosen_files_that_the_pipeline_reads(table_folder, tmp_path, capsys):
    out = tmp_path / "docs" / "trust.md"
    main(["--table", str(table_folder), "--out", str(out), "--write", str(tmp_path / "models")])
    text = out.read_text()
    assert "## Error radii at 0.9 coverage" in text and "Chosen" in text and "| final heatmap | yes |" in text
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["risk"]["features"] in {"heatmaps", "shape and refiner", "all"}
    both = ErrorCalibration.load(tmp_path / "models" / "calibration.json", "both_stages", num_landmarks=COUNT)
    first = ErrorCalibration.load(tmp_path / "models" / "calibration.json", "first_stage", num_landmarks=COUNT)
    assert both.images == first.images == 120 and "folds [0, 1, 2]" in both.description
    risk = MissRisk.load(tmp_path / "models" / "review_risk.json", "both_stages", num_landmarks=COUNT)
    assert risk.count == 480 and risk.misses == summary["review"][0]["misses"]
    (table_folder / "fold1.csv").unlink()
    (table_folder / "fold2.csv").unlink()
    with pytest.raises(ValueError, match="at least two folds"):
        main(["--table", str(table_folder), "--out", str(out)])


def test_a_tighter_refiner_limit_is_replayed_as_the_first_stages_point():
    table = {
        "error_mm": np.array([0.5, 6.0, 1.0, 7.0]),
        "coarse_error_mm": np.array([3.0, 1.0, 1.0, 7.0]),
        "proposed_move_mm": np.array([2.5, 4.5, 0.5, 9.0]),
        "refine_rejected": np.array([0, 0, 0, 1]),
    }
    rows = {r["max_move_mm"]: r for r in max_move_rows(table)}
    assert rows[6.0]["mre_mm"] == pytest.approx(14.5 / 4) and rows[6.0]["over_5mm"] == 2
    assert rows[4.0]["mre_mm"] == pytest.approx(9.5 / 4) and rows[4.0]["over_5mm"] == 1  # the 4.5 mm move undone
    assert rows[2.0]["mre_mm"] == pytest.approx(12.0 / 4) and rows[2.0]["rejected"] == 0.75
    assert choose_max_move(list(rows.values()))["max_move_mm"] == 4.0  # fewest misses, then MRE, then the largest
