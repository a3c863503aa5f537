"""Linear operators on images and kernels: Fourier layer, kernel operators, convolution and Wiener
deconvolution, truncated Neumann series, RKR and spatially varying blur.

Each module has a functional layer (and, where the operator is linear, its adjoint); the public
names are re-exported flat at :mod:`optics`.
"""

from . import fourier
from .convolution import BOUNDARIES, Convolution, convolve, convolve_adjoint, nnls_blend, wiener_deconvolve
from .kernel_ops import dilate, fourier_upsample, wiener_inverse
from .neumann import NeumannDivergenceWarning, neumann_contraction, neumann_converges, neumann_cross_scale, neumann_inverse
from .rkr import rkr_atoms, rkr_blur, rkr_blur_adjoint, rkr_kernel_field, rkr_stack, rkr_stack_adjoint, symmetric_softmax_taps
from .spatially_varying import spatially_varying_blur, spatially_varying_blur_adjoint
