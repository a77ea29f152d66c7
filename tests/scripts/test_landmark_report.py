import json

import numpy as np
import pytest
from PIL import Image

from bundle import Landmarks, read_landmarks, write_landmarks
from scripts.landmark_report import make_report
from scripts.prepare_isbi2015 import prepare
from tests.conftest import shared_data


def _write_predictions(folder, entries, base, offset_mm, spacing=0.1):
    folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        truth = read_landmarks(base / entry["landmarks"], spacing=[spacing, spacing])
        world = truth.coordinates + offset_mm
        items = [
            {"index": k, "name": n, "world": w.tolist(), "pixel": (w / spacing).tolist(), "confidence": 1.0}
            for k, (n, w) in enumerate(zip(truth.names, world))
        ]
        stem = entry["image"].split("/")[-1].split(".")[0]
        (folder / f"{stem}.json").write_text(json.dumps({"image": entry["image"], "landmarks": items}))


def test_known_offsets_give_known_errors_and_all_outputs(tmp_path):
    entries = []
    for i in range(4):
        Image.new("L", (80, 100)).save(tmp_path / f"{i}.png")
        write_landmarks(tmp_path / f"{i}.csv", Landmarks(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])))
        entries.append({"image": str(tmp_path / f"{i}.png"), "landmarks": f"{i}.csv", "spacing": [0.1, 0.1]})
    (tmp_path / "datalist.json").write_text(json.dumps({"test": entries}))
    _write_predictions(tmp_path / "pred", entries, tmp_path, offset_mm=np.array([0.3, 0.4]))  # 0.5 mm everywhere
    report = make_report(tmp_path / "pred", {"truth": tmp_path / "datalist.json"}, ["test"], tmp_path / "out",
                         [0.4, 0.5, 1.0], gu2net_split="test")  # fmt: skip
    summary = report["splits"]["test"]["truth"]
    assert summary["mre"] == pytest.approx(0.5) and summary["sd"] == pytest.approx(0.0, abs=1e-9)
    assert summary["sdr"] == {"0.4": 0.0, "0.5": 100.0, "1": 100.0}
    # GU2Net protocol: 3 x 4 px offset on an 80 x 100 image scaled to 416 x 512, at 0.46875 mm per grid pixel
    expected = 0.46875 * np.hypot(3 * 416 / 80, 4 * 512 / 100)
    assert report["gu2net_protocol"]["truth"]["mre"] == pytest.approx(expected)
    for name in ("report.md", "report.json", "boxplot_test.png", "worst_test.png", "sdr_curve.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| test, truth | 4 | 0.500 ± 0.000 |" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(FileExistsError):
        make_report(tmp_path / "pred", {"truth": tmp_path / "datalist.json"}, ["test"], tmp_path / "out", [1.0])


def test_a_missing_prediction_names_the_image(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    write_landmarks(tmp_path / "a.csv", Landmarks(np.array([[0.1, 0.2]])))
    entry = {"image": str(tmp_path / "a.png"), "landmarks": "a.csv", "spacing": [0.1, 0.1]}
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [entry]}))
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "b.json").write_text(
        json.dumps({"landmarks": [{"name": "1", "world": [0, 0], "pixel": [0, 0]}]})
    )
    with pytest.raises(ValueError, match=r"no prediction for .*a\.png"):
        make_report(tmp_path / "pred", {"t": tmp_path / "datalist.json"}, ["test"], tmp_path / "out", [1.0])


def test_isbi2015_junior_as_predictions_reproduces_the_inter_observer_figures(tmp_path):
    datalists = prepare(shared_data("isbi2015"), tmp_path / "isbi", ["senior", "junior"])
    _write_predictions(tmp_path / "pred", datalists["junior"]["test"], tmp_path / "isbi", offset_mm=0.0)
    report = make_report(tmp_path / "pred", {"senior": tmp_path / "isbi" / "datalist_senior.json"},
                         ["test1", "test2"], tmp_path / "out", [2.0, 2.5, 3.0, 4.0], gu2net_split="test")  # fmt: skip
    test1, test2 = report["splits"]["test1"]["senior"], report["splits"]["test2"]["senior"]
    assert test1["mre"] == pytest.approx(2.36, abs=0.005) and test2["mre"] == pytest.approx(1.51, abs=0.005)
    assert list(test1["sdr"].values()) == pytest.approx([55.54, 63.93, 71.12, 81.51], abs=0.005)
    assert list(test2["sdr"].values()) == pytest.approx([74.58, 83.42, 88.84, 94.74], abs=0.005)
    assert report["gu2net_protocol"]["senior"]["images"] == 250
