"""optics.dual_pixel.deblur (training-free dual-pixel defocus + deblur) and the Pixel 4 raw helpers of optics.dual_pixel.pixel4.

Every reference here is independent of the code under test: closed-form Gaussians, hand-computed
centroids, naive box filters, a global two-view Wiener filter written out with ``numpy.fft``, and
views rendered with ``scipy.signal.fftconvolve`` from a known sharp texture and a known defocus.
Frames are small (2 x 3 cells of 64 px) so that the whole file runs in a few seconds on one core.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
import pytest
import scipy.ndimage
import scipy.signal

import optics
from optics.dual_pixel import deblur as dpd
from optics._backend import cupy_available
from optics.dual_pixel.deblur import (
    DEFAULT_SCALES,
    DualPixelPSFGrid,
    dual_pixel_cost_volume,
    dual_pixel_deblur,
    dual_pixel_defocus_map,
    guided_filter,
    rescale_blur_kernel,
)
from optics.dual_pixel.psf_grid import rescale_blur_kernels
from optics.dual_pixel.fit import DualPixelField
from optics.dual_pixel.pixel4 import crop_central, pixel4_vignetting_gain, read_pixel4_raw
from optics.image_io import png_bytes, read_png

REPO = Path(__file__).resolve().parents[3]

# ------------------------------------------------------------------------------------------ fixtures
N = 21  # kernel side
CELL = 64
ROWS, COLS = 2, 3
H, W = ROWS * CELL, COLS * CELL
PAD = 40  # texture context around the frame, so the renders have no boundary effects
#: Candidate scales for the recovery tests: step 0.2, symmetric about 0, 0 excluded.
SCALES = np.round(np.arange(-1.1, 1.7, 0.2), 4)
STEP = 0.2
INNER = (slice(16, -16), slice(16, -16))


def half_disc(radius: float = 5.0, n: int = N, soft: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """A left kernel (the x < 0 half of an anti-aliased disc, soft split) and its mirror image as the right
    kernel, each of sum 1. Their mean is a full disc, symmetric in x and y: centroid 0 at every scale."""
    c = np.arange(n) - n // 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    disc = np.clip(radius + 0.5 - np.hypot(yy, xx), 0, 1)
    left = disc / (1 + np.exp(xx / soft))
    left /= left.sum()
    return left, left[:, ::-1].copy()


def constant_grid(kl: np.ndarray, kr: np.ndarray, rows: int = ROWS, cols: int = COLS,
                  cell: int = CELL) -> DualPixelPSFGrid:
    n = kl.shape[0]
    return DualPixelPSFGrid(np.broadcast_to(kl, (rows, cols, n, n)), np.broadcast_to(kr, (rows, cols, n, n)), cell)


def texture(shape, seed: int = 0) -> np.ndarray:
    x = scipy.ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.0)
    return (x - x.min()) / (x.max() - x.min())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def tex() -> np.ndarray:
    return texture((H + 2 * PAD, W + 2 * PAD))


@pytest.fixture(scope="module")
def sharp(tex) -> np.ndarray:
    return tex[PAD:PAD + H, PAD:PAD + W]


@pytest.fixture(scope="module")
def grid() -> DualPixelPSFGrid:
    return constant_grid(*half_disc())


def blur(tex: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x * k on the frame (true convolution, kernel centred on its array centre), from the padded texture."""
    return scipy.signal.fftconvolve(tex, k, mode="same")[PAD:PAD + H, PAD:PAD + W]


def render(tex, psfs: DualPixelPSFGrid, s0: float) -> tuple[np.ndarray, np.ndarray]:
    """Views of a constant defocus s0: each cell blurred with its own pair at s0 (piecewise per cell)."""
    L, R = np.empty((H, W)), np.empty((H, W))
    rows, cols = psfs.grid
    c = psfs.cell
    for r in range(rows):
        for col in range(cols):
            kl, kr, _ = psfs.pair(r, col, s0)
            sl = (slice(r * c, (r + 1) * c), slice(col * c, (col + 1) * c))
            L[sl], R[sl] = blur(tex, kl)[sl], blur(tex, kr)[sl]
    return L, R


