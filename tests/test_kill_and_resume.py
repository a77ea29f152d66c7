"""A training killed mid-run resumes where its last checkpoint left it, and ends with the same weights as a training
that was never stopped (same machine, same seed, num_workers 0)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from tools.make_demo_data import write as write_demo_data

pytestmark = pytest.mark.slow  # three trainings in subprocesses

EPOCHS = 4
SMALL = ["--grid_size", "[32,32]", "--network_def#features", "[8,16,32,64]", "--val_interval", "1"]


def _command(data: Path, run: Path, *extra: str, overlays: tuple[str, ...] = ()) -> list[str]:
    configs = str([str(REPO_ROOT / "configs" / c) for c in ("train.json", "demo.json", *overlays)])
    return [
        sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", configs, "--dataset_dir", str(data),
        "--output_dir", str(run / "runs"), "--ckpt_dir", str(run / "models"), "--max_epochs", str(EPOCHS), *SMALL,
        *extra,
    ]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _final_weights(run: Path) -> dict:
    checkpoint = torch.load(run / "runs" / "checkpoints" / f"resume_checkpoint_epoch={EPOCHS}.pt", weights_only=True)
    return checkpoint["model"]


@pytest.mark.parametrize("overlays", [(), ("adaptive_sigma.json",)], ids=["fixed_sigma", "adaptive_sigma"])
def test_a_killed_training_resumes_and_ends_as_an_unbroken_one(tmp_path, overlays):
    """With the adaptive-sigma overlay (a decision every epoch), the resumed run also takes the same sigma decisions:
    the agent's weights, generator and windows are in the checkpoint, and rows the killed run logged after its last
    checkpoint are not kept twice."""
    data = tmp_path / "data"
    write_demo_data(data, seed=1, counts={"training": 4, "validation": 2, "test": 2})

    unbroken = subprocess.run(
        _command(data, tmp_path / "a", overlays=overlays), capture_output=True, text=True, env=_env(), timeout=600
    )
    assert unbroken.returncode == 0, unbroken.stdout[-2000:] + unbroken.stderr[-2000:]

    killed = subprocess.Popen(
        _command(data, tmp_path / "b", overlays=overlays),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    seen = []
    for line in killed.stdout:  # kill it as soon as epoch 2's checkpoint is written, in the middle of epoch 3
        seen.append(line)
        if "Saved checkpoint at epoch: 2" in line:
            killed.send_signal(signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "".join(seen[-20:])

    resumed = subprocess.run(
        _command(data, tmp_path / "b", "--resume", "true", overlays=overlays),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    started = [int(e) for e in re.findall(r"validation at epoch (\d+)/", resumed.stdout + resumed.stderr)]
    assert started[0] >= 3 and started[-1] == EPOCHS  # the epoch count continues; nothing is trained twice

    expected, actual = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    best_a = torch.load(tmp_path / "a" / "models" / "model.pt", weights_only=True)
    best_b = torch.load(tmp_path / "b" / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    if overlays:
        history_a = (tmp_path / "a" / "runs" / "sigma_history.csv").read_text()
        history_b = (tmp_path / "b" / "runs" / "sigma_history.csv").read_text()
        assert history_a == history_b
        assert len(history_a.splitlines()) == 1 + EPOCHS * 6  # a header, then 6 landmarks per epoch's decision
        assert (tmp_path / "a" / "runs" / "sigma.json").read_text() == (
            tmp_path / "b" / "runs" / "sigma.json"
        ).read_text()
