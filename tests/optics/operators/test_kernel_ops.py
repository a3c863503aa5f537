"""Kernel operators: fourier_upsample, dilate, wiener_inverse (and gaussian/disc PSFs).

Independent references: the interpolation property of sinc upsampling, closed-form Gaussians,
explicit DFTs of the defining equations, naive loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import optics
from optics.operators import fourier

FACTORS = st.integers(min_value=1, max_value=5)
SIGMAS = st.floats(min_value=0.6, max_value=3.0)  # physical blur std in pixels
EPS = st.floats(min_value=1e-4, max_value=1e-1)
DTYPES = [np.float32, np.float64]


def rtol_for(dtype) -> float:
    return 200 * np.finfo(dtype).eps


def random_psf(rng, n, dtype=np.float64):
    k = rng.random((n, n)) + 0.05
    return (k / k.sum()).astype(dtype)


# ---------------------------------------------------------------- PSFs
@given(sigma=st.floats(0.0, 6.0))
def test_gaussian_psf_unit_sum_odd_centred(sigma):
    k = optics.gaussian_psf(sigma)
    assert k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
    assert math.isclose(k.sum(), 1.0, rel_tol=1e-12)
    c = k.shape[0] // 2
    assert k[c, c] == k.max()
    np.testing.assert_allclose(k, k.T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1, ::-1], rtol=0, atol=1e-15)


def test_gaussian_psf_matches_closed_form():
    sigma, r = 1.7, 9
    x = np.arange(-r, r + 1)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(optics.gaussian_psf(sigma, radius=r), g / g.sum(), rtol=1e-13)
    # second moment matches sigma^2 (the truncated tails are negligible at r = 9 > 5 sigma)
    k = optics.gaussian_psf(sigma, radius=r)
    assert math.isclose((k.sum(0) * x**2).sum(), sigma**2, rel_tol=1e-6)


@given(radius=st.floats(0.0, 12.0))
def test_disc_psf_area_support_and_sum(radius):
    k = optics.disc_psf(radius)
    n = k.shape[0]
    assert n % 2 == 1 and math.isclose(k.sum(), 1.0, rel_tol=1e-12)
    assert n == 2 * max(math.ceil(radius + 0.5) - 1, 0) + 1
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    if radius >= 2:
        # coverage of the centre pixel is 1 and the unnormalised total is the disc's area
        cover = k / k.max()
        assert abs(cover.sum() - math.pi * radius**2) < 0.02 * math.pi * radius**2 + 0.5


def test_psf_dtype_and_bad_input():
    assert optics.gaussian_psf(1.0, dtype=np.float32).dtype == np.float32
    assert optics.disc_psf(2.0, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="sigma"):
        optics.gaussian_psf(-1.0)
    with pytest.raises(ValueError, match="sigma"):
        optics.gaussian_psf(float("nan"))
    with pytest.raises(TypeError, match="radius"):
        optics.gaussian_psf(1.0, radius=2.5)
    with pytest.raises(ValueError, match="radius"):
        optics.disc_psf(-0.5)
    with pytest.raises(TypeError, match="dtype"):
        optics.gaussian_psf(1.0, dtype=np.int32)


# ---------------------------------------------------------------- fourier_upsample
@given(n_half=st.integers(1, 6), s=FACTORS, seed=st.integers(0, 2**16))
@example(n_half=3, s=2, seed=0)  # even factors: the classic half-pixel-shift failure
@example(n_half=3, s=4, seed=1)
def test_fourier_upsample_interpolates_samples(n_half, s, seed):
    """Sinc interpolation passes through the original samples: out[::s, ::s] == psf (any s parity)."""
    rng = np.random.default_rng(seed)
    k = random_psf(rng, 2 * n_half + 1)
    up = optics.fourier_upsample(k, s)
    assert up.shape == (s * (k.shape[0] - 1) + 1,) * 2
    np.testing.assert_allclose(up[::s, ::s], k, rtol=0, atol=1e-14)


@given(n_half=st.integers(1, 6), s=FACTORS, seed=st.integers(0, 2**16))
def test_fourier_upsample_equals_explicit_trigonometric_interpolant(n_half, s, seed):
    """Compare with the DFT interpolation formula evaluated point by point (no FFT, no padding)."""
    rng = np.random.default_rng(seed)
    n = 2 * n_half + 1
    k = random_psf(rng, n)
    up = optics.fourier_upsample(k, s)
    h = n // 2
    freqs = np.arange(-h, h + 1)
    pos = np.arange(-h, h + 1)
    K = np.exp(-2j * np.pi * np.outer(freqs, pos) / n)  # analysis (n x n)
    spectrum = K @ k @ K.T
    t = np.arange(-s * h, s * h + 1) / s  # fractional positions in original pixels
    synth = np.exp(2j * np.pi * np.outer(t, freqs) / n) / n
    ref = np.real(synth @ spectrum @ synth.T)
    np.testing.assert_allclose(up, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("s", [2, 3, 4, 5])
@pytest.mark.parametrize("sigma", [1.5, 2.0])
def test_fourier_upsample_gaussian_is_wider_gaussian(sigma, s):
    """KPAC supp. Fig. 1: (1/s^2) k_up_s == Gaussian(s sigma), max rel. error <= 1e-4."""
    r = math.ceil(6 * sigma)
    up = optics.fourier_upsample(optics.gaussian_psf(sigma, radius=r), s) / s**2
    ref = optics.gaussian_psf(s * sigma, radius=s * r)
    assert np.abs(up - ref).max() / ref.max() <= 1e-4


def test_fourier_upsample_sigma1_within_sampling_bound():
    """A sampled sigma = 1 Gaussian is aliased: the error is bounded by the sampling theorem, not 1e-4."""
    from validation.kernel_upsampling import aliasing_bound

    up = optics.fourier_upsample(optics.gaussian_psf(1.0, radius=6), 2) / 4
    ref = optics.gaussian_psf(2.0, radius=12)
    err = np.abs(up - ref).max() / ref.max()
    assert 1e-4 < err <= aliasing_bound(1.0)


@given(s=FACTORS, seed=st.integers(0, 2**16))
def test_fourier_upsample_symmetry_preserved(s, seed):
    rng = np.random.default_rng(seed)
    k = random_psf(rng, 7)
    k = k + k[::-1, ::-1]  # centrosymmetric
    up = optics.fourier_upsample(k, s)
    np.testing.assert_allclose(up, up[::-1, ::-1], atol=1e-14)


def test_fourier_upsample_factor_one_is_identity_copy():
    k = random_psf(np.random.default_rng(0), 5)
    out = optics.fourier_upsample(k, 1)
    np.testing.assert_array_equal(out, k)
    assert out is not k


# ---------------------------------------------------------------- dilate
@given(n_half=st.integers(0, 5), s=FACTORS, seed=st.integers(0, 2**16))
def test_dilate_matches_naive_loop(n_half, s, seed):
    k = random_psf(np.random.default_rng(seed), 2 * n_half + 1)
    out = optics.dilate(k, s)
    n = k.shape[0]
    ref = np.zeros((s * (n - 1) + 1,) * 2)
    for i in range(n):
        for j in range(n):
            ref[s * i, s * j] = k[i, j]
    np.testing.assert_array_equal(out, ref)
    assert math.isclose(out.sum(), k.sum(), rel_tol=1e-12)


def test_dilated_convolution_equals_atrous_conv2d():
    """Convolving with dilate(k, s) is torch's dilated (atrous) convolution with rate s."""
    rng = np.random.default_rng(3)
    k = random_psf(rng, 5)
    x = rng.random((40, 50))
    s = 3
    ours = optics.convolve(x, optics.dilate(k, s), boundary="zero")
    ref = torch.nn.functional.conv2d(
        torch.tensor(x)[None, None], torch.tensor(k[::-1, ::-1].copy())[None, None], padding=2 * s, dilation=s
    )[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-13)


