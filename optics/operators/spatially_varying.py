"""Direct spatially-varying blur: one kernel per output pixel (gather form), and its adjoint.

This is the reference operator against which the fast structured models (RKR blur, depth-layered
rendering) are checked, and a general tool for any per-pixel kernel field.

Dispatch by array type: NumPy arrays run the numba kernel of
:mod:`kernels.spatially_varying` (parallel over rows), CuPy arrays its CuPy kernel, torch tensors a
pure-torch loop over the kernel rows (differentiable in the image and in the kernels).
"""

from __future__ import annotations

from typing import Any

from .._backend import Backend, namespace
from .._validate import check_array, check_image

__all__ = ["spatially_varying_blur", "spatially_varying_blur_adjoint", "SPATIALLY_VARYING_BOUNDARIES"]

#: Boundary extensions accepted (names as in :func:`optics.convolve`).
SPATIALLY_VARYING_BOUNDARIES = ("symmetric", "reflect", "periodic", "edge", "zero")
_KERNEL_MODE = {"symmetric": "symmetric", "reflect": "reflect", "periodic": "wrap", "edge": "edge", "zero": "zero"}


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def _check_args(image: Any, kernels: Any, boundary: Any, name: str) -> tuple[Backend, int]:
    be = namespace(image, kernels)
    check_image(image, be, name)
    check_array(kernels, "kernels", be)
    if kernels.ndim != 4:
        raise ValueError(
            f"kernels must be (H, W, S, S) (one S x S kernel per pixel); got {kernels.ndim}-D array "
            f"of shape {tuple(kernels.shape)}"
        )
    h, w = int(image.shape[0]), int(image.shape[1])
    if (int(kernels.shape[0]), int(kernels.shape[1])) != (h, w):
        raise ValueError(
            f"kernels must have one kernel per pixel of {name}: leading shape (H, W) = {(h, w)}; "
            f"got {tuple(int(s) for s in kernels.shape[:2])}"
        )
    s0, s1 = int(kernels.shape[2]), int(kernels.shape[3])
    if s0 != s1 or s0 % 2 == 0:
        raise ValueError(
            f"kernels must be square with an odd side S (origin at the centre tap); got {(s0, s1)}"
        )
    if kernels.dtype != image.dtype:
        raise TypeError(
            f"kernels must have the dtype of {name} ({_dtype_name(image)}); got {_dtype_name(kernels)}. "
            "Nothing is cast silently: convert it explicitly."
        )
    if boundary not in SPATIALLY_VARYING_BOUNDARIES:
        raise ValueError(f"boundary must be one of {SPATIALLY_VARYING_BOUNDARIES}; got {boundary!r}")
    if boundary == "reflect" and (h < 2 or w < 2):
        raise ValueError(f"boundary 'reflect' needs an image of at least 2x2; got {(h, w)}")
    return be, (s0 - 1) // 2


def _torch_forward(image: Any, kernels: Any, radius: int, mode: str, xp: Any) -> Any:
    from kernels.spatially_varying import pad_image

    import torch

    h = int(image.shape[0])
    s = 2 * radius + 1
    padded = pad_image(image, radius, mode, xp)  # (H + 2R, W + 2R, C)
    # windows[a, p1, c, t] = padded[a, p1 + t, c]; tap v reads column p1 + 2R - v, i.e. t = 2R - v.
    windows = padded.unfold(1, s, 1)  # (H + 2R, W, C, S)
    flipped = kernels.flip(3)  # flipped[..., u, t] = kernels[..., u, 2R - t]
    out = None
    for u in range(s):
        rows = windows[2 * radius - u : 2 * radius - u + h]  # (H, W, C, S): rows p0 + 2R - u
        term = torch.einsum("hwct,hwt->hwc", rows, flipped[:, :, u, :])
        out = term if out is None else out + term
    return out


def _torch_adjoint(values: Any, kernels: Any, radius: int, mode: str, xp: Any) -> Any:
    from kernels.spatially_varying import fold_padding

    import torch

    h, w, c = (int(n) for n in values.shape)
    s = 2 * radius + 1
    # out_padded[p0 + 2R - u, p1 + 2R - v] += kernels[p0, p1, u, v] * values[p0, p1]
    out_padded = torch.zeros((h + 2 * radius, w + 2 * radius, c), dtype=values.dtype, device=values.device)
    for u in range(s):
        for v in range(s):
            contribution = kernels[:, :, u, v, None] * values
            out_padded = out_padded + torch.nn.functional.pad(
                contribution.permute(2, 0, 1),
                (2 * radius - v, v, 2 * radius - u, u),
            ).permute(1, 2, 0)
    return fold_padding(out_padded, (h, w), radius, mode)


