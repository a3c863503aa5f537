r"""The deblurring of a dual-pixel (DP) pair: the defocus map, then a layered two-view deconvolution.

:func:`dual_pixel_deblur` estimates the signed defocus map
(:func:`optics.dual_pixel.defocus_map.dual_pixel_defocus_map`, or takes one given), then inverts
both views jointly at each scale :math:`s` with the two-view Wiener filter

.. math:: \hat x_s = \frac{\overline{\hat K_L(s)} \hat L + \overline{\hat K_R(s)} \hat R}
          {|\hat K_L(s)|^2 + |\hat K_R(s)|^2 + \epsilon_w}

and composites the layers pixel by pixel with the defocus map (linear weights between the two
nearest scales). The default deconvolution adds a total-variation prior to this quadratic problem
and solves it by half-quadratic splitting from the Wiener estimate
(:mod:`optics.dual_pixel.deconvolution`). This is the inverse of the layered model of :func:`optics.render_defocus`
where the depth is locally constant: a pixel is deblurred with the kernel of its own layer, so
a sharp foreground is not deconvolved with the background's kernel nor the other way round;
the occlusion terms at a depth edge (the blurred foreground's alpha over the background) are
not inverted, which leaves errors within about one kernel radius of such edges (measured in
the tests on a two-layer render).

:func:`deblur_capture` runs it on every channel of a capture (:mod:`optics.dual_pixel.capture`) with
PSFs placed for it (:mod:`optics.dual_pixel.psf_source`, which imports this module: it is not imported
here), and :class:`window_progress` ticks a progress bar once per cell window.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from .._backend import namespace, to_numpy
from ._cells import _WINDOW_PROGRESS, _windows
from .capture import DualPixelCapture
from .deconvolution import layered_deconvolution
from .defaults import (DEFAULT_SCALES, DEFAULTS, _check_aggregation, _check_map_step, _check_options, _check_scales,
                       _check_workers)
from .defocus_map import DualPixelDeblurResult, _check_views, _defocus, source_scales
from .psf_grid import PARAMETRIC_PSFS, DualPixelPSFGrid


def _layer_index(defocus: np.ndarray, scales: np.ndarray, backend, dtype):
    """Fractional index into ``scales`` of each defocus value (clamped to the ends), on the views' device."""
    index = np.interp(np.asarray(defocus, np.float64).ravel(), scales, np.arange(len(scales)))
    return backend.xp.asarray(index.reshape(np.shape(defocus)).astype(dtype))


