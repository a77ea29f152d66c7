"""Each handler on a small ignite engine: what it computes, writes, saves and restores."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.engines import Evaluator
from monai.handlers import from_engine
from monai.transforms import Compose, RandAffined, RandGaussianNoised

from bundle import bundled_landmark_set
from bundle.handlers import (
    BestModelSaver,
    LandmarkReportWriter,
    LandmarkTableWriter,
    MeanRadialErrorHandler,
    PeriodicValidationHandler,
    RandomStates,
    ResumeCheckpointSaver,
    SuccessfulDetectionRateHandler,
)
from bundle.io import read_landmarks
from bundle.transforms import LandmarkResultd


class CountingEvaluator(Evaluator):
    """An evaluator that records the epochs it is run for."""

    def __init__(self):
        super().__init__(device="cpu", val_data_loader=[0])
        self.epochs = []

    def run(self, global_epoch: int = 1) -> None:
        self.epochs.append(global_epoch)


def _trainer(epochs: int) -> Engine:
    engine = Engine(lambda e, b: None)
    engine.max = epochs
    return engine


@pytest.mark.parametrize("epochs, expected", [(12, [5, 10, 12]), (10, [5, 10]), (3, [3])])
def test_validation_every_interval_and_after_the_last_epoch(epochs, expected):
    validator = CountingEvaluator()
    trainer = Engine(lambda e, b: None)
    PeriodicValidationHandler(interval=5, validator=validator).attach(trainer)
    trainer.run([0], max_epochs=epochs)
    assert validator.epochs == expected


def _points(errors_mm):
    """(B, K, 2) predictions and truths whose radial errors are ``errors_mm`` (B, K)."""
    errors = torch.as_tensor(errors_mm, dtype=torch.float64)
    truth = torch.zeros(*errors.shape, 2, dtype=torch.float64)
    return torch.stack([errors, torch.zeros_like(errors)], -1), truth


def test_metric_handlers_give_the_mean_and_one_sdr_per_radius():
    batches = [_points([[1.0, 3.0]]), _points([[2.0, 6.0]])]
    engine = Engine(lambda e, batch: batch)
    MeanRadialErrorHandler().attach(engine, "val_mre")
    SuccessfulDetectionRateHandler(radii=(2.0, 4.0)).attach(engine, "val_sdr")
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["val_mre"] == pytest.approx(3.0)
    assert engine.state.metrics["val_sdr_2mm"] == pytest.approx(50.0) and engine.state.metrics["val_sdr_4mm"] == 75.0
    assert engine.state.metric_details["val_mre"].tolist() == [[1.0, 3.0], [2.0, 6.0]]


def test_the_report_writer_writes_per_image_errors_and_the_summary(tmp_path):
    images = [MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": f"/d/{i}.png"}) for i in range(2)]

    def output(i: int) -> list[dict]:  # one image's post-processed output, as an evaluator hands it on
        pred, true = _points([[1.0 + i, 3.0]])
        return [{"image": images[i], "pred_landmarks": pred[0], "true_landmarks": true[0]}]

    engine = Engine(lambda e, i: output(i))
    MeanRadialErrorHandler(output_transform=from_engine(["pred_landmarks", "true_landmarks"])).attach(engine, "val_mre")
    LandmarkReportWriter(str(tmp_path), ["a", "b"], radii=(2.0,)).attach(engine)
    engine.run([0, 1], max_epochs=1)
    rows = list(csv.reader((tmp_path / "landmark_errors.csv").open()))
    assert rows == [["image", "a", "b"], ["/d/0.png", "1.0000", "3.0000"], ["/d/1.png", "2.0000", "3.0000"]]
    report = json.loads((tmp_path / "landmark_report.json").read_text())
    assert report["mre"] == pytest.approx(2.25) and report["sdr"]["2"] == pytest.approx(50.0)
    with pytest.raises(FileExistsError, match="landmark_errors.csv"):
        engine.run([0, 1], max_epochs=1)


def test_the_table_writer_writes_one_row_per_image_and_landmark_and_nothing_partial(tmp_path):
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/d/x.png"})
    image.meta["source_affine"] = torch.diag(torch.tensor([0.1, 0.2, 1.0, 1.0], dtype=torch.float64))
    image.meta["spacing_source"] = "estimated"
    data = {
        "image": image,
        "pred_landmarks": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "pred_pixels": torch.tensor([[10.0, 20.0], [30.0, 40.0]]),
        "pred_confidence": torch.tensor([0.9, 0.5]),
        "pred_error_radius": torch.tensor([1.25, float("nan")]),
        "pred_review": torch.tensor([False, True]),
        "pred_visible": torch.tensor([True, False]),
        "orientation": "mirrored",
    }
    output = LandmarkResultd("pred_landmarks", ["a", "b"])(data)
    engine = Engine(lambda e, b: [output])
    LandmarkTableWriter(str(tmp_path), ["a", "b"]).attach(engine)
    engine.run([0], max_epochs=1)
    rows = list(csv.reader((tmp_path / "landmarks.csv").open()))
    assert rows[0] == [
        "image", "index", "name", "x_px", "y_px", "x_mm", "y_mm", "confidence", "visible", "error_radius_mm",
        "review", "spacing_x", "spacing_y", "spacing_source", "orientation",
    ]  # fmt: skip
    assert rows[1][8:] == ["1", "1.250", "0", "0.1", "0.2", "estimated", "mirrored"]
    # a point outside the image keeps its coordinates; no radius is an empty cell, not NaN
    assert rows[2] == [
        "/d/x.png", "1", "b", "30.0000", "40.0000", "3.0000", "4.0000", "0.5000", "0", "", "1", "0.1", "0.2",
        "estimated", "mirrored",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landmarks.csv"]  # no temporary file left


def test_the_table_writer_refuses_records_of_other_landmarks(tmp_path):
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/d/x.png"})
    data = {"image": image, "pred_landmarks": torch.zeros(2, 2), "pred_pixels": torch.zeros(2, 2)}
    output = LandmarkResultd("pred_landmarks", ["a", "c"])({**data, "pred_confidence": torch.ones(2)})
    engine = Engine(lambda e, b: [output])
    LandmarkTableWriter(str(tmp_path), ["a", "b"]).attach(engine)
    with pytest.raises(ValueError, match="expected"):
        engine.run([0], max_epochs=1)


def test_the_best_model_saver_keeps_its_best_across_a_resume_and_says_what_it_saved(tmp_path):
    model = torch.nn.Linear(2, 1)

    def saver():
        return BestModelSaver(
            str(tmp_path), {"model": model}, save_key_metric=True, key_metric_filename="model.pt",
            key_metric_negative_sign=True,
        )  # fmt: skip

    def evaluate(handler, value, epoch):
        """One validation at the training's ``epoch`` (MONAI's evaluator runs with the trainer's epoch)."""

        def score(engine):
            engine.state.epoch, engine.state.key_metric_name = epoch, "val_mre"
            engine.state.metrics["val_mre"] = value

        engine = Engine(lambda e, b: None)
        engine.add_event_handler(Events.EPOCH_COMPLETED, score)
        handler.attach(engine)
        engine.run([0], max_epochs=1)

    first = saver()
    evaluate(first, 2.0, 1)
    assert json.loads((tmp_path / "model.json").read_text())["value"] == 2.0
    state = first.state_dict()
    resumed = saver()
    resumed.load_state_dict(state)
    evaluate(resumed, 3.0, 2)  # worse than the best before the resume: model.pt stays
    record = json.loads((tmp_path / "model.json").read_text())
    assert (record["epoch"], record["value"], record["metric"]) == (1, 2.0, "val_mre")
    evaluate(resumed, 1.5, 3)
    assert json.loads((tmp_path / "model.json").read_text())["epoch"] == 3


