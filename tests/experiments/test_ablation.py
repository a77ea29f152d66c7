"""experiments/ablation.py: the reduced copy's geometry, the overlays, resuming, the statistics and the verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

from bundle import CentralLoss, HeatmapFocalLoss
from bundle.io import read_landmarks
from bundle.networks import DeformableAttentionBlock, ShiftedWindowBlock
from experiments import ablation

REPO = Path(__file__).resolve().parents[2]


def test_the_reduced_copy_keeps_each_landmark_on_its_pixel(tmp_path):
    """A bright 2 x 2 block at source columns 4-5 and rows 2-3 of an 11 x 9 picture, reduced by 2 (cropped to 10 x 8),
    is the copy's pixel (column 2, row 1); the landmark at the block's centre must land on that pixel's centre."""
    pixels = np.zeros((9, 11), dtype=np.uint8)
    pixels[2:4, 4:6] = 200
    Image.fromarray(pixels).save(tmp_path / "001.png")
    (tmp_path / "001.csv").write_text("name,x,y\ncentre,0.45,0.25\n")  # pixel (4.5, 2.5) at 0.1 mm
    entry = {"image": "001.png", "landmarks": "001.csv", "spacing": [0.1, 0.1]}
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [entry], "test1": [entry]}))

    path = ablation.prepare(str(tmp_path / "datalist.json"), tmp_path / "out", factor=2)

    reduced = json.loads(path.read_text())
    assert reduced["training"] == reduced["test1"] and reduced["training"][0]["spacing"] == [0.2, 0.2]
    copy = np.asarray(Image.open(reduced["training"][0]["image"]))
    assert copy.shape == (4, 5) and copy[1, 2] == 200 and copy.sum() == 200
    world = read_landmarks(path.parent / reduced["training"][0]["landmarks"]).coordinates[0]
    np.testing.assert_allclose(world / 0.2, [2.0, 1.0], atol=1e-9)  # (column, row) of the bright pixel


def test_weighted_cross_entropy_balances_landmark_and_background_mass():
    w = ablation.balanced_pos_weight([80, 96], 2.0)
    landmark = 2 * math.pi * 4.0
    assert w * landmark == pytest.approx(80 * 96 - landmark)
    grid = torch.stack(torch.meshgrid(torch.arange(96.0), torch.arange(80.0), indexing="ij"))
    target = torch.exp(-((grid - torch.tensor([48.0, 40.0])[:, None, None]) ** 2).sum(0) / 8.0)
    assert float(target.sum()) == pytest.approx(landmark, rel=1e-6)  # the mass the formula assumes


@pytest.mark.parametrize("name", list(ablation.EXPERIMENTS))
def test_every_overlay_builds_the_network_and_loss_it_names(name, tmp_path):
    protocol = tmp_path / "protocol.json"
    protocol.write_text(json.dumps(ablation.PROTOCOL))
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps(ablation.EXPERIMENTS[name].overlay))
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs/train.json"), str(protocol), str(overlay)])
    loss = parser.get_parsed_content("loss")
    network = parser.get_parsed_content("network_def")
    kind = ablation.EXPERIMENTS[name].overlay.get("network_def#attention", "coor")
    assert type(network.decoder[0].attention).__name__ == {
        "none": "Identity", "vanilla": "CoorTransformerBlock", "coor": "CoorTransformerBlock",
        "swin": ShiftedWindowBlock.__name__, "deformable": DeformableAttentionBlock.__name__,
    }[kind]  # fmt: skip
    if kind in ("coor", "vanilla"):
        assert network.decoder[0].attention.use_coordinates is (kind == "coor")
    if name == "unet_focal":
        assert isinstance(loss, HeatmapFocalLoss)
    else:
        assert isinstance(loss, CentralLoss)
        assert loss.r == {"unet_ce": 0, "unet_wce": 0, "coor_r0": 0, "coor_r1": 1, "coor_r3": 3}.get(name, 2)
        assert loss.pos_weight == (pytest.approx(ablation.balanced_pos_weight([80, 96], 2.0), abs=0.1)
                                   if name == "unet_wce" else 1.0)  # fmt: skip
    assert parser.get_parsed_content("grid_size") == [80, 96]