def dual_pixel_deblur(left: Any, right: Any, psfs: DualPixelPSFGrid, scales: Optional[Sequence[float]] = None,
                      *, defocus: Any = None, wiener_eps: float = DEFAULTS["wiener_eps"],
                      scale_bias: Optional[float] = DEFAULTS["scale_bias"], cost_eps: float = DEFAULTS["cost_eps"],
                      smooth: float = DEFAULTS["smooth"], radius: int = DEFAULTS["radius"],
                      guide_eps: float = DEFAULTS["guide_eps"], margin: int = DEFAULTS["margin"],
                      deconvolution: str = DEFAULTS["deconvolution"], tv_weight: float = DEFAULTS["tv_weight"],
                      tv_eps: float = DEFAULTS["tv_eps"], centre_weight: Optional[float] = DEFAULTS["centre_weight"],
                      aggregation: str = DEFAULTS["aggregation"], in_focus: Any = None,
                      sharp_evidence: Sequence[float] = DEFAULTS["sharp_evidence"], map_step: int = DEFAULTS["map_step"],
                      workers: int = -1) -> DualPixelDeblurResult:
    r"""All-in-focus image, signed defocus map and confidence of a DP pair (module Notes).

    Parameters
    ----------
    left, right, psfs, scales, cost_eps, smooth, radius, guide_eps, margin, map_step, workers
        As :func:`dual_pixel_defocus_map`.
    defocus : (H, W) array, optional
        A signed defocus map to deblur with (e.g. a ground truth) instead of estimating one;
        values outside ``scales`` are an error. The confidence is then all ones.
    wiener_eps : float > 0
        Noise-to-signal parameter :math:`\epsilon_w` of the two-view Wiener filter.
    scale_bias : float
        Moves the *estimated* defocus away from 0 (``< 0``: towards it, never across it) before the
        layers are chosen: ``sign(d) max(|d| + scale_bias, 0)`` (:func:`biased_defocus`; not applied to
        ``defocus`` given, nor to the returned map), so a pixel at zero defocus stays on the identity
        layer. It belongs to a PSF source (:func:`optics.dual_pixel.psf_source.source_defaults`): -0.1 for
        Xin et al.'s Pixel 4 kernels, measured on the tuning scenes 001-008 (the scale of least
        cross-consistency cost lies about 0.1-0.3 above the scale whose deconvolution is closest to
        their ground truth, docs/real_dual_pixel.md); 0 for the parametric models.
    in_focus : (H, W) array in [0, 1], optional
        With ``defocus`` given: the share of the input kept per pixel (as estimated, ``res.in_focus``
        of another channel). Estimated otherwise, when ``scales`` contain 0.
    sharp_evidence : (r0, r1)
        Sharp stays sharp: where ``scales`` contain 0, the result keeps the input ``(L + R) / 2`` with
        the weight :func:`in_focus_weight` of the cost's evidence :math:`r = (E_0 - \min_s E_s) / E_0`
        that a scale other than 0 explains the views better than the in-focus pair: 1 below ``r0``, 0
        above ``r1`` (K3DN's sharp region preservation, from the DP cost instead of learned).
    deconvolution : {'wiener', 'tv'}
        The two-view Wiener filter, or half-quadratic splitting with a total-variation prior
        (:func:`optics.dual_pixel.deconvolution.layered_deconvolution`; ``tv_weight`` :math:`\lambda`,
        ``tv_eps`` :math:`\epsilon`, the :math:`\beta` sequence ``DEFAULTS['tv_betas']``).
    centre_weight : float, optional
        Reference point of each PSF pair (:meth:`DualPixelPSFGrid.pair`): the output is registered to
        the centroid of ``w K_L + (1 - w) K_R``. 0.5 is the full-aperture image (L + R), 1 the left view.
        Default: the grid's ``reference`` (0.5; 0.9 for Xin et al.'s Pixel 4 PSF sources, tuned on scenes
        001-008: their ground truth sits close to the left view's geometry, docs/real_dual_pixel.md).

    Returns
    -------
    DualPixelDeblurResult
        ``image`` (H, W) in the views' dtype and library, not clipped.
    """
    _check_options(radius, margin, smooth, guide_eps, cost_eps, wiener_eps)
    _check_workers(workers)
    if scale_bias is None:
        scale_bias = getattr(psfs, "scale_bias", 0.0)
    if isinstance(scale_bias, bool) or not isinstance(scale_bias, numbers.Real) or not math.isfinite(scale_bias):
        raise ValueError(f"scale_bias must be a finite number; got {scale_bias!r}")
    s = _check_scales(source_scales(psfs, scales))
    if defocus is None:
        store: list = []
        _check_aggregation(aggregation)
        _check_map_step(map_step)
        o = dict(cost_eps=cost_eps, smooth=smooth, radius=radius, guide_eps=guide_eps, margin=margin, workers=workers,
                 aggregation=aggregation, map_step=map_step)
        agg, idx, d, conf, evidence = _defocus(left, right, psfs, s, o, windows_out=store)
        be = namespace(left)
        windows, n = store if store else _windows(left, right, psfs, int(margin), be, workers)
        res = DualPixelDeblurResult(None, d, conf, s)
        del agg
        layers = to_numpy(d).astype(np.float64)
        if scale_bias:
            layers = biased_defocus(layers, scale_bias)
            idx = _layer_index(layers, s, be, left.dtype)
        res.layers = np.clip(layers, s[0], s[-1])  # the map the layers were chosen by
        res.in_focus = None if evidence is None else in_focus_weight(evidence, sharp_evidence)
    else:
        be = _check_views(left, right, psfs)
        d = to_numpy(defocus)
        if d.shape != tuple(left.shape):
            raise ValueError(f"defocus must have the views' shape {tuple(left.shape)}; got {d.shape}")
        tol = 1e-5 * (s[-1] - s[0])  # float32 maps round the end scales
        if not np.all(np.isfinite(d)):
            bad = {"NaN": int(np.isnan(d).sum()), "inf": int(np.isinf(d).sum())}
            raise ValueError("defocus must be finite values within the scales; got "
                             + " and ".join(f"{n} {k}" for k, n in bad.items() if n) + " value(s)")
        if d.min() < s[0] - tol or d.max() > s[-1] + tol:
            raise ValueError(f"defocus values must lie within the scales [{s[0]}, {s[-1]}]; got "
                             f"[{float(np.nanmin(d))}, {float(np.nanmax(d))}]")
        idx = _layer_index(d, s, be, left.dtype)
        res = DualPixelDeblurResult(None, be.xp.asarray(d.astype(left.dtype)), be.xp.ones_like(left), s)
        res.layers = d
        res.in_focus = None if in_focus is None else be.xp.asarray(np.asarray(in_focus, dtype=left.dtype))
        windows, n = _windows(left, right, psfs, int(margin), be, workers)
    x = layered_deconvolution(left, right, psfs, s, idx, method=deconvolution, wiener_eps=wiener_eps,
                              tv_weight=tv_weight, tv_eps=tv_eps, tv_betas=DEFAULTS["tv_betas"],
                              centre_weight=centre_weight, margin=int(margin), workers=workers,
                              windows=(windows, n))
    if res.in_focus is not None:  # sharp stays sharp: what the views show in focus keeps the input
        f = res.in_focus
        x = (1 - f) * x + f * ((left + right) / 2)
    res.image = x
    return res