def _apply(image: Any, kernels: Any, boundary: str, name: str, adjoint: bool) -> Any:
    be, radius = _check_args(image, kernels, boundary, name)
    mode = _KERNEL_MODE[boundary]
    x = image[:, :, None] if image.ndim == 2 else image
    if be.name == "numpy":
        from kernels.spatially_varying import spatially_varying_adjoint_numba, spatially_varying_numba

        out = (spatially_varying_adjoint_numba if adjoint else spatially_varying_numba)(x, kernels, mode)
    elif be.name == "cupy":
        from kernels.spatially_varying import spatially_varying_adjoint_cupy, spatially_varying_cupy

        out = (spatially_varying_adjoint_cupy if adjoint else spatially_varying_cupy)(x, kernels, mode)
    else:
        out = (_torch_adjoint if adjoint else _torch_forward)(x, kernels, radius, mode, be.xp)
    return out[:, :, 0] if image.ndim == 2 else out


def spatially_varying_blur(image: Any, kernels: Any, boundary: str = "symmetric") -> Any:
    r"""Blur with a different kernel at every pixel (direct gather form).

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Sharp image, float32 or float64; NumPy, CuPy or torch (differentiable).
    kernels : array, shape (H, W, S, S), odd S
        ``kernels[p0, p1]`` is the kernel of the **output** pixel ``(p0, p1)``, origin at the centre
        tap; shared by the colour channels. Same library and dtype as ``image``; not normalised
        here (a kernel summing to ``s`` scales that pixel's brightness by ``s``).
    boundary : {'symmetric', 'reflect', 'periodic', 'edge', 'zero'}
        How ``image`` is extended beyond its border, as in :func:`optics.convolve`: half-sample
        mirror (default), whole-sample mirror, periodic, edge replication or zeros. Radii larger
        than the image are handled by repeating the extension.

    Returns
    -------
    blurred : array, shape and dtype of ``image``, same library and device.

    Raises
    ------
    TypeError
        Non-float or mixed-library input, or ``kernels`` of another dtype than ``image``.
    ValueError
        Wrong shapes (kernels not one odd square per pixel), NaN/inf, unknown ``boundary``.

    Notes
    -----
    Gather form (every output pixel pulls its value through its own kernel):

    .. math:: y(p) = \sum_{q \in [-R, R]^2} k_p(q)\, x(p - q), \qquad
              k_p(q) = \texttt{kernels}[p_0, p_1, q_0 + R, q_1 + R], \quad S = 2R + 1,

    with ``x`` outside the image given by ``boundary``. For a constant kernel field this is
    :func:`optics.convolve` (a true convolution). Cost ``H W C S^2`` multiply-adds; the kernel
    field alone takes ``H W S^2`` numbers (6.4 GB in float32 for 1024 x 1024 and S = 39), which
    is why structured models such as RKR (NRKNet Eq. 4) exist. The scatter form (each input pixel
    spreads its light with its own PSF, as a physical renderer does) is the adjoint's structure:
    ``spatially_varying_blur_adjoint(x, k)`` spreads ``x(p)`` with ``k_p`` (flipped).

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023 (the direct operator as the baseline of Eq. 4, Sec. 3.1).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(12.0).reshape(3, 4)
    >>> delta = np.zeros((3, 4, 3, 3)); delta[:, :, 1, 1] = 1.0
    >>> bool(np.array_equal(spatially_varying_blur(image, delta), image))
    True
    """
    return _apply(image, kernels, boundary, "image", adjoint=False)


def spatially_varying_blur_adjoint(y: Any, kernels: Any, boundary: str = "symmetric") -> Any:
    r"""Adjoint (transpose) of :func:`spatially_varying_blur` for the same kernels and boundary.

    Parameters
    ----------
    y : array, shape (H, W) or (H, W, C)
        Image in the range of the blur.
    kernels, boundary
        As in :func:`spatially_varying_blur`.

    Returns
    -------
    x : array, shape and dtype of ``y``
        With :math:`\langle A x', y\rangle = \langle x', A^T y\rangle` for every ``x'``.

    Notes
    -----
    Writing the blur as :math:`A = G P` (``P`` the boundary extension to the padded grid, ``G``
    the zero-boundary gather), :math:`A^T = P^T G^T` with

    .. math:: (G^T y)(s) = \sum_{q} k_{s + q}(q)\, y(s + q)

    (a gather over the padded grid, parallel without write conflicts) and :math:`P^T` adding
    every padded sample back onto the pixel it copies. It is the *scatter* blur: pixel ``p``
    spreads ``y(p)`` with ``k_p``.

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, CVPR 2023, Sec. 3.1.
    """
    return _apply(y, kernels, boundary, "y", adjoint=True)
