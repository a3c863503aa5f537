r"""Poisson-Gaussian sensor noise of normalised raw values: a model, an adder and an estimator.

The model (Foi et al., 2008) of a raw value :math:`y` with noise-free mean :math:`x` (both in
[0, 1], black level removed, divided by the white level):

.. math:: \operatorname{Var}[y \mid x] = a\,x + b

with :math:`a` the photon (shot) noise gain and :math:`b` the signal-independent read noise.

Estimation from a dual-pixel pair (:func:`estimate_poisson_gaussian`)
---------------------------------------------------------------------
The left and right views of one exposure are two images of the same scene with independent
noise. Where the scene is flat their means agree up to a smooth vignetting ratio, so

* the half-sum :math:`s = (L + R) / 2` estimates the mean :math:`m = (x_L + x_R) / 2`;
* the difference :math:`d = L - R` has variance :math:`(a x_L + b) + (a x_R + b) = 2 (a m + b)`,
  hence :math:`\operatorname{Var}[d] / 2 = a m + b` (**the factor 1/2 of the difference of two
  independent noisy views**), whatever the vignetting ratio, as long as the noise is added before
  any gain correction (the raw views, :func:`optics.dual_pixel.pixel4.read_pixel4_raw`).

Steps:

1. Tile the pair into non-overlapping ``window`` x ``window`` blocks (independent samples). In
   each block: the mean of :math:`s`, the sample variance (``ddof=1``) of :math:`d` (its block
   mean, i.e. the smooth vignetting offset, removed) and the sample variance of :math:`s`.
2. Keep the *flat* blocks: in a flat block :math:`\operatorname{Var}[s] = (a m + b) / 2`, so
   texture shows as ``Var[s] > flat_ratio * (a m + b) / 2`` (default ``flat_ratio = 1.5``; 49
   samples give a variance ratio whose spread is about 0.3). The reference ``a m + b`` is *not*
   the block's own ``Var[d] / 2`` (that would select the blocks whose ``Var[d]`` came out large by
   chance: a 5-10 % bias upwards, measured on the synthetic pairs of the tests); it starts as
   the lower quartile of ``Var[d] / 2`` among blocks of similar mean and is then the current fit
   (steps 3-4, four rounds). For Gaussian noise of equal variance in both views :math:`s` and
   :math:`d` are independent, so this selection does not bias ``Var[d]``. Blocks with a value at
   or below 0 or at or above ``saturation`` are dropped (clipped data has too small a variance).
3. Bin the kept blocks by mean into ``bins`` bins equally spaced in log intensity between the
   0.1 and 99.9 percentiles (bins with under ``min_count`` blocks are dropped); per bin the
   *median* of ``Var[d] / 2`` (robust to the textured blocks left), divided by the median of a
   :math:`\chi^2_k / k` variable, :math:`(1 - 2 / (9k))^3` with :math:`k = n - 1`
   (Wilson-Hilferty), so that it estimates the mean.
4. Fit :math:`v = a m + b` to the bins by iteratively reweighted least squares: weights
   ``count / v_fit^2`` (the inverse variance of a bin median up to a constant) times Tukey's
   biweight (c = 4.685) of the relative residual ``v / v_fit - 1`` over its scale, the larger
   of 1.4826 times its median absolute deviation and the standard error of a bin median
   (:math:`\sqrt{\pi/2}\sqrt{2/k}/\sqrt{n}`); 20 rounds. ``NoiseEstimate.used`` marks the
   bins with a non-zero biweight.

Measured on the Pixel 4 (:data:`PIXEL4_NOISE`)
----------------------------------------------
``python -m optics.dual_pixel.sensor_noise --data DIR`` (``DIR`` = Xin et al.'s ``DP_data_pixel_4`` with the
17 ``NNN_left.png`` / ``NNN_right.png`` raw pairs) fits each scene's full raw frame and prints
the per-scene (a, b) and their medians, which are :data:`PIXEL4_NOISE_A` = 1.358e-5 and
:data:`PIXEL4_NOISE_B` = 2.599e-8 (about 5 minutes on one core). See the constants for the
spread across scenes. On synthetic pairs of known (a, b) with sharp-edged discs shifted by a
2 px disparity and a 1-1.3 left/right vignetting ratio (the tests) the estimate is within 1 % in
``a`` and 0.2 % of ``a`` in ``b``.
"""

from __future__ import annotations

import argparse
import json
import numbers
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    "add_poisson_gaussian_noise",
    "estimate_poisson_gaussian",
    "NoiseEstimate",
    "PIXEL4_NOISE_A",
    "PIXEL4_NOISE_B",
    "PIXEL4_NOISE",
]

