"""The training dataset takes entries from a datalist or MONAI Label and checks them all first (bundle/data/)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest


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
