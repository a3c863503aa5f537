"""Does the self-supervised DP reblur loss reward a wrong map? Measured on real captures (issue 26, deliverable 3).

``python -m benchmarks.reblur_map_check --data DIR [--scenes NNN ...] [--crop N] [--shifts D1,D2,...] [--ground-truth]``

For each scene (default: the tuning scenes 001-008; the ground truth is not used), the training-free
physics (:func:`optics.dual_pixel.deblur.dual_pixel_deblur`, its defaults) gives a sharp estimate ``x``
and a defocus map ``d`` over the frame. On the central ``--crop`` window the reblur loss
(:func:`learned.training.reblur.reblur_loss`: the DP forward model with the same calibrated PSF grid,
layers summed without occlusion, Charbonnier, a 16 px border left out) is evaluated for

* ``x`` with the map shifted by each of ``--shifts`` (0 is the physics' own map; the map plus its
  ``scale_bias`` is the map the deconvolution used),
* ``x`` with a constant map at the crop's median defocus (a map that ignores depth), and
* the shortcut ``x = (L + R) / 2`` with the map at the scale nearest 0 (nearly no blur).

* with ``--ground-truth``, the scene's ground truth with the physics' map, aligned to the physics
  estimate first (the half-pixel shift within 1.5 px and the gain that bring it closest to the
  estimate in least squares: Xin et al.'s ground truth is a separate capture, registered near but not
  on the views' reference), both with the map plus ``scale_bias``. The ground truth is only scored here, never trained on: if it explains
  the views worse than the physics estimate does, lowering the loss below the physics' value cannot
  bring an estimate closer to the truth (issue 26's diagnosis).

The layers are summed (``occlusion=False``): front-to-back occlusion with a map between two levels
composites the two partial layers as if one hid the other, and loses up to a quarter of the light
(measured on 001's centre: the reblurred left view 10 % darker than the view); the renderer's
occlusion model is defined for maps on the levels only.

A loss that does not reward wrong maps has its least value near shift 0 (or the bias), above it for
the flat map, and far above it for the shortcut.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from optics import cli

BORDER = 16


def _aligned_truth(target: np.ndarray, estimate: np.ndarray, win) -> tuple:
    """The ground truth's window shifted (half pixels within 1.5 px, cubic) and scaled to the estimate
    in least squares; returns (window, (dy, dx), gain)."""
    from scipy import ndimage

    m = 4  # margin: the shifted window reads at most 1.5 px (and the cubic spline's reach) outside it
    rows, cols = win
    r0, c0 = max(rows.start - m, 0), max(cols.start - m, 0)
    target = np.asarray(target[r0:rows.stop + m, c0:cols.stop + m], dtype=np.float64)
    win = (slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0))
    ref = np.asarray(estimate, dtype=np.float64)
    best = None
    steps = np.arange(-1.5, 1.51, 0.5)
    for dy in steps:
        for dx in steps:
            g = ndimage.shift(target, (dy, dx), order=3, mode="nearest")[win]
            gain = float((g * ref).sum() / max((g * g).sum(), 1e-12))
            err = float(np.mean((gain * g - ref) ** 2))
            if best is None or err < best[0]:
                best = (err, gain * g, (float(dy), float(dx)), gain)
    return best[1], best[2], best[3]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.reblur_map_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--scenes", nargs="+", metavar="NNN", default=[f"{i:03d}" for i in range(1, 9)],
                        help="scenes (default: the tuning scenes 001-008)")
    parser.add_argument("--crop", type=int, default=336, help="side of the central window scored, px (default 336)")
    parser.add_argument("--shifts", default="-0.4,-0.2,-0.1,0,0.1,0.2,0.4",
                        help="shifts of the map, scale units (default -0.4,-0.2,-0.1,0,0.1,0.2,0.4)")
    parser.add_argument("--ground-truth", action="store_true",
                        help="also score the aligned ground truth (a diagnosis; see the module docstring)")
    args = parser.parse_args(argv)
    try:
        shifts = [float(v) for v in args.shifts.split(",")]
    except ValueError:
        parser.error(f"argument --shifts: expected comma-separated numbers; got {args.shifts!r}")
    if not 2 * BORDER + 16 <= args.crop <= 1008:
        parser.error(f"argument --crop: expected {2 * BORDER + 16} to 1008 px; got {args.crop}")
    import torch

    from benchmarks._scenes import pixel4_scenes
    from learned.training.reblur import ReblurPSFs, reblur_loss
    from optics.dual_pixel.deblur import DEFAULT_SCALES, DEFAULTS, biased_defocus, dual_pixel_deblur, dual_pixel_psf_source
    from optics.dual_pixel.pixel4 import PIXEL4_SCALE_BIAS

    dataset, selected = pixel4_scenes(parser, args.data, args.scenes)
    source = dual_pixel_psf_source("calibration", args.data)
    scales = np.asarray(DEFAULT_SCALES)
    grid = None
    zero = float(scales[np.argmin(np.abs(scales))])
    head = (["scene"] + [f"map {s:+g}" for s in shifts] + ["flat map", f"shortcut (L+R)/2, scale {zero:g}",
                                                           "least at"]
            + (["ground truth, aligned (shift, gain)", "ground truth / physics"] if args.ground_truth else []))
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for i, name in selected:
        arrays = dataset.load(i)
        left, right = (np.ascontiguousarray(arrays[k][..., 0], dtype=np.float32) for k in ("left", "right"))
        placed = source.place(left.shape)
        if grid is None:
            grid = placed.grid
            psfs = ReblurPSFs.from_grid(grid, scales)
        res = dual_pixel_deblur(left, right, grid)
        H, W = left.shape
        n = args.crop
        y0, x0 = (H - n) // 2, (W - n) // 2
        win = (slice(y0, y0 + n), slice(x0, x0 + n))
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
        L, R = t(left[win]), t(right[win])

        def loss(x, d):
            d = np.clip(d, scales[0], scales[-1])
            with torch.no_grad():
                return float(reblur_loss(t(x), t(d), L, R, psfs, border=BORDER, offset=(y0, x0), occlusion=False))

        x, d = res.image[win], np.asarray(res.defocus[win], np.float64)
        row = [loss(x, d + s) for s in shifts]
        flat = loss(x, np.full_like(d, np.median(d)))
        short = loss((left[win] + right[win]) / 2, np.full_like(d, zero))
        best = shifts[int(np.argmin(row))]
        cells = [name] + [f"{v:.3e}" for v in row] + [f"{flat:.3e}", f"{short:.3e}", f"{best:+g}"]
        if args.ground_truth:
            truth, (dy, dx), gain = _aligned_truth(arrays["target"][..., 0], x, win)
            moved = biased_defocus(d, PIXEL4_SCALE_BIAS)  # both with the map the physics deconvolved with
            value = loss(truth, moved)
            cells += [f"{value:.3e} ({dy:+.1f}, {dx:+.1f}; {gain:.3f})", f"{value / loss(x, moved):.2f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\nloss: Charbonnier (eps 1e-3) of both reblurred views, central {args.crop} px window, {BORDER} px border "
          f"out; the physics used the map moved by scale_bias {PIXEL4_SCALE_BIAS:+g} towards 0", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
