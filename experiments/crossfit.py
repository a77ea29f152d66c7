"""Cross-fitting over the development images (ISBI 2015 001-150): the out-of-fold table every radius, risk and threshold
is calibrated on.

The 150 images are split into ``--folds`` folds (5: 30 images each) by a seeded permutation. For fold k, both stages
are trained with the shipped recipe (``configs/train.json``, then ``configs/refiner.json``) on the other folds:
100 images train, 20 (an inner split, also from the other folds) choose the best epoch, so nothing of fold k
chooses anything. Then the full default pipeline (``configs/inference.json`` with ``evaluate.json``: both stages and
every trust check) runs on fold k's 30 images with that fold's weights and shape model, and one row per image and
landmark goes into ``<table>/fold<k>.csv``:

- who: ``fold``, ``image`` (the ISBI number), ``landmark`` (index), ``name``;
- the error: ``error_mm`` (final point against the mean of the two doctors, world mm at 0.1 mm/px) and
  ``coarse_error_mm`` (the first stage's point, before the refiner: after the shape judgement, which sends a landmark
  that stays implausible to where the shape model expects it);
- the trust layer's features: ``confidence`` and ``spread_mm`` (the final heatmap's peak and width),
  ``coarse_confidence`` and ``coarse_spread_mm`` (the first stage's), ``proposed_move_mm`` (how far the refiner would
  move the first stage's point), ``move_mm`` (how far it did: NaN where the move was rejected), ``refine_rejected``,
  ``shape_implausible``,
  ``shape_reseek``, ``shape_plausible`` (the image as a whole), ``shape_mahalanobis`` (the final point's squared
  Mahalanobis distance given the other landmarks), ``shape_prediction_mm`` (its distance from where the shape model
  expects it) and ``shape_prediction_sd_mm`` (that expectation's scatter per axis), ``candidate_score_1`` /
  ``candidate_score_2`` (the first stage's best and second-best peak);
- the points: ``pred_x``, ``pred_y``, ``true_x``, ``true_y`` (world mm).

Each fold is resumable and can run alone in the background (``--fold k``): a killed training resumes from its last
checkpoint, finished stages are skipped, and the fold's rows are written whole at its end. Weights and logs go under
``--work`` (git-ignored); the table is small and committed. On 2 CPU cores a fold takes about 45 minutes.

Usage:
  python -m scripts.prepare_isbi2015 --source ../shared/data/isbi2015 --out data/isbi2015
  python -m experiments.crossfit --datalist data/isbi2015/datalist.json --fold 0 [--folds 5] [--work runs/crossfit]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from bundle import bundled_landmark_set, load_datalist
from bundle.error_line import run_main
from bundle.errors import InputError
from bundle.io.files import write_whole
from bundle.shape import ShapeModel

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "experiments" / "oof"
COLUMNS = [
    "fold", "image", "landmark", "name", "error_mm", "coarse_error_mm", "confidence", "spread_mm",
    "coarse_confidence", "coarse_spread_mm", "proposed_move_mm", "move_mm",
    "refine_rejected", "shape_implausible", "shape_reseek", "shape_plausible", "shape_mahalanobis",
    "shape_prediction_mm", "shape_prediction_sd_mm", "candidate_score_1", "candidate_score_2", "pred_x", "pred_y",
    "true_x", "true_y",
]  # fmt: skip
# The shipped recipe at the fold's size: 120 first-stage epochs end a cycle of the cyclic rate (half cycle 10) where the
# shipped first stage had its best validation; the refiner's best came at 40 of 60.
STAGE1_EPOCHS, REFINER_EPOCHS, VAL_INTERVAL = 120, 40, 10
INNER_VALIDATION = 20


def fold_of(count: int, folds: int, seed: int = 0) -> np.ndarray:
    """(count,) the fold of each development image (0-based position in the list), balanced, by a seeded
    permutation."""
    if folds < 2 or folds > count:
        raise InputError(f"--folds must be between 2 and {count}, got {folds}.")
    order = np.random.default_rng(seed).permutation(count)
    assignment = np.empty(count, dtype=int)
    assignment[order] = np.arange(count) % folds
    return assignment


def split_fold(entries: list[dict], fold: int, folds: int, seed: int = 0) -> dict:
    """The fold's datalist: ``test`` (the held-out fold), ``validation`` (the inner split that chooses the epoch) and
    ``training`` (the rest), all from ``entries`` (absolute paths)."""
    assignment = fold_of(len(entries), folds, seed)
    held = [e for e, f in zip(entries, assignment) if f == fold]
    rest = [e for e, f in zip(entries, assignment) if f != fold]
    inner = np.random.default_rng(seed + 1 + fold).permutation(len(rest))
    validation = sorted(inner[:INNER_VALIDATION].tolist())
    training = sorted(inner[INNER_VALIDATION:].tolist())
    return {
        "training": [rest[i] for i in training],
        "validation": [rest[i] for i in validation],
        "test": held,
    }


def image_number(path: str) -> int:
    return int(Path(path).stem)


class OutOfFoldRows:
    """Collects one row per image and landmark (:data:`COLUMNS`) from an evaluation of the full pipeline.

    Args:
        fold: the held-out fold's number.
        names: the landmark names.
        shape_model: the fold's shape model file (judges each final point given the others).
    """

    def __init__(self, fold: int, names: list[str], shape_model: str | Path):
        self.fold, self.names = fold, names
        self.shape_model = ShapeModel.load(shape_model)
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            self.rows.extend(self.rows_of(item))

    def rows_of(self, item: dict) -> list[dict]:
        def array(key, dtype=np.float64):
            return np.asarray(torch.as_tensor(item[key]).cpu().numpy(), dtype=dtype)

        pred, true, coarse = array("pred_landmarks"), array("true_landmarks"), array("coarse_landmarks")
        count = len(self.names)

        def optional(key):
            return array(key) if key in item else np.full(count, np.nan)

        spacing = float(np.asarray(item["result"]["spacing"], dtype=np.float64)[0])
        if abs(spacing - 0.1) > 1e-9:
            raise InputError(f"{item['result']['image']}: spacing {spacing}, the ISBI table assumes 0.1 mm/px.")
        fit = self.shape_model.fit_configuration(pred, noise_mm=1.0, scale_to_mm=1.0)
        scores = array("pred_candidate_scores")
        refined_before_rejection = np.where(array("refine_rejected", bool)[:, None], np.nan, pred)
        move = np.linalg.norm(pred - coarse, axis=1)
        move = np.where(np.isfinite(refined_before_rejection).all(1), move, np.nan)
        rows = []
        for k in range(count):
            rows.append(
                {
                    "fold": self.fold,
                    "image": image_number(item["result"]["image"]),
                    "landmark": k,
                    "name": self.names[k],
                    "error_mm": np.linalg.norm(pred[k] - true[k]),
                    "coarse_error_mm": np.linalg.norm(coarse[k] - true[k]),
                    "confidence": array("pred_confidence")[k],
                    "spread_mm": array("pred_spread")[k],
                    "coarse_confidence": optional("coarse_confidence")[k],
                    "coarse_spread_mm": optional("coarse_spread")[k],
                    "proposed_move_mm": optional("refine_move_mm")[k],
                    "move_mm": move[k],
                    "refine_rejected": int(array("refine_rejected", bool)[k]),
                    "shape_implausible": int(array("shape_implausible", bool)[k]),
                    "shape_reseek": int(array("shape_reseek", bool)[k]) if "shape_reseek" in item else 0,
                    "shape_plausible": int(bool(item.get("shape_plausible", True))),
                    "shape_mahalanobis": fit.mahalanobis[k],
                    "shape_prediction_mm": np.linalg.norm(fit.predicted[k] - pred[k]),
                    "shape_prediction_sd_mm": fit.predicted_sd[k],
                    "candidate_score_1": scores[k, 0],
                    "candidate_score_2": scores[k, 1] if scores.shape[1] > 1 else np.nan,
                    "pred_x": pred[k, 0],
                    "pred_y": pred[k, 1],
                    "true_x": true[k, 0],
                    "true_y": true[k, 1],
                }
            )
        return rows


def write_table(rows: list[dict], path: Path) -> None:
    def text(value):
        if isinstance(value, (float, np.floating)):
            return "nan" if not np.isfinite(value) else f"{float(value):.6g}"
        return str(value)

    lines = [",".join(COLUMNS)] + [",".join(text(row[c]) for c in COLUMNS) for row in rows]
    write_whole(path, lambda f: f.write("\n".join(lines) + "\n"))


def read_table(folder: Path = TABLE) -> list[dict]:
    """Every committed fold's rows, as dicts of strings."""
    rows = []
    for path in sorted(Path(folder).glob("fold*.csv")):
        with path.open() as f:
            rows.extend(csv.DictReader(f))
    return rows


