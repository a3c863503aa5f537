"""optics.dual_pixel.aggregation: the vectorised semi-global scans equal a naive per-pixel recursion."""

from __future__ import annotations

import numpy as np
import pytest

from optics.dual_pixel.aggregation import semi_global_index, semi_global_paths
from optics.dual_pixel.deblur import DualPixelPSFGrid, _subscale_argmin, dual_pixel_defocus_map, guided_filter


def _naive_paths(cost, guide, p1, p2, tau):
    """Hirschmueller's recursion written out pixel by pixel, scale by scale, for the four directions."""
    S, H, W = cost.shape
    gx = np.abs(np.diff(guide, axis=1, prepend=guide[:, :1]))
    gy = np.abs(np.diff(guide, axis=0, prepend=guide[:1, :]))
    total = np.zeros((S, H, W))
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        L = np.zeros((S, H, W))
        ys = range(H) if dy >= 0 else range(H - 1, -1, -1)
        xs = range(W) if dx >= 0 else range(W - 1, -1, -1)
        for y in ys:
            for x in xs:
                py, px = y - dy, x - dx
                if not (0 <= py < H and 0 <= px < W):
                    L[:, y, x] = cost[:, y, x]
                    continue
                prev = L[:, py, px]
                m = prev.min()
                g = gx[y, x] if dx else gy[y, x]
                big = p2 / (1 + g / tau)
                for d in range(S):
                    options = [prev[d], m + big]
                    if d > 0:
                        options.append(prev[d - 1] + p1)
                    if d < S - 1:
                        options.append(prev[d + 1] + p1)
                    L[d, y, x] = cost[d, y, x] + min(options) - m
        total += L
    return total


def test_semi_global_paths_equal_the_naive_recursion():
    rng = np.random.default_rng(0)
    cost = rng.random((5, 7, 9))
    guide = rng.random((7, 9))
    np.testing.assert_allclose(semi_global_paths(cost, guide, 0.1, 0.6, 0.05), _naive_paths(cost, guide, 0.1, 0.6, 0.05),
                               rtol=1e-12, atol=1e-12)


def test_a_noisy_step_is_cleaned_and_its_edge_kept():
    """Two regions of scale index 1 and 3 with 20 % of pixels lying: the scans restore both, the edge stays."""
    rng = np.random.default_rng(1)
    S, H, W = 5, 32, 48
    truth = np.where(np.arange(W)[None, :] < 24, 1, 3).repeat(H, 0)
    lie = rng.random((H, W)) < 0.2
    shown = np.where(lie, rng.integers(0, S, (H, W)), truth)
    cost = (np.arange(S)[:, None, None] - shown[None]) ** 2 * 0.1 + 0.01 * rng.random((S, H, W))
    guide = np.where(truth == 1, 0.2, 0.8).astype(np.float64)
    raw = np.argmin(cost, 0)
    agg = np.argmin(semi_global_paths(cost, guide, 1.0, 3.0, 0.05), 0)
    assert (raw != truth).mean() > 0.1 and (agg != truth).mean() < 0.04  # measured 0.157 -> 0.029
    index = semi_global_index(cost.astype(np.float32), guide, p1=1.0, p2=3.0, tau=0.05, factor=2,
                              subscale_argmin=_subscale_argmin, guided_filter=guided_filter)
    assert index.shape == (H, W) and index.dtype == np.float32
    assert np.abs(index[:, :20] - 1).mean() < 0.3 and np.abs(index[:, 28:] - 3).mean() < 0.3


def test_bad_penalties_and_shapes_are_named():
    cost = np.zeros((3, 4, 4))
    with pytest.raises(ValueError, match="p1 <= p2"):
        semi_global_paths(cost, np.zeros((4, 4)), 1.0, 0.5, 0.1)
    with pytest.raises(ValueError, match=r"cost must be \(S, H, W\)"):
        semi_global_paths(cost, np.zeros((4, 5)), 0.1, 0.5, 0.1)
    grid = DualPixelPSFGrid(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), 16)
    views = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="aggregation must be one of"):
        dual_pixel_defocus_map(views, views, grid, (0.5, 1.0, 1.5), aggregation="median")
