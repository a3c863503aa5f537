"""Tests for optics.operators.rkr (NRKNet's recursive kernel representation, Eq. 2-5).

References are independent of the code under test: atoms from explicit repeated 2-D
convolutions (scipy.signal.convolve2d), the blur from a naive per-pixel loop over those atoms or
from scipy.ndimage.convolve, adjointness from inner products.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import convolve2d

import optics
from optics.operators.rkr import (
    rkr_atoms,
    rkr_blur,
    rkr_blur_adjoint,
    rkr_stack,
    rkr_stack_adjoint,
    symmetric_softmax_taps,
)

BOUNDARIES = ("zero", "reflect", "symmetric")


def tol(dtype) -> dict:
    """Same table as tests/conftest.py (it cannot be imported from there)."""
    name = str(dtype).replace("torch.", "") if isinstance(dtype, torch.dtype) else dtype
    eps = np.finfo(np.dtype(name)).eps
    return dict(rtol=(2e3 if eps > 1e-10 else 1e6) * eps, atol=(2e3 if eps > 1e-10 else 1e6) * eps)


def random_taps(rng, shape, symmetric=False, dtype=np.float64):
    """Positive l1-normalised 3-tap filters of shape (*shape, 3)."""
    taps = rng.uniform(0.05, 1.0, size=tuple(shape) + (3,))
    if symmetric:
        taps[..., 2] = taps[..., 0]
    return (taps / taps.sum(-1, keepdims=True)).astype(dtype)


def reference_atoms(a):
    """A_1 = delta, A_j = A_{j-1} conv (a_j a_j^T), each in its own (2j-1)^2 support."""
    atoms = [np.ones((1, 1))]
    for a_j in np.asarray(a, dtype=np.float64):
        atoms.append(convolve2d(atoms[-1], np.outer(a_j, a_j)))
    return atoms


def naive_blur_zero(image, gamma, atoms):
    """sum_j gamma_j(p) (A_j * I)(p) with zero boundary, by an explicit per-pixel loop."""
    h, w = image.shape
    out = np.zeros((h, w))
    for j, atom in enumerate(atoms):
        r = atom.shape[0] // 2
        for p0 in range(h):
            for p1 in range(w):
                acc = 0.0
                for q0 in range(-r, r + 1):
                    for q1 in range(-r, r + 1):
                        i0, i1 = p0 - q0, p1 - q1
                        if 0 <= i0 < h and 0 <= i1 < w:
                            acc += atom[q0 + r, q1 + r] * image[i0, i1]
                out[p0, p1] += gamma[j, p0, p1] * acc
    return out


# ------------------------------------------------------------------------------------------
# atoms (Eq. 2)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_atoms", [1, 2, 5, 8])
def test_atoms_equal_repeated_2d_convolutions(n_atoms, dtype):
    rng = np.random.default_rng(n_atoms)
    a = random_taps(rng, (n_atoms - 1,), dtype=dtype)  # asymmetric taps: orientation matters
    atoms = rkr_atoms(a)
    side = 2 * n_atoms - 1
    assert atoms.shape == (n_atoms, side, side)
    assert atoms.dtype == dtype
    for j, ref in enumerate(reference_atoms(a), start=1):
        c, r = n_atoms - 1, j - 1
        expected = np.zeros((side, side))
        expected[c - r : c + r + 1, c - r : c + r + 1] = ref
        np.testing.assert_allclose(atoms[j - 1], expected, **tol(dtype))


def test_atom_supports_and_sums():
    rng = np.random.default_rng(1)
    n_atoms = 6
    atoms = rkr_atoms(random_taps(rng, (n_atoms - 1,)))
    for j in range(1, n_atoms + 1):
        nonzero_rows, nonzero_cols = np.nonzero(atoms[j - 1])
        # support (2j-1) x (2j-1), centred at (J-1, J-1); strictly positive inside
        assert nonzero_rows.min() == nonzero_cols.min() == n_atoms - j
        assert nonzero_rows.max() == nonzero_cols.max() == n_atoms + j - 2
        assert len(nonzero_rows) == (2 * j - 1) ** 2
        assert atoms[j - 1].sum() == pytest.approx(1.0, abs=1e-12)


def test_atoms_symmetric_taps_give_symmetric_atoms():
    rng = np.random.default_rng(2)
    atoms = rkr_atoms(random_taps(rng, (4,), symmetric=True))
    np.testing.assert_allclose(atoms, atoms[:, ::-1, :], atol=1e-15)
    np.testing.assert_allclose(atoms, np.swapaxes(atoms, 1, 2), atol=1e-15)


def test_atoms_binomial_closed_form():
    # a = [1/4, 1/2, 1/4] gives A_j = outer(b, b) with b the binomial row C(2j-2, k) / 4^(j-1)
    from scipy.special import comb

    atoms = rkr_atoms(np.array([[0.25, 0.5, 0.25]] * 4))
    b = comb(8, np.arange(9)) / 4.0**4
    np.testing.assert_allclose(atoms[4], np.outer(b, b), atol=1e-15)


def test_atoms_torch_matches_numpy_and_keeps_dtype():
    rng = np.random.default_rng(3)
    a = random_taps(rng, (3,), dtype=np.float32)
    atoms_t = rkr_atoms(torch.from_numpy(a))
    assert atoms_t.dtype == torch.float32
    np.testing.assert_allclose(atoms_t.numpy(), rkr_atoms(a), **tol(np.float32))


def test_atoms_normalize_option():
    a = np.array([[1.0, 2.0, 1.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(rkr_atoms(a, normalize=True), rkr_atoms(a / a.sum(1, keepdims=True)), atol=1e-15)


# ------------------------------------------------------------------------------------------
# the blur operator (Eq. 4-5)
# ------------------------------------------------------------------------------------------
def test_blur_zero_boundary_equals_naive_per_pixel_sum(dtype):
    rng = np.random.default_rng(4)
    h, w, n_atoms = 9, 7, 4
    a = random_taps(rng, (n_atoms - 1,), dtype=dtype)
    image = rng.random((h, w)).astype(dtype)
    gamma = rng.normal(size=(n_atoms, h, w)).astype(dtype)
    out = rkr_blur(image, gamma, a)
    assert out.dtype == dtype and out.shape == (h, w)
    np.testing.assert_allclose(out, naive_blur_zero(image, gamma, reference_atoms(a)), **tol(dtype))


@pytest.mark.parametrize("boundary,ndimage_mode", [("reflect", "mirror"), ("symmetric", "reflect")])
def test_blur_mirror_boundaries_equal_ndimage_for_symmetric_taps(boundary, ndimage_mode):
    # With symmetric taps, re-mirroring at every step equals one mirrored convolution with A_j.
    rng = np.random.default_rng(5)
    h, w, n_atoms = 12, 10, 5
    a = random_taps(rng, (n_atoms - 1,), symmetric=True)
    image = rng.random((h, w))
    gamma = rng.normal(size=(n_atoms, h, w))
    expected = sum(
        gamma[j] * ndi.convolve(image, atom, mode=ndimage_mode) for j, atom in enumerate(reference_atoms(a))
    )
    np.testing.assert_allclose(rkr_blur(image, gamma, a, boundary=boundary), expected, rtol=1e-12, atol=1e-12)


def test_blur_single_atom_is_plain_convolution():
    rng = np.random.default_rng(6)
    h, w, n_atoms = 16, 13, 6
    a = random_taps(rng, (n_atoms - 1,))
    image = rng.random((h, w))
    gamma = np.zeros((n_atoms, h, w))
    gamma[-1] = 1.0
    expected = convolve2d(image, reference_atoms(a)[-1], mode="same")
    np.testing.assert_allclose(rkr_blur(image, gamma, a), expected, rtol=1e-12, atol=1e-13)


def test_blur_colour_image_shared_and_per_channel_taps():
    rng = np.random.default_rng(7)
    h, w, c, n_atoms = 8, 9, 3, 4
    image = rng.random((h, w, c))
    gamma = rng.normal(size=(n_atoms, h, w))
    a_shared = random_taps(rng, (n_atoms - 1,))
    a_per_channel = random_taps(rng, (n_atoms - 1, c))
    gamma_per_channel = rng.normal(size=(n_atoms, h, w, c))
    out_shared = rkr_blur(image, gamma, a_shared)
    out_pc = rkr_blur(image, gamma, a_per_channel)
    out_gpc = rkr_blur(image, gamma_per_channel, a_per_channel)
    for k in range(c):
        np.testing.assert_allclose(out_shared[..., k], rkr_blur(image[..., k], gamma, a_shared), atol=1e-14)
        np.testing.assert_allclose(out_pc[..., k], rkr_blur(image[..., k], gamma, a_per_channel[:, k]), atol=1e-14)
        np.testing.assert_allclose(
            out_gpc[..., k], rkr_blur(image[..., k], gamma_per_channel[..., k], a_per_channel[:, k]), atol=1e-14
        )


def test_stack_matches_blur_and_atoms():
    rng = np.random.default_rng(8)
    n_atoms = 5
    a = random_taps(rng, (n_atoms - 1,))
    x = rng.random((2, 11, 10))  # batch of two images
    stack = rkr_stack(x, a)
    assert stack.shape == (n_atoms, 2, 11, 10)
    np.testing.assert_array_equal(stack[0], x)
    for j, atom in enumerate(reference_atoms(a)):
        for b in range(2):
            np.testing.assert_allclose(stack[j, b], convolve2d(x[b], atom, mode="same"), atol=1e-13)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("per_channel", [False, True])
@given(h=st.integers(2, 9), w=st.integers(2, 9), n_atoms=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_blur_adjointness(boundary, per_channel, h, w, n_atoms, seed):
    rng = np.random.default_rng(seed)
    c = 2
    a = random_taps(rng, (n_atoms - 1, c) if per_channel else (n_atoms - 1,), symmetric=False)
    x = rng.normal(size=(h, w, c))
    y = rng.normal(size=(h, w, c))
    gamma = rng.normal(size=(n_atoms, h, w))
    lhs = np.vdot(rkr_blur(x, gamma, a, boundary=boundary), y)
    rhs = np.vdot(x, rkr_blur_adjoint(y, gamma, a, boundary=boundary))
    scale = np.linalg.norm(x) * np.linalg.norm(y) * np.abs(gamma).max() * n_atoms
    assert abs(lhs - rhs) <= 1e-12 * scale


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_blur_adjointness_float32_and_one_pixel_wide(boundary):
    rng = np.random.default_rng(9)
    h, w = (1, 6) if boundary != "reflect" else (2, 6)
    a = random_taps(rng, (3,), dtype=np.float32)
    x = rng.normal(size=(h, w)).astype(np.float32)
    y = rng.normal(size=(h, w)).astype(np.float32)
    gamma = rng.normal(size=(4, h, w)).astype(np.float32)
    out = rkr_blur_adjoint(y, gamma, a, boundary=boundary)
    assert out.dtype == np.float32
    lhs = float(np.vdot(rkr_blur(x, gamma, a, boundary=boundary).astype(np.float64), y))
    rhs = float(np.vdot(x.astype(np.float64), out))
    assert abs(lhs - rhs) <= 1e-5 * np.linalg.norm(x) * np.linalg.norm(y) * np.abs(gamma).max() * 4


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_stack_adjointness(boundary):
    rng = np.random.default_rng(10)
    a = random_taps(rng, (4, 3))
    x = rng.normal(size=(2, 3, 7, 6))
    g = rng.normal(size=(5, 2, 3, 7, 6))
    lhs = np.vdot(rkr_stack(x, a, boundary=boundary), g)
    rhs = np.vdot(x, rkr_stack_adjoint(g, a, boundary=boundary))
    assert abs(lhs - rhs) <= 1e-12 * np.linalg.norm(x) * np.linalg.norm(g)


def test_adjoint_zero_boundary_is_transpose_matrix():
    # Build the matrix of the operator column by column and compare with the adjoint's.
    rng = np.random.default_rng(11)
    h, w, n_atoms = 4, 3, 3
    a = random_taps(rng, (n_atoms - 1,))
    gamma = rng.normal(size=(n_atoms, h, w))
    eye = np.eye(h * w).reshape(h * w, h, w)
    forward = np.stack([rkr_blur(e, gamma, a).ravel() for e in eye], axis=1)
    adjoint = np.stack([rkr_blur_adjoint(e, gamma, a).ravel() for e in eye], axis=1)
    np.testing.assert_allclose(adjoint, forward.T, atol=1e-14)


# ------------------------------------------------------------------------------------------
# torch: equality with NumPy, dtype, autograd
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_torch_equals_numpy(boundary, dtype, device):
    rng = np.random.default_rng(12)
    h, w, c, n_atoms = 10, 8, 3, 5
    a = random_taps(rng, (n_atoms - 1, c), dtype=dtype)
    image = rng.random((h, w, c)).astype(dtype)
    gamma = rng.normal(size=(n_atoms, h, w)).astype(dtype)
    tt = lambda v: torch.from_numpy(v).to(device)  # noqa: E731
    out = rkr_blur(tt(image), tt(gamma), tt(a), boundary=boundary)
    adj = rkr_blur_adjoint(tt(image), tt(gamma), tt(a), boundary=boundary)
    assert out.dtype == tt(image).dtype and out.device.type == device
    np.testing.assert_allclose(out.cpu().numpy(), rkr_blur(image, gamma, a, boundary=boundary), **tol(dtype))
    np.testing.assert_allclose(adj.cpu().numpy(), rkr_blur_adjoint(image, gamma, a, boundary=boundary), **tol(dtype))


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck_blur_and_adjoint(boundary):
    rng = np.random.default_rng(13)
    h, w, c, n_atoms = 5, 4, 2, 3
    image = torch.tensor(rng.random((h, w, c)), requires_grad=True)
    gamma = torch.tensor(rng.normal(size=(n_atoms, h, w)), requires_grad=True)
    a = torch.tensor(random_taps(rng, (n_atoms - 1, c)), requires_grad=True)

    # check_taps=False: gradcheck's finite differences leave the l1-normalised set.
    def blur(i, g, t):
        return rkr_blur(i, g, t, boundary=boundary, check_taps=False)

    def adjoint(i, g, t):
        return rkr_blur_adjoint(i, g, t, boundary=boundary, check_taps=False)

    assert torch.autograd.gradcheck(blur, (image, gamma, a))
    assert torch.autograd.gradcheck(adjoint, (image, gamma, a))


def test_autograd_gradient_is_adjoint():
    # d<D(x), y>/dx = D^T(y): autograd through the recursion against the hand-written adjoint.
    rng = np.random.default_rng(14)
    a = torch.tensor(random_taps(rng, (4,)))
    gamma = torch.tensor(rng.normal(size=(5, 9, 8)))
    x = torch.tensor(rng.normal(size=(9, 8)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(9, 8)))
    (rkr_blur(x, gamma, a, boundary="reflect") * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), rkr_blur_adjoint(y, gamma, a, boundary="reflect").numpy(), atol=1e-13)


def test_symmetric_softmax_taps():
    logits = torch.randn(7, 1, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    taps = symmetric_softmax_taps(logits)
    expected = torch.softmax(torch.cat([logits, logits[..., :1]], dim=-1), dim=-1)
    torch.testing.assert_close(taps, expected, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(symmetric_softmax_taps(logits.numpy()), expected.numpy(), atol=1e-15)
    assert torch.equal(taps[..., 0], taps[..., 2])
    big = symmetric_softmax_taps(np.array([[800.0, 0.0]]))  # no overflow
    np.testing.assert_allclose(big, [[0.5, 0.0, 0.5]], atol=1e-300)


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
def _args(rng=None):
    rng = rng or np.random.default_rng(0)
    return rng.random((6, 5)), rng.random((3, 6, 5)), random_taps(rng, (2,))


def test_negative_taps_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        rkr_atoms(np.array([[-0.1, 0.6, 0.5]]))
    image, gamma, _ = _args()
    with pytest.raises(ValueError, match="non-negative"):
        rkr_blur(image, gamma, np.array([[0.5, 0.6, -0.1], [0.25, 0.5, 0.25]]))


def test_unnormalised_taps_rejected_with_hint():
    with pytest.raises(ValueError, match="normalize=True"):
        rkr_atoms(np.array([[1.0, 2.0, 1.0]]))
    with pytest.raises(ValueError, match="l1-normalised"):
        rkr_stack(np.zeros((4, 4)), np.array([[0.3, 0.3, 0.3]]))


@pytest.mark.parametrize(
    "a,match",
    [
        (np.ones((3,)) / 3, r"shape \(J - 1, 3\)"),
        (np.ones((2, 4)) / 4, r"shape \(J - 1, 3\)"),
        (np.full((2, 3), np.nan), "finite"),
    ],
)
def test_bad_tap_shapes(a, match):
    with pytest.raises(ValueError, match=match):
        rkr_atoms(a)


def test_bad_gamma_shape_names_expected():
    image, gamma, a = _args()
    with pytest.raises(ValueError, match=r"gamma must have shape \(J, H, W\) = \(3, 6, 5\)"):
        rkr_blur(image, gamma[:2], a)
    with pytest.raises(ValueError, match="gamma"):
        rkr_blur_adjoint(image, gamma[:, :5], a)


def test_per_channel_taps_need_matching_channels():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="per-channel"):
        rkr_blur(rng.random((6, 5, 3)), rng.random((3, 6, 5)), random_taps(rng, (2, 2)))
    with pytest.raises(ValueError, match="broadcast"):
        rkr_stack(rng.random((3, 6, 5)), random_taps(rng, (2, 2)))


def test_dtype_and_library_mismatches():
    image, gamma, a = _args()
    with pytest.raises(TypeError, match="gamma must have the dtype"):
        rkr_blur(image, gamma.astype(np.float32), a)
    with pytest.raises(TypeError, match="a must have the dtype"):
        rkr_blur(image.astype(np.float32), gamma.astype(np.float32), a)
    with pytest.raises(TypeError, match="one library"):
        rkr_blur(torch.from_numpy(image), gamma, a)
    with pytest.raises(TypeError, match="floating"):
        rkr_blur((image * 255).astype(np.uint8), gamma, a)


def test_nan_image_and_bad_rank_and_boundary():
    image, gamma, a = _args()
    bad = image.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        rkr_blur(bad, gamma, a)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        rkr_blur(image[None, None], gamma, a)
    with pytest.raises(ValueError, match="boundary must be one of"):
        rkr_blur(image, gamma, a, boundary="wrap")
    with pytest.raises(ValueError, match="at least 2x2"):
        rkr_blur(image[:1], gamma[:, :1], a, boundary="reflect")


def test_stack_adjoint_needs_j_images():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="J = a.shape"):
        rkr_stack_adjoint(rng.random((2, 5, 5)), random_taps(rng, (2,)))


def test_kernel_field_mixes_atoms_per_pixel_and_matches_rkr_blur():
    """K_p = sum_j Gamma_j(p) A_j; the per-pixel operator with it computes rkr_blur (Eq. 1 == Eq. 4)."""
    rng = np.random.default_rng(4)
    taps = np.tile([0.25, 0.5, 0.25], (2, 1))
    atoms = optics.rkr_atoms(taps)
    gamma = rng.random((3, 9, 8))
    field = optics.rkr_kernel_field(gamma, atoms, rows_per_chunk=2)
    np.testing.assert_allclose(field[3, 1], sum(gamma[j, 3, 1] * atoms[j] for j in range(3)), atol=1e-15)
    image = rng.random((9, 8))
    np.testing.assert_allclose(
        optics.spatially_varying_blur(image, field, "zero"), optics.rkr_blur(image, gamma, taps, boundary="zero"), atol=1e-13
    )
    with pytest.raises(ValueError, match="atoms must be"):
        optics.rkr_kernel_field(gamma, atoms[:2])
