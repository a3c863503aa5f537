r"""The defocus map of a dual-pixel (DP) pair: a whitened cross-consistency cost, aggregated, its argmin.

A DP sensor records two views :math:`L = x * K_L(s)` and :math:`R = x * K_R(s)` of the sharp
image :math:`x`, blurred by a left and a right PSF that depend on the signed defocus :math:`s`
(and on the position in the frame). Whatever :math:`x` is, the true defocus makes the two views
*cross-consistent*:

.. math:: L * K_R(s) - R * K_L(s) = x * (K_L * K_R - K_R * K_L) = 0 .

:func:`dual_pixel_defocus_map` scores every candidate scale :math:`s` by this residual, whitened
per frequency so that sensor noise weighs the same at every scale,

.. math:: E_s = \left| F^{-1}\!\left[\frac{\hat L \hat K_R(s) - \hat R \hat K_L(s)}
          {\sqrt{|\hat K_L(s)|^2 + |\hat K_R(s)|^2 + \epsilon_c}}\right] \right|^2 ,

aggregates each cost slice with a guided filter steered by the image itself (cost-volume
filtering, Hosni et al. [2]: depth edges follow image edges), and picks the scale of least
cost per pixel with a parabolic sub-scale refinement. :func:`optics.dual_pixel.pipeline.dual_pixel_deblur`
then deconvolves the views with this map.

NumPy and CuPy arrays run through one code path (``optics._backend``); the small kernel work
(rescaling, transfer functions) is done with NumPy and moved to the device.

References
----------
.. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas,
   R. Garg, "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021
   (code: github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring, ``code/util.py``).
.. [2] A. Hosni, C. Rhemann, M. Bleyer, C. Rother, M. Gelautz, "Fast Cost-Volume Filtering for
   Visual Correspondence and Beyond", TPAMI 2013.
.. [3] K. He, J. Sun, X. Tang, "Guided Image Filtering", TPAMI 2013.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import scipy.fft
import scipy.ndimage

from .._backend import namespace, to_numpy
from ._cells import _cell_otfs, _fast_len, _map_windows, _squared_modulus, _windows
from .defaults import (DEFAULT_SCALES, DEFAULTS, SGM_OPTIONS, _check_aggregation, _check_map_step, _check_options,
                       _check_positive, _check_scales, _check_workers)
from .psf_grid import DualPixelPSFGrid


def _ndimage(backend):
    if backend.name == "cupy":
        import cupyx.scipy.ndimage as nd

        return nd
    return scipy.ndimage


def guided_filter(guide: Any, src: Any, radius: int, eps: float) -> Any:
    r"""He et al.'s guided filter of ``src`` (..., H, W) steered by a grey ``guide`` (H, W).

    Per box window :math:`\omega` of side ``2 radius + 1``: :math:`q = \bar a\, I + \bar b`,
    :math:`a = \mathrm{cov}_\omega(I, p) / (\mathrm{var}_\omega(I) + \epsilon)`,
    :math:`b = \bar p - a \bar I` (mirror boundary). Leading axes of ``src`` are filtered one by one.
    """
    be = namespace(guide, src)
    nd = _ndimage(be)
    size = 2 * int(radius) + 1

    def box(x):
        return nd.uniform_filter(x, size, mode="reflect")

    I = guide
    mI = box(I)
    vI = box(I * I) - mI * mI
    flat = src.reshape((-1,) + src.shape[-2:])
    out = be.xp.empty_like(flat)
    for i in range(flat.shape[0]):
        p = flat[i]
        mp = box(p)
        a = (box(I * p) - mI * mp) / (vI + eps)
        b = mp - a * mI
        out[i] = box(a) * I + box(b)
    return out.reshape(src.shape)


def _check_views(left, right, psfs):
    be = namespace(left, right)
    if be.name == "torch":
        raise TypeError("left and right must be NumPy or CuPy arrays; got torch tensors")
    for name, v in (("left", left), ("right", right)):
        if v.ndim != 2:
            raise ValueError(f"{name} must be a single-channel (H, W) image; got shape {tuple(v.shape)}")
        if v.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64; got {v.dtype}")
        if not bool(be.xp.all(be.xp.isfinite(v))):
            raise ValueError(f"{name} has NaN or inf values")
    if left.shape != right.shape or left.dtype != right.dtype:
        raise ValueError(f"left and right must have one shape and dtype; got {tuple(left.shape)} {left.dtype} "
                         f"and {tuple(right.shape)} {right.dtype}")
    if not isinstance(psfs, DualPixelPSFGrid):
        raise TypeError(f"psfs must be an optics.DualPixelPSFGrid (DualPixelPSFGrid.from_calibration or "
                        f".from_field); got {type(psfs).__name__}")
    if tuple(left.shape) != psfs.frame:
        raise ValueError(f"left and right are {left.shape[0]}x{left.shape[1]} but psfs cover a "
                         f"{psfs.frame[0]}x{psfs.frame[1]} frame ({psfs.grid[0]}x{psfs.grid[1]} cells of "
                         f"{psfs.cell} px); crop the views to the calibrated frame")
    return be


def dual_pixel_cost_volume(left: Any, right: Any, psfs: DualPixelPSFGrid, scales: Optional[Sequence[float]] = None,
                           *, cost_eps: float = DEFAULTS["cost_eps"], margin: int = DEFAULTS["margin"],
                           workers: int = -1, step: int = 1, _windows_out: Optional[list] = None) -> Any:
    """Whitened DP cross-consistency cost :math:`E_s` (module Notes) of every scale, unaggregated.

    ``step`` 1: shape (S, H, W), every pixel; each cell's window spans two cells around its centre and
    the windows are blended with tents (:mod:`optics.dual_pixel._cells`), so the cost has no seam.
    ``step`` > 1: shape (S, ceil(H / step), ceil(W / step)), the mean of :math:`E_s` over each
    ``step`` x ``step`` block (the last ones cut by the frame); each cell is computed in a window of
    the cell plus ``margin`` with its own PSF pair, without tents: about 2.7x fewer FFT samples, and
    the aggregation (:func:`aggregate_cost`, a Gaussian of tens of pixels) smooths the cells' borders.
    ``workers``: threads over the cells' windows (NumPy; -1: every core); the result does not depend on it.
    """
    _check_workers(workers)
    _check_map_step(step)
    be = _check_views(left, right, psfs)
    s = _check_scales(source_scales(psfs, scales))
    _check_positive(cost_eps, "cost_eps")
    if step > 1:
        return _cell_cost_blocks(left, right, psfs, s, float(cost_eps), int(margin), int(step), workers, be)
    xp, fft = be.xp, be.fft
    windows, n = _windows(left, right, psfs, int(margin), be)
    if _windows_out is not None:
        _windows_out[:] = [windows, n]
    cdt = np.complex64 if left.dtype == np.float32 else np.complex128
    H, W = left.shape
    cost = xp.zeros((len(s),) + (H, W), dtype=left.dtype)
    weight = xp.zeros((H, W), dtype=left.dtype)

    def one(w):
        # the cost ignores a common shift of the pair: centre weight 0.5
        KL, KR = _cell_otfs(psfs, w.row, w.col, s, n, be, cdt, 0.5)
        q = _whitened_residual(w.FL, w.FR, KL, KR, cost_eps, xp)
        part = xp.empty((len(s), w.box[1] - w.box[0], w.box[3] - w.box[2]), dtype=left.dtype)
        for i in range(len(s)):
            e = fft.irfft2(q[i], s=(n, n))[w.inner]
            part[i] = w.tent * e * e
        return part

    for w, part in _map_windows(one, windows, workers, be):
        y0, y1, x0, x1 = w.box
        weight[y0:y1, x0:x1] += w.tent
        cost[:, y0:y1, x0:x1] += part
    return cost / weight


def _whitened_residual(FL, FR, KL, KR, cost_eps, xp):
    r""":math:`(\hat L \hat K_R - \hat R \hat K_L) / \sqrt{|\hat K_L|^2 + |\hat K_R|^2 + \epsilon_c}` (module Notes)."""
    inv = _squared_modulus(KL, KR, xp)
    inv += cost_eps
    xp.sqrt(inv, out=inv)
    xp.divide(1, inv, out=inv)  # a real reciprocal: NumPy's complex division is 5x slower
    q = FL * KR
    q -= FR * KL
    q *= inv
    return q


#: Scales per batch of transfer functions in :func:`_cell_cost_blocks`: a third of the 21 keeps the batch's
#: temporaries small (measured on 2 cores: 0.89 s against 0.93 s for all 21 at once, scene 010's cost).
_SCALE_CHUNK = 7


def _block_starts(start: int, stop: int, step: int) -> np.ndarray:
    """Offsets (from ``start``) where the blocks of ``step`` px of the frame begin within [start, stop), ``start`` first."""
    first = -(-start // step) * step
    return np.unique(np.r_[0, np.arange(first, stop, step) - start]).astype(np.intp)


def _block_counts(H: int, W: int, step: int) -> np.ndarray:
    """Pixels in each ``step`` x ``step`` block of an (H, W) frame (the last ones cut by the frame)."""
    return (np.minimum(step, H - np.arange(0, H, step))[:, None] * np.minimum(step, W - np.arange(0, W, step))[None, :])


def _block_sums(a, starts, axis: int, xp):
    """Sums of ``a`` along ``axis`` over the segments that begin at ``starts`` (the last one runs to the end)."""
    size = int(a.shape[axis])
    if starts.size > 1 and size % starts.size == 0 and np.array_equal(starts, np.arange(starts.size) * (size // starts.size)):
        shape = a.shape[:axis] + (starts.size, size // starts.size) + a.shape[axis + 1:]
        return a.reshape(shape).sum(axis=axis + 1, dtype=xp.float64).astype(a.dtype)  # equal blocks
    total = xp.cumsum(a, axis=axis, dtype=xp.float64)
    ends = np.r_[starts[1:], a.shape[axis]] - 1
    at = xp.take(total, xp.asarray(ends), axis=axis)
    before = xp.take(total, xp.asarray(np.maximum(starts - 1, 0)), axis=axis)
    mask = xp.asarray((starts > 0).astype(np.float64)).reshape([-1 if i == axis else 1 for i in range(a.ndim)])
    return (at - before * mask).astype(a.dtype)


def _cell_cost_blocks(left, right, psfs, s, cost_eps, margin, step, workers, be):
    """:func:`dual_pixel_cost_volume` with ``step`` > 1: each cell in its own window, block means of ``step`` px."""
    xp, fft = be.xp, be.fft
    H, W = left.shape
    c = psfs.cell
    rows, cols = psfs.grid
    n = _fast_len(c + 2 * margin)
    extra = n - c - 2 * margin
    widths = ((margin, margin + extra), (margin, margin + extra))
    Lp = xp.pad(left, widths, mode="symmetric")
    Rp = xp.pad(right, widths, mode="symmetric")
    cdt = np.complex64 if left.dtype == np.float32 else np.complex128
    h, w = -(-H // step), -(-W // step)
    sums = xp.zeros((len(s), h, w), dtype=left.dtype)

    def one(cell):
        r, col = cell
        y0, x0 = r * c, col * c
        y1, x1 = min(y0 + c, H), min(x0 + c, W)
        FL = fft.rfft2(Lp[y0:y0 + n, x0:x0 + n])
        FR = fft.rfft2(Rp[y0:y0 + n, x0:x0 + n])
        e = xp.empty((len(s), y1 - y0, x1 - x0), dtype=left.dtype)
        for i0 in range(0, len(s), _SCALE_CHUNK):  # a few scales at a time: their spectra stay in cache
            chunk = s[i0:i0 + _SCALE_CHUNK]
            KL, KR = _cell_otfs(psfs, r, col, chunk, n, be, cdt, 0.5)
            q = _whitened_residual(FL, FR, KL, KR, cost_eps, xp)
            for i in range(len(chunk)):  # one image at a time: scipy's batched irfft2 is about 2x slower per image
                e[i0 + i] = fft.irfft2(q[i], s=(n, n))[margin:margin + y1 - y0, margin:margin + x1 - x0]
        e *= e
        part = _block_sums(_block_sums(e, _block_starts(y0, y1, step), 1, xp), _block_starts(x0, x1, step), 2, xp)
        return y0 // step, x0 // step, part

    cells = [(r, col) for r in range(rows) for col in range(cols)]
    for _, (by0, bx0, part) in _map_windows(one, cells, workers, be):
        sums[:, by0:by0 + part.shape[1], bx0:bx0 + part.shape[2]] += part
    return sums / xp.asarray(_block_counts(H, W, step).astype(left.dtype))


def _subscale_argmin(cost, xp):
    """Index of least cost per pixel, refined by the vertex of a parabola through three neighbours."""
    S = cost.shape[0]
    i = xp.argmin(cost, axis=0)
    ic = xp.clip(i, 1, S - 2)
    a = xp.take_along_axis(cost, (ic - 1)[None], axis=0)[0]
    b = xp.take_along_axis(cost, ic[None], axis=0)[0]
    d = xp.take_along_axis(cost, (ic + 1)[None], axis=0)[0]
    den = a - 2 * b + d
    delta = xp.where(den > 0, 0.5 * (a - d) / xp.where(den > 0, den, 1), 0)
    delta = xp.clip(delta, -0.5, 0.5)
    return xp.where(i == ic, ic + delta, i).astype(cost.dtype)


@dataclass
class DualPixelDeblurResult:
    """Output of :func:`dual_pixel_deblur` / :func:`dual_pixel_defocus_map`.

    Attributes
    ----------
    image : (H, W) array or None
        All-in-focus estimate (same dtype and library as the views; not clipped).
    defocus : (H, W) array
        Signed defocus per pixel, in units of the calibration defocus (the ``scales`` axis).
    confidence : (H, W) array in [0, 1]
        ``1 - min_s E_s / mean_s E_s`` of the aggregated cost: 0 where the cost is flat
        (no texture, any scale fits), near 1 where one scale explains the views much better.
    scales : (S,) ndarray
    """

    image: Any
    defocus: Any
    confidence: Any
    scales: np.ndarray = field(repr=False)
    layers: Any = field(default=None, repr=False)
    in_focus: Any = field(default=None, repr=False)


def aggregate_cost(cost: Any, guide: Any, *, smooth: float, radius: int, guide_eps: float) -> Any:
    """Cost-volume filtering: each slice Gaussian-smoothed (``smooth`` px), then guided by ``guide``.

    The Gaussian gathers evidence from textured neighbours into flat regions (a DP pair says
    nothing about defocus where the scene has no texture); the guided filter (:func:`guided_filter`)
    then snaps the cost, and so the defocus map, to the image's edges.
    """
    be = namespace(cost, guide)
    if smooth > 0:
        cost = _gaussian_slices(cost, float(smooth), be)
    return guided_filter(guide, cost, int(radius), float(guide_eps))


def _gaussian_slices(volume, sigma: float, backend, workers: int = -1):
    """``scipy.ndimage.gaussian_filter(slice, sigma, mode='reflect')`` of every (H, W) slice of ``volume``.

    NumPy: the same sampled kernel (truncated at 4 sigma, unit sum) applied along each axis of the
    mirror-padded volume as a product of FFTs (``scipy.fft`` on ``workers`` threads, every slice at
    once), equal to ndimage's direct sum up to rounding and about 10x faster at sigma 36. The FFT
    length only has to hold the padded axis: the circular wrap lands in the part the 'valid'
    convolution discards. CuPy: ``cupyx.scipy.ndimage``.
    """
    if backend.name != "numpy":
        nd = _ndimage(backend)
        out = backend.xp.empty_like(volume)
        for i in range(volume.shape[0]):
            out[i] = nd.gaussian_filter(volume[i], sigma, mode="reflect")
        return out
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    threads = (os.cpu_count() or 1) if workers == -1 else int(workers)
    out = volume
    for axis in (1, 2):
        widths = [(0, 0)] * 3
        widths[axis] = (r, r)
        padded = np.pad(out, widths, mode="symmetric")
        m = padded.shape[axis]
        n = scipy.fft.next_fast_len(m, real=True)
        kf = scipy.fft.rfft(k, n)
        shape = [1, 1, 1]
        shape[axis] = kf.size
        spec = scipy.fft.rfft(padded, n, axis=axis, workers=threads)
        spec *= kf.reshape(shape).astype(spec.dtype)
        full = scipy.fft.irfft(spec, n, axis=axis, workers=threads)
        keep = [slice(None)] * 3
        keep[axis] = slice(2 * r, m)  # the 'valid' part: outputs whose window lies inside the padded axis
        out = full[tuple(keep)]
    return np.ascontiguousarray(out, dtype=volume.dtype)


def source_scales(psfs: Any, scales: Optional[Sequence[float]] = None) -> Sequence[float]:
    """``scales``, or when None the candidate scales of the PSF source ``psfs`` (its ``scales``, else
    :data:`optics.dual_pixel.defaults.DEFAULT_SCALES`)."""
    if scales is not None:
        return scales
    own = getattr(psfs, "scales", None)
    return DEFAULT_SCALES if own is None else own


def _defocus(left, right, psfs, s, o, windows_out=None):
    be = namespace(left)
    xp = be.xp
    step = int(o.get("map_step", 1))
    sgm = o.get("aggregation", "guided") == "sgm"
    if sgm:  # the scans run on the full-resolution cost
        step = 1
    cost = dual_pixel_cost_volume(left, right, psfs, s, cost_eps=o["cost_eps"], margin=o["margin"],
                                  workers=o["workers"], step=step, _windows_out=windows_out)
    guide_raw = (left + right) / 2
    guide = guide_raw / max(float(xp.max(guide_raw)), float(np.finfo(np.float32).tiny))
    if sgm:
        if be.name != "numpy":
            raise ValueError("aggregation='sgm' runs on NumPy arrays only; use aggregation='guided' on the GPU")
        from .aggregation import semi_global_index

        agg = _gaussian_slices(cost, SGM_OPTIONS["smooth"], be)
        idx = semi_global_index(agg, guide, p1=SGM_OPTIONS["p1"], p2=SGM_OPTIONS["p2"], tau=SGM_OPTIONS["tau"],
                                factor=SGM_OPTIONS["factor"], subscale_argmin=_subscale_argmin,
                                guided_filter=guided_filter)
    else:
        small = block_mean(guide, step, xp) if step > 1 else guide
        agg = aggregate_cost(cost, small, smooth=o["smooth"] / step, radius=max(1, round(o["radius"] / step)),
                             guide_eps=o["guide_eps"])
        idx = _subscale_argmin(agg, xp)
    mean = xp.mean(agg, axis=0)
    # a floor at the views' rounding level: a cost that is only rounding noise (no texture) gives 0, not ~1
    floor = float(np.finfo(left.dtype).eps) * float(xp.mean(guide_raw)) ** 2 + float(np.finfo(left.dtype).tiny)
    least = xp.min(agg, axis=0)
    conf = xp.clip((mean - least) / (mean + floor), 0, 1).astype(left.dtype)
    zero = np.flatnonzero(s == 0)
    if zero.size:  # how much better the best scale explains the views than the in-focus pair (module notes)
        e0 = agg[int(zero[0])]
        evidence = xp.clip((e0 - least) / (e0 + floor), 0, 1).astype(left.dtype)
    else:
        evidence = None
    if idx.shape != left.shape:  # the maps of the coarse grid, bilinear to every pixel
        idx, conf = (upsample_bilinear(a, step, left.shape) for a in (idx, conf))
        evidence = None if evidence is None else upsample_bilinear(evidence, step, left.shape)
    defocus = xp.asarray(np.interp(to_numpy(idx).ravel(), np.arange(len(s)), s).reshape(idx.shape).astype(left.dtype))
    return agg, idx, defocus, conf, evidence


def block_mean(image: Any, step: int, xp=None) -> Any:
    """Mean of (..., H, W) ``image`` over blocks of ``step`` x ``step`` px: (..., ceil(H / step), ceil(W / step)),
    the last blocks cut by the frame (their mean is over the pixels they hold)."""
    xp = namespace(image).xp if xp is None else xp
    H, W = image.shape[-2:]
    by, bx = _block_starts(0, H, step), _block_starts(0, W, step)
    sums = _block_sums(_block_sums(image, by, image.ndim - 2, xp), bx, image.ndim - 1, xp)
    return sums / xp.asarray(_block_counts(H, W, step).astype(image.dtype))


def upsample_bilinear(grid: Any, step: int, shape: tuple) -> Any:
    """(h, w) values at the centres of ``step``-px blocks to every pixel of ``shape`` (H, W), bilinear, separable;
    constant beyond the outermost block centres (the inverse of :func:`block_mean`'s geometry)."""
    xp = namespace(grid).xp
    out = grid
    for axis, size in enumerate(shape):
        m = out.shape[axis]
        centre = np.clip((np.arange(size) + 0.5) / step - 0.5, 0, m - 1)
        i0 = np.floor(centre).astype(np.intp)
        i1 = np.minimum(i0 + 1, m - 1)
        t = (centre - i0).astype(grid.dtype)
        t = t[:, None] if axis == 0 else t[None, :]
        a, b = xp.take(out, xp.asarray(i0), axis=axis), xp.take(out, xp.asarray(i1), axis=axis)
        out = a + xp.asarray(t) * (b - a)
    return out.astype(grid.dtype)


def dual_pixel_defocus_map(left: Any, right: Any, psfs: DualPixelPSFGrid, scales: Optional[Sequence[float]] = None,
                           *, cost_eps: float = DEFAULTS["cost_eps"], smooth: float = DEFAULTS["smooth"], radius: int = DEFAULTS["radius"],
                           guide_eps: float = DEFAULTS["guide_eps"], margin: int = DEFAULTS["margin"],
                           aggregation: str = DEFAULTS["aggregation"], map_step: int = DEFAULTS["map_step"],
                           workers: int = -1) -> DualPixelDeblurResult:
    r"""Signed defocus map of a DP pair, edge-aware (``image`` of the result is None).

    Parameters
    ----------
    left, right : (H, W) float32 or float64 NumPy or CuPy arrays
        The two views, linear, on one scale (vignetting corrected), the frame of ``psfs``.
    psfs : DualPixelPSFGrid
        Calibrated kernels (:meth:`DualPixelPSFGrid.from_calibration`) or a fitted field
        (:meth:`DualPixelPSFGrid.from_field`, e.g. of :func:`optics.dual_pixel.pixel4.pixel4_dual_pixel_field`).
    scales : increasing sequence of nonzero floats
        Candidate defocus levels (x the calibration defocus; negative = other side of focus).
    cost_eps : float > 0
        Whitening floor :math:`\epsilon_c`.
    smooth, radius, guide_eps
        Cost aggregation (:func:`aggregate_cost`): Gaussian sigma (pixels), then the guided
        filter's window radius (pixels) and regulariser; the guide is the mean of the views,
        scaled to a maximum of 1.
    margin : int
        Context in pixels around each two-cell window.
    aggregation : {'guided', 'sgm'}
        'guided': the cost-volume filtering above. 'sgm': semi-global scans of the cost
        (:mod:`optics.dual_pixel.aggregation`, :data:`SGM_OPTIONS`; NumPy only), a global optimisation
        along four paths; ``smooth``, ``radius`` and ``guide_eps`` are then unused.
    map_step : int
        The cost and its aggregation run on a grid of ``map_step`` px (:func:`dual_pixel_cost_volume`;
        ``smooth`` and ``radius`` scaled by ``1 / map_step``); the maps are then bilinear to every pixel.
        1: every pixel (the path before issue 33, about 2x slower for the map; same PSNR on the 17 Pixel 4
        scenes within 0.005 dB, docs/benchmarks.md). 'sgm' always runs at 1.
    workers : int
        Threads over the windows (NumPy arrays; -1: every core). Results do not depend on it.

    Returns
    -------
    DualPixelDeblurResult with ``defocus`` and ``confidence``.
    """
    _check_options(radius, margin, smooth, guide_eps, cost_eps, 1.0)
    s = _check_scales(source_scales(psfs, scales))
    _check_aggregation(aggregation)
    _check_map_step(map_step)
    o = dict(cost_eps=cost_eps, smooth=smooth, radius=radius, guide_eps=guide_eps, margin=margin, workers=workers,
             aggregation=aggregation, map_step=map_step)
    _, _, defocus, conf, _ = _defocus(left, right, psfs, s, o)
    return DualPixelDeblurResult(None, defocus, conf, s)
