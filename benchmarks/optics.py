"""Benchmarks of the optics operators: ``python -m benchmarks.optics [--quick] [--markdown PATH]``.

Prints one table (and optionally writes it, with the machine, to a markdown file):

1. ``optics.rkr_blur`` (NRKNet Eq. 4-5, numba separable recursion) against the direct per-pixel
   operator ``optics.spatially_varying_blur`` (numba) with the same kernels
   ``K_p = sum_j Gamma_j(p) A_j``, at S = 39, J = 20 on a 1024 x 1024 RGB float32 image
   (``--quick``: 256 x 256). Target >= 10x (the paper's cost ratio 39^2 : 6J is 12.7x).
2. The numba kernels against their naive NumPy twins and against the vectorised torch (CPU) path
   of the same operators, on small images (the naive twins are plain Python loops).
3. Rendering (``benchmarks.render``, another module) when it is present.

Timings are wall-clock, best of ``repeats``; they depend on the machine's load, which is printed.
Nothing here is a test: speed is never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from optics.atomic import atomic_write_bytes
from validation._report import available_memory_bytes

BINOMIAL = np.array([0.25, 0.5, 0.25])


def machine() -> str:
    """CPU model, core count, GPU presence and load average, in words."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from optics._backend import cupy_available

    gpu = "CUDA GPU via CuPy" if cupy_available() else "no GPU"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    import numba

    return f"{model}, {os.cpu_count()} cores, {gpu}; numba {numba.__version__} with {numba.get_num_threads()} threads; load average {load}"


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _row(benchmark: str, measured: str, target: str, passed: bool | None, notes: str = "") -> dict:
    return dict(benchmark=benchmark, measured=measured, target=target, passed=passed, notes=notes)


def bench_rkr_vs_direct(quick: bool, repeats: int = 3) -> list[dict]:
    """rkr_blur against the numba per-pixel operator at S = 39, J = 20 (same kernels)."""
    import optics

    n_atoms, s = 20, 39
    side = 256 if quick else 1024
    note = "--quick size" if quick else ""
    if not quick and available_memory_bytes() < 12 * 2**30:
        side, note = 512, "512 x 512: less than 12 GiB free for the 6.4 GB kernel field of 1024 x 1024"
    rng = np.random.default_rng(0)
    image = rng.random((side, side, 3), dtype=np.float32)
    gamma = rng.random((n_atoms, side, side), dtype=np.float32) / n_atoms
    taps = np.tile(BINOMIAL.astype(np.float32), (n_atoms - 1, 1))
    atoms = optics.rkr_atoms(taps)
    optics.rkr_blur(image[:32, :32], np.ascontiguousarray(gamma[:, :32, :32]), taps)  # compile
    t_rkr = _best_time(lambda: optics.rkr_blur(image, gamma, taps, boundary="zero"), repeats + 2)
    fast = optics.rkr_blur(image, gamma, taps, boundary="zero")
    field = optics.rkr_kernel_field(gamma, atoms)
    optics.spatially_varying_blur(image[:8, :8], np.ascontiguousarray(field[:8, :8]), "zero")  # compile
    t_direct = _best_time(functools.partial(optics.spatially_varying_blur, image, field, "zero"), repeats)
    direct = optics.spatially_varying_blur(image, field, "zero")
    del field
    rel = float(np.max(np.abs(direct - fast)) / np.max(np.abs(direct)))
    speedup = t_direct / t_rkr
    macs = side * side * 3 * s * s
    return [
        _row(f"rkr_blur, J=20, {side}x{side} RGB float32", f"{t_rkr * 1e3:.1f} ms", "-", None,
             f"6(J-1)+J = 134 multiply-adds per pixel and channel; {note}".strip("; ")),
        _row(f"direct per-pixel operator (numba), S=39, {side}x{side} RGB float32", f"{t_direct * 1e3:.0f} ms",
             "-", None, f"{macs / t_direct / 1e9:.2f} G multiply-adds/s; same output as rkr_blur to {rel:.1e} (relative)"),
        _row("speed-up rkr_blur vs direct, S=39, J=20", f"{speedup:.1f}x", ">= 10x (paper cost ratio 39^2 : 6J = 12.7x)",
             speedup >= 10, note),
    ]


