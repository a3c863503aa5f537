"""Benchmark: error of bfloat16 autocast inference against float32, per model.

``python -m benchmarks.precision [--models ...] [--size 128] [--images 4] [--out FILE]``

Every model of :data:`learned.MODELS` (paper widths, weights from ``torch.manual_seed(seed)``, or a
checkpoint with ``--checkpoint NAME=PATH``) runs the first ``--images`` held-out synthetic test
scenes (``synthetic:size=SIZE``) twice on the CPU: in float32, and under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (:func:`learned.inference.precision.autocast`, what ``--amp``
does in :mod:`learned.deblur` and :mod:`learned.evaluate`). Both outputs are clipped to [0, 1], as
the papers evaluate. The table gives, averaged over the images: the largest absolute difference
between the two outputs, the PSNR of the bf16 output against the fp32 one (higher: closer), and
the change of the PSNR against the ground truth that bf16 causes (dB). The models' float32
boundaries (:mod:`learned.inference.precision`) keep FFTs, IAC, RKR and the losses in float32; everything
else (convolutions, matrix products) runs in bfloat16.

CUDA autocast uses the same dtype policy (bf16 where supported), so the figures carry over up to
kernel differences; they are not GPU measurements.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from benchmarks._report import emit, refuse_existing
from optics import cli

#: Columns of :func:`run`'s rows.
COLUMNS = ("model", "images", "max_abs_diff", "psnr_bf16_vs_fp32", "delta_psnr_db", "seconds")


def _load_model(name: str, checkpoint: Optional[Path], seed: int) -> torch.nn.Module:
    from learned import build_model
    from learned.deblur import load_any_checkpoint

    if checkpoint is not None:
        return load_any_checkpoint(name, checkpoint)
    torch.manual_seed(seed)
    return build_model(name)


def run(models: Sequence[str], *, size: int = 128, images: int = 4, seed: int = 0,
        checkpoints: Optional[Dict[str, Path]] = None) -> List[dict]:
    """One row per model (see :data:`COLUMNS`)."""
    from learned import metrics as M
    from learned.data import build_dataset
    from learned.evaluate import run_model

    dataset = build_dataset(f"synthetic:size={size}", "test")
    count = min(images, len(dataset))
    rows = []
    for name in models:
        model = _load_model(name, (checkpoints or {}).get(name), seed).eval()
        t0 = time.perf_counter()
        diffs, closeness, deltas = [], [], []
        for i in range(count):
            arrays = dataset.load(i)
            reference = run_model(model, name, arrays, device="cpu")
            mixed = run_model(model, name, arrays, device="cpu", amp=True)
            diffs.append(float(np.abs(mixed - reference).max()))
            closeness.append(M.psnr(mixed, reference))
            deltas.append(M.psnr(mixed, arrays["target"]) - M.psnr(reference, arrays["target"]))
        rows.append({"model": name, "images": count, "max_abs_diff": max(diffs),
                     "psnr_bf16_vs_fp32": float(np.mean(closeness)), "delta_psnr_db": float(np.mean(deltas)),
                     "seconds": time.perf_counter() - t0})
    return rows


def format_markdown(rows: Sequence[dict], title: str) -> str:
    lines = [f"# {title}", "", "| model | images | max abs diff | PSNR bf16 vs fp32 (dB) | delta PSNR to target (dB) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['images']} | {r['max_abs_diff']:.4f} | {r['psnr_bf16_vs_fp32']:.1f} | "
                     f"{r['delta_psnr_db']:+.3f} |")
    return "\n".join(lines) + "\n"


def _checkpoint_arg(text: str) -> tuple:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH; got {text!r}")
    return name, Path(path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from learned import MODELS

    parser = cli.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=sorted(MODELS), metavar="MODEL",
                        help="subset of learned.MODELS (default: all)")
    parser.add_argument("--size", type=int, default=128, help="synthetic test scene side (default 128)")
    parser.add_argument("--images", type=int, default=4, help="held-out scenes per model (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    parser.add_argument("--checkpoint", type=_checkpoint_arg, action="append", default=[], metavar="NAME=PATH",
                        help="trained weights for a model instead of the seeded initialisation (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here (refuses to overwrite)")
    args = parser.parse_args(argv)
    for flag, value in (("--size", args.size), ("--images", args.images), ("--threads", args.threads)):
        if value < 1:
            parser.error(f"{flag} must be >= 1; got {value}")
    refuse_existing(parser, args.out)
    torch.set_num_threads(args.threads)
    checkpoints = dict(args.checkpoint)
    rows = run(args.models, size=args.size, images=args.images, seed=args.seed, checkpoints=checkpoints)
    weights = "checkpoints " + ", ".join(f"{k}={v}" for k, v in checkpoints.items()) if checkpoints else \
        f"paper widths, torch.manual_seed({args.seed}) weights"
    title = (f"bf16 autocast vs fp32 on the CPU: {args.images} synthetic test scenes of {args.size} px, "
             f"{weights}, torch {torch.__version__}")
    emit(format_markdown(rows, title), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
