"""The fixed parameters of the training-free dual-pixel deblurring and its small argument checks.

:data:`DEFAULTS` (the options of :func:`optics.dual_pixel.pipeline.dual_pixel_deblur`, tuned on Xin et
al.'s Pixel 4 scenes 001-008), :data:`SGM_OPTIONS`, :data:`DEFAULT_SCALES` and :data:`AGGREGATIONS`; the
``_check_*`` helpers raise ValueError naming the argument. The bottom of the deblurring's modules
(:mod:`optics.dual_pixel.deblur` lists them): it imports none of them.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


#: Parameters of :func:`dual_pixel_deblur`, fixed once for all scenes: tuned on Xin et al.'s Pixel 4
#: scenes 001-008 only (docs/real_dual_pixel.md has the search and its command).
DEFAULTS = dict(cost_eps=1e-3, smooth=36.0, radius=32, guide_eps=1e-3, wiener_eps=1.5e-2, scale_bias=None,
                margin=48, deconvolution="tv", tv_weight=6e-4, tv_eps=1e-3, tv_betas=(4e-3, 6.4e-2),
                centre_weight=None, aggregation="guided", sharp_evidence=(0.0, 0.05), map_step=4)


#: ``aggregation='sgm'`` (:mod:`optics.dual_pixel.aggregation`): Gaussian sigma of the cost before the scans
#: (px), the penalties of one-scale and larger steps (units of each pixel's normalised cost), the image
#: gradient that halves the large-step penalty, and the block size of the scans. Chosen on scenes 001 and
#: 007 (docs/real_dual_pixel.md).
SGM_OPTIONS = dict(smooth=12.0, p1=1.0, p2=8.0, tau=0.05, factor=4)


#: Candidate defocus scales (relative to the calibration defocus; negative: the other side of focus): 21 steps
#: of 0.125 from -0.875 to 1.625, the Pixel 4 calibration's range, with 0 (in focus, the identity) among them.
DEFAULT_SCALES: tuple = tuple(float(s) for s in np.round(np.arange(21) * 0.125 - 0.875, 4))

#: Candidate scales of the mirror-symmetric parametric models (disc, Butterworth): ``--psf-sign`` only flips
#: the map's sign for them, so the range is symmetric, -1.5 to 1.5 in 21 steps of 0.15, 0 among them.
PARAMETRIC_SCALES: tuple = tuple(float(s) for s in np.round(np.linspace(-1.5, 1.5, 21), 4))


#: Cost aggregations of :func:`dual_pixel_defocus_map`: cost-volume filtering, or semi-global scans.
AGGREGATIONS = ("guided", "sgm")


def _check_scales(scales) -> np.ndarray:
    s = np.asarray(scales, dtype=np.float64)
    if s.ndim != 1 or s.size < 3 or not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0):
        raise ValueError(f"scales must be at least 3 finite, strictly increasing numbers; got {scales!r}")
    return s


def _check_positive(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}; got {value!r}")


def _check_aggregation(aggregation):
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")


def _check_map_step(map_step):
    if isinstance(map_step, bool) or not isinstance(map_step, numbers.Integral) or not 1 <= map_step <= 16:
        raise ValueError(f"map_step must be an integer from 1 to 16 (pixels per cell of the defocus map's grid); "
                         f"got {map_step!r}")


def _check_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or (workers < 1 and workers != -1):
        raise ValueError(f"workers must be -1 (every core) or an integer >= 1; got {workers!r}")


def _check_options(radius, margin, smooth, guide_eps, cost_eps, wiener_eps):
    _check_positive(guide_eps, "guide_eps")
    _check_positive(cost_eps, "cost_eps")
    _check_positive(wiener_eps, "wiener_eps")
    _check_positive(smooth, "smooth", allow_zero=True)
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 1:
        raise ValueError(f"radius must be an integer >= 1; got {radius!r}")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Integral) or margin < 0:
        raise ValueError(f"margin must be an integer >= 0; got {margin!r}")
