"""One loader for a model folder's files (bundle/model_files.py): each file read once, and again when it changes, so
that after MONAI Label's /train (or a site adaptation) every file a served pipeline reads is the new one."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from bundle import bundled_landmark_set
from bundle.errors import MissingFileError
from bundle.model_files import forget_model_files, load_weights, read_model_file
from bundle.shape import ShapeModel
from bundle.uncertainty import ErrorCalibration
from tests.conftest import REPO_ROOT


@pytest.fixture(autouse=True)
def _fresh():
    forget_model_files()
    yield
    forget_model_files()


def _rewrite(path, text: str) -> None:
    time.sleep(0.02)  # past the file system's coarse clock, as a real rewrite (a training) is
    path.write_text(text)


def test_a_file_is_read_once_and_again_when_it_changes(tmp_path):
    path, reads = tmp_path / "x.txt", []
    path.write_text("first")

    def reader(p):
        reads.append(p)
        return open(p).read()

    assert read_model_file(path, reader, "text") == "first" and read_model_file(path, reader, "text") == "first"
    assert len(reads) == 1
    _rewrite(path, "second, longer")
    assert read_model_file(path, reader, "text") == "second, longer" and len(reads) == 2
    assert read_model_file(path, reader, key="other") == "second, longer" and len(reads) == 3  # another reading


def test_a_missing_file_is_left_to_the_reader_whose_error_says_what_to_do(tmp_path):
    def reader(p):
        raise MissingFileError(f"{p}: train it first")

    with pytest.raises(MissingFileError, match="nowhere.json: train it first"):
        read_model_file(tmp_path / "nowhere.json", reader, "json")
    with pytest.raises(MissingFileError, match="the refiner's weights .*nowhere.pt are missing: train it"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "nowhere.pt", "the refiner's weights", "train it.")


def test_weights_load_once_per_network_and_file_version(tmp_path, monkeypatch):
    network, path = torch.nn.Linear(2, 2), tmp_path / "model.pt"
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    load_weights(network, path)
    torch.testing.assert_close(network.state_dict(), real_load(path))
    load_weights(network, path)
    assert len(loads) == 1  # unchanged: not read again
    other = torch.nn.Linear(2, 2)
    load_weights(other, path)
    assert len(loads) == 2  # another network gets its own copy
    time.sleep(0.02)
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    load_weights(network, path)
    assert len(loads) == 3
    torch.testing.assert_close(network.state_dict(), real_load(path))


def _model_folder(folder, seed: int, names: list[str]) -> dict:
    """Files as a training writes them (the demo set's networks, a shape model and a calibration), from ``seed``."""
    parser = _parser(folder)
    torch.manual_seed(seed)
    files = {
        "model.pt": parser.get_parsed_content("network_def", lazy=False).state_dict(),
        "refiner/model.pt": parser.get_parsed_content("refiner_def", lazy=False).state_dict(),
    }
    for name, state in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, folder / name)
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 60, (len(names), 2))
    shapes = base + rng.normal(0, 1.0, (40, *base.shape))
    shape_model = ShapeModel.fit(shapes, names, modes=2)
    shape_model.save(folder / "shape_model.json")
    features = np.stack([rng.uniform(0.5, 2, (20, len(names))), rng.uniform(0.2, 0.9, (20, len(names)))], -1)
    calibration = ErrorCalibration.fit(np.abs(rng.normal(size=(20, len(names)))) + 0.1, features)
    calibration.save(folder / "calibration.json", "both_stages")
    return {**files, "shape_mean": shape_model.mean, "quantiles": calibration.quantiles}


def _parser(folder) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO_ROOT / "configs" / "inference.json"), str(REPO_ROOT / "configs" / "demo.json")])
    parser.update({"bundle_root": str(REPO_ROOT), "ckpt_dir": str(folder), "device": "$torch.device('cpu')"})
    return parser


def test_every_file_a_served_pipeline_reads_is_the_new_one_after_a_training_rewrites_the_folder(tmp_path):
    names = bundled_landmark_set("demo").names
    before = _model_folder(tmp_path, 0, names)
    parser = _parser(tmp_path)
    parser["refine"] = True
    detector, refiner = parser.get_parsed_content("detector"), parser.get_parsed_content("refine_landmarks")
    judge, radius = parser.get_parsed_content("check_plausible"), parser.get_parsed_content("review")[0]

    def served() -> dict:
        with torch.inference_mode():
            detector.eval()(torch.zeros(1, 1, 96, 96))  # the engine's forward pass
        refiner._load()  # what each refinement does first
        return {
            "model.pt": detector.network.state_dict(),
            "refiner/model.pt": refiner.network.state_dict(),
            "shape_mean": judge.model.mean,
            "quantiles": radius.calibration.quantiles,
        }

    for expected in (before, None):
        if expected is None:  # as MONAI Label's /train and a site adaptation do: every file rewritten in place
            time.sleep(0.02)
            expected = _model_folder(tmp_path, 1, names)
            assert not torch.equal(expected["model.pt"]["head.weight"], before["model.pt"]["head.weight"])
        found = served()
        for name in ("model.pt", "refiner/model.pt"):
            torch.testing.assert_close(found[name], expected[name])
        np.testing.assert_allclose(found["shape_mean"], expected["shape_mean"])
        assert found["quantiles"] == expected["quantiles"]
