r"""The classical row of every evaluation table: Wiener deconvolution with one Gaussian kernel.

:func:`fit_wiener_baseline` picks the Gaussian PSF width ``sigma`` and the Wiener noise parameter
``eps`` that maximise the mean PSNR over training pairs (a grid search; ``sigma = 0`` is the
identity, so the fitted baseline is never worse than the blurred input on the training images),
and :class:`WienerBaseline` applies them to any image with :func:`optics.wiener_deconvolve`
(whole-image mirror extension, no ringing at the border) followed by clipping to [0, 1], as
every learned model's output is clipped before it is scored.

Notes
-----
For a blurred image :math:`y` and the unit-sum Gaussian :math:`k_\sigma`,

.. math:: \hat x = \mathrm{clip}_{[0,1]}\, F^{-1}\!\left(\frac{\overline{K_\sigma}}{|K_\sigma|^2 + \epsilon}\, Y\right),
          \qquad (\sigma^*, \epsilon^*) = \arg\max_{\sigma, \epsilon}
          \frac{1}{N} \sum_{n=1}^{N} \mathrm{PSNR}(\hat x_n, x_n)

over the training pairs :math:`(y_n, x_n)`. A single spatially invariant kernel cannot undo
spatially varying defocus; the row shows how much of the learned models' gain a global linear
filter already achieves.

References
----------
.. [1] N. Wiener, *Extrapolation, Interpolation, and Smoothing of Stationary Time Series*, MIT
   Press, 1964.
.. [2] H. Son et al., KPAC supplementary, ICCV 2021, Eq. 2 (Wiener deconvolution of defocus).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .metrics import psnr

__all__ = ["WienerBaseline", "DualPixelBaseline", "add_physics", "dual_pixel_row", "fit_wiener_baseline", "DEFAULT_SIGMAS", "DEFAULT_EPS"]

#: Gaussian widths (pixels) searched by default; 0 is the identity.
DEFAULT_SIGMAS: Tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
#: Wiener noise parameters searched by default (absolute, in units of |K|^2).
DEFAULT_EPS: Tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


@dataclass(frozen=True)
class WienerBaseline:
    """Wiener deconvolution with a Gaussian PSF of width ``sigma`` and noise parameter ``eps``.

    Attributes
    ----------
    sigma : float >= 0
        Gaussian standard deviation in pixels (``optics.gaussian_psf``, radius ``ceil(4 sigma)``).
    eps : float > 0
    grid : list of (sigma, eps, mean PSNR), optional
        The search that chose them (filled by :func:`fit_wiener_baseline`).
    """

    sigma: float
    eps: float
    grid: List[Tuple[float, float, float]] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, numbers.Real) or not (
            math.isfinite(self.sigma) and self.sigma >= 0
        ):
            raise ValueError(f"sigma must be a finite number >= 0; got {self.sigma!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, numbers.Real) or not (
            math.isfinite(self.eps) and self.eps > 0
        ):
            raise ValueError(f"eps must be a finite number > 0; got {self.eps!r}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Deblur an (H, W, C) float32/float64 image in [0, 1]; returns the same shape and dtype, clipped."""
        from optics import gaussian_psf, wiener_deconvolve

        if not isinstance(image, np.ndarray) or image.ndim != 3:
            raise ValueError(f"image must be a NumPy array of shape (H, W, C); got {getattr(image, 'shape', type(image))}")
        if image.dtype not in (np.float32, np.float64):
            raise TypeError(f"image must be float32 or float64; got {image.dtype}")
        if self.sigma == 0.0:
            return np.clip(image, 0.0, 1.0)
        psf = gaussian_psf(float(self.sigma), dtype=image.dtype)
        if psf.shape[0] > 2 * min(image.shape[:2]):
            raise ValueError(f"image {image.shape[:2]} is too small for a Gaussian of sigma {self.sigma} "
                             f"(kernel side {psf.shape[0]} > 2 x the image side)")
        return np.clip(wiener_deconvolve(image, psf, float(self.eps)), 0.0, 1.0)

    def label(self) -> str:
        return f"wiener (gaussian sigma={self.sigma:g}, eps={self.eps:g})"


