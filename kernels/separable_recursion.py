"""Compute kernels for the separable 3-tap recursion of the RKR blur (NRKNet Eq. 4-5).

Operator
--------
For an image ``x`` of shape ``(C, H, W)``, coefficient maps ``gamma`` of shape ``(J, Cg, H, W)``
(``Cg`` = 1: shared by the channels, or ``C``) and step filters ``taps`` of shape
``(J - 1, Ct, 3)`` (``Ct`` = 1 or ``C``),

.. math::

    x_1 = x, \\qquad x_{j+1} = S_j x_j, \\qquad
    y = \\sum_{j=1}^{J} \\Gamma_j \\odot x_j,

where one step ``S_j`` filters every row (along W) and then every column (along H) with the
3-tap true convolution ``out[i] = t_0 x[i + 1] + t_1 x[i] + t_2 x[i - 1]`` (``t = taps[j - 1]``),
extending the signal by one sample per side first:

``boundary = 0`` ("zero")
    ``x[-1] = x[n] = 0`` at every step (so values pushed outside the image by one step are lost
    to the next: pad the image with ``J - 1`` zeros first, as :func:`optics.operators.rkr.rkr_blur` does,
    to obtain exactly ``x (x) A_j`` with zero boundary);
``boundary = 1`` ("reflect", whole-sample mirror)
    ``x[-1] = x[1]``, ``x[n] = x[n - 2]`` (needs ``n >= 2``);
``boundary = 2`` ("symmetric", half-sample mirror)
    ``x[-1] = x[0]``, ``x[n] = x[n - 1]``.

This is exactly :func:`optics.operators.rkr.rkr_blur` (channel-first). The adjoint is evaluated in Horner
form ``r = Gamma_J y``; ``r = S_j^T r + Gamma_j y`` for ``j = J - 1, ..., 1``, with
``S_j^T`` = (row pass)^T after (column pass)^T, each 1-D transpose written out in closed form:

.. math::

    z[m] = t_0 g[m - 1] + t_1 g[m] + t_2 g[m + 1]
           + [m = e(n)]\\, t_0 g[n - 1] + [m = e(-1)]\\, t_2 g[0],

where ``e(-1)``, ``e(n)`` are the samples the padding copies (no term for zero padding) and
out-of-range ``g`` are zero.

Implementations: ``*_naive`` (Python loops with ``numpy.pad``; the naive adjoint is the transpose
of the naive forward's dense matrix), ``*_numba`` (CPU, parallel over rows) and ``*_cupy`` (GPU,
CuPy elementwise kernels). Cost: ``6 (J - 1) + J`` multiply-adds per pixel and channel.

References
----------
.. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
   Defocus Deblurring", CVPR 2023, Eq. 4-5.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = [
    "BOUNDARY_CODES",
    "recursive_blur_naive",
    "recursive_blur_adjoint_naive",
    "recursive_blur_numba",
    "recursive_blur_adjoint_numba",
    "recursive_blur_cupy",
    "recursive_blur_adjoint_cupy",
]

#: Integer code of each boundary extension understood by the compiled kernels.
BOUNDARY_CODES = {"zero": 0, "reflect": 1, "symmetric": 2}


def _ends(n: int, code: int) -> tuple[int, int]:
    """Indices copied into positions -1 and n (``-1`` for a zero sample)."""
    if code == 0:
        return -1, -1
    if code == 1:
        return 1, n - 2
    return 0, n - 1


def _check(x: Any, gamma: Any, taps: Any, boundary: str) -> int:
    if boundary not in BOUNDARY_CODES:
        raise ValueError(f"boundary must be one of {tuple(BOUNDARY_CODES)}; got {boundary!r}")
    if x.ndim != 3:
        raise ValueError(f"x must be (C, H, W); got shape {tuple(x.shape)}")
    c, h, w = (int(s) for s in x.shape)
    if gamma.ndim != 4 or tuple(gamma.shape[2:]) != (h, w) or int(gamma.shape[1]) not in (1, c):
        raise ValueError(f"gamma must be (J, 1 or C, H, W) with (H, W) = {(h, w)}; got {tuple(gamma.shape)}")
    if taps.ndim != 3 or int(taps.shape[2]) != 3 or int(taps.shape[1]) not in (1, c):
        raise ValueError(f"taps must be (J - 1, 1 or C, 3); got {tuple(taps.shape)}")
    if int(gamma.shape[0]) != int(taps.shape[0]) + 1:
        raise ValueError(
            f"gamma must hold J = taps.shape[0] + 1 = {int(taps.shape[0]) + 1} maps; got {int(gamma.shape[0])}"
        )
    code = BOUNDARY_CODES[boundary]
    if code == 1 and (h < 2 or w < 2):
        raise ValueError(f"boundary 'reflect' needs at least 2x2 pixels; got {(h, w)}")
    return code


# ---------------------------------------------------------------------------------------------
# naive twins
# ---------------------------------------------------------------------------------------------
_NP_MODE = {0: "constant", 1: "reflect", 2: "symmetric"}


def _step_naive(x: np.ndarray, t: np.ndarray, code: int) -> np.ndarray:
    """One step (rows, then columns) of a single (H, W) channel by explicit loops."""
    h, w = x.shape
    p = np.pad(x, ((0, 0), (1, 1)), mode=_NP_MODE[code])
    rows = np.empty_like(x)
    for r in range(h):
        for i in range(w):
            rows[r, i] = t[0] * p[r, i + 2] + t[1] * p[r, i + 1] + t[2] * p[r, i]
    p = np.pad(rows, ((1, 1), (0, 0)), mode=_NP_MODE[code])
    out = np.empty_like(x)
    for r in range(h):
        for i in range(w):
            out[r, i] = t[0] * p[r + 2, i] + t[1] * p[r + 1, i] + t[2] * p[r, i]
    return out


def recursive_blur_naive(x: np.ndarray, gamma: np.ndarray, taps: np.ndarray, boundary: str = "zero") -> np.ndarray:
    """Reference ``sum_j gamma_j * (x (x) A_j)`` by explicit loops (``x`` (C, H, W))."""
    code = _check(x, gamma, taps, boundary)
    out = np.zeros(x.shape, dtype=np.float64)
    for c in range(x.shape[0]):
        cur = x[c].astype(np.float64)
        out[c] += gamma[0, min(c, gamma.shape[1] - 1)] * cur
        for j in range(taps.shape[0]):
            cur = _step_naive(cur, taps[j, min(c, taps.shape[1] - 1)].astype(np.float64), code)
            out[c] += gamma[j + 1, min(c, gamma.shape[1] - 1)] * cur
    return out.astype(x.dtype)


def recursive_blur_adjoint_naive(
    y: np.ndarray, gamma: np.ndarray, taps: np.ndarray, boundary: str = "zero"
) -> np.ndarray:
    """Reference adjoint: the transpose of the dense matrix of :func:`recursive_blur_naive`.

    Cost grows as ``(C H W)^2``: for tiny test images only.
    """
    _check(y, gamma, taps, boundary)
    n = y.size
    matrix = np.empty((n, n), dtype=np.float64)
    basis = np.zeros(n, dtype=np.float64)
    for k in range(n):
        basis[k] = 1.0
        matrix[:, k] = recursive_blur_naive(basis.reshape(y.shape), gamma.astype(np.float64), taps.astype(np.float64), boundary).ravel()
        basis[k] = 0.0
    return (matrix.T @ y.astype(np.float64).ravel()).reshape(y.shape).astype(y.dtype)


# ---------------------------------------------------------------------------------------------
# numba (CPU)
# ---------------------------------------------------------------------------------------------
# The image is cut into bands of rows; every (channel, band) task runs the whole recursion on its
# band plus a halo of J - 1 rows on each side (each step's column pass moves information by one
# row, so whatever is assumed beyond a halo edge cannot reach the band) and writes the band's rows
# only. One parallel region per call: the result does not depend on the band size, and the
# threads meet at a single barrier instead of two per step (which on a busy machine costs a
# scheduler time slice each).


@numba.njit(fastmath=True, cache=True)
def _rows_pass(src, dst, t0, t1, t2, lo, hi):  # pragma: no cover - compiled
    # dst = 3-tap convolution of every row of src (n, w) along w; lo/hi: samples copied to -1/w.
    n, w = src.shape
    zero = src[0, 0] * 0
    for r in range(n):
        for i in range(1, w - 1):
            dst[r, i] = t0 * src[r, i + 1] + t1 * src[r, i] + t2 * src[r, i - 1]
        for i in (0, w - 1):
            left = src[r, i - 1] if i >= 1 else (src[r, lo] if lo >= 0 else zero)
            right = src[r, i + 1] if i + 1 < w else (src[r, hi] if hi >= 0 else zero)
            dst[r, i] = t0 * right + t1 * src[r, i] + t2 * left


@numba.njit(fastmath=True, cache=True)
def _cols_pass(src, dst, t0, t1, t2, lo, hi):  # pragma: no cover - compiled
    # dst = 3-tap convolution of every column of src (n, w) along n; lo/hi: rows copied to -1/n.
    n, w = src.shape
    for r in range(n):
        up = r - 1 if r >= 1 else lo
        down = r + 1 if r + 1 < n else hi
        if up >= 0 and down >= 0:
            for i in range(w):
                dst[r, i] = t0 * src[down, i] + t1 * src[r, i] + t2 * src[up, i]
        elif down >= 0:
            for i in range(w):
                dst[r, i] = t0 * src[down, i] + t1 * src[r, i]
        elif up >= 0:
            for i in range(w):
                dst[r, i] = t1 * src[r, i] + t2 * src[up, i]
        else:
            for i in range(w):
                dst[r, i] = t1 * src[r, i]


@numba.njit(fastmath=True, cache=True)
def _rows_pass_adjoint(g, z, t0, t1, t2, lo, hi):  # pragma: no cover - compiled
    # z = (rows pass)^T g, closed form of the module docstring along w.
    n, w = g.shape
    for r in range(n):
        for m in range(1, w - 1):
            z[r, m] = t0 * g[r, m - 1] + t1 * g[r, m] + t2 * g[r, m + 1]
        for m in (0, w - 1):
            v = t1 * g[r, m]
            if m >= 1:
                v += t0 * g[r, m - 1]
            if m + 1 < w:
                v += t2 * g[r, m + 1]
            z[r, m] = v
            if w == 1:
                break
        # the padded samples fold back onto the samples they copied (interior for 'reflect')
        if hi >= 0:
            z[r, hi] += t0 * g[r, w - 1]
        if lo >= 0:
            z[r, lo] += t2 * g[r, 0]


@numba.njit(fastmath=True, cache=True)
def _cols_pass_adjoint(g, z, t0, t1, t2, lo, hi):  # pragma: no cover - compiled
    # z = (cols pass)^T g along n.
    n, w = g.shape
    for m in range(n):
        for i in range(w):
            z[m, i] = t1 * g[m, i]
        if m >= 1:
            for i in range(w):
                z[m, i] += t0 * g[m - 1, i]
        if m + 1 < n:
            for i in range(w):
                z[m, i] += t2 * g[m + 1, i]
    if hi >= 0:
        for i in range(w):
            z[hi, i] += t0 * g[n - 1, i]
    if lo >= 0:
        for i in range(w):
            z[lo, i] += t2 * g[0, i]


@numba.njit(cache=True)
def _end_lo(n, code):  # pragma: no cover - compiled
    return -1 if code == 0 else (1 if code == 1 else 0)


@numba.njit(cache=True)
def _end_hi(n, code):  # pragma: no cover - compiled
    return -1 if code == 0 else (n - 2 if code == 1 else n - 1)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_banded(x, gamma, taps, code, band, out):  # pragma: no cover - compiled
    n_c, h, w = x.shape
    n_steps = taps.shape[0]
    n_bands = (h + band - 1) // band
    lo_w = _end_lo(w, code)
    hi_w = _end_hi(w, code)
    for task in numba.prange(n_c * n_bands):
        c = task // n_bands
        r0 = (task - c * n_bands) * band
        r1 = min(h, r0 + band)
        s0 = max(0, r0 - n_steps)
        s1 = min(h, r1 + n_steps)
        n = s1 - s0
        k0 = r0 - s0
        k1 = r1 - s0
        tc = c if taps.shape[1] > 1 else 0
        gc = c if gamma.shape[1] > 1 else 0
        lo_h = _end_lo(n, code) if s0 == 0 else -1  # a halo edge inside the image: anything goes
        hi_h = _end_hi(n, code) if s1 == h else -1
        cur = x[c, s0:s1].copy()
        tmp = np.empty_like(cur)
        for r in range(k0, k1):
            for i in range(w):
                out[c, s0 + r, i] = gamma[0, gc, s0 + r, i] * cur[r, i]
        for j in range(n_steps):
            t0 = taps[j, tc, 0]
            t1 = taps[j, tc, 1]
            t2 = taps[j, tc, 2]
            _rows_pass(cur, tmp, t0, t1, t2, lo_w, hi_w)
            _cols_pass(tmp, cur, t0, t1, t2, lo_h, hi_h)
            for r in range(k0, k1):
                for i in range(w):
                    out[c, s0 + r, i] += gamma[j + 1, gc, s0 + r, i] * cur[r, i]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _adjoint_banded(y, gamma, taps, code, band, out):  # pragma: no cover - compiled
    # Horner form: r = Gamma_J y; r = S_j^T r + Gamma_j y for j = J - 1 .. 1.
    n_c, h, w = y.shape
    n_steps = taps.shape[0]
    n_bands = (h + band - 1) // band
    lo_w = _end_lo(w, code)
    hi_w = _end_hi(w, code)
    for task in numba.prange(n_c * n_bands):
        c = task // n_bands
        r0 = (task - c * n_bands) * band
        r1 = min(h, r0 + band)
        s0 = max(0, r0 - n_steps)
        s1 = min(h, r1 + n_steps)
        n = s1 - s0
        tc = c if taps.shape[1] > 1 else 0
        gc = c if gamma.shape[1] > 1 else 0
        lo_h = _end_lo(n, code) if s0 == 0 else -1
        hi_h = _end_hi(n, code) if s1 == h else -1
        result = np.empty((n, w), dtype=y.dtype)
        tmp = np.empty((n, w), dtype=y.dtype)
        for r in range(n):
            for i in range(w):
                result[r, i] = gamma[n_steps, gc, s0 + r, i] * y[c, s0 + r, i]
        for j in range(n_steps - 1, -1, -1):
            t0 = taps[j, tc, 0]
            t1 = taps[j, tc, 1]
            t2 = taps[j, tc, 2]
            _cols_pass_adjoint(result, tmp, t0, t1, t2, lo_h, hi_h)
            _rows_pass_adjoint(tmp, result, t0, t1, t2, lo_w, hi_w)
            for r in range(n):
                for i in range(w):
                    result[r, i] += gamma[j, gc, s0 + r, i] * y[c, s0 + r, i]
        for r in range(r0 - s0, r1 - s0):
            for i in range(w):
                out[c, s0 + r, i] = result[r, i]


def _band_rows(h: int, n_steps: int, band: int | None) -> int:
    if band is None:
        # bands of at least 4 halos (<= 50 % recomputation), about 4 per channel on large images
        band = max(4 * max(n_steps, 1), -(-h // 4))
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or band < 1:
        raise ValueError(f"band must be a positive integer number of rows; got {band!r}")
    return int(min(band, h))


def recursive_blur_numba(
    x: np.ndarray, gamma: np.ndarray, taps: np.ndarray, boundary: str = "zero", *, band: int | None = None
) -> np.ndarray:
    """``sum_j gamma_j * (x (x) A_j)`` on the CPU (numba); ``x`` (C, H, W) NumPy, same dtype throughout.

    ``band`` is the number of output rows per parallel task (default: automatic); the result does
    not depend on it.
    """
    code = _check(x, gamma, taps, boundary)
    x = np.ascontiguousarray(x)
    gamma = np.ascontiguousarray(gamma, dtype=x.dtype)
    taps = np.ascontiguousarray(taps, dtype=x.dtype)
    out = np.empty_like(x)
    _forward_banded(x, gamma, taps, code, _band_rows(x.shape[1], taps.shape[0], band), out)
    return out


def recursive_blur_adjoint_numba(
    y: np.ndarray, gamma: np.ndarray, taps: np.ndarray, boundary: str = "zero", *, band: int | None = None
) -> np.ndarray:
    """Adjoint of :func:`recursive_blur_numba` (Horner form), ``y`` (C, H, W) NumPy."""
    code = _check(y, gamma, taps, boundary)
    y = np.ascontiguousarray(y)
    gamma = np.ascontiguousarray(gamma, dtype=y.dtype)
    taps = np.ascontiguousarray(taps, dtype=y.dtype)
    out = np.empty_like(y)
    _adjoint_banded(y, gamma, taps, code, _band_rows(y.shape[1], taps.shape[0], band), out)
    return out


# ---------------------------------------------------------------------------------------------
# CuPy (GPU)
# ---------------------------------------------------------------------------------------------
_CUPY_KERNELS: dict[str, Any] = {}

# Linear index i over (C, H, W); ``stride`` is 1 along W and W along H; ``n`` the axis length.
_FORWARD_1D = r"""
const int pos = (int)((i / stride) % n);
const ptrdiff_t base = i - (ptrdiff_t)pos * stride;
const int tc = per_channel ? (int)(i / plane) : 0;
const T t0 = taps[tc * 3], t1 = taps[tc * 3 + 1], t2 = taps[tc * 3 + 2];
const T left = pos > 0 ? src[i - stride] : (lo >= 0 ? src[base + (ptrdiff_t)lo * stride] : (T)0);
const T right = pos < n - 1 ? src[i + stride] : (hi >= 0 ? src[base + (ptrdiff_t)hi * stride] : (T)0);
dst = t0 * right + t1 * src[i] + t2 * left;
"""

_ADJOINT_1D = r"""
const int m = (int)((i / stride) % n);
const ptrdiff_t base = i - (ptrdiff_t)m * stride;
const int tc = per_channel ? (int)(i / plane) : 0;
const T t0 = taps[tc * 3], t1 = taps[tc * 3 + 1], t2 = taps[tc * 3 + 2];
T v = t1 * g[i];
if (m >= 1) v += t0 * g[i - stride];
if (m + 1 < n) v += t2 * g[i + stride];
if (m == hi) v += t0 * g[base + (ptrdiff_t)(n - 1) * stride];
if (m == lo) v += t2 * g[base];
z = v;
"""


def _cupy_kernel(name: str) -> Any:
    if name not in _CUPY_KERNELS:
        import cupy as cp

        params = "int64 n, int64 stride, int32 lo, int32 hi, int32 per_channel, int64 plane"
        if name == "forward":
            _CUPY_KERNELS[name] = cp.ElementwiseKernel(
                "raw T src, raw T taps, " + params, "T dst", _FORWARD_1D, "defocus_rkr_step_forward"
            )
        else:
            _CUPY_KERNELS[name] = cp.ElementwiseKernel(
                "raw T g, raw T taps, " + params, "T z", _ADJOINT_1D, "defocus_rkr_step_adjoint"
            )
    return _CUPY_KERNELS[name]


def _pass_cupy(kind: str, src: Any, taps_j: Any, axis: int, code: int) -> Any:
    import cupy as cp

    c, h, w = (int(s) for s in src.shape)
    n, stride = (w, 1) if axis == -1 else (h, w)
    lo, hi = _ends(n, code)
    dst = cp.empty_like(src)
    _cupy_kernel(kind)(src, taps_j, n, stride, lo, hi, int(taps_j.shape[0] > 1), h * w, dst)
    return dst


def recursive_blur_cupy(x: Any, gamma: Any, taps: Any, boundary: str = "zero") -> Any:
    """``sum_j gamma_j * (x (x) A_j)`` on the GPU (CuPy); ``x`` (C, H, W) CuPy array."""
    import cupy as cp

    code = _check(x, gamma, taps, boundary)
    x = cp.ascontiguousarray(x)
    taps = cp.ascontiguousarray(taps, dtype=x.dtype)
    out = gamma[0] * x
    cur = x
    for j in range(int(taps.shape[0])):
        tj = cp.ascontiguousarray(taps[j])
        cur = _pass_cupy("forward", _pass_cupy("forward", cur, tj, -1, code), tj, -2, code)
        out += gamma[j + 1] * cur
    return out


def recursive_blur_adjoint_cupy(y: Any, gamma: Any, taps: Any, boundary: str = "zero") -> Any:
    """Adjoint of :func:`recursive_blur_cupy` (Horner form), ``y`` (C, H, W) CuPy array."""
    import cupy as cp

    code = _check(y, gamma, taps, boundary)
    y = cp.ascontiguousarray(y)
    taps = cp.ascontiguousarray(taps, dtype=y.dtype)
    n_steps = int(taps.shape[0])
    result = gamma[n_steps] * y
    for j in range(n_steps - 1, -1, -1):
        tj = cp.ascontiguousarray(taps[j])
        result = _pass_cupy("adjoint", _pass_cupy("adjoint", result, tj, -2, code), tj, -1, code) + gamma[j] * y
    return result
