r"""Synthetic dual-pixel defocus data: dead-leaves scenes (procedural or photo-textured) and the
Middlebury motorcycle.

Python API
----------
:func:`synthesize_scene` draws one scene from a NumPy ``Generator`` and renders its centre, left
and right views (:func:`optics.render_coc_layers`); training code can call it on the fly.
:func:`dead_leaves_scene` and :func:`motorcycle_scene` give the all-in-focus image and depth
alone.

Command line
------------
``python -m optics.render.synthesize --out DIR --count N [--seed S]`` writes a dataset in the DPDD layout::

    DIR/{train,val,test}_c/source/NAME.png   centre (conventional) view, blurred
    DIR/{train,val,test}_l/source/NAME.png   left DP view
    DIR/{train,val,test}_r/source/NAME.png   right DP view
    DIR/{train,val,test}_c/target/NAME.png   all-in-focus image
    DIR/{train,val,test}_c/depth/NAME.npy    depth, metres, float32 (H, W)
    DIR/{train,val,test}_c/coc/NAME.npy      signed CoC radius, pixels, float32 (H, W)
    DIR/{train,val,test}_c/depth_valid/NAME.npy  bool (H, W): False where depth was filled in
    DIR/scenes.json                          per scene: split, source, camera, PSF model, seed

PNGs are 16-bit RGB (written with :func:`optics.image_io.png_bytes`, pypng: imageio's Pillow
plugin can neither write 16-bit RGB nor read it without dropping to 8 bit; read them back with
:func:`optics.image_io.read_png`), sRGB-encoded like DPDD's; rendering happens on linear intensities (the
motorcycle photo is decoded from sRGB first). Every file is written atomically (temporary file
in the same folder, then ``os.replace``). Scene ``i`` is drawn from ``SeedSequence(seed).spawn``'s
child ``i``, so a dataset is identical for a given seed and each scene does not depend on the
count.

Missing motorcycle disparities
------------------------------
scikit-image's Middlebury motorcycle disparity stores pixels without ground truth (mostly
occlusions at depth edges, seen in the left image only) as ``inf``. They are filled row by row
with the *smaller* (farther) of the nearest valid disparities to their left and right (an
occluded pixel belongs to the background); a row without any valid pixel takes the smallest
disparity of the image. The filled pixels are marked ``False`` in ``depth_valid``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import numbers
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import cli
from ..atomic import atomic_write_bytes
from ..image_io import npy_bytes, png_bytes
from .layered import render_coc_layers
from ..psf.thin_lens import Camera

__all__ = [
    "SyntheticScene",
    "dead_leaves_scene",
    "TEXTURE_PHOTOS",
    "motorcycle_scene",
    "fill_missing_disparity",
    "synthesize_scene",
    "write_dataset",
    "srgb_encode",
    "srgb_decode",
    "main",
]

#: Calibration of ``skimage.data.stereo_motorcycle`` (4x down-sampled Middlebury 2014 Motorcycle).
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 31.086

SOURCES = ("dead_leaves", "photo_leaves", "motorcycle")
PSF_CHOICES = ("half_disc", "butterworth", "random", "calibrated")


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear intensities (IEC 61966-2-1)."""
    a = 0.055
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + a) / (1 + a)) ** 2.4)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear intensities in [0, 1] to sRGB-encoded values (IEC 61966-2-1)."""
    a = 0.055
    return np.where(linear <= 0.0031308, 12.92 * linear, (1 + a) * np.power(np.maximum(linear, 0), 1 / 2.4) - a)


@dataclass
class SyntheticScene:
    """One rendered scene (linear intensities).

    Attributes
    ----------
    sharp, centre, left, right : ndarray, (H, W, 3)
        All-in-focus image and the rendered conventional, left and right DP views.
    depth : ndarray, (H, W)
        Metres.
    coc : ndarray, (H, W)
        Signed CoC radius in pixels (``camera.coc_radius(depth)``).
    depth_valid : ndarray of bool, (H, W)
        False where the depth was filled in (motorcycle disparities without ground truth).
    camera : Camera
    source : {'dead_leaves', 'photo_leaves', 'motorcycle'}
        Procedural dead leaves, dead leaves textured with photos (:func:`dead_leaves_scene`), or
        a crop of the Middlebury motorcycle (:func:`motorcycle_scene`).
    psf_model : {'half_disc', 'butterworth', 'calibrated'}
    psf_options : dict
        Options passed to :func:`optics.dual_pixel_psfs`; for ``'calibrated'`` the field's name
        and ``field_origin``, the position of the image's top-left pixel in the calibrated frame.
    """

    sharp: np.ndarray
    centre: np.ndarray
    left: np.ndarray
    right: np.ndarray
    depth: np.ndarray
    coc: np.ndarray
    depth_valid: np.ndarray
    camera: Camera
    source: str
    psf_model: str
    psf_options: dict = field(default_factory=dict)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    return rng


def _check_shape(shape: Any) -> tuple[int, int]:
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape)
    ):
        raise TypeError(f"shape must be a pair of integers (H, W); got {shape!r}")
    H, W = int(shape[0]), int(shape[1])
    if H < 8 or W < 8:
        raise ValueError(f"shape must be at least (8, 8); got {(H, W)}")
    return H, W


def _check_depth_range(near_m: float, far_m: float) -> tuple[float, float]:
    for name, v in (("near_m", near_m), ("far_m", far_m)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0 (metres); got {v!r}")
    if not near_m < far_m:
        raise ValueError(f"near_m must be < far_m; got near_m={near_m}, far_m={far_m}")
    return float(near_m), float(far_m)


def _leaf_texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Texture of one leaf on local coordinates: two colours mixed by a grating, gradient or flat."""
    c0 = rng.uniform(0.02, 1.0, size=3)
    c1 = rng.uniform(0.02, 1.0, size=3)
    kind = rng.integers(0, 3)
    if kind == 0:  # sinusoidal grating, period 3..40 px
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, 40.0)
        phase = rng.uniform(0, 2 * np.pi)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
    elif kind == 1:  # linear gradient over the leaf
        theta = rng.uniform(0, 2 * np.pi)
        u = xx * np.cos(theta) + yy * np.sin(theta)
        span = max(float(np.ptp(u)), 1e-9)
        t = (u - u.min()) / span
    else:
        t = np.zeros_like(xx, dtype=np.float64)
    return c0 * (1 - t[..., None]) + c1 * t[..., None]


