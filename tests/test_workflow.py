"""The helpers the configs call around a run: strict switches, output protection, the checkpoint to resume from."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

from bundle import as_bool, check_outputs, latest_checkpoint, refuse_existing


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), (" TRUE ", True),
     ("0", False), ("1", True)],
)  # fmt: skip
def test_switches_parse_strictly(value, expected):
    assert as_bool(value, "overwrite") is expected


@pytest.mark.parametrize("value", ["no", "yes", "", "none", 2, 0.0, None, [True]])
def test_anything_else_is_an_error_naming_the_switch(value):
    with pytest.raises(ValueError, match=r"^overwrite must be true or false \(or 1 / 0\), got "):
        as_bool(value, "overwrite")


def test_the_word_false_does_not_overwrite(tmp_path):
    (tmp_path / "landmarks.csv").write_text("x")
    with pytest.raises(FileExistsError, match="landmarks.csv exists: pass"):
        refuse_existing(tmp_path / "landmarks.csv", "false")
    refuse_existing(tmp_path / "landmarks.csv", "true")


def test_the_word_false_does_not_resume_or_replace_a_training(tmp_path):
    model, checkpoints = tmp_path / "model.pt", tmp_path / "checkpoints"
    model.write_text("weights")
    with pytest.raises(FileExistsError, match="already exist: pass --resume true"):
        check_outputs(model, checkpoints, resume="false", overwrite="false")
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        check_outputs(model, checkpoints, resume="true", overwrite="false")
    checkpoints.mkdir()
    for epoch in (2, 10, 9):
        torch.save({"epoch": epoch}, checkpoints / f"resume_checkpoint_epoch={epoch}.pt")
    assert latest_checkpoint(checkpoints).endswith("epoch=10.pt")
    # a training killed while writing epoch 11's checkpoint: that file is incomplete, epoch 10's is used
    complete = (checkpoints / "resume_checkpoint_epoch=10.pt").read_bytes()
    (checkpoints / "resume_checkpoint_epoch=11.pt").write_bytes(complete[: len(complete) // 2])
    assert latest_checkpoint(checkpoints).endswith("epoch=10.pt")
    check_outputs(model, checkpoints, resume="1", overwrite="0")
    check_outputs(model, checkpoints, resume="false", overwrite="true")
    assert not checkpoints.exists()  # a fresh training with overwrite clears the old resume checkpoints
    with pytest.raises(ValueError, match="resume must be true or false"):
        check_outputs(model, checkpoints, resume="maybe", overwrite=False)


def test_lower_is_better_is_the_one_comparison_of_errors_and_losses():
    from bundle import lower_is_better

    assert lower_is_better(5.0, -1.0)  # MONAI's start value: no best yet
    assert lower_is_better(1.0, 2.0) and not lower_is_better(2.0, 1.0) and not lower_is_better(1.0, 1.0)
    assert lower_is_better(0.0, -1.0)


def test_a_fine_tuning_that_starts_from_the_model_may_replace_it(tmp_path):
    model, checkpoints = tmp_path / "models" / "model.pt", tmp_path / "checkpoints"
    model.parent.mkdir()
    model.write_text("weights")
    checkpoints.mkdir()
    with pytest.raises(FileExistsError):  # starting from other weights does not make model.pt replaceable
        check_outputs(model, checkpoints, resume=False, overwrite=False, starts_from=[tmp_path / "other.pt"])
    # MONAI Label's training task loads models/model.pt first (a CheckpointLoader), from a path of its own spelling
    check_outputs(
        model, checkpoints, False, False, starts_from=[str(tmp_path / "models" / ".." / "models" / "model.pt")]
    )
    assert model.exists() and not checkpoints.exists()  # the old run's resume checkpoints are not this run's


def test_the_landmark_dataset_takes_monai_label_entries_and_checks_them(tmp_path):
    from bundle import LandmarkCacheDataset

    with pytest.raises(ValueError, match="validation: no 2D entries"):
        LandmarkCacheDataset([], transform=None, num_landmarks=6, name="validation")
    demo = Path(__file__).resolve().parents[1] / "data" / "demo"
    entry = {"image": f"{demo}/images/001.png", "label": f"{demo}/landmarks/001.csv"}
    with pytest.raises(ValueError, match=r"training\[0\] .*this format has no pixel spacing"):
        LandmarkCacheDataset([entry], transform=None, num_landmarks=6, name="training")
    dataset = LandmarkCacheDataset([entry], None, num_landmarks=6, default_spacing=[1.0, 1.0], cache_rate=0.0)
    assert dataset[0]["landmarks"] == entry["label"] and dataset[0]["image"] == entry["image"]
    with pytest.raises(ValueError, match="has 6 landmarks; expected 19"):
        LandmarkCacheDataset([entry], None, num_landmarks=19, default_spacing=[1.0, 1.0])
    # a datastore shared with a 3D model: its volumes are left out of a 2D training, a datalist's never
    afids = Path(__file__).resolve().parents[1] / "data" / "afids"
    volume = {"image": str(afids / "tpl-MNI152NLin2009cAsym_res-04mm_T1w.nii.gz")}
    dataset = LandmarkCacheDataset([entry, {**volume, "label": "x.mrk.json"}], None, 6, default_spacing=[1.0, 1.0])
    assert len(dataset) == 1
    with pytest.raises(ValueError, match="no 2D entries"):
        LandmarkCacheDataset([{**volume, "label": "x.mrk.json"}], None, 6, default_spacing=[1.0, 1.0])
    with pytest.raises(ValueError, match="a 3D image of shape .*; this model takes 2D images"):
        LandmarkCacheDataset([{**volume, "landmarks": "x.mrk.json"}], None, 6)


def test_every_bad_label_is_named_in_one_error_or_left_out_when_the_config_says_so(tmp_path, caplog):
    from bundle import LandmarkCacheDataset

    demo = Path(__file__).resolve().parents[1] / "data" / "demo"
    good = [{"image": f"{demo}/images/00{i}.png", "label": f"{demo}/landmarks/00{i}.csv"} for i in (1, 2)]
    short = tmp_path / "short.csv"
    short.write_text("\n".join((demo / "landmarks" / "003.csv").read_text().splitlines()[:-1]) + "\n")
    bad = [
        {"image": f"{demo}/images/003.png", "label": str(short)},
        {"image": str(tmp_path / "gone.png"), "label": f"{demo}/landmarks/004.csv"},
    ]
    entries = [good[0], bad[0], good[1], bad[1]]
    with pytest.raises(ValueError) as error:
        LandmarkCacheDataset(entries, None, 6, name="training", default_spacing=[1.0, 1.0])
    message = str(error.value)
    assert "\n" not in message and message.startswith("2 of 4 entries are bad: ")
    assert re.search(r"training\[1\] \(.*003\.png\): .*short\.csv: has 5 landmarks; expected 6", message)
    assert re.search(r"training\[3\] \(.*gone\.png\): image file not found", message)
    with caplog.at_level(logging.WARNING):
        dataset = LandmarkCacheDataset(entries, None, 6, default_spacing=[1.0, 1.0], skip_bad=True, cache_rate=0.0)
    assert [item["image"] for item in dataset] == [good[0]["image"], good[1]["image"]]
    left_out = [r.getMessage() for r in caplog.records if "left out (skip_bad)" in r.getMessage()]
    assert len(left_out) == 2 and "short.csv" in left_out[0] and "gone.png" in left_out[1]


def test_entries_checked_before_the_split_are_taken_as_they_are(tmp_path):
    """MONAI Label's training task checks the whole datastore before splitting it; the datasets then read no file
    twice (the entries here name no files at all) and still take a stored ``label`` as the landmark file."""
    from bundle.data import LandmarkCacheDataset
    from bundle.errors import InputError

    entries = [{"image": str(tmp_path / "a.png"), "label": str(tmp_path / "a.mrk.json")}]
    dataset = LandmarkCacheDataset(entries, None, num_landmarks=6, checked=True, cache_rate=0.0)
    assert dataset.data == [{**entries[0], "landmarks": entries[0]["label"]}]
    with pytest.raises(InputError, match="no 2D entries"):
        LandmarkCacheDataset([], None, num_landmarks=6, checked=True, cache_rate=0.0)
    with pytest.raises(InputError, match="a.png"):  # unchecked, the missing image is named
        LandmarkCacheDataset(entries, None, num_landmarks=6, cache_rate=0.0)