def bench_twins(quick: bool, repeats: int = 3) -> list[dict]:
    """numba kernels against their naive NumPy twins and the vectorised torch CPU path."""
    import torch

    import optics
    from kernels import separable_recursion as sr
    from kernels import spatially_varying as sv

    rng = np.random.default_rng(1)
    rows = []
    side, s = (32, 9) if quick else (64, 9)
    image = rng.random((side, side, 3))
    kernels = rng.random((side, side, s, s))
    sv.spatially_varying_numba(image[:4, :4], kernels[:4, :4].copy())
    sv.spatially_varying_adjoint_numba(image[:4, :4], kernels[:4, :4].copy())
    t_numba = _best_time(lambda: sv.spatially_varying_numba(image, kernels), repeats)
    t_naive = _best_time(lambda: sv.spatially_varying_naive(image, kernels), 1)
    ti, tk = torch.tensor(image), torch.tensor(kernels)
    t_torch = _best_time(lambda: optics.spatially_varying_blur(ti, tk), repeats)
    rows.append(_row(f"spatially-varying forward, {side}x{side}x3, S={s}, float64",
                     f"numba {t_numba * 1e3:.2f} ms; naive {t_naive * 1e3:.0f} ms; torch CPU {t_torch * 1e3:.1f} ms",
                     "numba faster than both", t_numba < min(t_naive, t_torch),
                     f"{t_naive / t_numba:.0f}x vs naive, {t_torch / t_numba:.1f}x vs torch"))
    t_numba = _best_time(lambda: sv.spatially_varying_adjoint_numba(image, kernels), repeats)
    t_naive = _best_time(lambda: sv.spatially_varying_adjoint_naive(image, kernels), 1)
    t_torch = _best_time(lambda: optics.spatially_varying_blur_adjoint(ti, tk), repeats)
    rows.append(_row(f"spatially-varying adjoint, {side}x{side}x3, S={s}, float64",
                     f"numba {t_numba * 1e3:.2f} ms; naive {t_naive * 1e3:.0f} ms; torch CPU {t_torch * 1e3:.1f} ms",
                     "numba faster than both", t_numba < min(t_naive, t_torch),
                     f"{t_naive / t_numba:.0f}x vs naive, {t_torch / t_numba:.1f}x vs torch"))

    n_atoms = 20
    x = rng.random((3, side, side))
    gamma = rng.random((n_atoms, 1, side, side))
    taps = np.tile(BINOMIAL, (n_atoms - 1, 1, 1))
    sr.recursive_blur_numba(x[:, :4, :4], np.ascontiguousarray(gamma[:, :, :4, :4]), taps, "reflect")
    sr.recursive_blur_adjoint_numba(x[:, :4, :4], np.ascontiguousarray(gamma[:, :, :4, :4]), taps, "reflect")
    t_numba = _best_time(lambda: sr.recursive_blur_numba(x, gamma, taps, "reflect"), repeats)
    t_naive = _best_time(lambda: sr.recursive_blur_naive(x, gamma, taps, "reflect"), 1)
    tx = torch.tensor(np.moveaxis(x, 0, -1).copy())
    tg = torch.tensor(gamma[:, 0].copy())
    tt = torch.tensor(taps[:, 0].copy())
    t_torch = _best_time(lambda: optics.rkr_blur(tx, tg, tt, boundary="reflect"), repeats)
    rows.append(_row(f"separable recursion (rkr_blur), {side}x{side}x3, J={n_atoms}, float64",
                     f"numba {t_numba * 1e3:.2f} ms; naive {t_naive * 1e3:.0f} ms; torch CPU {t_torch * 1e3:.1f} ms",
                     "numba faster than both", t_numba < min(t_naive, t_torch),
                     f"{t_naive / t_numba:.0f}x vs naive, {t_torch / t_numba:.1f}x vs torch"))
    # a realistic size for the recursion: numba against the vectorised torch path only
    big = 256 if quick else 512
    xb = rng.random((3, big, big))
    gb = rng.random((n_atoms, 1, big, big))
    t_numba = _best_time(lambda: sr.recursive_blur_numba(xb, gb, taps, "reflect"), repeats)
    txb = torch.tensor(np.moveaxis(xb, 0, -1).copy())
    tgb = torch.tensor(gb[:, 0].copy())
    t_torch = _best_time(lambda: optics.rkr_blur(txb, tgb, tt, boundary="reflect"), repeats)
    rows.append(_row(f"separable recursion (rkr_blur), {big}x{big}x3, J={n_atoms}, float64",
                     f"numba {t_numba * 1e3:.1f} ms; torch CPU {t_torch * 1e3:.1f} ms",
                     "numba faster", t_numba < t_torch, f"{t_torch / t_numba:.1f}x vs torch"))
    # the naive adjoint builds a dense matrix: time it on a tiny image only
    xs, gs = x[:, :12, :12].copy(), gamma[:, :, :12, :12].copy()
    t_numba = _best_time(lambda: sr.recursive_blur_adjoint_numba(xs, gs, taps, "reflect"), repeats)
    t_naive = _best_time(lambda: sr.recursive_blur_adjoint_naive(xs, gs, taps, "reflect"), 1)
    rows.append(_row(f"separable recursion adjoint, 12x12x3, J={n_atoms}, float64",
                     f"numba {t_numba * 1e3:.3f} ms; naive (dense transpose) {t_naive * 1e3:.0f} ms",
                     "numba faster", t_numba < t_naive, f"{t_naive / t_numba:.0f}x"))
    return rows


def bench_render(quick: bool) -> list[dict]:
    """Rows of ``benchmarks.render`` (rendering time) when that module exists."""
    try:
        render = importlib.import_module("benchmarks.render")
    except ImportError as err:
        return [_row("rendering (benchmarks.render)", "not available", "-", None, f"module missing: {err}")]
    rows = render.run(quick)
    return [_row(r["benchmark"], r["measured"], r["target"], r["passed"], r.get("notes", "")) for r in rows]


def run(quick: bool = False, include_render: bool = True) -> list[dict]:
    """All benchmark rows."""
    rows = bench_rkr_vs_direct(quick)
    rows += bench_twins(quick)
    if include_render:
        rows += bench_render(quick)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| benchmark | measured | target | result | notes |", "|---|---|---|---|---|"]
    for r in rows:
        result = "-" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
        cells = [str(r[k]).replace("|", "\\|") for k in ("benchmark", "measured", "target")]
        notes = str(r["notes"]).replace("|", "\\|")
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]} | {result} | {notes} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.optics", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--no-render", action="store_true", help="skip benchmarks.render")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table and machine to this file")
    args = parser.parse_args(argv)
    before = machine()
    rows = run(args.quick, include_render=not args.no_render)
    table = format_table(rows)
    header = f"Machine: {before} (load at start); {machine().split('; ')[-1]} at the end.\n"
    print(header)
    print(table)
    if args.markdown is not None:
        command = "python -m benchmarks.optics" + (" --quick" if args.quick else "") + (" --no-render" if args.no_render else "")
        atomic_write_bytes(args.markdown, f"Command: `{command}`\n\n{header}\n{table}\n".encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
