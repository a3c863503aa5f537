"""Physics of defocus blur and dual-pixel sensors: PSFs, kernel operators, deconvolution.

Conventions (a contract for every module in this package)
---------------------------------------------------------
Kernel origin
    Kernels (PSFs, inverse kernels) are square with an **odd side** ``n`` and the origin at the
    **centre pixel** ``(n // 2, n // 2)``. Operators that change the size (``fourier_upsample``,
    ``dilate``) return odd sides ``s (n - 1) + 1`` and keep the origin at the centre.
Normalisation
    ``gaussian_psf`` and ``disc_psf`` sum to 1. ``dilate`` keeps the sum. ``fourier_upsample``
    interpolates values, so the sum grows by ``s**2`` (exactly on the periodic grid); divide by
    ``s**2`` for a normalised kernel, as the paper's ``(1/s^2) k_up_s``. ``wiener_inverse`` of a
    unit-sum kernel sums to ``1 / (1 + eps)``.
Convolution
    ``convolve`` is a true convolution (kernel flipped), output the size of the input.
FFT conventions
    ``scipy.fft`` (NumPy), ``cupyx.scipy.fft`` (CuPy), ``torch.fft`` (torch), unnormalised forward
    transform (``norm='backward'``) so that ``F(k)(0) = sum(k)``. Periodic-grid arrays in
    :mod:`optics.operators.fourier` keep the origin at index ``[0, 0]``; ``psf_to_otf`` / ``otf_to_psf``
    convert between the two layouts with ``ifftshift`` / ``fftshift`` (exact for even and odd grids).
    The Wiener noise parameter ``eps`` is absolute, in units of ``|F(k)|^2``.
Dtype policy
    float32 stays float32 and float64 stays float64 (complex64/complex128 in between). Integer,
    boolean, complex and float16 inputs raise ``TypeError``; NaN or inf raise ``ValueError``. Kernels
    are cast to the image's dtype inside ``convolve`` / ``wiener_deconvolve``.
Arrays
    Every operator takes NumPy arrays and, where CuPy is installed and a GPU is present, CuPy
    arrays through one code path (``optics._backend.namespace``). ``fourier_upsample``, ``dilate``,
    ``wiener_inverse``, ``convolve`` and the :mod:`optics.operators.fourier` layer also take torch tensors and
    are differentiable. Images are ``(H, W)`` or ``(H, W, C)``.
Boundary handling
    ``convolve`` extends the image with ``boundary`` = 'symmetric' (default, half-sample mirror),
    'reflect', 'periodic', 'edge' or 'zero'. ``wiener_deconvolve`` with 'symmetric' (default)
    deconvolves the (2H, 2W) mirror extension, which has no jump at any border, so the inverse
    filter does not ring there; 'periodic' assumes wrap-around.

Bad input (non-2-D or even-sided kernel, zero-sum kernel, NaN/inf, factor not a positive integer,
``size`` smaller than the kernel or even, ``eps < 0``, images of the wrong rank) raises
``ValueError`` or ``TypeError`` naming the argument, what was expected and what was received.

References
----------
H. Son et al., KPAC supplementary, ICCV 2021; Y. Quan et al., NRKNet, CVPR 2023; Y. Yang et al.,
K3DN, CVPR 2023; J. Lee et al., IFAN, CVPR 2021.
"""

import importlib

#: Public names and the submodule each comes from; imported on first use (PEP 562), so that a command
#: such as ``python -m optics.dual_pixel.deblur`` loads only what it runs (issue 33: 0.2 s of imports).
_EXPORTS = {
    ".operators": ("BOUNDARIES", "Convolution", "NeumannDivergenceWarning", "convolve", "convolve_adjoint", "dilate",
                   "fourier_upsample", "neumann_contraction", "neumann_converges", "neumann_cross_scale",
                   "neumann_inverse", "nnls_blend", "rkr_atoms", "rkr_blur", "rkr_blur_adjoint", "rkr_kernel_field",
                   "rkr_stack", "rkr_stack_adjoint", "spatially_varying_blur", "spatially_varying_blur_adjoint",
                   "symmetric_softmax_taps", "wiener_deconvolve", "wiener_inverse"),
    ".psf": ("Camera", "depth_from_signed_coc", "disc_psf", "gaussian_psf", "signed_coc_radius"),
    ".dual_pixel": ("CalibratedDPParams", "DPFieldFit", "DPFit", "DualPixelField", "DualPixelPSFs",
                    "calibrated_dual_pixel_psfs", "dual_pixel_psfs", "fit_dual_pixel_field", "fit_dual_pixel_psfs",
                    "full_aperture_psf"),
    ".render": ("DefocusRendering", "render_coc_layers", "render_defocus"),
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {"fourier": ".operators.fourier", "operators": ".operators", "psf": ".psf", "dual_pixel": ".dual_pixel",
               "render": ".render"}

__all__ = sorted(_SOURCE) + ["fourier"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name], __name__)
    elif name in _SOURCE:
        value = getattr(importlib.import_module(_SOURCE[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_SOURCE) | set(_SUBMODULES))
