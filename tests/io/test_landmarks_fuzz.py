"""Fuzzing every landmark-file parser: whatever a file holds, reading it ends in a clean ``LandmarkFileError`` or in
a correct parse, never in another exception. 2,000 cases per format (10,000 in all): arbitrary text, and files built
from the format's own pieces (headers, keys, numbers, NaN, empty fields, wrong types), which reach deeper."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle.io import LandmarkFileError, Landmarks, read_landmarks, write_landmarks

pytestmark = pytest.mark.slow  # 10,000 fuzzing cases

CASES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SUFFIXES = (".csv", ".json", ".txt", ".fcsv", ".mrk.json")

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", " ", "nan", "inf", "-0", "1e400", "x", "1,2", '"3"', "0x10", "1_0"]),
)
words = st.one_of(numbers, st.text(max_size=8), st.sampled_from(["name", "x", "y", "z", "visible", "0", "1", "false"]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def csv_files(draw):
    header = draw(st.sampled_from(["name,x,y", "name,x,y,z", "name,x,y,visible", "name,x,y,z,visible", "x,y", ""]))
    rows = draw(st.lists(st.lists(words, min_size=0, max_size=6).map(",".join), max_size=6))
    return "\n".join([header, *rows])


@st.composite
def isbi_files(draw):
    rows = draw(st.lists(st.tuples(numbers, numbers).map(",".join), min_size=0, max_size=22))
    tail = draw(st.lists(st.text(max_size=10), max_size=3))
    return "\n".join(rows + tail)


@st.composite
def fcsv_files(draw):
    header = draw(
        st.lists(
            st.sampled_from(
                ["# Markups fiducial file version = 4.11", "# CoordinateSystem = LPS", "# CoordinateSystem = 0",
                 "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID", "# columns = id,label",
                 "# columns = ", "#"]
            ),
            max_size=4,
        )
    )  # fmt: skip
    rows = draw(st.lists(st.lists(words, min_size=0, max_size=14).map(",".join), max_size=5))
    return "\n".join(header + rows)


@st.composite
def json_files(draw):
    item = st.fixed_dictionaries(
        {},
        optional={
            "name": json_values,
            "world": st.one_of(st.lists(st.one_of(st.floats(), st.integers(), json_values), max_size=4), json_values),
            "visible": json_values,
            "index": json_values,
        },
    )
    landmarks = st.one_of(st.lists(st.one_of(item, json_values), max_size=5), json_values)
    return json.dumps(draw(st.one_of(st.fixed_dictionaries({"landmarks": landmarks}), json_values)))


@st.composite
def mrk_json_files(draw):
    point = st.fixed_dictionaries(
        {},
        optional={
            "label": json_values,
            "position": st.one_of(
                st.lists(st.one_of(st.floats(), st.integers(), json_values), max_size=4), json_values
            ),
            "positionStatus": st.one_of(st.sampled_from(["defined", "undefined", "missing"]), json_values),
        },
    )
    markup = st.fixed_dictionaries(
        {},
        optional={
            "coordinateSystem": st.one_of(st.sampled_from(["LPS", "RAS", "lps"]), json_values),
            "controlPoints": st.one_of(st.lists(st.one_of(point, json_values), max_size=4), json_values),
        },
    )
    data = st.one_of(
        st.fixed_dictionaries(
            {"markups": st.one_of(st.lists(st.one_of(markup, json_values), max_size=2), json_values)}
        ),
        json_values,
    )
    return json.dumps(draw(data))


def _read(text: str | bytes, suffix: str, **kwargs) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        (
            path.write_bytes(text)
            if isinstance(text, bytes)
            else path.write_text(text, encoding="utf-8", errors="surrogatepass")
        )
        try:
            landmarks = read_landmarks(path, **kwargs)
        except LandmarkFileError as e:
            assert str(e).startswith(str(path)), str(e)  # the message names the file
            return
    _check(landmarks, kwargs.get("spatial_dims"))


def _check(landmarks: Landmarks, spatial_dims) -> None:
    assert isinstance(landmarks, Landmarks) and len(landmarks) >= 1
    assert landmarks.coordinates.dtype == np.float64 and landmarks.coordinates.shape[1] in (2, 3)
    if spatial_dims is not None:
        assert landmarks.spatial_dims == spatial_dims
    assert np.isfinite(landmarks.coordinates[landmarks.visible]).all()
    assert np.isnan(landmarks.coordinates[~landmarks.visible]).all()
    assert len(landmarks.names) == len(landmarks) and all(isinstance(n, str) for n in landmarks.names)


@CASES
@given(text=st.one_of(csv_files(), st.text()), dims=st.sampled_from([None, 2, 3]))
def test_csv_files(text, dims):
    _read(text, ".csv", spatial_dims=dims)


@CASES
@given(text=st.one_of(isbi_files(), st.text(), st.binary(max_size=64)), count=st.sampled_from([None, 1, 19]))
def test_isbi_text_files(text, count):
    _read(text, ".txt", spacing=(0.1, 0.1), num_landmarks=count)


@CASES
@given(text=st.one_of(fcsv_files(), st.text()), dims=st.sampled_from([None, 2, 3]))
def test_slicer_fcsv_files(text, dims):
    _read(text, ".fcsv", spatial_dims=dims)


@CASES
@given(text=st.one_of(json_files(), st.text()), dims=st.sampled_from([None, 2, 3]))
def test_json_files(text, dims):
    _read(text, ".json", spatial_dims=dims)


@CASES
@given(text=st.one_of(mrk_json_files(), st.text()), dims=st.sampled_from([None, 2, 3]))
def test_slicer_mrk_json_files(text, dims):
    _read(text, ".mrk.json", spatial_dims=dims)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    points=st.lists(
        st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    dims=st.sampled_from([2, 3]),
    suffix=st.sampled_from([".csv", ".json", ".fcsv", ".mrk.json"]),
)
def test_what_is_written_reads_back(points, dims, suffix):
    """A correct parse: landmarks written in each format come back as they were (visible or not; Slicer's files
    hold only 3D and, in .fcsv, only visible points)."""
    coordinates = np.array([p[:dims] for p in points], dtype=np.float64)
    visible = np.array([p[3] or suffix == ".fcsv" for p in points])
    written = Landmarks(coordinates, [f"p{i}" for i in range(len(points))], visible)
    with tempfile.TemporaryDirectory() as folder:
        path = write_landmarks(Path(folder) / f"f{suffix}", written)
        read = read_landmarks(path, num_landmarks=len(points), spatial_dims=dims)
    assert read.names == written.names
    np.testing.assert_array_equal(read.visible, written.visible)
    np.testing.assert_allclose(read.coordinates, written.coordinates, rtol=1e-12, atol=1e-9)
