"""The cell machinery of :mod:`optics.dual_pixel.deblur`: per-cell windows of the views and their FFTs,
the cells' transfer functions, and a thread map over the windows.

A :class:`optics.dual_pixel.deblur.DualPixelPSFGrid` holds one PSF pair per square cell. Each cell is
processed in a window of two cells plus a context margin around its centre, mirror-padded at the
frame's border; its output is weighted by a bilinear tent centred on the cell, so the sum over
cells has no seam (the tents of neighbouring cells add to one inside the frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft


def _fast_len(n: int) -> int:
    return scipy.fft.next_fast_len(n, real=True)


@dataclass
class _Window:
    row: int
    col: int
    FL: Any  # rfft2 of the left window
    FR: Any
    inner: tuple  # slices of the window that are output
    box: tuple  # (y0, y1, x0, x1) in the image
    tent: Any  # blending weights over box


def _windows(left, right, psfs, margin: int, backend, workers: int = 1):
    """Per cell: FFTs of both views over two cells plus ``margin`` around the cell centre, mirror-padded
    (on ``workers`` threads, as :func:`_map_windows`)."""
    xp, fft = backend.xp, backend.fft
    H, W = left.shape
    c = psfs.cell
    pad = c - c // 2 + margin  # the first window starts at c // 2 - c - margin (odd cells too)
    Lp = xp.pad(left, pad, mode="symmetric")
    Rp = xp.pad(right, pad, mode="symmetric")
    n = _fast_len(2 * c + 2 * margin)
    t = 1.0 - np.abs((np.arange(2 * c) + 0.5 - c) / c)
    tent = xp.asarray((t[:, None] * t[None, :]).astype(left.dtype))
    rows, cols = psfs.grid

    def one(cell):
        r, col = cell
        y0, x0 = r * c + c // 2 - c, col * c + c // 2 - c  # output span: two cells around the centre
        oy0, oy1, ox0, ox1 = max(y0, 0), min(y0 + 2 * c, H), max(x0, 0), min(x0 + 2 * c, W)
        inner = (slice(oy0 - y0 + margin, oy1 - y0 + margin), slice(ox0 - x0 + margin, ox1 - x0 + margin))
        FL, FR = (fft.rfft2(_window_of(v, r, col, c, margin, pad, n, xp)) for v in (Lp, Rp))
        return _Window(r, col, FL, FR, inner, (oy0, oy1, ox0, ox1), tent[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0])

    cells = [(r, col) for r in range(rows) for col in range(cols)]
    return [w for _, w in _map_windows(one, cells, workers, backend, progress=False)], n


def _map_windows(fn, windows, workers: int, backend, progress: bool = True):
    """``(w, fn(w))`` for every window, in order; NumPy windows on ``workers`` threads (-1: every core).

    The FFTs and array arithmetic release the GIL, so the windows run in parallel; the caller
    accumulates the results in one thread, in a fixed order (results do not depend on ``workers``).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    count = (os.cpu_count() or 1) if workers == -1 else int(workers)
    tick = _WINDOW_PROGRESS[0] if _WINDOW_PROGRESS and progress else (lambda: None)
    if backend.name != "numpy" or count <= 1:
        for w in windows:
            yield w, fn(w)
            tick()
        return
    with ThreadPoolExecutor(max_workers=count) as pool:
        for item in zip(windows, pool.map(fn, windows)):
            yield item
            tick()


#: Callbacks called once per window done (the last one set); optics.dual_pixel.deblur's progress bar sets it.
_WINDOW_PROGRESS: list = []


def _otfs(psfs, row: int, col: int, scale: float, n: int, backend, complex_dtype, centre_weight=None):
    """Transfer functions of cell (row, col) at ``scale`` on an n x n grid, recentred as a pair.

    The pair is shifted so that the centroid of ``centre_weight K_L + (1 - centre_weight) K_R``
    (each kernel normalised; :meth:`DualPixelPSFGrid.pair`; None: the grid's reference) lies at the origin.
    """
    KL, KR = _cell_otfs(psfs, row, col, (scale,), n, backend, complex_dtype, centre_weight)
    return [KL[0], KR[0]]


def _cell_otfs(psfs, row: int, col: int, scales, n: int, backend, complex_dtype, centre_weight=None):
    """:func:`_otfs` of several ``scales`` of one cell in one batch: ``[K_L, K_R]``, each (S, n, n // 2 + 1)."""
    kl, kr, d = psfs.pairs(row, col, np.asarray(scales, dtype=np.float64), centre_weight=centre_weight)
    k = kl.shape[1]
    if k > n:
        raise ValueError(f"kernels of {k} px do not fit the {n} px window; raise margin")
    real = np.float32 if complex_dtype == np.complex64 else np.float64
    # each pair's centroid (k // 2 + d from the array corner) to the origin: separable phase ramps
    d = d + k // 2
    ey = np.exp(2j * np.pi * d[:, :1] * scipy.fft.fftfreq(n)[None, :]).astype(complex_dtype)
    ex = np.exp(2j * np.pi * d[:, 1:] * scipy.fft.rfftfreq(n)[None, :]).astype(complex_dtype)
    res = []
    for kernels in (kl, kr):
        a = scipy.fft.rfft(kernels.astype(real), n=n, axis=2)  # only the k nonzero rows
        a *= ex[:, None, :]
        full = scipy.fft.fft(a, n=n, axis=1)
        full *= ey[:, :, None]
        res.append(backend.xp.asarray(full))
    return res


def _window_of(padded, row: int, col: int, cell: int, margin: int, pad: int, n: int, xp):
    """The n x n window of cell (row, col), two cells plus ``margin`` around its centre, in an image mirror-padded
    by ``pad`` (:func:`_windows`); the last windows may run past the padding: extended by mirroring."""
    wy, wx = row * cell + cell // 2 - cell - margin + pad, col * cell + cell // 2 - cell - margin + pad
    win = padded[wy:wy + n, wx:wx + n]
    if win.shape != (n, n):
        win = xp.pad(win, ((0, n - win.shape[0]), (0, n - win.shape[1])), mode="symmetric")
    return win


def _squared_modulus(KL, KR, xp):
    """:math:`|K_L|^2 + |K_R|^2`, real, in the transfer functions' precision (few temporaries)."""
    den = xp.square(KL.real)
    den += xp.square(KL.imag)
    den += xp.square(KR.real)
    den += xp.square(KR.imag)
    return den
