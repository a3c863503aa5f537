r"""Depth-layered defocus rendering of the centre, left and right dual-pixel views.

The scene (an all-in-focus image and a depth map) is cut into layers of constant circle of
confusion (CoC quantisation); each layer is blurred by its left/right dual-pixel PSFs with FFT
convolution, and the blurred layers are combined either

* **occlusion-aware** (default, Xin et al. ICCV 2021): each layer carries premultiplied colour
  :math:`\alpha_i I` and alpha :math:`\alpha_i` (its binary mask); both are blurred, and the
  blurred layers are composited front to back with the *over* operator, so a blurred foreground
  covers what lies behind it and a sharp foreground is not overlaid by blurred background; or
* **naive** (``occlusion=False``, K3DN Eq. 5, Abuolaim et al.'s synthesis): the blurred layers
  are summed, :math:`B = \sum_i I^i * K^i`, so background blur leaks over foreground edges.

The centre view is always ``(left + right) / 2``: a conventional pixel is the sum of its two
photodiodes (K3DN Eq. 2). For a constant CoC both modes reduce to
:math:`B_L = I * K_L`, :math:`B_R = I * K_R`, :math:`B = I * K` (K3DN Eq. 1-2).

Only NumPy arrays are rendered (the layers use ``scipy.fft`` with all cores).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import scipy.fft
import scipy.ndimage

from .._backend import is_cupy, is_torch
from ._fft_layers import _axis_window, _irfft2_rows, _rfft2
from ..operators.convolution import BOUNDARIES
from ..dual_pixel.models import DP_MODELS, dual_pixel_psfs
from ..psf.thin_lens import Camera

__all__ = ["DefocusRendering", "render_defocus", "render_coc_layers", "quantize_coc", "RENDER_MODELS"]

_PSF_OPTIONS = ("order", "beta", "cutoff_factor", "kappa", "vignetting")

#: Models accepted by the renderer: those of :func:`optics.dual_pixel_psfs` and ``'calibrated'``
#: (a fitted :class:`optics.DualPixelField`, given as ``psf_field``).
RENDER_MODELS = DP_MODELS + ("calibrated",)


@dataclass(frozen=True)
class DefocusRendering:
    """Rendered views; iterates (and unpacks) as ``centre, left, right``.

    Attributes
    ----------
    centre, left, right : ndarray, shape like the input image (H, W) or (H, W, C)
        Conventional (full-aperture) view and the two dual-pixel views, dtype of the image.
    coc_radius : ndarray, shape (H, W)
        The signed CoC radius map (pixels) the scene was rendered from, before quantisation.
    layer_coc_radii : ndarray, shape (T,)
        The quantised CoC radius of each layer, ordered near to far (ascending signed CoC).
    """

    centre: np.ndarray
    left: np.ndarray
    right: np.ndarray
    coc_radius: np.ndarray
    layer_coc_radii: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.centre, self.left, self.right))


def quantize_coc(coc_radius: np.ndarray, coc_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Layer index map and layer radii of a signed CoC map quantised to multiples of ``coc_step``.

    Returns
    -------
    layer_index : ndarray of int64, shape (H, W)
        Index into ``layer_radii`` of each pixel's layer.
    layer_radii : ndarray of float64, shape (T,)
        Ascending (near to far) quantised radii ``coc_step * round(c / coc_step)`` (round half to
        even) present in the map.
    """
    q = np.rint(np.asarray(coc_radius, dtype=np.float64) / coc_step).astype(np.int64)
    levels, layer_index = np.unique(q, return_inverse=True)
    return layer_index.reshape(q.shape), levels.astype(np.float64) * coc_step


def _check_numpy_float(x: Any, name: str) -> None:
    if is_torch(x) or is_cupy(x):
        raise TypeError(f"{name} must be a NumPy array (rendering runs on scipy.fft); got {type(x).__module__}.{type(x).__name__}")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array; got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{name} must have dtype float32 or float64; got {x.dtype}. "
            "Convert integer images with skimage.util.img_as_float first."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must contain only finite values; got {int(np.sum(~np.isfinite(x)))} NaN or inf entries")


