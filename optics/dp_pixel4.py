r"""The calibrated dual-pixel field of a Google Pixel 4, fitted to Xin et al.'s published kernels.

:func:`pixel4_dual_pixel_field` returns the :class:`optics.DualPixelField` (degree-2 polynomials
in the normalised position) fitted by :func:`optics.fit_dual_pixel_field` to all 48 left/right
kernel pairs of ``DP_data_pixel_4/calibration/blur_kernels_{left,right}.npy`` (Xin et al.,
ICCV 2021, github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring): a 6 x 8 grid of
168 px cells over the central 1008 x 1344 crop, green channel, one defocus (radius about 12 px).
Only the fitted coefficients are stored here (measured numbers, 90 of them); the kernels are not
included (no licence is published with them).

Reproduce: ``python -m validation.dual_pixel_calibration --kernels DIR`` writes the same fit to
``validation_report/dual_pixel_calibration/pixel4_dual_pixel_field.json`` (``DIR`` holding the
two ``.npy`` files); these coefficients are that file's, rounded to 6 significant digits. Median
relative L2 error of the 48 pairs (gain free): 0.10, largest 0.17.

References
----------
.. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas, R. Garg,
   "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021.
"""

from __future__ import annotations

import functools

import numpy as np

from .dp_fit import DualPixelField

__all__ = ["pixel4_dual_pixel_field", "PIXEL4_FRAME"]

#: (H, W) of the calibrated frame: the central crop of Xin et al.'s Pixel 4 data.
PIXEL4_FRAME = (1008, 1344)

# rows: radius (pixels) and the CalibratedDPParams fields; columns: 1, X, Y, X^2, XY, Y^2
_COEFFICIENTS = (
    (10.7548, -0.396677, 0.210267, 1.64233, 0.0725801, 0.758188),  # radius
    (0.299946, -0.00395317, 0.00479428, -0.00010245, -0.00849918, 0.0197215),  # edge
    (0.864622, 0.0237447, -0.0219594, -0.449335, 0.0101271, -0.322934),  # rim_beta
    (-120.04, 0.114064, -0.0540626, 157.298, -0.0562652, -0.0529672),  # rim_power
    (-0.0280399, -0.0301703, -0.403557, -0.0446642, -0.16004, -0.035273),  # split_angle
    (-0.714913, -0.357161, 0.0321533, 0.828161, 0.151704, 0.823697),  # split_offset
    (0.509179, 0.291059, -0.00445475, 0.152162, 0.021027, 0.0366315),  # split_softness
    (0.502757, 1.97052, -0.0288741, -0.972222, -0.0377763, -0.480726),  # tilt_left_x
    (0.0264241, -0.0341344, 1.22675, 0.0359865, -0.199447, 0.0647105),  # tilt_left_y
    (0.311217, 1.16731, -0.0304744, -0.531228, -0.107981, -0.784474),  # tilt_right_x
    (-0.0301445, -0.0232423, 0.61034, -0.0255145, -0.0120824, 0.0160543),  # tilt_right_y
    (0.151322, -0.295618, -0.0629431, -0.0229408, -0.0261689, 0.0076413),  # shift_x
    (0.0844288, 0.0690882, -0.393849, -0.0010189, -0.00503064, -0.00815618),  # shift_y
    (0.0286479, 0.0117879, -0.00370183, -0.138639, -0.000158133, 0.0690122),  # ellipse_c
    (0.000259145, 0.00511856, 0.0157069, 0.00477865, -0.209908, 0.00389079),  # ellipse_s
)


@functools.lru_cache(maxsize=1)
def pixel4_dual_pixel_field() -> DualPixelField:
    """The Pixel 4 field (:mod:`optics.dp_pixel4`); calibration CoC sign -1."""
    return DualPixelField(np.array(_COEFFICIENTS, dtype=np.float64), 2, PIXEL4_FRAME, -1.0)
