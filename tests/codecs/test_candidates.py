"""Candidate peaks, the heatmap's spread, and the fast blur and local maxima they rest on."""

import numpy as np
import pytest
import torch
from monai.networks.layers import separable_filtering
from monai.networks.layers.convutils import gaussian_1d

from bundle import GaussianHeatmapCodec
from bundle.codecs.heatmap import _gaussian_blur, _local_maxima


def test_candidates_put_the_decoded_point_first_and_find_the_second_peak_sub_pixel():
    codec = GaussianHeatmapCodec(2)
    first, _ = codec.encode(torch.tensor([[10.3, 20.7]]), (64, 52))
    second, _ = codec.encode(torch.tensor([[40.2, 30.6]]), (64, 52))
    heatmaps = torch.maximum(first, 0.6 * second)
    coords, scores = codec.candidates(heatmaps, count=3, min_distance=2)
    decoded, confidence = codec.decode(heatmaps)
    assert coords.shape == (1, 3, 2) and scores.shape == (1, 3)
    torch.testing.assert_close(coords[0, 0], decoded[0])
    assert scores[0, 0] == pytest.approx(float(confidence[0]))
    np.testing.assert_allclose(coords[0, 1].numpy(), [40.2, 30.6], atol=0.05)
    assert 0.5 < scores[0, 1] < 0.62 and torch.isnan(coords[0, 2]).all() and scores[0, 2] == 0


def test_candidates_keep_apart_and_work_in_3d():
    codec = GaussianHeatmapCodec(3, sigma=1.5)
    points = torch.tensor([[[8.0, 9.0, 10.0]], [[20.0, 5.0, 6.0]]])
    maps = codec.encode(points, (24, 24, 24))[0]
    heatmaps = torch.maximum(maps[0], 0.7 * maps[1])  # (1, 24, 24, 24): one channel, two peaks
    coords, _ = codec.candidates(heatmaps, count=4, min_distance=3)
    np.testing.assert_allclose(coords[0, 0].numpy(), [8, 9, 10], atol=0.05)
    np.testing.assert_allclose(coords[0, 1].numpy(), [20, 5, 6], atol=0.05)
    assert torch.isnan(coords[0, 2:]).all()  # no peak within 3 pixels of another counts
    with pytest.raises(ValueError, match="must be >= 1"):
        codec.candidates(heatmaps, count=0)


@pytest.mark.parametrize("sigma", [1.5, 3.0])
def test_the_spread_of_a_gaussian_is_its_sigma(sigma):
    codec = GaussianHeatmapCodec(2, sigma=sigma)
    point = torch.tensor([[30.4, 25.6]])
    heatmaps, _ = codec.encode(point, (64, 64))
    assert float(codec.spread(heatmaps, point, radius=int(4 * sigma))) == pytest.approx(sigma, rel=0.03)
    doubled = torch.maximum(heatmaps, codec.encode(point + torch.tensor([[4 * sigma, 0.0]]), (64, 64))[0])
    assert float(codec.spread(doubled, point, radius=int(8 * sigma))) > 1.4 * sigma  # two peaks: ambiguous
    assert torch.isnan(codec.spread(torch.zeros(1, 64, 64), point))


@pytest.mark.parametrize("shape", [(3, 40, 50), (2, 20, 18, 22)])
def test_the_fft_blur_is_monais_separable_gaussian(shape):
    maps = torch.rand(shape)
    kernel = gaussian_1d(torch.tensor(2.0), truncated=4.0, approx="sampled")
    expected = separable_filtering(maps[:, None], [kernel] * (len(shape) - 1))[:, 0]
    torch.testing.assert_close(_gaussian_blur(maps, 2.0), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("distance", [1, 2])
def test_local_maxima_are_those_of_a_square_max_pool(distance):
    maps = torch.rand(4, 30, 33)
    pooled = torch.nn.functional.max_pool2d(maps[:, None], 2 * distance + 1, 1, distance)[:, 0]
    assert torch.equal(_local_maxima(maps, distance), maps >= pooled)
