"""Does the self-supervised DP reblur loss reward a wrong map? Measured on real captures (issue 26, deliverable 3).

``python -m benchmarks.reblur_map_check --data DIR [--scenes NNN ...] [--crop N] [--shifts D1,D2,...]``

For each scene (default: the tuning scenes 001-008; the ground truth is not used), the training-free
physics (:func:`optics.dual_pixel.deblur.dual_pixel_deblur`, its defaults) gives a sharp estimate ``x``
and a defocus map ``d`` over the frame. On the central ``--crop`` window the reblur loss
(:func:`learned.training.reblur.reblur_loss`: the DP forward model with the same calibrated PSF grid,
layers summed without occlusion, Charbonnier, a 16 px border left out) is evaluated for

* ``x`` with the map shifted by each of ``--shifts`` (0 is the physics' own map; the map plus its
  ``scale_bias`` is the map the deconvolution used),
* ``x`` with a constant map at the crop's median defocus (a map that ignores depth), and
* the shortcut ``x = (L + R) / 2`` with the map at the scale nearest 0 (nearly no blur).

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.reblur_map_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--scenes", nargs="+", metavar="NNN", default=[f"{i:03d}" for i in range(1, 9)],
                        help="scenes (default: the tuning scenes 001-008)")
    parser.add_argument("--crop", type=int, default=336, help="side of the central window scored, px (default 336)")
    parser.add_argument("--shifts", default="-0.4,-0.2,-0.1,0,0.1,0.2,0.4",
                        help="shifts of the map, scale units (default -0.4,-0.2,-0.1,0,0.1,0.2,0.4)")
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
    from optics.dual_pixel.deblur import DEFAULT_SCALES, DEFAULTS, dual_pixel_deblur, dual_pixel_psf_source

    dataset, selected = pixel4_scenes(parser, args.data, args.scenes)
    source = dual_pixel_psf_source("calibration", args.data)
    scales = np.asarray(DEFAULT_SCALES)
    grid = None
    zero = float(scales[np.argmin(np.abs(scales))])
    head = (["scene"] + [f"map {s:+g}" for s in shifts] + ["flat map", f"shortcut (L+R)/2, scale {zero:g}",
                                                           "least at"])
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
        print("| " + " | ".join([name] + [f"{v:.3e}" for v in row] + [f"{flat:.3e}", f"{short:.3e}", f"{best:+g}"])
              + " |", flush=True)
    print(f"\nloss: Charbonnier (eps 1e-3) of both reblurred views, central {args.crop} px window, {BORDER} px border "
          f"out; the physics used the map + scale_bias {DEFAULTS['scale_bias']:+g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
