"""The served MONAI Label folders that tools.monailabel_models writes (the server itself: test_monailabel_server)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from bundle import bundled_landmark_set
from tools.monailabel_models import AFIDS, CEPHALOMETRIC, write_models

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    weights = root / "afids.pt"
    weights.write_bytes(b"weights")  # copied as they are
    write_models(root / "app", [CEPHALOMETRIC, AFIDS], weights)
    return root / "app"


def _config(folder: Path, name: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / name))
    parser["bundle_root"] = str(folder)
    return parser


def test_the_afids_folder_states_the_3d_model_in_each_config_monai_label_reads(app):
    folder = app / "model" / AFIDS
    names = bundled_landmark_set("afids").names
    for name in ("inference.json", "train.json"):
        parser = _config(folder, name)
        assert parser.get_parsed_content("spatial_dims") == 3 and parser.get_parsed_content("landmark_names") == names
        assert parser.get_parsed_content("ckpt_dir") == f"{folder}/models"  # MONAI Label reads models/model.pt
        network = parser.get_parsed_content("network_def")
        assert network(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 32, 16, 16, 16)
    metadata = json.loads((folder / "configs" / "metadata.json").read_text())
    outputs = metadata["network_data_format"]["outputs"]
    assert list(outputs) == ["label", "pred"] and outputs["pred"]["num_channels"] == 32
    assert list(outputs["label"]["channel_def"].values()) == ["background", *names]
    assert metadata["eval_metrics"] == {}  # none of the cephalometric model's results
    assert (folder / "models" / "model.pt").read_bytes() == b"weights"
    assert (folder / "bundle" / "transforms" / "label_map.py").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", str(folder / "configs" / "metadata.json"),
         "--filepath", str(REPO / "tests" / "data" / "meta_schema_20240725.json")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_cephalometric_folder_trains_on_the_spacing_its_inference_assumes(app):
    folder = app / "model" / CEPHALOMETRIC
    inference = json.loads((folder / "configs" / "inference.json").read_text())
    train = json.loads((folder / "configs" / "train.json").read_text())
    assert train["assumed_spacing"] == inference["assumed_spacing"] == [0.1, 0.1]
    assert inference == json.loads((REPO / "configs" / "inference.json").read_text())
    assert (folder / "models" / "model.pt").read_bytes() == (REPO / "models" / "model.pt").read_bytes()


def test_bad_requests_are_refused_before_anything_is_written(app, tmp_path):
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        write_models(app, [CEPHALOMETRIC], tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError, match=r"afids3d\.json"):
        write_models(tmp_path / "other", [AFIDS], tmp_path / "none.pt")
    with pytest.raises(ValueError, match="unknown models"):
        write_models(tmp_path / "other", ["spleen"], tmp_path / "none.pt")
    assert not (tmp_path / "other").exists()
