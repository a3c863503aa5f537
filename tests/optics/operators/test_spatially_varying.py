"""optics.spatially_varying_blur and its adjoint; adjointness of every linear operator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optics
from kernels.spatially_varying import spatially_varying_adjoint_naive, spatially_varying_naive
from optics import spatially_varying_blur, spatially_varying_blur_adjoint
from optics._backend import cupy_available

BOUNDARIES = ("symmetric", "reflect", "periodic", "edge", "zero")
NAIVE_MODE = {"symmetric": "symmetric", "reflect": "reflect", "periodic": "wrap", "edge": "edge", "zero": "zero"}
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


def _field(rng, shape, s, dtype=np.float64):
    return (
        rng.standard_normal(shape).astype(dtype),
        rng.standard_normal(tuple(shape[:2]) + (s, s)).astype(dtype),
    )


# ---------------------------------------------------------------------------------------------
# forward operator against independent references
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_constant_kernel_field_equals_convolve(boundary):
    rng = np.random.default_rng(0)
    image = rng.standard_normal((9, 8, 3))
    psf = rng.random((5, 5))
    kernels = np.broadcast_to(psf, (9, 8, 5, 5)).copy()
    np.testing.assert_allclose(
        spatially_varying_blur(image, kernels, boundary), optics.convolve(image, psf, boundary), **TOL[np.float64]
    )


def test_delta_kernels_are_the_identity_and_shift_kernels_shift():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((6, 7))
    delta = np.zeros((6, 7, 3, 3))
    delta[:, :, 1, 1] = 1.0
    np.testing.assert_array_equal(spatially_varying_blur(image, delta), image)
    # k_p(q) = delta(q - (0, 1)): y(p) = x(p - (0, 1)), the image moved one column right.
    shift = np.zeros((6, 7, 3, 3))
    shift[:, :, 1, 2] = 1.0
    out = spatially_varying_blur(image, shift, boundary="zero")
    np.testing.assert_array_equal(out[:, 1:], image[:, :-1])
    np.testing.assert_array_equal(out[:, 0], 0.0)


def test_each_pixel_uses_its_own_kernel():
    """Half the image with a delta, half with a box: each half equals its own convolution."""
    rng = np.random.default_rng(2)
    image = rng.standard_normal((8, 10))
    box = np.full((3, 3), 1.0 / 9.0)
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    kernels = np.empty((8, 10, 3, 3))
    kernels[:, :5] = delta
    kernels[:, 5:] = box
    out = spatially_varying_blur(image, kernels)
    np.testing.assert_allclose(out[:, :5], image[:, :5], atol=1e-14)
    np.testing.assert_allclose(out[:, 5:], optics.convolve(image, box)[:, 5:], atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["symmetric", "zero"])
def test_matches_naive_twin_and_keeps_dtype(dtype, boundary):
    image, kernels = _field(np.random.default_rng(3), (7, 6, 2), 5, dtype)
    out = spatially_varying_blur(image, kernels, boundary)
    adj = spatially_varying_blur_adjoint(image, kernels, boundary)
    assert out.dtype == dtype and adj.dtype == dtype
    np.testing.assert_allclose(out, spatially_varying_naive(image, kernels, NAIVE_MODE[boundary]), **TOL[dtype])
    np.testing.assert_allclose(adj, spatially_varying_adjoint_naive(image, kernels, NAIVE_MODE[boundary]), **TOL[dtype])


def test_grey_image_equals_single_channel():
    image, kernels = _field(np.random.default_rng(4), (5, 6), 3)
    np.testing.assert_allclose(
        spatially_varying_blur(image, kernels), spatially_varying_blur(image[:, :, None], kernels)[:, :, 0], atol=0
    )


def test_kernel_larger_than_image():
    image, kernels = _field(np.random.default_rng(5), (2, 3, 1), 9)
    for boundary in ("symmetric", "periodic", "edge", "zero"):
        np.testing.assert_allclose(
            spatially_varying_blur(image, kernels, boundary),
            spatially_varying_naive(image, kernels, NAIVE_MODE[boundary]),
            **TOL[np.float64],
        )


# ---------------------------------------------------------------------------------------------
# torch path
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_torch_matches_numpy(boundary, device):
    image, kernels = _field(np.random.default_rng(6), (6, 5, 3), 5)
    ti = torch.tensor(image, device=device)
    tk = torch.tensor(kernels, device=device)
    np.testing.assert_allclose(
        spatially_varying_blur(ti, tk, boundary).cpu().numpy(), spatially_varying_blur(image, kernels, boundary), **TOL[np.float64]
    )
    np.testing.assert_allclose(
        spatially_varying_blur_adjoint(ti, tk, boundary).cpu().numpy(),
        spatially_varying_blur_adjoint(image, kernels, boundary),
        **TOL[np.float64],
    )


def test_torch_gradients_are_exact():
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.standard_normal((4, 5, 2)), requires_grad=True)
    k = torch.tensor(rng.standard_normal((4, 5, 3, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, k: spatially_varying_blur(x, k, "symmetric"), (x, k))
    assert torch.autograd.gradcheck(lambda x, k: spatially_varying_blur_adjoint(x, k, "reflect"), (x, k))


def test_torch_gradient_wrt_image_is_the_adjoint():
    rng = np.random.default_rng(8)
    image, kernels = _field(rng, (5, 6, 2), 3)
    weights = rng.standard_normal((5, 6, 2))
    x = torch.tensor(image, requires_grad=True)
    (spatially_varying_blur(x, torch.tensor(kernels), "edge") * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(
        x.grad.numpy(), spatially_varying_adjoint_naive(weights, kernels, "edge"), **TOL[np.float64]
    )


# ---------------------------------------------------------------------------------------------
# CuPy path
# ---------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_matches_numpy():
    import cupy as cp

    image, kernels = _field(np.random.default_rng(9), (6, 7, 3), 5)
    np.testing.assert_allclose(
        cp.asnumpy(spatially_varying_blur(cp.asarray(image), cp.asarray(kernels))),
        spatially_varying_blur(image, kernels),
        **TOL[np.float64],
    )


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_errors_name_the_argument():
    image, kernels = _field(np.random.default_rng(10), (4, 5), 3)
    with pytest.raises(ValueError, match="kernels must be \\(H, W, S, S\\)"):
        spatially_varying_blur(image, kernels[..., 0])
    with pytest.raises(ValueError, match="odd side"):
        spatially_varying_blur(image, np.zeros((4, 5, 2, 2)))
    with pytest.raises(ValueError, match="one kernel per pixel"):
        spatially_varying_blur(image, np.zeros((5, 4, 3, 3)))
    with pytest.raises(TypeError, match="dtype"):
        spatially_varying_blur(image, kernels.astype(np.float32))
    with pytest.raises(TypeError, match="image"):
        spatially_varying_blur(image.astype(np.int64), kernels)
    with pytest.raises(ValueError, match="boundary"):
        spatially_varying_blur(image, kernels, boundary="mirror")
    with pytest.raises(ValueError, match="finite"):
        bad = image.copy()
        bad[0, 0] = np.nan
        spatially_varying_blur(bad, kernels)
    with pytest.raises(TypeError):
        spatially_varying_blur(torch.tensor(image), kernels)


# ---------------------------------------------------------------------------------------------
# adjointness <A x, y> = <x, A^T y> for every linear operator of the package
# ---------------------------------------------------------------------------------------------
def _rkr_taps(rng, n_steps):
    taps = rng.random((n_steps, 3)) + 0.1
    return taps / taps.sum(-1, keepdims=True)


def _operators():
    ops = []
    for boundary in BOUNDARIES:
        ops.append(
            pytest.param(
                lambda rng, shape, b=boundary: _sv_pair(rng, shape, b), id=f"spatially_varying-{boundary}"
            )
        )
    for boundary in ("zero", "reflect", "symmetric"):
        ops.append(pytest.param(lambda rng, shape, b=boundary: _rkr_pair(rng, shape, b), id=f"rkr_blur-{boundary}"))
    for boundary in BOUNDARIES:
        ops.append(pytest.param(lambda rng, shape, b=boundary: _conv_pair(rng, shape, b), id=f"convolve-{boundary}"))
    return ops


def _sv_pair(rng, shape, boundary):
    kernels = rng.standard_normal(tuple(shape[:2]) + (5, 5))
    return (
        lambda x: spatially_varying_blur(x, kernels, boundary),
        lambda y: spatially_varying_blur_adjoint(y, kernels, boundary),
    )


def _rkr_pair(rng, shape, boundary):
    taps = _rkr_taps(rng, 4)
    gamma = rng.standard_normal((5,) + tuple(shape[:2]))
    return (
        lambda x: optics.rkr_blur(x, gamma, taps, boundary=boundary),
        lambda y: optics.rkr_blur_adjoint(y, gamma, taps, boundary=boundary),
    )


def _conv_pair(rng, shape, boundary):
    psf = rng.standard_normal((5, 5)) + 0.5
    return (
        lambda x: optics.convolve(x, psf, boundary),
        lambda y: optics.convolve_adjoint(y, psf, boundary),
    )


@pytest.mark.parametrize("make_pair", _operators())
@pytest.mark.parametrize("shape", [(7, 9), (6, 5, 3)], ids=["grey", "rgb"])
def test_adjointness(make_pair, shape):
    rng = np.random.default_rng(11)
    forward, adjoint = make_pair(rng, shape)
    x = rng.standard_normal(shape)
    y = rng.standard_normal(shape)
    lhs = float(np.vdot(forward(x), y))
    rhs = float(np.vdot(x, adjoint(y)))
    scale = np.linalg.norm(forward(x)) * np.linalg.norm(y)
    assert abs(lhs - rhs) <= 1e-12 * scale
