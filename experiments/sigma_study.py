"""Fixed sigma vs the reinforcement-learning agent vs AdaLoss on ISBI 2015: train each arm, evaluate it on Test1 and
Test2, compare per-image MRE with paired t-tests, and write the results as JSON and markdown.

Protocol (each arm the same but for its sigma policy): fine-tune the shipped model (``configs/finetune.json``) for
``--epochs`` epochs at a constant learning rate ``--learning_rate``, validating every ``--val_interval`` epochs on
the validation split (images 131-150), which alone selects each arm's model; the test splits are evaluated once, at
the end, against the mean of the two doctors. The arms:

- ``fixed``: the configs as shipped (sigma 2 grid pixels for every landmark, no overlay);
- ``rl``: ``configs/adaptive_sigma.json`` with the agent (``sigma_policy rl``), a decision every validation;
- ``adaloss``: the same overlay with ``sigma_policy adaloss``, starting wider (``--adaloss_sigma``), as AdaLoss does.

The adaptive arms are evaluated with the sigmas their selected model was trained with (``sigma.json``'s
``best_sigma``), so that DARK's blur follows them.

A run that completed (its resume checkpoint of the last epoch exists) is not run again, so the study resumes arm by
arm. ``--pool`` compares finished studies of several seeds (per-image MRE averaged over the seeds). Usage::

    python -m experiments.sigma_study --out runs/sigma_study --epochs 40 --val_interval 2 --seed 0
    python -m experiments.sigma_study --out runs/sigma_study_seed1 --epochs 40 --val_interval 2 --seed 1 --arms fixed rl
    python -m experiments.sigma_study --pool runs/sigma_study runs/sigma_study_seed1 --arms fixed rl
    python -m experiments.sigma_study --trajectory runs/sigma_study/rl/runs/sigma_history.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from bundle.data import datalist_stems
from bundle.error_line import run_main
from bundle.metrics import error_figures, read_error_table

ARMS = ("fixed", "rl", "adaloss")
SPLITS = ("test1", "test2")


def train_command(arm: str, folder: Path, args: argparse.Namespace) -> list[str]:
    configs = ["configs/train.json", "configs/finetune.json"] + (
        [] if arm == "fixed" else ["configs/adaptive_sigma.json"]
    )
    command = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", repr(configs)]
    command += ["--ckpt_dir", str(folder / "models"), "--output_dir", str(folder / "runs")]
    command += ["--datalist", args.datalist, "--max_epochs", str(args.epochs), "--val_interval", str(args.val_interval)]
    command += ["--learning_rate", str(args.learning_rate), "--max_learning_rate", str(args.learning_rate)]
    command += ["--seed", str(args.seed)]
    if arm != "fixed":
        command += ["--sigma_policy", arm]
    if arm == "adaloss":
        command += ["--sigma", str(args.adaloss_sigma)]
    return command


def evaluate_command(arm: str, folder: Path, args: argparse.Namespace) -> list[str]:
    configs = ["configs/inference.json", "configs/evaluate.json"]  # the first stage alone, as it was fine-tuned
    command = [sys.executable, "-m", "monai.bundle", "run", "evaluating", "--config_file", repr(configs)]
    command += ["--ckpt_dir", str(folder / "models"), "--output_dir", str(folder / "test"), "--overwrite", "true"]
    command += ["--dataset_dir", args.datalist, "--datalist_key", "test", "--trust", "false", "--refine", "false"]
    if arm != "fixed":
        sigma = json.loads((folder / "runs" / "sigma.json").read_text())["best_sigma"]
        command += ["--sigma", json.dumps(sigma), "--heatmap_codec#blur_sigma", "sigma"]
    return command


def run(command: list[str], log: Path) -> None:
    print(" ".join(command), flush=True)
    with open(log, "w") as f:
        subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, check=True)


def compare(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    results: dict = {"protocol": vars(args), "arms": {}, "tests": {}}
    per_image: dict = {}
    for arm in args.arms:
        errors_csv = out / arm / "test" / "landmark_errors.csv"
        arm_result = {}
        for split in SPLITS:
            errors = read_error_table(errors_csv, datalist_stems(args.datalist, split))
            arm_result[split] = error_figures(errors)
            per_image[(arm, split)] = np.nanmean(errors, axis=1)
        history = out / arm / "runs" / "sigma.json"
        if history.exists():
            arm_result["sigma"] = json.loads(history.read_text())
        results["arms"][arm] = arm_result
    for arm in args.arms:
        if arm == "fixed" or "fixed" not in args.arms:
            continue
        for split in SPLITS:
            a, b = per_image[(arm, split)], per_image[("fixed", split)]
            t = stats.ttest_rel(a, b)
            results["tests"][f"{arm}_vs_fixed_{split}"] = {
                "mean_difference_mm": float((a - b).mean()),
                "t": float(t.statistic),
                "p": float(t.pvalue),
                "images": int(len(a)),
            }
    return results


def markdown(results: dict) -> str:
    lines = [
        "| arm | split | MRE ± SD (mm) | SDR 2 mm | SDR 2.5 mm | SDR 3 mm | SDR 4 mm |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, result in results["arms"].items():
        for split in SPLITS:
            r = result[split]
            lines.append(
                f"| {arm} | {split} | {r['mre']:.3f} ± {r['sd']:.2f} | {r['sdr_2mm']:.2f} % | {r['sdr_2.5mm']:.2f} % "
                f"| {r['sdr_3mm']:.2f} % | {r['sdr_4mm']:.2f} % |"
            )
    lines += ["", "| comparison | mean per-image MRE difference (mm) | t | p (paired, two-sided) | images |"]
    lines.append("|---|---|---|---|---|")
    for name, t in results["tests"].items():
        lines.append(f"| {name} | {t['mean_difference_mm']:+.4f} | {t['t']:.3f} | {t['p']:.4f} | {t['images']} |")
    return "\n".join(lines) + "\n"


def pool(folders: list[str], arms: list[str], datalist: str) -> str:
    """Markdown: per arm and split, the MRE of each image averaged over the seeds' runs (one study folder per seed),
    and paired t-tests of those per-image means against the fixed arm."""
    lines = ["| arm | split | seeds | MRE (mm), per-image mean over seeds | vs fixed: mean difference (mm) | t | p |"]
    lines.append("|---|---|---|---|---|---|---|")
    for split in SPLITS:
        stems = datalist_stems(datalist, split)
        means = {
            arm: np.mean(
                [
                    np.nanmean(read_error_table(Path(f) / arm / "test" / "landmark_errors.csv", stems), 1)
                    for f in folders
                ],
                axis=0,
            )
            for arm in arms
        }
        for arm in arms:
            row = f"| {arm} | {split} | {len(folders)} | {means[arm].mean():.3f} |"
            if arm != "fixed" and "fixed" in means:
                t = stats.ttest_rel(means[arm], means["fixed"])
                row += f" {(means[arm] - means['fixed']).mean():+.4f} | {t.statistic:.3f} | {t.pvalue:.4f} |"
            else:
                row += " | | |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def trajectory(history_csv: str, every: int = 4) -> str:
    """Markdown: each landmark's sigma (grid pixels) at the start and after every ``every``-th decision epoch, from a
    run's ``sigma_history.csv``, with the epoch it froze at (``-``: never)."""
    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = sorted({int(r["epoch"]) for r in rows})
    shown = [e for i, e in enumerate(epochs, 1) if i % every == 0 or e == epochs[-1]]
    lines = ["| landmark | start | " + " | ".join(f"epoch {e}" for e in shown) + " | frozen at |"]
    lines.append("|---" * (len(shown) + 3) + "|")
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = {int(r["epoch"]): r for r in rows if r["name"] == name}
        frozen = next((str(e) for e in sorted(mine) if mine[e]["frozen"] == "1"), "-")
        start = float(mine[min(mine)]["sigma_before"])
        values = " | ".join(f"{float(mine[e]['sigma_after']):.2f}" for e in shown)
        lines.append(f"| {name} | {start:.2f} | {values} | {frozen} |")
    return "\n".join(lines) + "\n"


