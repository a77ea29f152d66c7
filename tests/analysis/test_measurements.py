"""Clinical measurements: known values on hand-made configurations, the ISBI 2015 definitions on one doctor's
landmarks, intervals and borderline classes, review, degenerate geometry, 3D, and bad definitions."""

import json
import math

import numpy as np
import pytest

from bundle import bundled_landmark_set
from bundle.analysis import MeasurementSet
from tests.conftest import REPO_ROOT, shared_data

CEPHALOMETRIC = bundled_landmark_set("isbi2015")
NAMES, DEFINITIONS = CEPHALOMETRIC.names, CEPHALOMETRIC.measurements
ISBI = ["SNA", "SNB", "ANB", "ODI", "APDI", "FHI", "FMA", "MW"]


def _set(*definitions, names=("a", "b", "c", "d"), dims=2):
    return MeasurementSet(list(definitions), list(names), dims)


def test_known_angles_distances_ratios_and_sums():
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 20.0]])  # a, b, c, d; y points down
    m = _set(
        {"name": "abc", "kind": "angle", "points": ["a", "b", "c"]},
        {"name": "ab_ad", "kind": "angle_between", "points": ["a", "b", "a", "d"]},
        {"name": "ab_ad_cw", "kind": "angle_between", "points": ["a", "b", "a", "d"], "sign": "clockwise"},
        {"name": "ab_ad_ccw", "kind": "angle_between", "points": ["a", "b", "a", "d"], "sign": "counterclockwise"},
        {"name": "ad", "kind": "distance", "points": ["a", "d"]},
        {"name": "ba_x", "kind": "distance", "points": ["b", "a"], "sign_axis": 0},
        {"name": "ratio", "kind": "ratio", "points": ["a", "d", "a", "b"]},
        {"name": "c_to_ad", "kind": "signed_distance", "points": ["c", "a", "d"]},
        {"name": "sum", "kind": "sum", "terms": [["abc", 1.0], ["ab_ad", -2.0]]},
    )
    values = m.values(square)
    assert values["abc"] == pytest.approx(90.0) and values["ab_ad"] == pytest.approx(90.0)
    # from a->b (right) to a->d (down) is a clockwise quarter turn as displayed
    assert values["ab_ad_cw"] == pytest.approx(90.0) and values["ab_ad_ccw"] == pytest.approx(-90.0)
    assert values["ad"] == pytest.approx(20.0) and values["ba_x"] == pytest.approx(-10.0)
    assert values["ratio"] == pytest.approx(2.0) and values["sum"] == pytest.approx(90.0 - 180.0)
    # c lies to the right of the line a -> d (downwards): counterclockwise of its direction as displayed
    assert values["c_to_ad"] == pytest.approx(-10.0)
    tilted = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [10.0, 10.0 * math.tan(math.radians(-30))]])
    assert m.values(tilted)["ab_ad_cw"] == pytest.approx(-30.0)  # a->d turned 30 degrees counterclockwise


def test_classes_take_the_first_interval_and_closed_bounds_by_default():
    m = _set(
        {
            "name": "d", "kind": "distance", "points": ["a", "b"],
            "classes": [
                {"class": 1, "name": "normal", "min": 2.0, "max": 4.5, "normal": True},
                {"class": 4, "name": "large", "min": 4.5, "min_inclusive": False},
                {"class": 2, "name": "zero", "min": 0.0, "max": 0.0},
                {"class": 3, "name": "rest"},
            ],
        }  # fmt: skip
    )
    measurement = m.measurements[0]
    assert [measurement.classify(v)["class"] for v in (2.0, 4.5, 4.6, 0.0, 1.0, -3.0)] == [1, 1, 4, 2, 3, 3]
    assert measurement.normal == [2.0, 4.5] and measurement.thresholds() == [0.0, 2.0, 4.5]


def test_the_isbi_definitions_on_one_doctors_landmarks():
    """Image 001, the senior doctor: the values of the challenge's evaluation code (angle.py) on these points."""
    senior = shared_data("isbi2015", "annotations", "all_senior.csv").read_text().splitlines()
    row = next(line for line in senior if line.startswith("001,"))
    points = np.array([float(v) for v in row.split(",")[1:]]).reshape(19, 2)  # mm, x = column
    result = MeasurementSet(DEFINITIONS, NAMES).evaluate(points, samples=0)
    expected = {
        "SNA": (84.0495, 2), "SNB": (87.9388, 3), "ANB": (-3.8892, 3), "ODI": (51.9358, 3), "APDI": (99.0231, 3),
        "FHI": (0.6514, 1), "FMA": (33.2278, 2), "MW": (-1.1662, 3),
    }  # fmt: skip
    for name, (value, cls) in expected.items():
        assert result[name]["value"] == pytest.approx(value, abs=1e-4), name
        assert result[name]["class"] == cls, name
    assert result["ANB"]["class_name"] == "Class III" and result["ANB"]["normal"] == [3.2, 5.7]


