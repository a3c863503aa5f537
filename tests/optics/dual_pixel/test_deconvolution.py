"""optics.dual_pixel.deconvolution: layered Wiener and TV deconvolution, the layer stack and its composite."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from optics.dual_pixel.deblur import DualPixelPSFGrid, _centroid, dual_pixel_deblur
from optics.dual_pixel.deconvolution import composite_layers, layer_stack, layered_deconvolution

SCALES = np.array([0.5, 1.0, 1.5])
CELL = 48


def _grid(rows=2, cols=2, n=15) -> DualPixelPSFGrid:
    """Half-disc pairs of radius 4 px at scale 1: the left kernel is the mirror image of the right about the
    centre column, so the pair's mean is centred (its centroid is the origin) and the views differ along x."""
    c = np.arange(n) - n // 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    disc = np.clip(4.5 - np.hypot(yy, xx), 0, 1)
    kl = disc / (1 + np.exp(xx / 0.7))
    kl /= kl.sum()
    kr = kl[:, ::-1].copy()
    left = np.broadcast_to(kl, (rows, cols, n, n)).copy()
    right = np.broadcast_to(kr, (rows, cols, n, n)).copy()
    return DualPixelPSFGrid(left, right, CELL, name="test half discs")


def _scene(grid, scale=1.0, noise=2e-3, seed=0, dtype=np.float32):
    """A piecewise-constant sharp image (sharp edges: a TV prior's case) blurred by the grid's pair at ``scale``."""
    rng = np.random.default_rng(seed)
    H, W = grid.frame
    blocks = rng.random((H // 12 + 1, W // 12 + 1))
    sharp = np.kron(blocks, np.ones((12, 12)))[:H, :W] * 0.6 + 0.2
    kl, kr, _ = grid.pair(0, 0, scale)
    views = [ndimage.convolve(sharp, k, mode="mirror") for k in (kl, kr)]  # true convolution, origin at the centre
    views = [(v + noise * rng.standard_normal(v.shape)).astype(dtype) for v in views]
    return sharp.astype(dtype), views


def _psnr(a, b, border=16):
    a, b = np.asarray(a, np.float64)[border:-border, border:-border], np.asarray(b, np.float64)[border:-border, border:-border]
    return -10 * np.log10(np.mean((a - b) ** 2))


def test_wiener_composite_of_the_layer_stack_equals_the_layered_deconvolution():
    grid = _grid()
    _, (L, R) = _scene(grid)
    rng = np.random.default_rng(1)
    index = ndimage.gaussian_filter(rng.random(L.shape), 8) * 6 - 2  # fractional, smooth, beyond both ends
    index = np.clip(index, 0, len(SCALES) - 1).astype(np.float32)
    direct = layered_deconvolution(L, R, grid, SCALES, index, wiener_eps=1e-2, workers=1)
    stack = layer_stack(L, R, grid, SCALES, wiener_eps=1e-2, workers=1)
    assert stack.shape == (3,) + L.shape and stack.dtype == np.float32
    np.testing.assert_allclose(composite_layers(stack, index), direct, atol=2e-6)
    # each layer of the stack is the deconvolution with that constant layer
    one = layered_deconvolution(L, R, grid, SCALES, np.full(L.shape, 1.0, np.float32), wiener_eps=1e-2, workers=1)
    np.testing.assert_array_equal(stack[1], one)


def test_composite_layers_is_the_naive_per_pixel_blend():
    rng = np.random.default_rng(2)
    stack = rng.random((4, 5, 6))
    index = rng.random((5, 6)) * 4.4 - 0.2
    naive = np.empty((5, 6))
    for y in range(5):
        for x in range(6):
            i = min(max(index[y, x], 0), 3)
            lo = int(np.floor(i))
            hi = min(lo + 1, 3)
            naive[y, x] = (1 - (i - lo)) * stack[lo, y, x] + (i - lo) * stack[hi, y, x]
    np.testing.assert_allclose(composite_layers(stack, index), naive, rtol=1e-12)


def test_tv_beats_wiener_on_a_piecewise_constant_render_and_layered_equals_the_deblur():
    grid = _grid()
    sharp, (L, R) = _scene(grid, noise=4e-3)
    index = np.full(L.shape, 1.0, np.float32)
    wiener = layered_deconvolution(L, R, grid, SCALES, index, wiener_eps=1e-2, workers=1)
    tv = layered_deconvolution(L, R, grid, SCALES, index, method="tv", wiener_eps=1e-2, tv_weight=2e-3, workers=1)
    blurred = (L + R) / 2
    assert _psnr(wiener, sharp) > _psnr(blurred, sharp) + 3
    assert _psnr(tv, sharp) > _psnr(wiener, sharp) + 0.5, (_psnr(tv, sharp), _psnr(wiener, sharp))
    # dual_pixel_deblur with a given map runs the same deconvolution
    res = dual_pixel_deblur(L, R, grid, SCALES, defocus=np.full(L.shape, 1.0, np.float32), deconvolution="tv",
                            wiener_eps=1e-2, tv_weight=2e-3, workers=1)
    np.testing.assert_array_equal(res.image, tv)


def test_tv_with_every_gradient_shrunk_away_is_the_gradient_regularised_wiener_filter():
    """A weight above every gradient: the shrinkage gives w = 0, and a step is the filter (den + eps + beta |G|^2)
    of the views alone, whatever came before it; a larger beta smooths more."""
    grid = _grid()
    sharp, (L, R) = _scene(grid, noise=0)
    index = np.full(L.shape, 1.0, np.float64)
    L, R = L.astype(np.float64), R.astype(np.float64)
    a = layered_deconvolution(L, R, grid, SCALES, index, method="tv", tv_weight=1e6, tv_eps=1e-3, tv_betas=(1e-2,),
                              workers=1)
    b = layered_deconvolution(L, R, grid, SCALES, index, method="tv", tv_weight=1e6, tv_eps=1e-3,
                              tv_betas=(5.0, 1e-2), workers=1)  # the first step leaves no trace
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert a.dtype == np.float64
    heavy = layered_deconvolution(L, R, grid, SCALES, index, method="tv", tv_weight=1e6, tv_eps=1e-3, tv_betas=(10.0,),
                                  workers=1)
    grad = lambda x: np.abs(np.diff(x[16:-16, 16:-16], axis=1)).mean()
    assert grad(heavy) < 0.8 * grad(a)


def test_centre_weight_moves_the_reference_to_the_left_kernel():
    grid = _grid()
    kl, kr, mid = grid.pair(0, 0, 1.0)
    _, _, left = grid.pair(0, 0, 1.0, centre_weight=1.0)
    _, _, right = grid.pair(0, 0, 1.0, centre_weight=0.0)
    assert np.allclose(left, _centroid(kl / kl.sum())) and np.allclose(right, _centroid(kr / kr.sum()))
    assert np.allclose(mid, _centroid((kl + kr) / 2))
    assert left[1] < mid[1] < right[1] and abs(left[0] - mid[0]) < 1e-9 and abs(mid[1]) < 1e-9  # along x only
    # the output follows its reference: centre_weight 1 shifts the image by (left - mid) px along x
    sharp, (L, R) = _scene(grid, noise=0)
    index = np.full(L.shape, 1.0, np.float32)
    a = layered_deconvolution(L, R, grid, SCALES, index, wiener_eps=1e-3, workers=1)
    b = layered_deconvolution(L, R, grid, SCALES, index, wiener_eps=1e-3, centre_weight=1.0, workers=1)
    shifted = ndimage.shift(a.astype(np.float64), (0, left[1] - mid[1]), order=3, mode="mirror")
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(shifted - b)[inner].mean() < 0.25 * np.abs(a - b)[inner].mean()


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="lucy"), "method must be one of"),
    (dict(method="tv", tv_weight=-1.0), "tv_weight must be a finite number >= 0"),
    (dict(method="tv", tv_eps=0.0), "tv_eps must be a finite number > 0"),
    (dict(method="tv", tv_betas=()), "tv_betas must be a non-empty sequence"),
    (dict(method="tv", tv_betas=(1.0, float("nan"))), "tv_betas must be a non-empty sequence"),
    (dict(wiener_eps=float("inf")), "wiener_eps must be a finite number > 0"),
    (dict(centre_weight=float("nan")), "centre_weight must be a finite number"),
    (dict(centre_weight=True), "centre_weight must be a finite number"),
])
def test_bad_options_are_one_line_errors_naming_them(kwargs, message):
    grid = _grid()
    L = np.zeros(grid.frame, np.float32)
    with pytest.raises(ValueError, match=message) as err:
        layered_deconvolution(L, L, grid, SCALES, np.zeros_like(L), **kwargs)
    assert "\n" not in str(err.value)


def test_deblur_refuses_an_unknown_deconvolution():
    grid = _grid()
    L = np.zeros(grid.frame, np.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        dual_pixel_deblur(L, L, grid, SCALES, defocus=np.ones_like(L), deconvolution="lucy")
