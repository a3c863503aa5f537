r"""Sensor-matched synthesis: raw linear green Pixel 4 dual-pixel scenes (:func:`synthesize_pixel4_raw`).

A scene is rendered as the Pixel 4 captures of Xin et al. (``DP_data_pixel_4``) are recorded:

1. **Image type.** One plane (the green channel of a dead-leaves scene), linear, scaled so that
   its 99th percentile is drawn log-uniformly from :data:`PIXEL4_EXPOSURE` = (0.12, 0.5): the real
   raw frames are dark and unsaturated (over the central crops of the 17 left views the 99th
   percentile is 0.127-0.502 of the white level, the median 0.034-0.236, no value at 1).
2. **Defocus.** The signed CoC is linear in inverse depth (thin lens), from ``s_near`` to ``s_far``
   times the calibration CoC (:attr:`optics.DualPixelField.calibration_coc`, -10.56 px), the two
   scales drawn uniformly from :data:`PIXEL4_DEFOCUS_SCALE` = (-0.9, 1.6), the range of the 17
   real scenes' defocus (:mod:`optics.dual_pixel.deblur`'s scales).
3. **PSFs.** The calibrated field (:func:`optics.dual_pixel.pixel4.pixel4_dual_pixel_field`, its
   off-centre shifts included), the scene at a random position of the 1008 x 1344 calibrated
   frame; or ``psf_model='butterworth'`` (symmetric, for the ablation).
4. **Vignetting.** The left view times 1, the right view divided by the gain ``g`` that Xin et al.
   multiply it by (:func:`optics.dual_pixel.pixel4.pixel4_vignetting_gain`), as the cubic fit
   :func:`pixel4_vignetting_model` of the real gain (in the calibrated frame, at the scene's
   position).
5. **Noise.** Poisson-Gaussian with the measured (a, b) (:data:`optics.dual_pixel.sensor_noise.PIXEL4_NOISE`).
6. **Quantisation.** 14 bit: ``clip(round(v * 16383) / 16383, 0, 1)``.
7. **Reader.** The right view times ``g`` again (what :func:`learned.data.readers.read_pixel4_view`
   does with the real white sheets), so the views are what a network sees from a real capture.

Measured checks on the real calibration (``python -m optics.render.pixel4_raw DIR``, DIR =
``DP_data_pixel_4/calibration``; the data are not included, no licence):

* vignetting fit: the cubic (10 coefficients) over the central 1008 x 1344 crop of the real gain
  (range 1.007-1.398 there) has a relative error of 0.57 % rms, 1.9 % at most;
* off-centre shifts: the field's centroids match the real kernels' to 0.38 px rms (0.89 px at
  most) over the 48 cells, see :data:`CENTROID_CHECK`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..dual_pixel.fit import DualPixelField, _monomials
from ..dual_pixel.pixel4 import PIXEL4_FRAME, PIXEL4_WHITE, crop_central, pixel4_dual_pixel_field
from .layered import render_coc_layers
from ..dual_pixel.sensor_noise import PIXEL4_NOISE_A, PIXEL4_NOISE_B, add_poisson_gaussian_noise

__all__ = [
    "synthesize_pixel4_raw",
    "Pixel4RawScene",
    "pixel4_vignetting_model",
    "fit_vignetting_polynomial",
    "quantize_14bit",
    "PIXEL4_DEFOCUS_SCALE",
    "PIXEL4_EXPOSURE",
    "PIXEL4_VIGNETTING_DEGREE",
    "PIXEL4_PSF_MODELS",
    "PIXEL4_DEPTH_MODELS",
    "piecewise_smooth_depth",
]

#: Range of the real scenes' defocus as multiples of the calibration CoC (-10.56 px at the centre).
PIXEL4_DEFOCUS_SCALE = (-0.9, 1.6)
#: Range of the exposed all-in-focus scene's 99th percentile (drawn log-uniformly), that of the real scenes.
PIXEL4_EXPOSURE = (0.12, 0.5)
PIXEL4_PSF_MODELS = ("calibrated", "butterworth")
#: Depth models of :func:`synthesize_pixel4_raw`: one depth per dead leaf, or piecewise smooth.
PIXEL4_DEPTH_MODELS = ("dead_leaves", "smooth")

#: Degree of the 2-D polynomial of the vignetting gain.
PIXEL4_VIGNETTING_DEGREE = 3
# g(X, Y) with X, Y the normalised position in the calibrated frame (DualPixelField.normalised),
# monomials 1, X, Y, X^2, XY, Y^2, X^3, X^2 Y, X Y^2, Y^3; python -m optics.render.pixel4_raw DIR, 6 digits
_VIGNETTING = (1.18705, 0.420469, 0.00582783, 0.0168486, -0.0105005, 0.00883636,
               -0.287897, -0.00788097, -0.115507, -0.00960844)

#: The field's PSF centroids against the real kernels' at the 48 cell centres, at the calibration
#: defocus (``python -m optics.render.pixel4_raw DIR``; px from the 61 x 61 kernel centre, x right, y
#: down; columns left_x, left_y, right_x, right_y). The off-centre shift (the mean of the two
#: views' centroids, (-1.41, -0.98) px) is reproduced to 0.06 px (model (-1.47, -0.95)); per kernel the
#: centroids differ by 0.38 px rms, 0.89 px at most, against a spread of 0.6-1.0 px across the field.
CENTROID_CHECK = dict(rms_px=0.376, max_px=0.891, real_mean=(-4.065, -0.976, 1.238, -0.975),
                      model_mean=(-4.156, -0.958, 1.217, -0.940), real_spread=(0.602, 1.013, 0.659, 1.031))


def fit_vignetting_polynomial(gain: np.ndarray, degree: int = PIXEL4_VIGNETTING_DEGREE, step: int = 4) -> np.ndarray:
    """Least-squares coefficients of a degree-``degree`` polynomial in the normalised position
    (:meth:`optics.DualPixelField.normalised` of a frame of ``gain``'s shape) fitted to ``gain``
    (sampled every ``step`` pixels)."""
    gain = np.asarray(gain, dtype=np.float64)
    if gain.ndim != 2:
        raise ValueError(f"gain must be (H, W); got shape {gain.shape}")
    X, Y = _normalised_grid(gain.shape, (0.0, 0.0), gain.shape)
    A = _monomials(X[::step, ::step].ravel(), Y[::step, ::step].ravel(), degree)
    coef, *_ = np.linalg.lstsq(A, gain[::step, ::step].ravel(), rcond=None)
    return coef


def _normalised_grid(shape, origin, frame) -> tuple[np.ndarray, np.ndarray]:
    H, W = shape
    Hc, Wc = frame
    x = origin[0] + np.arange(W, dtype=np.float64)
    y = origin[1] + np.arange(H, dtype=np.float64)
    X = (x - (Wc - 1) / 2) / (Wc / 2)
    Y = (y - (Hc - 1) / 2) / (Hc / 2)
    return np.meshgrid(X, Y)


def pixel4_vignetting_model(shape: tuple[int, int] = PIXEL4_FRAME, origin: tuple[float, float] = (0.0, 0.0),
                            coefficients: Any = None) -> np.ndarray:
    """The right view's vignetting gain ``g`` (:func:`optics.dual_pixel.pixel4.pixel4_vignetting_gain`) of an
    (H, W) image whose top-left pixel sits at ``origin`` = (x, y) of the calibrated frame, from the
    stored cubic fit (or ``coefficients``). float64 (H, W)."""
    c = np.asarray(_VIGNETTING if coefficients is None else coefficients, dtype=np.float64)
    degree = {3: 1, 6: 2, 10: 3, 15: 4, 21: 5}.get(c.size)
    if degree is None:
        raise ValueError(f"vignetting coefficients must be a 2-D polynomial's (3, 6, 10, ... values); got {c.size}")
    X, Y = _normalised_grid(shape, origin, PIXEL4_FRAME)
    return (_monomials(X.ravel(), Y.ravel(), degree) @ c).reshape(X.shape)


def quantize_14bit(values: np.ndarray) -> np.ndarray:
    """``clip(round(v * 16383) / 16383, 0, 1)`` in ``values``' dtype."""
    v = np.asarray(values)
    return np.clip(np.round(v * PIXEL4_WHITE) / PIXEL4_WHITE, 0.0, 1.0).astype(v.dtype)


@dataclass
class Pixel4RawScene:
    """One raw Pixel 4 scene (float32 (H, W) arrays).

    ``sharp``: the exposed all-in-focus scene (the target); ``left``, ``right``: the views as the
    reader gives them (right view vignetting-corrected); ``left_raw``, ``right_raw``: the views as
    recorded (quantised); ``gain``: the right view's gain ``g``; ``coc``: signed CoC (px, radius at
    the field's centre); ``scales``: (s_near, s_far); ``exposure``: the factor from the drawn scene
    to ``sharp``; ``field_origin``; ``psf_model``;
    ``noise``: (a, b) used.
    """

    sharp: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_raw: np.ndarray
    right_raw: np.ndarray
    gain: np.ndarray
    coc: np.ndarray
    scales: tuple
    exposure: float
    field_origin: tuple
    psf_model: str
    noise: tuple
    options: dict = field(default_factory=dict)


def _check_range(name: str, value: Any, lo: float = -math.inf) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (low, high); got {value!r}") from None
    if not (np.isfinite(a) and np.isfinite(b) and lo <= a <= b):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high; got {value!r}")
    return a, b


def piecewise_smooth_depth(rng: np.random.Generator, shape: tuple[int, int], regions: tuple[int, int] = (1, 3)) -> np.ndarray:
    """A depth map (H, W) > 0 of few large regions: a tilted background plane (in inverse depth) and
    1-3 (``regions``) elliptical foreground regions, each with its own tilted plane, covering 6-40 %
    of the frame each. Real captures have piecewise-smooth depth with few edges; a dead-leaves
    depth (one depth per leaf) has a depth edge within 24 px of nearly every pixel.
    """
    H, W = shape
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    y, x = y / max(H - 1, 1) - 0.5, x / max(W - 1, 1) - 0.5

    def plane():
        return rng.uniform(0.1, 1.0) + rng.uniform(-0.3, 0.3) * x + rng.uniform(-0.3, 0.3) * y

    inv = plane()
    for _ in range(int(rng.integers(regions[0], regions[1] + 1))):
        cy, cx = rng.uniform(-0.4, 0.4, size=2)
        ry, rx = rng.uniform(0.15, 0.45, size=2)
        angle = rng.uniform(0, np.pi)
        u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        inside = (u / rx) ** 2 + (v / ry) ** 2 <= 1
        inv = np.where(inside, plane(), inv)
    return 1.0 / np.clip(inv, 0.02, None)


def synthesize_pixel4_raw(rng: np.random.Generator, shape: tuple[int, int] = (128, 128), *,
                          psf_model: str = "calibrated", noise: bool = True, vignetting: bool = True,
                          depth_model: str = "dead_leaves",
                          defocus_scale: tuple[float, float] = PIXEL4_DEFOCUS_SCALE,
                          exposure: tuple[float, float] = PIXEL4_EXPOSURE,
                          noise_params: tuple[float, float] | None = None, image: np.ndarray | None = None,
                          depth: np.ndarray | None = None) -> Pixel4RawScene:
    """Draw and render one raw Pixel 4 dual-pixel scene (see the module docstring for the steps).

    ``noise``/``vignetting`` False leave that step out (ablations). ``depth_model='smooth'`` keeps
    the dead-leaves texture but replaces its depth (one per leaf) by :func:`piecewise_smooth_depth`.
    ``noise_params`` (a, b)
    defaults to :data:`optics.dual_pixel.sensor_noise.PIXEL4_NOISE`. ``exposure``: the range of the exposed
    scene's 99th percentile (the maximum where that is 0). ``image`` (H, W) >= 0 and
    ``depth`` (H, W) > 0 replace the drawn dead-leaves scene (tests). ``rng`` is the only source of
    randomness.
    """
    from .synthesize import _check_rng, _check_shape, _draw_field_origin, dead_leaves_scene

    rng = _check_rng(rng)
    H, W = _check_shape(shape)
    if psf_model not in PIXEL4_PSF_MODELS:
        raise ValueError(f"psf_model must be one of {PIXEL4_PSF_MODELS}; got {psf_model!r}")
    s_lo, s_hi = _check_range("defocus_scale", defocus_scale)
    e_lo, e_hi = _check_range("exposure", exposure, lo=1e-6)
    if e_hi > 1:
        raise ValueError(f"exposure must lie in (0, 1]; got {exposure!r}")
    a, b = (PIXEL4_NOISE_A, PIXEL4_NOISE_B) if noise_params is None else noise_params
    if depth_model not in PIXEL4_DEPTH_MODELS:
        raise ValueError(f"depth_model must be one of {PIXEL4_DEPTH_MODELS}; got {depth_model!r}")
    if image is None:
        colour, depth = dead_leaves_scene(rng, (H, W))
        image = colour[:, :, 1]
        if depth_model == "smooth":
            depth = piecewise_smooth_depth(rng, (H, W))
    else:
        image = np.asarray(image, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        if image.shape != (H, W) or depth.shape != (H, W) or not np.all(depth > 0):
            raise ValueError(f"image and depth must be (H, W) = {(H, W)}, depth > 0")
    field_ = pixel4_dual_pixel_field()
    scales = tuple(sorted(float(v) for v in rng.uniform(s_lo, s_hi, size=2)))
    level = float(math.exp(rng.uniform(math.log(e_lo), math.log(e_hi))))
    p99 = float(np.percentile(image, 99))
    p99 = p99 if p99 > 0 else float(image.max())
    if not p99 > 0:
        raise ValueError("image must have a positive value")
    gain_exposure = level / p99
    origin = _draw_field_origin(rng, field_, (H, W))
    # CoC linear in inverse depth; ascending signed CoC is near to far
    c_cal = field_.calibration_coc
    inv = 1.0 / depth
    span = float(inv.max() - inv.min())
    t = (inv.max() - inv) / span if span > 0 else np.zeros_like(inv)  # 0 nearest, 1 farthest
    c_a, c_b = sorted((scales[0] * c_cal, scales[1] * c_cal))
    coc = c_a + (c_b - c_a) * t
    sharp = gain_exposure * image
    if psf_model == "calibrated":
        views = render_coc_layers(sharp, coc, model="calibrated", psf_field=field_, field_origin=origin,
                                  occlusion=True, normalize_coverage=True)
    else:
        views = render_coc_layers(sharp, coc, model="butterworth", occlusion=True, normalize_coverage=True)
    left, right = np.clip(views.left, 0, None), np.clip(views.right, 0, None)
    gain = pixel4_vignetting_model((H, W), origin) if vignetting else np.ones((H, W))
    right_raw = right / gain
    if noise:
        left = add_poisson_gaussian_noise(left, a, b, rng)
        right_raw = add_poisson_gaussian_noise(right_raw, a, b, rng)
    left_q, right_q = quantize_14bit(left.astype(np.float64)), quantize_14bit(right_raw.astype(np.float64))
    f32 = np.float32
    return Pixel4RawScene(
        sharp=sharp.astype(f32), left=left_q.astype(f32), right=(right_q * gain).astype(f32),
        left_raw=left_q.astype(f32), right_raw=right_q.astype(f32), gain=gain.astype(f32), coc=coc.astype(f32),
        scales=scales, exposure=gain_exposure, field_origin=origin, psf_model=psf_model,
        noise=(a, b) if noise else (0.0, 0.0), options=dict(vignetting=bool(vignetting), noise=bool(noise)),
    )


def _centroid(k: np.ndarray) -> tuple[float, float]:
    k = np.clip(k, 0, None)
    n = k.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    s = k.sum()
    return float((xx * k).sum() / s), float((yy * k).sum() / s)


def centroid_check(kernels_left: np.ndarray, kernels_right: np.ndarray, field_: DualPixelField | None = None) -> dict:
    """Centroids (x, y; px from the kernel centre) of the field's PSF pairs at the 48 cell centres
    against the real kernels': rms and largest difference, and the mean of each."""
    field_ = pixel4_dual_pixel_field() if field_ is None else field_
    n = kernels_left.shape[-1]
    real, model = [], []
    for i in range(kernels_left.shape[0]):
        row, col = divmod(i, 8)
        x, y = col * 168 + 84 - 0.5, row * 168 + 84 - 0.5
        pl, pr = field_.psfs(field_.calibration_coc, x, y, size=n)
        real.append(_centroid(kernels_left[i]) + _centroid(kernels_right[i]))
        model.append(_centroid(pl) + _centroid(pr))
    real_a, model_a = np.array(real), np.array(model)
    diff = model_a - real_a
    return dict(
        rms_px=float(np.sqrt((diff**2).mean())), max_px=float(np.abs(diff).max()),
        real_mean=[round(float(v), 3) for v in real_a.mean(axis=0)],
        model_mean=[round(float(v), 3) for v in model_a.mean(axis=0)],
        real_spread=[round(float(v), 3) for v in real_a.std(axis=0)],
        columns=["left_x", "left_y", "right_x", "right_y"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m optics.render.pixel4_raw CALIBRATION_DIR``: fit the vignetting polynomial to the real
    white sheets and check the field's centroids against the real kernels."""
    parser = argparse.ArgumentParser(prog="python -m optics.render.pixel4_raw", description=main.__doc__)
    parser.add_argument("calibration", type=Path, help="DP_data_pixel_4/calibration")
    args = parser.parse_args(argv)
    from ..dual_pixel.pixel4 import pixel4_vignetting_gain

    gain = crop_central(pixel4_vignetting_gain(args.calibration), PIXEL4_FRAME, "vignetting gain")
    coef = fit_vignetting_polynomial(gain)
    rounded = [float(f"{v:.6g}") for v in coef]
    rel = pixel4_vignetting_model(PIXEL4_FRAME, (0.0, 0.0), rounded) / gain - 1
    kl = np.load(args.calibration / "blur_kernels_left.npy")
    kr = np.load(args.calibration / "blur_kernels_right.npy")
    out = dict(vignetting_coefficients=rounded, vignetting_rel_rms=float(np.sqrt((rel**2).mean())),
               vignetting_rel_max=float(np.abs(rel).max()), gain_range=[float(gain.min()), float(gain.max())],
               centroids=centroid_check(kl, kr))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