def test_resume_checkpoints_are_pruned_across_runs(tmp_path):
    model = torch.nn.Linear(2, 1)
    for epoch in (3, 7):  # left by earlier, resumed runs
        torch.save({}, tmp_path / f"resume_checkpoint_epoch={epoch}.pt")
    (tmp_path / "other.pt").write_bytes(b"")
    engine = Engine(lambda e, b: None)
    state = {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}  # as train.json saves
    ResumeCheckpointSaver(str(tmp_path), state, file_prefix="resume", save_interval=1, n_saved=2).attach(engine)
    engine.state.epoch, engine.state.iteration, engine.state.max_epochs, engine.state.epoch_length = 7, 7, 9, 1
    engine.run([0])  # resumes at epoch 8, as a training resumed from epoch 7's checkpoint
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["other.pt", "resume_checkpoint_epoch=8.pt", "resume_checkpoint_epoch=9.pt"]


def test_random_states_round_trip_through_a_checkpoint(tmp_path):
    transforms = Compose([RandAffined("image", prob=1.0, rotate_range=0.3), RandGaussianNoised("image", prob=1.0)])
    transforms.set_random_state(seed=3)
    states = RandomStates(transforms)

    def draw():
        image = transforms({"image": torch.zeros(1, 8, 8)})["image"]
        return image.sum().item(), random.random(), np.random.rand(), torch.rand(1).item()

    torch.save(states.state_dict(), tmp_path / "rng.pt")
    first = [draw() for _ in range(3)]
    states.load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True))  # what CheckpointLoader does
    assert [draw() for _ in range(3)] == first
    with pytest.raises(ValueError, match=r"holds 6 random transforms' states, the training has 3: resume with"):
        RandomStates(Compose([RandGaussianNoised("image")])).load_state_dict(
            torch.load(tmp_path / "rng.pt", weights_only=True)
        )


