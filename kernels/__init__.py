"""Compute kernels (numba on the CPU, CuPy on the GPU) behind the spatially-varying operators.

Each kernel has a naive NumPy twin (plain loops) against which the tests compare it:

:mod:`kernels.spatially_varying`
    Per-pixel (gather) convolution ``y(p) = sum_q k_p(q) x(p - q)`` and its adjoint, used by
    :func:`optics.spatially_varying_blur`.
:mod:`kernels.separable_recursion`
    The 3-tap separable recursion of NRKNet's RKR blur (Eq. 4-5) and its adjoint, used by
    :func:`optics.rkr_blur` for NumPy and CuPy arrays.

The public, argument-checking entry points are in :mod:`optics`; these functions only check shapes.
"""

from .separable_recursion import (
    BOUNDARY_CODES,
    recursive_blur_adjoint_cupy,
    recursive_blur_adjoint_naive,
    recursive_blur_adjoint_numba,
    recursive_blur_cupy,
    recursive_blur_naive,
    recursive_blur_numba,
)
from .spatially_varying import (
    BOUNDARIES,
    fold_padding,
    pad_image,
    padding_indices,
    spatially_varying_adjoint_cupy,
    spatially_varying_adjoint_naive,
    spatially_varying_adjoint_numba,
    spatially_varying_cupy,
    spatially_varying_naive,
    spatially_varying_numba,
)

__all__ = [
    "BOUNDARIES",
    "BOUNDARY_CODES",
    "fold_padding",
    "pad_image",
    "padding_indices",
    "recursive_blur_adjoint_cupy",
    "recursive_blur_adjoint_naive",
    "recursive_blur_adjoint_numba",
    "recursive_blur_cupy",
    "recursive_blur_naive",
    "recursive_blur_numba",
    "spatially_varying_adjoint_cupy",
    "spatially_varying_adjoint_naive",
    "spatially_varying_adjoint_numba",
    "spatially_varying_cupy",
    "spatially_varying_naive",
    "spatially_varying_numba",
]
