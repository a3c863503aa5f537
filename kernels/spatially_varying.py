"""Compute kernels for the per-pixel (spatially-varying) convolution and its adjoint.

Convention (shared by every implementation in this module)
-----------------------------------------------------------
``image`` is ``(H, W, C)``, ``kernels`` is ``(H, W, S, S)`` with odd ``S = 2R + 1``; the kernel
``kernels[p0, p1]`` belongs to the **output** pixel ``p = (p0, p1)`` and has its origin at the
centre tap ``(R, R)``. The operator is the gather form of a spatially-varying convolution,

.. math:: y(p) = \\sum_{q \\in [-R, R]^2} k_p(q)\\, x(p - q),

with ``k_p(q) = kernels[p0, p1, q0 + R, q1 + R]``: for a constant kernel field it is exactly a
(true, not flipped) convolution. Samples ``x(p - q)`` that fall outside the image are taken from
the extension named by ``boundary``:

``"zero"``
    zero outside the image;
``"symmetric"``
    half-sample mirror ``... c b a | a b c ... | ... x y z | z y x ...`` (``numpy.pad`` mode
    ``"symmetric"``, repeated for radii larger than the image);
``"reflect"``
    whole-sample mirror ``... c b | a b c ...`` (``numpy.pad`` mode ``"reflect"``);
``"edge"``
    replicate the border pixel;
``"wrap"``
    periodic.

Every extension is a linear map ``P`` from the image to the padded image ``(H + 2R, W + 2R, C)``,
so the operator is ``A = G P`` with ``G`` the zero-boundary gather on the padded grid and its
adjoint is ``A^T = P^T G^T``. ``G^T`` is evaluated here as a *gather* over the padded grid (no
write conflicts, so it parallelises), and ``P^T`` folds the padding back onto the image by adding
each padded sample into the pixel it was copied from.

Three implementations of each direction:

* ``*_naive``: plain Python loops over pixels, obviously correct, for tests only (the adjoint
  is written in scatter form, independently of the gather used by the fast kernels);
* ``*_numba``: numba, ``parallel=True`` over output rows (CPU);
* ``*_cupy``: a CuPy ``ElementwiseKernel``, one CUDA thread per output sample (GPU).

These functions do not validate their arguments beyond shapes; :mod:`optics.operators.spatially_varying`
is the checked public entry point.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numba
import numpy as np

__all__ = [
    "BOUNDARIES",
    "padding_indices",
    "pad_image",
    "fold_padding",
    "spatially_varying_naive",
    "spatially_varying_adjoint_naive",
    "spatially_varying_numba",
    "spatially_varying_adjoint_numba",
    "spatially_varying_cupy",
    "spatially_varying_adjoint_cupy",
]

BOUNDARIES = ("zero", "symmetric", "reflect", "edge", "wrap")


# ---------------------------------------------------------------------------------------------
# Boundary handling
# ---------------------------------------------------------------------------------------------
def _source_index(i: int, n: int, boundary: str) -> int:
    """Index of the image sample that the extended position ``i`` copies (-1: zero).

    Written with plain integer arithmetic (used by the naive twins, independent of numpy.pad).
    """
    if 0 <= i < n:
        return i
    if boundary == "zero":
        return -1
    if boundary == "edge":
        return 0 if i < 0 else n - 1
    if boundary == "wrap":
        return i % n
    if boundary == "symmetric":  # period 2n: 0..n-1, n-1..0
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m
    if boundary == "reflect":  # period 2n-2: 0..n-1, n-2..1
        if n == 1:
            return 0
        m = i % (2 * n - 2)
        return m if m < n else 2 * n - 2 - m
    raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")


def padding_indices(n: int, radius: int, boundary: str) -> np.ndarray:
    """Source index of every position of an axis of length ``n`` padded by ``radius`` each side.

    Returns an int64 array of length ``n + 2 * radius``; ``-1`` marks zero samples
    (``boundary="zero"``).
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")
    if boundary == "zero":
        idx = np.full(n + 2 * radius, -1, dtype=np.int64)
        idx[radius : radius + n] = np.arange(n)
        return idx
    return np.pad(np.arange(n, dtype=np.int64), radius, mode=boundary)