# ---------------------------------------------------------------- wiener_inverse
@given(sigma=SIGMAS, eps=EPS, extra=st.integers(0, 10))
def test_wiener_inverse_spectrum_is_eq2(sigma, eps, extra):
    """F(k^+) == conj(F(k)) / (|F(k)|^2 + eps) on the size x size grid (explicit DFT reference)."""
    k = optics.gaussian_psf(sigma, radius=3)
    size = k.shape[0] + 2 * extra
    inv = optics.wiener_inverse(k, eps, size)
    big = np.zeros((size, size))
    c = size // 2
    big[c - 3 : c + 4, c - 3 : c + 4] = k
    K = np.fft.fft2(np.fft.ifftshift(big))
    ref = np.real(np.fft.fftshift(np.fft.ifft2(np.conj(K) / (np.abs(K) ** 2 + eps))))
    np.testing.assert_allclose(inv, ref, atol=1e-12)


def test_wiener_inverse_eps0_is_direct_inverse():
    """eps = 0 where F(k) has no zeros: k * k^+ is the delta on the periodic grid."""
    k = optics.gaussian_psf(0.8, radius=3)
    size = 15
    inv = optics.wiener_inverse(k, 0.0, size)
    K = fourier.psf_to_otf(k, (size, size))
    Kinv = fourier.psf_to_otf(inv, (size, size))
    np.testing.assert_allclose(K * Kinv, np.ones_like(K), atol=1e-10)