def _check_options(model: str, coc_step: Any, boundary: str, psf_options: Mapping[str, Any] | None) -> dict:
    if model not in RENDER_MODELS:
        raise ValueError(f"model must be one of {RENDER_MODELS}; got {model!r}")
    if isinstance(coc_step, bool) or not isinstance(coc_step, numbers.Real) or not math.isfinite(coc_step) or coc_step <= 0:
        raise ValueError(f"coc_step must be a finite number > 0 (pixels); got {coc_step!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {sorted(BOUNDARIES)}; got {boundary!r}")
    opts = dict(psf_options or {})
    unknown = sorted(set(opts) - set(_PSF_OPTIONS))
    if unknown:
        raise ValueError(f"psf_options accepts keys {_PSF_OPTIONS}; got unknown keys {unknown}")
    return opts


def _check_field(psf_field: Any, field_origin: Any, tile: Any, opts: dict) -> tuple[tuple[float, float], int]:
    from ..dual_pixel.fit import DualPixelField

    if not isinstance(psf_field, DualPixelField):
        raise TypeError(f"psf_field must be an optics.DualPixelField for model='calibrated'; got {type(psf_field).__name__}")
    if opts:
        raise ValueError(f"psf_options do not apply to model='calibrated' (its shape comes from psf_field); got {sorted(opts)}")
    try:
        origin = (float(field_origin[0]), float(field_origin[1]))
    except (TypeError, IndexError, ValueError):
        raise TypeError(f"field_origin must be a pair of numbers (x, y); got {field_origin!r}") from None
    if len(field_origin) != 2 or not all(math.isfinite(v) for v in origin):
        raise ValueError(f"field_origin must be a finite pair (x, y); got {field_origin!r}")
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 8:
        raise ValueError(f"tile must be an integer >= 8 (pixels); got {tile!r}")
    return origin, int(tile)


def _right_otf_from_left(otf_left: np.ndarray, n: int, grid: tuple[int, int]) -> np.ndarray:
    """rfft2 of ``k[:, ::-1]`` (kernel at the top-left of ``grid``) from the rfft2 of ``k``.

    ``K_R[u, v] = exp(-2 pi i v (n - 1) / W) conj(K_L[-u mod H, v])`` for a real kernel.
    """
    H, W = grid
    flip_rows = (-np.arange(H)) % H
    v = np.arange(otf_left.shape[1])
    phase = np.exp(-2j * np.pi * v * (n - 1) / W).astype(otf_left.dtype)
    return np.conj(otf_left[flip_rows]) * phase[None, :]