def test_one_sdr_radius_gives_one_number_and_a_pair_normalises():
    batches = [_points([[1.0, 3.0, 50.0]]), _points([[2.0, 6.0, 25.0]])]
    engine = Engine(lambda e, batch: batch)
    SuccessfulDetectionRateHandler(radii=(2.5,)).attach(engine, "val_sdr")
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["val_sdr"] == pytest.approx(100 * 2 / 6)  # 1 and 2 mm of the six errors
    # normalised: the pair (0, 2) of the truths is 20 mm apart, scaled to 10, so every error counts half
    truth = torch.tensor([[[0.0, 0.0], [5.0, 0.0], [20.0, 0.0]]], dtype=torch.float64)
    predicted = truth + torch.tensor([[[0.0, 4.0], [0.0, 6.0], [0.0, 2.0]]], dtype=torch.float64)
    scaled = Engine(lambda e, batch: batch)
    MeanRadialErrorHandler(normalize_pair=(0, 2), normalize_length=10.0).attach(scaled, "val_mre")
    SuccessfulDetectionRateHandler(radii=(2.5,), normalize_pair=(0, 2), normalize_length=10.0).attach(scaled, "sdr")
    scaled.run([(predicted, truth)], max_epochs=1)
    assert scaled.state.metrics["val_mre"] == pytest.approx((2.0 + 3.0 + 1.0) / 3)
    assert scaled.state.metrics["sdr"] == pytest.approx(100 * 2 / 3)  # 2 and 1 (normalised) within 2.5


def test_the_validation_line_names_the_epoch_the_metrics_and_the_best(caplog):
    from bundle.handlers import ValidationLine

    validator = Engine(lambda e, b: None)

    @validator.on(Events.COMPLETED)
    def _score(engine):
        engine.state.epoch = 7
        engine.state.metrics.update(val_mre=1.25, val_sdr_2mm=88.5)
        engine.state.key_metric_name, engine.state.best_metric, engine.state.best_metric_epoch = "val_mre", 1.1, 5

    ValidationLine(max_epochs=20).attach(validator)
    with caplog.at_level("INFO"):
        validator.run([0], max_epochs=1)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bundle"]
    assert line == "validation at epoch 7/20: val_mre 1.25, val_sdr_2mm 88.5 (best val_mre 1.1 at epoch 5)"


