"""``python -m learned.summary``: parameters, MACs and latency (CPU, or CUDA) of every model in the zoo.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, transposed
convolutions and matrix products; a MAC is 2 FLOPs). Element-wise work (activations, biases, IAC's
per-pixel filtering, RKR's recursion, FFTs) is not counted, so these are *true convolution MACs*,
comparable across models but not identical to the papers' counters (see ``PAPER``).

``--device cuda`` times each model on the GPU with CUDA events: ``warmup`` untimed passes, then
the median of ``repeats`` (10) timed passes, in three modes: fp32 (TF32 off), TF32 (TF32 matrix
products and cuDNN convolutions on) and bf16 (``torch.autocast`` bfloat16, the models' float32
boundaries in :mod:`learned.precision`), with the peak GPU memory allocated over the three
(``torch.cuda.max_memory_allocated``). On the CPU the latency is timed as
``python -m benchmarks.inference`` times it: ``torch.no_grad()``, one untimed warm-up pass (the
first pass also creates oneDNN primitives and fills caches), then the median of ``--runs`` (3)
passes, with ``--threads`` torch threads. Both are stated in the header line, with the load
average: on a machine busy with other jobs, extra threads cost far more than they bring.
The paper figures and notes are for 720x1280 (K3DN's for 1680x1120); at another ``--size`` they
are left out. Sizes are HEIGHTxWIDTH (rows x columns, as NumPy shapes), at most :data:`MAX_PIXELS`.

``dp_refine`` (:data:`learned.PHYSICS_INPUT`) refines the estimate of the training-free
dual-pixel deblurring (:func:`optics.dual_pixel.deblur.dual_pixel_deblur`), which runs before
it: its CPU latency is the sum of both, stated as ``total (network + physics)``. The physics
step runs on the Pixel 4 frame (1008x1344) only, so at another ``--size`` the network alone is
timed and the cell says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict

import torch
from torch.utils.flop_counter import FlopCounterMode

from optics import cli

from . import DUAL_PIXEL, MODELS, PHYSICS_INPUT, build_model
from ._cli import add_threads_argument, apply_threads, check_device


@dataclass(frozen=True)
class PaperFigure:
    params: str
    macs: str
    note: str


#: What the papers (or their code) report, with the counting convention of each figure.
PAPER = {
    "kpac": PaperFigure("2.06 M", "197 G", "197 G is NRKNet's Table 1 figure; counting the 3-level model's convs gives ~113 G"),
    "kpac_2level": PaperFigure("-", "-", "the 2-level model gives ~192 G, probably what NRKNet's table counted"),
    "kpac_dual": PaperFigure("2.06 M", "-", "KPAC supp. Table 4"),
    "ifan": PaperFigure("10.48 M", "362.9 G", "ptflops: convs 361.51 + biases 0.87 + LeakyReLU 0.52 G; IAC excluded"),
    "ifan_dual": PaperFigure("-", "-", "dual-pixel input variant of the released code"),
    "nrknet": PaperFigure("6.1 M", "553 G", "thop / 2 at 1280x720; thop counts transposed convs 4x; true MACs ~867.7 G"),
    "k3dn_tiny": PaperFigure("3.0 M", "571 G", "K3DN Table 1 'flops' at 1120x1680 (read as MACs); ours there: 525 G (docs/k3dn_design.md)"),
    "k3dn_light": PaperFigure("5.0 M", "1033 G", "at 1120x1680; ours there: 925 G"),
    "k3dn_large": PaperFigure("15.9 M", "3352 G", "at 1120x1680; ours there: 3405 G"),
}


def is_dual_pixel(name: str) -> bool:
    return name in DUAL_PIXEL


def example_inputs(name: str, height: int, width: int, device="cpu"):
    shape = (1, 3, height, width)
    if name in PHYSICS_INPUT:  # left, right, physics estimate, defocus map
        return tuple(torch.rand(shape, device=device) for _ in range(3)) + (
            torch.rand((1, 1, height, width), device=device),)
    if is_dual_pixel(name):
        return (torch.rand(shape, device=device), torch.rand(shape, device=device))
    return (torch.rand(shape, device=device),)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, inputs) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2


def latency(model: torch.nn.Module, inputs, warmup: int = 1, runs: int = 3) -> float:
    """Median wall time (s) of ``runs`` forward passes under ``torch.no_grad()`` after ``warmup``
    untimed ones: the measurement of ``python -m benchmarks.inference`` (in this process)."""

    def run() -> None:
        with torch.no_grad():
            model(*inputs)

    def wall(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return median_time_ms(run, wall, warmup, runs)


#: CUDA timing modes: name -> (TF32 allowed, autocast dtype or None).
CUDA_MODES = {"fp32": (False, None), "tf32": (True, None), "bf16": (False, torch.bfloat16)}


def median_time_ms(run: Callable[[], None], timer: Callable[[Callable[[], None]], float], warmup: int = 3,
                   repeats: int = 10) -> float:
    """Median over ``repeats`` of ``timer(run)`` (milliseconds) after ``warmup`` untimed calls of ``run``."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1; got {warmup}, {repeats}")
    for _ in range(warmup):
        run()
    return statistics.median(timer(run) for _ in range(repeats))


