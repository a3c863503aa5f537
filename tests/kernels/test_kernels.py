"""Compiled kernels (numba, CuPy) against their naive NumPy twins (STUMPY style).

The naive twins are plain loops written from the definitions; the naive spatially-varying
adjoint is a scatter (the fast kernels gather), the naive recursion adjoint is the transpose of
the naive forward's dense matrix. CuPy tests skip cleanly without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels import separable_recursion as sr
from kernels import spatially_varying as sv
from optics._backend import cupy_available

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}

gpu = pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")


def _sv_case(rng, shape, s, dtype):
    image = rng.standard_normal(shape).astype(dtype)
    kernels = rng.standard_normal(shape[:2] + (s, s)).astype(dtype)
    return image, kernels


# ---------------------------------------------------------------------------------------------
# boundary helpers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", ["symmetric", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("n,radius", [(1, 3), (2, 5), (5, 2), (4, 9)])
def test_padding_indices_match_numpy_pad_and_scalar_rule(boundary, n, radius):
    if boundary == "reflect" and n == 1:
        pytest.skip("numpy.pad 'reflect' of a single sample is degenerate")
    idx = sv.padding_indices(n, radius, boundary)
    np.testing.assert_array_equal(idx, np.pad(np.arange(n), radius, mode=boundary))
    np.testing.assert_array_equal(idx, [sv._source_index(i, n, boundary) for i in range(-radius, n + radius)])


def test_padding_indices_zero_marks_outside():
    np.testing.assert_array_equal(sv.padding_indices(3, 2, "zero"), [-1, -1, 0, 1, 2, -1, -1])


@pytest.mark.parametrize("boundary", sv.BOUNDARIES)
def test_fold_padding_is_the_adjoint_of_pad_image(boundary):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 2))
    z = rng.standard_normal((4 + 6, 3 + 6, 2))
    lhs = np.vdot(sv.pad_image(x, 3, boundary, np), z)
    rhs = np.vdot(x, sv.fold_padding(z, (4, 3), 3, boundary))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_fold_padding_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    z = np.random.default_rng(4).standard_normal((9, 11, 2))
    for boundary in sv.BOUNDARIES:
        np.testing.assert_allclose(
            sv.fold_padding(torch.tensor(z), (5, 7), 2, boundary).numpy(),
            sv.fold_padding(z, (5, 7), 2, boundary),
            rtol=1e-12,
            atol=1e-12,
        )


# ---------------------------------------------------------------------------------------------
# spatially-varying convolution
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", sv.BOUNDARIES)
@pytest.mark.parametrize("shape,s", [((5, 7, 2), 3), ((4, 3, 1), 7), ((1, 1, 3), 5), ((6, 6, 3), 1)])
def test_numba_spatially_varying_matches_naive(boundary, shape, s):
    if boundary == "reflect" and min(shape[:2]) < 2:
        pytest.skip("'reflect' needs two samples")
    image, kernels = _sv_case(np.random.default_rng(0), shape, s, np.float64)
    np.testing.assert_allclose(
        sv.spatially_varying_numba(image, kernels, boundary),
        sv.spatially_varying_naive(image, kernels, boundary),
        **TOL[np.float64],
    )
    np.testing.assert_allclose(
        sv.spatially_varying_adjoint_numba(image, kernels, boundary),
        sv.spatially_varying_adjoint_naive(image, kernels, boundary),
        **TOL[np.float64],
    )


def test_numba_spatially_varying_float32_stays_float32():
    image, kernels = _sv_case(np.random.default_rng(1), (6, 5, 3), 5, np.float32)
    forward = sv.spatially_varying_numba(image, kernels, "symmetric")
    adjoint = sv.spatially_varying_adjoint_numba(image, kernels, "symmetric")
    assert forward.dtype == np.float32 and adjoint.dtype == np.float32
    np.testing.assert_allclose(forward, sv.spatially_varying_naive(image, kernels, "symmetric"), **TOL[np.float32])
    np.testing.assert_allclose(
        adjoint, sv.spatially_varying_adjoint_naive(image, kernels, "symmetric"), **TOL[np.float32]
    )


@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    radius=st.integers(0, 3),
    boundary=st.sampled_from(["symmetric", "edge", "wrap", "zero"]),
    seed=st.integers(0, 2**16),
)
def test_numba_spatially_varying_matches_naive_property(h, w, radius, boundary, seed):
    image, kernels = _sv_case(np.random.default_rng(seed), (h, w, 1), 2 * radius + 1, np.float64)
    np.testing.assert_allclose(
        sv.spatially_varying_numba(image, kernels, boundary),
        sv.spatially_varying_naive(image, kernels, boundary),
        **TOL[np.float64],
    )


def test_naive_spatially_varying_is_a_convolution_for_constant_kernels():
    """Independent check of the twin itself: constant kernels = scipy's convolution."""
    from scipy.ndimage import convolve as nd_convolve

    rng = np.random.default_rng(2)
    image = rng.standard_normal((6, 7, 1))
    psf = rng.standard_normal((3, 3))
    kernels = np.broadcast_to(psf, (6, 7, 3, 3)).copy()
    expected = nd_convolve(image[..., 0], psf, mode="reflect")  # scipy 'reflect' = half-sample
    np.testing.assert_allclose(sv.spatially_varying_naive(image, kernels, "symmetric")[..., 0], expected, atol=1e-12)


