"""FFT helpers shared by the layered renderers (:mod:`optics.render`, :mod:`optics.render.field`).

Zero-padded real 2-D transforms computed as two 1-D passes, the inverse of only the rows kept, and
the per-axis window on which a periodic convolution of a layer equals the linear one.
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def _rfft2(x: np.ndarray, grid: tuple[int, int], workers: int) -> np.ndarray:
    """rfft2 of ``x`` zero-padded to ``grid`` (two 1-D passes; faster than ``rfft2`` here)."""
    half = scipy.fft.rfft(x, n=None if x.shape[-1] == grid[1] else grid[1], axis=-1, workers=workers)
    if half.shape[-2] != grid[0]:
        padded = np.zeros((*half.shape[:-2], grid[0], half.shape[-1]), dtype=half.dtype)
        padded[..., : half.shape[-2], :] = half
        half = padded
    return scipy.fft.fft(half, axis=-2, workers=workers, overwrite_x=True)


def _irfft2_rows(spec: np.ndarray, grid: tuple[int, int], rows: slice, workers: int) -> np.ndarray:
    """``irfft2(spec, s=grid)[..., rows, :]``, transforming only the kept rows along the last axis.

    ``spec`` is overwritten.
    """
    cols = scipy.fft.ifft(spec, axis=-2, workers=workers, overwrite_x=True)[..., rows, :]
    return scipy.fft.irfft(cols, n=grid[1], axis=-1, workers=workers, overwrite_x=True)


def _axis_window(b0: int, b1: int, h: int, pad: int, n: int):
    """Per-axis FFT window of a layer with bounding box [b0, b1) (padded coordinates).

    Only inputs within ``h`` of the interior [pad, pad + n) can reach it. With the inputs
    [i0, i1) at the start of a periodic grid of length N and the kernel's first tap at index 0,
    the linear convolution has support [0, E + 2h), E = i1 - i0, and index m is the padded
    coordinate i0 - h + m; the periodic result equals it at m in [m_lo, m_hi) as soon as
    N >= E + 2h - m_lo (the wrapped tail misses the window), N >= m_hi and N >= 2h + 1 (the
    kernel fits).

    Returns ``(i0, i1, window, kept, N)`` with ``window`` the slice of the output image and
    ``kept`` the slice of the periodic result, or None if the layer cannot reach the interior.
    """
    i0, i1 = max(b0, pad - h), min(b1, pad + n + h)
    o0, o1 = max(i0 - h, pad), min(i1 + h, pad + n)
    if i0 >= i1 or o0 >= o1:
        return None
    m_lo, m_hi = o0 - (i0 - h), o1 - (i0 - h)
    size = scipy.fft.next_fast_len(max(i1 - i0 + 2 * h - m_lo, m_hi, 2 * h + 1), real=True)
    return i0, i1, slice(o0 - pad, o1 - pad), slice(m_lo, m_hi), size
