"""optics.dual_pixel.defocus_map on a coarse grid (issue 33): the per-cell cost's block means, block_mean,
upsample_bilinear and map_step, each against a naive twin or a closed form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from optics.dual_pixel.deblur import (DualPixelPSFGrid, dual_pixel_cost_volume, dual_pixel_deblur,
                                      dual_pixel_defocus_map)
from optics.dual_pixel.defocus_map import block_mean, upsample_bilinear

SCALES = np.round(np.arange(-1.1, 1.7, 0.2), 4)
CELL, ROWS, COLS, N, PAD = 48, 2, 3, 15, 24
H, W = ROWS * CELL, COLS * CELL


def _grid() -> DualPixelPSFGrid:
    """Half-disc pairs (radius 4 px), slightly different per cell so that a cell's own pair matters."""
    c = np.arange(N) - N // 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    left = np.empty((ROWS, COLS, N, N))
    for r in range(ROWS):
        for col in range(COLS):
            disc = np.clip(4.0 + 0.3 * (r * COLS + col) / (ROWS * COLS) + 0.5 - np.hypot(yy, xx), 0, 1)
            k = disc / (1 + np.exp(xx / 0.7))
            left[r, col] = k / k.sum()
    return DualPixelPSFGrid(left, left[..., ::-1].copy(), CELL, name="test half discs")


def _views(grid, s0, seed=0):
    rng = np.random.default_rng(seed)
    tex = scipy.ndimage.gaussian_filter(rng.random((H + 2 * PAD, W + 2 * PAD)), 1.0)
    L, R = np.empty((H, W)), np.empty((H, W))
    for r in range(ROWS):
        for col in range(COLS):
            kl, kr, _ = grid.pair(r, col, s0)
            sl = (slice(r * CELL, (r + 1) * CELL), slice(col * CELL, (col + 1) * CELL))
            for view, k in ((L, kl), (R, kr)):
                view[sl] = scipy.signal.fftconvolve(tex, k, mode="same")[PAD:PAD + H, PAD:PAD + W][sl]
    return L, R


