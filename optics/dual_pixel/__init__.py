"""Dual-pixel sensors: the PSF pair type (:mod:`.base`), parametric models (:mod:`.models`), Xin et
al.'s calibrated model (:mod:`.calibrated`) and its fits (:mod:`.fit`), the Pixel 4 capture and
calibration (:mod:`.pixel4`), its sensor noise (:mod:`.sensor_noise`) and training-free deblurring
of a capture (:mod:`.deblur`, the command line; its pieces: :mod:`.defaults`, :mod:`.psf_grid`,
:mod:`.defocus_map`, :mod:`.pipeline`, :mod:`.psf_source`).

Commands: ``python -m optics.dual_pixel.deblur`` and ``python -m optics.dual_pixel.sensor_noise``.
"""

from .base import DualPixelPSFs
from .models import DP_MODELS, dual_pixel_psfs, full_aperture_psf, psf_half_size
from .calibrated import CalibratedDPParams, calibrated_dual_pixel_psfs
from .fit import DPFieldFit, DPFit, DualPixelField, fit_dual_pixel_field, fit_dual_pixel_psfs
