import math

import pytest
import torch

from bundle import GaussianHeatmapCodec

SIGMAS = (1.5, 2.0, 3.0, 4.0)
SHAPES = {2: (64, 52), 3: (40, 36, 38)}


def _random_points(spatial_dims: int, n: int, margin: float = 12.0, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor(SHAPES[spatial_dims], dtype=torch.float32)
    return margin + torch.rand(n, spatial_dims, generator=generator) * (size - 1 - 2 * margin)


def test_encode_known_values_and_sub_pixel_position():
    codec = GaussianHeatmapCodec(2, truncate=3.0)
    heatmaps, visible = codec.encode(torch.tensor([[10.0, 20.0], [10.3, 20.7]]), (32, 40), sigma=2.0)
    assert heatmaps.shape == (2, 32, 40) and visible.tolist() == [True, True]
    assert heatmaps[0, 10, 20] == 1.0
    torch.testing.assert_close(heatmaps[0, 12, 20], torch.tensor(math.exp(-0.5)))
    torch.testing.assert_close(heatmaps[0, 11, 21], torch.tensor(math.exp(-2 / 8)))
    torch.testing.assert_close(heatmaps[0, 16, 20], torch.tensor(math.exp(-4.5)))  # exactly 3 sigma: kept
    assert heatmaps[0, 17, 20] == 0.0 and heatmaps[0, 15, 25] == 0.0  # 7 and 7.07 px: beyond 3 sigma
    assert heatmaps[0, 14, 24] > 0  # 5.66 px: inside
    # the second point is not rounded to (10, 21): its value there is below 1
    torch.testing.assert_close(heatmaps[1, 10, 21], torch.tensor(math.exp(-(0.09 + 0.09) / 8)))
    assert heatmaps[1].max() < 1.0


def test_per_landmark_sigma_and_batched_input():
    codec = GaussianHeatmapCodec(2)
    points = torch.tensor([[[8.0, 8.0], [20.0, 20.0]], [[9.0, 9.0], [21.0, 21.0]]])  # (B=2, K=2, D=2)
    heatmaps, visible = codec.encode(points, (32, 32), sigma=torch.tensor([1.0, 3.0]))
    assert heatmaps.shape == (2, 2, 32, 32) and visible.shape == (2, 2)
    torch.testing.assert_close(heatmaps[0, 0, 9, 8], torch.tensor(math.exp(-1 / 2)))
    torch.testing.assert_close(heatmaps[0, 1, 21, 20], torch.tensor(math.exp(-1 / 18)))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_encode_then_dark_decode_returns_the_point(spatial_dims, sigma):
    codec = GaussianHeatmapCodec(spatial_dims)
    points = _random_points(spatial_dims, 40)
    heatmaps, _ = codec.encode(points, SHAPES[spatial_dims], sigma)
    decoded, confidence = codec.decode(heatmaps)
    assert decoded.shape == points.shape and confidence.shape == (40,)
    assert (decoded - points).norm(dim=-1).max() < 0.05
    assert (confidence > 0.85).all()


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_dark_is_robust_to_noise(spatial_dims, sigma):
    codec = GaussianHeatmapCodec(spatial_dims)
    points = _random_points(spatial_dims, 40, seed=1)
    heatmaps, _ = codec.encode(points, SHAPES[spatial_dims], sigma)
    noisy = heatmaps + 0.05 * torch.randn(heatmaps.shape, generator=torch.Generator().manual_seed(2))
    decoded, _ = codec.decode(noisy)
    assert (decoded - points).norm(dim=-1).mean() < 0.15


def test_argmax_and_soft_argmax():
    codec = GaussianHeatmapCodec(2)
    points = _random_points(2, 50)
    heatmaps, _ = codec.encode(points, SHAPES[2], sigma=1.5)
    argmax, _ = codec.decode(heatmaps, method="argmax")
    torch.testing.assert_close(argmax, torch.round(points))
    soft, _ = codec.decode(heatmaps, method="soft_argmax")
    assert (soft - points).norm(dim=-1).mean() < (argmax - points).norm(dim=-1).mean()
    # a point on a pixel centre: the symmetric window gives it exactly
    centred, _ = codec.encode(torch.tensor([[20.0, 30.0]]), SHAPES[2], 2.0)
    torch.testing.assert_close(codec.decode(centred, method="soft_argmax")[0], torch.tensor([[20.0, 30.0]]))


def test_outside_and_non_finite_points_give_zero_channels():
    codec = GaussianHeatmapCodec(2)
    points = torch.tensor([[-0.6, 5.0], [5.0, 31.6], [float("nan"), 3.0], [-0.5, 31.5], [3.0, float("inf")]])
    heatmaps, visible = codec.encode(points, (20, 32), 2.0)
    assert visible.tolist() == [False, False, False, True, False]
    assert heatmaps[~visible].abs().max() == 0
    assert heatmaps[3].max() > 0.9  # on the extent's corner: inside, Gaussian cut by the border
    _, confidence = codec.decode(heatmaps)
    assert confidence.tolist()[:3] == [0.0, 0.0, 0.0]


def test_points_at_the_border_decode_as_documented():
    codec = GaussianHeatmapCodec(2)
    # on the first/last index the Newton step is dropped: the integer argmax comes back
    heatmaps, _ = codec.encode(torch.tensor([[0.2, 15.3], [19.3, 15.3]]), (20, 32), 2.0)
    decoded, _ = codec.decode(heatmaps)
    assert decoded[0, 0] == 0.0 and decoded[1, 0] == 19.0
    assert (decoded[:, 1] - 15.3).abs().max() < 0.5
    # from one pixel inside, the step is taken (on the unblurred map near the border) and exact without noise
    points = torch.tensor([[1.3, 15.3], [2.5, 15.3], [4.1, 1.2], [18.4, 30.4]])
    heatmaps, _ = codec.encode(points, (20, 32), 2.0)
    decoded, _ = codec.decode(heatmaps)
    assert (decoded - points).norm(dim=-1).max() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip():
    codec = GaussianHeatmapCodec(2)
    points = _random_points(2, 10).cuda()
    heatmaps, visible = codec.encode(points, SHAPES[2], torch.full((10,), 2.0, device="cuda"))
    assert heatmaps.is_cuda and visible.is_cuda
    decoded, _ = codec.decode(heatmaps)
    assert (decoded - points).norm(dim=-1).max() < 0.05


def test_bad_inputs():
    codec = GaussianHeatmapCodec(2)
    with pytest.raises(ValueError, match="points must be"):
        codec.encode(torch.zeros(3, 3), (10, 10), 2.0)
    with pytest.raises(ValueError, match="points must be"):
        codec.encode(torch.zeros(3, 2), (10, 10, 10), 2.0)
    with pytest.raises(ValueError, match="sigma"):
        codec.encode(torch.zeros(3, 2), (10, 10), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="method"):
        codec.decode(torch.zeros(1, 10, 10), method="centroid")
    with pytest.raises(ValueError, match="method"):
        GaussianHeatmapCodec(2, method="centroid")


def test_the_documented_defaults():
    codec = GaussianHeatmapCodec()
    assert (codec.spatial_dims, codec.sigma, codec.truncate, codec.method) == (2, 2.0, 4.0, "dark")
    assert (codec.blur_sigma, codec.soft_argmax_radius) == (2.0, 2)


def test_batches_of_another_size_than_the_landmark_count():
    codec = GaussianHeatmapCodec(2, sigma=torch.tensor([1.0, 3.0]))  # K = 2 sigmas, B = 3 images
    points = torch.tensor([[[8.0, 8.0], [20.0, 20.0]]] * 3)
    heatmaps, visible = codec.encode(points, (32, 32))
    assert heatmaps.shape == (3, 2, 32, 32) and visible.shape == (3, 2)
    torch.testing.assert_close(heatmaps[2, 1, 21, 20], torch.tensor(math.exp(-1 / 18)))


def test_points_keep_their_floating_type_and_integers_become_float32():
    codec = GaussianHeatmapCodec(2)
    double, _ = codec.encode(torch.tensor([[5.0, 6.0]], dtype=torch.float64), (12, 12))
    integer, _ = codec.encode(torch.tensor([[5, 6]]), (12, 12))
    assert double.dtype == torch.float64 and integer.dtype == torch.float32
    torch.testing.assert_close(integer, double.float())


@pytest.mark.parametrize(
    "point, visible", [((-0.5, 3.0), True), ((-0.3, 3.0), True), ((0.4, 3.0), True), ((-0.6, 3.0), False),
                       ((9.5, 3.0), True), ((9.6, 3.0), False), ((3.0, -0.51), False), ((3.0, 11.5), True)],
)  # fmt: skip
def test_a_point_is_visible_anywhere_within_the_grid_extent(point, visible):
    """The grid (10 x 12) covers [-0.5, 9.5] x [-0.5, 11.5]: a point there gets its (cut) Gaussian."""
    heatmaps, seen = GaussianHeatmapCodec(2).encode(torch.tensor([point]), (10, 12))
    assert seen.tolist() == [visible] and bool(heatmaps.max() > 0.5) is visible


@pytest.mark.parametrize(
    "kwargs", [{"truncate": 0.0}, {"blur_sigma": -0.1}, {"soft_argmax_radius": 0}, {"spatial_dims": 4},
               {"spatial_dims": 0}, {"blur_sigma": "sigmas"}, {"blur_sigma": float("nan")}],
)  # fmt: skip
def test_settings_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError):
        GaussianHeatmapCodec(**kwargs)


