"""Operators on centred kernels: Fourier upsampling, dilation and the Wiener inverse kernel.

These are the kernel operators of the KPAC supplementary [1]_ (Sec. 2-5). Kernels are square with an
odd side and their origin at the centre pixel. Each function accepts NumPy arrays, CuPy arrays and
torch tensors (with autograd) and returns the same kind, dtype preserved.

References
----------
.. [1] H. Son, J. Lee, S. Cho, S. Lee, "Single Image Defocus Deblurring Using Kernel-Sharing
   Parallel Atrous Convolutions: Supplementary Material", ICCV 2021.
"""

from __future__ import annotations

from typing import Any

from .._backend import namespace
from .._validate import check_eps, check_factor, check_odd_size, check_psf
from .fourier import _crop_centered, otf_to_psf, periodic_upsample, psf_to_otf, wiener_filter

__all__ = ["fourier_upsample", "dilate", "wiener_inverse"]


def fourier_upsample(psf: Any, factor: int) -> Any:
    r"""Upsample a kernel by spectrum zero-padding (sinc interpolation), the paper's :math:`k_{\uparrow s}`.

    Parameters
    ----------
    psf : array, shape (n, n), odd n
        Kernel with the origin at the centre pixel.
    factor : int >= 1
        Upsampling factor :math:`s`.

    Returns
    -------
    array, shape (s (n - 1) + 1, s (n - 1) + 1)
        Values of the band-limited (n-periodic) interpolant of ``psf`` at steps of :math:`1/s`,
        origin at the centre: ``out[::s, ::s] == psf`` to rounding. The values are interpolated, so
        the sum grows by about :math:`s^2` (exactly :math:`s^2` on the full periodic grid; the
        :math:`s - 1` wrap-around samples between one period and the next are cropped).

    Notes
    -----
    KPAC supplementary Eq. 1 and 4:

    .. math:: k_{\uparrow s} = F^{-1}\big(F(k)_{\uparrow s}\big)

    where :math:`F(k)_{\uparrow s}` keeps :math:`F(k)` for :math:`-n/2 \le u, v < n/2` and is zero
    elsewhere on the :math:`sn` grid. Odd :math:`n` has no Nyquist bin and :math:`s(n - 1)` is
    even, so the centre pixel stays the origin for every :math:`s`, even or odd (no half-pixel shift).
    ``(1 / s**2) * fourier_upsample(gaussian_psf(sigma), s)`` equals ``gaussian_psf(s * sigma)`` up to
    the aliasing of the sampled input (Fig. 1). Computed by :func:`optics.operators.fourier.periodic_upsample`.

    Examples
    --------
    >>> import numpy as np
    >>> from optics import gaussian_psf, fourier_upsample
    >>> k = gaussian_psf(2.0, radius=12)
    >>> up = fourier_upsample(k, 2)
    >>> up.shape
    (49, 49)
    >>> bool(np.allclose(up[::2, ::2], k))
    True
    """
    be = namespace(psf)
    n = check_psf(psf, be)
    s = check_factor(factor)
    if s == 1:
        return be.xp.asarray(psf, copy=True) if be.name != "torch" else psf.clone()
    k0 = be.fft.ifftshift(psf, axes=(-2, -1))  # centre pixel -> [0, 0]
    up0 = periodic_upsample(k0, s)
    m = s * (n - 1) + 1
    return _crop_centered(be, up0, m, m)


def dilate(psf: Any, factor: int) -> Any:
    r"""Dilate a kernel by inserting ``factor - 1`` zeros between taps, the paper's :math:`k_{\uparrow/s}`.

    Parameters
    ----------
    psf : array, shape (n, n), odd n
    factor : int >= 1

    Returns
    -------
    array, shape (s (n - 1) + 1, s (n - 1) + 1)
        ``out[s*i, s*j] = psf[i, j]``, zero elsewhere; the sum is unchanged and the origin stays at
        the centre. Convolving with it is an atrous (dilated) convolution with rate :math:`s`.

    Notes
    -----
    .. math:: k_{\uparrow/s}[x, y] = \begin{cases} k[x/s, y/s] & s \mid x \text{ and } s \mid y \\
              0 & \text{otherwise} \end{cases}

    In the Fourier domain :math:`F(k_{\uparrow/s})(\omega) = F(k)(s\,\omega)`: the spectrum is
    compressed and repeated :math:`s` times, which on a signal band-limited to
    :math:`|\omega| < \pi / s` acts like :math:`\frac{1}{s^2} k_{\uparrow s}` (KPAC supplementary,
    Sec. 5 and Fig. 3).
    """
    be = namespace(psf)
    n = check_psf(psf, be)
    s = check_factor(factor)
    m = s * (n - 1) + 1
    out = be.xp.zeros((m, m), dtype=psf.dtype, device=be.device(psf))
    out[::s, ::s] = psf
    return out


def wiener_inverse(psf: Any, eps: float, size: int, rcond: float | None = None) -> Any:
    r"""Wiener inverse kernel :math:`k^\dagger` of a PSF on a periodic ``size x size`` grid.

    Parameters
    ----------
    psf : array, shape (n, n), odd n
        Blur kernel, origin at the centre pixel.
    eps : float >= 0
        Noise parameter :math:`\epsilon` of Eq. 2 (absolute; :math:`F(k)(0) = \sum k`).
        ``eps = 0`` gives the direct inverse :math:`F^{-1}(1 / F(k))` and raises ``ValueError``
        where :math:`F(k)` has zeros.
    size : int, odd, >= n
        Side of the returned inverse kernel, which is also the period of the DFT grid it is
        computed on (the inverse of a compact kernel has infinite support; its tails beyond
        ``size`` wrap around).
    rcond : float, optional
        With ``eps = 0``, the pseudo-inverse: frequencies with :math:`|F(k)| \le \mathrm{rcond}
        \max|F(k)|` get 0 instead of raising (see :func:`optics.operators.fourier.wiener_filter`).

    Returns
    -------
    array, shape (size, size)
        Real inverse kernel, origin at the centre, same dtype as ``psf``. On the periodic grid
        ``psf * k_dagger`` has transfer function :math:`|F(k)|^2 / (|F(k)|^2 + \epsilon)`.

    Notes
    -----
    KPAC supplementary Eq. 2:

    .. math:: k^\dagger = F^{-1}\!\left(\frac{\overline{F(k)}}{|F(k)|^2 + \epsilon}\right)

    With Fourier upsampling it commutes (Eq. 3/4):
    :math:`(\frac{1}{s^2} k_{\uparrow s})^\dagger = \frac{1}{s^2} (k^\dagger)_{\uparrow s}` on the
    periodic grid, verified to 1e-10 in ``validation.kernel_upsampling``.
    """
    be = namespace(psf)
    n = check_psf(psf, be)
    eps = check_eps(eps)
    size = check_odd_size(size, n)
    otf = psf_to_otf(psf, (size, size))
    return otf_to_psf(wiener_filter(otf, eps, rcond), size)
