r"""The PSFs of the dual-pixel deblurring: a grid of calibrated left/right pairs and their rescaling.

The PSFs vary over the frame. A :class:`DualPixelPSFGrid` holds one calibrated pair per cell
(Xin et al. measure a 6 x 8 grid of 168 px cells on a Pixel 4); each cell is processed in a
window of two cells plus a context margin, and the per-cell results are blended with bilinear
(tent) weights centred on the cells, so neither the cost nor the image has a seam at a cell
border. Kernels at other defocus levels are the calibrated ones rescaled as Xin et al.'s
``rescale_blur_kernels_one_scale`` does (negative scale: flipped; :func:`rescale_blur_kernel`), and
each pair is recentred on a reference point (the calibrated kernels lie up to 3.5 px off the array
centre): the centroid of :math:`w K_L + (1 - w) K_R`, ``w`` the grid's ``reference`` (0.5, the
full-aperture image, unless the source says otherwise; Xin et al.'s Pixel 4 data is registered near
the left view, :data:`optics.dual_pixel.pixel4.PIXEL4_REFERENCE`).

The grid's sources: Xin et al.'s calibration (:meth:`DualPixelPSFGrid.from_calibration`), a fitted
field (:meth:`DualPixelPSFGrid.from_field`), a parametric model (:meth:`DualPixelPSFGrid.from_model`,
:data:`PARAMETRIC_PSFS`; these constants live here, beside the method that checks them, and
:mod:`optics.dual_pixel.psf_source` re-exports them) and :func:`load_psfs`.

References
----------
.. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas,
   R. Garg, "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021
   (code: github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring, ``code/util.py``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .defaults import PARAMETRIC_SCALES
from .pixel4 import PIXEL4_REFERENCE, PIXEL4_SCALE_BIAS


def _gaussian_weights(z: np.ndarray) -> np.ndarray:
    """``exp(-z)``, 0 where ``z > 200`` (below 1e-87): no subnormal weights, whose arithmetic is about 100x slower
    (a 97 px kernel at 21 scales took 0.3 s instead of 3 ms; issue 33's whole frame)."""
    return np.where(z > 200.0, 0.0, np.exp(-np.minimum(z, 200.0)))


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
    scale : float
        0 is the in-focus pair: a delta of the kernel's sum at the centre (the limit of a kernel
        magnified by ``|scale| -> 0``; Xin et al.'s resampler itself tends to a Gaussian of 0.5 px
        there, because of its anti-aliasing, so it is not used at 0).
    size : odd int, optional
        Output side (default ``n``).

    Returns
    -------
    (size, size) float64 array
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 != 1:
        raise ValueError(f"kernel must be a square 2-D array with an odd side; got shape {k.shape}")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number; got {scale!r}")
    n = k.shape[0]
    size = n if size is None else size
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1 or size % 2 != 1:
        raise ValueError(f"size must be an odd integer >= 1; got {size!r}")
    if scale == 0:  # in focus: all the kernel's light in one pixel
        out = np.zeros((size, size))
        out[size // 2, size // 2] = k.sum()
        return out
    step = (n / size) / abs(float(scale))
    half = size // 2
    out_c = np.linspace(-half * step, half * step, size)
    in_c = np.arange(n) - n // 2
    if step < 2.0:
        # bilinear with zeros outside, as separable interpolation matrices: equal to
        # scipy.ndimage.map_coordinates(k, grid, order=1, mode="constant") (tests), about 3x faster
        pos = out_c + n // 2
        g = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(n)[None, :]))
        g[(pos < 0) | (pos > n - 1)] = 0.0  # map_coordinates' 'constant': no interpolation past the edges
        out = g @ k @ g.T
    else:
        sigma = (step - 1.0) / 2.0
        g = _gaussian_weights(((in_c[None, :] - out_c[:, None]) ** 2) / (2 * sigma**2))
        out = g @ k @ g.T / (2 * np.pi * sigma**2)
    total = out.sum()
    if total <= 0:
        raise ValueError(f"kernel rescaled by {scale} has no mass left (size {size} too small?)")
    out *= k.sum() / total
    return out[::-1, ::-1].copy() if scale < 0 else out