def test_settings_at_the_edge_of_the_range_are_accepted():
    GaussianHeatmapCodec(1, blur_sigma=0.0, soft_argmax_radius=1, truncate=0.1)


def _anisotropic(centre, covariance, shape) -> torch.Tensor:
    """A rotated, elongated Gaussian of peak 1 at a sub-pixel ``centre``, (1, *shape), float64."""
    axes = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij")
    offset = torch.stack(axes, -1) - torch.tensor(centre, dtype=torch.float64)
    precision = torch.linalg.inv(torch.tensor(covariance, dtype=torch.float64))
    return torch.exp(-0.5 * torch.einsum("...i,ij,...j->...", offset, precision, offset))[None]


@pytest.mark.parametrize("blur_sigma", [0.0, 2.0])
def test_dark_is_exact_for_rotated_elongated_peaks(blur_sigma):
    """The Newton step needs the Hessian's cross terms when the peak is not aligned with the axes. (Centres near a
    pixel centre: the step is clipped to half a pixel per axis, which a strongly rotated peak can need more than.)"""
    codec = GaussianHeatmapCodec(2, blur_sigma=blur_sigma)
    for centre in ([20.2, 14.85], [17.9, 21.1]):
        heatmap = _anisotropic(centre, [[9.0, 5.0], [5.0, 6.0]], (40, 36))
        decoded, confidence = codec.decode(heatmap)
        torch.testing.assert_close(decoded[0].double(), torch.tensor(centre, dtype=torch.float64), atol=2e-3, rtol=0)
    volume = _anisotropic([10.4, 11.6, 9.3], [[6.0, 2.0, 1.0], [2.0, 5.0, -1.5], [1.0, -1.5, 4.0]], (24, 22, 20))
    decoded, _ = GaussianHeatmapCodec(3, blur_sigma=blur_sigma).decode(volume)
    torch.testing.assert_close(
        decoded[0].double(), torch.tensor([10.4, 11.6, 9.3], dtype=torch.float64), atol=2e-3, rtol=0
    )


