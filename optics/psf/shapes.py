"""Parametric point-spread functions: sampled Gaussian and anti-aliased disc (pillbox)."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["gaussian_psf", "disc_psf", "MAX_PSF_RADIUS", "MAX_PSF_WORK_BYTES"]

#: Largest PSF half side accepted (a 4097 x 4097 kernel, 128 MiB in float64): larger requests are
#: refused with a clear error instead of trying to allocate tens of GiB (``gaussian_psf(1e4)``
#: would need a 80001 x 80001 kernel, 47.7 GiB). Defocus blur wider than a photo is not a PSF.
MAX_PSF_RADIUS = 2048
#: Largest temporary working memory of one PSF construction (the disc's sub-pixel coverage grid).
MAX_PSF_WORK_BYTES = 2 * 2**30


def _check_size(radius: int, what: str, bytes_per_tap: int) -> None:
    side = 2 * radius + 1
    if radius > MAX_PSF_RADIUS:
        raise ValueError(
            f"{what} needs a {side} x {side} kernel ({side * side * bytes_per_tap / 2**30:.1f} GiB); PSFs are "
            f"limited to radius <= {MAX_PSF_RADIUS} px ({2 * MAX_PSF_RADIUS + 1} x {2 * MAX_PSF_RADIUS + 1}, "
            "optics.psf.shapes.MAX_PSF_RADIUS)"
        )


def _check_float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dt}")
    return dt


def _check_nonneg_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0; got {value!r} of type {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value}")
    return float(value)


def _check_radius(radius, name="radius"):
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0 (half side length); got {radius!r}")
    if radius < 0:
        raise ValueError(f"{name} must be >= 0; got {radius}")
    return int(radius)


def gaussian_psf(sigma: float, radius: int | None = None, *, dtype=np.float64) -> np.ndarray:
    r"""Sampled isotropic Gaussian PSF, normalised to unit sum.

    Parameters
    ----------
    sigma : float >= 0
        Standard deviation in pixels. ``sigma = 0`` gives the delta kernel.
    radius : int, optional
        Half side length; the kernel is ``(2 radius + 1, 2 radius + 1)``. Default
        ``ceil(4 sigma)``.
    dtype : float32 or float64

    Returns
    -------
    psf : ndarray, shape (2 radius + 1, 2 radius + 1)
        Origin at the centre pixel, sum 1.

    Notes
    -----
    .. math:: k[x, y] = \frac{1}{Z} \exp\!\left(-\frac{x^2 + y^2}{2 \sigma^2}\right), \quad
              Z = \sum_{x, y} \exp\!\left(-\frac{x^2 + y^2}{2 \sigma^2}\right)

    Point sampling, not pixel integration: for ``sigma >= 1.5`` the discrete sum differs from the
    continuous normalisation :math:`2 \pi \sigma^2` by less than 1e-15 (Poisson summation), so
    ``gaussian_psf(s * sigma)`` is the Fourier upsampling of ``gaussian_psf(sigma)`` (KPAC
    supplementary Fig. 1; see ``validation.kernel_upsampling``).
    """
    sigma = _check_nonneg_real(sigma, "sigma")
    dt = _check_float_dtype(dtype)
    r = math.ceil(4 * sigma) if radius is None else _check_radius(radius)
    _check_size(r, f"gaussian_psf(sigma={sigma:g}" + (")" if radius is None else f", radius={r})"), 8)
    if sigma == 0.0:
        out = np.zeros((2 * r + 1, 2 * r + 1), dtype=dt)
        out[r, r] = 1
        return out
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return (k / k.sum()).astype(dt)


def disc_psf(radius: float, *, supersample: int = 33, dtype=np.float64) -> np.ndarray:
    r"""Anti-aliased disc (pillbox) PSF of the given radius, normalised to unit sum.

    Parameters
    ----------
    radius : float >= 0
        Disc radius in pixels (the circle-of-confusion radius). ``0`` gives the delta kernel.
    supersample : int, optional
        Each pixel's coverage of the disc is estimated on a ``supersample x supersample`` grid of
        sub-pixel centres (default 33, coverage error below ~1/(2 * 33) of a boundary pixel).
    dtype : float32 or float64

    Returns
    -------
    psf : ndarray, shape (2 h + 1, 2 h + 1), ``h = ceil(radius + 1/2) - 1``
        The smallest odd support holding every pixel the disc touches; origin at the centre.

    Notes
    -----
    .. math:: k[x, y] = \frac{1}{Z} \left| [x - \tfrac12, x + \tfrac12] \times
              [y - \tfrac12, y + \tfrac12] \cap \{u^2 + v^2 \le r^2\} \right|
    """
    r = _check_nonneg_real(radius, "radius")
    dt = _check_float_dtype(dtype)
    if isinstance(supersample, bool) or not isinstance(supersample, numbers.Integral) or supersample < 1:
        raise ValueError(f"supersample must be an integer >= 1; got {supersample!r}")
    h = max(math.ceil(r + 0.5) - 1, 0)
    side = 2 * h + 1
    if r == 0.0:
        out = np.zeros((1, 1), dtype=dt)
        out[0, 0] = 1
        return out
    _check_size(h, f"disc_psf(radius={r:g})", 8)
    work = side * side * supersample * 9  # one band of sub-pixel rows: float64 distances + booleans
    if work > MAX_PSF_WORK_BYTES:
        raise ValueError(
            f"disc_psf(radius={r:g}, supersample={supersample}) needs {work / 2**30:.1f} GiB of working memory "
            f"(limit {MAX_PSF_WORK_BYTES / 2**30:.0f} GiB, optics.psf.shapes.MAX_PSF_WORK_BYTES); lower supersample "
            f"(the coverage error is about 1/(2 supersample) of a boundary pixel)"
        )
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5  # sub-pixel offsets in (-0.5, 0.5)
    centres = np.arange(-h, h + 1, dtype=np.float64)
    u = (centres[:, None] + sub[None, :]).ravel()  # (side * ss,)
    u2 = u**2
    count = np.zeros((side, side), dtype=np.int64)
    for a in range(supersample):  # one sub-pixel row offset at a time: O(side^2 ss) memory, not O(side^2 ss^2)
        v2 = (centres + sub[a]) ** 2
        inside = (v2[:, None] + u2[None, :]) <= r * r  # (side, side * ss)
        count += inside.reshape(side, side, supersample).sum(axis=2)
    cover = count / float(supersample * supersample)
    if cover.sum() == 0:  # radius smaller than half a sub-pixel: all light in the centre pixel
        cover[h, h] = 1.0
    return (cover / cover.sum()).astype(dt)