def test_kernel_shape_errors():
    image = np.zeros((3, 4, 1))
    with pytest.raises(ValueError, match="kernels"):
        sv.spatially_varying_numba(image, np.zeros((3, 4, 2, 2)), "zero")
    with pytest.raises(ValueError, match="one kernel per pixel"):
        sv.spatially_varying_numba(image, np.zeros((4, 3, 3, 3)), "zero")
    with pytest.raises(ValueError, match="boundary"):
        sv.padding_indices(3, 1, "mirror")


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("boundary", sv.BOUNDARIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_spatially_varying_matches_naive(boundary, dtype):
    import cupy as cp

    image, kernels = _sv_case(np.random.default_rng(5), (7, 6, 3), 5, dtype)
    np.testing.assert_allclose(
        cp.asnumpy(sv.spatially_varying_cupy(cp.asarray(image), cp.asarray(kernels), boundary)),
        sv.spatially_varying_naive(image, kernels, boundary),
        **TOL[dtype],
    )
    np.testing.assert_allclose(
        cp.asnumpy(sv.spatially_varying_adjoint_cupy(cp.asarray(image), cp.asarray(kernels), boundary)),
        sv.spatially_varying_adjoint_naive(image, kernels, boundary),
        **TOL[dtype],
    )


# ---------------------------------------------------------------------------------------------
# separable recursion (RKR)
# ---------------------------------------------------------------------------------------------
def _sr_case(rng, c, h, w, n_atoms, gamma_channels, tap_channels, dtype):
    x = rng.standard_normal((c, h, w)).astype(dtype)
    gamma = rng.standard_normal((n_atoms, gamma_channels, h, w)).astype(dtype)
    taps = rng.random((n_atoms - 1, tap_channels, 3)).astype(dtype) + 0.05
    taps /= taps.sum(-1, keepdims=True)
    return x, gamma, taps


SR_CASES = [(2, 5, 7, 4, 1, 1), (3, 4, 3, 3, 3, 3), (1, 1, 1, 3, 1, 1), (2, 2, 2, 2, 2, 1), (3, 6, 4, 1, 1, 1)]


@pytest.mark.parametrize("boundary", ["zero", "reflect", "symmetric"])
@pytest.mark.parametrize("case", SR_CASES, ids=lambda c: "x".join(map(str, c)))
def test_numba_recursion_matches_naive(boundary, case):
    c, h, w, n_atoms, gc, tc = case
    if boundary == "reflect" and min(h, w) < 2:
        pytest.skip("'reflect' needs two samples")
    x, gamma, taps = _sr_case(np.random.default_rng(6), c, h, w, n_atoms, gc, tc, np.float64)
    np.testing.assert_allclose(
        sr.recursive_blur_numba(x, gamma, taps, boundary),
        sr.recursive_blur_naive(x, gamma, taps, boundary),
        **TOL[np.float64],
    )
    np.testing.assert_allclose(
        sr.recursive_blur_adjoint_numba(x, gamma, taps, boundary),
        sr.recursive_blur_adjoint_naive(x, gamma, taps, boundary),
        **TOL[np.float64],
    )


@pytest.mark.parametrize("boundary", ["zero", "reflect", "symmetric"])
@pytest.mark.parametrize("band", [1, 2, 5])
def test_numba_recursion_does_not_depend_on_the_band_size(boundary, band):
    """Bands with a halo of J - 1 rows give the exact result (tasks recompute their halo)."""
    x, gamma, taps = _sr_case(np.random.default_rng(12), 2, 11, 6, 4, 2, 1, np.float64)
    np.testing.assert_allclose(
        sr.recursive_blur_numba(x, gamma, taps, boundary, band=band),
        sr.recursive_blur_naive(x, gamma, taps, boundary),
        **TOL[np.float64],
    )
    np.testing.assert_allclose(
        sr.recursive_blur_adjoint_numba(x, gamma, taps, boundary, band=band),
        sr.recursive_blur_adjoint_naive(x, gamma, taps, boundary),
        **TOL[np.float64],
    )


def test_numba_recursion_float32_stays_float32():
    x, gamma, taps = _sr_case(np.random.default_rng(7), 3, 6, 5, 5, 1, 3, np.float32)
    forward = sr.recursive_blur_numba(x, gamma, taps, "reflect")
    adjoint = sr.recursive_blur_adjoint_numba(x, gamma, taps, "reflect")
    assert forward.dtype == np.float32 and adjoint.dtype == np.float32
    np.testing.assert_allclose(forward, sr.recursive_blur_naive(x, gamma, taps, "reflect"), **TOL[np.float32])
    np.testing.assert_allclose(adjoint, sr.recursive_blur_adjoint_naive(x, gamma, taps, "reflect"), **TOL[np.float32])


def test_naive_recursion_zero_boundary_is_convolution_with_the_cascade():
    """Independent check of the twin: atom j = cascade of the 3x3 outer products (Eq. 3).

    Per-step zero padding loses what one step pushes outside the image, so the image is first
    padded with J - 1 zeros (what optics.rkr_blur does) and the result cropped.
    """
    from scipy.signal import convolve2d

    rng = np.random.default_rng(8)
    x, _, taps = _sr_case(rng, 1, 9, 8, 4, 1, 1, np.float64)
    atom = np.ones((1, 1))
    for j in range(3):
        atom = convolve2d(atom, np.outer(taps[j, 0], taps[j, 0]))
    gamma = np.zeros((4, 1, 9 + 6, 8 + 6))
    gamma[3] = 1.0
    padded = np.pad(x, ((0, 0), (3, 3), (3, 3)))
    result = sr.recursive_blur_naive(padded, gamma, taps, "zero")[0, 3:-3, 3:-3]
    np.testing.assert_allclose(result, convolve2d(x[0], atom, mode="same"), atol=1e-12)


def test_recursion_argument_errors():
    x, gamma, taps = _sr_case(np.random.default_rng(9), 1, 4, 4, 3, 1, 1, np.float64)
    with pytest.raises(ValueError, match="boundary"):
        sr.recursive_blur_numba(x, gamma, taps, "wrap")
    with pytest.raises(ValueError, match="J = taps.shape"):
        sr.recursive_blur_numba(x, gamma[:2], taps, "zero")
    with pytest.raises(ValueError, match="reflect"):
        sr.recursive_blur_numba(x[:, :1], gamma[:, :, :1], taps, "reflect")
    with pytest.raises(ValueError, match="band"):
        sr.recursive_blur_numba(x, gamma, taps, "zero", band=0)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("boundary", ["zero", "reflect", "symmetric"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_recursion_matches_naive(boundary, dtype):
    import cupy as cp

    x, gamma, taps = _sr_case(np.random.default_rng(10), 3, 7, 6, 4, 1, 3, dtype)
    args = (cp.asarray(x), cp.asarray(gamma), cp.asarray(taps))
    np.testing.assert_allclose(
        cp.asnumpy(sr.recursive_blur_cupy(*args, boundary)), sr.recursive_blur_naive(x, gamma, taps, boundary), **TOL[dtype]
    )
    np.testing.assert_allclose(
        cp.asnumpy(sr.recursive_blur_adjoint_cupy(*args, boundary)),
        sr.recursive_blur_adjoint_naive(x, gamma, taps, boundary),
        **TOL[dtype],
    )
