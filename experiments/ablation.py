"""The paper's claims on our protocol: Zhu et al.'s Tables II (losses), III (the exponent r) and IV (attention kinds)
and Fig. 9 (convergence), run as config overlays x seeds on ISBI 2015, with paired t-tests, written to
``docs/studies/ablation.md``.

Zhu et al., "Central loss guides coordinated Transformer for reliable anatomical landmark detection", Neural Networks
187, 2025. The paper's own numbers were not available to us (only the abstract), so each table states the paper's
*claim* beside our rows, not its figures.

The CPU-scale protocol (:data:`PROTOCOL`, an overlay of ``configs/train.json``; everything else as shipped): a reduced
copy of the images (``prepare``: box-averaged by ``--factor`` 4, 0.4 mm per pixel, cropped to a multiple of the
factor, landmarks moved into the copy's frame), the network grid 80 x 96 (2.4 mm per grid pixel), 30 epochs at a
constant learning rate of 1e-3, batch 2, validation on images 131-150 every 2 epochs (it alone selects each run's
model), then one evaluation of the selected model on Test1 and Test2 against the mean of the two doctors.

Each experiment is an overlay (:data:`EXPERIMENTS`); a run is an experiment and a seed, in its own folder
``<out>/runs/<experiment>/seed<k>/`` holding its overlay, logs, weights, TensorBoard events (the validation curve),
``test/landmark_errors.csv`` (per-image, per-landmark errors) and ``run.json`` (the times). A finished run is not run
again, so the study resumes run by run. Runs go seed by seed, so that a cut-off study has every row at fewer seeds.

Usage::

    python -m experiments.ablation prepare --datalist data/isbi2015/datalist.json --out runs/ablation
    python -m experiments.ablation run --out runs/ablation --tables II III IV --seeds 0 1 2
    python -m experiments.ablation report --out runs/ablation --doc docs/studies/ablation.md --figures docs/studies/figures
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bundle.data import datalist_stems, load_datalist
from bundle.error_line import run_main
from bundle.errors import InputError, MissingFileError
from bundle.io import read_landmarks, write_landmarks
from bundle.metrics import error_figures, read_error_table

SPLITS = ("test1", "test2")
GRID = [80, 96]
SIGMA = 2.0

#: The CPU-scale protocol: an overlay of configs/train.json shared by every run (the datalist is added by ``run``).
PROTOCOL = {
    "grid_size": GRID,
    "max_epochs": 30,
    "val_interval": 2,
    # a constant 1e-3 (the top of the shipped cycle): the shipped cycle from 1e-4 leaves a 20-epoch run at 40 mm
    "learning_rate": 1e-3,
    "max_learning_rate": 1e-3,
    # the shipped recipe's translation (8, 10 grid pixels at 160 x 192) in the same millimetres on this grid
    "translate_range": [4, 5],
    "sigma": SIGMA,
}

#: config files between configs/train.json and the protocol overlay, per protocol
PROTOCOL_CONFIGS = {"cpu": [], "paper": ["configs/isbi2015_paper.json"]}


def balanced_pos_weight(grid: list[int], sigma: float) -> float:
    """Weighted cross-entropy's landmark weight: background mass over landmark mass of one target heatmap.

    A 2D Gaussian of peak 1 and ``sigma`` grid pixels holds ``2 pi sigma^2`` of mass; the background the rest of the
    grid. The paper does not give its weight; this balance is the usual choice.
    """
    landmark = 2.0 * math.pi * sigma**2
    return (float(np.prod(grid)) - landmark) / landmark


DOC_HEADER = """# The paper's claims on our protocol (Tables II-IV, Fig. 9)

Written by `python -m experiments.ablation report` from the runs of `python -m experiments.ablation run`; do not edit by hand.

Zhu et al., "Central loss guides coordinated Transformer for reliable anatomical landmark detection", Neural Networks
187, 2025, claim that the central loss beats cross-entropy, weighted cross-entropy and focal loss (Table II), that r = 2
is the best exponent (Table III), that CoorTransformer beats no attention, vanilla self-attention, Swin and deformable
attention (Table IV), and that it converges fastest (Fig. 9). Only the paper's abstract was available to us, so the
tables below state each claim, not the paper's figures.