def test_the_cephalometric_set_is_the_challenges_eight_and_more():
    m = MeasurementSet(DEFINITIONS, NAMES)
    names = [x.name for x in m.measurements]
    assert set(ISBI) <= set(names) and len(names) > len(ISBI)
    assert all(x.normal for x in m.measurements if x.name in ISBI)
    assert all("ISBI 2015" in x.description for x in m.measurements if x.name in ISBI)


def test_intervals_follow_the_radii_and_mark_a_class_in_doubt():
    points = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 20.0]])
    definition = {
        "name": "abc", "kind": "angle", "points": ["a", "b", "c"],
        "classes": [{"class": 1, "name": "normal", "min": 85.0, "max": 95.0, "normal": True},
                    {"class": 2, "name": "wide", "min": 95.0, "min_inclusive": False},
                    {"class": 3, "name": "narrow", "max": 85.0, "max_inclusive": False}],
    }  # fmt: skip
    m = _set(definition)
    tight = m.evaluate(points, radii=np.full(4, 0.05))["abc"]
    loose = m.evaluate(points, radii=np.full(4, 3.0))["abc"]
    assert tight["interval"][0] < 90.0 < tight["interval"][1] and tight["interval"][1] - tight["interval"][0] < 1.0
    assert not tight["borderline"] and tight["class"] == 1
    assert loose["interval"][1] - loose["interval"][0] > 10.0 and loose["borderline"]
    again = m.evaluate(points, radii=np.full(4, 3.0))["abc"]
    assert again["interval"] == loose["interval"]  # seeded: the same image gives the same interval
    # the radius holds 90 % of each landmark's draws in 2D: a distance between two fixed landmarks and one drawn
    d = _set({"name": "ab", "kind": "distance", "points": ["a", "b"]}).evaluate(points, radii=np.array([2.0, 0, 0, 0]))
    sigma = 2.0 / math.sqrt(2 * math.log(10))  # the SD whose 2D Gaussian holds 90 % within 2 mm
    assert d["ab"]["interval"][0] == pytest.approx(10.0 - 1.645 * sigma, abs=0.2)  # the 5 % quantile, about
    assert m.evaluate(points)["abc"]["interval"] is None  # no radii, no interval


def test_review_and_degenerate_geometry_give_reasons_not_nan():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0], [0.0, 20.0]])  # a and b coincide
    m = _set(
        {"name": "abc", "kind": "angle", "points": ["a", "b", "c"]},
        {"name": "cd", "kind": "distance", "points": ["c", "d"]},
        {"name": "sum", "kind": "sum", "terms": [["abc", 1.0]]},
    )
    result = m.evaluate(points, review=np.array([False, False, False, True]))
    assert result["abc"]["value"] is None and "degenerate" in result["abc"]["reason"] and result["abc"]["review"]
    assert result["sum"]["value"] is None
    assert result["cd"]["review"] and result["cd"]["review_landmarks"] == ["d"] and result["cd"]["value"] == 10 * 2**0.5
    json.dumps(result, allow_nan=False)  # no NaN anywhere in the record


def test_angles_and_distances_in_3d_and_signs_refused_there():
    points = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    m = _set(
        {"name": "abc", "kind": "angle", "points": ["a", "b", "c"]},
        {"name": "bd", "kind": "distance", "points": ["b", "d"]},
        dims=3,
    )
    values = m.values(points)
    assert values["abc"] == pytest.approx(90.0) and values["bd"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="needs a plane"):
        _set({"name": "s", "kind": "angle_between", "points": ["a", "b", "c", "d"], "sign": "clockwise"}, dims=3)


@pytest.mark.parametrize(
    "definition, message",
    [
        ({"name": "X", "kind": "angle", "points": ["a", "b", "zz"]}, "measurement 'X': unknown landmark 'zz'"),
        ({"name": "X", "kind": "spiral", "points": []}, "kind 'spiral'"),
        ({"name": "X", "kind": "angle", "points": ["a", "b"]}, "takes 3 landmarks"),
        ({"name": "X", "kind": "sum", "terms": [["Y", 1]]}, "unknown \\['Y'\\]"),
        ({"name": "X", "kind": "angle_between", "points": ["a", "b", "c", "d"], "sign": "up"}, "sign must be"),
    ],
)
def test_a_bad_definition_is_an_error_naming_it(definition, message):
    with pytest.raises(ValueError, match=message):
        _set(definition)


def test_a_definition_naming_a_landmark_the_model_lacks_stops_the_run_at_start(tmp_path):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(REPO_ROOT / "configs" / "inference.json"), str(REPO_ROOT / "configs" / "demo.json")])
    parser["measurements"] = [{"name": "SNA", "kind": "angle", "points": ["sella", "nasion", "subspinale"]}]
    with pytest.raises(Exception) as raised:
        parser.get_parsed_content("measure")
    assert "measurement 'SNA': unknown landmark 'sella'" in repr(raised.value.__cause__ or raised.value)
