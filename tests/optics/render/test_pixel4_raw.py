"""optics.render.pixel4_raw: raw Pixel 4 renders match their sensor model (noise variance against mean,
L/R vignetting ratio, disparity sign, 14-bit values). Synthetic inputs only, no real data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field
from optics.render.pixel4_raw import (
    CENTROID_CHECK,
    _centroid,
    fit_vignetting_polynomial,
    pixel4_vignetting_model,
    quantize_14bit,
    synthesize_pixel4_raw,
)
from optics.dual_pixel.sensor_noise import PIXEL4_NOISE_A, PIXEL4_NOISE_B

LSB2 = 1 / 16383**2 / 12  # variance of the 14-bit rounding


def _flat(shape=(128, 128), value=0.5):
    return np.full(shape, value), np.full(shape, 2.0)


def test_noise_variance_matches_a_mean_plus_b():
    """A flat scene, rendered with and without noise from one seed (noise is the last draw): the
    difference of the raw views has variance a x + b (x the noise-free value; + two roundings,
    2 LSB^2 / 12) within 6 % (9216 samples: standard error 1.5 %), in each view and at two levels.
    The noise-free views are not flat (the field's PSF sums vary), so the noise-free render is the mean."""
    image, depth = _flat()
    a, b = PIXEL4_NOISE_A, PIXEL4_NOISE_B
    inner = (slice(16, -16), slice(16, -16))
    for level in (0.05, 0.3):
        kw = dict(image=image, depth=depth, exposure=(level, level), defocus_scale=(1, 1))
        noisy = synthesize_pixel4_raw(np.random.default_rng(0), image.shape, **kw)
        clean = synthesize_pixel4_raw(np.random.default_rng(0), image.shape, noise=False, **kw)
        for got, mean in ((noisy.left_raw, clean.left_raw), (noisy.right_raw, clean.right_raw)):
            x = mean[inner].astype(np.float64)
            resid = got[inner].astype(np.float64) - x
            expected = float(np.mean(a * x + b)) + 2 * LSB2
            assert abs(resid.mean()) < 4 * np.sqrt(expected / resid.size)
            assert abs(resid.var() - expected) <= 0.06 * expected
        assert 0.8 * level < noisy.left_raw[inner].mean() < 1.05 * level


def test_vignetting_ratio_and_reader_correction():
    """Noise off, a flat scene: raw left / raw right = g (the stored model) within the rounding
    (2 LSB relative at 0.3 of the white level: < 5e-4); the corrected views agree to 1e-3."""
    image, depth = _flat()
    scene = synthesize_pixel4_raw(np.random.default_rng(1), image.shape, image=image, depth=depth, noise=False,
                                  exposure=(0.3, 0.3), defocus_scale=(1, 1))
    g = pixel4_vignetting_model(image.shape, scene.field_origin)
    inner = (slice(24, -24), slice(24, -24))
    ratio = scene.left_raw[inner] / scene.right_raw[inner]
    np.testing.assert_allclose(ratio, g[inner], rtol=5e-4)
    np.testing.assert_allclose(scene.right[inner], scene.left[inner], rtol=1e-3)
    assert 1.0 < g.min() and g.max() < 1.45
    off = synthesize_pixel4_raw(np.random.default_rng(1), image.shape, image=image, depth=depth, noise=False,
                                vignetting=False, exposure=(0.3, 0.3), defocus_scale=(1, 1))
    np.testing.assert_allclose(off.left_raw[inner], off.right_raw[inner], atol=2 / 16383)


def test_vignetting_model_over_the_frame():
    """The stored cubic: gain 1.01-1.40 over the calibrated frame, brightest ratio on the right
    (the real gain's range there is 1.007-1.398); a fit recovers a known polynomial."""
    g = pixel4_vignetting_model()
    assert 0.99 < g.min() < 1.03 and 1.37 < g.max() < 1.43
    assert g[:, -1].mean() > g[:, 0].mean()
    coef = np.arange(1, 11) / 10
    np.testing.assert_allclose(fit_vignetting_polynomial(pixel4_vignetting_model(coefficients=coef)), coef, atol=1e-9)


def _shift(left, right):
    """Horizontal shift (px) of ``right`` relative to ``left``: peak of the cross-correlation of x-gradients."""
    gl, gr = np.diff(left, axis=1), np.diff(right, axis=1)
    gl, gr = gl - gl.mean(), gr - gr.mean()
    xc = np.fft.irfft(np.fft.rfft(gl, axis=1).conj() * np.fft.rfft(gr, axis=1), n=gl.shape[1], axis=1).sum(axis=0)
    k = int(np.argmax(xc))
    return k if k < xc.size / 2 else k - xc.size


@pytest.mark.parametrize("scale", [1.0, -0.8])
def test_disparity_sign_and_size_match_the_field(scale):
    """At ``scale`` x the calibration defocus (noise and vignetting off):

    * a point's two views have the centroids of the field's PSF pair there (right_x - left_x =
      +5.1 px at scale 1 near the centre; the real kernels' mean is +5.3 px) within 0.25 px in x
      and y: the render uses the field's shifts, sign and position;
    * a textured plane's right view is shifted against the left (peak of the gradients'
      cross-correlation) with the same sign, the sign of ``scale``.
    """
    field = pixel4_dual_pixel_field()
    point = np.zeros((128, 128))
    point[64, 64] = 1.0
    depth = np.full(point.shape, 2.0)
    kw = dict(depth=depth, noise=False, vignetting=False, exposure=(0.5, 0.5), defocus_scale=(scale, scale))
    scene = synthesize_pixel4_raw(np.random.default_rng(3), point.shape, image=point, **kw)
    pl, pr = field.psfs(scale * field.calibration_coc, scene.field_origin[0] + 64, scene.field_origin[1] + 64, size=61)

    def centroid(view):
        yy, xx = np.mgrid[0:128, 0:128] - 64.0
        v = view.astype(np.float64)
        return np.array([(xx * v).sum() / v.sum(), (yy * v).sum() / v.sum()])

    for view, psf in ((scene.left_raw, pl), (scene.right_raw, pr)):
        np.testing.assert_allclose(centroid(view), _centroid(psf), atol=0.25)
    expected = _centroid(pr)[0] - _centroid(pl)[0]
    assert np.sign(expected) == np.sign(scale) and abs(expected) > 3

    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.random((128, 128)), 1.5)
    image = (image - image.min()) / (image.max() - image.min()) * 0.8 + 0.1
    plane = synthesize_pixel4_raw(np.random.default_rng(3), image.shape, image=image, **kw)
    measured = _shift(plane.left_raw.astype(np.float64), plane.right_raw.astype(np.float64))
    assert np.sign(measured) == np.sign(scale)


