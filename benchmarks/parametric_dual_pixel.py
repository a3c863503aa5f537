"""Benchmark: the parametric DP PSF sources (``--psf disc|butterworth``) on renders with known ground truth.

``python -m benchmarks.parametric_dual_pixel [--size N] [--radius R] [--seeds S...] [--workers N] [--out FILE]``

A symmetric (DSLR-like) dual-pixel camera: RGB scenes rendered by :func:`optics.render_coc_layers`
with the ``half_disc`` or ``butterworth`` model of :func:`optics.dual_pixel_psfs`, then deblurred
by :func:`optics.dual_pixel.deblur.deblur_capture` (each channel; the map is the green channel's)
with the parametric source of :func:`optics.dual_pixel.deblur.dual_pixel_psf_source` at the
render's radius: the matching model, and the other model beside it (a wrong shape). Three depths:

- ``steps``: a dead-leaves texture on three vertical bands of constant CoC -0.7 R, 0.35 R, 1.4 R
  (piecewise constant, bands wider than the cost aggregation's 36 px Gaussian);
- ``leaves``: a dead-leaves scene of 10 large leaves (:func:`optics.render.synthesize.dead_leaves_scene`,
  radii size/6..size/2.5; their procedural textures are often flat or a single gradient), one
  depth per leaf (piecewise constant), its inverse depth mapped linearly to a signed CoC of
  ``[-0.7, 1.4] x R``, nearest leaf -0.7 R, background 1.4 R (occlusion edges included);
- ``ramp``: the texture of ``steps`` on a smooth tilted plane, CoC from ``-0.7 R`` (left) to ``1.4 R`` (right).

Reported per scene: PSNR of the input (mean of the views) and of the output against the
all-in-focus image (whole frame, linear, clipped to [0, 1]), and Spearman's rank correlation of
the defocus map with the true CoC (every 7th pixel). ``tests/optics/dual_pixel/test_parametric_psf.py``
asserts a small version of it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmarks._report import emit, refuse_existing
from optics import cli

COC_RANGE = (-0.7, 1.4)
KINDS = ("steps", "leaves", "ramp")
LEAVES = 10


def scene(seed: int, size: int, radius: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(all-in-focus RGB image, signed CoC map in pixels) of one test scene."""
    from optics.render.synthesize import dead_leaves_scene

    rng = np.random.default_rng(seed)
    lo, hi = COC_RANGE
    if kind == "leaves":  # few large leaves: regions wider than the cost aggregation (sigma 36 px)
        image, depth = dead_leaves_scene(rng, (size, size), n_leaves=LEAVES, radius_range=(size / 6, size / 2.5))
    else:
        image, depth = dead_leaves_scene(rng, (size, size))
    if kind == "steps":
        t = np.repeat((np.arange(size) * 3 // size)[None, :] / 2.0, size, axis=0)
    elif kind == "leaves":
        inv = 1.0 / depth  # near (large 1/depth) -> the smallest signed CoC: the renderer's near-to-far order
        t = (inv.max() - inv) / max(float(np.ptp(inv)), 1e-12)
    elif kind == "ramp":
        t = np.broadcast_to(np.linspace(0.0, 1.0, size)[None, :], (size, size))
    else:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    return image, radius * (lo + (hi - lo) * t)


def measure(seed: int, size: int, radius: float, kind: str, render_model: str, source: str,
            workers: int = 1) -> dict:
    """Render with ``render_model`` (``half_disc``/``butterworth``), deblur with ``--psf source`` at ``radius``."""
    from scipy.stats import spearmanr

    from optics.dual_pixel.capture import DualPixelCapture
    from optics.dual_pixel.deblur import deblur_capture, default_dual_pixel_psfs
    from optics.render.layered import render_coc_layers

    image, coc = scene(seed, size, radius, kind)
    views = render_coc_layers(image, coc, model=render_model, workers=workers)
    left, right = (np.ascontiguousarray(v, dtype=np.float32) for v in (views.left, views.right))
    capture = DualPixelCapture(left, right, (0, 0), (size, size), "linear", None)
    start = time.perf_counter()
    placed = default_dual_pixel_psfs(capture, source, radius=radius)
    res = deblur_capture(capture, placed, workers=workers)
    seconds = time.perf_counter() - start

    def psnr(x):
        return float(-10 * np.log10(np.mean((np.clip(x, 0, 1) - image) ** 2)))

    return dict(seed=seed, kind=kind, render=render_model, source=source, input_psnr=psnr(capture.mean()),
                ours_psnr=psnr(res.image), spearman=float(spearmanr(res.defocus.ravel()[::7], coc.ravel()[::7])[0]),
                seconds=seconds, shape=tuple(res.image.shape))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.parametric_dual_pixel", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=504, help="scene side in pixels (default 504: 3 x 3 cells)")
    parser.add_argument("--radius", type=float, default=8.0, help="--psf-radius of the renders and the source "
                        "(default 8 px; CoC -0.7R..1.4R)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="dead-leaves seeds (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="threads (default 1)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here (refuses to overwrite)")
    args = parser.parse_args(argv)
    refuse_existing(parser, args.out)
    rows = []
    for render_model, sources in (("half_disc", ("disc", "butterworth")), ("butterworth", ("butterworth", "disc"))):
        for kind in KINDS:
            for seed in args.seeds:
                for source in sources:
                    row = measure(seed, args.size, args.radius, kind, render_model, source, args.workers)
                    print(f"{render_model} {kind} {seed} --psf {source}: input {row['input_psnr']:.2f}, ours "
                          f"{row['ours_psnr']:.2f}, rho {row['spearman']:.3f}, {row['seconds']:.1f} s",
                          file=sys.stderr, flush=True)
                    rows.append(row)
    lines = [f"# Parametric DP PSF sources on RGB renders ({args.size}x{args.size}, radius {args.radius:g} px, "
             f"CoC {COC_RANGE[0]}R..{COC_RANGE[1]}R, seeds {args.seeds}, workers {args.workers})", "",
             "| render model | depth | --psf | input PSNR (dB) | output PSNR (dB) | gain | Spearman (map, true CoC) | s |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["render"], r["kind"], r["source"]), []).append(r)
    for (render_model, kind, source), part in groups.items():
        m = {k: float(np.mean([r[k] for r in part])) for k in ("input_psnr", "ours_psnr", "spearman", "seconds")}
        lines.append(f"| {render_model} | {kind} | {source} | {m['input_psnr']:.2f} | {m['ours_psnr']:.2f} | "
                     f"{m['ours_psnr'] - m['input_psnr']:+.2f} | {m['spearman']:.3f} | {m['seconds']:.1f} |")
    emit("\n".join(lines) + f"\n\nMeans over {len(args.seeds)} seed(s) per row.\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