def test_peaks_near_the_far_borders_are_exact_too():
    codec = GaussianHeatmapCodec(2)
    # within 2 blur-sigmas of a border, the nearest pixel not the last (there the integer argmax comes back)
    points = torch.tensor([[18.3, 30.4], [17.9, 29.4], [1.4, 29.6], [17.6, 1.3]])
    heatmaps, _ = codec.encode(points, (20, 32), 2.0)
    decoded, _ = codec.decode(heatmaps)
    assert (decoded - points).norm(dim=-1).max() < 0.01


def test_the_blur_changes_a_noisy_decoding_and_none_leaves_the_exact_one():
    codec0, codec1 = GaussianHeatmapCodec(2, blur_sigma=0.0), GaussianHeatmapCodec(2, blur_sigma=1.0)
    heatmaps, _ = codec0.encode(_random_points(2, 20), SHAPES[2], 2.0)
    noisy = heatmaps + 0.05 * torch.randn(heatmaps.shape, generator=torch.Generator().manual_seed(3))
    assert (codec0.decode(noisy)[0] - codec1.decode(noisy)[0]).abs().max() > 1e-3
    assert (codec0.decode(heatmaps)[0] - _random_points(2, 20)).abs().max() < 0.01


def test_soft_argmax_windows_cut_by_the_border():
    """The window's positions off the grid count for nothing; the mean is over those inside."""
    heatmap = torch.zeros(1, 8, 8)
    heatmap[0, 0, 6], heatmap[0, 1, 6], heatmap[0, 0, 7] = 1.0, 0.5, 0.25  # peak at a corner's neighbour
    heatmap[0, 7, 0] = 0.1  # far away: outside the window
    decoded, _ = GaussianHeatmapCodec(2, soft_argmax_radius=2).decode(heatmap, method="soft_argmax")
    total = 1.0 + 0.5 + 0.25
    torch.testing.assert_close(decoded[0], torch.tensor([0.5 / total, 6.0 + 0.25 / total]))
    faint = torch.zeros(1, 8, 8)  # a low-confidence peak: weights summing to less than 1 are still a mean
    faint[0, 4, 4], faint[0, 5, 4] = 0.4, 0.2
    torch.testing.assert_close(
        GaussianHeatmapCodec(2).decode(faint, method="soft_argmax")[0][0], torch.tensor([4.0 + 0.2 / 0.6, 4.0])
    )
    far = torch.zeros(1, 8, 8)
    far[0, 7, 7], far[0, 6, 7] = 1.0, 1.0
    torch.testing.assert_close(
        GaussianHeatmapCodec(2).decode(far, method="soft_argmax")[0][0], torch.tensor([6.5, 7.0])
    )


