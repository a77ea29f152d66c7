"""experiments/sigma_study.py: the commands it runs per arm, and its tables and paired t-tests on written error files."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy import stats

from experiments import sigma_study

NAMES = ["a", "b"]


def _study(tmp_path, errors: dict[str, np.ndarray], folder: str = "study") -> tuple[str, str]:
    """A datalist with test1 (3 images) and test2 (2 images), and one landmark_errors.csv per arm."""
    stems = ["151", "152", "153", "301", "302"]
    datalist = tmp_path / "datalist.json"
    entries = [{"image": f"{s}.jpg", "landmarks": f"{s}.csv"} for s in stems]
    datalist.write_text(json.dumps({"test1": entries[:3], "test2": entries[3:]}))
    for arm, table in errors.items():
        path = tmp_path / folder / arm / "test" / "landmark_errors.csv"
        path.parent.mkdir(parents=True)
        rows = ["image," + ",".join(NAMES)] + [
            f"/x/{s}.jpg," + ",".join(f"{e:.4f}" for e in r) for s, r in zip(stems, table)
        ]
        path.write_text("\n".join(rows) + "\n")
    return str(datalist), str(tmp_path / folder)


def _args(datalist: str, out: str, arms=("fixed", "rl")) -> argparse.Namespace:
    return argparse.Namespace(out=out, datalist=datalist, arms=list(arms), epochs=4, val_interval=2,
                              learning_rate=1e-4, adaloss_sigma=3.0, seed=0)  # fmt: skip


def test_tables_and_paired_t_tests(tmp_path):
    fixed = np.array([[1.0, 3.0], [2.0, 2.0], [1.5, 0.5], [4.0, 2.0], [1.0, 1.0]])
    rl = fixed - np.array([[0.2, 0.0], [0.1, 0.1], [0.0, 0.3], [1.0, 0.0], [0.2, 0.2]])
    datalist, out = _study(tmp_path, {"fixed": fixed, "rl": rl})
    results = sigma_study.compare(_args(datalist, out))
    assert results["arms"]["fixed"]["test1"]["mre"] == pytest.approx(fixed[:3].mean())
    assert results["arms"]["fixed"]["test2"]["sdr_2mm"] == pytest.approx(75.0)  # 4.0 is the one miss of four
    expected = stats.ttest_rel(rl[:3].mean(1), fixed[:3].mean(1))
    test = results["tests"]["rl_vs_fixed_test1"]
    assert test["p"] == pytest.approx(expected.pvalue) and test["t"] == pytest.approx(expected.statistic)
    assert test["mean_difference_mm"] == pytest.approx(-0.7 / 6) and test["images"] == 3
    table = sigma_study.markdown(results)
    assert "| rl | test2 |" in table and "rl_vs_fixed_test2" in table


def test_pooling_averages_each_image_over_the_seeds(tmp_path):
    fixed = np.ones((5, 2))
    rl0, rl1 = fixed * np.linspace(0.5, 1.0, 5)[:, None], fixed * np.linspace(0.9, 0.6, 5)[:, None]
    datalist, first = _study(tmp_path, {"fixed": fixed, "rl": rl0}, "seed0")
    _, second = _study(tmp_path, {"fixed": fixed * 1.2, "rl": rl1}, "seed1")
    table = sigma_study.pool([first, second], ["fixed", "rl"], datalist)
    pooled_rl, pooled_fixed = ((rl0 + rl1) / 2)[:3].mean(1), np.full(3, 1.1)
    t = stats.ttest_rel(pooled_rl, pooled_fixed)
    assert "| fixed | test1 | 2 | 1.100 | | | |" in table
    assert f"| rl | test1 | 2 | {pooled_rl.mean():.3f} | {(pooled_rl - 1.1).mean():+.4f} | {t.statistic:.3f} |" in table


def test_the_arms_differ_only_in_their_sigma_policy(tmp_path):
    args = _args("d.json", str(tmp_path), arms=("fixed", "rl", "adaloss"))
    fixed, rl, adaloss = (sigma_study.train_command(a, tmp_path / a, args) for a in ("fixed", "rl", "adaloss"))
    assert "adaptive_sigma.json" not in fixed[6] and "finetune.json" in fixed[6]
    assert rl[6] == adaloss[6] == fixed[6][:-1] + ", 'configs/adaptive_sigma.json']"
    assert rl[:6] == fixed[:6] and rl[7:-2] == [x.replace("/fixed/", "/rl/") for x in fixed[7:]]
    assert rl[-2:] == ["--sigma_policy", "rl"] and adaloss[-4:] == ["--sigma_policy", "adaloss", "--sigma", "3.0"]


def test_adaptive_arms_are_evaluated_with_the_sigmas_their_model_was_trained_with(tmp_path):
    runs = tmp_path / "rl" / "runs"
    runs.mkdir(parents=True)
    (runs / "sigma.json").write_text(json.dumps({"sigma": [3.0, 1.0], "best_sigma": [2.5, 1.6]}))
    command = sigma_study.evaluate_command("rl", tmp_path / "rl", _args("d.json", str(tmp_path)))
    assert json.loads(command[command.index("--sigma") + 1]) == [2.5, 1.6]
    assert command[command.index("--heatmap_codec#blur_sigma") + 1] == "sigma"
    assert "--sigma" not in sigma_study.evaluate_command("fixed", tmp_path / "fixed", _args("d.json", str(tmp_path)))


def test_the_trajectory_table_shows_sigma_over_the_epochs_and_the_freeze(tmp_path):
    history = tmp_path / "sigma_history.csv"
    rows = ["epoch,landmark,name,sigma_before,sigma_after,action,reward,val_error_mm,train_loss,train_loss_var,frozen"]
    for epoch, (a, b, frozen) in zip((2, 4, 6, 8), [(2.0, 2.5, 0), (2.5, 3.0, 0), (3.0, 2.5, 1), (2.5, 2.5, 1)]):
        rows.append(f"{epoch},0,sella,{a},{b},widen,,1,1,0,{frozen}")
    history.write_text("\n".join(rows) + "\n")
    table = sigma_study.trajectory(str(history), every=2)
    assert "| landmark | start | epoch 4 | epoch 8 | frozen at |" in table
    assert "| sella | 2.00 | 3.00 | 2.50 | 6 |" in table
