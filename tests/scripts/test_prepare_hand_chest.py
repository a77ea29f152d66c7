import itk
import numpy as np
import pytest
from PIL import Image

from bundle import bundled_landmark_set, check_datalist, load_datalist, read_landmarks
from scripts.prepare_chest import prepare as prepare_chest
from scripts.prepare_chest import read_label
from scripts.prepare_hand import prepare as prepare_hand
from tests.conftest import shared_data


def _hand_fixture(root, ids=("11", "12", "13")):
    (root / "images").mkdir(parents=True)
    (root / "setup" / "cv" / "set1").mkdir(parents=True)
    rows = []
    for i in ids:
        image = itk.image_from_array(np.zeros((1, 60, 40), np.uint8))  # Z = 1, 60 rows, 40 columns
        image.SetSpacing([0.25, 0.25, 0.25])
        itk.imwrite(image, str(root / "images" / f"{i}.mha"))
        rows.append(",".join([i] + [f"{5 + k % 30},{10 + k}" for k in range(37)]))
    rows.append(",".join(["99"] + ["1,1"] * 37))  # annotated, but no image here: skipped
    (root / "setup" / "all.csv").write_text("\n".join(rows) + "\n")
    (root / "setup" / "cv" / "set1" / "train.txt").write_text("11\n12\n99\n")
    (root / "setup" / "cv" / "set1" / "test.txt").write_text("13\n")


def test_hand_layout_to_a_datalist_that_passes_the_checks(tmp_path):
    _hand_fixture(tmp_path / "src")
    datalist = prepare_hand(tmp_path / "src", tmp_path / "out", cv_set=1, validation_every=10)
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [1, 1, 1]
    for split in datalist:
        check_datalist(load_datalist(tmp_path / "out" / "datalist.json", split), 37, 2, split)
    world = read_landmarks(tmp_path / "out" / datalist["training"][0]["landmarks"], 37).coordinates
    # MONAI reads MHA through ITK in RAS: x and y flip sign; spacing 0.25 mm
    np.testing.assert_allclose(world[1], [-0.25 * 6, -0.25 * 11])


def test_hand_real_data(tmp_path):
    datalist = prepare_hand(shared_data("hand"), tmp_path, cv_set=1)
    assert sum(len(v) for v in datalist.values()) == 9
    check_datalist(load_datalist(tmp_path / "datalist.json", "training"), 37, 2, "training")


def _chest_fixture(root, count=10):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(count):
        Image.new("L", (200, 100)).save(root / "images" / f"c{i:02d}.png")
        lines = ["6"] + [f"{0.1 * (k + 1):.3f} {0.05 * (k + 1):.3f}" for k in range(6)]
        (root / "labels" / f"c{i:02d}.txt").write_text("\n".join(lines) + "\n")


def test_chest_labels_to_pixels_and_splits(tmp_path):
    _chest_fixture(tmp_path)
    datalist = prepare_chest(tmp_path / "images", tmp_path / "labels", tmp_path / "out")
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [7, 1, 2]
    check_datalist(load_datalist(tmp_path / "out" / "datalist.json", "training"), 6, 2, "training")
    points = read_landmarks(tmp_path / "out" / datalist["test"][0]["landmarks"], 6).coordinates
    np.testing.assert_allclose(points[0], [0.1 * 200, 0.05 * 100])  # spacing 1: world = pixels


@pytest.mark.parametrize(
    "text, message",
    [("5\n0.1 0.2\n", "says 5 landmarks"), ("6\n" + "0.1 x\n" * 6, r"line 2: expected 'x y'"),
     ("6\n" + "0.1 1.5\n" * 6, "not normalised"), ("six\n", "line 1: the landmark count")],
)  # fmt: skip
def test_chest_malformed_labels(tmp_path, text, message):
    (tmp_path / "a.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_label(tmp_path / "a.txt")


def test_overlays_build_with_train_and_inference(tmp_path):
    from monai.bundle import ConfigParser

    overlays = (["demo.json"], ["isbi2015_paper.json"], ["hand.json"], ["chest.json"], ["afids3d.json"])
    for overlay in overlays:
        for base in ("train.json", "inference.json"):
            parser = ConfigParser()
            parser.read_config([f"configs/{base}"] + [f"configs/{name}" for name in overlay])
            parser["bundle_root"] = "."
            network = parser.get_parsed_content("network_def")
            names = parser.get_parsed_content("landmark_names")
            assert network.head.out_channels == parser.get_parsed_content("num_landmarks") == len(names), overlay
            # weights trained by an overlay go to their own git-ignored folder (models/<name>/), never over the
            # shipped models/model.pt
            assert parser.get_parsed_content("ckpt_dir") == "./models/" + overlay[0][: -len(".json")], overlay
    assert bundled_landmark_set("hand").normalize_pair == [1, 5]
