import json

import numpy as np
import pytest

from bundle import LandmarkFileError, Landmarks, read_landmarks, write_landmarks
from tests.conftest import shared_data

POINTS_3D = np.array([[-0.204861407692308, 2.72288076923077, -4.88105282051282], [1.0 / 3.0, -25.5, 7.25e-3]])


def _isbi_file(tmp_path, lines):
    path = tmp_path / "001.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _isbi_lines():
    points = [f"{835 + i},{996 - i}" for i in range(19)]
    return points + ["1", "2", "3", "1"]  # classification labels follow the landmarks in the official files


def test_isbi_text_in_pixels_to_world_millimetres(tmp_path):
    landmarks = read_landmarks(_isbi_file(tmp_path, _isbi_lines()), spacing=(0.1, 0.1))
    assert len(landmarks) == 19 and landmarks.spatial_dims == 2
    np.testing.assert_allclose(landmarks.coordinates[0], [83.5, 99.6])  # ISBI 001, sella: (835, 996) px
    assert landmarks.visible.all()


@pytest.mark.parametrize("suffix", [".csv", ".json", ".fcsv", ".mrk.json"])
def test_round_trip_3d_is_exact(tmp_path, suffix):
    landmarks = Landmarks(POINTS_3D, ["AC", "PC"])
    path = write_landmarks(tmp_path / f"points{suffix}", landmarks)
    back = read_landmarks(path, num_landmarks=2)
    np.testing.assert_array_equal(back.coordinates, POINTS_3D)
    assert back.names == ["AC", "PC"] and back.visible.all()


@pytest.mark.parametrize("suffix", [".csv", ".json", ".fcsv", ".mrk.json"])
def test_round_trip_2d(tmp_path, suffix):
    landmarks = Landmarks(np.array([[83.5, 99.6], [12.25, 0.1]]))
    back = read_landmarks(write_landmarks(tmp_path / f"p{suffix}", landmarks), spatial_dims=2)
    np.testing.assert_array_equal(back.coordinates, landmarks.coordinates)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".mrk.json"])
def test_invisible_landmarks_round_trip(tmp_path, suffix):
    landmarks = Landmarks(np.array([[1.0, 2.0, 3.0], [np.nan] * 3, [4.0, 5.0, 6.0]]))
    back = read_landmarks(write_landmarks(tmp_path / f"p{suffix}", landmarks))
    assert back.visible.tolist() == [True, False, True]
    assert np.isnan(back.coordinates[1]).all()


def test_json_output_keeps_extra_fields(tmp_path):
    landmarks = Landmarks(np.array([[1.0, 2.0], [3.0, 4.0]]), ["a", "b"])
    extra = {"pixel": [[10, 20], [30, 40]], "confidence": [0.9, 0.8], "_top": {"image": "x.png"}}
    path = write_landmarks(tmp_path / "p.json", landmarks, extra=extra)
    data = json.loads(path.read_text())
    assert data["image"] == "x.png" and data["landmarks"][1]["pixel"] == [30, 40]
    assert data["landmarks"][0] == {
        "index": 0,
        "name": "a",
        "world": [1.0, 2.0],
        "visible": True,
        "pixel": [10, 20],
        "confidence": 0.9,
    }


def test_slicer_lps_is_converted_to_ras(tmp_path):
    fcsv = tmp_path / "lps.fcsv"
    fcsv.write_text("# CoordinateSystem = LPS\n" "F_1,1.5,-2.0,3.0,0,0,0,1,1,1,0,AC,,\n")
    np.testing.assert_array_equal(read_landmarks(fcsv).coordinates, [[-1.5, 2.0, 3.0]])
    mrk = tmp_path / "lps.mrk.json"
    point = {"label": "AC", "position": [1.5, -2.0, 3.0], "positionStatus": "defined"}
    mrk.write_text(json.dumps({"markups": [{"coordinateSystem": "LPS", "controlPoints": [point]}]}))
    np.testing.assert_array_equal(read_landmarks(mrk).coordinates, [[-1.5, 2.0, 3.0]])


