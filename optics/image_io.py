"""Lossless 8/16-bit PNG reading and writing (pypng).

Pillow, and so imageio's default plugin, opens 16-bit RGB PNGs (DPDD's format) as 8-bit RGB and
cannot write them; these helpers use ``pypng`` for PNGs so that no bit is lost either way.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import png

__all__ = ["read_png", "png_bytes", "npy_bytes"]


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG as uint8 or uint16 (H, W) or (H, W, C), exactly as stored (palette expanded)."""
    path = Path(path)
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        data = np.vstack([np.asarray(row) for row in rows])
    except (png.Error, OSError, ValueError, EOFError) as err:
        raise ValueError(f"cannot read PNG {str(path)!r}: {err}") from err
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    planes = info["planes"]
    data = data.astype(dtype).reshape(height, width, planes)
    return data[:, :, 0] if planes == 1 else data


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 or uint16 (H, W) or (H, W, C) array, C in {1, 2, 3, 4}, as PNG bytes."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"array must be uint8 or uint16; got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"array must be (H, W) or (H, W, C) with C in 1..4; got shape {array.shape}")
    h, w, c = array.shape
    writer = png.Writer(width=w, height=h, bitdepth=8 * array.dtype.itemsize, greyscale=c in (1, 2), alpha=c in (2, 4))
    buffer = io.BytesIO()
    writer.write_array(buffer, array.reshape(-1).astype(">u2" if array.dtype == np.uint16 else np.uint8))
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in NumPy's ``.npy`` format (no pickling), for :func:`optics.atomic.atomic_write_bytes`."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()