def test_tables_use_known_experiments_and_claim_a_row_of_their_own():
    for table in ablation.TABLES.values():
        assert set(table.rows) <= set(ablation.EXPERIMENTS) and table.best in table.rows
    assert ablation.experiments_of(["II", "IV"]).count("unet_central") == 1  # shared rows run once


def test_a_run_is_trained_then_evaluated_once_and_resumed_by_its_record(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ablation.subprocess, "run", lambda command, **kw: calls.append(command))
    folder = ablation.run_one(tmp_path, "swin", 2)
    assert folder == tmp_path / "runs" / "swin" / "seed2"
    train, evaluate = calls
    assert train[3:5] == ["run", "training"] and train[train.index("--seed") + 1] == "2"
    files = eval(train[train.index("--config_file") + 1])
    assert files == ["configs/train.json", str(tmp_path / "protocol.json"), str(folder / "overlay.json")]
    assert evaluate[3:5] == ["run", "evaluating"]
    files = eval(evaluate[evaluate.index("--config_file") + 1])
    assert files == ["configs/inference.json", "configs/evaluate.json", str(folder / "evaluation.json")]
    # evaluation: the first stage alone on the test split, with the run's network and grid, none of its training
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["network_def#attention"] == "swin" and evaluation["datalist_key"] == "test"
    assert evaluation["trust"] is False and evaluation["refine"] is False and "loss" not in evaluation
    assert json.loads((folder / "overlay.json").read_text()) == {"network_def#attention": "swin"}
    assert json.loads((folder / "run.json").read_text())["seed"] == 2
    ablation.run_one(tmp_path, "swin", 2)
    assert len(calls) == 2  # finished: not run again


