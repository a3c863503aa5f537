"""Effective receptive field (context) of every model, measured: ``python -m benchmarks.receptive_field``.

``python -m benchmarks.receptive_field [--models kpac ifan ...] [--size 256] [--centre 32]
[--margins 16 32 48 64 96] [--seed 0] [--out table.md]``

For each model of :data:`learned.MODELS` at its default (paper) configuration, seeded random
initialisation (``torch.manual_seed(seed)``), eval mode, one thread, on the benchmark image of
:func:`benchmarks.inference._input` (a smooth pattern plus noise; the right view of a dual-pixel
model is the same image shifted by 3 px), :func:`learned.inference.tiling.context_errors` compares the
output of the central ``centre`` px patch computed from the whole ``size`` px input with the
output computed from that patch plus ``m`` px of context. The table gives the max and mean
|change| (unclipped outputs, in 1/255: a bound on the clipped ones) per margin, and the smallest measured margin that keeps the
max change below 1/255 and below 1e-6.

These are *effective* contexts at a tolerance, not receptive fields: every network here has a
theoretical receptive field larger than the crop (KPAC's shape attention pools globally, so its
own is infinite), and trained weights can give other figures. :data:`learned.inference.tiling.CONTEXT_PX`
holds the numbers this command printed. ``--out`` writes the table to a new file (never
overwritten).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from optics import cli

from benchmarks._report import emit, refuse_existing

TOLERANCES = (1 / 255, 1e-6)


def measure(name: str, size: int, centre: int, margins, seed: int = 0):
    """``[(m, max_err, mean_err), ...]`` for model ``name`` (see the module docstring)."""
    import torch

    import learned
    from benchmarks.inference import _input
    from learned.inference.tiling import context_errors

    torch.manual_seed(seed)
    net = learned.build_model(name).eval()
    image = _input(size, size + 3, seed)
    inputs = [image[..., :size]] + ([image[..., 3:]] if name in learned.DUAL_PIXEL else [])
    return context_errors(net, inputs, margins, centre)


def smallest_margin(rows, tol: float):
    """Smallest measured margin whose max error is below ``tol`` (and stays below for larger ones), or None."""
    ok = None
    for m, worst, _ in sorted(rows, reverse=True):
        if worst >= tol:
            break
        ok = m
    return ok


def main(argv=None) -> int:
    import torch

    import learned

    parser = cli.ArgumentParser(prog="python -m benchmarks.receptive_field", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=sorted(learned.MODELS), choices=sorted(learned.MODELS))
    parser.add_argument("--size", type=int, default=256, help="side of the reference input (px, default 256)")
    parser.add_argument("--centre", type=int, default=32, help="side of the compared central patch (px, default 32)")
    parser.add_argument("--margins", type=int, nargs="+", default=[16, 32, 48, 64, 96],
                        help="contexts to try (px; default 16 32 48 64 96)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the markdown table to this new file")
    args = parser.parse_args(argv)
    if args.centre < 1 or args.size < args.centre + 2 or (args.size - args.centre) % 2:
        parser.error(f"argument --size: expected > --centre + 1 with (size - centre) even; got size {args.size}, "
                     f"centre {args.centre}")
    full = (args.size - args.centre) // 2
    bad = [m for m in args.margins if not 0 <= m < full]
    if bad:
        parser.error(f"argument --margins: expected 0 <= m < (size - centre) / 2 = {full}; got {bad}")
    if args.threads < 1:
        parser.error(f"argument --threads: expected >= 1; got {args.threads}")
    refuse_existing(parser, args.out)
    torch.set_num_threads(args.threads)

    margins = sorted(set(args.margins))
    head = " | ".join(f"m={m}" for m in margins)
    lines = [f"Effective context: max (mean) |unclipped output change| in 1/255 of a {args.centre} px central patch when the "
             f"input is cut to m px around it, against {full} px (input {args.size} px, seed {args.seed}, random "
             "init, eval mode). Command: `python -m benchmarks.receptive_field "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             f"| model | {head} | context at 1/255 | context at 1e-6 | s |",
             "|---" * (len(margins) + 4) + "|"]
    for name in args.models:
        start = time.perf_counter()
        rows = measure(name, args.size, args.centre, margins, args.seed)
        cells = " | ".join(f"{255 * w:.3g} ({255 * a:.2g})" for _, w, a in rows)
        ctx = [smallest_margin(rows, t) for t in TOLERANCES]
        ctx = [f"{c} px" if c is not None else f"> {margins[-1]} px" for c in ctx]
        lines.append(f"| {name} | {cells} | {ctx[0]} | {ctx[1]} | {time.perf_counter() - start:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    emit("\n".join(lines) + "\n", args.out)
    if args.out is not None:
        print(f"results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