def test_wiener_inverse_eps0_refuses_zeros():
    box = np.ones((3, 3)) / 9  # F(box) is exactly zero at frequency 1/3 on a 9-grid
    with pytest.raises(ValueError, match="eps > 0"):
        optics.wiener_inverse(box, 0.0, 9)
    with pytest.raises(ValueError, match="zeros"):
        optics.wiener_inverse(np.ones((5, 5)) / 25, 0.0, 15)  # zeros at multiples of 1/5
    # the same kernels with eps > 0 are fine
    assert np.isfinite(optics.wiener_inverse(box, 1e-3, 9)).all()
    # the pseudo-inverse is allowed explicitly
    assert np.isfinite(optics.wiener_inverse(box, 0.0, 9, rcond=1e-8)).all()


@pytest.mark.parametrize("s", [2, 3, 4, 5])
@pytest.mark.parametrize("eps", [1e-3, 1e-2])
def test_upsampling_commutes_with_wiener_inversion_periodic(s, eps):
    """KPAC supp. Eq. 3/4 on the periodic grid, float64: (1/s^2 k_up)^+ == 1/s^2 (k^+)_up to 1e-10."""
    from validation.kernel_upsampling import commutation

    rows = commutation(factors=(s,), epsilons=(eps,))
    assert rows[0]["max_abs_error"] <= 1e-10