def biased_defocus(defocus: np.ndarray, bias: float) -> np.ndarray:
    """``defocus`` moved by ``bias`` away from 0 (``bias < 0``: towards it), never across it: ``sign(d) max(|d| + bias, 0)``.

    A pixel at zero defocus stays there, so a correction measured on defocused scenes cannot put an
    in-focus pixel on a layer that blurs.
    """
    return np.sign(defocus) * np.maximum(np.abs(defocus) + bias, 0)


def in_focus_weight(evidence: Any, sharp_evidence: Sequence[float]) -> Any:
    r"""1 where the in-focus pair explains the views as well as the best scale, 0 where it is clearly worse.

    ``evidence`` :math:`r = (E_0 - \min_s E_s) / E_0` of the aggregated cost; the weight is
    :math:`1 - \mathrm{smoothstep}((r - r_0) / (r_1 - r_0))` with ``sharp_evidence`` :math:`(r_0, r_1)`.
    """
    r0, r1 = (float(v) for v in sharp_evidence)
    be = namespace(evidence)
    t = be.xp.clip((evidence - r0) / max(r1 - r0, 1e-12), 0, 1)
    return (1 - t * t * (3 - 2 * t)).astype(evidence.dtype)


class window_progress:
    """Context manager: a progress bar (:func:`optics.cli.progress_bar`) ticking once per cell window."""

    def __init__(self, total: int, desc: str = "cells", enabled: bool = True) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled

    def __enter__(self):
        from ..cli import progress_bar

        self.bar = progress_bar(total=self.total, desc=self.desc, unit="window") if self.enabled else None
        self._hook = (lambda: self.bar.update(1)) if self.bar is not None else (lambda: None)
        _WINDOW_PROGRESS.insert(0, self._hook)
        return self

    def __exit__(self, *exc):
        _WINDOW_PROGRESS.remove(self._hook)
        if self.bar is not None:
            self.bar.close()
        return False


