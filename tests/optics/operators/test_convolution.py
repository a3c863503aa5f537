"""convolve / convolve_adjoint / wiener_deconvolve / nnls_blend and the optics.operators.fourier layer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given
from hypothesis import strategies as st

import optics
from optics.operators import fourier

# numpy.pad-style boundary -> scipy.ndimage mode (an independent implementation of the same extension)
NDIMAGE_MODE = {"symmetric": "reflect", "reflect": "mirror", "periodic": "wrap", "edge": "nearest", "zero": "constant"}


def rand(rng, shape, dtype=np.float64):
    return rng.random(shape).astype(dtype)


@pytest.mark.parametrize("boundary", sorted(optics.BOUNDARIES))
@pytest.mark.parametrize("shape", [(23, 31), (23, 31, 3)])
def test_convolve_matches_scipy_ndimage(boundary, shape):
    rng = np.random.default_rng(1)
    x, k = rand(rng, shape), rand(rng, (7, 7))
    ours = optics.convolve(x, k, boundary)
    kernel = k if len(shape) == 2 else k[:, :, None]
    ref = ndi.convolve(x, kernel, mode=NDIMAGE_MODE[boundary], cval=0.0)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_convolve_is_true_convolution_with_centred_origin():
    x = np.zeros((9, 9))
    x[4, 4] = 1.0
    k = np.arange(9.0).reshape(3, 3) + 1
    out = optics.convolve(x, k, boundary="zero")
    np.testing.assert_allclose(out[3:6, 3:6], k)  # impulse response is the kernel itself, not flipped


@pytest.mark.parametrize("boundary", sorted(optics.BOUNDARIES))
@pytest.mark.parametrize("shape", [(13, 17), (13, 17, 2)])
def test_convolution_adjointness(boundary, shape):
    """<A x, y> == <x, A^T y> to a relative tolerance, for every boundary (DeepInverse-style)."""
    rng = np.random.default_rng(2)
    op = optics.Convolution(rand(rng, (5, 5)), boundary)
    x, y = rand(rng, shape), rand(rng, shape)
    lhs, rhs = np.vdot(op(x), y), np.vdot(x, op.adjoint(y))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


def test_convolution_adjointness_torch_float32():
    rng = np.random.default_rng(3)
    k = torch.tensor(rand(rng, (5, 5), np.float32))
    x, y = (torch.tensor(rand(rng, (16, 12, 3), np.float32)) for _ in range(2))
    for b in optics.BOUNDARIES:
        lhs = (optics.convolve(x, k, b) * y).sum().item()
        rhs = (x * optics.convolve_adjoint(y, k, b)).sum().item()
        assert abs(lhs - rhs) <= 1e3 * np.finfo(np.float32).eps * abs(lhs)


@given(sigma=st.floats(0.4, 0.9), seed=st.integers(0, 1000))
def test_wiener_deconvolve_inverts_convolve(sigma, seed):
    """Symmetric boundary + centrosymmetric kernel: deconvolution is exact (DCT-domain), no border ringing."""
    rng = np.random.default_rng(seed)
    x = rand(rng, (24, 30, 3))
    k = optics.gaussian_psf(sigma, radius=3)
    y = optics.convolve(x, k, boundary="symmetric")
    np.testing.assert_allclose(optics.wiener_deconvolve(y, k, 0.0), x, atol=1e-8)


def test_wiener_deconvolve_no_border_ringing():
    """A smooth ramp blurred and deconvolved with eps > 0 stays accurate up to the border."""
    yy, xx = np.mgrid[0:64, 0:80] / 80.0
    x = 0.2 + 0.5 * xx + 0.2 * yy
    k = optics.gaussian_psf(2.0)
    y = optics.convolve(x, k)
    sym = optics.wiener_deconvolve(y, k, 1e-3, boundary="symmetric")
    per = optics.wiener_deconvolve(y, k, 1e-3, boundary="periodic")
    assert np.abs(sym - x).max() < 5e-3  # eps-limited error of a smooth image, at the border too
    assert np.abs(per - x).max() > 0.5  # the wrap-around jump of the periodic assumption rings


def test_wiener_deconvolve_matches_explicit_filter_periodic():
    rng = np.random.default_rng(4)
    x = rand(rng, (20, 24))
    k = optics.gaussian_psf(1.0, radius=3)
    eps = 1e-2
    K = fourier.psf_to_otf(k, x.shape)
    ref = np.real(np.fft.ifft2(np.fft.fft2(x) * np.conj(K) / (np.abs(K) ** 2 + eps)))
    np.testing.assert_allclose(optics.wiener_deconvolve(x, k, eps, boundary="periodic"), ref, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    rng = np.random.default_rng(5)
    x = rand(rng, (16, 16, 3), dtype)
    k = optics.gaussian_psf(1.0)  # float64 kernel, float32 image -> float32 result
    assert optics.convolve(x, k).dtype == dtype
    assert optics.convolve_adjoint(x, k).dtype == dtype
    assert optics.wiener_deconvolve(x, k, 1e-2).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_numpy(dtype, device):
    rng = np.random.default_rng(6)
    x, k = rand(rng, (18, 22, 3)), optics.gaussian_psf(1.2)
    tx, tk = torch.tensor(x, dtype=dtype, device=device), torch.tensor(k, dtype=dtype, device=device)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    for b in optics.BOUNDARIES:
        out = optics.convolve(tx, tk, b)
        assert out.dtype == dtype
        np.testing.assert_allclose(out.cpu().numpy(), optics.convolve(x, k, b), atol=atol)
    np.testing.assert_allclose(optics.wiener_deconvolve(tx, tk, 1e-2).cpu().numpy(), optics.wiener_deconvolve(x, k, 1e-2), atol=atol)


def test_convolve_gradcheck_float64():
    rng = np.random.default_rng(7)
    x = torch.tensor(rand(rng, (5, 6, 2)), requires_grad=True)
    k = torch.tensor(rand(rng, (3, 3)), requires_grad=True)
    for b in ("symmetric", "zero"):
        assert torch.autograd.gradcheck(lambda a, w: optics.convolve(a, w, b), (x, k))
    assert torch.autograd.gradcheck(lambda a, w: optics.wiener_deconvolve(a, w, 1e-2), (x, k))


def test_function_equals_class():
    rng = np.random.default_rng(8)
    x, k = rand(rng, (10, 12)), rand(rng, (3, 3))
    np.testing.assert_array_equal(optics.Convolution(k, "edge")(x), optics.convolve(x, k, "edge"))


@pytest.mark.parametrize(
    "image, err, match",
    [
        (np.ones(5), ValueError, "image must be \\(H, W\\) or \\(H, W, C\\); got 1-D"),
        (np.ones((2, 4, 4, 3)), ValueError, "got 4-D"),
        (np.full((8, 8), np.nan), ValueError, "image must contain only finite values; got 64 NaN"),
        (np.ones((8, 8), dtype=np.uint8), TypeError, "image must have a real floating dtype .* got uint8"),
        (np.ones((8, 8), dtype=np.float16), TypeError, "float16"),
    ],
)
def test_bad_image(image, err, match):
    for fn in (optics.convolve, optics.convolve_adjoint, lambda a, k: optics.wiener_deconvolve(a, k, 1e-2)):
        with pytest.raises(err, match=match):
            fn(image, optics.gaussian_psf(1.0))


def test_bad_boundary_and_mixed_libraries():
    with pytest.raises(ValueError, match="boundary must be one of"):
        optics.convolve(np.ones((8, 8)), optics.gaussian_psf(1.0), boundary="mirror")
    with pytest.raises(ValueError, match="boundary must be one of"):
        optics.wiener_deconvolve(np.ones((8, 8)), optics.gaussian_psf(1.0), 1e-2, boundary="zero")
    with pytest.raises(TypeError, match="one library"):
        optics.convolve(torch.ones(8, 8, dtype=torch.float64), optics.gaussian_psf(1.0))
    with pytest.raises(ValueError, match="psf side 9 exceeds the deconvolution grid"):
        optics.wiener_deconvolve(np.ones((3, 3)), optics.gaussian_psf(1.0), 1e-2)


# ---------------------------------------------------------------- nnls_blend
def test_nnls_blend_recovers_known_weights():
    rng = np.random.default_rng(9)
    cands = [rand(rng, (20, 20)) for _ in range(3)]
    target = 0.3 * cands[0] + 0.0 * cands[1] + 1.2 * cands[2]
    np.testing.assert_allclose(optics.nnls_blend(cands, target), [0.3, 0.0, 1.2], atol=1e-10)
    np.testing.assert_allclose(optics.nnls_blend(np.stack(cands), target), [0.3, 0.0, 1.2], atol=1e-10)


def test_nnls_blend_weights_are_non_negative():
    rng = np.random.default_rng(10)
    a = rand(rng, (30,))
    w = optics.nnls_blend([a, a + 1.0], -a)  # unconstrained LS would use negative weights
    assert (w >= 0).all()


def test_nnls_blend_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        optics.nnls_blend([], np.ones(3))
    with pytest.raises(ValueError, match=r"results\[1\] must have the target's shape \(3,\); got \(4,\)"):
        optics.nnls_blend([np.ones(3), np.ones(4)], np.ones(3))
    with pytest.raises(ValueError, match="target must contain only finite"):
        optics.nnls_blend([np.ones(3)], np.array([1.0, np.nan, 0]))


# ---------------------------------------------------------------- optics.operators.fourier layer
@given(n_half=st.integers(0, 4), H=st.integers(9, 20), W=st.integers(9, 20))
def test_otf_roundtrip_any_grid_parity(n_half, H, W):
    rng = np.random.default_rng(n_half * 400 + H * 20 + W)
    k = rand(rng, (2 * n_half + 1, 2 * n_half + 1))
    otf = fourier.psf_to_otf(k, (H, W))
    np.testing.assert_allclose(otf[0, 0], k.sum(), rtol=1e-12)
    np.testing.assert_allclose(fourier.otf_to_psf(otf, 2 * n_half + 1), k, atol=1e-13)


@given(s=st.integers(1, 5), N=st.sampled_from([5, 7, 9, 11]))
def test_periodic_upsample_sum_and_samples(s, N):
    rng = np.random.default_rng(s * 100 + N)
    k0 = rand(rng, (N, N))
    up = fourier.periodic_upsample(k0, s)
    assert up.shape == (s * N, s * N)
    np.testing.assert_allclose(up.sum(), s * s * k0.sum(), rtol=1e-12)
    np.testing.assert_allclose(up[::s, ::s], k0, atol=1e-13)


def test_fourier_layer_is_batched():
    rng = np.random.default_rng(11)
    ks = rand(rng, (4, 2, 5, 5))
    otf = fourier.psf_to_otf(torch.tensor(ks), (12, 13))
    assert otf.shape == (4, 2, 12, 13)
    for i in range(4):
        np.testing.assert_allclose(otf[i, 1].numpy(), fourier.psf_to_otf(ks[i, 1], (12, 13)), atol=1e-12)
    filt = fourier.wiener_filter(otf, 1e-2)
    np.testing.assert_allclose(filt.numpy(), np.conj(otf.numpy()) / (np.abs(otf.numpy()) ** 2 + 1e-2), atol=1e-12)


def test_spectral_zero_pad_refuses_even_input():
    with pytest.raises(ValueError, match="odd sides"):
        fourier.spectral_zero_pad(np.ones((4, 4), complex), (8, 8))