def cuda_event_timer(run: Callable[[], None]) -> float:
    """Milliseconds of one call of ``run`` between two CUDA events (synchronised)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def cuda_latency(model: torch.nn.Module, inputs, warmup: int = 3, repeats: int = 10) -> Dict[str, float]:
    """Median CUDA-event latency (ms) per mode of :data:`CUDA_MODES` and ``'peak_gib'``, the peak GPU
    memory allocated (GiB, weights and inputs included) over them. ``model`` and ``inputs`` must be on
    the same CUDA device."""
    device = inputs[0].device
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    result: Dict[str, float] = {}
    try:
        for mode, (tf32, dtype) in CUDA_MODES.items():
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32

            def run(dtype=dtype) -> None:
                with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.bfloat16,
                                                            enabled=dtype is not None):
                    model(*inputs)

            result[mode] = median_time_ms(run, cuda_event_timer, warmup, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    result["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


#: The size (height, width) the paper figures and notes of :data:`PAPER` refer to.
PAPER_SIZE = (720, 1280)

#: Largest ``--size`` (pixels): 2160x3840 (4K UHD), 9 times 720x1280, where the zoo's models need
#: 0.9-2.2 GB to deblur one photo (docs/memory.md); beyond it a forward pass may not fit in memory.
MAX_PIXELS = 2160 * 3840

#: The frame (height, width) where the physics step of dp_refine runs (the Pixel 4 PSF field's).
PHYSICS_SIZE = (1008, 1344)


def physics_latency(height: int, width: int) -> float:
    """Wall time (s) of one physics step of dp_refine: :class:`learned.baseline.DualPixelBaseline`
    with the fitted Pixel 4 field on one (H, W) pair of planes (the Pixel 4 reader's planes are
    equal, so one is deblurred)."""
    import numpy as np

    from optics.dual_pixel.deblur import load_psfs

    from .baseline import DualPixelBaseline

    physics = DualPixelBaseline(load_psfs("pixel4"))
    rng = np.random.default_rng(0)
    views = {k: np.repeat(rng.random((height, width, 1), dtype=np.float32), 3, axis=2) for k in ("left", "right")}
    t0 = time.perf_counter()
    physics(views)
    return time.perf_counter() - t0


def _size(text: str):
    size = cli.parse_size(text)
    if size[0] * size[1] > MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH of at most {MAX_PIXELS:,} pixels (2160x3840); "
                                         f"got {text!r} ({size[0] * size[1]:,} pixels)")
    return size


def main(argv=None) -> int:
    parser = cli.ArgumentParser(prog="python -m learned.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="subset of learned.MODELS")
    parser.add_argument("--size", type=_size, default="720x1280",
                        help="HEIGHTxWIDTH (rows x columns) for MACs and latency (default 720x1280; at most 2160x3840)")
    parser.add_argument("--no-latency", action="store_true", help="skip the (slow) timing")
    parser.add_argument("--runs", type=int, default=3, help="timed CPU passes per model, after one warm-up (3)")
    add_threads_argument(parser)
    parser.add_argument("--device", default="cpu",
                        help="cpu (default: one timed pass) or cuda / cuda:N (CUDA events, median of 10, fp32 / TF32 / "
                        "bf16, peak GPU memory)")
    args = parser.parse_args(argv)
    device = check_device(args.device)
    threads = apply_threads(args.threads)
    if args.runs < 1:
        parser.error(f"argument --runs: expected >= 1; got {args.runs}")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    height, width = args.size
    cuda = device.type == "cuda"
    where = (f"{torch.cuda.get_device_name(device)} (CUDA events, median of 10 after 3 warm-up passes)" if cuda
             else f"{threads} CPU thread(s), load average {_load()}, no_grad, median of {args.runs} after 1 warm-up")
    print(f"Models at {height}x{width} (HEIGHTxWIDTH), torch {torch.__version__}, {where}\n", flush=True)
    at_paper_size = (height, width) == PAPER_SIZE
    if not at_paper_size:  # before the table: a line inside it would break the Markdown table
        print(f"(paper figures and notes are for {PAPER_SIZE[0]}x{PAPER_SIZE[1]}: left out at {height}x{width})\n")
    if any(m in PHYSICS_INPUT for m in args.models) and not args.no_latency:
        print("(dp_refine's latency: " + ("the network only; its physics step, optics.dual_pixel.deblur, runs on the "
              "CPU before it" if cuda else "the network plus its physics step, optics.dual_pixel.deblur")
              + f"; the physics step runs at {PHYSICS_SIZE[0]}x{PHYSICS_SIZE[1]} only)\n")
    timing = "latency fp32 / TF32 / bf16 | peak GPU memory" if cuda else "latency CPU"
    print(f"| model | params (ours) | params (paper) | MACs (ours, flop_counter) | paper figure | {timing} | note |")
    print("|---|---|---|---|---|---|---|" + ("---|" if cuda else ""))
    progress = cli.progress_bar(args.models, desc="summary", unit="model")
    for name in progress:
        progress.set_postfix_str(name, refresh=sys.stderr.isatty())
        torch.manual_seed(0)
        model = build_model(name).eval()
        inputs = example_inputs(name, height, width)
        macs = count_macs(model, inputs)
        if args.no_latency:
            lat = "- | -" if cuda else "-"
        elif cuda:
            t = cuda_latency(model.to(device), [x.to(device) for x in inputs])
            lat = f"{t['fp32']:.1f} / {t['tf32']:.1f} / {t['bf16']:.1f} ms | {t['peak_gib']:.2f} GiB"
        else:
            seconds = latency(model, inputs, runs=args.runs)
            lat = _with_physics(seconds, height, width) if name in PHYSICS_INPUT else f"{seconds:.1f} s"
        paper = PAPER.get(name, PaperFigure("-", "-", ""))
        if not at_paper_size:
            paper = PaperFigure(paper.params, "-", "")
        print(f"| {name} | {count_parameters(model):,} | {paper.params} | {macs / 1e9:.1f} G | {paper.macs} | {lat} | {paper.note} |", flush=True)
    print(f"results: the table above on stdout ({len(args.models)} models; redirect with > FILE to keep it)",
          file=sys.stderr)
    return 0


def _with_physics(network: float, height: int, width: int) -> str:
    """The latency cell of dp_refine: network plus physics step where the physics step runs."""
    if (height, width) != PHYSICS_SIZE:
        return f"{network:.1f} s network only (physics step: {PHYSICS_SIZE[0]}x{PHYSICS_SIZE[1]} only)"
    physics = physics_latency(height, width)
    return f"{network + physics:.1f} s ({network:.1f} network + {physics:.1f} physics)"


def _load() -> str:
    import os

    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
