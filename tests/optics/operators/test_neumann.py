"""Truncated Neumann series (NRKNet Eq. 7-8), convergence test, cross-scale fusion (Eq. 10)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import optics
from optics.operators.neumann import (
    NeumannDivergenceWarning,
    downsample_nearest,
    neumann_contraction,
    neumann_converges,
    neumann_cross_scale,
    neumann_inverse,
    upsample_bilinear,
)


def _three_tap(a):
    """Separable kernel from the 1-D filter [a, 1 - 2a, a]; its transfer function is
    (1 - 2a + 2a cos wx)(1 - 2a + 2a cos wy)."""
    t = np.array([a, 1 - 2 * a, a])
    return np.outer(t, t)


# ---------------------------------------------------------------------------------------------
# convergence criterion
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a", [0.05, 0.2, 0.24])
def test_contraction_closed_form_converging(a):
    # 1 - 2a + 2a cos w ranges over [1 - 4a, 1] > 0: max |1 - K_hat| = 1 - (1 - 4a)^2 at (pi, pi).
    assert neumann_contraction(_three_tap(a)) == pytest.approx(1 - (1 - 4 * a) ** 2, rel=1e-12)
    assert neumann_converges(_three_tap(a))


def test_contraction_closed_form_diverging():
    # a = 0.4: 1-D factor ranges over [-0.6, 1]; K_hat reaches -0.6 at (pi, 0): |1 - K_hat| = 1.6.
    assert neumann_contraction(_three_tap(0.4)) == pytest.approx(1.6, rel=1e-12)
    assert not neumann_converges(_three_tap(0.4))


def test_gaussian_converges_disc_does_not():
    for sigma in (0.5, 1.0, 1.5):
        assert neumann_converges(optics.gaussian_psf(sigma))
    # Truncation at 4 sigma leaves negative lobes of order 1e-5 in wider Gaussians' spectra.
    assert 1.0 < neumann_contraction(optics.gaussian_psf(3.0)) < 1.0 + 1e-4
    assert neumann_converges(optics.gaussian_psf(3.0), tol=1e-4)
    # Untruncated, its spectrum is positive (down to exp(-sigma^2 pi^2 / 2) ~ 1e-20, so the factor
    # rounds to exactly 1 in float64: convergent, but not at all on the highest frequencies).
    assert neumann_contraction(optics.gaussian_psf(3.0, radius=40)) <= 1.0 + 1e-15
    for radius in (1, 2, 5):
        assert neumann_contraction(optics.disc_psf(radius)) > 1.05
        assert not neumann_converges(optics.disc_psf(radius), tol=1e-4)


def test_wide_gaussian_does_not_warn_disc_does():
    y = np.random.default_rng(9).random((16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neumann_inverse(y, optics.gaussian_psf(3.0), 4)
    with pytest.warns(NeumannDivergenceWarning, match="amplified"):
        neumann_inverse(y, optics.disc_psf(2), 4)


def test_contraction_on_a_given_grid():
    # 8-point periodic grid: frequencies 2 pi k / 8 include pi, so the same maximum is reached.
    assert neumann_contraction(_three_tap(0.2), shape=(8, 8)) == pytest.approx(1 - 0.2**2, rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        neumann_contraction(_three_tap(0.2), shape=(2, 8))


# ---------------------------------------------------------------------------------------------
# truncated series
# ---------------------------------------------------------------------------------------------
def test_partial_sums_match_the_fourier_closed_form():
    """Periodic blur: S_N = F^-1[ y_hat (1 - (1 - K_hat)^N) / K_hat ] (geometric series)."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 16))
    psf = optics.gaussian_psf(1.0, radius=3)
    y = optics.convolve(x, psf, "periodic")
    otf = optics.operators.fourier.psf_to_otf(psf, (16, 16))
    _, sums = neumann_inverse(y, psf, 6, boundary="periodic", return_partial_sums=True)
    assert len(sums) == 6
    for n, s in enumerate(sums, start=1):
        expected = np.real(np.fft.ifft2(np.fft.fft2(y) * (1 - (1 - otf) ** n) / otf))
        np.testing.assert_allclose(s, expected, atol=1e-12)


def test_terms_one_and_two():
    rng = np.random.default_rng(1)
    y = rng.random((8, 9, 3))
    psf = optics.gaussian_psf(0.8)
    np.testing.assert_array_equal(neumann_inverse(y, psf, 1), y)
    np.testing.assert_allclose(neumann_inverse(y, psf, 2), 2 * y - optics.convolve(y, psf), atol=1e-14)


