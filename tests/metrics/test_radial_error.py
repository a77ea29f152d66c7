import numpy as np
import pytest
import torch
from ignite.engine import Engine

from bundle import MeanRadialError, SuccessfulDetectionRate, radial_errors
from bundle.errors import InputError
from bundle.handlers import MeanRadialErrorHandler, SuccessfulDetectionRateHandler
from tests.conftest import shared_data


def test_known_errors_accumulate_over_iterations():
    metric = MeanRadialError()
    metric(torch.zeros(1, 2, 2), torch.tensor([[[3.0, 4.0], [0.0, 1.0]]]))  # errors 5, 1
    metric(torch.zeros(1, 2, 3), torch.tensor([[[2.0, 3.0, 6.0], [0.0, 0.0, 3.0]]]))  # errors 7, 3 (3D)
    assert metric.aggregate().item() == pytest.approx(4.0)
    assert metric.aggregate("mean_batch").tolist() == pytest.approx([6.0, 2.0])
    summary = metric.summary()
    assert summary["std"] == pytest.approx(np.std([5, 1, 7, 3], ddof=1))
    assert summary["per_landmark_std"] == pytest.approx([np.std([5, 7], ddof=1), np.std([1, 3], ddof=1)])
    assert summary["count"] == 4
    metric.reset()
    with pytest.raises(ValueError, match="no landmarks"):
        metric.aggregate()


def test_invisible_ground_truth_is_ignored():
    y = torch.tensor([[[3.0, 4.0], [float("nan"), float("nan")], [0.0, 1.0]]])
    metric = MeanRadialError()
    metric(torch.zeros(1, 3, 2), y)
    assert metric.aggregate().item() == pytest.approx(3.0)
    masked = MeanRadialError()
    masked(torch.zeros(1, 3, 2), torch.nan_to_num(y, nan=100.0), mask=torch.tensor([[1, 0, 1]]))
    assert masked.aggregate().item() == pytest.approx(3.0)
    sdr = SuccessfulDetectionRate(radii=[2.0])
    sdr(torch.zeros(1, 3, 2), y)
    assert sdr.aggregate().item() == pytest.approx(50.0)


def test_sdr_counts_errors_equal_to_the_radius():
    # 1.2^2 + 1.6^2 = 4 exactly in real numbers, but sqrt gives 2.0000000000000004 in floating point
    y_pred, y = torch.zeros(1, 2, 2, dtype=torch.float64), torch.tensor([[[1.2, 1.6], [2.0, 2.0]]], dtype=torch.float64)
    sdr = SuccessfulDetectionRate(radii=[2.0, 3.0])
    sdr(y_pred, y)
    assert sdr.aggregate().tolist() == pytest.approx([50.0, 100.0])
    assert sdr.aggregate("mean_batch").tolist() == [[100.0, 0.0], [100.0, 100.0]]


def test_normalisation_by_a_landmark_pair():
    y = torch.tensor([[[0.0, 0.0], [100.0, 0.0], [10.0, 10.0]]])
    y_pred = y + torch.tensor([[[0.0, 0.0], [0.0, 0.0], [4.0, 0.0]]])
    metric = MeanRadialError(reduction="none", normalize_pair=(0, 1), normalize_length=50.0)
    metric(y_pred, y)
    assert metric.aggregate()[0].tolist() == pytest.approx([0.0, 0.0, 2.0])  # 4 mm on a 100 mm pair -> 2 "mm"
    scaled = MeanRadialError(reduction="none", normalize_pair=(0, 1))
    scaled(3 * y_pred, 3 * y)  # invariant to the image's scale
    torch.testing.assert_close(scaled.aggregate(), metric.aggregate())


