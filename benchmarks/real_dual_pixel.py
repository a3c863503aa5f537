"""Benchmark: training-free dual-pixel deblurring on Xin et al.'s 17 real Pixel 4 scenes, against the targets.

``python -m benchmarks.real_dual_pixel --data DIR [--psf calibration|pixel4|disc|butterworth] [--psf-radius R]
[--psf-sign 1|-1] [--psf-order N] [--workers N] [--out FILE]``

Runs :func:`validation.real_dual_pixel.measure` (every scene read as the authors' code does,
deblurred by :func:`optics.dual_pixel.deblur.dual_pixel_deblur` with the defaults tuned on 001-008,
scored raw and registered) and prints the per-scene table, the means over all scenes, the tuning
scenes 001-008 and the held-out scenes 009-017, and the targets of the training-free DP issue:
mean raw gain >= +2.2 dB (>= +2.0 on 009-017 alone), registered gain >= +3.2 dB, no scene below its
input, Spearman >= 0.88, median seconds per scene <= 10 (wall time of reading the capture plus the
deblurring, 1008 x 1344, ``--workers`` threads over the cells; run it on an otherwise idle machine: the
figure is a measurement, never a test). ``--set NAME=VALUE``
overrides one of :data:`optics.dual_pixel.deblur.DEFAULTS` (how the tuning table was made, on
``--scenes 001 002 003 004 005 006 007 008`` only). ``--psf disc|butterworth``: what a user without
the calibration gets, one parametric pair for the whole frame
(:meth:`optics.dual_pixel.deblur.DualPixelPSFGrid.from_model`; ``--psf-radius`` is chosen on 001-008,
docs/real_dual_pixel.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from benchmarks._report import emit, refuse_existing
from optics import cli


def format_report(rows, means, title: str) -> str:
    from validation.real_dual_pixel import (GAIN_TARGET, HELD_OUT_GAIN_TARGET, REGISTERED_GAIN_TARGET, SECONDS_TARGET,
                                            SPEARMAN_TARGET, mean_table, scene_table)

    m = means["all"]
    held = means.get("held-out 009-017")
    checks = [
        ("mean PSNR gain, raw scoring", f"{m['gain']:+.2f} dB", f">= +{GAIN_TARGET} dB", m["gain"] >= GAIN_TARGET),
        ("mean PSNR gain on 009-017 (held out), raw scoring", "not run" if held is None else f"{held['gain']:+.2f} dB",
         f">= +{HELD_OUT_GAIN_TARGET} dB", held is not None and held["gain"] >= HELD_OUT_GAIN_TARGET),
        ("mean PSNR gain, registered scoring", f"{m['gain_reg']:+.2f} dB", f">= +{REGISTERED_GAIN_TARGET} dB",
         m["gain_reg"] >= REGISTERED_GAIN_TARGET),
        ("no scene below its input", f"least {m['min_gain']:+.2f} dB", "> 0", m["min_gain"] > 0),
        ("Spearman with gt_defocus_map (gt > 0)", f"{m['spearman']:.3f} (all pixels {m['spearman_all']:.3f})",
         f">= {SPEARMAN_TARGET}", m["spearman"] >= SPEARMAN_TARGET),
        ("median seconds per scene, reading included", f"{m['median_seconds']:.1f} s", f"<= {SECONDS_TARGET:g} s",
         m["median_seconds"] <= SECONDS_TARGET),
        ("moonshot: mean gain, raw scoring", f"{m['gain']:+.2f} dB", ">= +3 dB", m["gain"] >= 3.0),
    ]
    lines = [f"# {title}", "", "| target | measured | goal | result |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {'MET' if ok else 'MISSED'} |" for a, b, c, ok in checks]
    lines += ["", mean_table(means), scene_table(rows)]
    return "\n".join(lines)


def _option(text: str):
    import argparse

    from optics.dual_pixel.deblur import DEFAULTS

    name, _, value = text.partition("=")
    settable = sorted(k for k, v in DEFAULTS.items() if v is None or isinstance(v, (int, float, str)))
    if name not in settable or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {settable}; got {text!r}")
    if isinstance(DEFAULTS[name], str):
        return name, value
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs a number; got {value!r}") from None
    return name, int(number) if isinstance(DEFAULTS[name], int) and not isinstance(DEFAULTS[name], bool) else number


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.real_dual_pixel", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--psf", choices=("calibration", "pixel4", "disc", "butterworth"), default="calibration",
                        help="the data's calibrated kernels (default), the fitted Pixel 4 field, or a parametric "
                             "model without calibration (disc, butterworth: --psf-radius)")
    parser.add_argument("--psf-radius", type=float, metavar="R",
                        help="--psf disc|butterworth: blur radius in pixels at scale 1 (required with them)")
    parser.add_argument("--psf-sign", type=int, default=-1, choices=(1, -1),
                        help="--psf disc|butterworth: -1 (default here: the Pixel 4's convention, its left view's PSF "
                             "left of the centre at positive scales) or 1")
    parser.add_argument("--psf-order", type=int, default=3, help="--psf butterworth: the order (default 3)")
    parser.add_argument("--scenes", nargs="+", metavar="NNN", help="only these scenes (default: all 17)")
    parser.add_argument("--workers", type=int, default=-1,
                        help="threads over the cells' windows (default -1: every core)")
    parser.add_argument("--set", action="append", default=[], type=_option, metavar="NAME=VALUE",
                        help="override one of optics.dual_pixel.deblur.DEFAULTS (repeatable), e.g. --set scale_bias=0")
    parser.add_argument("--out", type=Path, help="also write the markdown report here (refuses to overwrite)")
    args = parser.parse_args(argv)
    if args.workers < 1 and args.workers != -1:
        parser.error(f"--workers must be -1 or >= 1; got {args.workers}")
    refuse_existing(parser, args.out)
    from validation.real_dual_pixel import _check_data, measure, summary

    _check_data(args.data)
    options = dict(args.set, workers=args.workers)
    psf = args.psf
    if psf in ("disc", "butterworth"):
        from optics.dual_pixel.deblur import dual_pixel_psf_source

        try:
            psf = dual_pixel_psf_source(psf, radius=args.psf_radius, sign=args.psf_sign, order=args.psf_order)
        except ValueError as err:
            parser.error(str(err))
    elif args.psf_radius is not None:
        parser.error(f"--psf-radius: only with --psf disc or butterworth; got --psf {psf}")
    rows = measure(args.data, set(args.scenes) if args.scenes else None, psf,
                   log=lambda message: print(message, file=sys.stderr, flush=True), options=options)
    if not rows:
        parser.error(f"--scenes {args.scenes} matched no scene of {args.data}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    changed = ", ".join(f"{k}={v}" for k, v in args.set) or "the DEFAULTS"
    what = args.psf if isinstance(psf, str) else psf.name
    title = (f"Training-free DP deblurring on {len(rows)} real Pixel 4 scenes ({what} PSFs, {changed}, "
             f"workers {args.workers}, {os.cpu_count()} cores, 1-min load {load:.1f} at the end)")
    emit(format_report(rows, summary(rows), title), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