def pad_image(image: Any, radius: int, boundary: str, xp: Any) -> Any:
    """Extend an ``(H, W, C)`` array of namespace ``xp`` by ``radius`` pixels on each side."""
    h, w = int(image.shape[0]), int(image.shape[1])
    rows = padding_indices(h, radius, boundary)
    cols = padding_indices(w, radius, boundary)
    dev = _device_of(image)
    r = xp.asarray(np.maximum(rows, 0), device=dev) if dev is not None else xp.asarray(np.maximum(rows, 0))
    c = xp.asarray(np.maximum(cols, 0), device=dev) if dev is not None else xp.asarray(np.maximum(cols, 0))
    padded = xp.take(xp.take(image, r, axis=0), c, axis=1)
    if boundary == "zero":
        mask = np.outer(rows >= 0, cols >= 0).astype(np.float64)[:, :, None]
        m = xp.asarray(mask, dtype=image.dtype, device=dev) if dev is not None else xp.asarray(mask, dtype=image.dtype)
        padded = padded * m
    return padded


def fold_padding(padded: Any, shape: tuple[int, int], radius: int, boundary: str) -> Any:
    """Adjoint of :func:`pad_image`: add every padded sample into the pixel it was copied from.

    ``padded`` is ``(H + 2R, W + 2R, C)``; the result is ``(H, W, C)``. NumPy, CuPy and torch
    (autograd-friendly, out-of-place) are supported.
    """
    h, w = shape
    rows = padding_indices(h, radius, boundary)
    cols = padding_indices(w, radius, boundary)
    keep_r = np.nonzero(rows >= 0)[0]
    keep_c = np.nonzero(cols >= 0)[0]
    if array_api_compat.is_torch_array(padded):
        import torch

        dev = padded.device
        kr = torch.as_tensor(keep_r, device=dev)
        kc = torch.as_tensor(keep_c, device=dev)
        tmp = padded.index_select(0, kr)
        out_r = torch.zeros((h,) + tuple(tmp.shape[1:]), dtype=padded.dtype, device=dev)
        out_r = out_r.index_add(0, torch.as_tensor(rows[keep_r], device=dev), tmp)
        tmp = out_r.index_select(1, kc)
        out = torch.zeros((h, w) + tuple(tmp.shape[2:]), dtype=padded.dtype, device=dev)
        return out.index_add(1, torch.as_tensor(cols[keep_c], device=dev), tmp)
    if array_api_compat.is_cupy_array(padded):
        import cupy as cp
        import cupyx

        tmp = padded[cp.asarray(keep_r)]
        out_r = cp.zeros((h,) + tmp.shape[1:], dtype=padded.dtype)
        cupyx.scatter_add(out_r, cp.asarray(rows[keep_r]), tmp)
        tmp = out_r[:, cp.asarray(keep_c)]
        out = cp.zeros((h, w) + tmp.shape[2:], dtype=padded.dtype)
        cupyx.scatter_add(out, (slice(None), cp.asarray(cols[keep_c])), tmp)
        return out
    padded = np.asarray(padded)
    # Interior rows map to themselves; only the 2R border rows (and columns) need adding.
    out_r = padded[radius : radius + h].copy()
    for i in np.concatenate([np.arange(radius), np.arange(radius + h, h + 2 * radius)]):
        if rows[i] >= 0:
            out_r[rows[i]] += padded[i]
    out = out_r[:, radius : radius + w].copy()
    for j in np.concatenate([np.arange(radius), np.arange(radius + w, w + 2 * radius)]):
        if cols[j] >= 0:
            out[:, cols[j]] += out_r[:, j]
    return out


def _device_of(x: Any) -> Any:
    return x.device if array_api_compat.is_torch_array(x) else None


def _check_shapes(image: np.ndarray, kernels: np.ndarray) -> int:
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, C); got shape {tuple(image.shape)}")
    if kernels.ndim != 4 or kernels.shape[2] != kernels.shape[3] or kernels.shape[2] % 2 == 0:
        raise ValueError(f"kernels must be (H, W, S, S) with odd S; got shape {tuple(kernels.shape)}")
    if tuple(kernels.shape[:2]) != tuple(image.shape[:2]):
        raise ValueError(
            f"kernels must have one kernel per pixel: leading shape {tuple(image.shape[:2])}; "
            f"got {tuple(kernels.shape[:2])}"
        )
    return (int(kernels.shape[2]) - 1) // 2