def gaussian(sigma: float, n: int) -> np.ndarray:
    c = np.arange(n) - n // 2
    g = np.exp(-c**2 / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def second_moment_sigma(k: np.ndarray) -> float:
    c = np.arange(k.shape[0]) - k.shape[0] // 2
    p = k.sum(0) / k.sum()
    return float(np.sqrt(p @ (c - p @ c) ** 2))


# ------------------------------------------------------------------------------------------ 1. rescale_blur_kernel
def test_rescale_identity_sum_and_sign():
    rng = np.random.default_rng(1)
    k = rng.random((15, 15))
    np.testing.assert_allclose(rescale_blur_kernel(k, 1.0), k, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rescale_blur_kernel(k, 1), k, rtol=0, atol=1e-12)  # an int scale
    np.testing.assert_allclose(rescale_blur_kernel(k, -1.0), k[::-1, ::-1], rtol=0, atol=1e-12)
    for s in (0.15, 0.3, 0.7, 1.3, 1.9):
        pos = rescale_blur_kernel(k, s)
        assert pos.shape == k.shape and pos.dtype == np.float64
        assert pos.sum() == pytest.approx(k.sum(), rel=1e-12)
        np.testing.assert_array_equal(rescale_blur_kernel(k, -s), pos[::-1, ::-1])
    out = rescale_blur_kernel(k, 0.8, size=9)
    assert out.shape == (9, 9) and out.sum() == pytest.approx(k.sum(), rel=1e-12)
    # float32 input is accepted and computed in float64
    assert rescale_blur_kernel(k.astype(np.float32), 0.8).dtype == np.float64


@pytest.mark.parametrize("sigma, s, n, tol_sigma, tol_peak", [
    # measured: second-moment sigma off by 0.8 % / 0.9 %, max |diff| 2.3 % / 1.8 % of the peak
    (3.0, 1.5, 41, 0.03, 0.05),  # bilinear branch (input step 0.67 px)
    (3.0, 0.7, 41, 0.03, 0.05),  # bilinear branch (step 1.43 px)
    # Gaussian-weight branch (step 5 px): measured sigma +1.9 %, max |diff| 3.8 % of the peak
    (10.0, 0.2, 81, 0.04, 0.08),
])
def test_rescale_magnifies_a_gaussian_to_sigma_times_scale(sigma, s, n, tol_sigma, tol_peak):
    out = rescale_blur_kernel(gaussian(sigma, n), s)
    ref = gaussian(sigma * s, n)  # closed form: G_sigma magnified by s is G_{sigma s}
    assert second_moment_sigma(out) == pytest.approx(sigma * s, rel=tol_sigma)
    assert np.abs(out - ref).max() <= tol_peak * ref.max()
    # the negative scale: flipped, the same Gaussian
    assert second_moment_sigma(rescale_blur_kernel(gaussian(sigma, n), -s)) == pytest.approx(sigma * s, rel=tol_sigma)


@pytest.mark.parametrize("scale, size", [(0.55, None), (0.875, None), (-0.875, None), (1.0001, None), (1.3, None),
                                         (1.625, None), (0.9, 41), (1.9, 75)])
def test_rescale_bilinear_branch_equals_map_coordinates(scale, size):
    """The bilinear branch (input step below 2 px) is separable interpolation matrices; its naive twin is
    scipy.ndimage.map_coordinates over the full grid (order 1, zeros outside), Xin et al.'s resampler."""
    rng = np.random.default_rng(7)
    k = rng.random((61, 61))
    n = k.shape[0]
    size_ = n if size is None else size
    step = (n / size_) / abs(scale)
    assert step < 2.0
    c = np.linspace(-(size_ // 2) * step, (size_ // 2) * step, size_) + n // 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    ref = scipy.ndimage.map_coordinates(k, [yy, xx], order=1, mode="constant", cval=0.0)
    ref *= k.sum() / ref.sum()
    ref = ref[::-1, ::-1] if scale < 0 else ref
    np.testing.assert_allclose(rescale_blur_kernel(k, scale, size), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [None, 41, 75])
def test_rescale_blur_kernels_is_the_one_scale_function_batched(size):
    """The batched resampler against its naive twin, the one-scale function, over both branches, 0 and flips."""
    k = np.random.default_rng(3).random((61, 61))
    scales = [-0.875, -0.5, -0.2, 0.0, 0.125, 0.49, 0.51, 1.0, 1.3, 1.625, 1.9]
    batch = rescale_blur_kernels(k, scales, size)
    assert batch.shape == (len(scales),) + ((61, 61) if size is None else (size, size))
    for b, s in zip(batch, scales):
        np.testing.assert_allclose(b, rescale_blur_kernel(k, s, size), rtol=0, atol=1e-12)


@pytest.mark.parametrize("centre_weight", [None, 0.5, 0.9])
def test_grid_pairs_is_pair_batched(centre_weight):
    rng = np.random.default_rng(4)
    g = DualPixelPSFGrid(rng.random((2, 2, 21, 21)), rng.random((2, 2, 21, 21)), 30, reference=0.7)
    scales = [-0.6, 0.0, 0.4, 1.2]
    kl, kr, d = g.pairs(1, 0, scales, centre_weight=centre_weight)
    for i, s in enumerate(scales):
        a, b, dd = g.pair(1, 0, s, centre_weight=centre_weight)
        np.testing.assert_allclose(kl[i], a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(kr[i], b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(d[i], dd, rtol=0, atol=1e-12)


def test_rescale_moves_an_offset_delta_by_the_scale():
    k = np.zeros((21, 21))
    k[10 + 2, 10 - 3] = 1.0  # (dy, dx) = (2, -3)
    for s in (2.0, 1.0, -1.0, -2.0):
        assert dpd._centroid(rescale_blur_kernel(k, s)) == pytest.approx((2 * s, -3 * s), abs=1e-9)


@pytest.mark.parametrize("kernel, scale, size, match", [
    (np.ones((4, 4)), 1.0, None, "kernel"),  # even side
    (np.ones((3, 5)), 1.0, None, "kernel"),  # not square
    (np.ones(5), 1.0, None, "kernel"),  # 1-D
    (np.ones((5, 5)), float("nan"), None, "scale"),
    (np.ones((5, 5)), float("inf"), None, "scale"),
    (np.ones((5, 5)), True, None, "scale"),
    (np.ones((5, 5)), "1", None, "scale"),
    (np.ones((5, 5)), 1.0, 4, "size"),
    (np.ones((5, 5)), 1.0, 0, "size"),
    (np.ones((5, 5)), 1.0, 5.0, "size"),
])
def test_rescale_bad_input(kernel, scale, size, match):
    with pytest.raises(ValueError, match=match):
        rescale_blur_kernel(kernel, scale, size)


# ------------------------------------------------------------------------------------------ 2. DualPixelPSFGrid
def test_grid_validation():
    ok = np.ones((2, 3, 5, 5))
    g = DualPixelPSFGrid(ok, ok, 16)
    assert g.grid == (2, 3) and g.frame == (32, 48) and g.cell == 16
    assert g.left.dtype == np.float64
    with pytest.raises(ValueError, match="left and right"):
        DualPixelPSFGrid(np.ones((6, 5, 5)), np.ones((6, 5, 5)), 16)  # 3-D
    with pytest.raises(ValueError, match="left and right"):
        DualPixelPSFGrid(ok, np.ones((2, 2, 5, 5)), 16)  # shapes differ
    with pytest.raises(ValueError, match="left and right"):
        DualPixelPSFGrid(np.ones((2, 3, 4, 4)), np.ones((2, 3, 4, 4)), 16)  # even side
    with pytest.raises(ValueError, match="left and right"):
        DualPixelPSFGrid(np.ones((2, 3, 5, 7)), np.ones((2, 3, 5, 7)), 16)  # not square
    bad = ok.copy()
    bad[1, 2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        DualPixelPSFGrid(ok, bad, 16)
    zero = ok.copy()
    zero[0, 1] = 0.0
    with pytest.raises(ValueError, match="positive sum"):
        DualPixelPSFGrid(zero, ok, 16)
    for cell in (0, -4, 1.5, True, "16"):
        with pytest.raises(ValueError, match="cell"):
            DualPixelPSFGrid(ok, ok, cell)


def test_grid_pair_centroid_by_hand():
    n = 21  # centre index 10; offsets x 2 still inside the array
    left = np.zeros((1, 1, n, n))
    right = np.zeros((1, 1, n, n))
    left[0, 0, 10, 8] = 1.0  # offset (0, -2), mass 1
    right[0, 0, 12, 14] = 3.0  # offset (2, 4), mass 3
    g = DualPixelPSFGrid(left, right, 8)
    # centroid of the mean: ((0 * 1 + 2 * 3) / 4, (-2 * 1 + 4 * 3) / 4) = (1.5, 2.5), times the scale
    for s, expect in ((1.0, (1.5, 2.5)), (-1.0, (-1.5, -2.5)), (2.0, (3.0, 5.0)), (-2.0, (-3.0, -5.0))):
        kl, kr, cen = g.pair(0, 0, s)
        assert cen == pytest.approx(expect, abs=1e-9), s
        assert kl.sum() == pytest.approx(1.0) and kr.sum() == pytest.approx(3.0)
    kl, kr, _ = g.pair(0, 0, 1.0)
    np.testing.assert_allclose(kl, left[0, 0], atol=1e-12)
    np.testing.assert_allclose(kr, right[0, 0], atol=1e-12)
    assert g.pair(0, 0, 1.0, size=9)[0].shape == (9, 9)


def _write_calibration(folder: Path, rows: int, cols: int, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    left = np.stack([np.full((n, n), i + 1.0) for i in range(rows * cols)])  # kernel i holds the value i + 1
    right = np.stack([np.full((n, n), 100.0 + i) for i in range(rows * cols)])
    np.save(folder / "blur_kernels_left.npy", left)
    np.save(folder / "blur_kernels_right.npy", right)
    return left, right


def test_from_calibration_order_and_parent_folder(tmp_path):
    rows, cols = 2, 3
    _write_calibration(tmp_path / "data" / "calibration", rows, cols)
    for folder in (tmp_path / "data" / "calibration", tmp_path / "data", str(tmp_path / "data")):
        g = DualPixelPSFGrid.from_calibration(folder, rows=rows, cols=cols, cell=32)
        assert g.grid == (rows, cols) and g.frame == (64, 96)
        for r in range(rows):
            for c in range(cols):
                i = r * cols + c  # Xin et al.'s index
                assert np.all(g.left[r, c] == i + 1.0) and np.all(g.right[r, c] == 100.0 + i), (r, c)


def test_from_calibration_defaults_are_xin_grid(tmp_path):
    _write_calibration(tmp_path, 6, 8, n=3)
    g = DualPixelPSFGrid.from_calibration(tmp_path)
    assert g.grid == (6, 8) and g.cell == 168 and g.frame == (1008, 1344)
    assert np.all(g.left[1, 0] == 9.0)  # index 1 * 8 + 0 = 8 holds 9


def test_from_calibration_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="blur_kernels_left.npy"):
        DualPixelPSFGrid.from_calibration(tmp_path, rows=2, cols=3)
    _write_calibration(tmp_path, 2, 3)
    (tmp_path / "blur_kernels_right.npy").unlink()
    with pytest.raises(FileNotFoundError, match="blur_kernels_right.npy"):
        DualPixelPSFGrid.from_calibration(tmp_path, rows=2, cols=3)
    _write_calibration(tmp_path, 2, 3)
    with pytest.raises(ValueError, match=r"blur_kernels_left.npy.*must hold 8 kernels"):
        DualPixelPSFGrid.from_calibration(tmp_path, rows=2, cols=4)
    np.save(tmp_path / "blur_kernels_left.npy", np.ones((6, 5)))  # 2-D
    with pytest.raises(ValueError, match="blur_kernels_left.npy"):
        DualPixelPSFGrid.from_calibration(tmp_path, rows=2, cols=3)
    (tmp_path / "blur_kernels_left.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="blur_kernels_left.npy"):
        DualPixelPSFGrid.from_calibration(tmp_path, rows=2, cols=3)


@pytest.fixture(scope="module")
def small_field() -> DualPixelField:
    """The Pixel 4 field's shape on a 128 x 192 frame, at half its radius (about 5.3 px at the centre)."""
    from optics.dual_pixel.pixel4 import _COEFFICIENTS

    coef = np.array(_COEFFICIENTS, dtype=np.float64)
    coef[0] *= 0.5
    return DualPixelField(coef, 2, (H, W), -1.0)


def test_from_field_samples_cell_centres(small_field):
    g = DualPixelPSFGrid.from_field(small_field, cell=CELL, size=31)
    assert g.grid == (ROWS, COLS) and g.frame == small_field.image_shape and g.left.shape[2:] == (31, 31)
    for r, c in ((0, 0), (1, 2), (0, 2)):
        p = small_field.psfs(small_field.calibration_coc, c * CELL + (CELL - 1) / 2, r * CELL + (CELL - 1) / 2, size=31)
        np.testing.assert_allclose(g.left[r, c], p.left, atol=1e-12)
        np.testing.assert_allclose(g.right[r, c], p.right, atol=1e-12)
    assert not np.allclose(g.left[0, 0], g.left[1, 2])  # the field does vary
    with pytest.raises(ValueError, match="cell"):
        DualPixelPSFGrid.from_field(small_field, cell=50)
    with pytest.raises(TypeError, match="DualPixelField"):
        DualPixelPSFGrid.from_field(g)


def test_from_field_window_is_the_frame_grid_sliced(small_field):
    """A window at a cell-aligned origin (x0, y0) = (2, 1) cells is the whole frame's grid sliced
    there; a window between cells samples the field at the shifted centres."""
    whole = DualPixelPSFGrid.from_field(small_field, cell=CELL, size=31)
    win = DualPixelPSFGrid.from_field(small_field, cell=CELL, size=31, shape=(CELL, CELL), origin=(2 * CELL, CELL))
    assert win.grid == (1, 1) and win.frame == (CELL, CELL)
    np.testing.assert_array_equal(win.left[0, 0], whole.left[1, 2])
    np.testing.assert_array_equal(win.right[0, 0], whole.right[1, 2])
    shifted = DualPixelPSFGrid.from_field(small_field, cell=CELL, size=31, shape=(2 * CELL, CELL), origin=(10.5, 3.0))
    p = small_field.psfs(small_field.calibration_coc, 10.5 + (CELL - 1) / 2, 3.0 + CELL + (CELL - 1) / 2, size=31)
    np.testing.assert_allclose(shifted.left[1, 0], p.left, atol=1e-12)
    with pytest.raises(ValueError, match="shape 100x64 must be a whole number"):
        DualPixelPSFGrid.from_field(small_field, cell=CELL, shape=(100, 64))
    with pytest.raises(ValueError, match="origin must be a pair"):
        DualPixelPSFGrid.from_field(small_field, cell=CELL, shape=(CELL, CELL), origin=(1.0,))


# ------------------------------------------------------------------------------------------ 3. guided_filter
def _naive_box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over (2r+1)^2 windows, mirror boundary as scipy.ndimage's 'reflect' (d c b a | a b c d)."""
    p = np.pad(x, r, mode="symmetric")
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = p[i:i + 2 * r + 1, j:j + 2 * r + 1].mean()
    return out


def test_guided_filter_constant_guide_is_a_box_filter():
    src = texture((30, 40), seed=4)
    q = guided_filter(np.full((30, 40), 0.5), src, 3, 1e-2)
    # a = 0 and b = box(src) per window, q = box(a) I + box(b): the box filter applied twice (measured 7e-16)
    np.testing.assert_allclose(q, _naive_box(_naive_box(src, 3), 3), rtol=0, atol=1e-12)


def test_guided_filter_self_guided_keeps_the_guide_and_filters_stacks():
    guide = texture((30, 40), seed=3)
    np.testing.assert_allclose(guided_filter(guide, guide, 3, 1e-8), guide, rtol=0, atol=1e-5)  # measured 2e-7
    # a large eps flattens (a -> 0): the self-guided output tends to the double box mean
    big = guided_filter(guide, guide, 3, 1e6)
    np.testing.assert_allclose(big, _naive_box(_naive_box(guide, 3), 3), rtol=0, atol=1e-6)
    stack = np.stack([texture((30, 40), seed=s) for s in (5, 6)])
    out = guided_filter(guide, stack, 2, 1e-3)
    assert out.shape == stack.shape
    for i in range(2):
        np.testing.assert_allclose(out[i], guided_filter(guide, stack[i], 2, 1e-3), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------------ 4. recovery on renders
@pytest.mark.parametrize("s0", [0.7, 1.3, -0.7])
def test_defocus_map_recovers_a_constant_defocus(tex, grid, s0):
    L, R = render(tex, grid, s0)
    res = dual_pixel_defocus_map(L, R, grid, SCALES)
    d = res.defocus[INNER]
    # measured: medians 0.681, 1.289, -0.681 (spread < 0.01); one scale step allowed
    assert abs(float(np.median(d)) - s0) < STEP
    assert np.mean(np.abs(d - s0) < STEP) > 0.99
    assert np.all((res.confidence >= 0) & (res.confidence <= 1))
    assert float(np.median(res.confidence)) > 0.5  # measured 0.96-0.99
    assert res.image is None and np.array_equal(res.scales, SCALES)


def test_cost_volume_is_least_at_the_true_scale(tex, grid):
    s0 = 0.9  # on the SCALES grid
    L, R = render(tex, grid, s0)
    cost = dual_pixel_cost_volume(L, R, grid, SCALES)
    assert cost.shape == (len(SCALES), H, W)
    i0 = int(np.argmin(np.abs(SCALES - s0)))
    total = cost[(slice(None),) + INNER].sum(axis=(1, 2))
    assert int(np.argmin(total)) == i0
    # the mirror scale -s0 (the other side of focus: views swapped) is clearly worse
    assert total[int(np.argmin(np.abs(SCALES + s0)))] > 10 * total[i0]


def test_defocus_map_with_default_scales(tex, grid):
    L, R = render(tex, grid, 0.5)
    d = dual_pixel_defocus_map(L, R, grid).defocus[INNER]
    step = DEFAULT_SCALES[1] - DEFAULT_SCALES[0]
    assert abs(float(np.median(d)) - 0.5) < step  # measured 0.505


def test_deblur_beats_the_blurred_views(tex, grid, sharp):
    s0 = 0.7
    L, R = render(tex, grid, s0)
    res = dual_pixel_deblur(L, R, grid, SCALES, scale_bias=0.0)
    gain = psnr(res.image[INNER], sharp[INNER]) - psnr(((L + R) / 2)[INNER], sharp[INNER])
    # measured: 27.9 dB vs 20.4 dB for (L + R) / 2, a 7.5 dB gain
    assert gain > 4.0
    # the true defocus given: the same gain or better (measured 7.5 dB)
    given = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), s0))
    assert psnr(given.image[INNER], sharp[INNER]) - psnr(((L + R) / 2)[INNER], sharp[INNER]) > 4.0
    np.testing.assert_array_equal(given.confidence, np.ones((H, W)))
    np.testing.assert_array_equal(given.defocus, np.full((H, W), s0))
    # the wrong side of focus (views swapped) is clearly worse than the right one
    wrong = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), -s0))
    assert psnr(wrong.image[INNER], sharp[INNER]) < psnr(given.image[INNER], sharp[INNER]) - 3.0


def _global_wiener(L, R, kl, kr, eps, pad=96):
    """Two-view Wiener filter of the whole mirror-padded frame (numpy.fft, kernels centred at the origin)."""
    Lp, Rp = np.pad(L, pad, mode="symmetric"), np.pad(R, pad, mode="symmetric")
    n = kl.shape[0]

    def otf(k):
        z = np.zeros(Lp.shape)
        z[:n, :n] = k
        return np.fft.fft2(np.roll(z, (-(n // 2), -(n // 2)), (0, 1)))

    KL, KR = otf(kl), otf(kr)
    X = (np.conj(KL) * np.fft.fft2(Lp) + np.conj(KR) * np.fft.fft2(Rp)) / (np.abs(KL) ** 2 + np.abs(KR) ** 2 + eps)
    return np.fft.ifft2(X).real[pad:-pad, pad:-pad]


def test_deblur_equals_a_global_two_view_wiener_filter(tex, grid):
    """A spatially constant grid and defocus: the tent-blended windows add up to one global Wiener filter
    (mirror-padded frame, numpy.fft), so there is no seam at cell borders or window edges."""
    s0, eps = 0.7, 2e-2
    L, R = render(tex, grid, 0.8)
    got = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), s0), wiener_eps=eps,
                            deconvolution="wiener").image
    kl, kr, _ = grid.pair(0, 0, s0)
    ref = _global_wiener(L, R, kl, kr, eps)
    # measured max |diff| 1.1e-5 over the whole frame (Wiener tails cut by the 48 px window margin)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-4)


# regression: odd cells crashed (first window started one pixel before the padding)
def test_odd_cell_size_equals_a_global_wiener_filter():
    """DualPixelPSFGrid accepts any cell >= 1; 45 px cells (odd) must deblur as even ones do."""
    kl, kr = half_disc()
    cell = 45
    g = constant_grid(kl, kr, 2, 3, cell)
    h, w = g.frame
    x = texture((h + 60, w + 60), seed=5)
    L = scipy.signal.fftconvolve(x, kl, mode="same")[30:30 + h, 30:30 + w]
    R = scipy.signal.fftconvolve(x, kr, mode="same")[30:30 + h, 30:30 + w]
    got = dual_pixel_deblur(L, R, g, SCALES, defocus=np.full((h, w), 0.9), wiener_eps=2e-2,
                            deconvolution="wiener").image  # 0.9: in SCALES
    a, b, _ = g.pair(0, 0, 0.9)
    # even cells of 40-64 px: measured max |diff| 3e-6 - 9e-5
    np.testing.assert_allclose(got, _global_wiener(L, R, a, b, 2e-2), rtol=0, atol=2e-4)


def test_spatially_varying_grid_uses_each_cells_kernels(tex):
    """Cells of different radii; each cell rendered with its own kernels at s0. A cell read with another
    cell's kernels would give s0 * r_true / r_used (e.g. 0.5 for cells (0, 0) and (1, 0) swapped)."""
    radii = np.array([[2.5, 3.5, 4.5], [5.5, 6.5, 3.0]])
    kl = np.empty((ROWS, COLS, N, N))
    kr = np.empty_like(kl)
    for r in range(ROWS):
        for c in range(COLS):
            kl[r, c], kr[r, c] = half_disc(radii[r, c])
    g = DualPixelPSFGrid(kl, kr, CELL)
    s0 = 1.1
    L, R = render(tex, g, s0)
    d = dual_pixel_defocus_map(L, R, g, SCALES, smooth=2.0, radius=4).defocus
    for r in range(ROWS):
        for c in range(COLS):
            centre = d[r * CELL + 24:r * CELL + 40, c * CELL + 24:c * CELL + 40]
            # measured 1.035-1.095
            assert abs(float(np.median(centre)) - s0) < STEP, (r, c, float(np.median(centre)))


@pytest.mark.parametrize("s0", [1.0, -1.0])
def test_deblur_is_aligned_with_the_views_for_off_centre_kernels(tex, s0):
    """Kernels lying (2, -3) px off their array centre: the views show the scene moved by (2, -3) * s0; the
    deblurred image must be the sharp scene moved the same way (pair recentring), not shifted further."""
    kl, kr = half_disc(4.0)
    d = (2, -3)
    g = constant_grid(np.roll(kl, d, (0, 1)), np.roll(kr, d, (0, 1)))
    L, R = render(tex, g, s0)
    sy, sx = round(d[0] * s0), round(d[1] * s0)
    moved = tex[PAD - sy:PAD - sy + H, PAD - sx:PAD - sx + W]
    still = tex[PAD:PAD + H, PAD:PAD + W]
    out = dual_pixel_deblur(L, R, g, SCALES, defocus=np.full((H, W), s0)).image
    # measured: 26.4 dB against the moved scene, 16.4 dB against the unmoved one, blur 19.9 dB
    assert psnr(out[INNER], moved[INNER]) > psnr(((L + R) / 2)[INNER], moved[INNER]) + 4.0
    assert psnr(out[INNER], moved[INNER]) > psnr(out[INNER], still[INNER]) + 6.0
    est = dual_pixel_defocus_map(L, R, g, SCALES).defocus[INNER]
    assert abs(float(np.median(est)) - s0) < STEP  # measured +-0.988


def test_two_layer_render_separates(small_field):
    """A two-layer scene rendered by optics.render_coc_layers with the calibrated field: left half at scale
    0.4, right half at 1.2 (CoC = scale * the field's calibration CoC)."""
    g = DualPixelPSFGrid.from_field(small_field, cell=CELL, size=31)
    img = texture((H, W), seed=1)
    s_true = np.where(np.arange(W)[None, :] < W // 2, 0.4, 1.2) * np.ones((H, 1))
    views = optics.render_coc_layers(img, s_true * small_field.calibration_coc, model="calibrated",
                                     psf_field=small_field, tile=32, coc_step=0.25, workers=1)
    res = dual_pixel_deblur(views.left, views.right, g, SCALES, scale_bias=0.0, smooth=4.0, radius=8)
    d = res.defocus
    away = 24  # px from the depth edge and 16 px from the frame's
    left_half, right_half = d[16:-16, 16:W // 2 - away], d[16:-16, W // 2 + away:-16]
    # measured: medians 0.339 and 1.142; all / 98 % of the pixels within one step
    assert abs(float(np.median(left_half)) - 0.4) < STEP
    assert abs(float(np.median(right_half)) - 1.2) < STEP
    assert np.mean(np.abs(left_half - 0.4) < STEP) > 0.9
    assert np.mean(np.abs(right_half - 1.2) < STEP) > 0.9
    # measured 21.7 dB vs 20.2 dB for the centre view
    assert psnr(res.image[INNER], img[INNER]) > psnr(views.centre[INNER], img[INNER]) + 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(tex, grid, dtype):
    L, R = (v.astype(dtype) for v in render(tex, grid, 0.7))
    res = dual_pixel_deblur(L, R, grid, SCALES)
    for a in (res.image, res.defocus, res.confidence):
        assert a.dtype == dtype and a.shape == (H, W)
    assert abs(float(np.median(res.defocus[INNER])) - 0.7) < STEP
    given = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), SCALES[-1], dtype=np.float32))
    assert given.image.dtype == dtype and given.defocus.dtype == dtype
    assert dual_pixel_defocus_map(L, R, grid, SCALES).defocus.dtype == dtype


def test_float32_matches_float64(tex, grid):
    L, R = render(tex, grid, 0.7)
    d64 = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), 0.7)).image
    d32 = dual_pixel_deblur(L.astype(np.float32), R.astype(np.float32), grid, SCALES,
                            defocus=np.full((H, W), 0.7)).image
    np.testing.assert_allclose(d32, d64, rtol=0, atol=1e-4)


