r"""The calibrated dual-pixel field of a Google Pixel 4, fitted to Xin et al.'s published kernels.

:func:`pixel4_dual_pixel_field` returns the :class:`optics.DualPixelField` (degree-2 polynomials
in the normalised position) fitted by :func:`optics.fit_dual_pixel_field` to all 48 left/right
kernel pairs of ``DP_data_pixel_4/calibration/blur_kernels_{left,right}.npy`` (Xin et al.,
ICCV 2021, github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring): a 6 x 8 grid of
168 px cells over the central 1008 x 1344 crop, green channel, one defocus (radius about 12 px).
Only the fitted coefficients are stored here (measured numbers, 90 of them); the kernels are not
included (no licence is published with them).

Reproduce: ``python -m validation.dual_pixel_calibration --kernels DIR`` writes the same fit to
``validation_report/dual_pixel_calibration/pixel4_dual_pixel_field.json`` (``DIR`` the data
folder ``DP_data_pixel_4`` or its ``calibration/``, holding the two ``.npy`` files); these
coefficients are that file's, rounded to 6 significant digits. Median relative L2 error of the
48 pairs (gain free): 0.096, largest 0.156.

References
----------
.. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas, R. Garg,
   "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np


__all__ = [
    "pixel4_dual_pixel_field",
    "PIXEL4_FRAME",
    "PIXEL4_BLACK_LEVEL",
    "PIXEL4_WHITE",
    "PIXEL4_VIGNETTING_WINDOW",
    "read_pixel4_raw",
    "pixel4_vignetting_gain",
    "crop_central",
]

#: Pixel 4 dual-pixel raw data (Xin et al., ``code/util.py``): 14-bit values with a black level of 1024.
PIXEL4_BLACK_LEVEL = 1024
PIXEL4_WHITE = 2**14 - 1
#: Side of the box average of the white-sheet ratio (``code/util.py``, ``window_size = 101``).
PIXEL4_VIGNETTING_WINDOW = 101

#: Where a deblurred Pixel 4 capture is registered (``DualPixelPSFGrid.reference``): the centroid of
#: ``0.9 K_L + 0.1 K_R``. Tuned on Xin et al.'s scenes 001-008 (docs/real_dual_pixel.md, "Where the
#: ground truth sits"): their all-in-focus ground truth follows the left view's geometry, not the
#: full-aperture image's (0.5: -1.0 dB raw on 001-008; 0.8: -0.02; 0.9: best; 1.0: -0.16).
PIXEL4_REFERENCE = 0.9
#: ``scale_bias`` of Xin et al.'s Pixel 4 PSF sources (calibrated kernels, fitted field): the estimated
#: defocus moved 0.1 towards 0 before the layers are chosen (never across it). Measured on scenes 001-008
#: only (``python -m benchmarks.real_dual_pixel --data DIR --scenes 001 ... 008 --set scale_bias=B``:
#: -0.2 +2.23 dB, -0.15 +2.59, -0.1 +2.73, 0 +2.24; docs/real_dual_pixel.md). Parametric sources get 0.
PIXEL4_SCALE_BIAS = -0.1
#: (H, W) of the calibrated frame: the central crop of Xin et al.'s Pixel 4 data.
PIXEL4_FRAME = (1008, 1344)

# rows: radius (pixels) and the CalibratedDPParams fields; columns: 1, X, Y, X^2, XY, Y^2
_COEFFICIENTS = (
    (10.5581, -0.351502, 0.259828, 1.62202, 0.317452, 0.924684),  # radius
    (0.319924, -0.00724896, -0.000308887, -0.00180418, -0.0307934, 0.0034575),  # edge
    (0.879229, -0.0411184, -0.035015, -0.452786, -0.0441166, -0.256528),  # rim_beta
    (0.997667, 0.103816, -0.246634, -0.33551, -0.473862, -0.671601),  # rim_power
    (-0.0174539, 0.00252387, -0.314997, -0.00494577, -0.0324624, -0.0962813),  # split_angle
    (-1.29112, -0.832658, 0.0479985, 1.01776, 0.0510536, 0.887322),  # split_offset
    (0.391148, -0.0091295, 0.0390758, 0.0273815, 0.0692802, 0.0988481),  # split_softness
    (0.685807, 1.83564, -0.0308697, -0.940826, -0.0279348, -0.256457),  # tilt_left_x
    (0.0170681, -0.045415, 1.07111, 0.0168078, -0.258947, 0.0928183),  # tilt_left_y
    (1.13705, 1.95714, -0.264147, -0.611346, -0.377094, -0.982995),  # tilt_right_x
    (-0.0374321, -0.00622793, 0.444896, 0.00978271, -0.208386, -0.00440865),  # tilt_right_y
    (0.14642, -0.304779, -0.0609783, -0.0263141, -0.0204787, 0.00194103),  # shift_x
    (0.0849835, 0.071297, -0.395502, 0.00106472, -0.00896396, -0.00605337),  # shift_y
    (0.0280316, 0.00180257, -0.00104301, -0.14299, -0.000403209, 0.0658879),  # ellipse_c
    (0.000543404, 0.00590882, 0.0102655, 0.00294346, -0.211245, 0.00478588),  # ellipse_s
)


@functools.lru_cache(maxsize=1)
def pixel4_dual_pixel_field() -> "DualPixelField":
    """The Pixel 4 field (:mod:`optics.dual_pixel.pixel4`); calibration CoC sign -1."""
    from .fit import DualPixelField  # here: fit imports scipy.optimize, which the deblurring does not need

    return DualPixelField(np.array(_COEFFICIENTS, dtype=np.float64), 2, PIXEL4_FRAME, -1.0)


def read_pixel4_raw(path: str | os.PathLike) -> np.ndarray:
    """A Pixel 4 dual-pixel raw PNG (one 16-bit channel, 14 bit, black level 1024) as (H, W) float32 in [0, 1].

    ``max(v - 1024, 0) / (2**14 - 1)``, the authors' ``_load_and_preprocess_pixel_data``
    (``code/util.py``, ``load_data_and_calibration``).
    """
    from ..image_io import read_png

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Pixel 4 dual-pixel view {str(path)!r} must be a 16-bit PNG")
    if not path.is_file():
        raise FileNotFoundError(f"input image {str(path)!r} does not exist")
    raw = read_png(path)
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(
            f"Pixel 4 dual-pixel view {str(path)!r} must be a single-channel 16-bit PNG (raw green channel); "
            f"got dtype {raw.dtype} and shape {raw.shape}"
        )
    if int(raw.max()) > PIXEL4_BLACK_LEVEL + PIXEL4_WHITE:
        raise ValueError(f"{str(path)!r} has values above 14 bits + black level ({int(raw.max())}); not Pixel 4 raw data")
    return np.maximum(raw.astype(np.float32) - PIXEL4_BLACK_LEVEL, 0.0) / PIXEL4_WHITE


@functools.lru_cache(maxsize=4)
def _vignetting_cached(left_sheet: Path, right_sheet: Path, stamp: tuple) -> np.ndarray:
    from scipy import ndimage

    white_left = read_pixel4_raw(left_sheet).astype(np.float64)
    white_right = read_pixel4_raw(right_sheet).astype(np.float64)
    if white_left.shape != white_right.shape:
        raise ValueError(f"white sheets {str(left_sheet)!r} {white_left.shape} and {str(right_sheet)!r} "
                         f"{white_right.shape} must have the same size")
    if not np.all(white_right > 0):
        raise ValueError(f"white sheet {str(right_sheet)!r} has pixels at or below the black level; "
                         "the vignetting ratio left / right is undefined there")
    # flax.nn.avg_pool(..., padding='SAME'): zero padding, divided by the full window (101 * 101)
    gain = ndimage.uniform_filter(white_left / white_right, PIXEL4_VIGNETTING_WINDOW, mode="constant", cval=0.0)
    gain.setflags(write=False)
    return gain


def pixel4_vignetting_gain(calibration: str | os.PathLike) -> np.ndarray:
    r"""Per-pixel gain that Xin et al. apply to the right view: the box-averaged white-sheet ratio.

    ``calibration`` is the data set's ``calibration/`` folder with ``white_sheet_left.png`` and
    ``white_sheet_right.png`` (raw, normalised as the views). Returns the read-only (H, W)
    float64 array

    .. math:: g = \mathrm{box}_{101}\!\left(\frac{W_L}{W_R}\right)

    (``code/util.py``, ``load_data_and_calibration``: ``per_pixel_scale = left_white_calib /
    right_white_calib``, ``flax.nn.avg_pool`` over 101 x 101 with 'SAME' zero padding, then
    ``right_image = per_pixel_scale_avg * right_image``, before the central crop). Cached per
    folder (and the files' size and time).
    """
    sheets = [Path(calibration) / f"white_sheet_{side}.png" for side in ("left", "right")]
    for sheet in sheets:
        if not sheet.is_file():
            raise FileNotFoundError(
                f"vignetting calibration {str(sheet)!r} does not exist; Xin et al.'s preprocessing "
                "corrects the right view with calibration/white_sheet_{left,right}.png (code/util.py)")
    stamp = tuple((s.stat().st_mtime_ns, s.stat().st_size) for s in sheets)
    return _vignetting_cached(sheets[0].resolve(), sheets[1].resolve(), stamp)


def crop_central(image: np.ndarray, shape: tuple[int, int], name: str = "image") -> np.ndarray:
    """The central ``shape`` window of ``image`` (..., H, W[, C] as (H, W) first), offset ``((H - h) // 2, (W - w) // 2)``.

    As Xin et al.'s ``_crop_image_central_fov`` (``code/util.py``).
    """
    H, W = image.shape[:2]
    h, w = shape
    if h > H or w > W:
        raise ValueError(f"{name} ({H}x{W}) is smaller than the {h}x{w} window to crop")
    top, left = (H - h) // 2, (W - w) // 2
    return image[top: top + h, left: left + w]
