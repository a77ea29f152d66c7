"""The shape model: plausibility of configurations, the expected position of a landmark, the size of the anatomy,
its file, and the choice among candidate peaks."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bundle.shape import ShapeModel, procrustes_align

BASE = np.array([[0, 0], [40, 5], [80, -10], [95, 40], [70, 90], [30, 100], [5, 60], [45, 45]], dtype=float)
DEPTH = np.array([[10.0], [-25.0], [5.0], [30.0], [-10.0], [20.0], [-30.0], [0.0]])  # the third axis, in 3D


def _rotation(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _population(count: int, seed: int, dims: int = 2) -> np.ndarray:
    """Configurations of one anatomy: two modes of shape variation and 1 mm of noise, in random poses and sizes
    (rotations within 10 degrees, sizes within 10 %)."""
    rng = np.random.default_rng(seed)
    base = BASE if dims == 2 else np.concatenate([BASE, DEPTH], 1)
    mode_a = np.zeros_like(base)
    mode_a[[3, 4], 0] = 1.0  # the right side moves out and in together
    mode_b = np.zeros_like(base)
    mode_b[[5, 6], 1] = 1.0
    shapes = []
    for _ in range(count):
        shape = base + rng.normal(0, 6) * mode_a + rng.normal(0, 4) * mode_b + rng.normal(0, 1.0, base.shape)
        if dims == 2:
            rotation = _rotation(rng.uniform(-10, 10))
        else:
            rotation = Rotation.from_rotvec(rng.normal(0, 0.1, 3)).as_matrix()
        shapes.append(rng.uniform(0.9, 1.1) * shape @ rotation.T + rng.normal(0, 30, dims))
    return np.stack(shapes)


@pytest.fixture(scope="module")
def model() -> ShapeModel:
    return ShapeModel.fit(_population(300, 0), [f"p{k}" for k in range(len(BASE))], modes=4)


def test_procrustes_alignment_removes_pose_and_size():
    shapes = _population(50, 1)
    mean, aligned, sizes = procrustes_align(shapes)
    assert np.abs(mean.mean(0)).max() < 1e-12 and np.sqrt((mean**2).sum()) == pytest.approx(1.0)
    moved = 3.0 * shapes[0] @ _rotation(70).T + 500.0  # another pose and size of the same configuration
    _, again, again_sizes = procrustes_align(np.stack([shapes[0], moved]))
    np.testing.assert_allclose(again[0], again[1], atol=1e-9)
    assert again_sizes[1] == pytest.approx(3.0 * again_sizes[0])


def test_held_out_configurations_are_plausible_in_any_pose_and_mahalanobis_is_calibrated(model):
    """Configurations drawn like the training ones: every landmark is an inlier, and the squared Mahalanobis
    distances, chi-square with D = 2 degrees of freedom, average about 2 (a wrong conditional would not)."""
    held_out = _population(200, 2)
    distances, outliers = [], 0
    for shape in held_out[:100]:
        fit = model.fit_configuration(shape, noise_mm=0.0)
        assert fit.plausible
        distances.append(fit.mahalanobis)
        outliers += int((~fit.inlier).sum())
    assert np.mean(distances) == pytest.approx(2.0, abs=0.4)
    assert outliers <= 4  # of 800 landmarks: the 0.999 quantile flags about 1 by chance
    turned = model.fit_configuration(held_out[100] @ _rotation(30).T + 1000.0, noise_mm=0.0)
    assert turned.plausible and turned.rotation_deg == pytest.approx(
        model.fit_configuration(held_out[100], noise_mm=0.0).rotation_deg + 30, abs=1e-6
    )


def test_a_displaced_landmark_is_found_and_its_expected_position_given(model):
    shape = _population(1, 3)[0]
    wrong = shape.copy()
    wrong[4] += [25.0, -15.0]
    fit = model.fit_configuration(wrong, noise_mm=1.0)
    assert fit.plausible and list(np.flatnonzero(fit.implausible)) == [4]
    assert np.linalg.norm(fit.predicted[4] - shape[4]) < 8.0  # where it should be: the model's scatter, not 29 mm
    assert np.linalg.norm(fit.predicted[4] - shape[4]) < 3.0 * fit.predicted_sd[4] * np.sqrt(2)
    assert fit.mahalanobis[4] > model.threshold and np.all(np.delete(fit.mahalanobis, 4) <= model.threshold)


def test_a_mirrored_a_turned_over_and_a_giant_configuration_are_implausible(model):
    shape = _population(1, 4)[0]
    assert not model.fit_configuration(shape * np.array([-1.0, 1.0]), noise_mm=1.0).plausible
    assert not model.fit_configuration(shape @ _rotation(90).T, noise_mm=1.0).plausible  # a pose beyond 45 degrees
    assert not model.fit_configuration(shape * 3.0, noise_mm=1.0).plausible  # three times the population's size
    assert model.fit_configuration(shape * 1.3, noise_mm=1.0).plausible  # a 30 % larger one is a size, not an error
    noise = np.random.default_rng(5).uniform(0, 100, shape.shape)
    assert not model.fit_configuration(noise, noise_mm=1.0).plausible
    # up to scale (the pixel size unknown), only the size stops counting: the shape and the pose still do
    for factor in (0.2, 3.0, 5.0):
        assert model.fit_configuration(shape * factor, noise_mm=1.0 * factor, check_size=False).plausible
    assert not model.fit_configuration(shape * np.array([-3.0, 3.0]), noise_mm=3.0, check_size=False).plausible
    assert not model.fit_configuration(noise, noise_mm=1.0, check_size=False).plausible
    chosen, fit = model.choose((shape * 3.0)[:, None, :], np.zeros((len(shape), 1)), noise_mm=3.0, check_size=False)
    assert fit.plausible and not model.choose((shape * 3.0)[:, None, :], np.zeros((len(shape), 1)))[1].plausible


def test_the_size_is_the_configurations_in_its_units(model):
    shape = _population(1, 6)[0]
    size = model.fit_configuration(shape, noise_mm=0.0).size
    assert model.fit_configuration(shape * 0.5, noise_mm=0.0).size == pytest.approx(size * 0.5)
    _, _, sizes = procrustes_align(_population(300, 0))
    assert model.size_mean == pytest.approx(sizes.mean()) and model.size_sd == pytest.approx(sizes.std(ddof=1))


def test_missing_landmarks_are_left_out_and_still_predicted(model):
    shape = _population(1, 7)[0]
    partial = shape.copy()
    partial[[1, 6]] = np.nan
    fit = model.fit_configuration(partial, noise_mm=0.5)
    assert fit.plausible and not fit.inlier[[1, 6]].any() and np.isnan(fit.mahalanobis[[1, 6]]).all()
    assert np.linalg.norm(fit.predicted[[1, 6]] - shape[[1, 6]], axis=1).max() < 8.0


def test_the_model_works_in_3d_and_for_other_landmark_counts():
    shapes = _population(200, 8, dims=3)
    model = ShapeModel.fit(shapes, [str(k) for k in range(len(BASE))], modes=4)
    assert model.spatial_dims == 3 and model.num_landmarks == len(BASE)
    held_out = _population(20, 9, dims=3)
    assert all(model.fit_configuration(s, noise_mm=0.0).plausible for s in held_out)
    wrong = held_out[0].copy()
    wrong[2] += [0.0, 30.0, -20.0]
    assert list(np.flatnonzero(model.fit_configuration(wrong, noise_mm=1.0).implausible)) == [2]


def test_few_training_configurations_still_make_a_lenient_model():
    shapes = _population(3, 10)
    model = ShapeModel.fit(shapes, [str(k) for k in range(len(BASE))])
    assert np.sqrt(model.residual_variance) >= 0.02
    assert model.fit_configuration(_population(1, 11)[0], noise_mm=1.0).plausible


def test_the_file_round_trip_and_a_mismatched_file(tmp_path, model):
    path = tmp_path / "shape_model.json"
    model.save(path)
    loaded = ShapeModel.load(path, num_landmarks=len(BASE), spatial_dims=2)
    np.testing.assert_allclose(loaded.mean, model.mean)
    np.testing.assert_allclose(loaded._covariance(), model._covariance())
    assert loaded.names == model.names and loaded.threshold == model.threshold
    with pytest.raises(ValueError, match=f"the shape model has {len(BASE)} landmarks, the network 19"):
        ShapeModel.load(path, num_landmarks=19)
    with pytest.raises(ValueError, match="is 2D, the network 3D"):
        ShapeModel.load(path, spatial_dims=3)
    with pytest.raises(FileNotFoundError, match="missing"):
        ShapeModel.load(tmp_path / "none.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a shape model"):
        ShapeModel.load(tmp_path / "other.json")
    assert ShapeModel.load(path, threshold=5.0).threshold == 5.0


def test_fitting_needs_complete_configurations_and_matching_names():
    shapes = _population(20, 12)
    with pytest.raises(ValueError, match="names for"):
        ShapeModel.fit(shapes, ["a", "b"])
    shapes[3, 2] = np.nan
    with pytest.raises(ValueError, match="complete configurations"):
        ShapeModel.fit(shapes, [str(k) for k in range(len(BASE))])


def test_choosing_takes_the_plausible_candidate_when_the_best_peak_is_not(model):
    shape = _population(1, 13)[0]
    candidates = np.full((len(BASE), 3, 2), np.nan)
    candidates[:, 0] = shape
    log_scores = np.full((len(BASE), 3), np.log(1e-6))
    log_scores[:, 0] = np.log(0.8)
    # landmark 2: the strongest peak is 30 mm away on a look-alike; the second, weaker, is where it should be
    candidates[2, 0] = shape[2] + [30.0, 20.0]
    candidates[2, 1] = shape[2] + [0.5, -0.4]
    candidates[2, 2] = shape[2] + [-28.0, 5.0]
    log_scores[2] = np.log([0.9, 0.4, 0.85])
    chosen, fit = model.choose(candidates, log_scores, noise_mm=1.0)
    assert chosen[2] == 1 and (np.delete(chosen, 2) == 0).all()
    assert fit.plausible and not fit.implausible.any()
    # with no plausible alternative, the best peak stays (and is judged implausible)
    candidates[2, 1] = shape[2] + [-25.0, -25.0]
    chosen, fit = model.choose(candidates, log_scores, noise_mm=1.0)
    assert chosen[2] == 0 and fit.implausible[2]