def test_defocus_given_interpolates_between_scales(tex, grid):
    """A defocus between two scales blends their two layers linearly (weights 0.25 / 0.75): the Wiener filter is
    linear; the TV prior acts on the blended image, so it blends the layers only approximately."""
    L, R = render(tex, grid, 0.7)
    a = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), 0.5), deconvolution="wiener").image
    b = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), 0.7), deconvolution="wiener").image
    mid = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), 0.55), deconvolution="wiener").image
    np.testing.assert_allclose(mid, 0.75 * a + 0.25 * b, rtol=0, atol=1e-9)


def test_scale_bias_moves_the_layers_not_the_map(tex, grid):
    """scale_bias is added to the estimated map before the layers are chosen: the same image as deblurring
    with ``defocus=`` the unbiased estimate + bias (clipped to the scales); the returned map is unbiased."""
    L, R = render(tex, grid, 0.7)
    plain = dual_pixel_deblur(L, R, grid, SCALES, scale_bias=0.0)
    for bias in (-0.15, 0.3):
        biased = dual_pixel_deblur(L, R, grid, SCALES, scale_bias=bias)
        np.testing.assert_array_equal(biased.defocus, plain.defocus)
        np.testing.assert_array_equal(biased.confidence, plain.confidence)
        given = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.clip(plain.defocus + bias, SCALES[0], SCALES[-1]))
        np.testing.assert_allclose(biased.image, given.image, rtol=0, atol=1e-9)
        assert np.abs(biased.image - plain.image).max() > 1e-2