def test_render_defaults_draw_in_the_real_ranges():
    for seed in range(3):
        scene = synthesize_pixel4_raw(np.random.default_rng(seed), (48, 48))
        c_cal = pixel4_dual_pixel_field().calibration_coc
        assert -0.9 <= scene.scales[0] <= scene.scales[1] <= 1.6
        lo, hi = sorted((scene.scales[0] * c_cal, scene.scales[1] * c_cal))
        assert lo - 1e-4 <= scene.coc.min() and scene.coc.max() <= hi + 1e-4
        assert 0.12 - 1e-6 <= np.percentile(scene.sharp, 99) <= 0.5 + 1e-6
        for view in (scene.left_raw, scene.right_raw):
            assert view.dtype == np.float32 and view.shape == (48, 48)
            np.testing.assert_allclose(view * 16383, np.round(view * 16383), atol=2e-3)
            assert view.min() >= 0 and view.max() <= 1
    again = synthesize_pixel4_raw(np.random.default_rng(0), (48, 48))
    np.testing.assert_array_equal(again.left, synthesize_pixel4_raw(np.random.default_rng(0), (48, 48)).left)


def test_quantize_14bit():
    np.testing.assert_array_equal(quantize_14bit(np.array([-0.1, 0.5 / 16383, 1.7 / 16383, 1.2])),
                                  np.array([0.0, 0.0, 2 / 16383, 1.0]))


def test_centroid_check_numbers_are_recorded():
    # measured once on the real kernels (python -m optics.render.pixel4_raw DIR); the data are not here
    assert CENTROID_CHECK["rms_px"] < 0.5 and CENTROID_CHECK["max_px"] < 1.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(psf_model="gauss"), "psf_model"),
    (dict(defocus_scale=(1.0, 0.5)), "defocus_scale"),
    (dict(defocus_scale="x"), "defocus_scale"),
    (dict(exposure=(0.5, 2.0)), "exposure"),
    (dict(image=np.zeros((32, 32)), depth=np.ones((32, 32))), "positive value"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize_pixel4_raw(np.random.default_rng(0), (32, 32), **kwargs)


def test_estimator_recovers_the_model_from_full_renders():
    """The loop closed: optics.dual_pixel.sensor_noise's estimator on the raw views of full 512 x 512 renders
    (dead leaves, field, vignetting, noise, 14 bit) gives back PIXEL4_NOISE: a within 10 % and b
    within 10 % of b + 2 % of a (seeds 0-2 measured: a within 5 %, b within 1 % of a; only
    190-470 flat blocks per render, hence the coarser bins)."""
    from optics.dual_pixel.sensor_noise import estimate_poisson_gaussian

    a, b = PIXEL4_NOISE_A, PIXEL4_NOISE_B
    for seed in range(3):
        scene = synthesize_pixel4_raw(np.random.default_rng(seed), (512, 512))
        est = estimate_poisson_gaussian(scene.left_raw, scene.right_raw, bins=12, min_count=10)
        assert abs(est.a - a) <= 0.10 * a
        assert abs(est.b - b) <= 0.10 * b + 0.02 * a