def _bundle_run(workflow: str, configs: list[str], log: Path, **overrides) -> None:
    """``python -m monai.bundle run`` in a child process (the training's determinism and memory stay its own)."""
    command = [sys.executable, "-m", "monai.bundle", "run", workflow, "--config_file", json.dumps(configs)]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    print(f"[crossfit] {' '.join(command)}", flush=True)
    with log.open("a") as out:
        result = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{workflow} failed (exit {result.returncode}): see {log}")


def _train(stage: str, configs: list[str], folder: Path, datalist: Path, epochs: int) -> None:
    done = folder / f"{stage}.done"
    if done.exists():
        print(f"[crossfit] {stage} of {folder.name} already trained", flush=True)
        return
    output = folder / stage
    resume = any((output / "checkpoints").glob("*.pt"))
    started = time.time()
    _bundle_run(
        "training",
        configs,
        folder / f"{stage}.log",
        dataset_dir=datalist,
        ckpt_dir=folder / "models",
        output_dir=output,
        max_epochs=epochs,
        val_interval=VAL_INTERVAL,
        resume=str(resume).lower(),
    )
    done.write_text(f"{time.time() - started:.0f} s\n")


def _evaluate(fold: int, folder: Path, datalist: Path, names: list[str]) -> list[dict]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "inference.json"), str(REPO / "configs" / "evaluate.json")])
    output = folder / "evaluate"
    parser.update(
        {
            "bundle_root": str(REPO),
            "dataset_dir": str(datalist),
            "datalist_key": "test",
            "ckpt_dir": str(folder / "models"),
            "output_dir": str(output),
            "overwrite": True,
            "overlay": False,
            "report": False,
        }
    )
    evaluator = parser.get_parsed_content("evaluator")
    rows = OutOfFoldRows(fold, names, folder / "models" / "shape_model.json")
    rows.attach(evaluator)
    evaluator.run()
    return rows.rows


