r"""Semi-global aggregation of a dual-pixel cost volume (Hirschmueller's SGM), an alternative to the
cost-volume filtering of :func:`optics.dual_pixel.deblur.aggregate_cost`.

Along each of four scan directions :math:`r` (left, right, up, down) the path cost

.. math:: L_r(p, d) = C(p, d) + \min\big(L_r(p - r, d),\ L_r(p - r, d \pm 1) + P_1,\
          \min_k L_r(p - r, k) + P_2(p)\big) - \min_k L_r(p - r, k)

is accumulated, and the aggregated cost is :math:`\sum_r L_r`. A change of one scale between
neighbours costs :math:`P_1`, a larger jump :math:`P_2(p) = P_2 / (1 + |\nabla I(p)| / \tau)`, smaller
across an image edge, so depth edges follow image edges and flat regions take their depth from
their path neighbours (a global, not a windowed, optimisation along each path).

The cost is normalised per pixel first, :math:`C' = (C - \min_d C) / (\bar C - \min_d C)`, so the
penalties are relative to each pixel's own contrast between scales (the whitened DP cost scales with
the image's texture). For speed the volume is block-averaged by ``factor`` before the scans, and
the resulting fractional scale index is brought back to full resolution bilinearly, then
guided-filtered with the image.

References
----------
H. Hirschmueller, "Stereo Processing by Semiglobal Matching and Mutual Information", TPAMI 2008.
"""

from __future__ import annotations

import numpy as np

__all__ = ["semi_global_paths", "semi_global_index"]


def semi_global_paths(cost: np.ndarray, guide: np.ndarray, p1: float, p2: float, tau: float) -> np.ndarray:
    """:math:`\\sum_r L_r` of a (S, H, W) cost over the four scan directions (module Notes), NumPy.

    ``guide`` (H, W) sets the edge-aware :math:`P_2`; ``p1 <= p2`` are in the cost's units.
    """
    cost = np.asarray(cost)
    if cost.ndim != 3 or guide.shape != cost.shape[1:]:
        raise ValueError(f"cost must be (S, H, W) over guide's (H, W); got {cost.shape} and {guide.shape}")
    if not (0 <= p1 <= p2) or not tau > 0:
        raise ValueError(f"expected 0 <= p1 <= p2 and tau > 0; got p1={p1}, p2={p2}, tau={tau}")
    gx = np.abs(np.diff(guide, axis=1, prepend=guide[:, :1]))
    gy = np.abs(np.diff(guide, axis=0, prepend=guide[:1, :]))
    total = np.zeros(cost.shape, dtype=np.float64)
    for axis, grad in ((2, gx), (1, gy)):
        for reverse in (False, True):
            c = np.moveaxis(cost, axis, 0)  # (N, S, M): scan index first
            g = np.moveaxis(grad, axis - 1, 0)  # (N, M)
            if reverse:
                c, g = c[::-1], g[::-1]
            out = np.empty(c.shape, dtype=np.float64)
            prev = c[0].astype(np.float64)
            out[0] = prev
            for i in range(1, c.shape[0]):
                m = prev.min(axis=0)
                shifted = np.full_like(prev, np.inf)
                shifted[:-1] = prev[1:]
                shifted[1:] = np.minimum(shifted[1:], prev[:-1])
                big = m + p2 / (1 + g[i] / tau)
                prev = c[i] + np.minimum(np.minimum(prev, shifted + p1), big[None, :]) - m[None, :]
                out[i] = prev
            if reverse:
                out = out[::-1]
            total += np.moveaxis(out, 0, axis)
    return total


def semi_global_index(cost: np.ndarray, guide: np.ndarray, *, p1: float, p2: float, tau: float, factor: int,
                      subscale_argmin, guided_filter) -> np.ndarray:
    """Fractional index of least semi-globally aggregated cost per pixel, at full resolution (module Notes).

    ``subscale_argmin(volume, xp)`` and ``guided_filter(guide, src, radius, eps)`` are
    :mod:`optics.dual_pixel.deblur`'s (passed in: this module sits below it).
    """
    from scipy import ndimage

    S, H, W = cost.shape
    f = int(factor)
    h, w = -(-H // f), -(-W // f)
    padded = np.pad(cost, ((0, 0), (0, h * f - H), (0, w * f - W)), mode="edge")
    small = padded.reshape(S, h, f, w, f).mean(axis=(2, 4))
    gpad = np.pad(guide, ((0, h * f - H), (0, w * f - W)), mode="edge")
    gsmall = gpad.reshape(h, f, w, f).mean(axis=(1, 3))
    low = small.min(axis=0, keepdims=True)
    norm = (small - low) / (small.mean(axis=0, keepdims=True) - low + np.finfo(np.float64).tiny)
    total = semi_global_paths(norm, gsmall, p1, p2, tau)
    index = subscale_argmin(total, np)
    # bilinear back to full resolution (pixel centres aligned), then snapped to the image's edges
    ys = (np.arange(H) + 0.5) / f - 0.5
    xs = (np.arange(W) + 0.5) / f - 0.5
    yy, xx = np.meshgrid(np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1), indexing="ij")
    full = ndimage.map_coordinates(index.astype(np.float64), [yy, xx], order=1, mode="nearest")
    out = guided_filter(guide.astype(np.float64), full, 8, 1e-3)
    return np.clip(out, 0, S - 1).astype(cost.dtype)