def _naive_cell_cost(L, R, grid, scales, step, margin, cost_eps=1e-3):
    """The per-cell cost's naive twin: each cell's window (the cell plus ``margin``, mirror-padded, on a full
    complex FFT of its own size, complex128), the pair's OTFs from zero-padded kernels with the centroid of
    the pair's mean moved to the origin by a phase ramp, the whitened residual, its square, per-block means."""
    n = CELL + 2 * margin
    Lp, Rp = (np.pad(v, margin, mode="symmetric") for v in (L, R))
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    full = np.zeros((len(scales), H, W))
    for r in range(ROWS):
        for col in range(COLS):
            FL = np.fft.fft2(Lp[r * CELL:r * CELL + n, col * CELL:col * CELL + n])
            FR = np.fft.fft2(Rp[r * CELL:r * CELL + n, col * CELL:col * CELL + n])
            for i, s in enumerate(scales):
                kl, kr, (dy, dx) = grid.pair(r, col, float(s), centre_weight=0.5)
                k = kl.shape[0]
                ramp = np.exp(2j * np.pi * (fy * (dy + k // 2) + fx * (dx + k // 2)))
                KL, KR = (np.fft.fft2(np.pad(kk, ((0, n - k), (0, n - k)))) * ramp for kk in (kl, kr))
                e = np.fft.ifft2((FL * KR - FR * KL) / np.sqrt(abs(KL) ** 2 + abs(KR) ** 2 + cost_eps)).real
                full[i, r * CELL:(r + 1) * CELL, col * CELL:(col + 1) * CELL] = e[margin:margin + CELL,
                                                                                   margin:margin + CELL] ** 2
    h, w = -(-H // step), -(-W // step)
    out = np.empty((len(scales), h, w))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = full[:, i * step:(i + 1) * step, j * step:(j + 1) * step].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("step", [2, 4, 5])  # 5: blocks straddle the cells' borders (48 = 9 * 5 + 3)
def test_cell_cost_equals_its_naive_twin(step):
    grid = _grid()
    L, R = _views(grid, 0.9)
    ours = dual_pixel_cost_volume(L, R, grid, SCALES, step=step, margin=12)
    ref = _naive_cell_cost(L, R, grid, SCALES, step, margin=12)
    assert ours.shape == ref.shape == (len(SCALES), -(-H // step), -(-W // step))
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * ref.max())


def test_cell_cost_is_least_at_the_true_scale_and_close_to_the_tent_cost():
    grid = _grid()
    s0 = 0.9  # on the SCALES grid
    L, R = _views(grid, s0)
    coarse = dual_pixel_cost_volume(L, R, grid, SCALES, step=4)
    fine = block_mean(dual_pixel_cost_volume(L, R, grid, SCALES, step=1), 4)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    total, tent = coarse[inner].sum(axis=(1, 2)), fine[inner].sum(axis=(1, 2))
    i0 = int(np.argmin(np.abs(SCALES - s0)))
    assert int(np.argmin(total)) == int(np.argmin(tent)) == i0
    # away from the true scale both see the same residuals (measured: within 1.1 %); at it the views (each
    # cell blurred with its own pair) are what the per-cell windows model exactly, while the tents mix the
    # neighbours' pairs: measured 4.7e-5 against 4.6e-4
    away = np.arange(len(SCALES)) != i0
    np.testing.assert_allclose(total[away], tent[away], rtol=2e-2)
    assert total[i0] < tent[i0]


def test_cell_cost_workers_and_dtype():
    grid = _grid()
    L, R = _views(grid, 0.7)
    one = dual_pixel_cost_volume(L, R, grid, SCALES, step=4, workers=1)
    np.testing.assert_array_equal(one, dual_pixel_cost_volume(L, R, grid, SCALES, step=4, workers=2))
    f32 = dual_pixel_cost_volume(L.astype(np.float32), R.astype(np.float32), grid, SCALES, step=4)
    assert one.dtype == np.float64 and f32.dtype == np.float32
    np.testing.assert_allclose(f32, one, rtol=2e-3, atol=1e-5 * one.max())


@pytest.mark.parametrize("shape, step", [((16, 24), 4), ((17, 23), 4), ((9, 10), 3), ((8, 8), 1)])
def test_block_mean_is_the_mean_of_each_block(shape, step):
    a = np.random.default_rng(0).random((2,) + shape).astype(np.float32)
    ours = block_mean(a, step)
    h, w = -(-shape[0] // step), -(-shape[1] // step)
    ref = np.array([[[a[k, i * step:(i + 1) * step, j * step:(j + 1) * step].mean() for j in range(w)]
                     for i in range(h)] for k in range(2)])
    assert ours.dtype == np.float32 and ours.shape == (2, h, w)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_upsample_bilinear_reproduces_a_plane_and_clamps_at_the_border():
    step, (H_, W_) = 4, (40, 52)
    cy = (np.arange(10) + 0.5) * step - 0.5  # block centres in pixel coordinates
    cx = (np.arange(13) + 0.5) * step - 0.5
    plane = lambda y, x: 0.3 + 0.02 * y - 0.01 * x  # noqa: E731
    grid = plane(cy[:, None], cx[None, :]).astype(np.float32)
    up = upsample_bilinear(grid, step, (H_, W_))
    assert up.shape == (H_, W_) and up.dtype == np.float32
    y, x = np.arange(H_)[:, None], np.arange(W_)[None, :]
    inside = (slice(2, H_ - 2), slice(2, W_ - 2))  # between the outermost centres: exact
    np.testing.assert_allclose(up[inside], np.broadcast_to(plane(y, x), (H_, W_))[inside], atol=1e-5)
    # rows 0 and 1 lie before the first centre (y = 1.5): clamped to its row
    np.testing.assert_array_equal(up[0], up[1])
    np.testing.assert_allclose(up[0, 2:-2], plane(cy[0], x[0, 2:-2]), atol=1e-5)
    np.testing.assert_array_equal(upsample_bilinear(grid, 1, grid.shape), grid)


@pytest.mark.parametrize("map_step", [1, 2, 4])
@pytest.mark.parametrize("s0", [0.7, -0.7])
def test_every_map_step_recovers_a_constant_defocus(map_step, s0):
    grid = _grid()
    L, R = _views(grid, s0)
    res = dual_pixel_defocus_map(L, R, grid, SCALES, map_step=map_step, smooth=8.0, radius=8, margin=12)
    d = res.defocus[8:-8, 8:-8]
    assert res.defocus.shape == (H, W) and res.confidence.shape == (H, W)
    assert abs(float(np.median(d)) - s0) < 0.2 and np.mean(np.abs(d - s0) < 0.2) > 0.99


@pytest.mark.parametrize("bad", [0, 17, 2.0, True, "4"])
def test_bad_map_step_is_named(bad):
    grid = _grid()
    L, R = _views(grid, 0.7)
    for fn in (dual_pixel_deblur, dual_pixel_defocus_map):
        with pytest.raises(ValueError, match="map_step"):
            fn(L, R, grid, SCALES, map_step=bad)
    with pytest.raises(ValueError, match="map_step"):
        dual_pixel_cost_volume(L, R, grid, SCALES, step=bad)
