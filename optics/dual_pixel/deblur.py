r"""Training-free deblurring of a real dual-pixel (DP) capture: defocus from the DP pair, then deconvolution.

A DP sensor records two views :math:`L = x * K_L(s)` and :math:`R = x * K_R(s)` of the sharp
image :math:`x`, blurred by a left and a right PSF that depend on the signed defocus :math:`s`
(and on the position in the frame). Whatever :math:`x` is, the true defocus makes the two views
*cross-consistent*:

.. math:: L * K_R(s) - R * K_L(s) = x * (K_L * K_R - K_R * K_L) = 0 .

:func:`dual_pixel_defocus_map` scores every candidate scale :math:`s` by this residual, whitened
per frequency so that sensor noise weighs the same at every scale,

.. math:: E_s = \left| F^{-1}\!\left[\frac{\hat L \hat K_R(s) - \hat R \hat K_L(s)}
          {\sqrt{|\hat K_L(s)|^2 + |\hat K_R(s)|^2 + \epsilon_c}}\right] \right|^2 ,

aggregates each cost slice with a guided filter steered by the image itself (cost-volume
filtering, Hosni et al. [2]: depth edges follow image edges), and picks the scale of least
cost per pixel with a parabolic sub-scale refinement. :func:`dual_pixel_deblur` then inverts
both views jointly at each scale with the two-view Wiener filter

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

The PSFs vary over the frame. A :class:`DualPixelPSFGrid` holds one calibrated pair per cell
(Xin et al. measure a 6 x 8 grid of 168 px cells on a Pixel 4); each cell is processed in a
window of two cells plus a context margin, and the per-cell results are blended with bilinear
(tent) weights centred on the cells, so neither the cost nor the image has a seam at a cell
border. Kernels at other defocus levels are the calibrated ones rescaled as Xin et al.'s
``rescale_blur_kernels_one_scale`` does (negative scale: flipped), and each pair is recentred
on a reference point (the calibrated kernels lie up to 3.5 px off the array centre): the
centroid of :math:`w K_L + (1 - w) K_R`, ``w`` the grid's ``reference`` (0.5, the full-aperture
image, unless the source says otherwise; Xin et al.'s Pixel 4 data is registered near the left
view, :data:`optics.dual_pixel.pixel4.PIXEL4_REFERENCE`).

NumPy and CuPy arrays run through one code path (``optics._backend``); the small kernel work
(rescaling, transfer functions) is done with NumPy and moved to the device.

References
----------
.. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas,
   R. Garg, "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021
   (code: github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring, ``code/util.py``).
.. [2] A. Hosni, C. Rhemann, M. Bleyer, C. Rother, M. Gelautz, "Fast Cost-Volume Filtering for
   Visual Correspondence and Beyond", TPAMI 2013.
.. [3] K. He, J. Sun, X. Tang, "Guided Image Filtering", TPAMI 2013.
"""

from __future__ import annotations

import math
import os
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import scipy.fft
import scipy.ndimage

from .._backend import namespace, to_numpy
from ._cells import _WINDOW_PROGRESS, _map_windows, _otfs, _windows
from .capture import CELL, MIN_VIEW, OUTSIDE, PIXEL4_SENSOR_FRAME, DualPixelCapture, _shape_text
from .deconvolution import DECONVOLUTION_METHODS, layered_deconvolution
from .pixel4 import PIXEL4_REFERENCE

__all__ = [
    "DualPixelPSFGrid",
    "DualPixelDeblurResult",
    "DEFAULT_SCALES",
    "rescale_blur_kernel",
    "dual_pixel_cost_volume",
    "dual_pixel_defocus_map",
    "dual_pixel_deblur",
    "guided_filter",
    "aggregate_cost",
    "DEFAULTS",
    "load_psfs",
    "PlacedPSFs",
    "DualPixelPSFSource",
    "dual_pixel_psf_source",
    "default_dual_pixel_psfs",
    "PARAMETRIC_PSFS",
    "MIN_PSF_RADIUS",
    "MAX_PSF_RADIUS",
    "check_psf_flags",
    "deblur_capture",
    "window_progress",
]

#: Parameters of :func:`dual_pixel_deblur`, fixed once for all scenes: tuned on Xin et al.'s Pixel 4
#: scenes 001-008 only (docs/real_dual_pixel.md has the search and its command).
DEFAULTS = dict(cost_eps=1e-3, smooth=36.0, radius=32, guide_eps=1e-3, wiener_eps=1.5e-2, scale_bias=-0.1,
                margin=48, deconvolution="tv", tv_weight=6e-4, tv_eps=1e-3, tv_betas=(1e-3, 4e-3, 1.6e-2, 6.4e-2),
                centre_weight=None, aggregation="guided")

#: ``aggregation='sgm'`` (:mod:`optics.dual_pixel.aggregation`): Gaussian sigma of the cost before the scans
#: (px), the penalties of one-scale and larger steps (units of each pixel's normalised cost), the image
#: gradient that halves the large-step penalty, and the block size of the scans. Chosen on scenes 001 and
#: 007 (docs/real_dual_pixel.md).
SGM_OPTIONS = dict(smooth=12.0, p1=1.0, p2=8.0, tau=0.05, factor=4)

#: Candidate defocus scales (relative to the calibration defocus; negative: the other side of focus).
DEFAULT_SCALES: tuple = tuple(float(s) for s in np.round(np.linspace(-0.9, 1.6, 21), 4))