def test_defocus_given_outside_the_scales_is_refused(tex, grid):
    L, R = render(tex, grid, 0.7)
    for bad in (SCALES[-1] + 0.1, SCALES[0] - 0.1, np.nan):
        d = np.full((H, W), 0.7)
        d[5, 7] = bad
        with pytest.raises(ValueError, match="defocus"):
            dual_pixel_deblur(L, R, grid, SCALES, defocus=d)
    with pytest.raises(ValueError, match="defocus"):
        dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W - 1), 0.7))


# regression: a rounding-noise cost (~1e-32) gave confidence 1
def test_confidence_is_low_without_texture(grid):
    flat = np.full((H, W), 0.5)
    res = dual_pixel_defocus_map(flat, flat.copy(), grid, SCALES)
    assert float(res.confidence.max()) < 0.5


# ------------------------------------------------------------------------------------------ 5. bad input
def _ok_views():
    rng = np.random.default_rng(7)
    return rng.random((H, W)), rng.random((H, W))


@pytest.mark.parametrize("fn", [dual_pixel_deblur, dual_pixel_defocus_map, dual_pixel_cost_volume])
def test_bad_views(grid, fn):
    L, R = _ok_views()
    with pytest.raises(ValueError, match="left must be a single-channel"):
        fn(L[..., None], R, grid, SCALES)
    with pytest.raises(ValueError, match="right must be a single-channel"):
        fn(L, np.stack([R, R]), grid, SCALES)
    with pytest.raises(TypeError, match="left must be float32 or float64"):
        fn((L * 255).astype(np.uint8), R, grid, SCALES)
    with pytest.raises(TypeError, match="right must be float32 or float64"):
        fn(L, (R * 100).astype(np.int64), grid, SCALES)
    Ln = L.copy()
    Ln[3, 4] = np.nan
    with pytest.raises(ValueError, match="left has NaN"):
        fn(Ln, R, grid, SCALES)
    Rn = R.copy()
    Rn[0, 0] = np.inf
    with pytest.raises(ValueError, match="right has NaN or inf"):
        fn(L, Rn, grid, SCALES)
    with pytest.raises(ValueError, match="left and right must have one shape"):
        fn(L, R[:, :-1], grid, SCALES)
    with pytest.raises(ValueError, match="left and right must have one shape and dtype"):
        fn(L, R.astype(np.float32), grid, SCALES)
    with pytest.raises(ValueError, match="psfs cover a 128x192 frame"):
        fn(L[:, :128], R[:, :128], grid, SCALES)
    with pytest.raises(TypeError, match="psfs must be an optics.DualPixelPSFGrid"):
        fn(L, R, (grid.left, grid.right), SCALES)
    with pytest.raises(TypeError):
        fn(L.tolist(), R, grid, SCALES)


