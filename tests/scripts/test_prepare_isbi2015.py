import json

import numpy as np
import pytest
from PIL import Image

from bundle import read_landmarks
from scripts.prepare_isbi2015 import prepare
from tests.conftest import shared_data

IDS = {"TrainingData": [1, 130, 131], "Test1Data": [151], "Test2Data": [301]}


def _official_fixture(root):
    """A few tiny images and annotation files in the official distribution's layout."""
    for folder, ids in IDS.items():
        (root / "RawImage" / folder).mkdir(parents=True)
        for i in ids:
            Image.new("RGB", (40, 50)).save(root / "RawImage" / folder / f"{i:03d}.bmp")
    for doctor, shift in (("senior", 0), ("junior", 3)):
        (root / "AnnotationsByMD" / f"400_{doctor}").mkdir(parents=True)
        for ids in IDS.values():
            for i in ids:
                lines = [f"{10 + k + shift},{20 + 2 * k}" for k in range(19)] + ["1", "3", "2"]
                (root / "AnnotationsByMD" / f"400_{doctor}" / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")


def test_official_layout_to_datalists(tmp_path):
    _official_fixture(tmp_path / "src")
    datalists = prepare(tmp_path / "src", tmp_path / "out", ["mean", "senior", "junior"])
    splits = {split: [e["image"][-7:-4] for e in entries] for split, entries in datalists["mean"].items()}
    assert splits == {"training": ["001", "130"], "validation": ["131"], "test1": ["151"], "test2": ["301"],
                      "test": ["151", "301"]}  # fmt: skip
    entry = datalists["mean"]["training"][0]
    assert entry["spacing"] == [0.1, 0.1] and entry["image"].endswith("RawImage/TrainingData/001.bmp")
    senior = read_landmarks(tmp_path / "out" / datalists["senior"]["training"][0]["landmarks"], 19)
    mean = read_landmarks(tmp_path / "out" / entry["landmarks"], 19)
    np.testing.assert_allclose(senior.coordinates[1], [1.1, 2.2])  # (11, 22) px at 0.1 mm/px
    np.testing.assert_allclose(mean.coordinates[1], [1.25, 2.2])  # x: (11 + 14) / 2 px
    assert senior.names[0] == "sella" and senior.names[18] == "articulare"
    default = json.loads((tmp_path / "out" / "datalist.json").read_text())
    assert default == json.loads((tmp_path / "out" / "datalist_mean.json").read_text())


def test_malformed_official_annotation_names_the_file(tmp_path):
    _official_fixture(tmp_path / "src")
    (tmp_path / "src" / "AnnotationsByMD" / "400_junior" / "151.txt").write_text("10,20\nnot,a point\n")
    with pytest.raises(ValueError, match=r"151\.txt: 2 lines, expected at least 19"):
        prepare(tmp_path / "src", tmp_path / "out", ["mean"])


def test_challenge_truth_needs_the_csv_layout(tmp_path):
    _official_fixture(tmp_path / "src")
    with pytest.raises(ValueError, match="'challenge' is not available"):
        prepare(tmp_path / "src", tmp_path / "out", ["challenge"])


def test_shared_layout(tmp_path):
    datalists = prepare(shared_data("isbi2015"), tmp_path, ["senior", "mean", "challenge"])
    counts = {split: len(entries) for split, entries in datalists["senior"].items()}
    assert counts == {"training": 130, "validation": 20, "test1": 150, "test2": 100, "test": 250}
    first = read_landmarks(tmp_path / datalists["senior"]["training"][0]["landmarks"], 19)
    np.testing.assert_allclose(first.coordinates[0], [83.5, 99.6])  # image 001, sella: (835, 996) px
    mean = read_landmarks(tmp_path / datalists["mean"]["training"][0]["landmarks"], 19)
    np.testing.assert_allclose(mean.coordinates[0], [(83.5 + 82.9) / 2, (99.6 + 99.1) / 2])  # junior (829, 991) px
    senior_16 = read_landmarks(tmp_path / datalists["senior"]["test2"][0]["landmarks"], 19).coordinates[15]
    challenge_16 = read_landmarks(tmp_path / datalists["challenge"]["test2"][0]["landmarks"], 19).coordinates[15]
    assert not np.allclose(senior_16, challenge_16)  # the challenge differs from senior at landmark 16 on 301-400


def test_an_earlier_preparation_is_not_replaced_silently(tmp_path):
    _official_fixture(tmp_path / "src")
    prepare(tmp_path / "src", tmp_path / "out", ["mean"])
    with pytest.raises(FileExistsError, match=r"datalist\.json exists: pass --overwrite"):
        prepare(tmp_path / "src", tmp_path / "out", ["mean"])
    prepare(tmp_path / "src", tmp_path / "out", ["senior"], overwrite=True)