def test_malformed_files_name_the_file_and_line(tmp_path):
    lines = _isbi_lines()
    lines[2] = "837,abc"
    with pytest.raises(LandmarkFileError, match=r"001\.txt, line 3: y is 'abc'"):
        read_landmarks(_isbi_file(tmp_path, lines), spacing=(0.1, 0.1))
    lines = _isbi_lines()
    lines[4] = "nan,3"
    with pytest.raises(LandmarkFileError, match=r"001\.txt, line 5: x is 'nan', not a finite number"):
        read_landmarks(_isbi_file(tmp_path, lines), spacing=(0.1, 0.1))
    with pytest.raises(LandmarkFileError, match=r"001\.txt: has 10 lines; expected at least 19"):
        read_landmarks(_isbi_file(tmp_path, _isbi_lines()[:10]), spacing=(0.1, 0.1))
    with pytest.raises(LandmarkFileError, match="give the pixel spacing"):
        read_landmarks(_isbi_file(tmp_path, _isbi_lines()))
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("name,x,y\na,1,2\nb,1\n")
    with pytest.raises(LandmarkFileError, match=r"bad\.csv, line 3: has 2 fields"):
        read_landmarks(csv_path)
    csv_path.write_text("name,x,y\na,1,2\nb,1,NaN\n")
    with pytest.raises(LandmarkFileError, match=r"bad\.csv, line 3: y is 'NaN'"):
        read_landmarks(csv_path)
    csv_path.write_text("name,x,y\na,1,2\n")
    with pytest.raises(LandmarkFileError, match=r"bad\.csv: has 1 landmarks; expected 19"):
        read_landmarks(csv_path, num_landmarks=19)
    json_path = tmp_path / "bad.json"
    json_path.write_text('{"landmarks": [\n{"world": [1, 2]},\n]}')
    with pytest.raises(LandmarkFileError, match=r"bad\.json, line 3: is not valid JSON"):
        read_landmarks(json_path)
    with pytest.raises(LandmarkFileError, match=r"missing\.csv: file not found"):
        read_landmarks(tmp_path / "missing.csv")
    with pytest.raises(LandmarkFileError, match="unknown landmark file suffix"):
        read_landmarks(tmp_path / "points.xyz")


def test_existing_file_is_not_overwritten(tmp_path):
    landmarks = Landmarks(np.array([[1.0, 2.0]]))
    path = write_landmarks(tmp_path / "p.csv", landmarks)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_landmarks(path, landmarks)
    write_landmarks(path, Landmarks(np.array([[5.0, 6.0]])), overwrite=True)
    np.testing.assert_array_equal(read_landmarks(path).coordinates, [[5.0, 6.0]])


def test_isbi_write_rounds_to_whole_pixels(tmp_path):
    landmarks = Landmarks(np.array([[83.5, 99.6]] * 19))
    path = write_landmarks(tmp_path / "out.txt", landmarks, spacing=(0.1, 0.1))
    assert path.read_text().splitlines()[0] == "835,996"
    np.testing.assert_allclose(read_landmarks(path, spacing=(0.1, 0.1)).coordinates, landmarks.coordinates)


def test_afids_ground_truth_reads_and_round_trips(tmp_path):
    path = shared_data("afids", "tpl-MNI152NLin2009cAsym_res-01_desc-groundtruth_afids.fcsv")
    landmarks = read_landmarks(path, num_landmarks=32)
    np.testing.assert_array_equal(landmarks.coordinates[0], [-0.204861407692308, 2.72288076923077, -4.88105282051282])
    for suffix in (".fcsv", ".mrk.json", ".csv", ".json"):
        back = read_landmarks(write_landmarks(tmp_path / f"afids{suffix}", landmarks), num_landmarks=32)
        np.testing.assert_array_equal(back.coordinates, landmarks.coordinates)
        assert back.names == landmarks.names


def test_landmark_file_errors_survive_pickling_and_copying():
    import copy
    import pickle

    error = LandmarkFileError("a/001.txt", "y is 'abc', not a number.", 3)
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert str(clone) == str(error) == "a/001.txt, line 3: y is 'abc', not a number."
        assert (clone.path, clone.line) == ("a/001.txt", 3) and isinstance(clone, ValueError)
    assert str(LandmarkFileError("b.csv", "file not found.")) == "b.csv: file not found."


@pytest.mark.parametrize("fmt", ["mrk.json", "fcsv"])
def test_slicer_files_of_a_picture_are_in_slicers_frame_of_it(tmp_path, fmt):
    # 3D Slicer loads a PNG/JPEG at 1 mm per pixel with LPS along the pixel axes: pixel (835, 996) is RAS (-835, -996)
    world = Landmarks(np.array([[83.5, 99.6], [0.0, 0.05]]), ["sella", "corner"])
    path = write_landmarks(tmp_path / f"a.{fmt}", world, picture_spacing=[0.1, 0.05])
    if fmt == "mrk.json":
        positions = [p["position"] for p in json.loads(path.read_text())["markups"][0]["controlPoints"]]
        np.testing.assert_allclose(positions, [[-835.0, -1992.0, 0.0], [0.0, -1.0, 0.0]], atol=1e-9)
    back = read_landmarks(path, 2, spatial_dims=2, picture_spacing=[0.1, 0.05])
    np.testing.assert_allclose(back.coordinates, world.coordinates, atol=1e-9)
    # read as world millimetres instead, the same file is far off the picture: the frame is not optional
    assert np.abs(read_landmarks(path, 2, spatial_dims=2).coordinates - world.coordinates).max() > 100
    with pytest.raises(ValueError, match="picture_spacing must be 2 positive numbers"):
        read_landmarks(path, 2, spatial_dims=2, picture_spacing=[0.1])