def plot_sigma_history(csv_path: str | Path, png_path: str | Path) -> None:
    """Plot sigma after each decision against the epoch, one line per landmark, from a run's ``sigma_history.csv``
    (:class:`bundle.handlers.SigmaHistoryWriter`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, tuple[list[int], list[float]]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            epochs, sigmas = series.setdefault(row["name"], ([], []))
            if not epochs:
                epochs.append(0)
                sigmas.append(float(row["sigma_before"]))
            epochs.append(int(row["epoch"]))
            sigmas.append(float(row["sigma_after"]))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, (epochs, sigmas) in series.items():
        axes.step(epochs, sigmas, where="post", label=name, linewidth=1)
    axes.set_xlabel("epoch")
    axes.set_ylabel("sigma (grid pixels)")
    axes.set_title("Heatmap sigma per landmark")
    if len(series) <= 20:
        axes.legend(fontsize=6, ncol=2, loc="best")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/sigma_study")
    parser.add_argument("--datalist", default="data/isbi2015/datalist.json")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--val_interval", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--adaloss_sigma", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", nargs="+", help="study folders of finished runs, one per seed: compare them pooled")
    parser.add_argument("--trajectory", help="a run's sigma_history.csv: print each landmark's sigma over the epochs")
    parser.add_argument("--plot", nargs=2, metavar=("HISTORY_CSV", "PNG"), help="plot a run's sigma history")
    args = parser.parse_args(argv)
    if args.trajectory:
        print(trajectory(args.trajectory))
        return
    if args.plot:
        plot_sigma_history(*args.plot)
        return
    if args.pool:
        print(pool(args.pool, args.arms, args.datalist))
        return
    out = Path(args.out)
    for arm in args.arms:
        folder = out / arm
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "runs" / "checkpoints" / f"resume_checkpoint_epoch={args.epochs}.pt").exists():
            run(train_command(arm, folder, args), folder / "train.log")
        if not (folder / "test" / "landmark_errors.csv").exists():
            run(evaluate_command(arm, folder, args), folder / "evaluate.log")
    results = compare(args)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    run_main(main)
