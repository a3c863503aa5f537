"""Array-namespace dispatch: one code path for NumPy, CuPy and PyTorch arrays.

Every operator in :mod:`optics` obtains ``xp`` (the array namespace of its input, via
``array_api_compat``) and ``fft`` (``scipy.fft`` for NumPy, ``cupyx.scipy.fft`` for CuPy,
``torch.fft`` for torch tensors) from :func:`namespace`, and is written once against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np
import scipy.fft

__all__ = ["Backend", "namespace", "is_torch", "is_cupy", "to_numpy", "cupy_available"]


@dataclass(frozen=True)
class Backend:
    """The array namespace of an input and the FFT module that goes with it."""

    name: str  # "numpy", "cupy" or "torch"
    xp: ModuleType
    fft: ModuleType

    def device(self, x: Any) -> Any:
        return array_api_compat.device(x)


def is_torch(x: Any) -> bool:
    return array_api_compat.is_torch_array(x)


def is_cupy(x: Any) -> bool:
    return array_api_compat.is_cupy_array(x)


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, ...
        return False


def namespace(*arrays: Any) -> Backend:
    """Return the :class:`Backend` shared by ``arrays`` (Python scalars are ignored).

    Raises
    ------
    TypeError
        If the arrays come from different libraries, or one is not an array at all.
    """
    arrays = tuple(a for a in arrays if a is not None and not isinstance(a, (int, float, bool)))
    try:
        xp = array_api_compat.array_namespace(*arrays)
    except TypeError as err:
        kinds = ", ".join(sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays}))
        raise TypeError(
            f"expected NumPy arrays, CuPy arrays or torch tensors from one library; got {kinds}"
        ) from err
    if array_api_compat.is_torch_namespace(xp):
        return Backend("torch", xp, xp.fft)  # array-API fft: fftn/ifftn/fftshift take `axes`
    if array_api_compat.is_cupy_namespace(xp):
        import cupyx.scipy.fft as cufft

        return Backend("cupy", xp, cufft)
    if array_api_compat.is_numpy_namespace(xp):
        return Backend("numpy", xp, scipy.fft)
    raise TypeError(f"unsupported array namespace {xp.__name__}; use NumPy, CuPy or torch")


def to_numpy(x: Any) -> np.ndarray:
    """Copy any supported array to a NumPy array on the host (detaching torch tensors)."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    if is_cupy(x):
        return x.get()
    return np.asarray(x)
