"""Cross-fitting's folds and out-of-fold rows (experiments/crossfit.py): balanced, disjoint folds whose held-out images
choose nothing, and rows that carry the error and the trust layer's features of each landmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from bundle.errors import InputError
from bundle.shape import ShapeModel
from experiments.crossfit import COLUMNS, INNER_VALIDATION, OutOfFoldRows, fold_of, read_table, split_fold, write_table


def _entries(count: int = 150) -> list[dict]:
    return [{"image": f"/data/{i:03d}.jpg", "landmarks": f"/data/{i:03d}.csv"} for i in range(1, count + 1)]


def test_folds_are_balanced_seeded_and_cover_every_image_once():
    folds = fold_of(150, 5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [30] * 5
    np.testing.assert_array_equal(folds, fold_of(150, 5, seed=0))
    assert not np.array_equal(folds, fold_of(150, 5, seed=1))
    with pytest.raises(InputError, match="between 2 and 150"):
        fold_of(150, 1)


def test_a_fold_holds_out_its_images_from_training_and_from_choosing_the_epoch():
    entries = _entries()
    held = set()
    for fold in range(5):
        split = split_fold(entries, fold, 5)
        images = {name: {e["image"] for e in split[name]} for name in ("training", "validation", "test")}
        assert len(images["test"]) == 30 and len(images["validation"]) == INNER_VALIDATION
        assert len(images["training"]) == 150 - 30 - INNER_VALIDATION
        assert not images["test"] & (images["training"] | images["validation"])
        assert not images["training"] & images["validation"]
        assert not held & images["test"]  # each image is held out by one fold only
        held |= images["test"]
    assert len(held) == 150


def test_rows_carry_the_error_and_the_features_of_each_landmark(tmp_path):
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d"]
    base = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 30.0], [0.0, 30.0]])
    model = ShapeModel.fit(base + rng.normal(0, 0.5, (30, 4, 2)), names, modes=2)
    model.save(tmp_path / "shape.json")
    true = torch.tensor(base + 10.0)
    pred = true + torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    coarse = true + torch.tensor([[6.0, 8.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    item = {
        "pred_landmarks": pred,
        "true_landmarks": true,
        "coarse_landmarks": torch.where(torch.tensor([False, False, True, False])[:, None], pred, coarse),
        "refine_rejected": torch.tensor([False, False, True, False]),
        "pred_confidence": torch.tensor([0.1, 0.9, 0.5, 0.8]),
        "pred_spread": torch.tensor([2.0, 0.5, 1.0, 0.6]),
        "coarse_confidence": torch.tensor([0.2, 0.7, 0.6, 0.9]),
        "coarse_spread": torch.tensor([3.0, 1.5, 1.2, 1.1]),
        "refine_move_mm": torch.tensor([5.0, 1.0, 7.5, 0.0]),
        "shape_implausible": torch.tensor([True, False, False, False]),
        "shape_reseek": torch.tensor([False, False, False, False]),
        "shape_plausible": True,
        "pred_candidate_scores": torch.tensor([[0.4, 0.3], [0.9, 0.1], [0.5, 0.0], [0.8, 0.2]]),
        "result": {"image": "/data/isbi/007.jpg", "spacing": [0.1, 0.1]},
        "image": MetaTensor(torch.zeros(1, 4, 4)),
    }
    rows = OutOfFoldRows(2, names, tmp_path / "shape.json").rows_of(item)
    assert [r["landmark"] for r in rows] == [0, 1, 2, 3] and {r["image"] for r in rows} == {7}
    assert [r["error_mm"] for r in rows] == pytest.approx([5.0, 0.0, 1.0, 0.0])
    assert [r["coarse_error_mm"] for r in rows] == pytest.approx([10.0, 1.0, 1.0, 0.0])
    assert rows[0]["move_mm"] == pytest.approx(5.0) and np.isnan(rows[2]["move_mm"])  # rejected: no move
    assert rows[2]["proposed_move_mm"] == pytest.approx(7.5)  # ...but the refiner's proposal is kept
    assert [r["coarse_confidence"] for r in rows] == pytest.approx([0.2, 0.7, 0.6, 0.9])
    assert rows[0]["coarse_spread_mm"] == pytest.approx(3.0)
    assert [r["refine_rejected"] for r in rows] == [0, 0, 1, 0] and rows[0]["shape_implausible"] == 1
    assert rows[1]["candidate_score_2"] == pytest.approx(0.1) and rows[3]["spread_mm"] == pytest.approx(0.6)
    assert rows[0]["shape_mahalanobis"] > rows[1]["shape_mahalanobis"]  # the displaced one fits the shape worst
    with pytest.raises(InputError, match="spacing 0.2"):
        OutOfFoldRows(2, names, tmp_path / "shape.json").rows_of(
            {**item, "result": {**item["result"], "spacing": [0.2, 0.2]}}
        )
    write_table(rows, tmp_path / "table" / "fold2.csv")
    back = read_table(tmp_path / "table")
    assert list(back[0]) == COLUMNS and len(back) == 4 and float(back[0]["error_mm"]) == pytest.approx(5.0)
    assert back[2]["move_mm"] == "nan"