#: scikit-image's bundled photos (no download) that texture ``textures='photos'`` leaves. The
#: Middlebury motorcycle is excluded: it is the held-out natural test scene.
TEXTURE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera")


@functools.lru_cache(maxsize=None)
def _texture_photo(name: str) -> np.ndarray:
    """Linear-intensity float64 (h, w, 3) version of ``skimage.data.<name>()`` (grey repeated)."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    out = srgb_decode(image[..., :3].astype(np.float64) / 255.0)
    out.setflags(write=False)
    return out


def _photo_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random (height, width, 3) crop of a random :data:`TEXTURE_PHOTOS` photo.

    Random flips and transposition; a grey photo is tinted by a random colour; the photo is
    mirrored periodically when the crop is larger than it.
    """
    photo = _texture_photo(TEXTURE_PHOTOS[int(rng.integers(0, len(TEXTURE_PHOTOS)))])
    if rng.random() < 0.5:
        photo = photo.transpose(1, 0, 2)
    ph, pw = photo.shape[:2]
    if height > ph or width > pw:
        photo = np.pad(photo, ((0, max(height - ph, 0)), (0, max(width - pw, 0)), (0, 0)), mode="symmetric")
        ph, pw = photo.shape[:2]
    y0 = int(rng.integers(0, ph - height + 1))
    x0 = int(rng.integers(0, pw - width + 1))
    crop = photo[y0:y0 + height, x0:x0 + width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if np.ptp(crop[..., 0] - crop[..., 1]) == 0 and np.ptp(crop[..., 1] - crop[..., 2]) == 0:
        crop = crop * rng.uniform(0.3, 1.0, size=3)  # tint a grey photo
    # keep intensities in (0, 1] like the procedural leaves
    return np.maximum(crop, 1e-3)


def dead_leaves_scene(
    rng: np.random.Generator,
    shape: tuple[int, int] = (480, 720),
    *,
    n_leaves: int | None = None,
    radius_range: tuple[float, float] | None = None,
    near_m: float = 1.0,
    far_m: float = 10.0,
    textures: str = "procedural",
) -> tuple[np.ndarray, np.ndarray]:
    r"""A dead-leaves scene with a random depth per leaf and textured leaves.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    shape : (H, W)
    n_leaves : int, optional
        Number of leaves; default ``max(50, H W / 40)``, enough to cover the background almost
        everywhere with the default radii.
    radius_range : (float, float), optional
        Leaf radii in pixels, drawn from the scale-invariant density :math:`p(r) \propto r^{-3}`;
        default ``(3, min(H, W) / 4)``.
    near_m, far_m : float
        Depth range in metres; leaf depths are uniform in inverse depth (so uniform in CoC), the
        background plane sits at ``far_m``.
    textures : {'procedural', 'photos'}
        ``'procedural'``: each leaf mixes two random colours by a sinusoidal grating, a linear
        gradient or not at all. ``'photos'``: each leaf (and the background) shows a random crop
        of one of scikit-image's bundled photos (:data:`TEXTURE_PHOTOS`; not the motorcycle),
        so leaves carry natural textures.

    Returns
    -------
    image : ndarray, float64, (H, W, 3)
        Linear intensities in (0, 1].
    depth : ndarray, float64, (H, W)
        Metres. A nearer leaf always covers a farther one, so occlusion agrees with depth.

    References
    ----------
    .. [1] G. Matheron, "Random Sets and Integral Geometry", 1975; A. B. Lee, D. Mumford,
       J. Huang, "Occlusion models for natural images", IJCV 2001.
    """
    rng = _check_rng(rng)
    H, W = _check_shape(shape)
    near_m, far_m = _check_depth_range(near_m, far_m)
    if textures not in ("procedural", "photos"):
        raise ValueError(f"textures must be 'procedural' or 'photos'; got {textures!r}")
    if n_leaves is None:
        n_leaves = max(50, H * W // 40)
    if isinstance(n_leaves, bool) or not isinstance(n_leaves, numbers.Integral) or n_leaves < 0:
        raise ValueError(f"n_leaves must be an integer >= 0; got {n_leaves!r}")
    rmin, rmax = radius_range if radius_range is not None else (3.0, min(H, W) / 4)
    if not (0 < rmin < rmax):
        raise ValueError(f"radius_range must satisfy 0 < min < max; got {(rmin, rmax)}")
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    if textures == "photos":
        image = _photo_texture(rng, H, W).copy()  # background plane
    else:
        image = _leaf_texture(rng, yy, xx)
    depth = np.full((H, W), far_m)
    n = int(n_leaves)
    # inverse-CDF sampling of p(r) ~ r^-3 on [rmin, rmax]
    u = rng.random(n)
    radii = 1.0 / np.sqrt(1 / rmin**2 - u * (1 / rmin**2 - 1 / rmax**2))
    inv_depth = rng.uniform(1 / far_m, 1 / near_m, size=n)
    centres = rng.uniform((-0.1 * H, -0.1 * W), (1.1 * H, 1.1 * W), size=(n, 2))
    # Painting far to near with overwriting equals painting near to far onto still-free pixels;
    # the latter can stop once the frame is covered.
    free = np.ones((H, W), dtype=bool)
    remaining = H * W
    for k in np.argsort(-inv_depth, kind="stable"):  # near (large 1/d) first
        cy, cx, r = centres[k, 0], centres[k, 1], radii[k]
        y0, y1 = max(int(math.floor(cy - r)), 0), min(int(math.ceil(cy + r)) + 1, H)
        x0, x1 = max(int(math.floor(cx - r)), 0), min(int(math.ceil(cx + r)) + 1, W)
        if y0 >= y1 or x0 >= x1:
            continue
        ly, lx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        window = free[y0:y1, x0:x1]
        visible = (ly**2 + lx**2 <= r * r) & window
        count = int(np.count_nonzero(visible))
        if count == 0:
            continue
        tex = _photo_texture(rng, y1 - y0, x1 - x0) if textures == "photos" else _leaf_texture(rng, ly, lx)
        image[y0:y1, x0:x1][visible] = tex[visible]
        depth[y0:y1, x0:x1][visible] = 1.0 / inv_depth[k]
        window &= ~visible
        remaining -= count
        if remaining == 0:
            break
    return image, depth


def fill_missing_disparity(disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill non-finite disparities row by row with the farther (smaller) nearest valid neighbour.

    Parameters
    ----------
    disparity : ndarray, (H, W), float
        Disparities in pixels; ``inf`` or ``NaN`` marks pixels without ground truth.

    Returns
    -------
    filled : ndarray, float64, (H, W)
    valid : ndarray, bool, (H, W)
        True where the input was finite.

    Raises
    ------
    ValueError
        If no disparity at all is finite.
    """
    d = np.asarray(disparity, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"disparity must be 2-D (H, W); got shape {d.shape}")
    valid = np.isfinite(d)
    if not valid.any():
        raise ValueError("disparity has no finite value to fill from")
    H, W = d.shape
    cols = np.arange(W)
    # index of the nearest valid pixel to the left / right in each row (-1 / W where none)
    left_idx = np.where(valid, cols[None, :], -1)
    left_idx = np.maximum.accumulate(left_idx, axis=1)
    right_idx = np.where(valid, cols[None, :], W)
    right_idx = np.minimum.accumulate(right_idx[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(H)[:, None]
    big = np.inf
    left_val = np.where(left_idx >= 0, d[rows, np.clip(left_idx, 0, W - 1)], big)
    right_val = np.where(right_idx < W, d[rows, np.clip(right_idx, 0, W - 1)], big)
    fill = np.minimum(left_val, right_val)
    fill = np.where(np.isfinite(fill), fill, d[valid].min())  # rows with no valid pixel
    return np.where(valid, d, fill), valid


def motorcycle_scene(
    rng: np.random.Generator, shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Middlebury motorcycle (scikit-image) as linear image, depth and validity mask.

    A random crop of ``shape`` (default the whole 500 x 741 image) and a random horizontal flip.
    Depth is ``f B / (disparity + doffs)`` with the calibration of the down-sampled images
    (f = 994.978 px, B = 193.001 mm, doffs = 31.086 px); missing disparities are filled as
    described in the module docstring.

    Returns
    -------
    image : float64 (h, w, 3), linear; depth : float64 (h, w), metres; valid : bool (h, w)
    """
    from skimage import data

    rng = _check_rng(rng)
    left, _, disparity = data.stereo_motorcycle()
    disparity, valid = fill_missing_disparity(disparity)
    image = srgb_decode(left.astype(np.float64) / 255.0)
    depth = MOTORCYCLE_FOCAL_PX * MOTORCYCLE_BASELINE_M / (disparity + MOTORCYCLE_DOFFS_PX)
    H0, W0 = depth.shape
    h, w = (H0, W0) if shape is None else _check_shape(shape)
    if h > H0 or w > W0:
        raise ValueError(f"shape must fit in the motorcycle image {(H0, W0)}; got {(h, w)}")
    y0 = int(rng.integers(0, H0 - h + 1))
    x0 = int(rng.integers(0, W0 - w + 1))
    sl = (slice(y0, y0 + h), slice(x0, x0 + w))
    image, depth, valid = image[sl], depth[sl], valid[sl]
    if rng.random() < 0.5:
        image, depth, valid = image[:, ::-1], depth[:, ::-1], valid[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(depth), np.ascontiguousarray(valid)


def _draw_field_origin(rng: np.random.Generator, field, shape: tuple[int, int]) -> tuple[float, float]:
    """A random position of an (H, W) image inside the field's calibrated frame (centred if larger)."""
    Hc, Wc = field.image_shape
    H, W = shape
    x0 = float(rng.integers(0, Wc - W + 1)) if W <= Wc else -(W - Wc) / 2
    y0 = float(rng.integers(0, Hc - H + 1)) if H <= Hc else -(H - Hc) / 2
    return x0, y0


def _draw_psf(rng: np.random.Generator, psf_model: str) -> tuple[str, dict]:
    if psf_model not in PSF_CHOICES:
        raise ValueError(f"psf_model must be one of {PSF_CHOICES}; got {psf_model!r}")
    if psf_model == "calibrated":
        return "calibrated", {}
    model = psf_model if psf_model != "random" else ("half_disc", "butterworth")[int(rng.integers(0, 2))]
    if model == "butterworth":  # the paper's grid of settings
        opts = dict(
            order=int(rng.choice([3, 6, 9])),
            cutoff_factor=float(rng.choice([2.5, 2.0])),
            beta=float(rng.choice([0.1, 0.2])),
        )
    else:
        opts = {}
    return model, opts


def synthesize_scene(
    rng: np.random.Generator,
    *,
    source: str = "dead_leaves",
    shape: tuple[int, int] = (480, 720),
    max_coc: float = 16.0,
    min_coc: float = 2.0,
    psf_model: str = "random",
    occlusion: bool = True,
    dtype: Any = np.float32,
    psf_field: Any = None,
) -> SyntheticScene:
    """Draw and render one synthetic dual-pixel scene.

    Parameters
    ----------
    rng : numpy.random.Generator
    source : {'dead_leaves', 'photo_leaves', 'motorcycle'}
        Procedural dead leaves, dead leaves textured with photos (:func:`dead_leaves_scene`), or
        a crop of the Middlebury motorcycle (:func:`motorcycle_scene`).
    shape : (H, W)
        Output size (a crop for the motorcycle, which is 500 x 741).
    max_coc, min_coc : float
        The scene's largest ``|CoC|`` (pixels) is drawn uniformly from ``[min_coc, max_coc]``;
        the focus distance uniformly in inverse depth over the scene's depth range.
    psf_model : {'half_disc', 'butterworth', 'random', 'calibrated'}
        ``'random'`` picks a model per scene and, for Butterworth, the paper's order (3/6/9),
        cut-off factor (2.5/2) and beta (0.1/0.2). ``'calibrated'``: the field-varying PSF pairs
        of a fitted camera (``psf_field``; default the Pixel 4 fit of
        :func:`optics.dual_pixel.pixel4.pixel4_dual_pixel_field`), the scene placed at a random position
        of its calibrated frame.
    occlusion : bool
        Occlusion-aware rendering with normalised coverage (default; ``normalize_coverage=True``
        of :func:`optics.render_coc_layers`, which avoids dark fringes behind sharp foreground
        edges) or the naive layered sum.
    dtype : float32 or float64
        Dtype of the rendered arrays.
    psf_field : optics.DualPixelField, optional
        The camera of ``psf_model='calibrated'`` (not allowed with the other models).

    Returns
    -------
    SyntheticScene
    """
    rng = _check_rng(rng)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
    if not (isinstance(max_coc, numbers.Real) and isinstance(min_coc, numbers.Real) and 0 < min_coc <= max_coc):
        raise ValueError(f"need 0 < min_coc <= max_coc; got min_coc={min_coc!r}, max_coc={max_coc!r}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dt}")
    if source in ("dead_leaves", "photo_leaves"):
        if source == "photo_leaves":  # fewer, larger leaves, so that the photos' texture shows
            side = min(_check_shape(shape))
            image, depth = dead_leaves_scene(rng, shape, textures="photos", radius_range=(side / 16, side / 2))
        else:
            image, depth = dead_leaves_scene(rng, shape)
        valid = np.ones(depth.shape, dtype=bool)
    else:
        image, depth, valid = motorcycle_scene(rng, shape)
    near, far = float(depth.min()), float(depth.max())
    if not near < far:
        far = near * 1.01
    focus = 1.0 / rng.uniform(1 / far, 1 / near)
    camera = Camera.for_coc_range(near, far, focus, float(rng.uniform(min_coc, max_coc)))
    model, opts = _draw_psf(rng, psf_model)
    coc = camera.coc_radius(depth)
    field_args: dict = {}
    if model == "calibrated":
        from ..dual_pixel.fit import DualPixelField
        from ..dual_pixel.pixel4 import pixel4_dual_pixel_field

        if psf_field is None:
            psf_field, field_name = pixel4_dual_pixel_field(), "pixel4"
        elif not isinstance(psf_field, DualPixelField):
            raise TypeError(f"psf_field must be an optics.DualPixelField; got {type(psf_field).__name__}")
        else:
            field_name = "user"
        origin = _draw_field_origin(rng, psf_field, image.shape[:2])
        field_args = dict(psf_field=psf_field, field_origin=origin)
        opts = dict(field=field_name, field_origin=list(origin))
    elif psf_field is not None:
        raise ValueError(f"psf_field needs psf_model='calibrated'; got psf_model={psf_model!r}")
    # normalised coverage: no dark fringe where a blurred layer lacks the pixels hidden behind a
    # nearer sharp one (the all-in-focus image does not contain them)
    views = render_coc_layers(
        image.astype(dt), coc, model=model, occlusion=occlusion, normalize_coverage=occlusion,
        psf_options=opts if model != "calibrated" else None, **field_args
    )
    return SyntheticScene(
        sharp=image.astype(dt),
        centre=views.centre,
        left=views.left,
        right=views.right,
        depth=depth.astype(dt),
        coc=coc.astype(dt),
        depth_valid=valid,
        camera=camera,
        source=source,
        psf_model=model,
        psf_options=opts,
    )


def _png16_bytes(linear: np.ndarray, allow_overshoot: bool = False) -> tuple[bytes, int]:
    """16-bit sRGB PNG of a linear image and the number of values clipped above 1 + 1e-4.

    Values within 1e-4 of [0, 1] are FFT rounding and are clipped. Larger ones raise, unless
    ``allow_overshoot`` (the naive layered model, whose overlapping layer blurs can exceed 1),
    in which case they are clipped and counted.
    """
    lo, hi = float(linear.min()), float(linear.max())
    slack = 1e-4
    n_over = int(np.count_nonzero(linear > 1 + slack))
    if lo < -slack or (n_over and not allow_overshoot):
        raise ValueError(f"image to write must lie in [0, 1]; got range [{lo}, {hi}]")
    encoded = srgb_encode(np.clip(linear.astype(np.float64), 0.0, 1.0))
    return png_bytes(np.round(encoded * 65535).astype(np.uint16)), n_over


def _split_counts(count: int, val_fraction: float, test_fraction: float) -> list[str]:
    n_val = int(round(count * val_fraction))
    n_test = int(round(count * test_fraction))
    n_train = count - n_val - n_test
    if n_train < 0:
        raise ValueError(f"val_fraction + test_fraction must be <= 1; got {val_fraction} + {test_fraction}")
    return ["train"] * n_train + ["val"] * n_val + ["test"] * n_test


def write_dataset(
    out: Path,
    count: int,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (480, 720),
    max_coc: float = 16.0,
    psf_model: str = "random",
    motorcycle_fraction: float = 0.2,
    min_coc: float = 2.0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    occlusion: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> list[dict]:
    """Render ``count`` scenes into ``out`` in the DPDD layout (see the module docstring).

    Parameters
    ----------
    out : path
        Output folder (created). A folder that is not empty is refused unless ``overwrite``.
    count : int >= 1
        Number of scenes.
    seed : int >= 0
        Scene ``i`` uses ``np.random.default_rng(np.random.SeedSequence(seed).spawn(count)[i])``.
    shape : (H, W)
        Image size; at most (500, 741) when ``motorcycle_fraction > 0``.
    max_coc, min_coc : float
        Each scene's largest ``|CoC|`` radius in pixels is drawn from ``[min_coc, max_coc]``
        (``0 < min_coc <= max_coc``; ``min_coc`` 2 by default).
    psf_model : {'half_disc', 'butterworth', 'random'}
    motorcycle_fraction : float in [0, 1]
        Probability that a scene is a motorcycle crop rather than dead leaves.
    val_fraction, test_fraction : float in [0, 1]
        The first scenes go to ``train``, then ``val``, then ``test`` (counts rounded).
    occlusion : bool
        Occlusion-aware (default) or naive layered rendering. The naive sum of layer blurs can
        exceed 1 next to depth edges (overlapping blurs of different layers); such values are
        clipped to 1 in the PNGs and counted per view in the manifest
        (``values_clipped_above_1``). The occlusion-aware views stay within [0, 1].
    progress : bool
        Show a tqdm progress bar.
    overwrite : bool
        Clear a previous dataset in ``out`` first (its split folders and ``scenes.json``; a folder
        holding anything else is refused), so old and new scenes never mix.

    Returns
    -------
    list of dict
        The manifest written to ``out/scenes.json``: per scene its name, split, source, camera,
        PSF model and options, largest ``|CoC|``, seed and spawn index.

    Raises
    ------
    ValueError
        Bad count, seed, fractions or shape; ``overwrite`` on a folder holding other files.
    FileExistsError
        ``out`` is not empty and ``overwrite`` is False.
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"count must be an integer >= 1; got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    for name, v in (("motorcycle_fraction", motorcycle_fraction), ("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(v, numbers.Real) or not 0 <= v <= 1:
            raise ValueError(f"{name} must lie in [0, 1]; got {v!r}")
    H, W = _check_shape(shape)
    check_dataset_options(H, W, max_coc, min_coc, motorcycle_fraction)
    out = cli.prepare_output_dir(out, overwrite=overwrite, owned=_owned_by_dataset)
    splits = _split_counts(int(count), float(val_fraction), float(test_fraction))
    for split in ("train", "val", "test"):
        for view in ("c", "l", "r"):
            (out / f"{split}_{view}" / "source").mkdir(parents=True, exist_ok=True)
        for sub in ("target", "depth", "coc", "depth_valid"):
            (out / f"{split}_c" / sub).mkdir(parents=True, exist_ok=True)
    children = np.random.SeedSequence(int(seed)).spawn(int(count))
    manifest = []
    for i in cli.progress_bar(range(int(count)), desc="synthesize", unit="scene", disable=not progress):
        rng = np.random.default_rng(children[i])
        source = "motorcycle" if rng.random() < motorcycle_fraction else "dead_leaves"
        scene = synthesize_scene(rng, source=source, shape=(H, W), max_coc=max_coc, min_coc=min_coc,
                                 psf_model=psf_model, occlusion=occlusion)
        split = splits[i]
        name = f"{i:05d}"
        clipped = {}
        for folder, view, array in (
            (f"{split}_c/source", "centre", scene.centre),
            (f"{split}_l/source", "left", scene.left),
            (f"{split}_r/source", "right", scene.right),
            (f"{split}_c/target", "sharp", scene.sharp),
        ):
            data, clipped[view] = _png16_bytes(array, allow_overshoot=not occlusion)
            atomic_write_bytes(out / folder / f"{name}.png", data)
        atomic_write_bytes(out / f"{split}_c" / "depth" / f"{name}.npy", npy_bytes(scene.depth.astype(np.float32)))
        atomic_write_bytes(out / f"{split}_c" / "coc" / f"{name}.npy", npy_bytes(scene.coc.astype(np.float32)))
        atomic_write_bytes(out / f"{split}_c" / "depth_valid" / f"{name}.npy", npy_bytes(scene.depth_valid))
        manifest.append(
            dict(
                name=name,
                split=split,
                source=source,
                camera=asdict(scene.camera),
                psf_model=scene.psf_model,
                psf_options=scene.psf_options,
                max_abs_coc_px=float(np.abs(scene.coc).max()),
                occlusion=bool(occlusion),
                values_clipped_above_1=clipped,
                seed=int(seed),
                spawn_index=i,
            )
        )
    atomic_write_bytes(out / "scenes.json", json.dumps(manifest, indent=1).encode())
    cli.record_outputs(out)
    return manifest


#: Peak working memory of :func:`synthesize_scene` per output pixel (bytes), rounded up from 224 B/px
#: measured with ``tracemalloc`` at 256x384 and 512x768 (dead leaves, max CoC 16 px).
SCENE_BYTES_PER_PIXEL = 256

_API_NAMES = {"shape": "shape", "max_coc": "max_coc", "min_coc": "min_coc",
              "motorcycle_fraction": "motorcycle_fraction", "zero": "motorcycle_fraction=0"}
_CLI_NAMES = {"shape": "--size", "max_coc": "--max-coc", "min_coc": "--min-coc",
              "motorcycle_fraction": "--motorcycle-fraction", "zero": "--motorcycle-fraction 0"}


def check_dataset_options(H: int, W: int, max_coc: float, min_coc: float, motorcycle_fraction: float,
                          names: dict | None = None) -> None:
    """The checks :func:`write_dataset` makes before it creates anything, naming the options as
    ``names`` spells them (Python parameters by default; the CLI passes its flags)."""
    n = names or _API_NAMES
    for key, v in (("max_coc", max_coc), ("min_coc", min_coc)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{n[key]} must be a number > 0; got {v!r}")
    if min_coc > max_coc:
        raise ValueError(f"{n['min_coc']} ({min_coc:g}) must be <= {n['max_coc']} ({max_coc:g}): each scene's "
                         f"largest |CoC| is drawn from [{n['min_coc']}, {n['max_coc']}]; lower {n['min_coc']}")
    if motorcycle_fraction > 0 and (H > 500 or W > 741):
        raise ValueError(f"{n['shape']} {H}x{W} exceeds the motorcycle image (500x741); lower it or set {n['zero']}")
    needed = SCENE_BYTES_PER_PIXEL * H * W
    available = _available_memory_bytes()
    if available and needed > available:
        raise ValueError(f"{n['shape']} {H}x{W} needs about {needed / 2**30:.1f} GiB of working memory per scene "
                         f"({SCENE_BYTES_PER_PIXEL} bytes per pixel); this machine has {available / 2**30:.1f} GiB "
                         "available: choose a smaller size")


def _available_memory_bytes() -> int:
    """``MemAvailable`` from /proc/meminfo in bytes (0 where it cannot be read: no check then)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _owned_by_dataset(path: Path) -> bool:
    """Entries :func:`write_dataset` writes: ``{train,val,test}_{c,l,r}`` folders and ``scenes.json``."""
    if path.name == "scenes.json":
        return path.is_file()
    split, _, view = path.name.partition("_")
    return path.is_dir() and split in ("train", "val", "test") and view in ("c", "l", "r")


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 480x720; got {text!r}") from err
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m optics.render.synthesize",
        description="Render a synthetic dual-pixel defocus dataset in the DPDD folder layout.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, required=True, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=_parse_shape, default=(480, 720), help="HxW (default 480x720)")
    parser.add_argument("--max-coc", type=float, default=16.0,
                        help="each scene's largest |CoC| radius is drawn from [--min-coc, --max-coc] px (default 16)")
    parser.add_argument("--min-coc", type=float, default=2.0, help="see --max-coc (default 2)")
    parser.add_argument("--psf-model", choices=PSF_CHOICES, default="random")
    parser.add_argument("--motorcycle-fraction", type=float, default=0.2)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--naive", action="store_true", help="naive layered rendering (no occlusion)")
    parser.add_argument("--no-progress", action="store_true")
    cli.add_overwrite_argument(parser, "a previous dataset in --out (cleared first)")
    args = parser.parse_args(argv)
    try:  # checked with the flags' names before the output folder is made
        if min(args.size) >= 8:
            check_dataset_options(*args.size, args.max_coc, args.min_coc, args.motorcycle_fraction, _CLI_NAMES)
        write_dataset(
            args.out,
            args.count,
            seed=args.seed,
            shape=args.size,
            max_coc=args.max_coc,
            psf_model=args.psf_model,
            motorcycle_fraction=args.motorcycle_fraction,
            min_coc=args.min_coc,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            occlusion=not args.naive,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except ValueError as err:
        parser.error(str(err))
    print(f"results: {args.out} (scenes.json lists the {args.count} scenes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