def test_batched_points_with_more_landmarks_than_dimensions():
    codec = GaussianHeatmapCodec(2)
    points = torch.tensor([[[3.0, 3.0], [-2.0, 3.0], [6.0, 6.0]]] * 2)  # B = 2, K = 3, D = 2; one outside
    heatmaps, visible = codec.encode(points, (10, 10))
    assert visible.tolist() == [[True, False, True]] * 2 and heatmaps.shape == (2, 3, 10, 10)
    assert heatmaps[:, 1].abs().max() == 0
    with pytest.raises(ValueError, match="heatmaps must be"):
        codec.decode(torch.zeros(10, 10))  # no landmark axis


def _noisy_errors(codec: GaussianHeatmapCodec, point, shape=(40, 48), seeds=20) -> torch.Tensor:
    """Decoding errors (pixels) of one Gaussian (sigma 2) plus uniform noise of amplitude 0.08, one per seed."""
    clean, _ = codec.encode(torch.tensor([point]), shape, 2.0)
    errors = []
    for seed in range(seeds):
        noise = 0.08 * torch.rand(clean.shape, generator=torch.Generator().manual_seed(seed))
        errors.append((codec.decode(clean + noise)[0][0] - torch.tensor(point)).norm())
    return torch.stack(errors)


@pytest.mark.parametrize("point", [(4.3, 20.4), (35.3, 20.4), (20.4, 4.3), (20.4, 43.2)])
def test_the_blurred_step_is_taken_from_exactly_two_blur_sigmas_inside_the_border(point):
    # argmax on index 4 (= 2 blur sigmas) or size - 1 - 4: still "interior", so DARK runs on the blurred map, which
    # averages the noise (measured: mean error 0.02-0.03 px) where the unblurred step does not (0.12-0.15 px)
    blurred = _noisy_errors(GaussianHeatmapCodec(2, blur_sigma=2.0), point)
    unblurred = _noisy_errors(GaussianHeatmapCodec(2, blur_sigma=0.0), point)
    assert blurred.mean() < 0.05 < 0.1 < unblurred.mean()