# ---------------------------------------------------------------------------------------------
# Naive twins (tests only)
# ---------------------------------------------------------------------------------------------
def spatially_varying_naive(image: np.ndarray, kernels: np.ndarray, boundary: str = "symmetric") -> np.ndarray:
    """Reference forward operator: ``y(p) = sum_q k_p(q) x(p - q)`` by explicit loops."""
    radius = _check_shapes(image, kernels)
    h, w, c = image.shape
    out = np.zeros_like(image)
    for p0 in range(h):
        for p1 in range(w):
            acc = np.zeros(c, dtype=np.float64)
            for q0 in range(-radius, radius + 1):
                i = _source_index(p0 - q0, h, boundary)
                if i < 0:
                    continue
                for q1 in range(-radius, radius + 1):
                    j = _source_index(p1 - q1, w, boundary)
                    if j < 0:
                        continue
                    acc += float(kernels[p0, p1, q0 + radius, q1 + radius]) * image[i, j]
            out[p0, p1] = acc
    return out


def spatially_varying_adjoint_naive(
    image: np.ndarray, kernels: np.ndarray, boundary: str = "symmetric"
) -> np.ndarray:
    """Reference adjoint in scatter form: every ``y(p) k_p(q)`` is added to ``x(p - q)``."""
    radius = _check_shapes(image, kernels)
    h, w, c = image.shape
    out = np.zeros(image.shape, dtype=np.float64)
    for p0 in range(h):
        for p1 in range(w):
            for q0 in range(-radius, radius + 1):
                i = _source_index(p0 - q0, h, boundary)
                if i < 0:
                    continue
                for q1 in range(-radius, radius + 1):
                    j = _source_index(p1 - q1, w, boundary)
                    if j < 0:
                        continue
                    out[i, j] += float(kernels[p0, p1, q0 + radius, q1 + radius]) * image[p0, p1]
    return out.astype(image.dtype)


# ---------------------------------------------------------------------------------------------
# numba (CPU, parallel over rows)
# ---------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=True, cache=True)
def _gather_numba(padded, kernels, out):  # pragma: no cover - compiled
    # padded (C, H + 2R, W + 2R), kernels (H, W, S, S), out (C, H, W); zero boundary on padded.
    n_c, h, w = out.shape
    s = kernels.shape[2]
    r2 = s - 1
    for p0 in numba.prange(h):
        for p1 in range(w):
            # channels inside the pixel loop: the S x S kernel is read from memory once and
            # reused from L1 cache for every channel
            kernel = kernels[p0, p1]
            for c in range(n_c):
                acc = padded[c, 0, 0] * 0
                for u in range(s):
                    # tap v reads column p1 + 2R - v = p1 + t with t = 2R - v
                    window = padded[c, p0 + r2 - u, p1 : p1 + s]
                    kernel_row = kernel[u]
                    for t in range(s):
                        acc += kernel_row[r2 - t] * window[t]
                out[c, p0, p1] = acc


@numba.njit(parallel=True, fastmath=True, cache=True)
def _adjoint_gather_numba(values, kernels, out_padded):  # pragma: no cover - compiled
    # values (C, H, W), kernels (H, W, S, S), out_padded (C, H + 2R, W + 2R):
    # out_padded[c, s0, s1] = sum_{u,v} kernels[p0, p1, u, v] values[c, p0, p1],
    # with p0 = s0 - 2R + u, p1 = s1 - 2R + v inside the image.
    n_c, h, w = values.shape
    s = kernels.shape[2]
    r2 = s - 1
    hp, wp = out_padded.shape[1], out_padded.shape[2]
    for s0 in numba.prange(hp):
        u_lo = max(0, r2 - s0)
        u_hi = min(s, h + r2 - s0)
        for c in range(n_c):
            for s1 in range(wp):
                v_lo = max(0, r2 - s1)
                v_hi = min(s, w + r2 - s1)
                acc = values[c, 0, 0] * 0
                for u in range(u_lo, u_hi):
                    p0 = s0 - r2 + u
                    for v in range(v_lo, v_hi):
                        p1 = s1 - r2 + v
                        acc += kernels[p0, p1, u, v] * values[c, p0, p1]
                out_padded[c, s0, s1] = acc


def spatially_varying_numba(image: np.ndarray, kernels: np.ndarray, boundary: str = "symmetric") -> np.ndarray:
    """Forward operator on the CPU (numba, parallel over rows); ``image`` (H, W, C) NumPy."""
    radius = _check_shapes(image, kernels)
    padded = np.ascontiguousarray(np.moveaxis(pad_image(image, radius, boundary, np), 2, 0))
    kernels = np.ascontiguousarray(kernels, dtype=image.dtype)
    out = np.empty((image.shape[2],) + image.shape[:2], dtype=image.dtype)
    _gather_numba(padded, kernels, out)
    return np.moveaxis(out, 0, 2).copy()