def test_error_decreases_for_gaussian_and_grows_for_disc():
    rng = np.random.default_rng(2)
    x = rng.random((32, 32))
    y = optics.convolve(x, optics.gaussian_psf(0.8), "periodic")
    _, sums = neumann_inverse(y, optics.gaussian_psf(0.8), 10, boundary="periodic", return_partial_sums=True)
    errors = [np.linalg.norm(s - x) for s in sums]
    assert all(b < a for a, b in zip(errors, errors[1:]))

    disc = optics.disc_psf(3)
    y = optics.convolve(x, disc, "periodic")
    with pytest.warns(NeumannDivergenceWarning, match="diverges"):
        _, sums = neumann_inverse(y, disc, 60, boundary="periodic", return_partial_sums=True)
    errors = [np.linalg.norm(s - x) for s in sums]
    assert errors[-1] > 10 * errors[0]


def test_callable_blur_gives_no_warning_and_works_with_rkr():
    rng = np.random.default_rng(3)
    taps = np.full((3, 3), 1 / 3)
    gamma = np.zeros((4, 12, 12))
    gamma[2] = 1.0

    def blur(x):
        return optics.rkr_blur(x, gamma, taps, boundary="symmetric")

    y = rng.random((12, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = neumann_inverse(y, blur, 3)
    r1 = y - blur(y)
    np.testing.assert_allclose(out, y + r1 + (r1 - blur(r1)), atol=1e-13)


def test_torch_is_differentiable_and_float32_stays_float32():
    y = torch.rand(8, 8, dtype=torch.float32, requires_grad=True)
    psf = torch.tensor(optics.gaussian_psf(0.7), dtype=torch.float32)
    out = neumann_inverse(y, psf, 4)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_argument_errors():
    y = np.zeros((4, 4))
    with pytest.raises(ValueError, match="terms"):
        neumann_inverse(y, lambda x: x, 0)
    with pytest.raises(TypeError, match="terms"):
        neumann_inverse(y, lambda x: x, 2.0)
    with pytest.raises(TypeError, match="blur"):
        neumann_inverse(y, "gaussian", 2)
    with pytest.raises(ValueError, match="shape"):
        neumann_inverse(y, lambda x: x[:2], 3)
    with pytest.raises(TypeError, match="y"):
        neumann_inverse(np.zeros((4, 4), dtype=np.int32), lambda x: x, 2)


# ---------------------------------------------------------------------------------------------
# resampling and cross-scale fusion
# ---------------------------------------------------------------------------------------------
def _torch_resize(image, **kwargs):
    t = torch.tensor(image).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(t, **kwargs)[0].permute(1, 2, 0).numpy()


def test_resampling_matches_torch_interpolate():
    image = np.random.default_rng(4).random((8, 12, 3))
    for factor in (2, 4):
        np.testing.assert_allclose(
            upsample_bilinear(image, factor),
            _torch_resize(image, scale_factor=factor, mode="bilinear", align_corners=False),
            atol=1e-13,
        )
    np.testing.assert_array_equal(downsample_nearest(image, 2), _torch_resize(image, scale_factor=0.5, mode="nearest"))


def test_cross_scale_fusion_with_scalar_blurs():
    """D_t = c_t I gives Z0 = Y + (1-c1) Y + up2((1-c2)^2 Y[::2, ::2]) + up4((1-c3)^3 Y[::4, ::4])."""
    rng = np.random.default_rng(5)
    y = rng.random((16, 8, 3))
    c = (0.3, 0.5, 0.9)
    blurs = [lambda x, ct=ct: ct * x for ct in c]
    expected = (
        y
        + (1 - c[0]) * y
        + (1 - c[1]) ** 2 * _torch_resize(y[::2, ::2], scale_factor=2, mode="bilinear", align_corners=False)
        + (1 - c[2]) ** 3 * _torch_resize(y[::4, ::4], scale_factor=4, mode="bilinear", align_corners=False)
    )
    np.testing.assert_allclose(neumann_cross_scale(y, blurs), expected, atol=1e-13)


def test_cross_scale_single_scale_is_two_term_series():
    rng = np.random.default_rng(6)
    y = rng.random((10, 10))
    psf = optics.gaussian_psf(1.0)
    np.testing.assert_allclose(
        neumann_cross_scale(y, [lambda x: optics.convolve(x, psf)]), neumann_inverse(y, psf, 2), atol=1e-14
    )


def test_cross_scale_keeps_constant_images():
    """Unit-sum blurs keep constants, so every (I - D_t) term vanishes."""
    y = np.full((16, 16, 3), 0.25)
    blurs = [lambda x, s=s: optics.convolve(x, optics.gaussian_psf(s)) for s in (1.0, 0.5, 0.25)]
    np.testing.assert_allclose(neumann_cross_scale(y, blurs), y, atol=1e-14)


def test_cross_scale_errors():
    with pytest.raises(ValueError, match="divisible"):
        neumann_cross_scale(np.zeros((10, 12)), [lambda x: x] * 3)
    with pytest.raises(TypeError, match="callables"):
        neumann_cross_scale(np.zeros((8, 8)), [])