def test_ignite_handlers_on_an_engine():
    batches = [(torch.zeros(2, 3, 2), torch.full((2, 3, 2), 1.0)), (torch.zeros(1, 3, 2), torch.full((1, 3, 2), 3.0))]
    engine = Engine(lambda engine, batch: batch)
    MeanRadialErrorHandler().attach(engine, "mre")
    SuccessfulDetectionRateHandler(radii=[2.0]).attach(engine, "sdr_2mm")
    SuccessfulDetectionRateHandler(radii=[2.0, 4.5]).attach(engine, "sdr")
    engine.run(batches)
    assert engine.state.metrics["sdr_4.5mm"] == pytest.approx(100.0) and "sdr" not in engine.state.metrics
    assert engine.state.metrics["sdr_2mm"] == pytest.approx(100 * 6 / 9)  # the several-radii one agrees
    expected = (6 * 2**0.5 + 3 * 18**0.5) / 9
    assert engine.state.metrics["mre"] == pytest.approx(expected)
    assert engine.state.metrics["sdr_2mm"] == pytest.approx(100 * 6 / 9)
    assert engine.state.metric_details["mre"].shape == (3, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="must both be"):
        MeanRadialError()(torch.zeros(1, 3, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="reduction"):
        MeanRadialError(reduction="median")
    with pytest.raises(ValueError, match="radii"):
        SuccessfulDetectionRate(radii=[])


def _isbi_errors(first: int, last: int, tolerance: float = 1e-6) -> tuple[float, list[float]]:
    folder = shared_data("isbi2015", "annotations")
    senior = np.loadtxt(folder / "all_senior.csv", delimiter=",")
    junior = np.loadtxt(folder / "all_junior.csv", delimiter=",")
    rows = (senior[:, 0] >= first) & (senior[:, 0] <= last)
    assert (senior[:, 0] == junior[:, 0]).all() and rows.sum() == last - first + 1
    y = torch.tensor(senior[rows, 1:]).reshape(-1, 19, 2)
    y_pred = torch.tensor(junior[rows, 1:]).reshape(-1, 19, 2)
    mre, sdr = MeanRadialError(), SuccessfulDetectionRate(tolerance=tolerance)
    mre(y_pred, y)
    sdr(y_pred, y)
    return mre.aggregate().item(), sdr.aggregate().tolist()


@pytest.mark.parametrize(
    "first, last, mre, sdr",
    [(151, 300, 2.36, [55.54, 63.93, 71.12, 81.51]), (301, 400, 1.51, [74.58, 83.42, 88.84, 94.74])],
)
def test_isbi2015_junior_against_senior(first, last, mre, sdr):
    """Inter-observer figures of ../shared/data/isbi2015/README.md (junior taken as predictions of senior)."""
    measured_mre, measured_sdr = _isbi_errors(first, last)
    assert measured_mre == pytest.approx(mre, abs=0.005)
    assert measured_sdr == pytest.approx(sdr, abs=0.005)


def test_isbi2015_without_tolerance_loses_exact_two_millimetre_errors():
    """Deciding e <= 2 on raw floating point drops errors of exactly 2.0 mm: 55.44 % and 74.42 % instead."""
    assert _isbi_errors(151, 300, tolerance=0.0)[1][0] == pytest.approx(55.44, abs=0.005)
    assert _isbi_errors(301, 400, tolerance=0.0)[1][0] == pytest.approx(74.42, abs=0.005)


def test_normalisation_uses_the_distance_between_the_pair_and_50_mm_by_default():
    # the pair (landmarks 0 and 1) lies at (10, 10) and (13, 14): 5 mm apart, far from the origin
    y = torch.tensor([[[10.0, 10.0], [13.0, 14.0], [0.0, 0.0]]])
    y_pred = y + torch.tensor([[[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]])
    for metric in (MeanRadialError(reduction="none", normalize_pair=(0, 1)), SuccessfulDetectionRate(
        radii=(9.0, 11.0), reduction="none", normalize_pair=(0, 1)
    )):  # fmt: skip
        metric(y_pred, y)
        torch.testing.assert_close(metric.aggregate()[0], torch.tensor([0.0, 0.0, 10.0], dtype=torch.float64))
    sdr = SuccessfulDetectionRate(radii=(9.0, 11.0), normalize_pair=(0, 1))
    sdr(y_pred, y)
    assert sdr.aggregate().tolist() == pytest.approx([200 / 3, 100.0])


def test_one_image_one_landmark_and_the_summary_per_landmark():
    metric = MeanRadialError()
    metric(torch.zeros(1, 1, 2), torch.tensor([[[3.0, 4.0]]]))
    assert metric.aggregate().item() == 5.0
    summary = metric.summary()
    assert summary["std"] == 0.0 and summary["per_landmark_std"] == [0.0] and summary["count"] == 1
    three = MeanRadialError()
    three(
        torch.zeros(3, 2, 2),
        torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[3.0, 0.0], [4.0, 0.0]], [[5.0, 0.0], [6.0, 0.0]]]),
    )
    assert three.summary()["per_landmark_mean"] == pytest.approx([3.0, 4.0])


