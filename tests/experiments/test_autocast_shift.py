"""The autocast measurement runs the shipped model the way inference does and reports shifts in mm."""

import json

import numpy as np
import pytest
from PIL import Image

from experiments.autocast_shift import shifts
from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_shifts_are_reported_per_reduced_precision_for_every_landmark(tmp_path):
    rng = np.random.default_rng(0)
    entries = []
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (240, 200), dtype=np.uint8)).save(tmp_path / name)
        entries.append({"image": name, "spacing": [0.1, 0.1]})
    (tmp_path / "datalist.json").write_text(json.dumps({"validation": entries}))
    result = shifts(
        str(REPO_ROOT / "configs" / "inference.json"), str(tmp_path / "datalist.json"), "validation", device="cpu"
    )
    assert set(result) == {"config_file", "datalist", "split", "device", "float16", "bfloat16"}
    for name in ("float16", "bfloat16"):
        r = result[name]
        assert r["landmarks"] == 2 * 19
        assert 0 <= r["median_mm"] <= r["max_mm"] and 0 <= r["mean_mm"] <= r["max_mm"]
        assert np.isfinite([r["mean_mm"], r["max_mm"]]).all()