def _centre_crop(image: np.ndarray, side: Optional[int]) -> np.ndarray:
    if side is None:
        return image
    H, W = image.shape[:2]
    h, w = min(side, H), min(side, W)
    top, left = (H - h) // 2, (W - w) // 2
    return image[top : top + h, left : left + w]


def fit_wiener_baseline(
    pairs: Iterable[Tuple[np.ndarray, np.ndarray]],
    *,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    eps_values: Sequence[float] = DEFAULT_EPS,
    crop: Optional[int] = 256,
) -> WienerBaseline:
    """Grid-search ``(sigma, eps)`` maximising the mean PSNR over ``(blurred, sharp)`` pairs.

    Parameters
    ----------
    pairs : iterable of (ndarray, ndarray)
        (H, W, C) float images in [0, 1] from the *training* split (never the test split).
    sigmas, eps_values : sequences of float
        The grid (``sigma = 0`` is the identity and ignores ``eps``).
    crop : int or None
        Centre crop side used for the search (default 256; None: whole images), for speed.

    Returns
    -------
    WienerBaseline
        With ``grid`` holding every ``(sigma, eps, mean PSNR)`` evaluated; ties keep the first.
    """
    data = [(_centre_crop(np.asarray(b), crop), _centre_crop(np.asarray(s), crop)) for b, s in pairs]
    if not data:
        raise ValueError("fit_wiener_baseline needs at least one (blurred, sharp) training pair")
    sigmas = [float(s) for s in sigmas]
    eps_values = [float(e) for e in eps_values]
    if not sigmas or not eps_values:
        raise ValueError("sigmas and eps_values must not be empty")
    grid: List[Tuple[float, float, float]] = []
    best: Optional[Tuple[float, float, float]] = None
    for sigma in sigmas:
        for eps in eps_values if sigma > 0 else eps_values[:1]:
            candidate = WienerBaseline(sigma, eps)
            score = float(np.mean([psnr(candidate(b), s) for b, s in data]))
            grid.append((sigma, eps, score))
            if best is None or score > best[2]:
                best = (sigma, eps, score)
    assert best is not None
    return WienerBaseline(best[0], best[1], grid)


class DualPixelBaseline:
    r"""The training-free dual-pixel row: :func:`optics.dual_pixel.deblur.dual_pixel_deblur` on a sample's two views.

    Parameters
    ----------
    psfs : DualPixelPSFGrid, DualPixelPSFSource or PlacedPSFs
        The camera's PSFs: a grid of the views' frame (Xin et al.'s calibration, or a fitted
        field); a source (:func:`optics.dual_pixel.deblur.dual_pixel_psf_source`), placed for
        each sample's size with the views centred in the sensor frame (as the ``pixeldp`` reader
        crops them); or PSFs placed for one capture (:func:`optics.dual_pixel.deblur.default_dual_pixel_psfs`).
    **options
        Keyword options of :func:`optics.dual_pixel.deblur.dual_pixel_deblur` (default: its
        ``DEFAULTS``, tuned on Xin et al.'s scenes 001-008).

    Calling it on a sample's arrays (``left``, ``right``: (H, W, C) in [0, 1]) returns the
    all-in-focus estimate (H, W, C) clipped to [0, 1], as every row is clipped before it is
    scored. Channels that are equal (a raw plane replicated, as the Pixel 4 reader does) are
    deblurred once; otherwise each channel on its own. ``last`` keeps the last result (defocus
    and confidence maps) and ``seconds`` the wall time of each call.
    """

    name = "dual_pixel"

    def __init__(self, psfs, **options):
        from optics.dual_pixel.deblur import DualPixelPSFGrid, DualPixelPSFSource, PlacedPSFs

        if not isinstance(psfs, (DualPixelPSFGrid, DualPixelPSFSource, PlacedPSFs)):
            raise TypeError(f"psfs must be an optics.dual_pixel.deblur.DualPixelPSFGrid, DualPixelPSFSource or "
                            f"PlacedPSFs; got {type(psfs).__name__}")
        self.psfs = psfs
        self.options = dict(options)
        self.last = None
        self.seconds: List[float] = []

    def label(self) -> str:
        return f"{self.psfs.name}"

    def placed(self, shape):
        """The PSFs for views of ``shape`` (H, W): a source is placed centred in its sensor frame (cached per shape)."""
        from optics.dual_pixel.deblur import DualPixelPSFSource

        if not isinstance(self.psfs, DualPixelPSFSource):
            return self.psfs
        key = tuple(int(v) for v in shape)
        cache = self.__dict__.setdefault("_placed", {})
        if key not in cache:
            cache[key] = self.psfs.place(key)
        return cache[key]

    def __call__(self, arrays) -> np.ndarray:
        import time

        from optics.dual_pixel.deblur import DualPixelPSFGrid, dual_pixel_deblur

        if "left" not in arrays or "right" not in arrays:
            raise ValueError("the dual_pixel row needs the left and right views; this dataset has none")
        left, right = np.asarray(arrays["left"]), np.asarray(arrays["right"])
        if left.ndim != 3 or left.shape != right.shape:
            raise ValueError(f"left and right views must be (H, W, C) of one shape; got {left.shape} and {right.shape}")
        start = time.perf_counter()
        same = all(np.array_equal(v[..., 0], v[..., c]) for v in (left, right) for c in range(1, v.shape[2]))
        channels = [0] if same else list(range(left.shape[2]))
        planes = []
        placed = self.placed(left.shape[:2])
        for c in channels:
            l_, r_ = (np.ascontiguousarray(v[..., c], dtype=np.float32) for v in (left, right))
            res = (dual_pixel_deblur(l_, r_, placed, **self.options) if isinstance(placed, DualPixelPSFGrid)
                   else placed.deblur(l_, r_, **self.options))
            planes.append(np.clip(res.image, 0, 1))
            self.last = res
        self.seconds.append(time.perf_counter() - start)
        out = np.stack(planes * left.shape[2] if same else planes, axis=2)
        return out.astype(left.dtype)