def test_sdr_per_landmark_with_a_landmark_never_visible():
    y = torch.tensor([[[0.0, 0.0], [float("nan")] * 2, [0.0, 0.0]], [[0.0, 0.0], [float("nan")] * 2, [0.0, 0.0]]])
    y_pred = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [3.0, 0.0]], [[2.5, 0.0], [0.0, 0.0], [0.0, 1.0]]])
    metric = SuccessfulDetectionRate(radii=(2.0, 0.5, 0.0), reduction="mean_batch")
    metric(y_pred, y)
    # landmark 0: errors 1 and 2.5; landmark 1: never visible (0 %, not NaN); landmark 2: errors 3 and 1
    expected = [[50.0, 0.0, 50.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    torch.testing.assert_close(metric.aggregate().double(), torch.tensor(expected, dtype=torch.float64))  # (R, K)
    exact = SuccessfulDetectionRate(radii=0.0)
    exact(torch.zeros(1, 2, 2), torch.tensor([[[0.0, 0.0], [0.5, 0.0]]]))
    assert exact.aggregate().item() == pytest.approx(50.0)  # a radius of 0 counts exact hits


def test_the_documented_defaults_of_the_metrics():
    sdr = SuccessfulDetectionRate()
    assert sdr.radii == [2.0, 2.5, 3.0, 4.0] and sdr.tolerance == 1e-6 and sdr.normalize_length == 50.0
    assert MeanRadialError().normalize_length == 50.0


def test_radial_errors_normalise_to_50_mm_by_default_and_no_visible_landmark_is_0_percent():
    y = torch.tensor([[[10.0, 10.0], [13.0, 14.0], [0.0, 0.0]]])
    errors = radial_errors(y + torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.5, 0.0]]]), y, normalize_pair=(0, 1))
    torch.testing.assert_close(errors, torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64))
    nothing = SuccessfulDetectionRate(radii=2.0)
    nothing(torch.zeros(1, 2, 2), torch.full((1, 2, 2), float("nan")))
    assert nothing.aggregate().item() == 0.0


def test_the_summary_of_a_gathered_table_has_known_values_and_never_synchronises(monkeypatch):
    """Under torchrun only the first process summarises the gathered table: a collective there would wait forever
    for the others, so the summary must not go through the metrics' buffer synchronisation."""
    from bundle.metrics import summarise_errors

    def collective(*args, **kwargs):
        raise AssertionError("the summary of a gathered table synchronised across processes")

    monkeypatch.setattr("monai.metrics.metric.evenly_divisible_all_gather", collective)
    errors = torch.tensor([[1.0, 3.0], [2.0, float("nan")], [5.0, 2.5]])
    report = summarise_errors(errors, ["a", "b"], [2.0, 2.5])
    assert report["images"] == 3 and report["mre"] == pytest.approx(13.5 / 5)
    assert report["sd"] == pytest.approx(np.std([1, 3, 2, 5, 2.5], ddof=1))
    assert report["sdr"] == pytest.approx({"2": 40.0, "2.5": 60.0})
    assert report["per_landmark"][1]["mre"] == pytest.approx(2.75)
    assert report["per_landmark"][1]["sdr"] == pytest.approx({"2": 0.0, "2.5": 50.0})
    with pytest.raises(InputError, match="radii"):
        summarise_errors(errors, ["a", "b"], [])
