"""Dual-pixel PSFs: K3DN Eq. 1-2 identities (bitwise), sign swap, model shapes, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optics import disc_psf
from optics.dual_pixel import dual_pixel_psfs, full_aperture_psf, psf_half_size

MODELS = [
    ("half_disc", {}),
    ("butterworth", {}),
    ("butterworth", dict(order=9, cutoff_factor=2.0, beta=0.2)),
    ("half_disc", dict(vignetting=0.5)),
    ("butterworth", dict(order=6, vignetting=0.3)),
]

coc_values = st.floats(min_value=-25.0, max_value=25.0, allow_nan=False)


@pytest.mark.parametrize("model, opts", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(c=coc_values)
def test_mirror_and_sum_identity_are_exact(model, opts, dtype, c):
    left, right = dual_pixel_psfs(c, model, dtype=dtype, **opts)
    full = full_aperture_psf(c, model, dtype=dtype, **opts)
    assert left.dtype == right.dtype == full.dtype == dtype
    n = left.shape[0]
    assert left.shape == (n, n) and n % 2 == 1
    assert np.array_equal(right, left[:, ::-1])  # K_R = flip(K_L)      (K3DN Eq. 1)
    assert np.array_equal((left + right) / 2, full)  # (K_L + K_R) / 2 = K  (K3DN Eq. 2)
    assert np.all(left >= 0)
    atol = 1e-5 if dtype == np.float32 else 1e-12
    assert abs(float(full.sum()) - 1) < atol and abs(float(left.sum()) - 1) < atol


@pytest.mark.parametrize("model, opts", MODELS)
@given(c=st.floats(min_value=0.0, max_value=25.0))
def test_negative_coc_swaps_views(model, opts, c):
    pos = dual_pixel_psfs(c, model, **opts)
    neg = dual_pixel_psfs(-c, model, **opts)
    assert np.array_equal(neg.left, pos.right) and np.array_equal(neg.right, pos.left)


def test_half_disc_is_the_halved_disc():
    r = 6.3
    disc = disc_psf(r)
    full = full_aperture_psf(r, "half_disc")
    np.testing.assert_allclose(full, disc, rtol=1e-14, atol=0)  # renormalised: equal to rounding
    left, right = dual_pixel_psfs(r, "half_disc")
    h = disc.shape[0] // 2
    expected = np.zeros_like(full)
    expected[:, h + 1 :] = 2 * full[:, h + 1 :]  # c > 0: the left view sees the x > 0 half
    expected[:, h] = full[:, h]
    np.testing.assert_array_equal(left, expected)


def test_half_disc_centroid_matches_closed_form():
    # centroid of a half disc of radius r: 4 r / (3 pi); the pixelated one converges to it
    for r in (10.0, 20.0):
        left, _ = dual_pixel_psfs(r)
        h = left.shape[0] // 2
        centroid = float((left.sum(axis=0) * np.arange(-h, h + 1)).sum())
        assert centroid == pytest.approx(4 * r / (3 * math.pi), rel=0.01)


def test_butterworth_left_is_full_times_linear_ramp():
    c = 9.0
    left, _ = dual_pixel_psfs(c, "butterworth")
    full = full_aperture_psf(c, "butterworth")
    h = full.shape[0] // 2
    ramp = 1 + np.arange(-h, h + 1) / h  # 2 w(x), w rising from 0 to 1 left to right
    np.testing.assert_allclose(left, full * ramp[None, :], rtol=1e-13, atol=1e-17)


@pytest.mark.parametrize("beta, order, cutoff", [(0.1, 3, 2.5), (0.2, 6, 2.0), (0.1, 9, 2.0)])
def test_butterworth_radial_profile_closed_form(beta, order, cutoff):
    # kappa small enough for a 1-pixel Gaussian window: the unsmoothed rim profile inside the disc
    r = 12.0
    full = full_aperture_psf(r, "butterworth", beta=beta, order=order, cutoff_factor=cutoff, kappa=0.01)
    h = full.shape[0] // 2
    d0 = 2 * r / cutoff

    def hp(rho):
        q = (rho / d0) ** (2 * order)
        return q / (1 + q)

    j = np.arange(0, 12)  # pixels fully inside the disc of radius 12
    expected = (beta + (1 - beta) * hp(j) / hp(np.sqrt(2) * r)) / beta
    np.testing.assert_allclose(full[h, h + j] / full[h, h], expected, rtol=1e-12)
    assert full[h, h + 11] > 1.5 * full[h, h]  # the rim is brighter than the centre


def test_butterworth_smoothing_spreads_beyond_the_disc():
    r = 20.0
    full = full_aperture_psf(r, "butterworth")
    h = full.shape[0] // 2
    assert full.shape[0] == 2 * (20 + 3) + 1
    assert full[h, h + 21] > 0  # light outside the disc: Gaussian smoothing (sigma 1.4 px)
    assert full_aperture_psf(r, "half_disc")[20, 20 + 20] > 0


def test_butterworth_gaussian_window_of_the_authors():
    # window side round((2r + 1) / 7) + 1 made odd: r = 20 -> 7 (half 3); r = 1 -> 1 (no blur)
    assert psf_half_size(20.0, "butterworth") == 20 + 3
    assert psf_half_size(1.0, "butterworth") == 1
    assert psf_half_size(20.0, "half_disc") == 20


def test_vignetting_dims_the_rim():
    plain = full_aperture_psf(8.0, "half_disc")
    vig = full_aperture_psf(8.0, "half_disc", vignetting=0.5)
    h = plain.shape[0] // 2
    # weight 1 at the centre, 1 - 0.5 (rho / r)^2 = 0.5 + ... at rho = 6: ratio to centre 1 - 0.5 * 36/64
    assert vig[h, h + 6] / vig[h, h] == pytest.approx(1 - 0.5 * 36 / 64, rel=1e-12)
    assert plain[h, h + 6] == plain[h, h]


def test_zero_and_subpixel_coc_give_delta():
    for c in (0.0, 0.2, -0.4):
        left, right = dual_pixel_psfs(c)
        np.testing.assert_array_equal(left, np.ones((1, 1)))
        np.testing.assert_array_equal(right, np.ones((1, 1)))


def test_size_embeds_centred():
    small = dual_pixel_psfs(3.0)
    big = dual_pixel_psfs(3.0, size=15)
    h0, h1 = small.left.shape[0] // 2, 7
    np.testing.assert_array_equal(big.left[h1 - h0 : h1 + h0 + 1, h1 - h0 : h1 + h0 + 1], small.left)
    assert big.left.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(coc_radius=float("nan")), ValueError, "coc_radius"),
        (dict(coc_radius="3"), TypeError, "coc_radius"),
        (dict(coc_radius=3.0, model="gauss"), ValueError, "model"),
        (dict(coc_radius=3.0, size=6), ValueError, "size"),
        (dict(coc_radius=3.0, size=5), ValueError, "size"),
        (dict(coc_radius=3.0, dtype=np.int32), TypeError, "dtype"),
        (dict(coc_radius=3.0, model="butterworth", order=0), ValueError, "order"),
        (dict(coc_radius=3.0, model="butterworth", beta=1.5), ValueError, "beta"),
        (dict(coc_radius=3.0, vignetting=1.0), ValueError, "vignetting"),
        (dict(coc_radius=3.0, kappa=0.0), ValueError, "kappa"),
    ],
)
def test_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        dual_pixel_psfs(**kwargs)
