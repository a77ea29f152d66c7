"""The benchmark runs and reports what it says (no timing is asserted: speed is measured, not tested)."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

from bundle import CoorTransformerDetector
from scripts.benchmark import (
    CPU_BUDGET,
    PAPER,
    SIZE,
    _images_per_second,
    end_to_end,
    landmarker_scn,
    markdown,
    shipped_pipeline,
    stages,
    throughput,
)


@pytest.fixture(scope="module")
def ceph(tmp_path_factory):
    image = tmp_path_factory.mktemp("bench") / "ceph.png"
    Image.fromarray(np.zeros((SIZE[1], SIZE[0]), np.uint8)).save(image)
    return str(image)


@pytest.mark.slow
def test_end_to_end_and_stages(ceph):
    timing = end_to_end(ceph, repeats=1, overlays=PAPER)
    assert timing["grid"] == [416, 512] and timing["landmarks"] == 19 and timing["parameters"] == 4532699
    assert set(timing["seconds"]) == {"read", "preprocess", "network", "decode"}
    small = end_to_end(ceph, repeats=1, overlays=CPU_BUDGET)
    assert small["grid"] == [160, 192] and small["landmarks"] == 19 and small["parameters"] < timing["parameters"]
    both = shipped_pipeline(ceph, repeats=1)
    assert set(both["seconds"]) == {"read", "preprocess", "network", "decode", "refine", "trust"}
    assert both["parameters"] > small["parameters"] and both["total_seconds"] == pytest.approx(
        sum(both["seconds"].values())
    )
    # a blank picture is no cephalogram: every orientation is tried, and it stays as acquired, its spacing given
    assert not both["plausible"] and both["orientation"] == "as_acquired" and both["spacing_source"] == "given"
    rows = stages(repeats=1, device=torch.device("cpu"))
    assert [r["heads"] for r in rows] == [8, 4, 2, 1] and all(r["keys"] == 832 for r in rows)
    assert all(r["max_abs_difference"] < 1e-3 for r in rows)
    assert all(r["sdpa"]["peak_mib"] < r["explicit"]["peak_mib"] for r in rows)
    net = CoorTransformerDetector(2, 1, 3, (8, 16, 16), num_heads=(1, 1), kv_strides=(1, 2))
    speed = throughput(net, torch.device("cpu"), grid=(32, 16), batches=(1, 2), train_batch=2, repeats=1)
    assert [(r["dtype"], r["batch"]) for r in speed["inference"]] == [
        ("float32", 1),
        ("float32", 2),
        ("bfloat16", 1),
        ("bfloat16", 2),
    ]
    assert [r["dtype"] for r in speed["training"]] == ["float32", "bfloat16"]
    assert all(r["peak_mib"] is None for r in speed["inference"] + speed["training"])
    result = {
        "command": "c",
        "machine": "m",
        "torch": "t",
        "end_to_end": {
            "paper": timing,
            "coortransformer_shipped": both,
            "landmarker_scn": {"skipped": "not installed"},
        },
        "folder": {"images": 4, "seconds": 2.0, "seconds_per_image": 0.5, "overlays": 4, "refine": True},
        "stages_device": "cpu",
        "stages": rows,
        "cuda": {"skipped": "no CUDA device"},
    }
    text = markdown(result)
    assert "| stage |" in text and "not measured: not installed" in text and "Not measured: no CUDA device" in text
    assert "**0.500 s per image**" in text and "(both stages)" in text and "times faster" not in text
    result["end_to_end"]["landmarker_scn"] = {**both, "total_seconds": 10 * both["total_seconds"]}
    assert "10.0 times faster than landmarker's SCN" in markdown(result)
    for mode in speed.values():
        for r in mode:
            r["peak_mib"] = 1.0
    result["cuda"] = {"device": "GPU", "coortransformer_paper": speed, "landmarker_scn": {"skipped": "x"}}
    assert "| coortransformer_paper | training | bfloat16 | 2 |" in markdown(result)


@pytest.mark.slow
def test_the_folder_run_writes_every_output(tmp_path):
    from scripts.benchmark import folder_inference

    image = tmp_path / "ceph.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 480), np.uint8)).save(image)
    started = time.perf_counter()
    folder = folder_inference(str(image), 3)
    elapsed = time.perf_counter() - started
    assert folder["images"] == 3 and folder["overlays"] == 3 and folder["refine"] is True
    # the whole command is timed, start-up included: most of this call, never more
    assert 0.5 * elapsed < folder["seconds"] <= elapsed
    assert folder["seconds_per_image"] == pytest.approx(folder["seconds"] / 3)


def test_images_per_second_is_the_batch_over_the_time_of_one_step():
    rate = _images_per_second(lambda: time.sleep(0.02), 4, torch.device("cpu"), repeats=3)
    assert 40 < rate <= 4 / 0.02  # a sleep never ends early; a busy machine only makes it longer


def test_landmarker_scn_end_to_end(ceph):
    pytest.importorskip("landmarker", reason="landmarker not installed (pip install --no-deps landmarker==0.4.1)")
    network, decode = landmarker_scn(19)
    timing = end_to_end(ceph, repeats=1, overlays=PAPER, network=network, decode=decode)
    assert timing["grid"] == [416, 512] and timing["landmarks"] == 19 and timing["parameters"] > 1e6
