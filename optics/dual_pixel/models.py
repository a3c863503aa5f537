r"""Dual-pixel (DP) point-spread functions: left/right sub-aperture PSFs for a signed CoC radius.

A DP sensor splits every pixel into a left and a right photodiode, each seeing one half of the
lens aperture. A defocused point therefore gives two half-aperture PSFs whose average is the
ordinary full-aperture PSF (K3DN Eq. 2) and which are mirror images of each other about the
vertical axis (K3DN Eq. 1, footnote). Their centroids are displaced in opposite directions by an
amount proportional to the CoC radius, which is the DP disparity.

Two models are provided (``model=``):

``'half_disc'``
    The full PSF is an anti-aliased disc (:func:`optics.disc_psf`); each view keeps one half of it
    (Punnappurath et al., ICCP 2020, ideal-lens case). The column through the centre is shared.
``'butterworth'``
    Abuolaim et al., ICCV 2021: the disc multiplied by a radial Butterworth high-pass profile
    rescaled to ``[beta, 1]`` (a brighter rim, as in measured DP PSFs), smoothed by a Gaussian
    whose window is ``kappa = 1/7`` of the kernel size; each view weights it with a linear ramp
    across the kernel (0 on one side, 1 on the other).

The calibrated, field-varying model fitted to measured kernels is in :mod:`optics.dual_pixel.calibrated`,
the fitting in :mod:`optics.dual_pixel.fit`; :mod:`optics` exports all of them.

Conventions
-----------
* Kernels have an odd side, origin at the centre pixel, and are NumPy arrays of ``dtype``.
* For a **positive** CoC (behind the focal plane) the **left** PSF carries its light at
  ``x > 0`` (columns right of the centre), as in the authors' synthesis code; a negative CoC swaps
  left and right. ``coc_radius = 0`` gives the 1x1 delta for both views.
* Every PSF (left, right, full) sums to 1 (to rounding).
* ``right == left[:, ::-1]`` and ``(left + right) / 2 == full_aperture_psf(...)`` hold **bitwise**
  (see Notes of :func:`dual_pixel_psfs` for how the split is made exact in floating point).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .base import DualPixelPSFs, _check_coc, _check_dtype
from ..psf.shapes import disc_psf, gaussian_psf

__all__ = ["DualPixelPSFs", "dual_pixel_psfs", "full_aperture_psf", "psf_half_size", "DP_MODELS"]

#: Names accepted by ``model=``.
DP_MODELS = ("half_disc", "butterworth")

_BUTTERWORTH_ORDERS = (3, 6, 9)


def _check_model_options(model: str, order: Any, beta: Any, cutoff_factor: Any, kappa: Any, vignetting: Any):
    if model not in DP_MODELS:
        raise ValueError(f"model must be one of {DP_MODELS}; got {model!r}")
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order must be a positive integer (the paper uses 3, 6 or 9); got {order!r}")
    for name, value, lo, hi, lo_open in (
        ("beta", beta, 0.0, 1.0, False),
        ("cutoff_factor", cutoff_factor, 0.0, math.inf, True),
        ("kappa", kappa, 0.0, 1.0, True),
        ("vignetting", vignetting, 0.0, 1.0, False),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {value!r} of type {type(value).__name__}")
        v = float(value)
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if name == "vignetting" else v <= hi)
        if not ok:
            interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if name == 'vignetting' else ']'}"
            raise ValueError(f"{name} must lie in {interval}; got {v}")


def _gaussian_window(radius_px: float, kappa: float) -> tuple[int, float]:
    """Half side and sigma of the smoothing Gaussian of the Butterworth model (authors' rule).

    Window side ``round(kappa (2 r + 1)) + 1`` made odd, sigma from OpenCV's default for that side,
    ``0.3 ((side - 1) / 2 - 1) + 0.8``.
    """
    side = int(math.floor(kappa * (2.0 * radius_px + 1.0) + 0.5)) + 1
    if side % 2 == 0:
        side += 1
    sigma = 0.3 * ((side - 1) * 0.5 - 1.0) + 0.8
    return (side - 1) // 2, sigma


def psf_half_size(coc_radius: float, model: str = "half_disc", *, kappa: float = 1.0 / 7.0) -> int:
    """Half side ``h`` of the smallest kernel (side ``2 h + 1``) that :func:`dual_pixel_psfs` returns.

    ``ceil(|c| + 1/2) - 1`` for the disc, plus the Gaussian window's half side for ``'butterworth'``.
    """
    c = abs(_check_coc(coc_radius))
    if c == 0.0:
        return 0
    h = max(math.ceil(c + 0.5) - 1, 0)
    if model == "butterworth":
        h += _gaussian_window(c, kappa)[0]
    elif model != "half_disc":
        raise ValueError(f"model must be one of {DP_MODELS}; got {model!r}")
    return h


def _embed(kernel: np.ndarray, half: int) -> np.ndarray:
    """Zero-pad a centred odd kernel to side ``2 half + 1``."""
    h0 = kernel.shape[0] // 2
    if h0 == half:
        return kernel
    out = np.zeros((2 * half + 1, 2 * half + 1), dtype=kernel.dtype)
    out[half - h0 : half + h0 + 1, half - h0 : half + h0 + 1] = kernel
    return out


def _full_psf_float64(c: float, model: str, order: int, beta: float, cutoff_factor: float, kappa: float, vignetting: float, half: int) -> np.ndarray:
    """The full-aperture PSF of |c| in float64, embedded at half side ``half`` (not yet symmetrised)."""
    r = abs(c)
    disc = _embed(disc_psf(r), half) if r > 0 else _embed(np.ones((1, 1)), half)
    x = np.arange(-half, half + 1, dtype=np.float64)
    rho = np.hypot(x[:, None], x[None, :])
    profile = disc
    if vignetting > 0 and r > 0:
        # natural fall-off across the pupil: 1 at the centre, 1 - vignetting at the rim
        profile = profile * (1.0 - vignetting * np.minimum(rho / r, 1.0) ** 2)
    if model == "butterworth" and r > 0:
        d0 = 2.0 * r / cutoff_factor  # authors: (k - 1) / cut_off_factor with k = 2 r + 1
        hp = (rho / d0) ** (2 * order)
        hp = hp / (1.0 + hp)
        hp_max = (math.sqrt(2.0) * r / d0) ** (2 * order)  # corner of the (2r+1)^2 box, as the authors
        hp_max = hp_max / (1.0 + hp_max)
        rim = beta + (1.0 - beta) * np.minimum(hp / hp_max, 1.0)
        profile = profile * rim
        g_half, sigma = _gaussian_window(r, kappa)
        if g_half > 0:
            from scipy.signal import convolve2d

            g = gaussian_psf(sigma, g_half)
            profile = convolve2d(profile, g, mode="same")
    return profile / profile.sum()


def full_aperture_psf(
    coc_radius: float,
    model: str = "half_disc",
    *,
    order: int = 3,
    beta: float = 0.1,
    cutoff_factor: float = 2.5,
    kappa: float = 1.0 / 7.0,
    vignetting: float = 0.0,
    size: int | None = None,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Full-aperture (conventional-pixel) PSF of ``model``; equals ``(left + right) / 2`` bitwise.

    Parameters are those of :func:`dual_pixel_psfs`. The kernel is symmetric about the vertical
    axis (bitwise) and depends on ``|coc_radius|`` only.

    Returns
    -------
    ndarray, shape (size, size)
    """
    c = _check_coc(coc_radius)
    dt = _check_dtype(dtype)
    _check_model_options(model, order, beta, cutoff_factor, kappa, vignetting)
    half = _resolve_half(c, model, kappa, size)
    k = _full_psf_float64(c, model, int(order), float(beta), float(cutoff_factor), float(kappa), float(vignetting), half)
    k = k.astype(dt)
    return (k + k[:, ::-1]) / dt.type(2)  # exact left-right symmetry (addition commutes)


def _resolve_half(c: float, model: str, kappa: float, size: Any) -> int:
    need = psf_half_size(c, model, kappa=kappa)
    if size is None:
        return need
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"size must be an odd integer or None; got {size!r} of type {type(size).__name__}")
    if size % 2 == 0 or size < 2 * need + 1:
        raise ValueError(
            f"size must be odd and >= {2 * need + 1} (the support of a CoC radius {c} for model {model!r}); got {size}"
        )
    return (int(size) - 1) // 2