def test_the_training_summary_names_the_best_model_its_epoch_and_score(tmp_path, caplog):
    from bundle.handlers import TrainingSummary

    trainer = Engine(lambda e, b: None)
    TrainingSummary(str(tmp_path / "model.pt")).attach(trainer)
    with caplog.at_level("INFO"):
        trainer.run([0], max_epochs=3)
    assert "no model was saved" in caplog.text
    (tmp_path / "model.json").write_text(
        json.dumps({"model": "model.pt", "epoch": 2, "metric": "val_mre", "value": 0.4567})
    )
    caplog.clear()
    with caplog.at_level("INFO"):
        trainer.run([0], max_epochs=3)
    assert f"best model {tmp_path / 'model.pt'} (epoch 2, val_mre 0.4567); 3 epochs run." in caplog.text


def test_the_shape_model_writer_fits_the_training_landmarks_in_the_image_frame(tmp_path):
    from types import SimpleNamespace

    from bundle import load_datalist
    from bundle.handlers import ShapeModelWriter
    from bundle.shape import ShapeModel
    from tests.conftest import REPO_ROOT

    entries = load_datalist(REPO_ROOT / "data" / "demo" / "datalist.json", "training")
    names = bundled_landmark_set("demo").names
    writer = ShapeModelWriter(SimpleNamespace(data=entries), tmp_path / "shape_model.json", names, modes=3)
    trainer = Engine(lambda e, b: None)
    writer.attach(trainer)
    trainer.run([0], max_epochs=1)
    model = ShapeModel.load(tmp_path / "shape_model.json", num_landmarks=6, spatial_dims=2)
    assert model.count == len(entries) and model.names == names and len(model.variances) == 3
    first = read_landmarks(entries[0]["landmarks"], 6, entries[0]["spacing"], 2)
    assert model.fit_configuration(first.coordinates, noise_mm=0.5).plausible  # a training shape fits its model


def test_the_calibration_writer_fits_on_the_run_and_refuses_to_replace_a_calibration(tmp_path):
    from bundle.handlers import ErrorCalibrationWriter
    from bundle.uncertainty import ErrorCalibration

    rng = np.random.default_rng(0)
    outputs = []
    for _ in range(12):
        truth = torch.as_tensor(rng.uniform(0, 50, (3, 2)))
        spread = torch.as_tensor(rng.uniform(0.5, 2.0, 3))
        offset = torch.as_tensor(rng.normal(size=(3, 2))) * spread[:, None]
        outputs.append(
            {"pred_landmarks": truth + offset, "true_landmarks": truth, "pred_spread": spread,
             "pred_confidence": torch.full((3,), 0.5)}  # fmt: skip
        )
    batches = iter(outputs)
    engine = Engine(lambda e, b: [next(batches)])
    ErrorCalibrationWriter(tmp_path / "calibration.json", "both_stages", coverages=(0.9,)).attach(engine)
    engine.run(range(12), max_epochs=1)
    calibration = ErrorCalibration.load(tmp_path / "calibration.json", "both_stages", num_landmarks=3)
    assert calibration.images == 12 and calibration.count == 36 and set(calibration.quantiles) == {0.9}
    again = Engine(lambda e, b: [outputs[0]])
    ErrorCalibrationWriter(tmp_path / "calibration.json", "both_stages").attach(again)
    with pytest.raises(FileExistsError, match="already calibrates 'both_stages'"):
        again.run([0], max_epochs=1)
    batches = iter(outputs)
    mondrian = Engine(lambda e, b: [next(batches)])
    ErrorCalibrationWriter(tmp_path / "calibration.json", "first_stage", (0.9,), per_landmark="true").attach(mondrian)
    mondrian.run(range(12), max_epochs=1)
    per_landmark = ErrorCalibration.load(tmp_path / "calibration.json", "first_stage", num_landmarks=3)
    assert per_landmark.per_landmark and np.shape(per_landmark.quantiles[0.9]) == (3,)
    assert not calibration.per_landmark