def test_the_study_needs_the_reduced_copy_or_a_datalist_for_the_paper_protocol(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare"):
        ablation.run_study(tmp_path, ["II"], [0])
    with pytest.raises(FileNotFoundError, match="--datalist"):
        ablation.run_study(tmp_path, ["II"], [0], protocol="paper")
    with pytest.raises(ValueError, match="protocol must be one of"):
        ablation.run_study(tmp_path, ["II"], [0], protocol="gpu")


def test_the_paper_protocol_adds_the_paper_size_and_runs_on_the_original_images(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ablation.subprocess, "run", lambda command, **kw: calls.append(command))
    datalist = tmp_path / "datalist.json"
    datalist.write_text("{}")
    ablation.run_study(tmp_path / "study", ["IV"], [0], protocol="paper", datalist=str(datalist))
    assert len(calls) == 2 * len(ablation.TABLES["IV"].rows)
    files = eval(calls[0][calls[0].index("--config_file") + 1])
    assert files[:3] == ["configs/train.json", "configs/isbi2015_paper.json", str(tmp_path / "study" / "protocol.json")]
    assert json.loads((tmp_path / "study" / "protocol.json").read_text()) == {"datalist": str(datalist.resolve())}
    assert ablation.study_protocol(tmp_path / "study") == "paper"
    assert ablation.study_datalist(tmp_path / "study") == str(datalist.resolve())


def _tests(differences: dict, p: float) -> dict:
    return {(o, s): {"difference": d, "p": p} for o, d in differences.items() for s in ablation.SPLITS}


def test_verdict_rules():
    assert ablation.verdict("b", ["a", "c"], _tests({"a": 0.1, "c": 0.2}, 0.01)) == "confirmed"
    assert ablation.verdict("b", ["a", "c"], _tests({"a": 0.1, "c": 0.2}, 0.2)) == "inconclusive"
    assert ablation.verdict("b", ["a", "c"], _tests({"a": -0.1, "c": 0.2}, 0.01)) == "refuted"
    tests = _tests({"a": 0.1}, 0.01)
    tests[("a", "test2")] = {"difference": 0.1, "p": 0.3}  # one split not significant
    assert ablation.verdict("b", ["a"], tests) == "inconclusive"


def _run(name: str, seed: int, curve: list[float]) -> ablation.Run:
    return ablation.Run(name, seed, {}, {}, [(2 * (i + 1), v) for i, v in enumerate(curve)], 1.0)


def test_convergence_verdict_by_area_under_the_validation_curve():
    runs = {"coor_r2": [_run("coor_r2", s, [9, 3, 2]) for s in (0, 1)],
            "vanilla": [_run("vanilla", s, [9, 5, 2]) for s in (0, 1)]}  # fmt: skip
    area, result = ablation.convergence(runs, ["coor_r2", "vanilla"], "coor_r2")
    assert result == "confirmed" and area["coor_r2"][0] == pytest.approx(14 / 3)
    runs["vanilla"] = [_run("vanilla", 0, [9, 2, 2]), _run("vanilla", 1, [9, 4, 2])]
    assert ablation.convergence(runs, ["coor_r2", "vanilla"], "coor_r2")[1] == "inconclusive"
    runs["vanilla"] = [_run("vanilla", s, [5, 2, 2]) for s in (0, 1)]
    assert ablation.convergence(runs, ["coor_r2", "vanilla"], "coor_r2")[1] == "refuted"


def _write_run(out: Path, name: str, seed: int, errors: np.ndarray, stems: list[str]) -> None:
    folder = out / "runs" / name / f"seed{seed}"
    (folder / "test").mkdir(parents=True)
    (folder / "runs").mkdir()
    rows = ["image," + ",".join(f"l{k}" for k in range(errors.shape[1]))]
    rows += [f"/x/{s}.png," + ",".join(f"{e:.4f}" for e in r) for s, r in zip(stems, errors)]
    (folder / "test" / "landmark_errors.csv").write_text("\n".join(rows) + "\n")
    (folder / "run.json").write_text(json.dumps({"experiment": name, "seed": seed, "train_s": 60.0}))


def test_report_writes_the_table_its_paired_tests_verdict_and_box_plot(tmp_path):
    stems = [f"{i:03d}" for i in range(151, 171)] + [f"{i:03d}" for i in range(301, 311)]
    entries = [{"image": f"{s}.png", "landmarks": f"{s}.csv"} for s in stems]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "datalist.json").write_text(json.dumps({"test1": entries[:20], "test2": entries[20:]}))
    rng = np.random.default_rng(0)
    base = rng.uniform(1.0, 3.0, size=(30, 2))
    for seed in (0, 1):
        for name, extra in (("unet_ce", 0.5), ("unet_wce", 0.4), ("unet_focal", 0.6), ("unet_central", 0.0)):
            _write_run(tmp_path, name, seed, base + extra + rng.normal(0, 0.05, size=base.shape), stems)
    doc = tmp_path / "docs" / "ablation.md"
    doc.parent.mkdir()
    verdicts = ablation.report(tmp_path, ["II"], doc, tmp_path / "docs" / "figures")
    assert verdicts == {"II": "confirmed"}
    text = doc.read_text()
    assert "| U-Net, central loss (r 2) (claimed best) | 2 |" in text and "**Verdict: confirmed.**" in text
    ce = np.mean([np.loadtxt(tmp_path / f"runs/unet_ce/seed{s}/test/landmark_errors.csv", delimiter=",",
                             skiprows=1, usecols=(1, 2)) for s in (0, 1)], axis=0)  # fmt: skip
    central = np.mean([np.loadtxt(tmp_path / f"runs/unet_central/seed{s}/test/landmark_errors.csv", delimiter=",",
                                  skiprows=1, usecols=(1, 2)) for s in (0, 1)], axis=0)  # fmt: skip
    expected = (ce.mean(1) - central.mean(1))[:20].mean()
    assert f"| {expected:+.3f}, p = " in text  # Test1's paired difference, CE - central, per-image seed means
    assert "![per-image MRE per loss](figures/ablation_losses.png)" in text
    with Image.open(tmp_path / "docs" / "figures" / "ablation_losses.png") as plot:
        assert plot.size[0] > 100 and plot.info["Software"].startswith("Matplotlib")  # what the repository allows
    # a table with a row missing is not judged
    assert ablation.report(tmp_path, ["III"], doc, tmp_path / "docs" / "figures") == {"III": "not run"}