def dual_pixel_psfs(
    coc_radius: float,
    model: str = "half_disc",
    *,
    order: int = 3,
    beta: float = 0.1,
    cutoff_factor: float = 2.5,
    kappa: float = 1.0 / 7.0,
    vignetting: float = 0.0,
    size: int | None = None,
    dtype: Any = np.float64,
) -> DualPixelPSFs:
    r"""Left and right dual-pixel PSFs for a signed circle-of-confusion radius.

    Parameters
    ----------
    coc_radius : float
        Signed CoC radius in pixels (see :mod:`optics.psf.thin_lens`): positive behind the focal
        plane, negative in front of it. The sign swaps left and right.
    model : {'half_disc', 'butterworth'}
        ``'half_disc'``: each view is one half of the anti-aliased disc (Punnappurath et al.).
        ``'butterworth'``: Abuolaim et al.'s rim-weighted, Gaussian-smoothed disc split by a
        linear ramp.
    order : int
        Butterworth order n (the paper samples 3, 6, 9). ``'butterworth'`` only.
    beta : float in [0, 1]
        Lower end of the rescaled Butterworth profile (the centre's relative intensity; the paper
        samples 0.1, 0.2). ``'butterworth'`` only.
    cutoff_factor : float > 0
        Butterworth cut-off radius is ``2 |c| / cutoff_factor`` (the paper samples 2.5 and 2).
        ``'butterworth'`` only.
    kappa : float in (0, 1]
        Gaussian smoothing strength: window side ``round(kappa (2 |c| + 1)) + 1`` (made odd),
        OpenCV's default sigma for that side (``kappa = 1/7`` in the paper). ``'butterworth'`` only.
    vignetting : float in [0, 1)
        Optional radial fall-off across the pupil applied to the full PSF before the split:
        weight ``1 - vignetting (rho / |c|)^2`` (1 at the centre, ``1 - vignetting`` at the rim).
        Both models; 0 (default) disables it.
    size : odd int, optional
        Side of the returned kernels (zero-padded); default the smallest support
        (:func:`psf_half_size`). Smaller than the support raises ``ValueError``.
    dtype : float32 or float64

    Returns
    -------
    DualPixelPSFs
        Named tuple ``(left, right)`` of ``(size, size)`` arrays; ``.full`` is their average.

    Raises
    ------
    TypeError
        Non-real ``coc_radius`` or option, or a dtype other than float32/float64.
    ValueError
        Non-finite ``coc_radius``, unknown model, options out of range, bad ``size``.

    Notes
    -----
    With the full-aperture PSF :math:`K` (symmetric about the vertical axis) and a split weight
    :math:`w(x) \in [0, 1]` with :math:`w(x) + w(-x) = 1`,

    .. math:: K_L(x, y) = 2 w(x) K(x, y), \quad K_R(x, y) = K_L(-x, y), \quad
              \tfrac12 (K_L + K_R) = K

    (K3DN Eq. 1-2). ``half_disc`` uses the step :math:`w = [x > 0] + \tfrac12 [x = 0]`,
    ``butterworth`` the ramp :math:`w = \tfrac12 + x / (2h)` over the kernel's half side
    :math:`h`; for :math:`c < 0`, :math:`w(x) \to w(-x)`. The ``butterworth`` full PSF is

    .. math:: K \propto G_\sigma * \Big( D_r \cdot \big[\beta + (1 - \beta)\,
              \tfrac{H(\rho)}{H(\sqrt2 r)}\big] \Big), \quad
              H(\rho) = \frac{(\rho / D_0)^{2n}}{1 + (\rho / D_0)^{2n}},\ D_0 = 2r / \text{cutoff}

    with :math:`D_r` the anti-aliased disc of radius :math:`r = |c|`.

    Exactness in floating point: on the heavier side the kernel stores
    :math:`p = \mathrm{fl}(2K \max(w, 1 - w)) \in [K, 2K]`, on the lighter side
    :math:`q = 2K - p`, which is exact by Sterbenz's lemma; so :math:`p + q = 2K` exactly and
    ``(left + right) / 2`` reproduces ``full_aperture_psf`` bit for bit, and ``right`` is
    ``left[:, ::-1]`` by construction.

    References
    ----------
    .. [1] A. Punnappurath, A. Abuolaim, M. Afifi, M. S. Brown, "Modeling Defocus-Disparity in
       Dual-Pixel Sensors", ICCP 2020.
    .. [2] A. Abuolaim, M. Delbracio, D. Kelly, M. S. Brown, P. Milanfar, "Learning to Reduce
       Defocus Blur by Realistically Modeling Dual-Pixel Data", ICCV 2021 (Sec. 3, Butterworth
       DP-PSF model; authors' code ``generate_bw_kernel.py``).
    .. [3] Y. Yang et al., "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel Defocus
       Deblurring", CVPR 2023, Eq. 1-2.

    Examples
    --------
    >>> left, right = dual_pixel_psfs(5.0)
    >>> bool((right == left[:, ::-1]).all()), bool(((left + right) / 2 == full_aperture_psf(5.0)).all())
    (True, True)
    """
    c = _check_coc(coc_radius)
    dt = _check_dtype(dtype)
    full = full_aperture_psf(
        c, model, order=order, beta=beta, cutoff_factor=cutoff_factor, kappa=kappa, vignetting=vignetting, size=size, dtype=dt
    )
    half = full.shape[0] // 2
    if half == 0:
        return DualPixelPSFs(full.copy(), full.copy())
    x = np.arange(-half, half + 1)
    if model == "half_disc":
        major = np.where(x == 0, 0.5, 1.0)
    else:
        major = 0.5 + np.abs(x) / (2.0 * half)
    twice = full * dt.type(2)  # exact
    heavy = twice * major.astype(dt)[None, :]  # in [K, 2K] (rounding is monotone)
    light = twice - heavy  # exact (Sterbenz)
    side = x > 0 if c > 0 else x < 0  # columns where the left view is the heavier one
    left = np.where(side[None, :], heavy, light)
    left[:, half] = full[:, half]  # w = 1/2 on the centre column: K exactly
    right = np.ascontiguousarray(left[:, ::-1])
    return DualPixelPSFs(left, right)