def spatially_varying_adjoint_numba(
    image: np.ndarray, kernels: np.ndarray, boundary: str = "symmetric"
) -> np.ndarray:
    """Adjoint operator on the CPU (numba gather over the padded grid, then fold the padding)."""
    radius = _check_shapes(image, kernels)
    h, w, c = image.shape
    values = np.ascontiguousarray(np.moveaxis(image, 2, 0))
    kernels = np.ascontiguousarray(kernels, dtype=image.dtype)
    out_padded = np.empty((c, h + 2 * radius, w + 2 * radius), dtype=image.dtype)
    _adjoint_gather_numba(values, kernels, out_padded)
    return fold_padding(np.moveaxis(out_padded, 0, 2), (h, w), radius, boundary)


# ---------------------------------------------------------------------------------------------
# CuPy (GPU)
# ---------------------------------------------------------------------------------------------
_CUPY_KERNELS: dict[str, Any] = {}

_FORWARD_SOURCE = r"""
const int c = i % C;
const int p1 = (i / C) % W;
const int p0 = i / (C * W);
const int r2 = S - 1;
const int wp = W + r2;
T acc = 0;
const ptrdiff_t kbase = ((ptrdiff_t)p0 * W + p1) * S * S;
for (int u = 0; u < S; ++u) {
    const ptrdiff_t row = (ptrdiff_t)(p0 + r2 - u) * wp;
    for (int v = 0; v < S; ++v) {
        acc += kernels[kbase + u * S + v] * padded[(row + p1 + r2 - v) * C + c];
    }
}
out = acc;
"""

_ADJOINT_SOURCE = r"""
const int r2 = S - 1;
const int wp = W + r2;
const int c = i % C;
const int s1 = (i / C) % wp;
const int s0 = i / (C * wp);
const int u_lo = max(0, r2 - s0), u_hi = min(S, H + r2 - s0);
const int v_lo = max(0, r2 - s1), v_hi = min(S, W + r2 - s1);
T acc = 0;
for (int u = u_lo; u < u_hi; ++u) {
    const int p0 = s0 - r2 + u;
    for (int v = v_lo; v < v_hi; ++v) {
        const int p1 = s1 - r2 + v;
        acc += kernels[(((ptrdiff_t)p0 * W + p1) * S + u) * S + v] * values[((ptrdiff_t)p0 * W + p1) * C + c];
    }
}
out_padded = acc;
"""


def _cupy_kernel(name: str) -> Any:
    if name not in _CUPY_KERNELS:
        import cupy as cp

        if name == "forward":
            _CUPY_KERNELS[name] = cp.ElementwiseKernel(
                "raw T padded, raw T kernels, int32 H, int32 W, int32 C, int32 S",
                "T out",
                _FORWARD_SOURCE,
                "defocus_spatially_varying_forward",
            )
        else:
            _CUPY_KERNELS[name] = cp.ElementwiseKernel(
                "raw T values, raw T kernels, int32 H, int32 W, int32 C, int32 S",
                "T out_padded",
                _ADJOINT_SOURCE,
                "defocus_spatially_varying_adjoint",
            )
    return _CUPY_KERNELS[name]


def spatially_varying_cupy(image: Any, kernels: Any, boundary: str = "symmetric") -> Any:
    """Forward operator on the GPU (CuPy elementwise kernel); ``image`` (H, W, C) CuPy array."""
    import cupy as cp

    radius = _check_shapes(image, kernels)
    h, w, c = (int(n) for n in image.shape)
    s = 2 * radius + 1
    padded = cp.ascontiguousarray(pad_image(image, radius, boundary, cp))
    kernels = cp.ascontiguousarray(kernels, dtype=image.dtype)
    out = cp.empty((h, w, c), dtype=image.dtype)
    _cupy_kernel("forward")(padded, kernels, h, w, c, s, out)
    return out


def spatially_varying_adjoint_cupy(image: Any, kernels: Any, boundary: str = "symmetric") -> Any:
    """Adjoint operator on the GPU (gather over the padded grid, then fold the padding)."""
    import cupy as cp

    radius = _check_shapes(image, kernels)
    h, w, c = (int(n) for n in image.shape)
    s = 2 * radius + 1
    values = cp.ascontiguousarray(image)
    kernels = cp.ascontiguousarray(kernels, dtype=image.dtype)
    out_padded = cp.empty((h + 2 * radius, w + 2 * radius, c), dtype=image.dtype)
    _cupy_kernel("adjoint")(values, kernels, h, w, c, s, out_padded)
    return fold_padding(out_padded, (h, w), radius, boundary)
