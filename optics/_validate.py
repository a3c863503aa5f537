"""Argument checks shared by the operators.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the argument, what
was expected and what was received. Nothing is silently clipped, resized or cast.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._backend import Backend, is_torch

__all__ = [
    "check_array",
    "check_psf",
    "check_image",
    "check_factor",
    "check_eps",
    "check_odd_size",
    "real_float_dtype",
]


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def real_float_dtype(x: Any) -> bool:
    """True for float32/float64 arrays of any supported library."""
    if is_torch(x):
        import torch

        return x.dtype in (torch.float32, torch.float64)
    return np.dtype(x.dtype) in (np.float32, np.float64)


def scalar(x: Any) -> float:
    """A 0-d array or tensor as a Python float (detached from autograd)."""
    return float(x.detach()) if is_torch(x) else float(x)


def check_array(x: Any, name: str, be: Backend) -> None:
    """Check that ``x`` is a finite float32/float64 array."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be a NumPy/CuPy array or torch tensor; got {type(x).__name__}")
    if not real_float_dtype(x):
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64); got {_dtype_name(x)}. "
            "Convert integer images with skimage.util.img_as_float first."
        )
    finite = be.xp.all(be.xp.isfinite(x.detach() if is_torch(x) else x))
    if not bool(finite):
        n_bad = int(be.xp.sum(be.xp.astype(~be.xp.isfinite(x), be.xp.int64)))
        raise ValueError(f"{name} must contain only finite values; got {n_bad} NaN or inf entries")


def check_psf(psf: Any, be: Backend, name: str = "psf", *, allow_zero_sum: bool = False) -> int:
    """Check a 2-D, odd-sided, finite, non-zero-sum kernel; return its side length."""
    check_array(psf, name, be)
    if psf.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, n); got {psf.ndim}-D array of shape {tuple(psf.shape)}")
    n0, n1 = (int(s) for s in psf.shape)
    if n0 != n1 or n0 % 2 == 0:
        raise ValueError(
            f"{name} must be square with an odd side (origin at the centre pixel); got shape {(n0, n1)}"
        )
    if not allow_zero_sum:
        total = scalar(be.xp.sum(psf))
        mass = scalar(be.xp.sum(be.xp.abs(psf)))
        if mass == 0.0 or abs(total) <= 64 * np.finfo(np.dtype(_dtype_name(psf))).eps * mass:
            raise ValueError(f"{name} must have a non-zero sum (a PSF carries light); got sum {total:.3g}")
    return n0


def check_image(image: Any, be: Backend, name: str = "image") -> None:
    """Check an (H, W) or (H, W, C) finite float image."""
    check_array(image, name, be)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be (H, W) or (H, W, C); got {image.ndim}-D array of shape {tuple(image.shape)}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must be non-empty; got shape {tuple(image.shape)}")


def check_factor(factor: Any, name: str = "factor") -> int:
    """Check an integer factor >= 1 (bool and non-integral floats are refused)."""
    if isinstance(factor, bool) or not isinstance(factor, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1; got {factor!r} of type {type(factor).__name__}")
    if factor < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {factor}")
    return int(factor)


def check_eps(eps: Any, name: str = "eps") -> float:
    """Check a finite non-negative noise parameter (Python or 0-d array); return it as float."""
    try:
        value = float(eps)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a non-negative real number; got {eps!r}") from err
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value}")
    return value


def check_odd_size(size: Any, minimum: int, name: str = "size") -> int:
    """Check an odd integer side length >= ``minimum``."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"{name} must be an odd integer; got {size!r} of type {type(size).__name__}")
    if size % 2 == 0:
        raise ValueError(f"{name} must be odd (origin at the centre pixel); got {size}")
    if size < minimum:
        raise ValueError(f"{name} must be >= the psf side {minimum}; got {size}")
    return int(size)
