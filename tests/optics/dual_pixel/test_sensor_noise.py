"""optics.dual_pixel.sensor_noise: the Poisson-Gaussian adder (variance against mean) and the estimator on
synthetic dual-pixel pairs of known (a, b). No real data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from optics.dual_pixel.sensor_noise import PIXEL4_NOISE_A, PIXEL4_NOISE_B, add_poisson_gaussian_noise, estimate_poisson_gaussian, main


@pytest.mark.parametrize("a,b", [(4e-4, 2e-6), (0.0, 1e-4), (1e-3, 0.0)])
def test_adder_variance_matches_a_mean_plus_b(a, b):
    rng = np.random.default_rng(0)
    levels = np.array([0.02, 0.1, 0.3, 0.6, 0.9])
    image = np.repeat(levels[:, None], 40000, axis=1).astype(np.float32)
    noisy = add_poisson_gaussian_noise(image, a, b, rng)
    assert noisy.dtype == np.float32 and noisy.shape == image.shape
    # mean unbiased within 4 standard errors; variance within 3 % (40000 samples: se 0.7 %)
    expected = a * levels + b
    np.testing.assert_allclose(noisy.mean(axis=1), levels, atol=4 * np.sqrt(expected.max() / 40000) + 1e-7)
    np.testing.assert_allclose(noisy.var(axis=1), expected, rtol=0.03)


def test_adder_is_a_function_of_rng_and_leaves_input_alone():
    image = np.full((8, 8), 0.5)
    keep = image.copy()
    one = add_poisson_gaussian_noise(image, 1e-3, 1e-5, np.random.default_rng(3))
    two = add_poisson_gaussian_noise(image, 1e-3, 1e-5, np.random.default_rng(3))
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(image, keep)


@pytest.mark.parametrize("a,b", [(-1e-3, 0.0), (1e-3, float("nan")), (True, 0.0)])
def test_adder_refuses_bad_parameters(a, b):
    with pytest.raises(ValueError, match="noise parameter"):
        add_poisson_gaussian_noise(np.zeros(3), a, b, np.random.default_rng(0))


def _pair(rng, a, b, shape=(600, 600), textured=False):
    """A smooth scene (intensities 0.03..0.9), views with a left/right vignetting ratio up to 1.3
    and, if ``textured``, sharp-edged discs whose right view is shifted by 2 px (disparity)."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    scene = 0.03 + 0.87 * ndimage.gaussian_filter(rng.random((H // 50, W // 50)), 1).repeat(50, 0).repeat(50, 1)
    scene = ndimage.gaussian_filter(scene, 20)
    scene = 0.03 + 0.87 * (scene - scene.min()) / (scene.max() - scene.min())
    left, right = scene.copy(), scene / (1.0 + 0.3 * xx)
    if textured:
        for _ in range(60):
            cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(5, 30)
            val = rng.uniform(0.05, 0.9)
            left[(yy * max(H, W) - cy) ** 2 + (xx * max(H, W) - cx) ** 2 < r * r] = val
            right[(yy * max(H, W) - cy) ** 2 + (xx * max(H, W) - cx - 2) ** 2 < r * r] = val
    return (add_poisson_gaussian_noise(left, a, b, rng), add_poisson_gaussian_noise(right, a, b, rng))


@pytest.mark.parametrize("a,b,textured", [(4e-4, 4e-6, False), (1e-4, 1e-6, True), (2e-3, 2e-5, True)])
def test_estimator_recovers_known_parameters(a, b, textured):
    """Tolerances: a within 5 %, b within 10 % of b + 2 % of a (b is the intercept, so its error
    scales with a times the distance of the bins from 0)."""
    left, right = _pair(np.random.default_rng(1), a, b, textured=textured)
    est = estimate_poisson_gaussian(left, right)
    assert abs(est.a - a) <= 0.05 * a
    assert abs(est.b - b) <= 0.10 * b + 0.02 * a


def test_estimator_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        estimate_poisson_gaussian(np.zeros((10, 10)), np.zeros((10, 11)))
    with pytest.raises(ValueError, match="window"):
        estimate_poisson_gaussian(np.zeros((10, 10)), np.zeros((10, 10)), window=1)
    with pytest.raises(ValueError, match="flat blocks"):
        estimate_poisson_gaussian(np.zeros((20, 20)), np.zeros((20, 20)))


def test_measured_pixel4_constants_are_set():
    assert 0 < PIXEL4_NOISE_A < 0.01 and 0 <= PIXEL4_NOISE_B < 1e-3


def test_cli_on_a_synthetic_raw_folder(tmp_path, capsys):
    from optics.image_io import png_bytes

    rng = np.random.default_rng(2)
    left, right = _pair(rng, 5e-4, 5e-6, shape=(300, 300))
    for side, view in (("left", left), ("right", right)):
        raw = np.round(np.clip(view, 0, 1) * (2**14 - 1)).astype(np.uint16) + 1024
        (tmp_path / f"001_{side}.png").write_bytes(png_bytes(raw))
    assert main(["--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "001: a = " in out and "median of 1 scenes" in out