@pytest.mark.parametrize("fn", [dual_pixel_deblur, dual_pixel_defocus_map, dual_pixel_cost_volume])
@pytest.mark.parametrize("scales", [[0.5, 0.2, 1.0], [0.5, 1.0], [0.5, 0.5, 1.0],
                                    [0.2, np.nan, 1.0], [[0.2, 0.5, 1.0]]])
def test_bad_scales(grid, fn, scales):
    L, R = _ok_views()
    with pytest.raises(ValueError, match="scales must be"):
        fn(L, R, grid, scales)


@pytest.mark.parametrize("kw, match", [
    (dict(wiener_eps=-1e-2), "wiener_eps"),
    (dict(wiener_eps=0.0), "wiener_eps"),
    (dict(wiener_eps=np.nan), "wiener_eps"),
    (dict(cost_eps=0.0), "cost_eps"),
    (dict(guide_eps=-1.0), "guide_eps"),
    (dict(smooth=-1.0), "smooth"),
    (dict(radius=0), "radius"),
    (dict(radius=2.5), "radius"),
    (dict(radius=True), "radius"),
    (dict(margin=-1), "margin"),
    (dict(scale_bias=np.inf), "scale_bias"),
    (dict(scale_bias="0.1"), "scale_bias"),
])
def test_bad_options_deblur(grid, kw, match):
    L, R = _ok_views()
    with pytest.raises(ValueError, match=match):
        dual_pixel_deblur(L, R, grid, SCALES, **kw)
    if not {"wiener_eps", "scale_bias"} & set(kw):
        with pytest.raises(ValueError, match=match):
            dual_pixel_defocus_map(L, R, grid, SCALES, **kw)


