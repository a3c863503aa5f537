"""Image convolution and Wiener deconvolution with explicit boundary handling."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import namespace, to_numpy
from .._validate import check_array, check_eps, check_image, check_psf
from .fourier import psf_to_otf, wiener_filter

__all__ = ["convolve", "convolve_adjoint", "Convolution", "wiener_deconvolve", "nnls_blend", "BOUNDARIES"]

#: Boundary modes of :func:`convolve`, with the ``numpy.pad`` mode each maps to.
BOUNDARIES = {
    "symmetric": "symmetric",  # half-sample mirror: ... b a | a b c ... (scipy.ndimage 'reflect')
    "reflect": "reflect",  # whole-sample mirror: ... c b | a b c ... (torch 'reflect')
    "periodic": "wrap",
    "edge": "edge",
    "zero": "constant",
}


def _check_boundary(boundary: str, allowed) -> str:
    if boundary not in allowed:
        raise ValueError(f"boundary must be one of {sorted(allowed)}; got {boundary!r}")
    return boundary


def _pad(be, image, r: int, boundary: str):
    """Pad the two spatial axes of an (H, W[, C]) image by r on each side."""
    xp = be.xp
    if r == 0:
        return image
    H, W = int(image.shape[0]), int(image.shape[1])
    if boundary == "zero":
        out = xp.zeros((H + 2 * r, W + 2 * r, *image.shape[2:]), dtype=image.dtype, device=be.device(image))
        out[r : r + H, r : r + W, ...] = image
        return out
    mode = BOUNDARIES[boundary]
    if mode == "reflect" and (H < 2 or W < 2):
        raise ValueError(f"boundary 'reflect' needs an image of at least 2x2; got {(H, W)}")
    rows = np.pad(np.arange(H), r, mode=mode)
    cols = np.pad(np.arange(W), r, mode=mode)
    dev = be.device(image)
    out = xp.take(image, xp.asarray(rows, device=dev), axis=0)
    return xp.take(out, xp.asarray(cols, device=dev), axis=1)


def _pad_adjoint(be, padded, r: int, boundary: str, H: int, W: int):
    """Adjoint of :func:`_pad`: scatter-add the padded samples back onto the pixels they copy."""
    if r == 0:
        return padded
    if boundary == "zero":
        return padded[r : r + H, r : r + W, ...]
    mode = BOUNDARIES[boundary]
    rows = np.pad(np.arange(H), r, mode=mode)
    cols = np.pad(np.arange(W), r, mode=mode)
    if be.name == "torch":
        import torch

        dev = padded.device
        out = torch.zeros((H, *padded.shape[1:]), dtype=padded.dtype, device=dev)
        out = out.index_add(0, torch.as_tensor(rows, device=dev), padded)
        res = torch.zeros((H, W, *padded.shape[2:]), dtype=padded.dtype, device=dev)
        return res.index_add(1, torch.as_tensor(cols, device=dev), out)
    if be.name == "cupy":
        import cupy
        import cupyx

        out = cupy.zeros((H, *padded.shape[1:]), dtype=padded.dtype)
        cupyx.scatter_add(out, cupy.asarray(rows), padded)
        res = cupy.zeros((H, W, *padded.shape[2:]), dtype=padded.dtype)
        cupyx.scatter_add(res, (slice(None), cupy.asarray(cols)), out)
        return res
    out = np.zeros((H, *padded.shape[1:]), dtype=padded.dtype)
    np.add.at(out, rows, padded)
    res = np.zeros((H, W, *padded.shape[2:]), dtype=padded.dtype)
    np.add.at(res, (slice(None), cols), out)
    return res


def convolve(image: Any, psf: Any, boundary: str = "symmetric") -> Any:
    r"""Convolve an image with a centred kernel; output has the image's shape and dtype.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Finite float32/float64 image; each channel is convolved with the same kernel.
    psf : array, shape (n, n), odd n
        Kernel with the origin at the centre pixel (cast to the image's dtype).
    boundary : {'symmetric', 'reflect', 'periodic', 'edge', 'zero'}
        How the image is extended beyond its border before convolving: half-sample mirror
        (default; ``numpy.pad`` 'symmetric', ``scipy.ndimage`` 'reflect'), whole-sample mirror,
        periodic, edge replication or zeros.

    Returns
    -------
    array like ``image``

    Notes
    -----
    A true convolution with the origin at the centre pixel :math:`c = (n - 1)/2`:

    .. math:: (I * k)[p] = \sum_{q} k[c + q]\, I[p - q], \quad |q_x|, |q_y| \le c

    NumPy uses ``scipy.signal.fftconvolve``, CuPy ``cupyx.scipy.signal.fftconvolve``, torch
    ``torch.nn.functional.conv2d`` with the flipped kernel (differentiable in both arguments).
    """
    be = namespace(image, psf)
    check_image(image, be)
    n = check_psf(psf, be)
    _check_boundary(boundary, BOUNDARIES)
    xp = be.xp
    psf = xp.astype(psf, image.dtype)
    padded = _pad(be, image, n // 2, boundary)
    if be.name == "torch":
        import torch.nn.functional as F

        x = padded[None, None] if image.ndim == 2 else padded.permute(2, 0, 1)[:, None]
        w = psf.flip((0, 1))[None, None]
        y = F.conv2d(x, w)
        return y[0, 0] if image.ndim == 2 else y[:, 0].permute(1, 2, 0)
    if be.name == "cupy":
        from cupyx.scipy.signal import fftconvolve
    else:
        from scipy.signal import fftconvolve
    kernel = psf if image.ndim == 2 else psf[:, :, None]
    out = fftconvolve(padded, kernel, mode="valid", axes=(0, 1))
    return xp.astype(out, image.dtype, copy=False)


def convolve_adjoint(image: Any, psf: Any, boundary: str = "symmetric") -> Any:
    r"""Adjoint of :func:`convolve` for the same ``psf`` and ``boundary``.

    ``<convolve(x, k), y> == <x, convolve_adjoint(y, k)>`` for every ``x``, ``y``. The valid
    convolution's adjoint is a full correlation (convolution with the flipped kernel, 'zero'
    boundary, on the padded grid); the padding's adjoint scatter-adds each padded sample back onto
    the pixel it copied.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
    psf : array, shape (n, n), odd n
    boundary : {'symmetric', 'reflect', 'periodic', 'edge', 'zero'}

    Returns
    -------
    array like ``image``
    """
    be = namespace(image, psf)
    check_image(image, be)
    n = check_psf(psf, be)
    _check_boundary(boundary, BOUNDARIES)
    xp = be.xp
    r = n // 2
    H, W = int(image.shape[0]), int(image.shape[1])
    flipped = xp.flip(xp.flip(xp.astype(psf, image.dtype), axis=0), axis=1)
    # full correlation = 'zero'-boundary convolution of the zero-extended image with the flipped kernel
    extended = _pad(be, image, 2 * r, "zero")
    full = convolve(extended, flipped, boundary="zero")[r : r + H + 2 * r, r : r + W + 2 * r, ...]
    return _pad_adjoint(be, full, r, boundary, H, W)


class Convolution:
    """Linear operator ``x -> convolve(x, psf, boundary)`` with :meth:`adjoint` (DeepInverse style).

    Parameters
    ----------
    psf : array, shape (n, n), odd n
    boundary : str
        See :func:`convolve`.
    """

    def __init__(self, psf: Any, boundary: str = "symmetric"):
        be = namespace(psf)
        check_psf(psf, be)
        self.psf = psf
        self.boundary = _check_boundary(boundary, BOUNDARIES)

    def __call__(self, image: Any) -> Any:
        return self.forward(image)

    def forward(self, image: Any) -> Any:
        return convolve(image, self.psf, self.boundary)

    def adjoint(self, image: Any) -> Any:
        return convolve_adjoint(image, self.psf, self.boundary)

    def __repr__(self) -> str:
        return f"Convolution(psf shape={tuple(self.psf.shape)}, boundary={self.boundary!r})"


def wiener_deconvolve(
    image: Any, psf: Any, eps: float, boundary: str = "symmetric", rcond: float | None = None
) -> Any:
    r"""Deconvolve an image with the Wiener filter of a centred kernel.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Blurred float32/float64 image.
    psf : array, shape (n, n), odd n
        Blur kernel, origin at the centre pixel; ``n <= 2 H`` and ``n <= 2 W``.
    eps : float >= 0
        Noise parameter of the Wiener filter (see :func:`optics.wiener_inverse`). ``eps = 0`` is the
        direct inverse and raises ``ValueError`` where the transfer function has zeros.
    boundary : {'symmetric', 'periodic'}
        'symmetric' (default) deconvolves the whole-image mirror extension of size (2H, 2W),
        whose periodisation has no jump anywhere, so the inverse filter does not ring at the
        border; for centrosymmetric kernels and an image blurred by :func:`convolve` with
        ``boundary='symmetric'`` the result is exact (it is DCT-domain deconvolution).
        'periodic' assumes the image wraps around.
    rcond : float, optional
        Pseudo-inverse threshold for ``eps = 0`` (see :func:`optics.operators.fourier.wiener_filter`).

    Returns
    -------
    array like ``image``

    Notes
    -----
    .. math:: \hat x = F^{-1}\!\left(\frac{\overline{F(k)}}{|F(k)|^2 + \epsilon} F(y)\right)

    References
    ----------
    .. [1] N. Wiener, *Extrapolation, Interpolation, and Smoothing of Stationary Time Series*,
       MIT Press, 1964.
    .. [2] Son et al., KPAC supplementary, ICCV 2021, Eq. 2.
    """
    be = namespace(image, psf)
    check_image(image, be)
    n = check_psf(psf, be)
    eps = check_eps(eps)
    _check_boundary(boundary, ("symmetric", "periodic"))
    xp = be.xp
    H, W = int(image.shape[0]), int(image.shape[1])
    x = image if image.ndim == 3 else image[:, :, None]
    x = xp.permute_dims(x, (2, 0, 1))  # (C, H, W)
    if boundary == "symmetric":
        x = xp.concat([x, xp.flip(x, axis=-2)], axis=-2)
        x = xp.concat([x, xp.flip(x, axis=-1)], axis=-1)
    grid = (int(x.shape[-2]), int(x.shape[-1]))
    if n > grid[0] or n > grid[1]:
        raise ValueError(
            f"psf side {n} exceeds the deconvolution grid {grid} (image {(H, W)}, boundary {boundary!r})"
        )
    otf = psf_to_otf(xp.astype(psf, image.dtype), grid)
    filt = wiener_filter(otf, eps, rcond)
    out = xp.real(be.fft.ifftn(be.fft.fftn(x, axes=(-2, -1)) * filt, axes=(-2, -1)))
    out = xp.permute_dims(out[:, :H, :W], (1, 2, 0))
    out = out if image.ndim == 3 else out[:, :, 0]
    return xp.astype(out, image.dtype, copy=False)


def nnls_blend(results: Any, target: Any) -> np.ndarray:
    r"""Non-negative weights that blend several deconvolution results into a target.

    Parameters
    ----------
    results : sequence of K arrays, or array of shape (K, ...)
        Candidate images :math:`x_1, \dots, x_K` (e.g. results of inverse kernels at sampled
        scales), all of ``target``'s shape.
    target : array
        Image to approximate (e.g. the result of the inverse kernel at the target scale).

    Returns
    -------
    weights : ndarray of float64, shape (K,)

    Notes
    -----
    Solves, with ``scipy.optimize.nnls``,

    .. math:: \min_{w \ge 0} \Big\| \sum_k w_k x_k - x_t \Big\|_2^2

    as in Eq. 5 of the KPAC paper and Fig. 2 of its supplementary.
    """
    from scipy.optimize import nnls

    seq = list(results) if not hasattr(results, "shape") else [results[i] for i in range(results.shape[0])]
    if len(seq) == 0:
        raise ValueError("results must hold at least one candidate image; got none")
    tgt = to_numpy(target)
    be_t = namespace(tgt)
    check_array(tgt, "target", be_t)
    columns = []
    for i, r in enumerate(seq):
        arr = to_numpy(r)
        check_array(arr, f"results[{i}]", be_t)
        if arr.shape != tgt.shape:
            raise ValueError(f"results[{i}] must have the target's shape {tgt.shape}; got {arr.shape}")
        columns.append(arr.astype(np.float64).ravel())
    A = np.stack(columns, axis=1)
    weights, _ = nnls(A, tgt.astype(np.float64).ravel())
    return weights