#: Measured on the 17 Pixel 4 scenes of Xin et al.: the medians of the per-scene fits of
#: ``python -m optics.dual_pixel.sensor_noise --data DP_data_pixel_4`` (window 7, full raw frames; 6k-34k flat
#: blocks and 14-24 bins per scene). Per scene a = 1.04e-5 .. 2.51e-5 (12 of 17 within
#: 1.04e-5 .. 1.49e-5) and b = -6.9e-7 .. 6.6e-8 (negative, with the larger a, in the four scenes
#: 013, 015, 016, 017, whose bright bins' variance rises faster than linearly in the mean, as a
#: pixel-response non-uniformity between the two views would: the line is then a compromise).
#: In 14-bit numbers: a * 16383 = 0.22, about 4.5 photo-electrons per unit, and sqrt(b) * 16383 =
#: 2.6 units of read noise.
PIXEL4_NOISE_A = 1.358e-05
PIXEL4_NOISE_B = 2.599e-08
PIXEL4_NOISE = (PIXEL4_NOISE_A, PIXEL4_NOISE_B)


def _check_params(a: Any, b: Any) -> tuple[float, float]:
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v < 0:
            raise ValueError(f"noise parameter {name} must be a finite number >= 0; got {v!r}")
    return float(a), float(b)


def add_poisson_gaussian_noise(image: Any, a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    r"""``image`` plus Poisson-Gaussian noise of variance ``a * image + b`` (no clipping).

    :math:`y = a\,P(x / a) + \sqrt{b}\,N(0, 1)` with :math:`P` a Poisson draw (``a = 0``: no
    shot noise), so :math:`E[y] = x` and :math:`\operatorname{Var}[y] = a x + b`. Negative
    ``image`` values count as 0 for the shot noise. Returns an array of ``image``'s float dtype
    (float64 for integer input); the input is not changed. ``rng`` is the only source of
    randomness.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    a, b = _check_params(a, b)
    x = np.asarray(image)
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    x64 = x.astype(np.float64)
    if not np.all(np.isfinite(x64)):
        raise ValueError("image must be finite")
    if a > 0:
        y = a * rng.poisson(np.maximum(x64, 0.0) / a) + np.minimum(x64, 0.0)
    else:
        y = x64.copy()
    if b > 0:
        y = y + np.sqrt(b) * rng.standard_normal(x64.shape)
    return y.astype(dt)


@dataclass(frozen=True)
class NoiseEstimate:
    """Result of :func:`estimate_poisson_gaussian`: ``a``, ``b`` and the fitted bins."""

    a: float
    b: float
    means: np.ndarray
    variances: np.ndarray
    counts: np.ndarray
    used: np.ndarray
    blocks: int


def _blocks(image: np.ndarray, w: int) -> np.ndarray:
    H, W = image.shape
    h, ww = H // w, W // w
    return image[: h * w, : ww * w].reshape(h, w, ww, w).transpose(0, 2, 1, 3).reshape(h * ww, w * w)


def estimate_poisson_gaussian(left: Any, right: Any, *, window: int = 7, flat_ratio: float = 1.5,
                              bins: int = 24, saturation: float = 0.98, min_count: int = 30) -> NoiseEstimate:
    """Estimate (a, b) of ``Var = a * mean + b`` from a dual-pixel pair (see the module docstring).

    ``left``, ``right``: (H, W) raw views normalised to [0, 1], noise as captured (no gain
    correction applied). Returns a :class:`NoiseEstimate`; raises ``ValueError`` when fewer than
    two bins of ``min_count`` flat blocks remain.
    """
    L = np.asarray(left, dtype=np.float64)
    R = np.asarray(right, dtype=np.float64)
    if L.ndim != 2 or L.shape != R.shape:
        raise ValueError(f"left and right must be (H, W) arrays of one shape; got {L.shape} and {R.shape}")
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 3:
        raise ValueError(f"window must be an integer >= 3; got {window!r}")
    if min(L.shape) < window:
        raise ValueError(f"images {L.shape} are smaller than one {window} x {window} window")
    bl, br = _blocks(L, window), _blocks(R, window)
    s, d = 0.5 * (bl + br), bl - br
    mean = s.mean(axis=1)
    var_d = d.var(axis=1, ddof=1)
    var_s = s.var(axis=1, ddof=1)
    ok = ((np.minimum(bl.min(axis=1), br.min(axis=1)) > 0) & (np.maximum(bl.max(axis=1), br.max(axis=1)) < saturation)
          & (var_d > 0))
    if np.count_nonzero(ok) < 2 * min_count:
        raise ValueError(f"only {np.count_nonzero(ok)} unclipped blocks found; need at least {2 * min_count} flat blocks")
    k = window * window - 1
    # start: the noise level of a block's intensity from the lower quartile of Var[d] / 2 near it
    order = np.argsort(mean[ok])
    ref = np.empty(int(ok.sum()))
    for chunk in np.array_split(order, max(1, min(bins, order.size // min_count))):
        ref[chunk] = np.quantile(var_d[ok][chunk], 0.25) / 2
    reference = np.zeros_like(mean)
    reference[ok] = ref
    result = None
    for _ in range(4):
        flat = ok & (var_s <= flat_ratio * reference / 2)
        result = _fit_bins(mean[flat], var_d[flat] / 2, k, bins, min_count)
        reference = np.maximum(result[0] * mean + result[1], 0.0)
    a, b, means_a, var_a, counts_a, used, n = result
    return NoiseEstimate(float(a), float(b), means_a, var_a, counts_a, used, n)


def _fit_bins(m: np.ndarray, v: np.ndarray, k: int, bins: int, min_count: int):
    """Steps 3 and 4 of the module docstring on the flat blocks' means ``m`` and ``Var[d] / 2`` ``v``."""
    if m.size < 2 * min_count:
        raise ValueError(f"only {m.size} flat blocks found; need at least {2 * min_count}")
    lo, hi = np.quantile(m, [0.001, 0.999])
    lo = max(lo, hi * 1e-3)
    edges = np.exp(np.linspace(np.log(lo), np.log(hi), bins + 1))
    idx = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, bins - 1)
    chi2_median = (1 - 2 / (9 * k)) ** 3
    means, variances, counts = [], [], []
    for i in range(bins):
        sel = idx == i
        if np.count_nonzero(sel) >= min_count:
            means.append(float(np.median(m[sel])))
            variances.append(float(np.median(v[sel])) / chi2_median)
            counts.append(int(np.count_nonzero(sel)))
    means_a, var_a, counts_a = np.array(means), np.array(variances), np.array(counts)
    if means_a.size < 2:
        raise ValueError(f"only {means_a.size} intensity bins with >= {min_count} flat blocks; need 2")
    # iteratively reweighted least squares with Tukey's biweight on the relative residuals, their
    # scale the larger of 1.4826 MAD and the standard error of a bin median
    se_rel = np.sqrt(np.pi / 2) * np.sqrt(2 / k) / np.sqrt(counts_a)
    robust = np.ones(means_a.size)
    fit = var_a.copy()
    a = b = 0.0
    A = np.stack([means_a, np.ones(means_a.size)], axis=1)
    for _ in range(20):
        wts = robust * counts_a / np.maximum(fit, 1e-30) ** 2
        sw = np.sqrt(wts)
        (a, b), *_ = np.linalg.lstsq(A * sw[:, None], var_a * sw, rcond=None)
        fit = np.maximum(a * means_a + b, 1e-30)
        rel = var_a / fit - 1
        scale = np.maximum(1.4826 * np.median(np.abs(rel - np.median(rel))), se_rel)
        u = rel / (4.685 * scale)
        robust = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
        if np.count_nonzero(robust) < 2:
            raise ValueError("the robust line fit kept fewer than 2 intensity bins")
    used = robust > 0
    return float(a), float(b), means_a, var_a, counts_a, used, int(m.size)


