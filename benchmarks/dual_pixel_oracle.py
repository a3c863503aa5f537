"""Oracle diagnostic of training-free DP deblurring: how much of a scene's loss is the map's, how much the deconvolution's.

``python -m benchmarks.dual_pixel_oracle --data DIR [--scenes NNN ...] [--sigma 8 24] [--set NAME=VALUE] [--out FILE]``

For each of Xin et al.'s Pixel 4 scenes (read as every entry point reads them, :mod:`learned.data`'s
``pixeldp:`` reader), the deconvolution of :func:`optics.dual_pixel.deblur.dual_pixel_deblur` (its
``DEFAULTS`` with the ``--set`` overrides, e.g. ``--set deconvolution=tv``) is run with every scale as a
constant map over the whole frame (:func:`optics.dual_pixel.deconvolution.layer_stack`). Then, per pixel,
the **oracle** takes the scale whose layer is closest to the ground truth in a Gaussian window of
``--sigma`` pixels (squared error, smoothed), and the layers are blended as the method blends them
(:func:`optics.dual_pixel.deconvolution.composite_layers`). The oracle's PSNR is the upper bound that
*any* defocus map reaches with that deconvolution (the small windows also absorb some noise and
misregistration of the ground truth, so sigma 8 is optimistic and sigma 24 closer to a map's
resolution). The **best constant map** is the single scale that scores best.

Every loss then splits in two: ``oracle - ours`` is what the estimated map costs, and the gap from the
oracle to the ground truth is the deconvolution's (and the data's) share. The ground truth only
scores here; nothing is tuned by this command.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmarks._report import emit, refuse_existing
from optics import cli

__all__ = ["oracle_index", "scene_oracle", "format_report", "main"]


def oracle_index(stack: np.ndarray, target: np.ndarray, sigma: float) -> np.ndarray:
    """Per pixel, the index of the layer of ``stack`` (S, H, W) closest to ``target`` (H, W) in a
    Gaussian window of ``sigma`` pixels (``scipy.ndimage.gaussian_filter`` of the squared error)."""
    from scipy.ndimage import gaussian_filter

    if stack.ndim != 3 or stack.shape[1:] != target.shape:
        raise ValueError(f"stack must be (S, H, W) over target's {target.shape}; got {stack.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels; got {sigma!r}")
    err = np.stack([gaussian_filter((np.clip(layer, 0, 1) - target) ** 2, float(sigma)) for layer in stack])
    return np.argmin(err, axis=0).astype(stack.dtype)


def _psnr(image: np.ndarray, target: np.ndarray) -> float:
    from learned.metrics import psnr

    return psnr(np.clip(image, 0, 1)[..., None].astype(np.float64), target[..., None].astype(np.float64))


def scene_oracle(left: np.ndarray, right: np.ndarray, target: np.ndarray, placed, sigmas: Sequence[float],
                 options: dict) -> dict:
    """PSNR of the method, of the oracle map at each sigma and of the best constant map, for one scene.

    ``placed``: the scene's :class:`optics.dual_pixel.deblur.PlacedPSFs` (the views are mirror-padded to
    whole cells as the method pads them, and every layer is cropped back).
    """
    from optics.dual_pixel.deblur import DEFAULT_SCALES, DEFAULTS
    from optics.dual_pixel.deconvolution import composite_layers, layer_stack

    o = {**DEFAULTS, **options}
    start = time.perf_counter()
    res = placed.deblur(left, right, **{k: v for k, v in o.items() if k != "tv_betas"})
    scales = np.asarray(DEFAULT_SCALES)
    (t, b), (l_, r) = placed.pad
    padded = [np.pad(v, placed.pad, mode="symmetric") for v in (left, right)]
    stack = layer_stack(*padded, placed.grid, scales, method=o["deconvolution"], wiener_eps=o["wiener_eps"],
                        tv_weight=o["tv_weight"], tv_eps=o["tv_eps"], tv_betas=o["tv_betas"],
                        centre_weight=o["centre_weight"], margin=o["margin"], workers=o.get("workers", -1))
    H, W = left.shape
    stack = stack[:, t:t + H, l_:l_ + W]
    row = {"ours": _psnr(res.image, target)}
    constant = [_psnr(layer, target) for layer in stack]
    best = int(np.argmax(constant))
    row["constant"], row["constant_scale"] = constant[best], float(scales[best])
    for sigma in sigmas:
        row[f"oracle_{sigma:g}"] = _psnr(composite_layers(stack, oracle_index(stack, target, sigma)), target)
    row["seconds"] = time.perf_counter() - start
    return row


def format_report(rows: list, sigmas: Sequence[float], title: str) -> str:
    from validation.real_dual_pixel import TUNING

    cols = ["input", "ours", "constant"] + [f"oracle_{s:g}" for s in sigmas]
    head = (["scene", "input", "ours", "best constant map (scale)"] + [f"oracle sigma {s:g}" for s in sigmas]
            + [f"map costs (sigma {s:g})" for s in sigmas])
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(name, r):
        cells = [name, f"{r['input']:.2f}", f"{r['ours']:.2f}",
                 f"{r['constant']:.2f}" + (f" ({r['constant_scale']:+.2f})" if "constant_scale" in r else "")]
        cells += [f"{r[f'oracle_{s:g}']:.2f}" for s in sigmas]
        cells += [f"{r[f'oracle_{s:g}'] - r['ours']:+.2f}" for s in sigmas]
        return "| " + " | ".join(cells) + " |"

    lines += [line(r["scene"], r) for r in rows]
    for label, pick in (("mean, all", lambda r: True), ("mean, tuning 001-008", lambda r: r["scene"] in TUNING),
                        ("mean, held-out 009-017", lambda r: r["scene"] not in TUNING)):
        part = [r for r in rows if pick(r)]
        if part:
            lines.append(line(f"**{label} ({len(part)})**", {c: float(np.mean([r[c] for r in part])) for c in cols}))
    lines += ["", "PSNR in dB, raw scoring (the images as distributed, clipped to [0, 1]). 'map costs' = oracle - ours: "
              "what a perfect map at that resolution would add with this deconvolution; the oracle's own gap to the "
              "ground truth is the deconvolution's (and the data's) share."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from benchmarks._scenes import add_workers_and_out
    from benchmarks.real_dual_pixel import _option

    parser = cli.ArgumentParser(prog="python -m benchmarks.dual_pixel_oracle", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--psf", choices=("calibration", "pixel4"), default="calibration",
                        help="the data's calibrated kernels (default) or the fitted Pixel 4 field")
    parser.add_argument("--scenes", nargs="+", metavar="NNN", help="only these scenes (default: all 17)")
    parser.add_argument("--sigma", nargs="+", type=float, default=[8.0, 24.0],
                        help="Gaussian windows of the oracle, pixels (default 8 24)")
    parser.add_argument("--set", action="append", default=[], type=_option, metavar="NAME=VALUE",
                        help="override one of optics.dual_pixel.deblur.DEFAULTS (repeatable), e.g. --set deconvolution=tv")
    add_workers_and_out(parser, "markdown report")
    args = parser.parse_args(argv)
    if any(not (s > 0 and np.isfinite(s)) for s in args.sigma):
        parser.error(f"argument --sigma: expected finite numbers > 0; got {args.sigma}")
    refuse_existing(parser, args.out)
    from benchmarks._scenes import pixel4_scenes
    from optics.dual_pixel.deblur import dual_pixel_psf_source

    dataset, selected = pixel4_scenes(parser, args.data, args.scenes)
    source = dual_pixel_psf_source(args.psf, args.data)  # as validation.real_dual_pixel and learned.evaluate
    options = dict(args.set, workers=args.workers)
    rows = []
    for i, name in selected:
        arrays = dataset.load(i)
        left = np.ascontiguousarray(arrays["left"][..., 0], dtype=np.float32)
        right = np.ascontiguousarray(arrays["right"][..., 0], dtype=np.float32)
        target = arrays["target"][..., 0].astype(np.float32)
        row = dict(scene=name, input=_psnr(arrays["input"][..., 0], target))
        row.update(scene_oracle(left, right, target, source.place(left.shape), args.sigma, options))
        print(f"{name}: input {row['input']:.2f}, ours {row['ours']:.2f}, "
              + ", ".join(f"oracle {s:g}: {row[f'oracle_{s:g}']:.2f}" for s in args.sigma)
              + f" ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
        rows.append(row)
    changed = ", ".join(f"{k}={v}" for k, v in args.set) or "the DEFAULTS"
    title = f"Oracle maps of training-free DP deblurring, {len(rows)} Pixel 4 scenes ({args.psf} PSFs, {changed})"
    emit(format_report(rows, args.sigma, title), args.out)
    if args.out is not None:
        print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
