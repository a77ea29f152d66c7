"""A corpus of bad inputs, each made here (nothing from ../shared): every one ends the run as a user runs it, from the
command line, with a non-zero exit, one readable last line (``error: ...``) naming the file or entry, and nothing
written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO_ROOT
from tools.make_demo_data import write as write_demo_data

pytestmark = pytest.mark.slow  # each case runs the command line

SMALL = ["--grid_size", "[32,32]", "--network_def#features", "[8,16,32,64]", "--max_epochs", "1", "--val_interval", "1"]


def _png(path: Path, size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _nifti(path: Path, shape, spacing, nan_at=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.zeros(shape, np.float32)
    if nan_at is not None:
        values[nan_at] = np.nan
    nib.save(nib.Nifti1Image(values, np.diag([*spacing] + [1.0] * (4 - len(spacing)))), path)
    return path


def _text(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


def _datalist(root: Path, entries: list, key: str = "test") -> Path:
    return _text(root / "datalist.json", json.dumps({key: entries}))


def _demo(root: Path) -> Path:
    data = root / "data"
    write_demo_data(data, seed=1, counts={"training": 4, "validation": 2, "test": 2})
    return data


def _break_training(data: Path, change) -> None:
    datalist = json.loads((data / "datalist.json").read_text())
    change(data, datalist["training"][1])
    (data / "datalist.json").write_text(json.dumps(datalist))


def _edit_landmarks(line: int, text: str):
    def change(data, entry):
        path = data / entry["landmarks"]
        lines = path.read_text().splitlines()
        lines[line] = text
        path.write_text("\n".join(lines) + "\n")

    return change


def _drop_last_landmark(data, entry):
    path = data / entry["landmarks"]
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")


def _set(key, value):
    def change(data, entry):
        entry[key] = value

    return change


def _folder(root: Path, *names: str) -> Path:
    for name in names:
        _png(root / "in" / name)
    return root / "in"


def _empty_folder(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


def _truncated_jpeg(root: Path) -> Path:
    path = root / "in" / "cut.jpg"
    path.parent.mkdir(parents=True)
    Image.open(_png(root / "whole.png", (200, 160))).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path.parent


def _existing_output(root: Path) -> Path:
    _text(root / "out" / "a.json", "{}")
    return _folder(root, "a.png")


# Inference cases: builder(root) -> (--dataset_dir, extra arguments); the expected last line as a regex.
INFERENCE = {
    "missing folder": (lambda r: (r / "nowhere", []), r"nowhere: not found \(give a folder of images"),
    "empty folder": (lambda r: (_empty_folder(r), []), r"empty: no images \(looked for \.png"),
    "folder is a text file": (
        lambda r: (_text(r / "list.txt", "a,b\n"), []),
        r"list\.txt: cannot read the datalist \(JSONDecodeError",
    ),
    "folder is a binary file": (
        lambda r: (_text(r / "x.bin", bytes(range(256))), []),
        r"x\.bin: cannot read the datalist \(UnicodeDecodeError",
    ),
    "datalist without the key": (
        lambda r: (_datalist(r, [{"image": "a.png"}], key="training"), []),
        r"datalist\.json: no non-empty list 'test' \(it has \['training'\]\)",
    ),
    "entry without image": (
        lambda r: (_datalist(r, [{"spacing": [0.1, 0.1]}]), []),
        r"datalist\.json: entry test\[0\] has no 'image'",
    ),
    "image file missing": (
        lambda r: (_datalist(r, [{"image": "gone.png"}]), []),
        r"inference\[0\] \(.*gone\.png\): image file not found",
    ),
    "truncated jpeg": (lambda r: (_truncated_jpeg(r), []), r"inference\[0\] \(.*cut\.jpg\): the image cannot be read"),
    "not an image": (
        lambda r: (_text(r / "in" / "fake.png", "text").parent, []),
        r"inference\[0\] \(.*fake\.png\): the image cannot be read",
    ),
    "tiny image": (
        lambda r: (_png(r / "in" / "tiny.png", (16, 16)).parent, []),
        r"inference\[0\] \(.*tiny\.png\): the image is \(16, 16\) pixels; at least 32 per axis",
    ),
    "3d volume for the 2d model": (
        lambda r: (_nifti(r / "in" / "vol.nii.gz", (40, 40, 40), (1.0, 1.0, 1.0)).parent, []),
        r"inference\[0\] \(.*vol\.nii\.gz\): .*a 3D image of shape \(40, 40, 40\); this model takes 2D images",
    ),
    "a nan pixel": (
        lambda r: (_datalist(r, [{"image": str(_nifti(r / "n.nii.gz", (64, 64), (0.25, 0.25), nan_at=(3, 5)))}]), []),
        r"inference\[0\] \(.*n\.nii\.gz\): .*1 of 4096 values are NaN or infinite",
    ),
    "negative spacing": (
        lambda r: (_datalist(r, [{"image": str(_png(r / "a.png")), "spacing": [0.1, -0.1]}]), []),
        r"inference\[0\] \(.*a\.png\): .*spacing must be 2 positive numbers, got \[0\.1, -0\.1\]",
    ),
    "spacing of the wrong length": (
        lambda r: (_folder(r, "a.png"), ["--spacing", "[0.1]"]),
        r"inference\[0\] \(.*a\.png\): .*spacing must be 2 positive numbers, got \[0\.1\]",
    ),
    "spacing that contradicts the file": (
        lambda r: (
            _datalist(r, [{"image": str(_nifti(r / "t.nii.gz", (64, 64), (0.25, 0.25))), "spacing": [0.5, 0.5]}]),
            [],
        ),
        r"inference\[0\] \(.*t\.nii\.gz\): .*datalist spacing \[0\.5, 0\.5\] disagrees with the file's \[0\.25, 0\.25\]",
    ),
    "names that collide": (
        lambda r: (_folder(r, "scan.png", "scan.jpg"), []),
        r"in: these images would write the same output files \(scan: .*scan\.jpg, .*scan\.png\)",
    ),
    "outputs that exist": (
        lambda r: (_existing_output(r), []),
        r"out/a\.json exists: pass --overwrite true or another --output_dir",
    ),
    "a switch that is not a boolean": (
        lambda r: (_folder(r, "a.png"), ["--overwrite", "maybe"]),
        r"overwrite must be true or false \(or 1 / 0\), got 'maybe'",
    ),
}

# Training cases (the demo data, one entry broken): change(data, entry), extra arguments, expected last line.
TRAINING = {
    "training image missing": (
        _set("image", "images/nope.png"),
        [],
        r"training\[1\] \(.*nope\.png\): image file not found",
    ),
    "landmark file missing": (
        _set("landmarks", "landmarks/nope.csv"),
        [],
        r"training\[1\] \(.*\): .*nope\.csv: file not found",
    ),
    "landmark format unknown": (
        _set("landmarks", "landmarks/002.xyz"),
        [],
        r"training\[1\] \(.*\): .*002\.xyz: unknown landmark file suffix",
    ),
    "a landmark too few": (_drop_last_landmark, [], r"training\[1\] \(.*\): .*has 5 landmarks; expected 6"),
    "a nan landmark": (_edit_landmarks(2, "triangle_left,nan,3"), [], r"training\[1\] \(.*\): .*line 3: x is 'nan'"),
    "a landmark outside the image": (
        _edit_landmarks(2, "triangle_left,500,3"),
        [],
        r"training\[1\] \(.*\): landmarks \['triangle_left'\] lie outside",
    ),
    "no spacing for a png": (
        _set("spacing", None),
        [],
        r"training\[1\] \(.*\.png\): this format has no pixel spacing; give 'spacing'",
    ),
    "resume with nothing to resume": (lambda d, e: None, ["--resume", "true"], r"no checkpoint to resume from in .*"),
    "resume that is not a boolean": (lambda d, e: None, ["--resume", "no"], r"resume must be true or false"),
}


def _bundle(workflow: str, configs: list[str], args: list, cwd: Path) -> subprocess.CompletedProcess:
    config = str([str(REPO_ROOT / "configs" / c) for c in configs])
    command = [sys.executable, "-m", "monai.bundle", "run", workflow, "--config_file", config, *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    )


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_the_corpus_has_at_least_twenty_kinds():
    assert len(INFERENCE) + len(TRAINING) >= 20


@pytest.mark.parametrize("case", sorted(INFERENCE))
def test_bad_inference_input_fails_in_one_line_before_writing(case, tmp_path):
    build, expected = INFERENCE[case]
    source, extra = build(tmp_path)
    before = _files(tmp_path / "out")
    args = ["--dataset_dir", source, "--output_dir", tmp_path / "out", "--ckpt_dir", REPO_ROOT / "models", *extra]
    result = _bundle("inference", ["inference.json"], args, tmp_path)
    assert result.returncode != 0
    last = _last_line(result)
    assert re.fullmatch(r"error: .*" + expected + r".*", last), last
    assert _files(tmp_path / "out") == before  # nothing written


@pytest.mark.parametrize("case", sorted(TRAINING))
def test_bad_training_input_fails_in_one_line_before_any_epoch(case, tmp_path):
    change, extra, expected = TRAINING[case]
    data = _demo(tmp_path)
    _break_training(data, change)
    args = ["--dataset_dir", data, "--output_dir", tmp_path / "runs", "--ckpt_dir", tmp_path / "models", *SMALL, *extra]
    result = _bundle("training", ["train.json", "demo.json"], args, tmp_path)
    assert result.returncode != 0
    last = _last_line(result)
    assert re.fullmatch(r"error: .*" + expected + r".*", last), last
    assert _files(tmp_path / "models") == [] and not (tmp_path / "runs" / "checkpoints").exists()


def test_an_existing_training_is_not_replaced(tmp_path):
    data = _demo(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"earlier weights")
    args = ["--dataset_dir", data, "--output_dir", tmp_path / "runs", "--ckpt_dir", tmp_path / "models", *SMALL]
    result = _bundle("training", ["train.json", "demo.json"], [*args, "--overwrite", "false"], tmp_path)
    assert result.returncode != 0
    assert re.fullmatch(
        r"error: .*model\.pt already exist: pass --resume true .*--overwrite true.*", _last_line(result)
    )
    assert (tmp_path / "models" / "model.pt").read_bytes() == b"earlier weights"


def test_a_diverging_training_stops_in_one_line_and_keeps_a_finite_resume_checkpoint(tmp_path):
    # without the guard this run ends in a segmentation fault (grid_sample's backward pass with NaN sampling points)
    data = _demo(tmp_path)
    # validation every 2 epochs: the guard, not the validation's decoder, meets the broken weights first
    small = [*SMALL[:-4], "--max_epochs", "3", "--val_interval", "2"]
    args = ["--dataset_dir", data, "--output_dir", tmp_path / "runs", "--ckpt_dir", tmp_path / "models", *small]
    rates = ["--learning_rate", "1e30", "--max_learning_rate", "1e30"]  # the first step breaks the weights
    result = _bundle("training", ["train.json", "demo.json"], [*args, *rates], tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    found = re.fullmatch(
        r"error: Training diverged: .* at epoch (\d+), iteration \d+\. The last resume checkpoint .*--resume_train.*",
        _last_line(result),
    )
    assert found, _last_line(result)
    checkpoints = sorted(p.name for p in (tmp_path / "runs" / "checkpoints").iterdir())
    assert checkpoints == [f"resume_checkpoint_epoch={int(found[1]) - 1}.pt"]
    weights = torch.load(tmp_path / "runs" / "checkpoints" / checkpoints[0], weights_only=False)["model"]
    assert all(bool(torch.isfinite(w).all()) for w in weights.values() if w.is_floating_point())


def test_a_script_refuses_in_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "datalist.json").write_text("{}")
    source = tmp_path / "src"
    (source / "images").mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "scripts.prepare_isbi2015",
        "--source",
        str(source),
        "--out",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert re.fullmatch(r"error: .*datalist\.json exists: pass --overwrite.*", result.stderr.strip())