def _scene_pairs(data: Path) -> list[tuple[str, Path, Path]]:
    pairs = []
    for left in sorted(data.glob("*_left.png")):
        name = re.sub(r"_left$", "", left.stem)
        right = left.with_name(f"{name}_right.png")
        if right.is_file():
            pairs.append((name, left, right))
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m optics.dual_pixel.sensor_noise --data DIR``: (a, b) of each Pixel 4 raw pair in DIR and their median."""
    parser = argparse.ArgumentParser(prog="python -m optics.dual_pixel.sensor_noise", description=main.__doc__)
    parser.add_argument("--data", required=True, type=Path, help="folder with NNN_left.png / NNN_right.png raw pairs")
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    from .pixel4 import read_pixel4_raw

    pairs = _scene_pairs(args.data)
    if not pairs:
        parser.error(f"no NNN_left.png / NNN_right.png pairs in {str(args.data)!r}")
    rows = []
    for name, lp, rp in pairs:
        est = estimate_poisson_gaussian(read_pixel4_raw(lp), read_pixel4_raw(rp), window=args.window)
        rows.append(dict(scene=name, a=est.a, b=est.b, blocks=est.blocks, bins=int(est.used.sum())))
        if not args.json:
            print(f"{name}: a = {est.a:.4g}  b = {est.b:.4g}  ({est.blocks} flat blocks, {int(est.used.sum())} bins)")
    a_med = float(np.median([r["a"] for r in rows]))
    b_med = float(np.median([r["b"] for r in rows]))
    if args.json:
        print(json.dumps(dict(scenes=rows, a=a_med, b=b_med), indent=1))
    else:
        print(f"median of {len(rows)} scenes: a = {a_med:.4g}  b = {b_med:.4g}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