def run_fold(
    datalist: str,
    fold: int,
    folds: int,
    work: Path,
    table: Path,
    seed: int = 0,
    epochs: tuple[int, int] = (STAGE1_EPOCHS, REFINER_EPOCHS),
) -> Path:
    datalist = Path(datalist).resolve()
    entries = load_datalist(datalist, "training") + load_datalist(datalist, "validation")
    if len(entries) != 150:
        raise InputError(
            f"{datalist}: expected the 150 development images (training + validation), got {len(entries)}."
        )
    names = bundled_landmark_set("isbi2015").names
    folder = work / f"fold{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    split = split_fold(entries, fold, folds, seed)
    fold_list = folder / "datalist.json"
    fold_list.write_text(json.dumps(split, indent=1))
    _train("stage1", ["configs/train.json"], folder, fold_list, epochs[0])
    _train("refiner", ["configs/train.json", "configs/refiner.json"], folder, fold_list, epochs[1])
    rows = _evaluate(fold, folder, fold_list, names)
    path = table / f"fold{fold}.csv"
    write_table(rows, path)
    errors = np.array([r["error_mm"] for r in rows])
    print(f"[crossfit] fold {fold}: {len(rows)} rows, MRE {errors.mean():.3f} mm -> {path}", flush=True)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datalist", required=True, help="the prepared ISBI datalist (scripts.prepare_isbi2015)")
    parser.add_argument("--fold", type=int, nargs="+", required=True, help="which fold(s) to run, 0-based")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "crossfit")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        default=(STAGE1_EPOCHS, REFINER_EPOCHS),
        help="first stage, refiner (a smoke run)",
    )
    args = parser.parse_args(argv)
    for fold in args.fold:
        if not 0 <= fold < args.folds:
            raise InputError(f"--fold {fold} is not in 0..{args.folds - 1}.")
        run_fold(args.datalist, fold, args.folds, args.work, args.table, args.seed, tuple(args.epochs))


if __name__ == "__main__":
    sys.exit(run_main(main))
