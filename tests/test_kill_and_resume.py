"""A training killed mid-run resumes where its last checkpoint left it, and ends with the same weights as a training
that was never stopped (same machine, same seed, num_workers 0)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zipfile
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


def _whole(checkpoint: Path) -> bool:
    return checkpoint.exists() and zipfile.is_zipfile(checkpoint)


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

    # kill it as soon as epoch 2's checkpoint is whole on disk (MONAI writes it in place; torch.save's zip archive
    # ends with its directory, so a zip file is a complete one): in epoch 3
    checkpoint = tmp_path / "b" / "runs" / "checkpoints" / "resume_checkpoint_epoch=2.pt"
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        killed = subprocess.Popen(
            _command(data, tmp_path / "b", overlays=overlays), stdout=out, stderr=subprocess.STDOUT, env=_env()
        )
        deadline = time.monotonic() + 600
        while killed.poll() is None and not _whole(checkpoint) and time.monotonic() < deadline:
            time.sleep(0.002)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, log.read_text()[-3000:]

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
