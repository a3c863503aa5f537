"""Where the scale bias comes from: the training-free DP pipeline on renders made with its own kernel model.

``python -m benchmarks.dual_pixel_scale_bias --data DIR [--scenes NNN ...] [--scale S] [--seed N]``

For each scene, the ground-truth all-in-focus image of Xin et al.'s Pixel 4 data is blurred with the
calibrated kernels of every cell at one constant defocus ``--scale`` (the pair centred on its mean, as
:func:`optics.dual_pixel.deblur.dual_pixel_deblur` models it at reference 0.5), and the measured Pixel 4
Poisson-Gaussian noise is added (:func:`optics.dual_pixel.sensor_noise.add_poisson_gaussian_noise`). The
pipeline then estimates the map (its defaults) and deconvolves with the two-view Wiener filter at
scale biases -0.2 .. +0.1, and with the true map. If the kernel model were what limits the real data,
the best bias here would be -0.1 as on the real scenes; a best bias of 0 and an unbiased map mean that
the real scenes' bias comes from the data (the real blur against the rescaled calibration), not from
the estimator or the deconvolution.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from optics import cli

BIASES = (-0.2, -0.1, 0.0, 0.1)


def render_constant(image: np.ndarray, grid, scale: float, margin: int = 48):
    """(L, R) of ``image`` (on ``grid``'s frame) blurred by every cell's pair at ``scale``, tent-blended cells."""
    import scipy.fft

    from optics._backend import namespace
    from optics.dual_pixel._cells import _otfs, _windows

    be = namespace(image)
    wins, n = _windows(image, image, grid, margin, be)
    H, W = image.shape
    views = []
    for side in (0, 1):
        out = np.zeros((H, W), image.dtype)
        weight = np.zeros((H, W), image.dtype)
        for w in wins:
            K = _otfs(grid, w.row, w.col, float(scale), n, be, np.complex64 if image.dtype == np.float32
                      else np.complex128, 0.5)[side]
            y0, y1, x0, x1 = w.box
            out[y0:y1, x0:x1] += w.tent * scipy.fft.irfft2(w.FL * K, s=(n, n))[w.inner]
            weight[y0:y1, x0:x1] += w.tent
        views.append(out / weight)
    return views


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.dual_pixel_scale_bias", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--scenes", nargs="+", metavar="NNN", default=["004"], help="scenes (default 004)")
    parser.add_argument("--scale", type=float, default=1.0, help="the renders' constant defocus (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    parser.add_argument("--workers", type=int, default=-1, help="threads over the cells (default -1: every core)")
    args = parser.parse_args(argv)
    from optics.dual_pixel.deblur import DEFAULT_SCALES, dual_pixel_defocus_map, dual_pixel_psf_source
    from optics.dual_pixel.deconvolution import layered_deconvolution
    from optics.dual_pixel.sensor_noise import PIXEL4_NOISE_A, PIXEL4_NOISE_B, add_poisson_gaussian_noise
    from optics.image_io import read_png
    from validation.real_dual_pixel import _check_data

    scales = np.asarray(DEFAULT_SCALES)
    if not scales[0] + 0.2 <= args.scale <= scales[-1] - 0.1:
        parser.error(f"argument --scale: expected {scales[0] + 0.2:g} to {scales[-1] - 0.1:g}; got {args.scale:g}")
    _check_data(args.data)
    grid = dual_pixel_psf_source("calibration", args.data).grid
    rng = np.random.default_rng(args.seed)
    print(f"| scene | map mean (true {args.scale:g}) | " + " | ".join(f"bias {b:+g}" for b in BIASES)
          + " | true map | true map - 0.1 |")
    print("|" + "---|" * (len(BIASES) + 4))
    for name in args.scenes:
        path = args.data / "gt_all_in_focus_im" / f"{name}_gt.png"
        if not path.is_file():
            parser.error(f"argument --scenes: {str(path)!r} does not exist")
        sharp = read_png(path).astype(np.float32)
        sharp = (sharp[..., 1] if sharp.ndim == 3 else sharp) / 65535.0
        if sharp.shape != grid.frame:
            parser.error(f"scene {name}: ground truth {sharp.shape} is not the calibrated frame {grid.frame}")
        left, right = (add_poisson_gaussian_noise(np.clip(v, 0, None), PIXEL4_NOISE_A, PIXEL4_NOISE_B, rng)
                       .astype(np.float32) for v in render_constant(sharp, grid, args.scale))
        m = dual_pixel_defocus_map(left, right, grid, scales, workers=args.workers)

        def score(index):
            x = layered_deconvolution(left, right, grid, scales, index.astype(np.float32), method="wiener",
                                      wiener_eps=1.5e-2, centre_weight=0.5, workers=args.workers)
            return -10 * np.log10(np.mean((np.clip(x, 0, 1) - sharp) ** 2))

        cells = [score(np.interp(np.asarray(m.defocus, np.float64) + b, scales, np.arange(len(scales)))) for b in BIASES]
        true = np.full(sharp.shape, np.interp(args.scale, scales, np.arange(len(scales))))
        lower = np.full(sharp.shape, np.interp(args.scale - 0.1, scales, np.arange(len(scales))))
        print(f"| {name} | {float(np.mean(m.defocus)):.3f} | " + " | ".join(f"{c:.2f}" for c in cells)
              + f" | {score(true):.2f} | {score(lower):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