# --------------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------------
def rescale_blur_kernel(kernel: np.ndarray, scale: float, size: Optional[int] = None) -> np.ndarray:
    r"""A calibrated blur kernel at another defocus: magnified by ``|scale|``, flipped when negative.

    The resampler of Xin et al.'s ``rescale_blur_kernels_one_scale(kernel, size, 1 / scale)``:
    output pixel :math:`j` (offset from the centre) samples the input at :math:`j / |s|`
    (times ``n / size``), bilinearly with zeros outside when the input step is below 2 pixels,
    otherwise with Gaussian weights of standard deviation ``(step - 1) / 2`` (anti-aliasing);
    the result keeps the input's sum.

    Parameters
    ----------
    kernel : (n, n) array, n odd
    scale : float, nonzero
    size : odd int, optional
        Output side (default ``n``).

    Returns
    -------
    (size, size) float64 array
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 != 1:
        raise ValueError(f"kernel must be a square 2-D array with an odd side; got shape {k.shape}")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale == 0:
        raise ValueError(f"scale must be a finite nonzero number; got {scale!r}")
    n = k.shape[0]
    size = n if size is None else size
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1 or size % 2 != 1:
        raise ValueError(f"size must be an odd integer >= 1; got {size!r}")
    step = (n / size) / abs(float(scale))
    half = size // 2
    out_c = np.linspace(-half * step, half * step, size)
    in_c = np.arange(n) - n // 2
    if step < 2.0:
        yy, xx = np.meshgrid(out_c + n // 2, out_c + n // 2, indexing="ij")
        out = scipy.ndimage.map_coordinates(k, [yy, xx], order=1, mode="constant", cval=0.0)
    else:
        sigma = (step - 1.0) / 2.0
        g = np.exp(-((in_c[None, :] - out_c[:, None]) ** 2) / (2 * sigma**2))
        out = g @ k @ g.T / (2 * np.pi * sigma**2)
    total = out.sum()
    if total <= 0:
        raise ValueError(f"kernel rescaled by {scale} has no mass left (size {size} too small?)")
    out *= k.sum() / total
    return out[::-1, ::-1].copy() if scale < 0 else out


def _centroid(k: np.ndarray) -> tuple[float, float]:
    c = np.arange(k.shape[0]) - k.shape[0] // 2
    s = k.sum()
    return float(k.sum(1) @ c / s), float(k.sum(0) @ c / s)


@dataclass(frozen=True)
class DualPixelPSFGrid:
    """A spatially varying dual-pixel PSF source: one left/right pair per square cell of the frame.

    Attributes
    ----------
    left, right : (rows, cols, n, n) float64 arrays
        The pair of each cell at the calibration defocus (scale 1), n odd.
    cell : int
        Cell side in pixels; the frame is ``(rows * cell, cols * cell)``.
    name : str
        Where the kernels come from (for reports).
    reference : float
        Where the deblurred image is registered (the default ``centre_weight`` of :meth:`pair`): the
        centroid of ``w K_L + (1 - w) K_R``. 0.5, the default, is the full-aperture image (L + R), the
        geometry of :func:`optics.render_defocus`; Xin et al.'s Pixel 4 data takes
        :data:`optics.dual_pixel.pixel4.PIXEL4_REFERENCE` (their ground truth sits near the left view).
    """

    left: np.ndarray
    right: np.ndarray
    cell: int
    name: str = ""
    reference: float = 0.5

    def __post_init__(self):
        left = np.asarray(self.left, dtype=np.float64)
        right = np.asarray(self.right, dtype=np.float64)
        if left.ndim != 4 or left.shape != right.shape or left.shape[2] != left.shape[3] or left.shape[2] % 2 != 1:
            raise ValueError(f"left and right must be (rows, cols, n, n) arrays of one shape with n odd; "
                             f"got {left.shape} and {right.shape}")
        if not (np.all(np.isfinite(left)) and np.all(np.isfinite(right))):
            raise ValueError("left and right kernels must be finite")
        sums = np.concatenate([left.sum((2, 3)).ravel(), right.sum((2, 3)).ravel()])
        if np.any(sums <= 0):
            raise ValueError("every kernel must have a positive sum")
        if isinstance(self.cell, bool) or not isinstance(self.cell, numbers.Integral) or self.cell < 1:
            raise ValueError(f"cell must be an integer >= 1 (pixels); got {self.cell!r}")
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)
        object.__setattr__(self, "cell", int(self.cell))
        if isinstance(self.reference, bool) or not isinstance(self.reference, numbers.Real) or not math.isfinite(self.reference):
            raise ValueError(f"reference must be a finite number (the left kernel's weight); got {self.reference!r}")
        object.__setattr__(self, "reference", float(self.reference))

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of cells."""
        return self.left.shape[:2]

    @property
    def frame(self) -> tuple[int, int]:
        """(H, W) of the frame the grid covers."""
        return self.grid[0] * self.cell, self.grid[1] * self.cell

    def pair(self, row: int, col: int, scale: float, size: Optional[int] = None, *,
             centre_weight: Optional[float] = None) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """Cell (row, col) at defocus ``scale``: (K_L, K_R, reference point (dy, dx), pixels from the array centre).

        The reference point is the centroid of ``w K_L / sum(K_L) + (1 - w) K_R / sum(K_R)`` with
        ``w = centre_weight`` (default: the grid's ``reference``): 0.5 is the centroid of the pair's mean
        (the full-aperture image), 1 the centroid of the left kernel (the left view's geometry).
        """
        kl = rescale_blur_kernel(self.left[row, col], scale, size)
        kr = rescale_blur_kernel(self.right[row, col], scale, size)
        if centre_weight is None:
            centre_weight = self.reference
        if centre_weight == 0.5:
            return kl, kr, _centroid((kl + kr) / 2)
        return kl, kr, _centroid(centre_weight * kl / kl.sum() + (1 - centre_weight) * kr / kr.sum())

    # sources -----------------------------------------------------------------------------------
    @classmethod
    def from_calibration(cls, folder: str | Path, rows: int = 6, cols: int = 8, cell: int = 168) -> "DualPixelPSFGrid":
        """Xin et al.'s measured kernels: ``blur_kernels_{left,right}.npy`` (rows * cols, n, n), index row * cols + col.

        ``folder`` is their ``calibration/`` folder or the data set folder holding it. The grid
        is the one of their ``run.py`` (``patch_size=168, num_rows=6, num_cols=8``).
        """
        folder = Path(folder)
        if (folder / "calibration").is_dir() and not (folder / "blur_kernels_left.npy").exists():
            folder = folder / "calibration"
        arrays = []
        for side in ("left", "right"):
            path = folder / f"blur_kernels_{side}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"calibrated kernels {str(path)!r} do not exist (expected Xin et al.'s "
                                        "calibration/blur_kernels_{left,right}.npy)")
            try:
                a = np.load(path, allow_pickle=False)
            except ValueError as err:
                raise ValueError(f"cannot read {str(path)!r} as a NumPy array: {err}") from err
            if a.ndim != 3 or a.shape[0] != rows * cols:
                raise ValueError(f"{str(path)!r} must hold {rows * cols} kernels of shape (n, n); got shape {a.shape}")
            arrays.append(a.reshape(rows, cols, *a.shape[1:]))
        return cls(arrays[0], arrays[1], cell, name=f"calibrated kernels {folder}")

    @classmethod
    def from_field(cls, field_model: Any, cell: int = 168, size: int = 61, *, shape: Optional[tuple[int, int]] = None,
                   origin: tuple[float, float] = (0.0, 0.0)) -> "DualPixelPSFGrid":
        """Sample a fitted :class:`optics.DualPixelField` at its calibration defocus, one pair per cell centre.

        ``shape`` (H, W) and ``origin`` (x0, y0) select a window of the field's frame (default:
        the whole frame): the grid then covers an image whose pixel (0, 0) sits at ``origin`` of
        the frame, in the ``field_origin`` convention of :func:`optics.render_coc_layers` (x
        first), as a scene of :func:`optics.render.pixel4_raw.synthesize_pixel4_raw` records it.
        """
        from .fit import DualPixelField

        if not isinstance(field_model, DualPixelField):
            raise TypeError(f"field_model must be an optics.DualPixelField; got {type(field_model).__name__}")
        H, W = field_model.image_shape if shape is None else shape
        try:
            x0, y0 = (float(v) for v in origin)
        except (TypeError, ValueError):
            raise ValueError(f"origin must be a pair of numbers (x0, y0); got {origin!r}") from None
        if H % cell or W % cell:
            what = "the field's frame" if shape is None else "shape"
            raise ValueError(f"{what} {H}x{W} must be a whole number of {cell} px cells; pass another cell")
        rows, cols = H // cell, W // cell
        left = np.empty((rows, cols, size, size))
        right = np.empty_like(left)
        for r in range(rows):
            for c in range(cols):
                p = field_model.psfs(field_model.calibration_coc, x0 + c * cell + (cell - 1) / 2,
                                     y0 + r * cell + (cell - 1) / 2, size=size)
                left[r, c], right[r, c] = p.left, p.right
        where = "" if shape is None else f", window {H}x{W} at (x, y) = {(x0, y0)}"
        return cls(left, right, cell,
                   name=f"DualPixelField (degree {field_model.degree}) sampled per {cell} px cell{where}")


    @classmethod
    def from_model(cls, model: str, radius: float, shape: Optional[tuple[int, int]] = None, cell: int = 168,
                   size: Optional[int] = None, *, sign: int = 1, order: int = 3, beta: float = 0.1,
                   cutoff_factor: float = 2.5) -> "DualPixelPSFGrid":
        """A spatially constant grid of a parametric DP model (:func:`optics.dual_pixel_psfs`): every cell one pair.

        For a camera without a calibration. ``model``: ``'disc'`` (= ``'half_disc'``: each view one half
        of a disc) or ``'butterworth'`` (Abuolaim et al.'s rim-weighted disc split by a ramp; ``order``,
        ``beta``, ``cutoff_factor`` as :func:`optics.dual_pixel_psfs`). The pair stored is the model at a
        CoC radius of ``sign * radius`` pixels, so scale 1 of :func:`dual_pixel_deblur` is a blur radius
        of ``radius`` px and scale ``s`` about ``|s| radius`` (the stored pair magnified by
        :func:`rescale_blur_kernel`, flipped for ``s < 0``). ``sign`` +1: at positive scales the
        *left* view's PSF carries its light right of the centre (x > 0, as :func:`optics.dual_pixel_psfs`
        and :func:`optics.render_defocus` for a positive CoC); -1: left of it (Xin et al.'s Pixel 4
        calibration at its calibration defocus). The split is horizontal (the views' rows).

        ``shape`` (H, W): whole cells (default one cell). ``size``: odd kernel side, default room for
        scale 2 (the model's support at ``2 radius``); the pair is computed at its own support and
        zero-padded, so ``size`` does not change the model. Every kernel sums to 1 and, the models
        being mirror-symmetric, ``right == left[:, ::-1]``.
        """
        from .models import DP_MODELS, dual_pixel_psfs, psf_half_size

        m = PARAMETRIC_PSFS.get(model, model) if isinstance(model, str) else model
        if m not in DP_MODELS:
            raise ValueError(f"model must be one of {sorted(PARAMETRIC_PSFS)}; got {model!r}")
        if (isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not math.isfinite(radius)
                or not MIN_PSF_RADIUS <= radius <= MAX_PSF_RADIUS):
            raise ValueError(f"radius must be a number of pixels in [{MIN_PSF_RADIUS:g}, {MAX_PSF_RADIUS:g}]; got {radius!r}")
        if isinstance(sign, bool) or sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1; got {sign!r}")
        if isinstance(cell, bool) or not isinstance(cell, numbers.Integral) or cell < 1:
            raise ValueError(f"cell must be an integer >= 1 (pixels); got {cell!r}")
        H, W = (cell, cell) if shape is None else (int(v) for v in shape)
        if H < cell or W < cell or H % cell or W % cell:
            raise ValueError(f"shape {H}x{W} must be a whole number (>= 1) of {cell} px cells")
        p = dual_pixel_psfs(sign * float(radius), m, order=order, beta=beta, cutoff_factor=cutoff_factor)
        need = 2 * psf_half_size(2.0 * float(radius), m) + 1
        if size is None:
            size = need
        if (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size % 2 != 1
                or size < p.left.shape[0]):
            raise ValueError(f"size must be an odd integer >= {p.left.shape[0]} (the model's support at radius "
                             f"{radius:g}); got {size!r}")
        a = (int(size) - p.left.shape[0]) // 2
        kl, kr = (np.pad(k, a) if a else k for k in (p.left, p.right))
        rows, cols = H // cell, W // cell
        left = np.broadcast_to(kl, (rows, cols) + kl.shape)
        right = np.broadcast_to(kr, (rows, cols) + kr.shape)
        extra = f", order {order}" if m == "butterworth" else ""
        name = (f"parametric {m} DP model{extra}, radius {float(radius):g} px at scale 1, sign {sign:+d} "
                f"(spatially constant)")
        return cls(np.ascontiguousarray(left), np.ascontiguousarray(right), int(cell), name=name)


    def window(self, shape: tuple[int, int], origin: tuple[int, int] = (0, 0), *,
               outside: Any = "nearest") -> "DualPixelPSFGrid":
        """The grid of a window of ``shape`` (H, W) whose pixel (0, 0) lies at ``origin`` (row, col) of this frame.

        Both are whole numbers of cells (``origin`` may be negative and the window may reach past
        the frame). Cells of the window inside this grid are its cells; cells outside come from
        ``outside``: ``'nearest'`` (the nearest cell of this grid, its indices clamped) or an
        :class:`optics.DualPixelField` whose frame is this grid's frame, sampled at the cell's
        centre (extrapolated) at its calibration defocus. When the field's kernels need a larger
        support than this grid's, every kernel is zero-padded (centred) to the largest one.
        """
        from .fit import DualPixelField

        c = self.cell
        try:
            H, W = (int(v) for v in shape)
            r0, c0 = (int(v) for v in origin)
        except (TypeError, ValueError):
            raise ValueError(f"shape and origin must be pairs of integers; got {shape!r} and {origin!r}") from None
        if H < c or W < c or H % c or W % c or r0 % c or c0 % c:
            raise ValueError(f"window {H}x{W} at (row, col) ({r0}, {c0}) must lie on the grid's {c} px cells "
                             "(whole numbers of cells, at least one)")
        use_field = isinstance(outside, DualPixelField)
        if use_field and tuple(outside.image_shape) != self.frame:
            raise ValueError(f"the field's frame {outside.image_shape[0]}x{outside.image_shape[1]} must be this "
                             f"grid's frame {self.frame[0]}x{self.frame[1]}")
        if not use_field and outside != "nearest":
            raise ValueError(f"outside must be 'nearest' or an optics.DualPixelField; got {outside!r}")
        R, C = self.grid
        n = self.left.shape[2]
        rows, cols = H // c, W // c
        cells: dict = {}
        for i in range(rows):
            for j in range(cols):
                gi, gj = r0 // c + i, c0 // c + j
                if 0 <= gi < R and 0 <= gj < C:
                    cells[i, j] = (self.left[gi, gj], self.right[gi, gj])
                elif not use_field:
                    gi, gj = min(max(gi, 0), R - 1), min(max(gj, 0), C - 1)
                    cells[i, j] = (self.left[gi, gj], self.right[gi, gj])
                else:
                    p = outside.psfs(outside.calibration_coc, gj * c + (c - 1) / 2, gi * c + (c - 1) / 2)
                    cells[i, j] = (p.left, p.right)
        size = max([n] + [k[0].shape[0] for k in cells.values()])

        def padded(k):
            a = (size - k.shape[0]) // 2
            return np.pad(k, a) if a else k

        left = np.empty((rows, cols, size, size))
        right = np.empty_like(left)
        for (i, j), (kl, kr) in cells.items():
            left[i, j], right[i, j] = padded(kl), padded(kr)
        inside = sum(0 <= r0 // c + i < R and 0 <= c0 // c + j < C for i in range(rows) for j in range(cols))
        how = "the fitted field" if use_field else "the nearest cell"
        name = (f"{self.name}, window {H}x{W} at (row, col) ({r0}, {c0}): {inside} of {rows * cols} cells "
                f"inside, {rows * cols - inside} outside from {how}")
        return DualPixelPSFGrid(left, right, c, name=name, reference=self.reference)


#: ``--psf`` names of the parametric sources (:meth:`DualPixelPSFGrid.from_model`) -> :data:`optics.dual_pixel.models.DP_MODELS`.
PARAMETRIC_PSFS = {"disc": "half_disc", "half_disc": "half_disc", "butterworth": "butterworth"}
#: Range of ``radius`` (``--psf-radius``, pixels at scale 1): the deblurring's context margin
#: (``DEFAULTS['margin']``, 48 px) bounds the blur it can invert.
MIN_PSF_RADIUS, MAX_PSF_RADIUS = 1.0, 48.0


# --------------------------------------------------------------------------------------------------
# PSFs of views at a place of the sensor (optics.dual_pixel.capture reads the views)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlacedPSFs:
    """PSFs for views of ``shape`` at ``origin`` of the sensor (:meth:`DualPixelPSFSource.place`).

    ``grid`` covers the views padded (``pad``: ((top, bottom), (left, right)) rows and columns,
    mirrored) to whole cells of the calibrated lattice; :meth:`deblur` pads, deblurs and crops back.
    """

    grid: DualPixelPSFGrid
    pad: tuple
    shape: tuple
    origin: tuple
    notes: tuple = ()

    @property
    def name(self) -> str:
        return self.grid.name

    @property
    def cells(self) -> int:
        """Cells deblurred (each a window per pass: the cost, the layers, each TV step)."""
        return self.grid.grid[0] * self.grid.grid[1]

    def deblur(self, left: np.ndarray, right: np.ndarray, scales: Sequence[float] = DEFAULT_SCALES,
               **options) -> DualPixelDeblurResult:
        """:func:`optics.dual_pixel.deblur.dual_pixel_deblur` of (H, W) views of ``shape``; maps of ``shape``."""
        left, right = np.asarray(left), np.asarray(right)
        if left.shape != tuple(self.shape) or right.shape != tuple(self.shape):
            raise ValueError(f"views must be {self.shape[0]}x{self.shape[1]} (the placed PSFs' views); got "
                             f"{_shape_text(left.shape)} and {_shape_text(right.shape)}")
        (t, b), (l_, r) = self.pad
        if t or b or l_ or r:
            left = np.pad(left, self.pad, mode="symmetric")
            right = np.pad(right, self.pad, mode="symmetric")
            if options.get("defocus") is not None:  # a given map of the views' shape, padded as they are
                options = dict(options, defocus=np.pad(np.asarray(options["defocus"]), self.pad, mode="symmetric"))
        res = dual_pixel_deblur(left, right, self.grid, scales, **options)
        if t or b or l_ or r:
            H, W = self.shape
            crop = (slice(t, t + H), slice(l_, l_ + W))
            res.image = res.image[crop]
            res.defocus = res.defocus[crop]
            res.confidence = res.confidence[crop]
        return res


@dataclass(frozen=True)
class DualPixelPSFSource:
    """A camera's PSFs over its sensor: a calibrated grid centred in ``frame_shape``, and what to use outside it.

    ``outside``: ``'field'`` (a fitted :class:`optics.DualPixelField` of the grid's frame,
    ``field``) or ``'nearest'``. ``frame_shape`` None: a spatially constant source (a parametric
    model, :meth:`DualPixelPSFGrid.from_model`) that places views of any size anywhere (the
    lattice starts at the views' origin; every cell is the grid's nearest, i.e. the same pair).
    """

    grid: DualPixelPSFGrid
    outside: str = "field"
    field: Any = None
    frame_shape: tuple = PIXEL4_SENSOR_FRAME
    description: str = ""

    @property
    def name(self) -> str:
        return self.description or self.grid.name

    @property
    def grid_origin(self) -> tuple:
        """(row, col) of the calibrated grid in the sensor frame (centred; (0, 0) without a frame)."""
        if self.frame_shape is None:
            return 0, 0
        gh, gw = self.grid.frame
        return (self.frame_shape[0] - gh) // 2, (self.frame_shape[1] - gw) // 2

    def place(self, shape: Sequence[int], origin: Optional[Sequence[int]] = None) -> PlacedPSFs:
        """PSFs for (H, W) views at ``origin`` (row, col) of the sensor (default: centred)."""
        H, W = (int(v) for v in shape[:2])
        if min(H, W) < MIN_VIEW:
            raise ValueError(f"views {H}x{W} are smaller than the {MIN_VIEW}x{MIN_VIEW} px minimum (two {CELL} px "
                             f"cells); expected views of at least {MIN_VIEW} px on each side")
        if self.frame_shape is None:  # spatially constant: any views, anywhere
            r0, c0 = (0, 0) if origin is None else (int(v) for v in origin)
            FH, FW = max(r0, 0) + H, max(c0, 0) + W
        else:
            FH, FW = self.frame_shape
            r0, c0 = ((FH - H) // 2, (FW - W) // 2) if origin is None else (int(v) for v in origin)
        if r0 < 0 or c0 < 0 or r0 + H > FH or c0 + W > FW:
            raise ValueError(f"origin: expected the {H}x{W} views inside the {FH}x{FW} sensor frame; got ({r0}, {c0})")
        c = self.grid.cell
        gr, gc = self.grid_origin
        top, left = (r0 - gr) % c, (c0 - gc) % c
        bottom, right = (-(top + H)) % c, (-(left + W)) % c
        win = (H + top + bottom, W + left + right)
        at = (r0 - top - gr, c0 - left - gc)
        outside = self.field if self.outside == "field" else "nearest"
        grid = self.grid.window(win, at, outside=outside)
        rows, cols = grid.grid
        R, C = self.grid.grid
        inside = sum(0 <= at[0] // c + i < R and 0 <= at[1] // c + j < C for i in range(rows) for j in range(cols))
        notes = []
        if top or bottom or left or right:
            notes.append(f"views mirror-padded by rows {top}/{bottom} (top/bottom) and columns {left}/{right} "
                         f"(left/right) to whole {c} px cells of the {'' if self.frame_shape is None else 'calibrated '}"
                         "lattice, cropped back after")
        if self.frame_shape is None:
            notes.append(f"PSFs: {self.name}; one pair for all {rows * cols} cells")
            return PlacedPSFs(grid, ((top, bottom), (left, right)), (H, W), (r0, c0), tuple(notes))
        gh, gw = self.grid.frame
        where = (f"{inside} of {rows * cols} cells inside the calibrated {gh}x{gw} at (row, col) ({gr}, {gc})")
        if inside < rows * cols:
            what = ("the fitted Pixel 4 field, extrapolated" if self.outside == "field"
                    else "the nearest calibrated cell")
            where += f"; {rows * cols - inside} outside use {what} (--outside {self.outside})"
        notes.append(f"PSFs: {self.name}; {where}")
        return PlacedPSFs(grid, ((top, bottom), (left, right)), (H, W), (r0, c0), tuple(notes))


def _parametric_source(psf: str, radius: Any, sign: Any, order: Any) -> DualPixelPSFSource:
    """The spatially constant source of ``--psf disc|butterworth`` (errors name the flags)."""
    if radius is None:
        raise ValueError(f"--psf {psf}: expected --psf-radius R (the blur radius in pixels at scale 1; "
                         f"{MIN_PSF_RADIUS:g}..{MAX_PSF_RADIUS:g}); got none")
    if (isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not math.isfinite(radius)
            or not MIN_PSF_RADIUS <= radius <= MAX_PSF_RADIUS):
        raise ValueError(f"--psf-radius: expected a blur radius of {MIN_PSF_RADIUS:g}..{MAX_PSF_RADIUS:g} px at "
                         f"scale 1; got {radius!r}")
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"--psf-sign: expected 1 or -1; got {sign!r}")
    model = PARAMETRIC_PSFS[psf]
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or not 1 <= order <= 32:
        raise ValueError(f"--psf-order: expected a Butterworth order of 1..32 (Abuolaim et al. use 3, 6, 9); "
                         f"got {order!r}")
    grid = DualPixelPSFGrid.from_model(model, float(radius), cell=CELL, sign=int(sign), order=int(order))
    return DualPixelPSFSource(grid, "nearest", None, None, f"{grid.name} (--psf {psf})")


def dual_pixel_psf_source(psf: Any = "auto", folder: Optional[str | os.PathLike] = None, *,
                          outside: str = "field", radius: Optional[float] = None, sign: int = 1,
                          order: int = 3) -> DualPixelPSFSource:
    """The PSF source of a capture: ``psf`` 'auto', 'pixel4', 'calibration', 'disc', 'butterworth' or a folder of Xin et al.'s kernels.

    ``'auto'``: the calibrated kernels of ``folder/calibration`` (or ``folder``) when they exist
    (Xin et al.'s layout beside the views), else the fitted Pixel 4 field. ``'calibration'``
    requires them. ``outside``: 'field' or 'nearest' (module notes).

    ``'disc'`` (``'half_disc'``) and ``'butterworth'``: a camera without a calibration, one
    parametric pair for the whole frame (:meth:`DualPixelPSFGrid.from_model`, ``frame_shape``
    None: views of any size): ``radius`` (``--psf-radius``, required) is the blur radius in pixels at
    scale 1, the unit of the defocus map; ``sign`` (``--psf-sign``) +1 puts the left view's PSF
    right of the centre at positive scales, -1 left of it (the Pixel 4's convention); ``order``
    (``--psf-order``) is the Butterworth order. ``radius``, ``sign`` and ``order`` given with another
    ``psf`` are an error.
    """
    from .pixel4 import pixel4_dual_pixel_field

    if outside not in OUTSIDE:
        raise ValueError(f"--outside: expected one of {', '.join(OUTSIDE)}; got {outside!r}")
    if isinstance(psf, DualPixelPSFSource):
        return psf
    if isinstance(psf, str) and psf in PARAMETRIC_PSFS:
        return _parametric_source(psf, radius, sign, order)
    for flag, value, default in (("--psf-radius", radius, None), ("--psf-sign", sign, 1), ("--psf-order", order, 3)):
        if value != default:
            raise ValueError(f"{flag}: only with --psf {' or '.join(p for p in PARAMETRIC_PSFS if p != 'half_disc')} "
                             f"(a parametric model); got --psf {psf if isinstance(psf, str) else type(psf).__name__}")
    fld = pixel4_dual_pixel_field()
    if isinstance(psf, DualPixelPSFGrid):
        return DualPixelPSFSource(psf, outside, fld if outside == "field" else None)
    spec = str(psf)
    found = None
    if spec in ("auto", "calibration"):
        for cand in ([] if folder is None else [Path(folder) / "calibration", Path(folder)]):
            if (cand / "blur_kernels_left.npy").is_file() and (cand / "blur_kernels_right.npy").is_file():
                found = cand
                break
        if found is None and spec == "calibration":
            raise FileNotFoundError(f"--psf calibration: expected blur_kernels_{{left,right}}.npy in "
                                    f"{str(Path(folder or '.') / 'calibration')!r}; found none")
    elif spec != "pixel4":
        found = Path(spec)
        if not found.is_dir():
            raise FileNotFoundError(f"--psf: expected auto, pixel4, calibration, disc, butterworth or a folder of Xin et al.'s "
                                    f"blur_kernels_{{left,right}}.npy; got {spec!r}, which is not a folder")
    if found is not None:
        grid = replace(DualPixelPSFGrid.from_calibration(found, cell=CELL), reference=PIXEL4_REFERENCE)
        how = "auto: found beside the views" if spec == "auto" else f"--psf {spec}"
        desc = f"Xin et al.'s calibrated kernels {str(found)!r} ({how})"
    else:
        grid = replace(DualPixelPSFGrid.from_field(fld, CELL), reference=PIXEL4_REFERENCE)
        how = "auto: no calibration/ beside the views" if spec == "auto" else "--psf pixel4"
        desc = f"the fitted Pixel 4 field ({how})"
    return DualPixelPSFSource(grid, outside, fld if outside == "field" else None, PIXEL4_SENSOR_FRAME, desc)


def check_psf_flags(args) -> None:
    """The ``--psf-radius``, ``--psf-sign``, ``--psf-order`` of a command line (:func:`optics.dual_pixel.capture.add_capture_arguments`),
    checked before the capture is read: ValueError naming the flag."""
    if (args.psf in PARAMETRIC_PSFS or args.psf_radius is not None or args.psf_sign != 1 or args.psf_order != 3):
        dual_pixel_psf_source(args.psf, radius=args.psf_radius, sign=args.psf_sign, order=args.psf_order)


def default_dual_pixel_psfs(capture: "DualPixelCapture", psf: Any = "auto", *, outside: str = "field",
                            radius: Optional[float] = None, sign: int = 1, order: int = 3) -> PlacedPSFs:
    """The PSFs of ``capture``'s views at their origin: :func:`dual_pixel_psf_source` placed there.

    ``radius``, ``sign``, ``order``: the parametric sources' (``psf`` 'disc' or 'butterworth').
    """
    source = dual_pixel_psf_source(psf, capture.folder, outside=outside, radius=radius, sign=sign, order=order)
    return source.place(capture.shape, capture.origin)


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


def deblur_capture(capture: "DualPixelCapture", psfs: PlacedPSFs, scales: Sequence[float] = DEFAULT_SCALES, *,
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
    # window passes: the cost, the layers (and one per TV step); a given map skips the cost
    steps = 1 + (len(DEFAULTS["tv_betas"]) if options.get("deconvolution", DEFAULTS["deconvolution"]) == "tv" else 0)
    with window_progress(((1 + steps) + (n - 1) * steps) * psfs.cells, enabled=progress):
        res = psfs.deblur(np.ascontiguousarray(planes[0][0]), np.ascontiguousarray(planes[0][1]), scales, **options)
        images = [res.image]
        if n > 1:
            s = _check_scales(scales)
            bias = options.get("scale_bias", DEFAULTS["scale_bias"])
            given = dict(options, defocus=np.clip(np.asarray(res.defocus, np.float64) + bias, s[0], s[-1]))
            given.pop("scale_bias", None)
            for l_, r_ in planes[1:]:
                images.append(psfs.deblur(np.ascontiguousarray(l_), np.ascontiguousarray(r_), scales, **given).image)
    if L.ndim == 3:
        stack = [images[0]] * 3 if n == 1 else [images[1], images[0], images[2]]
        res.image = np.stack(stack, axis=2)
    return res



# --------------------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------------------
def _ndimage(backend):
    if backend.name == "cupy":
        import cupyx.scipy.ndimage as nd

        return nd
    return scipy.ndimage


def guided_filter(guide: Any, src: Any, radius: int, eps: float) -> Any:
    r"""He et al.'s guided filter of ``src`` (..., H, W) steered by a grey ``guide`` (H, W).

    Per box window :math:`\omega` of side ``2 radius + 1``: :math:`q = \bar a\, I + \bar b`,
    :math:`a = \mathrm{cov}_\omega(I, p) / (\mathrm{var}_\omega(I) + \epsilon)`,
    :math:`b = \bar p - a \bar I` (mirror boundary). Leading axes of ``src`` are filtered one by one.
    """
    be = namespace(guide, src)
    nd = _ndimage(be)
    size = 2 * int(radius) + 1

    def box(x):
        return nd.uniform_filter(x, size, mode="reflect")

    I = guide
    mI = box(I)
    vI = box(I * I) - mI * mI
    flat = src.reshape((-1,) + src.shape[-2:])
    out = be.xp.empty_like(flat)
    for i in range(flat.shape[0]):
        p = flat[i]
        mp = box(p)
        a = (box(I * p) - mI * mp) / (vI + eps)
        b = mp - a * mI
        out[i] = box(a) * I + box(b)
    return out.reshape(src.shape)


# --------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------
def _check_views(left, right, psfs):
    be = namespace(left, right)
    if be.name == "torch":
        raise TypeError("left and right must be NumPy or CuPy arrays; got torch tensors")
    for name, v in (("left", left), ("right", right)):
        if v.ndim != 2:
            raise ValueError(f"{name} must be a single-channel (H, W) image; got shape {tuple(v.shape)}")
        if v.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64; got {v.dtype}")
        if not bool(be.xp.all(be.xp.isfinite(v))):
            raise ValueError(f"{name} has NaN or inf values")
    if left.shape != right.shape or left.dtype != right.dtype:
        raise ValueError(f"left and right must have one shape and dtype; got {tuple(left.shape)} {left.dtype} "
                         f"and {tuple(right.shape)} {right.dtype}")
    if not isinstance(psfs, DualPixelPSFGrid):
        raise TypeError(f"psfs must be an optics.DualPixelPSFGrid (DualPixelPSFGrid.from_calibration or "
                        f".from_field); got {type(psfs).__name__}")
    if tuple(left.shape) != psfs.frame:
        raise ValueError(f"left and right are {left.shape[0]}x{left.shape[1]} but psfs cover a "
                         f"{psfs.frame[0]}x{psfs.frame[1]} frame ({psfs.grid[0]}x{psfs.grid[1]} cells of "
                         f"{psfs.cell} px); crop the views to the calibrated frame")
    return be


def _check_scales(scales) -> np.ndarray:
    s = np.asarray(scales, dtype=np.float64)
    if s.ndim != 1 or s.size < 3 or not np.all(np.isfinite(s)) or np.any(s == 0) or np.any(np.diff(s) <= 0):
        raise ValueError(f"scales must be at least 3 finite, nonzero, strictly increasing numbers; got {scales!r}")
    return s


def _check_positive(value, name, allow_zero=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}; got {value!r}")


# --------------------------------------------------------------------------------------------------
# defocus
# --------------------------------------------------------------------------------------------------
def dual_pixel_cost_volume(left: Any, right: Any, psfs: DualPixelPSFGrid, scales: Sequence[float] = DEFAULT_SCALES,
                           *, cost_eps: float = DEFAULTS["cost_eps"], margin: int = DEFAULTS["margin"],
                           workers: int = -1, _windows_out: Optional[list] = None) -> Any:
    """Whitened DP cross-consistency cost :math:`E_s` (module Notes) of every scale, shape (S, H, W), unaggregated.

    ``workers``: threads over the cells' windows (NumPy; -1: every core); the result does not depend on it.
    """
    _check_workers(workers)
    be = _check_views(left, right, psfs)
    s = _check_scales(scales)
    _check_positive(cost_eps, "cost_eps")
    xp, fft = be.xp, be.fft
    windows, n = _windows(left, right, psfs, int(margin), be)
    if _windows_out is not None:
        _windows_out[:] = [windows, n]
    cdt = np.complex64 if left.dtype == np.float32 else np.complex128
    H, W = left.shape
    cost = xp.zeros((len(s),) + (H, W), dtype=left.dtype)
    weight = xp.zeros((H, W), dtype=left.dtype)
    def one(w):
        part = xp.empty((len(s), w.box[1] - w.box[0], w.box[3] - w.box[2]), dtype=left.dtype)
        for i, sc in enumerate(s):
            KL, KR = _otfs(psfs, w.row, w.col, float(sc), n, be, cdt, 0.5)  # the cost ignores a common shift of the pair
            num = w.FL * KR - w.FR * KL
            den = xp.sqrt(xp.abs(KL) ** 2 + xp.abs(KR) ** 2 + cost_eps)
            e = fft.irfft2(num / den, s=(n, n))[w.inner]
            part[i] = w.tent * e * e
        return part

    for w, part in _map_windows(one, windows, workers, be):
        y0, y1, x0, x1 = w.box
        weight[y0:y1, x0:x1] += w.tent
        cost[:, y0:y1, x0:x1] += part
    return cost / weight


def _layer_index(defocus: np.ndarray, scales: np.ndarray, backend, dtype):
    """Fractional index into ``scales`` of each defocus value (clamped to the ends), on the views' device."""
    index = np.interp(np.asarray(defocus, np.float64).ravel(), scales, np.arange(len(scales)))
    return backend.xp.asarray(index.reshape(np.shape(defocus)).astype(dtype))


def _subscale_argmin(cost, xp):
    """Index of least cost per pixel, refined by the vertex of a parabola through three neighbours."""
    S = cost.shape[0]
    i = xp.argmin(cost, axis=0)
    ic = xp.clip(i, 1, S - 2)
    a = xp.take_along_axis(cost, (ic - 1)[None], axis=0)[0]
    b = xp.take_along_axis(cost, ic[None], axis=0)[0]
    d = xp.take_along_axis(cost, (ic + 1)[None], axis=0)[0]
    den = a - 2 * b + d
    delta = xp.where(den > 0, 0.5 * (a - d) / xp.where(den > 0, den, 1), 0)
    delta = xp.clip(delta, -0.5, 0.5)
    return xp.where(i == ic, ic + delta, i).astype(cost.dtype)


@dataclass
class DualPixelDeblurResult:
    """Output of :func:`dual_pixel_deblur` / :func:`dual_pixel_defocus_map`.

    Attributes
    ----------
    image : (H, W) array or None
        All-in-focus estimate (same dtype and library as the views; not clipped).
    defocus : (H, W) array
        Signed defocus per pixel, in units of the calibration defocus (the ``scales`` axis).
    confidence : (H, W) array in [0, 1]
        ``1 - min_s E_s / mean_s E_s`` of the aggregated cost: 0 where the cost is flat
        (no texture, any scale fits), near 1 where one scale explains the views much better.
    scales : (S,) ndarray
    """

    image: Any
    defocus: Any
    confidence: Any
    scales: np.ndarray = field(repr=False)


def aggregate_cost(cost: Any, guide: Any, *, smooth: float, radius: int, guide_eps: float) -> Any:
    """Cost-volume filtering: each slice Gaussian-smoothed (``smooth`` px), then guided by ``guide``.

    The Gaussian gathers evidence from textured neighbours into flat regions (a DP pair says
    nothing about defocus where the scene has no texture); the guided filter (:func:`guided_filter`)
    then snaps the cost, and so the defocus map, to the image's edges.
    """
    be = namespace(cost, guide)
    if smooth > 0:
        cost = _gaussian_slices(cost, float(smooth), be)
    return guided_filter(guide, cost, int(radius), float(guide_eps))


def _gaussian_slices(volume, sigma: float, backend, workers: int = -1):
    """``scipy.ndimage.gaussian_filter(slice, sigma, mode='reflect')`` of every (H, W) slice of ``volume``.

    NumPy: the same sampled kernel (truncated at 4 sigma, unit sum) applied along each axis of the
    mirror-padded volume as a product of FFTs (``scipy.fft`` on ``workers`` threads, every slice at
    once), equal to ndimage's direct sum up to rounding and about 10x faster at sigma 36. The FFT
    length only has to hold the padded axis: the circular wrap lands in the part the 'valid'
    convolution discards. CuPy: ``cupyx.scipy.ndimage``.
    """
    if backend.name != "numpy":
        nd = _ndimage(backend)
        out = backend.xp.empty_like(volume)
        for i in range(volume.shape[0]):
            out[i] = nd.gaussian_filter(volume[i], sigma, mode="reflect")
        return out
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    threads = (os.cpu_count() or 1) if workers == -1 else int(workers)
    out = volume
    for axis in (1, 2):
        widths = [(0, 0)] * 3
        widths[axis] = (r, r)
        padded = np.pad(out, widths, mode="symmetric")
        m = padded.shape[axis]
        n = scipy.fft.next_fast_len(m, real=True)
        kf = scipy.fft.rfft(k, n)
        shape = [1, 1, 1]
        shape[axis] = kf.size
        spec = scipy.fft.rfft(padded, n, axis=axis, workers=threads)
        spec *= kf.reshape(shape).astype(spec.dtype)
        full = scipy.fft.irfft(spec, n, axis=axis, workers=threads)
        keep = [slice(None)] * 3
        keep[axis] = slice(2 * r, m)  # the 'valid' part: outputs whose window lies inside the padded axis
        out = full[tuple(keep)]
    return np.ascontiguousarray(out, dtype=volume.dtype)


#: Cost aggregations of :func:`dual_pixel_defocus_map`: cost-volume filtering, or semi-global scans.
AGGREGATIONS = ("guided", "sgm")


def _check_aggregation(aggregation):
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")


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


def _defocus(left, right, psfs, s, o, windows_out=None):
    be = namespace(left)
    xp = be.xp
    cost = dual_pixel_cost_volume(left, right, psfs, s, cost_eps=o["cost_eps"], margin=o["margin"],
                                  workers=o["workers"], _windows_out=windows_out)
    guide_raw = (left + right) / 2
    guide = guide_raw / max(float(xp.max(guide_raw)), float(np.finfo(np.float32).tiny))
    if o.get("aggregation", "guided") == "sgm":
        if be.name != "numpy":
            raise ValueError("aggregation='sgm' runs on NumPy arrays only; use aggregation='guided' on the GPU")
        from .aggregation import semi_global_index

        agg = _gaussian_slices(cost, SGM_OPTIONS["smooth"], be)
        idx = semi_global_index(agg, guide, p1=SGM_OPTIONS["p1"], p2=SGM_OPTIONS["p2"], tau=SGM_OPTIONS["tau"],
                                factor=SGM_OPTIONS["factor"], subscale_argmin=_subscale_argmin,
                                guided_filter=guided_filter)
    else:
        agg = aggregate_cost(cost, guide, smooth=o["smooth"], radius=o["radius"], guide_eps=o["guide_eps"])
        idx = _subscale_argmin(agg, xp)
    mean = xp.mean(agg, axis=0)
    # a floor at the views' rounding level: a cost that is only rounding noise (no texture) gives 0, not ~1
    floor = float(np.finfo(left.dtype).eps) * float(xp.mean(guide_raw)) ** 2 + float(np.finfo(left.dtype).tiny)
    conf = xp.clip((mean - xp.min(agg, axis=0)) / (mean + floor), 0, 1).astype(left.dtype)
    defocus = xp.asarray(np.interp(to_numpy(idx).ravel(), np.arange(len(s)), s).reshape(idx.shape).astype(left.dtype))
    return agg, idx, defocus, conf


def dual_pixel_defocus_map(left: Any, right: Any, psfs: DualPixelPSFGrid, scales: Sequence[float] = DEFAULT_SCALES,
                           *, cost_eps: float = DEFAULTS["cost_eps"], smooth: float = DEFAULTS["smooth"], radius: int = DEFAULTS["radius"],
                           guide_eps: float = DEFAULTS["guide_eps"], margin: int = DEFAULTS["margin"],
                           aggregation: str = DEFAULTS["aggregation"], workers: int = -1) -> DualPixelDeblurResult:
    r"""Signed defocus map of a DP pair, edge-aware (``image`` of the result is None).

    Parameters
    ----------
    left, right : (H, W) float32 or float64 NumPy or CuPy arrays
        The two views, linear, on one scale (vignetting corrected), the frame of ``psfs``.
    psfs : DualPixelPSFGrid
        Calibrated kernels (:meth:`DualPixelPSFGrid.from_calibration`) or a fitted field
        (:meth:`DualPixelPSFGrid.from_field`, e.g. of :func:`optics.dual_pixel.pixel4.pixel4_dual_pixel_field`).
    scales : increasing sequence of nonzero floats
        Candidate defocus levels (x the calibration defocus; negative = other side of focus).
    cost_eps : float > 0
        Whitening floor :math:`\epsilon_c`.
    smooth, radius, guide_eps
        Cost aggregation (:func:`aggregate_cost`): Gaussian sigma (pixels), then the guided
        filter's window radius (pixels) and regulariser; the guide is the mean of the views,
        scaled to a maximum of 1.
    margin : int
        Context in pixels around each two-cell window.
    aggregation : {'guided', 'sgm'}
        'guided': the cost-volume filtering above. 'sgm': semi-global scans of the cost
        (:mod:`optics.dual_pixel.aggregation`, :data:`SGM_OPTIONS`; NumPy only), a global optimisation
        along four paths; ``smooth``, ``radius`` and ``guide_eps`` are then unused.
    workers : int
        Threads over the windows (NumPy arrays; -1: every core). Results do not depend on it.

    Returns
    -------
    DualPixelDeblurResult with ``defocus`` and ``confidence``.
    """
    _check_options(radius, margin, smooth, guide_eps, cost_eps, 1.0)
    s = _check_scales(scales)
    _check_aggregation(aggregation)
    o = dict(cost_eps=cost_eps, smooth=smooth, radius=radius, guide_eps=guide_eps, margin=margin, workers=workers,
             aggregation=aggregation)
    _, _, defocus, conf = _defocus(left, right, psfs, s, o)
    return DualPixelDeblurResult(None, defocus, conf, s)


def dual_pixel_deblur(left: Any, right: Any, psfs: DualPixelPSFGrid, scales: Sequence[float] = DEFAULT_SCALES,
                      *, defocus: Any = None, wiener_eps: float = DEFAULTS["wiener_eps"],
                      scale_bias: float = DEFAULTS["scale_bias"], cost_eps: float = DEFAULTS["cost_eps"],
                      smooth: float = DEFAULTS["smooth"], radius: int = DEFAULTS["radius"],
                      guide_eps: float = DEFAULTS["guide_eps"], margin: int = DEFAULTS["margin"],
                      deconvolution: str = DEFAULTS["deconvolution"], tv_weight: float = DEFAULTS["tv_weight"],
                      tv_eps: float = DEFAULTS["tv_eps"], centre_weight: Optional[float] = DEFAULTS["centre_weight"],
                      aggregation: str = DEFAULTS["aggregation"], workers: int = -1) -> DualPixelDeblurResult:
    r"""All-in-focus image, signed defocus map and confidence of a DP pair (module Notes).

    Parameters
    ----------
    left, right, psfs, scales, cost_eps, smooth, radius, guide_eps, margin, workers
        As :func:`dual_pixel_defocus_map`.
    defocus : (H, W) array, optional
        A signed defocus map to deblur with (e.g. a ground truth) instead of estimating one;
        values outside ``scales`` are an error. The confidence is then all ones.
    wiener_eps : float > 0
        Noise-to-signal parameter :math:`\epsilon_w` of the two-view Wiener filter.
    scale_bias : float
        Added to the *estimated* defocus before the layers are chosen (not to ``defocus`` given,
        nor to the returned map). Measured on the tuning scenes 001-008: the scale of least
        cross-consistency cost lies about 0.1-0.3 above the scale whose deconvolution is closest
        to the ground truth (docs/real_dual_pixel.md); the default -0.1 (tuned) compensates for part of it.
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
    if isinstance(scale_bias, bool) or not isinstance(scale_bias, numbers.Real) or not math.isfinite(scale_bias):
        raise ValueError(f"scale_bias must be a finite number; got {scale_bias!r}")
    s = _check_scales(scales)
    if defocus is None:
        store: list = []
        _check_aggregation(aggregation)
        o = dict(cost_eps=cost_eps, smooth=smooth, radius=radius, guide_eps=guide_eps, margin=margin, workers=workers,
                 aggregation=aggregation)
        agg, idx, d, conf = _defocus(left, right, psfs, s, o, windows_out=store)
        windows, n = store
        be = namespace(left)
        res = DualPixelDeblurResult(None, d, conf, s)
        del agg
        if scale_bias:
            idx = _layer_index(to_numpy(d).astype(np.float64) + scale_bias, s, be, left.dtype)
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
        windows, n = _windows(left, right, psfs, int(margin), be)
    res.image = layered_deconvolution(left, right, psfs, s, idx, method=deconvolution, wiener_eps=wiener_eps,
                                      tv_weight=tv_weight, tv_eps=tv_eps, tv_betas=DEFAULTS["tv_betas"],
                                      centre_weight=centre_weight, margin=int(margin), workers=workers,
                                      windows=(windows, n))
    return res


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
def load_psfs(spec: str | Path) -> DualPixelPSFGrid:
    """``'pixel4'``: the fitted Pixel 4 field (:mod:`optics.dual_pixel.pixel4`); else a folder of Xin et al.'s kernels.

    Both are registered as Xin et al.'s ground truth is (``reference`` :data:`optics.dual_pixel.pixel4.PIXEL4_REFERENCE`).
    """
    if str(spec) == "pixel4":
        from .pixel4 import pixel4_dual_pixel_field

        return replace(DualPixelPSFGrid.from_field(pixel4_dual_pixel_field()), reference=PIXEL4_REFERENCE)
    folder = Path(spec)
    if not folder.is_dir():
        raise FileNotFoundError(f"--psf {str(spec)!r} is neither 'pixel4' nor a folder of calibrated kernels")
    return replace(DualPixelPSFGrid.from_calibration(folder), reference=PIXEL4_REFERENCE)


#: Most candidate scales ``--scales`` may ask for: the cost volume holds one float32 image per scale
#: (1008 x 1344 x 4 B = 5.4 MB each; 256 scales: 1.4 GB), and the defaults use 21.
MAX_CLI_SCALES = 256


def _parse_scales(text: str) -> tuple:
    import argparse

    try:
        lo, hi, count = text.split(":")
        lo, hi, count = float(lo), float(hi), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH:COUNT of nonzero scales, e.g. -0.9:1.6:21; got {text!r}") from None
    if count > MAX_CLI_SCALES:
        raise argparse.ArgumentTypeError(f"expected COUNT <= {MAX_CLI_SCALES} (each scale adds one image to the cost "
                                         f"volume; the default is 21); got {count} in {text!r}")
    try:
        scales = np.round(np.linspace(lo, hi, count), 6)
        return tuple(float(s) for s in _check_scales(scales))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH:COUNT of nonzero scales, e.g. -0.9:1.6:21; got {text!r}") from None


def _join_negative_values(argv: Sequence[str], options: Sequence[str] = ("--scales",)) -> list:
    """``['--scales', '-0.9:1.6:21']`` -> ``['--scales=-0.9:1.6:21']``: argparse takes a value with a
    leading minus (that is not a plain number) for an option, so the help's own form would be refused."""
    out: list = []
    for arg in argv:
        if out and out[-1] in options and arg[:2] in {"-" + c for c in "0123456789."}:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    import sys

    from .. import cli
    from ..atomic import atomic_write_bytes
    from ..image_io import npy_bytes, png_bytes
    from . import capture as cap

    parser = cli.ArgumentParser(
        prog="python -m optics.dual_pixel.deblur",
        description="Deblur a dual-pixel capture without training: a defocus map from the DP pair and "
                    "deconvolution with the calibrated PSFs (optics.dual_pixel.deblur).")
    parser.add_argument("left", type=Path, help="left view (PNG; raw, linear or sRGB: --input-format)")
    parser.add_argument("right", type=Path, help="right view")
    parser.add_argument("out", type=Path, help="all-in-focus output, 16-bit PNG (the views' linear scale, "
                                               "clipped to [0, 1] for the file)")
    parser.add_argument("--defocus-map", type=Path, help="also write the signed defocus map: .npy (float32, "
                        "units of the calibration defocus) or .png (16-bit, scales' range mapped to 0..65535)")
    parser.add_argument("--confidence", type=Path, help="also write the confidence map (.npy, float32 in [0, 1])")
    cap.add_capture_arguments(parser)
    parser.add_argument("--scales", type=_parse_scales, default=DEFAULT_SCALES, metavar="LOW:HIGH:COUNT",
                        help="candidate signed defocus scales (default -0.9:1.6:21; COUNT "
                        f"<= {MAX_CLI_SCALES})")
    parser.add_argument("--wiener-eps", type=float, default=DEFAULTS["wiener_eps"],
                        help=f"Wiener noise parameter (default {DEFAULTS['wiener_eps']:g})")
    parser.add_argument("--threads", type=int, metavar="N", help="threads over the cells (default: every core)")
    cap.add_display_arguments(parser)
    cli.add_overwrite_argument(parser)
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))

    left_path = cli.check_input_file(args.left, "left view", cap._READ_SUFFIXES)
    right_path = cli.check_input_file(args.right, "right view", cap._READ_SUFFIXES)
    inputs = [left_path, right_path]
    jobs = [(args.out, inputs)]
    extras = [(args.defocus_map, (".npy", ".png")), (args.confidence, (".npy",))] + cap.display_outputs(args)
    for extra, suffixes in extras:
        if extra is not None:
            cli.check_output_files([(extra, inputs)], overwrite=args.overwrite, suffixes=suffixes)
            jobs.append((extra, inputs))
    outs = [Path(j[0]) for j in jobs]
    if len({o.resolve() for o in outs}) != len(outs):
        raise ValueError("the output, --defocus-map, --confidence, --preview, --defocus-png and --side-by-side must "
                         "be different files")
    cli.check_output_files(jobs[:1], overwrite=args.overwrite, suffixes=(".png",))
    _check_positive(args.wiener_eps, "--wiener-eps")
    workers = cli.check_threads(args.threads)
    check_psf_flags(args)

    parametric = args.psf in PARAMETRIC_PSFS  # any camera: the views' own frame, one pair everywhere
    capture = cap.read_dual_pixel_capture(left_path, right_path, input_format=args.input_format,
                                          white_sheets=cap.white_sheets_arg(args.white_sheets), origin=args.origin,
                                          crop=args.crop, frame_shape=None if parametric else PIXEL4_SENSOR_FRAME)
    psfs = default_dual_pixel_psfs(capture, args.psf, outside=args.outside, radius=args.psf_radius,
                                   sign=args.psf_sign, order=args.psf_order)
    for note in capture.notes + list(psfs.notes):
        print(note, file=sys.stderr)
    res = deblur_capture(capture, psfs, args.scales, wiener_eps=args.wiener_eps, workers=workers, progress=True)
    image = np.clip(res.image, 0, 1)
    atomic_write_bytes(args.out, png_bytes(np.round(image * 65535).astype(np.uint16)))
    if args.defocus_map is not None:
        if args.defocus_map.suffix.lower() == ".npy":
            atomic_write_bytes(args.defocus_map, npy_bytes(res.defocus.astype(np.float32)))
        else:
            s = res.scales
            level = np.round((res.defocus - s[0]) / (s[-1] - s[0]) * 65535).astype(np.uint16)
            atomic_write_bytes(args.defocus_map, png_bytes(level))
    if args.confidence is not None:
        atomic_write_bytes(args.confidence, npy_bytes(res.confidence.astype(np.float32)))
    for line in cap.write_display_outputs(args, capture, image, res.defocus, res.scales):
        print(line, file=sys.stderr)
    H, W = image.shape[:2]
    print(f"results: {args.out} ({H}x{W} at (row, col) {capture.origin} of the sensor; defocus "
          f"{float(res.defocus.min()):.2f} .. {float(res.defocus.max()):.2f} x the calibration defocus)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from .. import cli as _cli

    raise SystemExit(_cli.run(main))
