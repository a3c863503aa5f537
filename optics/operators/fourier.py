"""Periodic-grid Fourier layer: OTFs, spectral upsampling and the Wiener filter.

This is the functional layer under the centred-kernel operators of :mod:`optics.kernels`. Arrays
here live on a **periodic grid with the origin at index [0, 0]** (the layout ``scipy.fft`` expects),
and every function works on the last two axes, batched over any leading axes, for NumPy, CuPy and
torch tensors (with autograd) through one code path.

FFT convention: the unnormalised forward DFT ``K[u, v] = sum_{x, y} k[x, y] exp(-2 pi i (ux/N +
vy/M))`` (``norm="backward"``), so ``K[0, 0]`` is the sum of the kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import namespace
from .._validate import check_eps, check_factor, scalar

__all__ = [
    "psf_to_otf",
    "otf_to_psf",
    "wiener_filter",
    "periodic_upsample",
    "spectral_zero_pad",
]


def _embed_centered(xp, psf, shape):
    """Zero-pad a centred odd (..., n, n) kernel to (..., H, W) keeping it centred at (H//2, W//2)."""
    n0, n1 = psf.shape[-2], psf.shape[-1]
    H, W = shape
    if n0 > H or n1 > W:
        raise ValueError(f"shape must be at least the psf size {(n0, n1)}; got {tuple(shape)}")
    out = xp.zeros((*psf.shape[:-2], H, W), dtype=psf.dtype, device=_device(psf))
    r0, r1 = H // 2 - n0 // 2, W // 2 - n1 // 2
    out[..., r0 : r0 + n0, r1 : r1 + n1] = psf
    return out


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


def psf_to_otf(psf: Any, shape: tuple[int, int]) -> Any:
    """Optical transfer function of a centred kernel on a periodic ``shape`` grid.

    Parameters
    ----------
    psf : array, shape (..., n0, n1)
        Kernels with odd sides and the origin at the centre pixel.
    shape : (H, W)
        Periodic grid, at least as large as the kernel.

    Returns
    -------
    otf : complex array, shape (..., H, W)
        ``fftn(ifftshift(embed(psf)))``: the DFT of the kernel moved so that its centre pixel sits at
        index [0, 0] (no phase ramp for even or odd grids).
    """
    be = namespace(psf)
    if psf.shape[-1] % 2 == 0 or psf.shape[-2] % 2 == 0:
        raise ValueError(f"psf must have odd sides; got shape {tuple(psf.shape)}")
    H, W = (int(s) for s in shape)
    big = _embed_centered(be.xp, psf, (H, W))
    # Move the centre (H//2, W//2) to [0, 0]: ifftshift does exactly that for both parities.
    return be.fft.fftn(be.fft.ifftshift(big, axes=(-2, -1)), axes=(-2, -1))


def otf_to_psf(otf: Any, size: int | tuple[int, int]) -> Any:
    """Inverse of :func:`psf_to_otf`: the centred real kernel of odd ``size`` cropped from an OTF.

    The full periodic kernel is ``real(ifftn(otf))``; the returned array holds its values at offsets
    ``-(size//2) .. size//2`` around the origin (so cropping, not resampling, when ``size`` is smaller
    than the grid).
    """
    be = namespace(otf)
    s0, s1 = (size, size) if np.isscalar(size) else size
    if s0 % 2 == 0 or s1 % 2 == 0:
        raise ValueError(f"size must be odd; got {size}")
    H, W = otf.shape[-2], otf.shape[-1]
    if s0 > H or s1 > W:
        raise ValueError(f"size {size} exceeds the OTF grid {(H, W)}")
    k0 = be.xp.real(be.fft.ifftn(otf, axes=(-2, -1)))
    return _crop_centered(be, k0, s0, s1)


def _crop_centered(be, k0, s0, s1):
    """Values of an origin-at-[0,0] periodic array at offsets -(s//2)..s//2, as a centred array."""
    h0, h1 = s0 // 2, s1 // 2
    # roll so that offset -h lands at index 0, then take the first s entries
    rolled = be.xp.roll(k0, shift=(h0, h1), axis=(-2, -1))
    return rolled[..., :s0, :s1]


def wiener_filter(otf: Any, eps: float, rcond: float | None = None) -> Any:
    r"""Wiener inverse filter of an OTF, :math:`\overline{K} / (|K|^2 + \epsilon)`.

    Parameters
    ----------
    otf : complex array, shape (..., H, W)
        Transfer function :math:`K = F(k)`.
    eps : float >= 0
        Noise-to-signal parameter :math:`\epsilon` (absolute, in units of :math:`|K|^2`, where
        :math:`K(0) = \sum k`). ``eps = 0`` is the direct inverse :math:`1/K`.
    rcond : float, optional
        Only used with ``eps = 0``. ``None`` (default): raise if any :math:`|K| \le
        \max(H, W)\,\mathrm{eps_{mach}} \max|K|` (the direct inverse does not exist). A float: the
        pseudo-inverse, setting the filter to 0 where :math:`|K| \le \mathrm{rcond} \max|K|` (as
        ``numpy.linalg.pinv``), e.g. in the zero-padded band of an upsampled kernel.

    Returns
    -------
    complex array, shape (..., H, W)

    Notes
    -----
    Eq. 2 of the KPAC supplementary [1]_:

    .. math:: k^\dagger = F^{-1}\!\left(\frac{\overline{F(k)}}{|F(k)|^2 + \epsilon}\right)

    References
    ----------
    .. [1] H. Son, J. Lee, S. Cho, S. Lee, "Single Image Defocus Deblurring Using Kernel-Sharing
       Parallel Atrous Convolutions: Supplementary Material", ICCV 2021, Sec. 2.
    """
    be = namespace(otf)
    xp = be.xp
    eps = check_eps(eps)
    power = xp.real(otf) ** 2 + xp.imag(otf) ** 2
    if eps > 0:
        return xp.conj(otf) / (power + eps)
    mag = xp.sqrt(power)
    peak = scalar(xp.max(mag))
    if peak == 0.0:
        raise ValueError("otf is identically zero; a PSF must have non-zero transfer somewhere")
    real_dtype = np.float32 if "float32" in str(power.dtype) else np.float64
    if rcond is None:
        threshold = float(np.sqrt(np.finfo(real_dtype).eps)) * peak
        smallest = scalar(xp.min(mag))
        if smallest <= threshold:
            raise ValueError(
                "eps = 0 asks for the direct inverse 1/F(k), but F(k) has zeros: "
                f"min |F(k)| = {smallest:.3g} <= {threshold:.3g} (= sqrt(machine eps) * max |F(k)|). "
                "Use eps > 0 (Wiener), or rcond for the pseudo-inverse."
            )
        return 1.0 / otf
    rcond = check_eps(rcond, "rcond")
    keep = mag > rcond * peak
    safe = xp.where(keep, power, xp.ones_like(power))
    return xp.where(keep, xp.conj(otf) / safe, xp.zeros_like(otf))


def spectral_zero_pad(spectrum: Any, shape: tuple[int, int]) -> Any:
    """Zero-pad an origin-at-[0,0] spectrum of odd sides (N0, N1) to the larger grid ``shape``.

    Frequencies ``-(N//2) .. N//2`` keep their values; all others are zero. Odd input sides have no
    Nyquist bin, so there is nothing to split and no half-sample shift for any output parity.
    """
    be = namespace(spectrum)
    xp = be.xp
    n0, n1 = spectrum.shape[-2], spectrum.shape[-1]
    if n0 % 2 == 0 or n1 % 2 == 0:
        raise ValueError(
            f"spectrum must have odd sides (no Nyquist bin); got {(n0, n1)}. Use an odd grid."
        )
    M0, M1 = shape
    if M0 < n0 or M1 < n1:
        raise ValueError(f"shape {tuple(shape)} must be at least the spectrum size {(n0, n1)}")
    centred = be.fft.fftshift(spectrum, axes=(-2, -1))  # DC at (n0//2, n1//2)
    big = xp.zeros((*spectrum.shape[:-2], M0, M1), dtype=spectrum.dtype, device=_device(spectrum))
    c0, c1 = M0 // 2, M1 // 2
    big[..., c0 - n0 // 2 : c0 + n0 // 2 + 1, c1 - n1 // 2 : c1 + n1 // 2 + 1] = centred
    return be.fft.ifftshift(big, axes=(-2, -1))  # DC back to [0, 0]


def periodic_upsample(kernel0: Any, factor: int) -> Any:
    r"""Fourier (sinc) upsampling on the periodic grid, the paper's :math:`k_{\uparrow s}`.

    Parameters
    ----------
    kernel0 : real array, shape (..., N0, N1), odd N0 and N1
        One period of a kernel with its origin at index [0, 0].
    factor : int >= 1
        Upsampling factor :math:`s`.

    Returns
    -------
    real array, shape (..., s N0, s N1)
        One period of the band-limited interpolant sampled at step :math:`1/s`, origin at [0, 0]:
        ``out[s*i, s*j] == kernel0[i, j]`` and ``out.sum() == s**2 * kernel0.sum()``.

    Notes
    -----
    Eq. 1 and 4 of the KPAC supplementary [1]_:
    :math:`k_{\uparrow s} = F^{-1}(F(k)_{\uparrow s})`, where :math:`F(k)_{\uparrow s}` is the
    spectrum zero-padded to the :math:`sN` grid. With the unnormalised DFT the values are
    interpolated, so the result is multiplied by :math:`s^2`.

    References
    ----------
    .. [1] Son et al., KPAC supplementary, ICCV 2021, Sec. 2, Eq. 1 and 4.
    """
    be = namespace(kernel0)
    s = check_factor(factor)
    N0, N1 = kernel0.shape[-2], kernel0.shape[-1]
    K = be.fft.fftn(kernel0, axes=(-2, -1))
    Kp = spectral_zero_pad(K, (s * N0, s * N1))
    return be.xp.real(be.fft.ifftn(Kp, axes=(-2, -1))) * (s * s)