@pytest.mark.parametrize("point", [(36.3, 20.4), (3.3, 20.4), (20.4, 44.3), (20.4, 3.3)])
def test_one_pixel_closer_to_the_border_the_unblurred_step_is_kept(point):
    # index size - 4 or 3: the blur's zero padding would pull the blurred estimate ~0.08 px inwards; the unblurred
    # step is exact on a clean Gaussian
    heatmaps, _ = GaussianHeatmapCodec(2).encode(torch.tensor([point]), (40, 48), 2.0)
    decoded, _ = GaussianHeatmapCodec(2, blur_sigma=2.0).decode(heatmaps)
    assert (decoded[0] - torch.tensor(point)).norm() < 0.01


def test_a_singular_hessian_takes_no_step_instead_of_failing():
    # log-heatmap around an interior peak with Hessian [[-2, 2], [2, -2]] (a straight diagonal ridge): no unique
    # maximum along the ridge, so DARK keeps the integer peak rather than solving a singular system
    from bundle.codecs.heatmap import _newton_step

    log_map = torch.full((1, 5, 5), -10.0)
    log_map[0, 1:4, 1:4] = torch.tensor([[0.0, -1.0, -4.0], [-1.0, 0.0, -1.0], [-4.0, -1.0, 0.0]])
    step = _newton_step(log_map, torch.tensor([[2, 2]]), (5, 5))
    assert step.tolist() == [[0.0, 0.0]]


def test_a_blur_that_follows_sigma_blurs_each_channel_by_its_own_sigma():
    """``blur_sigma="sigma"`` decodes channel k exactly as a codec with ``blur_sigma = sigma_k`` would, for every
    channel of a batch, and follows a sigma changed after the codec was made."""
    sigma = torch.tensor([1.5, 3.0, 4.0])
    points = _random_points(2, 3, seed=3)
    codec = GaussianHeatmapCodec(2, sigma=sigma, blur_sigma="sigma")
    heatmaps, _ = codec.encode(points, SHAPES[2])
    noisy = (heatmaps + 0.05 * torch.randn(2, *heatmaps.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    decoded, _ = codec.decode(noisy)  # (2, 3, 2)
    for k, s in enumerate(sigma.tolist()):
        expected, _ = GaussianHeatmapCodec(2, sigma=s, blur_sigma=s).decode(noisy[:, k : k + 1])
        assert torch.equal(decoded[:, k : k + 1], expected)
    assert not torch.equal(decoded, GaussianHeatmapCodec(2, blur_sigma=2.0).decode(noisy)[0])
    codec.sigma = torch.tensor([4.0, 4.0, 4.0])
    assert torch.equal(codec.decode(noisy)[0], GaussianHeatmapCodec(2, blur_sigma=4.0).decode(noisy)[0])


def test_a_blur_that_follows_sigma_needs_one_sigma_per_channel():
    codec = GaussianHeatmapCodec(2, sigma=[2.0, 3.0], blur_sigma="sigma")
    with pytest.raises(ValueError, match="2 sigmas for heatmaps of 3 channels"):
        codec.decode(torch.rand(3, 16, 16))
    assert codec.decode(torch.rand(5, 2, 16, 16))[0].shape == (5, 2, 2)


def test_a_blur_that_follows_one_sigma_for_all_channels():
    heatmaps, _ = GaussianHeatmapCodec(2, sigma=3.0).encode(_random_points(2, 4, seed=5), SHAPES[2])
    noisy = (heatmaps + 0.05 * torch.randn(heatmaps.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    following = GaussianHeatmapCodec(2, sigma=3.0, blur_sigma="sigma").decode(noisy)[0]
    assert torch.equal(following, GaussianHeatmapCodec(2, sigma=3.0, blur_sigma=3.0).decode(noisy)[0])