def _composite_occlusion(img_cf, idx_p, boxes, kernels, pad, shape, workers):
    """Front-to-back *over* compositing of the blurred premultiplied layers, per view.

    Each layer is convolved on its own FFT grid: its bounding box, cut to the pixels within one
    kernel radius of the image (see :func:`_axis_window`). Returns the composited views
    (C, H, W) and the final transmittances (H, W).
    """
    H, W = shape
    C = img_cf.shape[0]
    dt = img_cf.dtype
    one = dt.type(1)
    views = {"left": np.zeros((C, H, W), dtype=dt), "right": np.zeros((C, H, W), dtype=dt)}
    transmit = {"left": np.ones((H, W), dtype=dt), "right": np.ones((H, W), dtype=dt)}
    for i, box in enumerate(boxes):
        if box is None:
            continue
        k = kernels[i]
        n = k.shape[0]
        h = n // 2
        rows = _axis_window(box[0].start, box[0].stop, h, pad, H)
        cols = _axis_window(box[1].start, box[1].stop, h, pad, W)
        if rows is None or cols is None:
            continue  # the layer lives only in the padding, beyond the kernel's reach
        (r0, r1, wr, sr), (c0, c1, wc, sc) = rows[:4], cols[:4]
        grid = (rows[4], cols[4])
        mask = idx_p[r0:r1, c0:c1] == i
        # zero-padded to the FFT grid here, so that the transforms need no padding copies
        planes = np.zeros((C + 1, *grid), dtype=dt)
        np.multiply(img_cf[:, r0:r1, c0:c1], mask, out=planes[:C, : r1 - r0, : c1 - c0])
        planes[C, : r1 - r0, : c1 - c0] = mask
        spec = _rfft2(planes, grid, workers)
        otf_left = _rfft2(k, grid, workers)
        otfs = {"left": otf_left, "right": _right_otf_from_left(otf_left, n, grid)}
        product = np.empty_like(spec)
        for name in ("left", "right"):
            np.multiply(spec, otfs[name], out=product)
            blurred = _irfft2_rows(product, grid, sr, workers)[:, :, sc]  # outputs in window (wr, wc)
            acc = views[name][:, wr, wc]
            t = transmit[name][wr, wc]
            colour, alpha = blurred[:C], blurred[C]
            colour *= t
            acc += colour  # B_v += C_v,i prod_{j<i} (1 - a_v,j)
            np.subtract(one, alpha, out=alpha)
            t *= alpha  # transmittance through layers 1..i
    return views, transmit


