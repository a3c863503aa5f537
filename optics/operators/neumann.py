"""Truncated Neumann series for the inverse of a blur, and NRKNet's cross-scale fusion.

For a blur operator :math:`K` with spectral radius :math:`\\rho(I - K) < 1`,

.. math:: K^{-1} = \\sum_{n=0}^{\\infty} (I - K)^n ,

so :math:`\\sum_{n=0}^{N-1} (I - K)^n y` approximates the sharp image using nothing but
applications of :math:`K` (NRKNet Eq. 7-8). For a convolution with kernel ``k`` the eigenvalues of
:math:`I - K` are :math:`1 - \\hat k(\\omega)`: the series converges iff
:math:`|1 - \\hat k(\\omega)| < 1` at every frequency, which holds for a Gaussian (``k_hat`` in
(0, 1]) and fails for a disc (its transfer function has negative lobes, where
:math:`1 - \\hat k > 1` and the partial sums grow geometrically).

Public functions: :func:`neumann_inverse`, :func:`neumann_cross_scale` (Eq. 10),
:func:`neumann_converges`, :func:`neumann_contraction`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from .._backend import namespace, to_numpy
from .._validate import check_array, check_image, check_psf

__all__ = [
    "neumann_inverse",
    "neumann_cross_scale",
    "neumann_converges",
    "neumann_contraction",
    "NeumannDivergenceWarning",
    "downsample_nearest",
    "upsample_bilinear",
]


class NeumannDivergenceWarning(RuntimeWarning):
    """The Neumann series of the given convolution does not converge (|1 - K_hat| >= 1 somewhere)."""


def _check_terms(terms: Any, name: str = "terms") -> int:
    if isinstance(terms, bool) or not isinstance(terms, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1; got {terms!r} of type {type(terms).__name__}")
    if terms < 1:
        raise ValueError(f"{name} must be >= 1 (the first term is y itself); got {terms}")
    return int(terms)


def _contraction_grid(psf: np.ndarray, shape: tuple[int, int] | None) -> tuple[int, int]:
    n = int(psf.shape[0])
    if shape is None:
        side = max(256, 8 * n)
        return side, side
    if len(shape) != 2 or any(int(s) < n for s in shape):
        raise ValueError(f"shape must be (H, W) with both sides >= the psf side {n}; got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def neumann_contraction(psf: Any, shape: tuple[int, int] | None = None) -> float:
    r"""Largest :math:`|1 - \hat k(\omega)|` of a convolution kernel (the contraction factor).

    Parameters
    ----------
    psf : array, shape (n, n), odd n
        Centred kernel (NumPy, CuPy or torch; evaluated in float64 on the host).
    shape : (H, W), optional
        Evaluate on the frequencies of the periodic ``(H, W)`` grid (the exact eigenvalues of
        circular convolution on that grid). Default: a dense ``max(256, 8 n)`` square grid, i.e.
        samples of the continuous transfer function (the criterion for any image size).

    Returns
    -------
    float
        :math:`\max_\omega |1 - \hat k(\omega)|`; the error of the ``N``-term series on the
        frequency ``\omega`` is :math:`|1 - \hat k(\omega)|^N` times the true component.

    Notes
    -----
    Eigenvalues of :math:`I - K` for circular convolution are :math:`1 - \hat k(\omega)`, so
    :math:`\rho(I - K) = \max_\omega |1 - \hat k(\omega)|`. Other boundaries (symmetric,
    zero) change the eigenvectors near the border but not this frequency-domain picture.
    """
    be = namespace(psf)
    check_psf(psf, be)
    k = to_numpy(psf).astype(np.float64)
    grid = _contraction_grid(k, shape)
    from .fourier import psf_to_otf

    otf = psf_to_otf(k, grid)
    return float(np.max(np.abs(1.0 - otf)))


def neumann_converges(psf: Any, shape: tuple[int, int] | None = None, *, tol: float = 0.0) -> bool:
    r"""Whether the Neumann series of convolution with ``psf`` converges: :math:`|1 - \hat k| < 1` everywhere.

    Parameters
    ----------
    psf, shape
        As in :func:`neumann_contraction`.
    tol : float >= 0, default 0
        Accept a contraction factor up to ``1 + tol``. With the default the test is the strict
        mathematical one.

    Returns
    -------
    bool
        True iff :func:`neumann_contraction` is below ``1 + tol``. A disc (pillbox) of radius
        >= 1 gives False (factor about 1.09-1.16). A sampled Gaussian truncated at
        ``radius = ceil(4 sigma)`` gives True up to sigma = 1.5; for wider ones the truncation puts
        tiny negative lobes (about -2e-5) into its transfer function, so strictly the series
        diverges there, by a factor ``1 + 2e-5`` per term (irrelevant for any practical number
        of terms; pass e.g. ``tol=1e-4``).

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 6-7 (the condition :math:`\rho(\mathcal{I} - \mathcal{D}) < 1`).
    """
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be finite and >= 0; got {tol}")
    return neumann_contraction(psf, shape) < 1.0 + tol


def neumann_inverse(
    y: Any,
    blur: Callable[[Any], Any] | Any,
    terms: int,
    *,
    boundary: str = "symmetric",
    return_partial_sums: bool = False,
) -> Any:
    r"""Approximate :math:`K^{-1} y` by the truncated Neumann series :math:`\sum_{n<N} (I - K)^n y`.

    Parameters
    ----------
    y : array
        Blurred image (NumPy, CuPy or torch, float32/float64). Any shape ``blur`` accepts; an
        ``(H, W)`` or ``(H, W, C)`` image when ``blur`` is a PSF.
    blur : callable or array (n, n)
        The linear blur :math:`K`: a function mapping an array like ``y`` to one of the same
        shape (e.g. ``lambda x: rkr_blur(x, gamma, a)``), or a centred PSF, in which case
        :math:`K x` = ``optics.convolve(x, psf, boundary)`` and convergence is checked first.
    terms : int >= 1
        Number of terms :math:`N` (``terms=1`` returns ``y``; NRKNet Eq. 8 uses 4).
    boundary : str, default 'symmetric'
        Boundary of :func:`optics.convolve` when ``blur`` is a PSF; ignored for callables.
    return_partial_sums : bool, default False
        Also return the list of the ``terms`` partial sums :math:`S_1, \dots, S_N`.

    Returns
    -------
    x : array like ``y``
        :math:`S_N = \sum_{n=0}^{N-1} (I - K)^n y`. With ``return_partial_sums``: ``(x, sums)``.

    Warns
    -----
    NeumannDivergenceWarning
        When ``blur`` is a PSF whose contraction factor :math:`\rho = \max |1 - \hat k|`
        exceeds 1 by enough to show within the requested terms, i.e. when the worst frequency's
        amplification :math:`\rho^{N-1}` exceeds 1.001 (e.g. any disc PSF: the partial sums grow
        without bound there). Truncated wide Gaussians (:math:`\rho - 1 \approx 2 \cdot 10^{-5}`)
        do not warn for fewer than about 50 terms. No check is possible for a general callable;
        use :func:`neumann_contraction` on a representative kernel.

    Raises
    ------
    TypeError, ValueError
        Non-float ``y``, ``terms`` not a positive integer, ``blur`` neither callable nor a valid
        PSF, or ``blur`` returning an array of another shape.

    Notes
    -----
    .. math::

        K^{-1} = \sum_{n=0}^{\infty} (I - K)^n \quad (\text{Eq. 7}), \qquad
        S_N = y + \sum_{n=1}^{N-1} (I - K)^n y \quad (\text{Eq. 8, } N = 4),

    computed with :math:`N - 1` applications of :math:`K`: ``r_0 = y``,
    ``r_n = r_{n-1} - K r_{n-1}``, ``S_N = r_0 + ... + r_{N-1}``. The error is
    :math:`K^{-1} y - S_N = (I - K)^N K^{-1} y`.

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 6-8.

    Examples
    --------
    >>> import numpy as np
    >>> from optics import gaussian_psf, convolve
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((32, 32)); psf = gaussian_psf(0.7)
    >>> y = convolve(x, psf)
    >>> e1 = np.linalg.norm(neumann_inverse(y, psf, 1) - x)
    >>> e8 = np.linalg.norm(neumann_inverse(y, psf, 8) - x)
    >>> bool(e8 < e1)
    True
    """
    terms = _check_terms(terms)
    be = namespace(y)
    check_array(y, "y", be)
    if not callable(blur):
        if not hasattr(blur, "shape"):
            raise TypeError(
                f"blur must be a callable (the operator K) or a PSF array; got {type(blur).__name__}"
            )
        check_image(y, be, "y")
        psf = blur
        check_psf(psf, namespace(psf), "blur")
        rho = neumann_contraction(psf)
        if rho > 1.0 and (terms - 1) * np.log(rho) > np.log(1.001):
            warnings.warn(
                f"the Neumann series of this PSF diverges: max |1 - K_hat| = {rho:.6g} > 1, so the "
                f"worst frequency is amplified by {rho ** (terms - 1):.4g} after {terms} terms "
                "(e.g. a disc PSF, whose transfer function has negative lobes)",
                NeumannDivergenceWarning,
                stacklevel=2,
            )
        from .convolution import convolve

        def blur(x: Any) -> Any:  # noqa: F811 - the PSF becomes its convolution operator
            return convolve(x, psf, boundary)

    residual = y
    total = y
    sums = [y] if return_partial_sums else None
    for _ in range(terms - 1):
        blurred = blur(residual)
        if tuple(blurred.shape) != tuple(residual.shape):
            raise ValueError(
                f"blur must return an array of its input's shape {tuple(residual.shape)}; "
                f"got {tuple(blurred.shape)}"
            )
        residual = residual - blurred
        total = total + residual
        if sums is not None:
            sums.append(total)
    return (total, sums) if return_partial_sums else total


# ---------------------------------------------------------------------------------------------
# resampling used by the cross-scale fusion (NRKNet official code: nearest down, bilinear up)
# ---------------------------------------------------------------------------------------------
def downsample_nearest(image: Any, factor: int) -> Any:
    """Keep every ``factor``-th pixel of an ``(H, W[, C])`` image (``x[::f, ::f]``).

    Equals ``torch.nn.functional.interpolate(scale_factor=1/f, mode='nearest')`` on sizes
    divisible by ``f`` (what NRKNet's official code uses for its input pyramid).
    """
    return image[::factor, ::factor]


def _linear_indices(n_in: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(n_in * factor) + 0.5) / factor - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def upsample_bilinear(image: Any, factor: int) -> Any:
    """Bilinear upsampling of an ``(H, W[, C])`` image by an integer factor (half-pixel centres).

    Output ``(f H, f W[, C])``; sample ``o`` reads input position ``(o + 0.5) / f - 0.5`` clamped
    to the image, i.e. ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)``
    (NRKNet's official upsampling). NumPy, CuPy and torch (differentiable).
    """
    be = namespace(image)
    xp = be.xp
    dev = be.device(image)
    out = image
    for axis in (0, 1):
        i0, i1, w = _linear_indices(int(image.shape[axis]), factor)
        shape = [1] * image.ndim
        shape[axis] = -1
        wt = xp.reshape(xp.asarray(w, dtype=image.dtype, device=dev), tuple(shape))
        a = xp.take(out, xp.asarray(i0, device=dev), axis=axis)
        b = xp.take(out, xp.asarray(i1, device=dev), axis=axis)
        out = a + wt * (b - a)
    return out


def neumann_cross_scale(
    y: Any,
    blurs: Sequence[Callable[[Any], Any]],
    *,
    downsample: Callable[[Any, int], Any] = downsample_nearest,
    upsample: Callable[[Any, int], Any] = upsample_bilinear,
) -> Any:
    r"""NRKNet's cross-scale fusion (Eq. 10): the ``t``-th Neumann term computed at scale ``t``.

    Parameters
    ----------
    y : array, shape (H, W) or (H, W, C)
        Blurred image; ``H`` and ``W`` must be divisible by :math:`2^{T-1}`.
    blurs : sequence of T callables
        ``blurs[t - 1]`` is :math:`\mathcal{D}_t`, the blur at scale ``t`` (images downsampled by
        :math:`2^{t-1}`). NRKNet uses ``T = 3``.
    downsample : callable (image, factor) -> image, default :func:`downsample_nearest`
    upsample : callable (image, factor) -> image, default :func:`upsample_bilinear`

    Returns
    -------
    z0 : array like ``y``

    Notes
    -----
    .. math::

        Z_0 = Y_1 + \sum_{t=1}^{T} \big((\mathcal{I} - \mathcal{D}_t)^t\, Y_t\big)_{\uparrow 2^{t-1}},
        \qquad Y_t = Y_{\downarrow 2^{t-1}}

    For ``T = 3`` this is Eq. 10,
    :math:`Z_0 = Y_1 + (\mathcal{I} - \mathcal{D}_1) Y_1 + ((\mathcal{I} - \mathcal{D}_2)^2 Y_2)_{\uparrow 2}
    + ((\mathcal{I} - \mathcal{D}_3)^3 Y_3)_{\uparrow 4}`, the 4-term series of Eq. 8 with the
    higher powers evaluated on smaller images. Cost: ``sum_t t / 4^{t-1}`` blur applications at
    full resolution (1.69 for T = 3, against 3 for Eq. 8).

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 9-10.
    """
    be = namespace(y)
    check_image(y, be, "y")
    blurs = list(blurs)
    if not blurs or not all(callable(b) for b in blurs):
        raise TypeError(f"blurs must be a non-empty sequence of callables (one blur per scale); got {blurs!r}")
    n_scales = len(blurs)
    step = 2 ** (n_scales - 1)
    h, w = int(y.shape[0]), int(y.shape[1])
    if h % step or w % step:
        raise ValueError(
            f"y's height and width must be divisible by 2^(T-1) = {step} for T = {n_scales} scales; "
            f"got {(h, w)}. Pad or crop the image explicitly first."
        )
    total = y
    for t, blur in enumerate(blurs, start=1):
        factor = 2 ** (t - 1)
        y_t = y if factor == 1 else downsample(y, factor)
        term = y_t
        for _ in range(t):
            term = term - blur(term)
        if factor > 1:
            term = upsample(term, factor)
        if tuple(term.shape) != tuple(y.shape):
            raise ValueError(
                f"scale {t}: the upsampled term has shape {tuple(term.shape)}, expected {tuple(y.shape)}"
            )
        total = total + term
    return total
