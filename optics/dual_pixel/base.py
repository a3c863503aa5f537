"""Base of the dual-pixel PSF modules: the PSF pair type and the argument checks they share.

:mod:`optics.dual_pixel` (the ideal models), :mod:`optics.dual_pixel.calibrated` (the calibrated model) and
:mod:`optics.dual_pixel.fit` (fitting either to measured kernels) all import it, so none of them needs
another's private names.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

__all__ = ["DualPixelPSFs"]


class DualPixelPSFs(NamedTuple):
    """Left and right dual-pixel PSFs; unpacks as ``left, right = ...``.

    ``full`` is the full-aperture PSF ``(left + right) / 2``.
    """

    left: np.ndarray
    right: np.ndarray

    @property
    def full(self) -> np.ndarray:
        return (self.left + self.right) / 2


def _check_coc(coc_radius: Any) -> float:
    if isinstance(coc_radius, bool) or not isinstance(coc_radius, numbers.Real):
        raise TypeError(
            f"coc_radius must be a real number (signed CoC radius in pixels); got {coc_radius!r} "
            f"of type {type(coc_radius).__name__}"
        )
    c = float(coc_radius)
    if not math.isfinite(c):
        raise ValueError(f"coc_radius must be finite; got {c}")
    return c


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from err
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dt}")
    return dt
