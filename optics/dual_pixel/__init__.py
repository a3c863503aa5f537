"""Dual-pixel sensors: the PSF pair type (:mod:`.base`), parametric models (:mod:`.models`), Xin et
al.'s calibrated model (:mod:`.calibrated`) and its fits (:mod:`.fit`), the Pixel 4 capture and
calibration (:mod:`.pixel4`), its sensor noise (:mod:`.sensor_noise`) and training-free deblurring
of a capture (:mod:`.deblur`, the command line; its pieces: :mod:`.defaults`, :mod:`.psf_grid`,
:mod:`.defocus_map`, :mod:`.pipeline`, :mod:`.psf_source`).

Commands: ``python -m optics.dual_pixel.deblur`` and ``python -m optics.dual_pixel.sensor_noise``.
"""

import importlib

#: Public names and their submodules, imported on first use (PEP 562): the deblurring command does not
#: load the fits (:mod:`.fit` imports scipy.optimize).
_EXPORTS = {
    ".base": ("DualPixelPSFs",),
    ".models": ("DP_MODELS", "dual_pixel_psfs", "full_aperture_psf", "psf_half_size"),
    ".calibrated": ("CalibratedDPParams", "calibrated_dual_pixel_psfs"),
    ".fit": ("DPFieldFit", "DPFit", "DualPixelField", "fit_dual_pixel_field", "fit_dual_pixel_psfs"),
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SOURCE)


def __getattr__(name: str):
    if name not in _SOURCE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_SOURCE))