def rescale_blur_kernels(kernel: np.ndarray, scales, size: Optional[int] = None) -> np.ndarray:
    """:func:`rescale_blur_kernel` of one kernel at every one of ``scales``, as one batch: (S, size, size) float64.

    Each nonzero scale is ``g @ k @ g.T`` with its bilinear or Gaussian resampling matrix ``g`` (the
    Gaussian's constant factor drops out in the renormalisation to the kernel's sum), flipped when
    negative; 0 is the centred delta. Equal to the one-scale function to rounding (tests).
    """
    k = np.asarray(kernel, dtype=np.float64)
    n = k.shape[0]
    size = n if size is None else size
    s = np.asarray(scales, dtype=np.float64).ravel()
    out = np.zeros((s.size, size, size))
    nonzero = np.flatnonzero(s != 0)
    if nonzero.size:
        step = (n / size) / np.abs(s[nonzero])  # (Z,)
        half = size // 2
        out_c = np.linspace(-half, half, size)[None, :] * step[:, None]  # (Z, size)
        in_c = np.arange(n) - n // 2
        g = np.maximum(0.0, 1.0 - np.abs(out_c[:, :, None] - in_c[None, None, :]))  # bilinear, as map_coordinates
        g[(np.abs(out_c) > n // 2)] = 0.0
        wide = step >= 2.0
        if np.any(wide):
            sigma = ((step[wide] - 1.0) / 2.0)[:, None, None]
            g[wide] = _gaussian_weights(((in_c[None, None, :] - out_c[wide][:, :, None]) ** 2) / (2 * sigma ** 2))
        res = (g @ k) @ np.ascontiguousarray(np.swapaxes(g, 1, 2))  # a strided batch operand: no BLAS, 30x slower
        total = res.sum(axis=(1, 2))
        if np.any(total <= 0):
            bad = float(s[nonzero][np.argmax(total <= 0)])
            raise ValueError(f"kernel rescaled by {bad} has no mass left (size {size} too small?)")
        res *= (k.sum() / total)[:, None, None]
        flip = s[nonzero] < 0
        res[flip] = res[flip][:, ::-1, ::-1]
        out[nonzero] = res
    out[s == 0, size // 2, size // 2] = k.sum()
    return out


def _centroids(k: np.ndarray) -> np.ndarray:
    """(dy, dx) of each of (S, n, n) kernels, pixels from the array centre: (S, 2)."""
    c = np.arange(k.shape[-1]) - k.shape[-1] // 2
    total = k.sum(axis=(1, 2))
    return np.stack([k.sum(axis=2) @ c / total, k.sum(axis=1) @ c / total], axis=1)


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
    scale_bias : float
        The source's measured correction of the estimated defocus (``scale_bias`` of
        :func:`optics.dual_pixel.pipeline.dual_pixel_deblur`): 0 unless one was measured for these
        kernels (:data:`optics.dual_pixel.pixel4.PIXEL4_SCALE_BIAS` for Xin et al.'s Pixel 4 data).
    scales : tuple or None
        The source's candidate scales (None: :data:`optics.dual_pixel.defaults.DEFAULT_SCALES`, the Pixel
        4's; the mirror-symmetric parametric models take the symmetric
        :data:`optics.dual_pixel.defaults.PARAMETRIC_SCALES`). Both contain 0, the in-focus identity.
    """

    left: np.ndarray
    right: np.ndarray
    cell: int
    name: str = ""
    reference: float = 0.5
    scale_bias: float = 0.0
    scales: Optional[tuple] = None

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

    def pairs(self, row: int, col: int, scales, *, centre_weight: Optional[float] = None):
        """:meth:`pair` at every one of ``scales`` in one batch: (K_L (S, n, n), K_R (S, n, n), reference points (S, 2))."""
        kl = rescale_blur_kernels(self.left[row, col], scales)
        kr = rescale_blur_kernels(self.right[row, col], scales)
        if centre_weight is None:
            centre_weight = self.reference
        if centre_weight == 0.5:
            return kl, kr, _centroids((kl + kr) / 2)
        w = float(centre_weight)
        mix = w * kl / kl.sum(axis=(1, 2), keepdims=True) + (1 - w) * kr / kr.sum(axis=(1, 2), keepdims=True)
        return kl, kr, _centroids(mix)

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
        return cls(np.ascontiguousarray(left), np.ascontiguousarray(right), int(cell), name=name,
                   scales=PARAMETRIC_SCALES)


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
        return DualPixelPSFGrid(left, right, c, name=name, reference=self.reference, scale_bias=self.scale_bias,
                                scales=self.scales)


#: ``--psf`` names of the parametric sources (:meth:`DualPixelPSFGrid.from_model`) -> :data:`optics.dual_pixel.models.DP_MODELS`.
PARAMETRIC_PSFS = {"disc": "half_disc", "half_disc": "half_disc", "butterworth": "butterworth"}
#: Range of ``radius`` (``--psf-radius``, pixels at scale 1): the deblurring's context margin
#: (``DEFAULTS['margin']``, 48 px) bounds the blur it can invert.
MIN_PSF_RADIUS, MAX_PSF_RADIUS = 1.0, 48.0


def load_psfs(spec: str | Path) -> DualPixelPSFGrid:
    """``'pixel4'``: the fitted Pixel 4 field (:mod:`optics.dual_pixel.pixel4`); else a folder of Xin et al.'s kernels.

    Both are registered as Xin et al.'s ground truth is (``reference`` :data:`optics.dual_pixel.pixel4.PIXEL4_REFERENCE`).
    """
    if str(spec) == "pixel4":
        from .pixel4 import pixel4_dual_pixel_field

        return replace(DualPixelPSFGrid.from_field(pixel4_dual_pixel_field()), reference=PIXEL4_REFERENCE,
                       scale_bias=PIXEL4_SCALE_BIAS)
    folder = Path(spec)
    if not folder.is_dir():
        raise FileNotFoundError(f"--psf {str(spec)!r} is neither 'pixel4' nor a folder of calibrated kernels")
    return replace(DualPixelPSFGrid.from_calibration(folder), reference=PIXEL4_REFERENCE, scale_bias=PIXEL4_SCALE_BIAS)