## Protocol (CPU scale)

- Data: ISBI 2015, trained on images 001-130, validated on 131-150 (validation alone selects each run's model), tested
  once on Test1 (151-300) and Test2 (301-400) against the mean of the two doctors. The images are box-averaged 4 x 4
  (0.4 mm per pixel; `python -m experiments.ablation prepare`) so that a run starts in seconds; the network sees them on a
  grid of {grid_size[0]} x {grid_size[1]} (2.4 mm per grid pixel).
- Training: `configs/train.json` as shipped (network, augmentation, Adam, batch 2, sigma {sigma} grid pixels, the
  DARK decoder) but for {max_epochs} epochs at a constant learning rate of {learning_rate:g}, validating every
  {val_interval} epochs. The translation of the augmentation is {translate_range} grid pixels, the shipped millimetres.
  The shipped cycle from 1e-4 left a 20-epoch run at 40 mm; at this length the runs measure how far each variant gets
  in a fixed short budget, not where it converges.
- Rows: each an overlay of the shipped config (`EXPERIMENTS` in `experiments/ablation.py`): the loss (`CentralLoss` with
  r = 0 is cross-entropy; weighted cross-entropy is r = 0 with the landmark term weighted {pos_weight}, the background
  mass over the landmark mass of a target; focal loss is `HeatmapFocalLoss`, gamma 2), r, or `network_def#attention`
  (`none`, `vanilla`, `swin`, `deformable`, `coor`). Three seeds per row (0, 1, 2).
- Statistics: per image, the MRE over its 19 landmarks averaged over the seeds both rows ran; paired two-sided
  t-tests (scipy) of each row against the row the paper claims is best, per test split. MRE columns: mean ± SD
  over the seeds of each run's MRE.
- Verdicts: *confirmed* when the claimed-best row is lower than every other row on both splits with p < 0.05;
  *refuted* when another row is lower than it on a split with p < 0.05; *inconclusive* otherwise. For Fig. 9 the
  measure is each run's mean validation MRE over its validations (the area under its curve): *confirmed* when
  CoorTransformer's is the lowest at every seed, *refuted* when another kind's is lower at every seed.
- `train (s)`: wall time of a run's training on the 2-core machine, start-up included. Some runs shared the machine
  with other jobs (the test suite), so compare times only roughly.
- The paper's protocol (416 x 512, hundreds of epochs) needs a GPU: `docs/studies/gpu.md`.

How to read the verdicts: they hold *at this scale*. A 30-epoch run on a 2.4 mm grid measures how far each variant
gets in a short, fixed budget; a row that starts slowly (more parameters, attention that must learn where to look)
can lose here and still win when trained to convergence at the paper's size. A refuted claim means the claim does not
hold in this budget, not that the paper's numbers are wrong.

## Results
"""

PAPER_PROTOCOL = """## Protocol (the paper's size)

- Data: ISBI 2015 as prepared (`data/isbi2015`), trained on 001-130, validated on 131-150 (which alone selects each
  run's model), tested once on Test1 and Test2 against the mean of the two doctors.
- Training: `configs/train.json` with `configs/isbi2015_paper.json` (the 416 x 512 grid, features 32-192, 300
  epochs, the shipped cyclic learning rate; mixed precision on a GPU).
"""


@dataclass(frozen=True)
class Experiment:
    """One row: a label and the overlay of ``configs/train.json`` (MONAI ids, ``#`` for nesting) that makes it."""

    label: str
    overlay: dict


UNET = {"network_def#attention": "none"}
EXPERIMENTS: dict[str, Experiment] = {
    "unet_ce": Experiment("U-Net, cross-entropy", {**UNET, "loss#r": 0.0}),
    "unet_wce": Experiment(
        "U-Net, weighted cross-entropy",
        {**UNET, "loss#r": 0.0, "loss#pos_weight": round(balanced_pos_weight(GRID, SIGMA), 1)},
    ),
    "unet_focal": Experiment(
        "U-Net, focal loss (gamma 2)", {**UNET, "loss": {"_target_": "bundle.HeatmapFocalLoss", "gamma": 2.0}}
    ),
    "unet_central": Experiment("U-Net, central loss (r 2)", dict(UNET)),
    "coor_r0": Experiment("CoorTransformer, r 0", {"loss#r": 0.0}),
    "coor_r1": Experiment("CoorTransformer, r 1", {"loss#r": 1.0}),
    "coor_r2": Experiment("CoorTransformer, r 2 (shipped)", {}),
    "coor_r3": Experiment("CoorTransformer, r 3", {"loss#r": 3.0}),
    "vanilla": Experiment("vanilla self-attention", {"network_def#attention": "vanilla"}),
    "swin": Experiment("shifted-window attention", {"network_def#attention": "swin"}),
    "deformable": Experiment("deformable attention", {"network_def#attention": "deformable"}),
}


@dataclass(frozen=True)
class Table:
    """A table of the paper: its rows (experiment names), the row the paper claims is best, and the claim."""

    title: str
    rows: tuple[str, ...]
    best: str
    claim: str


TABLES: dict[str, Table] = {
    "II": Table(
        "Table II: losses on a U-Net (no transformer)",
        ("unet_ce", "unet_wce", "unet_focal", "unet_central"),
        "unet_central",
        "the central loss beats cross-entropy, weighted cross-entropy and focal loss (paired t-tests, p < 0.05)",
    ),
    "III": Table(
        "Table III: the exponent r of the central loss (CoorTransformer)",
        ("coor_r0", "coor_r1", "coor_r2", "coor_r3"),
        "coor_r2",
        "r = 2 is the best exponent",
    ),
    "IV": Table(
        "Table IV: attention kinds (central loss, r 2)",
        ("unet_central", "vanilla", "swin", "deformable", "coor_r2"),
        "coor_r2",
        "CoorTransformer beats no attention, vanilla self-attention, Swin and deformable attention",
    ),
}


# ----------------------------------------------------------------------------------------------------------- prepare
def reduce_image(path: str, factor: int) -> np.ndarray:
    """A greyscale picture box-averaged by ``factor`` per axis after cropping its far edges to a multiple of it:
    a (rows, columns) uint8 array."""
    from PIL import Image

    with Image.open(path) as picture:
        grey = np.asarray(picture.convert("L"), dtype=np.float64)
    rows, columns = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
    grey = grey[:rows, :columns].reshape(rows // factor, factor, columns // factor, factor).mean(axis=(1, 3))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def prepare(datalist: str, out: Path, factor: int) -> Path:
    """Write the reduced copy of every image of ``datalist`` and its landmarks, and its datalist; returns its path.

    A reduced pixel ``i`` averages source pixels ``f i .. f i + f - 1``, whose centres average to ``f i + (f - 1) / 2``:
    with the copy's spacing ``f s`` and its origin at its first pixel's centre, a source world point ``w`` is at
    ``w - s (f - 1) / 2`` in the copy's frame. The errors are distances, so moving both frames by that shift changes
    none of them.
    """
    from PIL import Image

    source = json.loads(Path(datalist).read_text())
    folder = out / "data"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "landmarks").mkdir(parents=True, exist_ok=True)
    reduced: dict = {}
    done: dict[str, dict] = {}
    for split in source:
        reduced[split] = []
        for resolved in load_datalist(datalist, split):
            stem = Path(resolved["image"]).stem
            if stem not in done:
                if "spacing" not in resolved:
                    raise InputError(f"{resolved['image']}: the reduced copy needs the datalist's 'spacing' (mm/px).")
                spacing = [float(s) for s in resolved["spacing"]]
                image_path = folder / "images" / f"{stem}.png"
                landmark_path = folder / "landmarks" / f"{stem}.csv"
                if not image_path.exists():
                    pixels = reduce_image(resolved["image"], factor)
                    Image.fromarray(pixels).save(image_path)
                landmarks = read_landmarks(resolved["landmarks"], spatial_dims=2)
                shift = np.array(spacing) * (factor - 1) / 2.0
                landmarks.coordinates = np.round(landmarks.coordinates - shift, 6)
                write_landmarks(landmark_path, landmarks, overwrite=True)
                done[stem] = {
                    "image": str(image_path.resolve()),
                    "landmarks": f"landmarks/{stem}.csv",
                    "spacing": [s * factor for s in spacing],
                }
            reduced[split].append(done[stem])
    path = folder / "datalist.json"
    path.write_text(json.dumps(reduced, indent=1) + "\n")
    return path


# --------------------------------------------------------------------------------------------------------------- run
def run_folder(out: Path, name: str, seed: int) -> Path:
    return out / "runs" / name / f"seed{seed}"


# what evaluation takes of a run's overlays: the grid and the network (the rest, the loss and the training schedule,
# belongs to training only)
EVALUATION_KEYS = ("grid_size", "grid_spacing", "sigma")


def configs(out: Path, folder: Path, evaluate: bool) -> list[str]:
    """The config files of a run. Training: the shipped training config (and the paper's size for the ``paper``
    protocol), the protocol overlay and the experiment's overlay. Evaluation: the shipped inference config with the
    same sizes, the evaluation overlay and what the run's overlays say of the grid and the network, as the first
    stage alone (no refiner, no trust checks: the study compares first stages)."""
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").exists() else {"protocol": "cpu"}
    sizes = PROTOCOL_CONFIGS[study["protocol"]]
    if not evaluate:
        return ["configs/train.json", *sizes, str(out / "protocol.json"), str(folder / "overlay.json")]
    settings = {"trust": False, "refine": False, "datalist_key": "test"}
    for path in (out / "protocol.json", folder / "overlay.json"):
        overlay = json.loads(path.read_text()) if path.exists() else {}
        settings.update({k: v for k, v in overlay.items() if k in EVALUATION_KEYS or k.startswith("network_def")})
        if "datalist" in overlay:
            settings["dataset_dir"] = overlay["datalist"]
    (folder / "evaluation.json").write_text(json.dumps(settings, indent=1) + "\n")
    return ["configs/inference.json", *sizes, "configs/evaluate.json", str(folder / "evaluation.json")]


def train_command(out: Path, folder: Path, seed: int) -> list[str]:
    command = [sys.executable, "-m", "monai.bundle", "run", "training"]
    command += ["--config_file", repr(configs(out, folder, evaluate=False))]
    command += ["--ckpt_dir", str(folder / "models"), "--output_dir", str(folder / "runs"), "--seed", str(seed)]
    return command + ["--overwrite", "true"]


def evaluate_command(out: Path, folder: Path) -> list[str]:
    command = [sys.executable, "-m", "monai.bundle", "run", "evaluating"]
    command += ["--config_file", repr(configs(out, folder, evaluate=True))]
    return command + ["--ckpt_dir", str(folder / "models"), "--output_dir", str(folder / "test"), "--overwrite", "true"]


def run_one(out: Path, name: str, seed: int) -> Path:
    """Train and evaluate one experiment at one seed, unless its folder holds a finished run."""
    folder = run_folder(out, name, seed)
    if (folder / "run.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overlay.json").write_text(json.dumps(EXPERIMENTS[name].overlay, indent=1) + "\n")
    times = {}
    for step, command in (("train", train_command(out, folder, seed)), ("evaluate", evaluate_command(out, folder))):
        print(" ".join(command), flush=True)
        start = time.perf_counter()
        with open(folder / f"{step}.log", "w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
        times[f"{step}_s"] = round(time.perf_counter() - start, 1)
    (folder / "run.json").write_text(json.dumps({"experiment": name, "seed": seed, **times}, indent=1) + "\n")
    return folder


def experiments_of(tables: list[str]) -> list[str]:
    """The experiments of the given tables, each once, in table order."""
    return list(dict.fromkeys(name for t in tables for name in TABLES[t].rows))


def run_study(
    out: Path, tables: list[str], seeds: list[int], protocol: str = "cpu", datalist: str | None = None
) -> None:
    """Run every experiment of ``tables`` at every seed, seed by seed, skipping finished runs.

    ``protocol``: ``"cpu"`` (:data:`PROTOCOL` on the reduced copy written by ``prepare``) or ``"paper"`` (the paper's
    size, ``configs/isbi2015_paper.json``, on ``datalist``'s original images: for a GPU).
    """
    if protocol == "cpu":
        reduced = out / "data" / "datalist.json"
        if not reduced.exists():
            raise MissingFileError(f"{reduced} does not exist: run `python -m experiments.ablation prepare` first.")
        overlay = {**PROTOCOL, "datalist": str(reduced.resolve())}
    elif protocol == "paper":
        if datalist is None or not Path(datalist).exists():
            raise MissingFileError(f"the paper protocol needs --datalist of the prepared images, got {datalist}.")
        overlay = {"datalist": str(Path(datalist).resolve())}
    else:
        raise InputError(f"protocol must be one of {tuple(PROTOCOL_CONFIGS)}, got {protocol!r}.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"protocol": protocol, "datalist": overlay["datalist"]}) + "\n")
    (out / "protocol.json").write_text(json.dumps(overlay, indent=1) + "\n")
    for seed in seeds:
        for name in experiments_of(tables):
            run_one(out, name, seed)


# ------------------------------------------------------------------------------------------------------------ report
@dataclass
class Run:
    """A finished run: per-image MRE (mm) of each test split, the validation curve and the times."""

    name: str
    seed: int
    per_image: dict[str, np.ndarray]
    landmark_errors: dict[str, np.ndarray]
    curve: list[tuple[int, float]]
    train_s: float


def validation_curve(events_folder: Path) -> list[tuple[int, float]]:
    """(epoch, validation MRE mm) pairs from a run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curve: dict[int, float] = {}
    for events in sorted(events_folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "val_mre" in accumulator.Tags()["scalars"]:
            curve.update({int(e.step): float(e.value) for e in accumulator.Scalars("val_mre")})
    return sorted(curve.items())


def study_protocol(out: Path) -> str:
    """The protocol a study was run with (``study.json``; ``"cpu"`` for studies that predate it)."""
    return json.loads((out / "study.json").read_text())["protocol"] if (out / "study.json").exists() else "cpu"


def study_datalist(out: Path) -> str:
    """The datalist a study's runs were evaluated on."""
    if (out / "study.json").exists():
        return json.loads((out / "study.json").read_text())["datalist"]
    return str(out / "data" / "datalist.json")


def load_runs(out: Path, names: list[str]) -> dict[str, list[Run]]:
    """The finished runs of each experiment, by seed."""
    stems = {split: datalist_stems(study_datalist(out), split) for split in SPLITS}
    runs: dict[str, list[Run]] = {}
    for name in names:
        runs[name] = []
        for record in sorted((out / "runs" / name).glob("seed*/run.json")):
            folder = record.parent
            info = json.loads(record.read_text())
            errors = {s: read_error_table(folder / "test" / "landmark_errors.csv", stems[s]) for s in SPLITS}
            runs[name].append(
                Run(
                    name,
                    int(info["seed"]),
                    {s: np.nanmean(e, axis=1) for s, e in errors.items()},
                    errors,
                    validation_curve(folder / "runs"),
                    float(info["train_s"]),
                )
            )
    return runs


def seed_mean(runs: list[Run], split: str, seeds: set[int] | None = None) -> np.ndarray:
    """Per-image MRE averaged over the runs' seeds, or over ``seeds`` of them (N,)."""
    return np.mean([r.per_image[split] for r in runs if seeds is None or r.seed in seeds], axis=0)


def paired_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sided paired t-test of per-image MREs, a - b."""
    t = stats.ttest_rel(a, b)
    return {"difference": float(np.mean(a - b)), "t": float(t.statistic), "p": float(t.pvalue)}


def verdict(best: str, others: list[str], tests: dict, alpha: float = 0.05) -> str:
    """``confirmed``: the claimed-best row is lower than every other row on both splits, each with p < alpha;
    ``refuted``: some other row is lower than it with p < alpha on a split; ``inconclusive`` otherwise.
    ``tests[(other, split)]`` holds the paired test of other - best."""
    if any(tests[(o, s)]["difference"] < 0 and tests[(o, s)]["p"] < alpha for o in others for s in SPLITS):
        return "refuted"
    if all(tests[(o, s)]["difference"] > 0 and tests[(o, s)]["p"] < alpha for o in others for s in SPLITS):
        return "confirmed"
    return "inconclusive"


def convergence(runs: dict[str, list[Run]], names: list[str], best: str) -> tuple[dict, str]:
    """Fig. 9: each kind's mean validation MRE over the validation epochs (the area under its curve, per epoch), per
    seed. ``confirmed`` if the claimed-fastest kind has the lowest area at every seed run by all kinds, ``refuted`` if
    another kind is lower at every such seed, ``inconclusive`` otherwise."""
    seeds = sorted(set.intersection(*[{r.seed for r in runs[n]} for n in names])) if names else []
    area = {n: {r.seed: float(np.mean([v for _, v in r.curve])) for r in runs[n] if r.seed in seeds} for n in names}
    if not seeds:
        return area, "inconclusive"
    lowest = [min(names, key=lambda n: area[n][seed]) for seed in seeds]
    if all(w == best for w in lowest):
        return area, "confirmed"
    if any(all(area[o][seed] < area[best][seed] for seed in seeds) for o in names if o != best):
        return area, "refuted"
    return area, "inconclusive"


def table_markdown(key: str, runs: dict[str, list[Run]]) -> tuple[list[str], str]:
    """The markdown of one table and its verdict."""
    table = TABLES[key]
    present = [n for n in table.rows if runs.get(n)]
    lines = [f"### {table.title}", "", f"The paper's claim: {table.claim}.", ""]
    lines.append(
        "| row | seeds | Test1 MRE (mm) | Test1 SDR 2 mm | Test2 MRE (mm) | Test2 SDR 2 mm "
        "| Test1: row - best (mm), p | Test2: row - best (mm), p | train (s) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    tests = {}
    for name in present:
        rs = runs[name]
        cells = [f"{EXPERIMENTS[name].label}{' (claimed best)' if name == table.best else ''}", str(len(rs))]
        for split in SPLITS:
            mres = [error_figures(r.landmark_errors[split])["mre"] for r in rs]
            sdrs = [error_figures(r.landmark_errors[split])["sdr_2mm"] for r in rs]
            cells += [f"{np.mean(mres):.3f} ± {np.std(mres):.3f}", f"{np.mean(sdrs):.2f} %"]
        for split in SPLITS:
            if name == table.best or not runs.get(table.best):
                cells.append("")
                continue
            common = {r.seed for r in rs} & {r.seed for r in runs[table.best]}  # paired by seed too
            tests[(name, split)] = paired_test(seed_mean(rs, split, common), seed_mean(runs[table.best], split, common))
            cells.append(f"{tests[(name, split)]['difference']:+.3f}, p = {tests[(name, split)]['p']:.3g}")
        cells.append(f"{np.mean([r.train_s for r in rs]):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    others = [n for n in present if n != table.best]
    complete = table.best in present and len(present) == len(table.rows)
    result = verdict(table.best, others, tests) if complete else "not run"
    lines += ["", f"**Verdict: {result}.**", ""]
    return lines, result


def report(out: Path, tables: list[str], doc: Path, figures: Path) -> dict[str, str]:
    """Write ``doc`` (markdown) and the two figures; return the verdicts."""
    names = experiments_of(tables)
    runs = load_runs(out, names)
    header = DOC_HEADER.format(**PROTOCOL, pos_weight=EXPERIMENTS["unet_wce"].overlay["loss#pos_weight"])
    if study_protocol(out) == "paper":
        start, end = header.index("## Protocol"), header.index("- Rows:")
        header = header[:start] + PAPER_PROTOCOL + header[end:]
    lines = [header, ""]
    verdicts = {}
    for key in tables:
        table_lines, verdicts[key] = table_markdown(key, runs)
        lines += table_lines
    if "IV" in tables:
        kinds = [n for n in TABLES["IV"].rows if runs.get(n)]
        area, verdicts["Fig. 9"] = convergence(runs, kinds, TABLES["IV"].best)
        if len(kinds) < len(TABLES["IV"].rows):
            verdicts["Fig. 9"] = "not run"
        lines += ["### Fig. 9: convergence (validation MRE during training)", ""]
        lines += ["The paper's claim: CoorTransformer converges fastest.", ""]
        epochs = sorted({e for n in kinds for r in runs[n] for e, _ in r.curve})
        lines.append("| row | area: mean validation MRE over the run (mm), per seed | " + " | ".join(
            f"epoch {e}" for e in epochs) + " |")  # fmt: skip
        lines.append("|---" * (len(epochs) + 2) + "|")
        for n in kinds:
            mean_curve = {e: np.mean([dict(r.curve)[e] for r in runs[n] if e in dict(r.curve)]) for e in epochs}
            per_seed = ", ".join(f"{v:.1f}" for _, v in sorted(area[n].items()))
            lines.append(f"| {EXPERIMENTS[n].label} | {per_seed} | " + " | ".join(
                f"{mean_curve[e]:.1f}" for e in epochs) + " |")  # fmt: skip
        lines += ["", "(Epoch columns: validation MRE in mm, mean over the seeds.)", ""]
        lines += [f"**Verdict: {verdicts['Fig. 9']}.**", ""]
    figures.mkdir(parents=True, exist_ok=True)
    if "II" in tables and any(runs.get(n) for n in TABLES["II"].rows):
        box_plot(runs, list(TABLES["II"].rows), figures / "ablation_losses.png")
        lines += [f"![per-image MRE per loss]({os.path.relpath(figures / 'ablation_losses.png', doc.parent)})", ""]
    if "IV" in tables and any(runs.get(n) for n in TABLES["IV"].rows):
        curve_plot(runs, list(TABLES["IV"].rows), figures / "ablation_convergence.png")
        link = os.path.relpath(figures / "ablation_convergence.png", doc.parent)
        lines += [f"![validation MRE per attention kind]({link})", ""]
    doc.write_text("\n".join(lines))
    return verdicts


def box_plot(runs: dict[str, list[Run]], names: list[str], path: Path) -> None:
    """Fig. 5: box plots of per-image MRE (mean over seeds) per row, Test1 and Test2 side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in names if runs.get(n)]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, split in zip(axes, SPLITS):
        axis.boxplot([seed_mean(runs[n], split) for n in names], showfliers=True)
        labels = [textwrap.fill(EXPERIMENTS[n].label.split(", ")[-1], 14) for n in names]
        axis.set_xticks(range(1, len(names) + 1), labels)
        axis.set_title(f"{split}: per-image MRE, mean over seeds")
        axis.set_ylabel("mm")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def curve_plot(runs: dict[str, list[Run]], names: list[str], path: Path) -> None:
    """Fig. 9: validation MRE per epoch per row (mean over seeds; the band spans the seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for n in [n for n in names if runs.get(n)]:
        epochs = sorted({e for r in runs[n] for e, _ in r.curve})
        values = np.array([[dict(r.curve).get(e, np.nan) for e in epochs] for r in runs[n]])
        axis.plot(epochs, np.nanmean(values, 0), label=EXPERIMENTS[n].label)
        axis.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), alpha=0.15)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation MRE (mm)")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="write the reduced copy of the images and its datalist")
    prep.add_argument("--datalist", default="data/isbi2015/datalist.json")
    prep.add_argument("--out", default="runs/ablation")
    prep.add_argument("--factor", type=int, default=4)
    study = commands.add_parser("run", help="train and evaluate every run not yet finished")
    study.add_argument("--out", default="runs/ablation")
    study.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    study.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    study.add_argument("--protocol", default="cpu", choices=list(PROTOCOL_CONFIGS))
    study.add_argument("--datalist", help="the prepared images' datalist, for --protocol paper")
    report_ = commands.add_parser("report", help="write the tables, t-tests, verdicts and figures")
    report_.add_argument("--out", default="runs/ablation")
    report_.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    report_.add_argument("--doc", default="docs/studies/ablation.md")
    report_.add_argument("--figures", default="docs/studies/figures")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(prepare(args.datalist, Path(args.out), args.factor))
    elif args.command == "run":
        run_study(Path(args.out), args.tables, args.seeds, args.protocol, args.datalist)
    else:
        report(Path(args.out), args.tables, Path(args.doc), Path(args.figures))


if __name__ == "__main__":
    run_main(main)
