"""The benchmark runs and reports what it says (no timing is asserted: speed is measured, not tested)."""

import numpy as np
from PIL import Image

from scripts.benchmark import SIZE, end_to_end, markdown, stages


def test_benchmark_runs_and_sdpa_matches_the_explicit_reference(tmp_path):
    image = tmp_path / "ceph.png"
    Image.fromarray(np.zeros((SIZE[1], SIZE[0]), np.uint8)).save(image)
    timing = end_to_end(str(image), repeats=1, checkpoint=None)
    assert timing["grid"] == [416, 512] and timing["landmarks"] == 19
    assert set(timing["seconds"]) == {"read", "preprocess", "network", "decode"}
    rows = stages(repeats=1, device=__import__("torch").device("cpu"))
    assert [r["heads"] for r in rows] == [8, 4, 2, 1] and all(r["keys"] == 832 for r in rows)
    assert all(r["max_abs_difference"] < 1e-3 for r in rows)
    assert all(r["sdpa"]["peak_mib"] < r["explicit"]["peak_mib"] for r in rows)
    result = {
        "command": "c",
        "machine": "m",
        "torch": "t",
        "end_to_end": timing,
        "stages_device": "cpu",
        "stages": rows,
    }
    assert "| stage |" in markdown(result)
