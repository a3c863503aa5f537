r"""Layered deconvolution of a dual-pixel pair: the two-view Wiener filter and a total-variation prior.

Both views see the sharp image through the cell's PSF pair at the pixel's defocus,
:math:`L = x * K_L(s)`, :math:`R = x * K_R(s)`. With a defocus map, every pixel takes the layers of
the two scales next to its defocus (linear weights :math:`a_i(p)`), each layer deconvolved in the
cell's window, and the cells are blended with tent weights (:mod:`optics.dual_pixel._cells`).

``method='wiener'`` inverts each layer with the two-view Wiener filter

.. math:: \hat x_s = \frac{\overline{\hat K_L} \hat L + \overline{\hat K_R} \hat R}
          {|\hat K_L|^2 + |\hat K_R|^2 + \epsilon_w} .

``method='tv'`` minimises, in half-quadratic splitting (Krishnan and Fergus [1]; Geman and Yang),

.. math:: \sum_{v \in \{L, R\}} \| K_v x - v \|^2 + \epsilon \|x\|^2 + \lambda \|\nabla x\|_1 ,

alternating the auxiliary gradients :math:`w = \mathrm{shrink}(\nabla x, \lambda / \beta)` (soft
thresholding, anisotropic TV) with the quadratic step, which is diagonal in Fourier within each
layer and window,

.. math:: \hat x_s = \frac{\overline{\hat K_L} \hat L + \overline{\hat K_R} \hat R + \beta\, \widehat{\nabla^T w}}
          {|\hat K_L|^2 + |\hat K_R|^2 + \epsilon + \beta (|\hat G_x|^2 + |\hat G_y|^2)} ,

for an increasing sequence of :math:`\beta`, starting from the Wiener estimate. The gradients and
their shrinkage are taken on the composite image (every layer, every cell blended), so the prior
acts on the image one looks at, not on each layer apart; the quadratic step keeps the layered,
per-cell model. With :math:`\lambda` above every gradient the shrinkage gives :math:`w = 0`, and a step
is the Wiener filter with the regulariser :math:`\epsilon + \beta (|\hat G_x|^2 + |\hat G_y|^2)`.

References
----------
.. [1] D. Krishnan, R. Fergus, "Fast Image Deconvolution using Hyper-Laplacian Priors", NIPS 2009.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from .._backend import namespace
from ._cells import _cell_otfs, _map_windows, _squared_modulus, _window_of, _windows

__all__ = ["DECONVOLUTION_METHODS", "layered_deconvolution", "layer_stack", "composite_layers"]

#: The deconvolutions of :func:`layered_deconvolution`.
DECONVOLUTION_METHODS = ("wiener", "tv")


def _check_method_options(method, wiener_eps, tv_weight, tv_eps, tv_betas, centre_weight):
    if method not in DECONVOLUTION_METHODS:
        raise ValueError(f"method must be one of {DECONVOLUTION_METHODS}; got {method!r}")
    for name, value, zero in (("wiener_eps", wiener_eps, False), ("tv_weight", tv_weight, True),
                              ("tv_eps", tv_eps, False)):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < 0 or (value == 0 and not zero):
            raise ValueError(f"{name} must be a finite number {'>= 0' if zero else '> 0'}; got {value!r}")
    betas = tuple(tv_betas)
    if method == "tv" and (not betas or any(not (isinstance(b, numbers.Real) and math.isfinite(b) and b > 0)
                                            for b in betas)):
        raise ValueError(f"tv_betas must be a non-empty sequence of finite numbers > 0; got {tv_betas!r}")
    if centre_weight is not None and not (isinstance(centre_weight, numbers.Real) and not isinstance(centre_weight, bool)
                                          and math.isfinite(centre_weight)):
        raise ValueError(f"centre_weight must be a finite number or None (the grid's reference); got {centre_weight!r}")
    return betas


def _used_layers(loc, n_scales, xp):
    lo = int(math.floor(float(xp.min(loc))))
    hi = min(int(math.ceil(float(xp.max(loc)))), n_scales - 1)
    return range(max(lo, 0), hi + 1)


#: Layers per batch of transfer functions in :func:`layered_deconvolution` (the whole frame's windows use up to
#: 11 layers; batches of all of them made prepare 3x slower from page faults on the temporaries).
_LAYER_CHUNK = 2


def layered_deconvolution(left: Any, right: Any, psfs: Any, scales: Sequence[float], layer_index: Any, *,
                          method: str = "wiener", wiener_eps: float = 1.5e-2, tv_weight: float = 1e-3,
                          tv_eps: float = 1e-3, tv_betas: Sequence[float] = (4e-3, 6.4e-2),
                          centre_weight: Optional[float] = None, margin: int = 48, workers: int = -1,
                          windows: Any = None) -> Any:
    r"""Deconvolve a DP pair with a layer per pixel (module Notes).

    Parameters
    ----------
    left, right : (H, W) float32 or float64 NumPy or CuPy arrays
        The views, on the frame of ``psfs`` (checked by the caller, :func:`optics.dual_pixel.deblur.dual_pixel_deblur`).
    psfs : optics.dual_pixel.deblur.DualPixelPSFGrid
    scales : (S,) increasing sequence
    layer_index : (H, W) array
        Fractional index into ``scales`` per pixel, in ``[0, S - 1]``; the two layers next to it are
        blended linearly.
    method : {'wiener', 'tv'}
    wiener_eps : float > 0
        :math:`\epsilon_w` of the Wiener filter (and of the starting estimate of 'tv').
    tv_weight, tv_eps, tv_betas
        :math:`\lambda`, :math:`\epsilon` and the :math:`\beta` sequence of 'tv'.
    centre_weight : float, optional
        Reference point of each PSF pair (:meth:`DualPixelPSFGrid.pair`; default: the grid's ``reference``).
    margin, workers
        Context of each cell's window (pixels); threads over the windows (-1: every core).
    windows : optional
        ``(windows, n)`` of :func:`optics.dual_pixel._cells._windows` for these views, when the caller has them.

    Returns
    -------
    (H, W) array in the views' dtype and library.
    """
    betas = _check_method_options(method, wiener_eps, tv_weight, tv_eps, tv_betas, centre_weight)
    be = namespace(left, right)
    xp, fft = be.xp, be.fft
    s = np.asarray(scales, dtype=np.float64)
    if windows is None:
        windows = _windows(left, right, psfs, int(margin), be, workers)
    wins, n = windows
    cdt = np.complex64 if left.dtype == np.float32 else np.complex128
    H, W = left.shape
    idx = layer_index

    def blend(parts):
        out = xp.zeros((H, W), dtype=left.dtype)
        weight = xp.zeros((H, W), dtype=left.dtype)
        for w, part in parts:
            y0, y1, x0, x1 = w.box
            out[y0:y1, x0:x1] += part
            weight[y0:y1, x0:x1] += w.tent
        return out / weight

    # per window and used layer: weights, numerator K^H y and |K|^2 (kept for the TV iterations)
    def prepare(w):
        y0, y1, x0, x1 = w.box
        loc = idx[y0:y1, x0:x1]
        used, weights = [], []
        for i in _used_layers(loc, len(s), xp):
            lw = xp.clip(1 - xp.abs(loc - i), 0, 1).astype(left.dtype, copy=False)
            if bool(xp.any(lw > 0)):
                used.append(i)
                weights.append(lw)
        if not used:
            return []
        out = []
        for j0 in range(0, len(used), _LAYER_CHUNK):  # a few layers at a time: small temporaries, warm caches
            KL, KR = _cell_otfs(psfs, w.row, w.col, s[used[j0:j0 + _LAYER_CHUNK]], n, be, cdt, centre_weight)
            den = _squared_modulus(KL, KR, xp)
            num = xp.conj(KL)  # in place from here
            num *= w.FL
            KR = xp.conj(KR)
            KR *= w.FR
            num += KR
            out += [(lw, num[j], den[j]) for j, lw in enumerate(weights[j0:j0 + _LAYER_CHUNK])]
        return out

    def wiener(w, layers):
        acc = xp.zeros((w.box[1] - w.box[0], w.box[3] - w.box[2]), dtype=left.dtype)
        for lw, num, den in layers:
            acc += lw * fft.irfft2(num * (1 / (den + wiener_eps)), s=(n, n))[w.inner]  # real reciprocal: fast
        return w.tent * acc

    prepared = [p for _, p in _map_windows(prepare, wins, workers, be)]
    pairs = list(zip(wins, prepared))
    x = blend((item[0], part) for item, part in _map_windows(lambda item: wiener(*item), pairs, workers, be))
    if method == "wiener":
        return x

    # the squared modulus of the forward differences' transfer functions on the n x n window grid
    fy = np.exp(-2j * np.pi * np.fft.fftfreq(n))[:, None]
    fx = np.exp(-2j * np.pi * np.fft.rfftfreq(n))[None, :]
    grad2 = xp.asarray((np.abs(fy - 1) ** 2 + np.abs(fx - 1) ** 2).astype(left.dtype))
    c = psfs.cell
    pad = c - c // 2 + int(margin)  # the geometry of _windows
    for beta in betas:
        # w-step: soft-thresholded forward differences of the composite (last difference 0: Neumann border)
        gx = xp.zeros_like(x)
        gy = xp.zeros_like(x)
        gx[:, :-1] = x[:, 1:] - x[:, :-1]
        gy[:-1, :] = x[1:, :] - x[:-1, :]
        t = tv_weight / beta
        wx = xp.sign(gx) * xp.maximum(xp.abs(gx) - t, 0)
        wy = xp.sign(gy) * xp.maximum(xp.abs(gy) - t, 0)
        # D^T w: the adjoint of the forward differences with that border
        div = xp.zeros_like(x)
        div[:, 1:] += wx[:, :-1]
        div[:, :-1] -= wx[:, :-1]
        div[1:, :] += wy[:-1, :]
        div[:-1, :] -= wy[:-1, :]
        padded = xp.pad(div.astype(left.dtype), pad, mode="symmetric")

        def step(item, beta=beta, padded=padded):
            w, layers = item
            G = fft.rfft2(_window_of(padded, w.row, w.col, c, int(margin), pad, n, xp))
            acc = xp.zeros((w.box[1] - w.box[0], w.box[3] - w.box[2]), dtype=left.dtype)
            for lw, num, den in layers:
                X = (num + beta * G) * (1 / (den + tv_eps + beta * grad2))
                acc += lw * fft.irfft2(X, s=(n, n))[w.inner]
            return w.tent * acc

        x = blend((item[0], part) for item, part in _map_windows(step, pairs, workers, be))
    return x


def composite_layers(stack: Any, layer_index: Any) -> Any:
    """Blend a (S, H, W) stack of deconvolved layers pixel by pixel: linear weights between the two layers
    next to ``layer_index`` (fractional, clipped to ``[0, S - 1]``), as :func:`layered_deconvolution` does."""
    be = namespace(stack)
    xp = be.xp
    S = stack.shape[0]
    idx = xp.clip(layer_index, 0, S - 1)
    lo = xp.floor(idx).astype(xp.int64)
    hi = xp.minimum(lo + 1, S - 1)
    f = (idx - lo).astype(stack.dtype)
    a = xp.take_along_axis(stack, lo[None], axis=0)[0]
    b = xp.take_along_axis(stack, hi[None], axis=0)[0]
    return (1 - f) * a + f * b


def layer_stack(left: Any, right: Any, psfs: Any, scales: Sequence[float], **options) -> Any:
    """Every scale's deconvolution over the whole frame, (S, H, W): :func:`layered_deconvolution` with a
    constant map per scale (``options`` as there). The oracle diagnostic's input
    (``python -m benchmarks.dual_pixel_oracle``)."""
    be = namespace(left, right)
    margin = int(options.get("margin", 48))
    windows = _windows(left, right, psfs, margin, be)
    out = be.xp.empty((len(scales),) + tuple(left.shape), dtype=left.dtype)
    for i in range(len(scales)):
        index = be.xp.full(left.shape, float(i), dtype=left.dtype)
        out[i] = layered_deconvolution(left, right, psfs, scales, index, windows=windows, **options)
    return out
