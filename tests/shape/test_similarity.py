"""Similarity transforms between point sets: exact recovery, no reflections, robustness to wrong points."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bundle.shape import Similarity, fit_similarity, fit_similarity_robust, rotation_angle_deg


def _rotation_2d(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


@pytest.mark.parametrize("dims", [2, 3])
def test_a_known_similarity_is_recovered_exactly(dims):
    rng = np.random.default_rng(dims)
    source = rng.normal(size=(12, dims))
    rotation = _rotation_2d(33.0) if dims == 2 else Rotation.from_euler("xyz", [20, -40, 75], degrees=True).as_matrix()
    truth = Similarity(2.5, rotation, rng.normal(size=dims))
    fitted = fit_similarity(source, truth.apply(source))
    assert fitted.scale == pytest.approx(2.5)
    np.testing.assert_allclose(fitted.rotation, rotation, atol=1e-10)
    np.testing.assert_allclose(fitted.translation, truth.translation, atol=1e-10)
    np.testing.assert_allclose(fitted.invert(fitted.apply(source)), source, atol=1e-10)


def test_a_mirrored_configuration_gets_a_proper_rotation_and_a_poor_fit():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(10, 2))
    mirrored = source * np.array([-1.0, 1.0])
    fitted = fit_similarity(source, mirrored)
    assert np.linalg.det(fitted.rotation) == pytest.approx(1.0)
    assert np.abs(fitted.apply(source) - mirrored).max() > 0.5  # no reflection: it cannot fit


def test_weights_decide_which_points_count():
    source = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    target = source.copy()
    target[3] = [-40.0, 12.0]  # a wrong point, given no weight
    fitted = fit_similarity(source, target, weights=np.array([1.0, 1.0, 1.0, 0.0]))
    np.testing.assert_allclose(fitted.apply(source[:3]), target[:3], atol=1e-10)
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_similarity(source, target, weights=np.array([1.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="coincide"):
        fit_similarity(np.zeros((3, 2)), target[:3])
    with pytest.raises(ValueError, match="both be"):
        fit_similarity(source, target[:3])


def test_the_robust_fit_ignores_a_third_of_the_points_being_wrong():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(19, 2)) * 50
    truth = Similarity(0.01, _rotation_2d(-12.0), np.array([0.3, -0.2]))
    target = truth.apply(source)
    wrong = [0, 3, 7, 11, 15, 18]
    source_bad = source.copy()
    source_bad[wrong] += rng.normal(size=(len(wrong), 2)) * 40  # 40 mm off
    fitted, weights = fit_similarity_robust(source_bad, target, spread=np.full(19, 0.005))
    assert set(np.flatnonzero(weights == 0)) >= set(wrong)
    assert fitted.scale == pytest.approx(0.01, rel=1e-6)
    np.testing.assert_allclose(fitted.rotation, truth.rotation, atol=1e-6)
    plain = fit_similarity(source_bad, target)  # least squares is pulled away by them
    assert abs(plain.scale - 0.01) > 1e-4


def test_rotation_angles_have_known_values():
    assert rotation_angle_deg(_rotation_2d(30.0)) == pytest.approx(30.0)
    assert rotation_angle_deg(_rotation_2d(-100.0)) == pytest.approx(-100.0)
    assert rotation_angle_deg(Rotation.from_euler("z", 50, degrees=True).as_matrix()) == pytest.approx(50.0)
    assert rotation_angle_deg(np.eye(3)) == pytest.approx(0.0)
