"""Landmark sets (bundle/landmark_set.py, configs/landmark_sets/): one file holds a data set's names, measurements,
tracing and error settings, and every config derives its landmark count from it."""

from __future__ import annotations

import json

import pytest
from monai.bundle import ConfigParser

from bundle import LandmarkSet, bundled_landmark_set, load_landmark_set
from bundle.errors import InputError, MissingFileError
from bundle.landmark_set import LANDMARK_SETS
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
# each data-set overlay and the set it names (None: the cephalometric default of inference.json and train.json)
OVERLAYS = {None: "isbi2015", "demo.json": "demo", "hand.json": "hand", "chest.json": "chest", "afids3d.json": "afids"}
COUNTS = {"isbi2015": 19, "demo": 6, "hand": 37, "chest": 6, "afids": 32}


def _parsed(*files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    parser["bundle_root"] = str(REPO_ROOT)
    return parser


@pytest.mark.parametrize("overlay", list(OVERLAYS))
@pytest.mark.parametrize("base", ["train.json", "inference.json"])
def test_every_config_takes_its_landmarks_and_their_count_from_its_set(base, overlay):
    parser = _parsed(base, *([overlay] if overlay else []))
    expected = bundled_landmark_set(OVERLAYS[overlay])
    assert parser.get_parsed_content("landmark_names") == expected.names
    assert parser.get_parsed_content("num_landmarks") == len(expected.names) == COUNTS[OVERLAYS[overlay]]
    assert parser.get_parsed_content("spatial_dims") == expected.spatial_dims
    if base == "inference.json":
        assert parser.get_parsed_content("measurements") == expected.measurements
        assert parser.get_parsed_content("tracing") == expected.tracing


def test_overlays_name_their_own_set_instead_of_cancelling_the_cephalometric_one():
    for overlay in OVERLAYS:
        if overlay is None:
            continue
        config = json.loads((CONFIGS / overlay).read_text())
        assert not {"landmark_names", "num_landmarks", "measurements", "tracing"} & set(config), overlay
        assert config["landmark_set_file"] == f"$@bundle_root + '/configs/landmark_sets/{OVERLAYS[overlay]}.json'"
    for name in ("train.json", "inference.json"):
        config = json.loads((CONFIGS / name).read_text())
        assert config["num_landmarks"] == "$len(@landmark_names)"


def test_inference_config_is_short_enough_to_read():
    assert len((CONFIGS / "inference.json").read_text().splitlines()) <= 450


def test_the_cephalometric_set_holds_the_isbi_order_and_the_challenge_measurements():
    isbi = bundled_landmark_set("isbi2015")
    assert isbi.names[0] == "sella" and isbi.names[3] == "porion" and isbi.names[18] == "articulare"
    assert isbi.sdr_radii == [2.0, 2.5, 3.0, 4.0] and isbi.normalize_pair is None and isbi.spatial_dims == 2
    assert {"SNA", "SNB", "ANB", "ODI", "APDI", "FHI", "FMA", "MW"} <= {m["name"] for m in isbi.measurements}
    assert ["sella", "nasion"] in isbi.tracing
    hand = bundled_landmark_set("hand")
    assert hand.normalize_pair == [1, 5] and hand.measurements == [] and hand.num_landmarks == 37
    assert bundled_landmark_set("afids").spatial_dims == 3
    assert sorted(p.stem for p in LANDMARK_SETS.glob("*.json")) == sorted(COUNTS)


def _write(tmp_path, **fields):
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"names": ["a", "b", "c"], **fields}))
    return path


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"names": []}, "non-empty list"),
        ({"names": ["a", "a", "b"]}, "['a'] are repeated"),
        ({"names": ["a", ""]}, "non-empty string"),
        ({"spatial_dims": 4}, "spatial_dims must be 2 or 3"),
        ({"sdr_radii": [2.0, 0.0]}, "sdr_radii must be positive"),
        ({"normalize_pair": [0, 3]}, "two different landmark indices in 0..2"),
        ({"normalize_pair": [1, 1]}, "two different landmark indices"),
        ({"tracing": [["a", "z"]]}, "the tracing line ['a', 'z']"),
        ({"measurements": [{"name": "X", "kind": "angle", "points": ["a", "b", "z"]}]}, "unknown landmark 'z'"),
        ({"colour": "red"}, "unknown keys ['colour']"),
    ],
)
def test_a_bad_set_is_one_error_naming_the_file_and_the_fault(tmp_path, fields, message):
    path = _write(tmp_path, **fields)
    with pytest.raises(InputError, match=str(path).replace("/", ".")) as error:
        load_landmark_set(path)
    assert message in str(error.value)


def test_a_missing_or_unreadable_set_is_named(tmp_path):
    with pytest.raises(MissingFileError, match="nowhere.json"):
        load_landmark_set(tmp_path / "nowhere.json")
    (tmp_path / "broken.json").write_text("{names")
    with pytest.raises(InputError, match="broken.json: cannot read the landmark set"):
        load_landmark_set(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(InputError, match="a JSON object"):
        load_landmark_set(tmp_path / "list.json")


def test_a_good_set_keeps_what_it_was_given(tmp_path):
    path = _write(tmp_path, tracing=[["a", "c"]], normalize_pair=[0, 2], sdr_radii=[1.5], title="Mine")
    found = load_landmark_set(path)
    assert found == LandmarkSet(["a", "b", "c"], 2, [1.5], [0, 2], [], [["a", "c"]], "Mine", source=str(path))
    assert found.num_landmarks == 3


def test_a_run_from_another_folder_finds_the_bundles_sets_and_a_users_own_set_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))  # bundle_root left at ".": the working folder
    assert parser.get_parsed_content("num_landmarks") == 19
    mine = tmp_path / "configs" / "landmark_sets" / "isbi2015.json"  # a user's own file of that name, here
    mine.parent.mkdir(parents=True)
    mine.write_text(json.dumps({"names": ["x", "y"]}))
    assert load_landmark_set("configs/landmark_sets/isbi2015.json").names == ["x", "y"]
    again = ConfigParser()
    again.read_config(str(CONFIGS / "inference.json"))
    assert again.get_parsed_content("landmark_names") == ["x", "y"]  # bundle_root ".": the working folder's set
    served = ConfigParser()
    served.read_config(str(CONFIGS / "inference.json"))
    served["bundle_root"] = str(REPO_ROOT)  # --bundle_root (MONAI Label's folders): the set beside the configs
    assert served.get_parsed_content("num_landmarks") == 19