# psfs: a PlacedPSFs (optics.dual_pixel.psf_source), duck-typed (its .cells and .deblur): psf_source imports
# this module, so this one does not import it back
def deblur_capture(capture: "DualPixelCapture", psfs: Any, scales: Optional[Sequence[float]] = None, *,
                   progress: bool = False, **options) -> DualPixelDeblurResult:
    """Deblur ``capture`` with ``psfs`` (placed for it); colour views with one defocus map, every channel deconvolved.

    Equal channels (a raw plane replicated) are deblurred once. A colour capture's defocus map (and
    confidence) is estimated on its green channel; the red and blue channels are deconvolved with that
    map (plus ``scale_bias``, as the green layers are), so the three channels share their layers and no
    colour fringe comes from three maps. ``image`` has the views' shape.
    """
    L, R = capture.left, capture.right
    if L.ndim == 2:
        planes = [(L, R)]
    elif all(np.array_equal(v[..., 0], v[..., c]) for v in (L, R) for c in (1, 2)):
        planes = [(L[..., 0], R[..., 0])]
    else:
        planes = [(L[..., c], R[..., c]) for c in (1, 0, 2)]  # green first: its map serves the others
    n = len(planes)
    # window passes: the cost, the layers' preparation, the Wiener estimate (and one per TV step); a given map
    # skips the cost
    steps = 2 + (len(DEFAULTS["tv_betas"]) if options.get("deconvolution", DEFAULTS["deconvolution"]) == "tv" else 0)
    with window_progress(((1 + steps) + (n - 1) * steps) * psfs.cells, enabled=progress):
        res = psfs.deblur(np.ascontiguousarray(planes[0][0]), np.ascontiguousarray(planes[0][1]), scales, **options)
        images = [res.image]
        if n > 1:
            given = dict(options, defocus=np.asarray(res.layers, np.float64), in_focus=res.in_focus)
            given.pop("scale_bias", None)
            for l_, r_ in planes[1:]:
                images.append(psfs.deblur(np.ascontiguousarray(l_), np.ascontiguousarray(r_), scales, **given).image)
    if L.ndim == 3:
        stack = [images[0]] * 3 if n == 1 else [images[1], images[0], images[2]]
        res.image = np.stack(stack, axis=2)
    return res


#: Share of the frame whose defocus at one end of the scale range draws a warning (:func:`defocus_warnings`).
END_SHARE = 0.25


def defocus_warnings(result: DualPixelDeblurResult, psf: str = "") -> list:
    """``warning:`` lines when the estimated map sits at an end of the scale range over more than
    :data:`END_SHARE` of the frame: the blur lies beyond what the scales reach, or the PSFs do not fit the
    camera (a wrong ``--psf-radius``, ``--psf-sign`` or ``--psf``). Each names the flag to try."""
    d = np.asarray(to_numpy(result.defocus), np.float64)
    s = np.asarray(result.scales, np.float64)
    half = 0.5 * float(np.min(np.diff(s)))
    out = []
    parametric = psf in PARAMETRIC_PSFS
    for end, where in ((s[0], "lowest"), (s[-1], "highest")):
        share = float(np.mean(np.abs(d - end) <= half))
        if share > END_SHARE:
            hint = ("try a larger --psf-radius (the blur is wider than the scales reach) or the other --psf-sign"
                    if parametric else "try --psf disc|butterworth with --psf-radius for a camera that is not a "
                    "Pixel 4, or --scales with a wider range")
            out.append(f"warning: the defocus map sits at the {where} scale ({end:g}) over {100 * share:.0f}% of "
                       f"the frame (more than {100 * END_SHARE:.0f}%): the PSFs likely do not fit this capture; "
                       f"{hint}")
    return out