@given(sigma=SIGMAS, eps=EPS, s=st.integers(2, 5))
def test_commutation_property(sigma, eps, s):
    k = optics.gaussian_psf(sigma, radius=4)
    N = 15
    big = np.zeros((N, N))
    big[N // 2 - 4 : N // 2 + 5, N // 2 - 4 : N // 2 + 5] = k
    k0 = scipy.fft.ifftshift(big)
    lhs = np.real(scipy.fft.ifftn(fourier.wiener_filter(scipy.fft.fftn(fourier.periodic_upsample(k0, s) / s**2), eps)))
    rhs = fourier.periodic_upsample(np.real(scipy.fft.ifftn(fourier.wiener_filter(scipy.fft.fftn(k0), eps))), s) / s**2
    scale = np.abs(rhs).max()
    np.testing.assert_allclose(lhs, rhs, atol=1e-11 * max(scale, 1.0) / eps)


# ---------------------------------------------------------------- dtype, torch, CuPy
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_preserved(dtype):
    k = optics.gaussian_psf(1.2, dtype=dtype)
    assert optics.fourier_upsample(k, 2).dtype == dtype
    assert optics.dilate(k, 2).dtype == dtype
    assert optics.wiener_inverse(k, 1e-2, 15).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_numpy(dtype, device):
    k = optics.gaussian_psf(1.3, radius=4)
    t = torch.tensor(k, dtype=dtype, device=device)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    for fn in (lambda a: optics.fourier_upsample(a, 3), lambda a: optics.dilate(a, 2),
               lambda a: optics.wiener_inverse(a, 1e-2, 21)):
        out = fn(t)
        assert out.dtype == dtype and out.device.type == device
        np.testing.assert_allclose(out.cpu().numpy(), fn(k), atol=atol)


def test_float64_gradcheck():
    rng = np.random.default_rng(0)
    k = torch.tensor(random_psf(rng, 5), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: optics.fourier_upsample(a, 2), (k,))
    assert torch.autograd.gradcheck(lambda a: optics.dilate(a, 3), (k,))
    assert torch.autograd.gradcheck(lambda a: optics.wiener_inverse(a, 1e-2, 9), (k,))


@pytest.mark.gpu
def test_cupy_matches_numpy():
    from optics._backend import cupy_available

    if not cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    import cupy

    k = optics.gaussian_psf(1.3, radius=4)
    for fn in (lambda a: optics.fourier_upsample(a, 3), lambda a: optics.dilate(a, 2),
               lambda a: optics.wiener_inverse(a, 1e-2, 21)):
        out = fn(cupy.asarray(k))
        assert isinstance(out, cupy.ndarray)
        np.testing.assert_allclose(out.get(), fn(k), atol=1e-12)


# ---------------------------------------------------------------- bad input
BAD_PSFS = [
    (np.full((3, 3), np.nan), ValueError, "finite"),
    (np.array([[1.0, np.inf, 0], [0, 1, 0], [0, 0, 1]]), ValueError, "finite"),
    (np.ones(3), ValueError, "2-D"),
    (np.ones((3, 3, 1)), ValueError, "2-D"),
    (np.ones((4, 4)), ValueError, "odd"),
    (np.ones((3, 5)), ValueError, "square"),
    (np.array([[0, 1.0, 0], [0, 0, 0], [0, -1.0, 0]]), ValueError, "non-zero sum"),
    (np.zeros((3, 3)), ValueError, "non-zero sum"),
    (np.ones((3, 3), dtype=np.int64), TypeError, "floating"),
    (np.ones((3, 3), dtype=np.complex128), TypeError, "floating"),
    ([[1.0]], TypeError, "array"),
]


@pytest.mark.parametrize("psf, err, match", BAD_PSFS)
@pytest.mark.parametrize("op", ["fourier_upsample", "dilate", "wiener_inverse", "convolve"])
def test_bad_psf(op, psf, err, match):
    call = {
        "fourier_upsample": lambda k: optics.fourier_upsample(k, 2),
        "dilate": lambda k: optics.dilate(k, 2),
        "wiener_inverse": lambda k: optics.wiener_inverse(k, 1e-2, 9),
        "convolve": lambda k: optics.convolve(np.ones((8, 8)), k),
    }[op]
    with pytest.raises(err, match=match) as info:
        call(psf)
    assert "psf" in str(info.value) or err is TypeError


@pytest.mark.parametrize("factor, err", [(0, ValueError), (-2, ValueError), (2.0, TypeError), (1.5, TypeError), (True, TypeError), ("2", TypeError)])
@pytest.mark.parametrize("op", [optics.fourier_upsample, optics.dilate])
def test_bad_factor(op, factor, err):
    with pytest.raises(err, match="factor"):
        op(optics.gaussian_psf(1.0), factor)


def test_bad_size_and_eps():
    k = optics.gaussian_psf(1.0)  # 9 x 9
    with pytest.raises(ValueError, match="size must be >= the psf side 9; got 7"):
        optics.wiener_inverse(k, 1e-2, 7)
    with pytest.raises(ValueError, match="size must be odd"):
        optics.wiener_inverse(k, 1e-2, 10)
    with pytest.raises(TypeError, match="size"):
        optics.wiener_inverse(k, 1e-2, 11.0)
    with pytest.raises(ValueError, match="eps must be finite and >= 0; got -0.001"):
        optics.wiener_inverse(k, -1e-3, 11)
    with pytest.raises(ValueError, match="eps"):
        optics.wiener_inverse(k, float("nan"), 11)