def _has_workers() -> bool:
    import inspect

    return "workers" in inspect.signature(dual_pixel_deblur).parameters


@pytest.mark.skipif(not _has_workers(), reason="dual_pixel_deblur has no workers option")
def test_workers_do_not_change_the_results(tex, grid):
    L, R = render(tex, grid, 0.7)
    one = dual_pixel_deblur(L, R, grid, SCALES, workers=1)
    three = dual_pixel_deblur(L, R, grid, SCALES, workers=3)
    for a, b in ((one.image, three.image), (one.defocus, three.defocus), (one.confidence, three.confidence)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dual_pixel_cost_volume(L, R, grid, SCALES, workers=1),
                                  dual_pixel_cost_volume(L, R, grid, SCALES, workers=2))
    for bad in (0, -2, 1.5, True):
        for fn in (dual_pixel_deblur, dual_pixel_defocus_map, dual_pixel_cost_volume):
            with pytest.raises(ValueError, match="workers"):
                fn(L, R, grid, SCALES, workers=bad)


def test_kernels_larger_than_the_window_name_margin():
    kl, kr = half_disc(3.0)  # 21 px kernels, 8 px cells, no margin: 16 px windows
    g = constant_grid(kl, kr, 2, 2, 8)
    L = np.random.default_rng(0).random((16, 16))
    with pytest.raises(ValueError, match="margin"):
        dual_pixel_defocus_map(L, L.copy(), g, SCALES, margin=0)