def _sum_naive(img_cf, idx_p, boxes, kernels, pad, shape, workers):
    """K3DN Eq. 5: the sum of the blurred layers, accumulated in the Fourier domain."""
    H, W = shape
    C, Hp, Wp = img_cf.shape
    dt = img_cf.dtype
    grid = (scipy.fft.next_fast_len(Hp, real=True), scipy.fft.next_fast_len(Wp, real=True))
    cdt = np.result_type(dt, np.complex64)
    acc = {"left": np.zeros((C, grid[0], grid[1] // 2 + 1), cdt), "right": np.zeros((C, grid[0], grid[1] // 2 + 1), cdt)}
    planes = np.zeros((C, *grid), dtype=dt)  # zero beyond (Hp, Wp): no padding copies in the FFT
    product = np.empty_like(acc["left"])
    flip_rows = (-np.arange(grid[0])) % grid[0]
    for i, box in enumerate(boxes):
        if box is None:
            continue
        k = kernels[i]
        h = k.shape[0] // 2
        np.multiply(img_cf, idx_p == i, out=planes[:, :Hp, :Wp])
        spec = _rfft2(planes, grid, workers)
        # kernel with its centre at index [0, 0] of the periodic grid
        wrapped = np.zeros(grid, dtype=dt)
        taps0 = (np.arange(-h, h + 1) % grid[0])[:, None]
        taps1 = (np.arange(-h, h + 1) % grid[1])[None, :]
        wrapped[taps0, taps1] = k
        otf_left = _rfft2(wrapped, grid, workers)
        otf_right = np.conj(otf_left[flip_rows])  # k_R[a, b] = k_L[a, -b]
        for name, otf in (("left", otf_left), ("right", otf_right)):
            np.multiply(spec, otf, out=product)
            acc[name] += product
    rows = slice(pad, pad + H)
    return {
        name: np.ascontiguousarray(_irfft2_rows(a, grid, rows, workers)[:, :, pad : pad + W]).astype(dt, copy=False)
        for name, a in acc.items()
    }


def render_coc_layers(
    image: np.ndarray,
    coc_radius: np.ndarray,
    *,
    model: str = "half_disc",
    occlusion: bool = True,
    coc_step: float = 1.0,
    boundary: str = "symmetric",
    normalize_coverage: bool = False,
    psf_options: Mapping[str, Any] | None = None,
    workers: int = -1,
    psf_field: Any = None,
    field_origin: tuple[float, float] = (0.0, 0.0),
    tile: int = 128,
) -> DefocusRendering:
    r"""Render dual-pixel views from an all-in-focus image and a signed CoC radius map.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), float32 or float64
        All-in-focus image (linear intensities).
    coc_radius : ndarray, shape (H, W), float
        Signed CoC radius in pixels of every pixel (:meth:`optics.Camera.coc_radius` of the depth).
        Ascending signed CoC is taken as near-to-far order, as for any thin lens.
    model : {'half_disc', 'butterworth', 'calibrated'}
        Dual-pixel PSF model (:func:`optics.dual_pixel_psfs`), or ``'calibrated'``: the PSF pair
        of a fitted camera, ``psf_field``, which varies across the image (see
        :mod:`optics.render.field`).
    occlusion : bool
        ``True``: occlusion-aware front-to-back compositing of blurred premultiplied layers.
        ``False``: the naive sum of blurred layers (K3DN Eq. 5); next to depth edges the blurs of
        different layers overlap and the sum can exceed the image's range (it keeps the total
        light, not the local one). The occlusion-aware views stay within it.
    coc_step : float > 0
        Layer spacing in CoC radius (pixels); each pixel's CoC is rounded to the nearest
        multiple. 1 pixel (default) gives at most ``2 max|c| + 1`` layers.
    boundary : {'symmetric', 'reflect', 'periodic', 'edge', 'zero'}
        How image *and layer masks* are extended beyond the border (as :func:`optics.convolve`).
    normalize_coverage : bool
        Occlusion mode only: divide each view by its accumulated coverage
        :math:`1 - \prod_i (1 - a_i)`, which removes the dark fringe where a blurred background
        layer lacks the pixels hidden behind a sharp foreground. Default ``False`` (the plain
        *over* composite, which reduces exactly to Eq. 1-2 for a constant depth).
    psf_options : mapping, optional
        Keyword options of :func:`optics.dual_pixel_psfs` (``order``, ``beta``,
        ``cutoff_factor``, ``kappa``, ``vignetting``).
    workers : int
        ``scipy.fft`` worker threads (-1: all cores).
    psf_field : optics.DualPixelField, optional
        The fitted camera; required for ``model='calibrated'`` (and only allowed with it). The
        CoC map gives the radius at the field's centre; the field scales and shapes it per tile.
    field_origin : (float, float)
        ``'calibrated'`` only: pixel coordinates (x, y) in the field's calibrated frame of the
        image's top-left pixel (default (0, 0); a crop of the frame has its offset here).
    tile : int >= 8
        ``'calibrated'`` only: side in pixels of the tiles with one PSF pair each.

    Returns
    -------
    DefocusRendering
        ``centre, left, right`` (dtype and shape of ``image``) and the CoC maps.

    Raises
    ------
    TypeError
        Non-NumPy or non-float inputs.
    ValueError
        Shape mismatch, non-finite values, unknown model / boundary / option, ``coc_step <= 0``,
        ``normalize_coverage`` without ``occlusion``.

    Notes
    -----
    With layer masks :math:`A_i` (near to far), left/right PSFs :math:`K_{L,i}, K_{R,i}` and, for
    each view :math:`v \in \{L, R\}`, blurred colour :math:`C_{v,i} = K_{v,i} * (A_i I)` and
    alpha :math:`a_{v,i} = K_{v,i} * A_i`:

    .. math:: B_v = \sum_i C_{v,i} \prod_{j < i} (1 - a_{v,j})
              \quad\text{(occlusion)}, \qquad
              B_v = \sum_i C_{v,i} \quad\text{(naive, K3DN Eq. 5)},

    and :math:`B = \tfrac12 (B_L + B_R)`. In occlusion mode each layer is convolved on the FFT
    grid of its bounding box (cut to the pixels within one kernel radius of the image, sizes from
    ``scipy.fft.next_fast_len``), so cost scales with the area the layer touches; the naive sum
    is accumulated in the Fourier domain on one grid and inverted once per view. With a single
    layer (constant depth) :math:`B_v = I * K_v` exactly (K3DN Eq. 1-2) up to FFT rounding.

    Cost: per layer, 4 forward and 8 inverse real FFTs of the layer's window (occlusion) or 3
    forward FFTs of the frame (naive); the centre view is free.

    References
    ----------
    .. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas,
       R. Garg, "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021
       (layered, occlusion-aware DP image formation).
    .. [2] Y. Yang et al., "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel Defocus
       Deblurring", CVPR 2023, Eq. 1-5.
    .. [3] A. Abuolaim et al., "Learning to Reduce Defocus Blur by Realistically Modeling
       Dual-Pixel Data", ICCV 2021.
    """
    _check_numpy_float(image, "image")
    _check_numpy_float(coc_radius, "coc_radius")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C); got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1 or (image.ndim == 3 and image.shape[2] < 1):
        raise ValueError(f"image must be non-empty; got shape {image.shape}")
    if coc_radius.shape != image.shape[:2]:
        raise ValueError(f"coc_radius must have shape (H, W) = {image.shape[:2]}; got {coc_radius.shape}")
    opts = _check_options(model, coc_step, boundary, psf_options)
    if normalize_coverage and not occlusion:
        raise ValueError("normalize_coverage=True needs occlusion=True (the naive sum has no coverage)")
    if not isinstance(occlusion, (bool, np.bool_)):
        raise TypeError(f"occlusion must be a bool; got {occlusion!r}")

    dt = image.dtype
    H, W = image.shape[:2]
    img = image if image.ndim == 3 else image[:, :, None]
    layer_index, layer_radii = quantize_coc(coc_radius, float(coc_step))
    if model == "calibrated":
        from .field import field_kernels

        origin, tile = _check_field(psf_field, field_origin, tile, opts)
        kernels = field_kernels(psf_field, layer_radii, (H, W), tile, origin, dt)
        halves = [kernels.max_half]
    else:
        if psf_field is not None:
            raise ValueError(f"psf_field is used by model='calibrated' only; got model {model!r}")
        kernels = [dual_pixel_psfs(float(r), model, dtype=dt, **opts).left for r in layer_radii]
        halves = [k.shape[0] // 2 for k in kernels]
    pad = max(halves)

    # Extend image and layer map beyond the border (same rule for both).
    mode = BOUNDARIES[boundary]
    if pad > 0 and mode == "constant":
        img_p = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="constant")
        idx_p = np.pad(layer_index, pad, mode="constant", constant_values=-1)
    elif pad > 0:
        if mode == "reflect" and (H < 2 or W < 2):
            raise ValueError(f"boundary 'reflect' needs an image of at least 2x2; got {(H, W)}")
        img_p = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
        idx_p = np.pad(layer_index, pad, mode=mode)
    else:
        img_p, idx_p = img, layer_index
    img_cf = np.ascontiguousarray(np.moveaxis(img_p, 2, 0))  # (C, Hp, Wp)
    boxes = scipy.ndimage.find_objects(idx_p + 1, max_label=len(layer_radii))

    if model == "calibrated":
        from .field import blur_layers_field

        views, transmit = blur_layers_field(img_cf, idx_p, boxes, kernels, pad, (H, W), occlusion, workers)
    elif occlusion:
        views, transmit = _composite_occlusion(img_cf, idx_p, boxes, kernels, pad, (H, W), workers)
    else:
        views = _sum_naive(img_cf, idx_p, boxes, kernels, pad, (H, W), workers)
    one = dt.type(1)
    if normalize_coverage:
        for name in ("left", "right"):
            coverage = one - transmit[name]
            np.divide(views[name], coverage, out=views[name], where=coverage > 0)
    left = np.moveaxis(views["left"], 0, 2)
    right = np.moveaxis(views["right"], 0, 2)
    centre = (left + right) / dt.type(2)
    if image.ndim == 2:
        left, right, centre = left[:, :, 0], right[:, :, 0], centre[:, :, 0]
    return DefocusRendering(
        centre=np.ascontiguousarray(centre),
        left=np.ascontiguousarray(left),
        right=np.ascontiguousarray(right),
        coc_radius=coc_radius,
        layer_coc_radii=layer_radii,
    )


def render_defocus(
    image: np.ndarray,
    depth: np.ndarray,
    camera: Camera,
    *,
    model: str = "half_disc",
    occlusion: bool = True,
    coc_step: float = 1.0,
    boundary: str = "symmetric",
    normalize_coverage: bool = False,
    psf_options: Mapping[str, Any] | None = None,
    workers: int = -1,
    psf_field: Any = None,
    field_origin: tuple[float, float] = (0.0, 0.0),
    tile: int = 128,
) -> DefocusRendering:
    r"""Render the centre, left and right dual-pixel views of a scene seen by a thin-lens camera.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), float32 or float64
        All-in-focus image.
    depth : ndarray, shape (H, W), float
        Scene depth in metres (finite, beyond the focal length); mark or fill missing depth first.
    camera : optics.Camera
        Lens and sensor; ``camera.coc_radius(depth)`` gives the signed CoC map.
    model, occlusion, coc_step, boundary, normalize_coverage, psf_options, workers
        See :func:`render_coc_layers`.
    psf_field, field_origin, tile
        The fitted camera of ``model='calibrated'`` (:class:`optics.DualPixelField`), see
        :func:`render_coc_layers`.

    Returns
    -------
    DefocusRendering
        Unpacks as ``centre, left, right``; also holds the signed CoC map and the layer radii.

    Raises
    ------
    TypeError, ValueError
        As :func:`render_coc_layers`; ``TypeError`` if ``camera`` is not an :class:`optics.Camera`.

    Notes
    -----
    :math:`c = c_\infty (1 - d_f / d)` per pixel (:func:`optics.signed_coc_radius`), then the
    layered model of :func:`render_coc_layers`:

    .. math:: B_v = \sum_i \big(K_{v,i} * (A_i I)\big) \prod_{j < i} \big(1 - K_{v,j} * A_j\big),
              \quad B = \tfrac12 (B_L + B_R)

    For a constant depth this is :math:`B_L = I * K_L`, :math:`B_R = I * K_R`,
    :math:`B = I * K` (K3DN Eq. 1-2).

    References
    ----------
    .. [1] S. Xin et al., "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image",
       ICCV 2021.
    .. [2] Y. Yang et al., "K3DN", CVPR 2023, Eq. 1-2, 5.

    Examples
    --------
    >>> import numpy as np
    >>> from optics import Camera, render_defocus
    >>> cam = Camera(focal_length_mm=50, f_number=2.0, focus_distance_m=2.0, pixel_pitch_um=21.4)
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((64, 64, 3))
    >>> depth = np.where(np.arange(64)[None, :] < 32, 1.5, 4.0) * np.ones((64, 1))
    >>> centre, left, right = render_defocus(image, depth, cam)
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be an optics.Camera; got {type(camera).__name__}")
    _check_numpy_float(depth, "depth")
    if image is not None and hasattr(image, "shape") and depth.shape != tuple(image.shape[:2]):
        raise ValueError(f"depth must have shape (H, W) = {tuple(image.shape[:2])}; got {depth.shape}")
    coc = camera.coc_radius(depth)
    return render_coc_layers(
        image,
        coc,
        model=model,
        occlusion=occlusion,
        coc_step=coc_step,
        boundary=boundary,
        normalize_coverage=normalize_coverage,
        psf_options=psf_options,
        workers=workers,
        psf_field=psf_field,
        field_origin=field_origin,
        tile=tile,
    )