def dual_pixel_row(data: str, psf: Optional[str] = None, log: Optional[Callable[[str], None]] = None,
                   **options) -> "DualPixelBaseline":
    """The ``dual_pixel`` row of dataset spec ``data`` as every entry point builds it.

    The PSFs are the capture's default (:func:`optics.dual_pixel.deblur.dual_pixel_psf_source`
    with ``psf`` or ``'auto'``: for ``pixeldp:DIR`` the calibration beside the views, else the
    fitted field), placed per sample with the views centred in the sensor frame, as the ``pixeldp``
    reader crops them; ``options`` go to the deblur (default: its ``DEFAULTS``). Used by
    ``learned.evaluate`` (its ``--dual-pixel-psf``) and the real-view fine-tuning, so one scene gets
    the same physics everywhere.
    """
    from pathlib import Path

    from optics.dual_pixel.deblur import dual_pixel_psf_source

    kind, _, rest = data.partition(":")
    folder = Path(rest) if kind.strip().lower() == "pixeldp" else None
    try:
        source = dual_pixel_psf_source(psf or "auto", folder)
    except (FileNotFoundError, ValueError) as err:  # the source speaks of optics.dual_pixel.deblur's --psf
        message = str(err).replace(f"--psf {psf!r} ", "")
        raise type(err)(f"argument --dual-pixel-psf {psf!r}: {message}") from err
    row = DualPixelBaseline(source, **options)
    if log is not None:
        log(f"dual_pixel row: optics.dual_pixel.deblur with {row.label()}")
    return row


def add_physics(arrays: dict, physics: DualPixelBaseline) -> Tuple[dict, np.ndarray]:
    """Run the training-free dual-pixel deblurring ``physics`` on a sample; return the arrays with
    ``'physics'`` (its clipped estimate, (H, W, C)), ``'defocus'`` (its signed map, (H, W, 1)) and
    ``'in_focus'`` (the share of the input it kept as in focus, (H, W, 1); issue 32) added, and the
    estimate (the ``dual_pixel`` row)."""
    estimate = physics(arrays)
    defocus = np.asarray(physics.last.defocus, dtype=np.float32)[:, :, None]
    kept = physics.last.in_focus
    in_focus = (np.zeros_like(defocus) if kept is None else np.asarray(kept, dtype=np.float32)[:, :, None])
    return {**arrays, "physics": estimate, "defocus": defocus, "in_focus": in_focus}, estimate