# ------------------------------------------------------------------------------------------ 6. CLI
def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "optics.dual_pixel.deblur", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _one_error_line(stderr: str, expected: str) -> None:
    """One ``error:`` line (after any one-line ``warning:``s), no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in stderr


def _write_png(path: Path, array: np.ndarray) -> None:
    path.write_bytes(png_bytes(array))


def test_cli_bad_input_is_one_line_and_status_2(tmp_path):
    view = np.full((8, 8), 30000, np.uint16)
    _write_png(tmp_path / "l.png", view)
    _write_png(tmp_path / "r.png", view)
    out = tmp_path / "out.png"
    out.write_bytes(b"a previous result")
    before = out.read_bytes()
    _write_png(tmp_path / "wide.png", np.full((8, 9), 30000, np.uint16))
    _write_png(tmp_path / "rgb.png", np.full((8, 8, 3), 30000, np.uint16))
    (tmp_path / "sheets").mkdir()
    for side in ("left", "right"):
        _write_png(tmp_path / "sheets" / f"white_sheet_{side}.png", np.full((9, 9), 5000, np.uint16))
    calib = tmp_path / "calib"
    _write_calibration(calib, 2, 2)  # 4 kernels where the CLI's grid is 6 x 8
    cases = [
        (["missing.png", "r.png", "new.png"], "does not exist"),
        (["l.png", "r.png", "out.png"], "--overwrite"),
        (["l.png", "r.png", "new.png", "--scales", "1:0:3"], "--scales"),
        (["l.png", "r.png", "new.png", "--scales", "0.2:1:2"], "--scales"),
        (["l.png", "r.png", "new.png", "--scales", "a:b:c"], "--scales"),
        (["l.png", "r.png", "new.png", "--defocus-map", "x.txt"], ".txt"),
        (["l.png", "r.png", "new.png", "--confidence", "c.png"], ".png"),
        (["l.png", "r.png", "new.png", "--defocus-map", "new.npy", "--confidence", "new.npy"], "different files"),
        (["l.png", "r.png", "new.png", "--wiener-eps", "0"], "--wiener-eps"),
        (["l.png", "r.png", "new.png", "--psf", "no_such_folder"], "no_such_folder"),
        (["l.png", "r.png", "new.png", "--psf", str(calib), "--input-format", "linear"], "blur_kernels_left.npy"),
        (["l.png", "r.png", "new.png", "--input-format", "jpeg"], "--input-format"),
        (["l.png", "r.png", "new.png", "--input-format", "pixel4-raw"], "above 14 bits"),
        (["l.png", "wide.png", "new.png", "--input-format", "linear"], "is 8x8 but right view"),
        (["rgb.png", "r.png", "new.png", "--input-format", "linear"], "but right view"),
        (["rgb.png", "rgb.png", "new.png", "--input-format", "pixel4-raw"], "single-channel"),
        (["l.png", "r.png", "new.png", "--input-format", "linear", "--white-sheets", "sheets"],
         "expected sheets of the views' size 8x8 or of the 1512x2016 frame; got 9x9"),
        (["l.png", "r.png", "new.png", "--input-format", "linear"], "smaller than the 336x336"),
    ]
    for argv, expected in cases:
        proc = _run_cli(argv, tmp_path)
        assert proc.returncode == 2, (argv, proc.returncode, proc.stderr[-2000:])
        _one_error_line(proc.stderr, expected)
        assert out.read_bytes() == before
        assert not (tmp_path / "new.png").exists() and not (tmp_path / "new.npy").exists()


def test_cli_scales_take_a_leading_minus_and_a_stated_limit(tmp_path):
    """Issue 28: the help's own form ``--scales -0.9:1.6:21`` (and ``--scales=-0.9:1.6:21``) parses; an
    absurd COUNT is refused while parsing, before the inputs are read."""
    from optics.dual_pixel import deblur as dp

    for form in (["--scales", "-0.9:1.6:21"], ["--scales=-0.9:1.6:21"]):
        with pytest.raises(FileNotFoundError, match="missing.png"):  # parsed: the next check is the input's
            dp.main(["missing.png", "r.png", "new.png", *form])
    assert dp._join_negative_values(["a", "--scales", "-0.9:1.6:21", "--wiener-eps", "0.1"]) == [
        "a", "--scales=-0.9:1.6:21", "--wiener-eps", "0.1"]
    proc = _run_cli(["missing.png", "r.png", "new.png", "--scales", "0.1:1.6:100000"], tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, f"argument --scales: expected COUNT <= {dp.MAX_CLI_SCALES}")
    assert "100000" in proc.stderr


def test_defocus_given_with_nan_names_nan(tex, grid):
    L, R = render(tex, grid, 0.7)
    d = np.full((H, W), 0.7)
    d[5, 7] = np.nan
    with pytest.raises(ValueError, match="1 NaN value"):
        dual_pixel_deblur(L, R, grid, SCALES, defocus=d)


@pytest.mark.slow
def test_cli_deblurs_a_full_frame(tmp_path):
    """The CLI's calibration grid is Xin et al.'s 6 x 8 cells of 168 px: a 1008 x 1344 frame (views 4 px larger,
    cropped centrally with --crop), 3 scales to keep it short (about 10 s)."""
    kl, kr = half_disc(3.5, n=15)
    calib = tmp_path / "data" / "calibration"
    calib.mkdir(parents=True)
    np.save(calib / "blur_kernels_left.npy", np.broadcast_to(kl, (48, 15, 15)).copy())
    np.save(calib / "blur_kernels_right.npy", np.broadcast_to(kr, (48, 15, 15)).copy())
    Hf, Wf = 1012, 1348
    s0 = 1.0
    x = 0.1 + 0.8 * texture((Hf + 30, Wf + 30), seed=2)
    views = [scipy.signal.fftconvolve(x, k, mode="same")[15:15 + Hf, 15:15 + Wf] for k in (kl, kr)]
    for name, v in zip(("l.png", "r.png"), views):
        _write_png(tmp_path / name, np.round(v * 65535).astype(np.uint16))
    proc = _run_cli(["l.png", "r.png", "out.png", "--psf", str(tmp_path / "data"), "--input-format", "linear",
                     "--scales", "0.5:1.5:3", "--defocus-map", "d.npy", "--confidence", "c.npy", "--crop", "1008x1344"],
                    tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cropped to 1008x1344 at (top, left) (2, 2)" in proc.stderr and "vignetting is not corrected" in proc.stderr
    out = read_png(tmp_path / "out.png")
    assert out.dtype == np.uint16 and out.shape == (1008, 1344)
    d = np.load(tmp_path / "d.npy")
    c = np.load(tmp_path / "c.npy")
    assert d.dtype == np.float32 and d.shape == (1008, 1344) and c.shape == (1008, 1344)
    # measured: median 0.946 on scales 0.5 / 1.0 / 1.5; deblurred 27.5 dB vs 22.8 dB for (L + R) / 2
    assert abs(float(np.median(d)) - s0) < 0.25 and np.all((c >= 0) & (c <= 1))
    sharp_c = crop_central(x[15:15 + Hf, 15:15 + Wf], (1008, 1344))
    blurred_c = crop_central((views[0] + views[1]) / 2, (1008, 1344))
    inner = (slice(32, -32), slice(32, -32))
    # Xin et al.'s layout registers the output as their ground truth (PIXEL4_REFERENCE, near the left view);
    # this fixture's sharp image is the full-aperture geometry: one global sub-pixel shift apart (scale ~s0)
    from skimage.registration import phase_cross_correlation

    shift = phase_cross_correlation(sharp_c[inner], out[inner] / 65535, upsample_factor=20)[0]
    assert abs(shift[0]) < 0.2 and 0.2 < abs(shift[1]) < 3, shift  # along x only, less than the disparity
    registered = ndimage.shift(out / 65535, shift, order=3, mode="mirror")
    assert psnr(registered[inner], sharp_c[inner]) > psnr(blurred_c[inner], sharp_c[inner]) + 2.0, (
        psnr(registered[inner], sharp_c[inner]), psnr(blurred_c[inner], sharp_c[inner]))
    before = (tmp_path / "out.png").read_bytes()
    proc = _run_cli(["l.png", "r.png", "out.png", "--psf", str(tmp_path / "data")], tmp_path)
    assert proc.returncode == 2 and (tmp_path / "out.png").read_bytes() == before
    # --overwrite, and the map as a 16-bit PNG: the scales' range 0.5..1.5 mapped to 0..65535
    proc = _run_cli(["l.png", "r.png", "out.png", "--psf", str(tmp_path / "data"), "--input-format", "linear",
                     "--scales", "0.5:1.5:3", "--defocus-map", "d.png", "--overwrite", "--crop", "1008x1344"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    level = read_png(tmp_path / "d.png")
    assert level.dtype == np.uint16 and level.shape == (1008, 1344)
    assert np.abs(level.astype(np.float64) - (d.astype(np.float64) - 0.5) / 1.0 * 65535).max() <= 1.0


# ------------------------------------------------------------------------------------------ 7. dp_pixel4 helpers
def test_read_pixel4_raw(tmp_path):
    raw = np.array([[0, 1000, 1024, 1025], [2048, 5000, 17407, 1024 + 8192]], dtype=np.uint16)
    _write_png(tmp_path / "v.png", raw)
    got = read_pixel4_raw(tmp_path / "v.png")
    expect = np.array([[max(int(v) - 1024, 0) / 16383 for v in row] for row in raw])
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=0)
    assert got[1, 2] == pytest.approx(1.0)
    _write_png(tmp_path / "eight.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="16-bit"):
        read_pixel4_raw(tmp_path / "eight.png")
    _write_png(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(ValueError, match="single-channel"):
        read_pixel4_raw(tmp_path / "rgb.png")
    _write_png(tmp_path / "hot.png", np.full((2, 2), 17408, np.uint16))
    with pytest.raises(ValueError, match="14 bits"):
        read_pixel4_raw(tmp_path / "hot.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_pixel4_raw(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="PNG"):
        read_pixel4_raw(tmp_path / "v.tif")


def test_pixel4_vignetting_gain_is_a_zero_padded_101_box_of_the_ratio(tmp_path):
    rng = np.random.default_rng(3)
    h, w = 110, 130  # larger than half the window: windows clipped differently across the frame
    wl = rng.integers(3000, 16000, (h, w)).astype(np.uint16)
    wr = rng.integers(3000, 16000, (h, w)).astype(np.uint16)
    _write_png(tmp_path / "white_sheet_left.png", wl)
    _write_png(tmp_path / "white_sheet_right.png", wr)
    ratio = (wl.astype(np.float64) - 1024) / (wr.astype(np.float64) - 1024)
    ref = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            ref[i, j] = ratio[max(i - 50, 0):i + 51, max(j - 50, 0):j + 51].sum() / 101**2
    gain = pixel4_vignetting_gain(tmp_path)
    assert gain.shape == (h, w) and not gain.flags.writeable
    np.testing.assert_allclose(gain, ref, rtol=1e-5, atol=0)  # the sheets are read as float32


def test_pixel4_vignetting_errors(tmp_path):
    _write_png(tmp_path / "white_sheet_left.png", np.full((8, 8), 5000, np.uint16))
    with pytest.raises(FileNotFoundError, match="white_sheet_right.png"):
        pixel4_vignetting_gain(tmp_path)
    _write_png(tmp_path / "white_sheet_right.png", np.full((8, 9), 5000, np.uint16))
    with pytest.raises(ValueError, match="same size"):
        pixel4_vignetting_gain(tmp_path)
    dark = np.full((8, 8), 5000, np.uint16)
    dark[2, 2] = 1000
    _write_png(tmp_path / "white_sheet_right.png", dark)
    with pytest.raises(ValueError, match="white_sheet_right.png"):
        pixel4_vignetting_gain(tmp_path)
    (tmp_path / "white_sheet_left.png").unlink()
    with pytest.raises(FileNotFoundError, match="white_sheet_left.png"):
        pixel4_vignetting_gain(tmp_path)


def test_crop_central():
    img = np.arange(9 * 12).reshape(9, 12)
    for (h, w) in ((4, 6), (5, 5), (9, 12), (8, 11)):
        top, left = (9 - h) // 2, (12 - w) // 2
        np.testing.assert_array_equal(crop_central(img, (h, w)), img[top:top + h, left:left + w])
    rgb = np.arange(7 * 8 * 3).reshape(7, 8, 3)
    np.testing.assert_array_equal(crop_central(rgb, (3, 4)), rgb[2:5, 2:6])
    with pytest.raises(ValueError, match=r"left view \(9x12\) is smaller than the 10x4"):
        crop_central(img, (10, 4), "left view")
    with pytest.raises(ValueError, match="smaller"):
        crop_central(img, (4, 13))


# ------------------------------------------------------------------------------------------ 8. GPU
@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_matches_numpy(tex, grid, dtype):
    import cupy

    L, R = (v.astype(dtype) for v in render(tex, grid, 0.7))
    cpu = dual_pixel_deblur(L, R, grid, SCALES)
    gpu = dual_pixel_deblur(cupy.asarray(L), cupy.asarray(R), grid, SCALES)
    for a in (gpu.image, gpu.defocus, gpu.confidence):
        assert isinstance(a, cupy.ndarray) and a.dtype == dtype
    atol = 1e-3 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(gpu.defocus.get(), cpu.defocus, rtol=0, atol=10 * atol)
    np.testing.assert_allclose(gpu.image.get(), cpu.image, rtol=0, atol=atol)
    given = dual_pixel_deblur(cupy.asarray(L), cupy.asarray(R), grid, SCALES, defocus=cupy.full((H, W), 0.7))
    ref = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full((H, W), 0.7))
    np.testing.assert_allclose(given.image.get(), ref.image, rtol=0, atol=atol)
