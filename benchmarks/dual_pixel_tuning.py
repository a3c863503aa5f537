"""Tuning grid of the training-free DP deconvolution: one defocus map per scene, every setting deconvolved with it.

``python -m benchmarks.dual_pixel_tuning --data DIR [--scenes NNN ...] --grid NAME=V1,V2 [--grid ...] [--out FILE]``

For each scene (default: the tuning scenes 001-008, read as every entry point reads them), the defocus
map of :func:`optics.dual_pixel.deblur.dual_pixel_defocus_map` is computed once (its ``DEFAULTS``), then
every combination of the ``--grid`` values is deconvolved with it
(:func:`optics.dual_pixel.deconvolution.layered_deconvolution`) and scored raw against the ground truth.
NAME is one of ``deconvolution``, ``wiener_eps``, ``tv_weight``, ``tv_eps``, ``centre_weight`` (the
reference point of each PSF pair) and ``scale_bias``; a setting left out takes its default. A row equals
``python -m benchmarks.real_dual_pixel --scenes ... --set NAME=VALUE ...`` (the same map, the same
deconvolution), at a fraction of its time. The ground truth of 009-017 is never used to choose: run it
on 001-008 only.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmarks._report import emit, refuse_existing
from optics import cli

__all__ = ["GRID_NAMES", "main"]

#: The settings a grid may vary, and how a value is read.
GRID_NAMES = {"deconvolution": str, "wiener_eps": float, "tv_weight": float, "tv_eps": float, "centre_weight": float,
              "scale_bias": float}


def _grid_option(text: str):
    import argparse

    name, _, values = text.partition("=")
    if name not in GRID_NAMES or not values:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... with NAME one of {sorted(GRID_NAMES)}; got {text!r}")
    try:
        return name, [GRID_NAMES[name](v) for v in values.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs numbers; got {values!r}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    from benchmarks._scenes import add_workers_and_out

    parser = cli.ArgumentParser(prog="python -m benchmarks.dual_pixel_tuning", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--scenes", nargs="+", metavar="NNN", default=[f"{i:03d}" for i in range(1, 9)],
                        help="scenes (default: the tuning scenes 001-008)")
    parser.add_argument("--grid", action="append", default=[], type=_grid_option, metavar="NAME=V1,V2",
                        help="values of one setting (repeatable; the grid is their product)")
    add_workers_and_out(parser, "markdown table")
    args = parser.parse_args(argv)
    if not args.grid:
        parser.error("argument --grid: expected at least one NAME=V1,V2,...; got none")
    refuse_existing(parser, args.out)
    from benchmarks._scenes import pixel4_scenes
    from optics.dual_pixel.deblur import (DEFAULT_SCALES, DEFAULTS, _windows, biased_defocus, dual_pixel_defocus_map,
                                         dual_pixel_psf_source)
    from optics.dual_pixel.deconvolution import layered_deconvolution
    from optics._backend import namespace

    dataset, selected = pixel4_scenes(parser, args.data, args.scenes)
    source = dual_pixel_psf_source("calibration", args.data)
    keys = [k for k, _ in args.grid]
    settings = [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in args.grid))]
    scales = np.asarray(DEFAULT_SCALES)
    scores: dict = {}
    for i, name in selected:
        arrays = dataset.load(i)
        left, right = (np.ascontiguousarray(arrays[k][..., 0], dtype=np.float32) for k in ("left", "right"))
        target = arrays["target"][..., 0].astype(np.float64)
        placed = source.place(left.shape)
        if placed.pad != ((0, 0), (0, 0)):
            parser.error(f"scene {name}: views {left.shape} are not whole cells of the calibrated grid")
        grid = placed.grid
        m = dual_pixel_defocus_map(left, right, grid, scales, workers=args.workers)
        windows = _windows(left, right, grid, DEFAULTS["margin"], namespace(left))
        for k, setting in enumerate(settings):
            o = {**DEFAULTS, **setting}
            bias = grid.scale_bias if o["scale_bias"] is None else o["scale_bias"]  # the source's, never across 0
            index = np.interp(biased_defocus(np.asarray(m.defocus, np.float64), bias), scales, np.arange(len(scales)))
            image = layered_deconvolution(left, right, grid, scales, index.astype(np.float32), windows=windows,
                                          method=o["deconvolution"], wiener_eps=o["wiener_eps"],
                                          tv_weight=o["tv_weight"], tv_eps=o["tv_eps"], tv_betas=o["tv_betas"],
                                          centre_weight=o["centre_weight"], margin=o["margin"], workers=args.workers)
            mse = float(np.mean((np.clip(image, 0, 1).astype(np.float64) - target) ** 2))
            scores.setdefault(k, {})[name] = -10 * np.log10(mse)
            print(f"{name} {setting}: {scores[k][name]:.3f} dB", file=sys.stderr, flush=True)
    scenes = sorted(scores[0])
    lines = [f"# Deconvolution settings on scenes {', '.join(scenes)} (mean raw PSNR, dB; best first)", "",
             "| " + " | ".join(keys) + " | mean | " + " | ".join(scenes) + " |", "|" + "---|" * (len(keys) + 1 + len(scenes))]
    order = sorted(scores, key=lambda k: -np.mean(list(scores[k].values())))
    for k in order:
        lines.append("| " + " | ".join(f"{settings[k][key]:g}" if isinstance(settings[k][key], float) else str(settings[k][key])
                                       for key in keys)
                     + f" | {np.mean(list(scores[k].values())):.3f} | " + " | ".join(f"{scores[k][n]:.2f}" for n in scenes) + " |")
    emit("\n".join(lines), args.out)
    if args.out is not None:
        print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
