"""Benchmarks of the optics operators: ``python -m benchmarks.optics [--quick] [--markdown PATH]``.

Prints one table (and optionally writes it, with the machine, to a markdown file):

1. ``optics.rkr_blur`` (NRKNet Eq. 4-5, numba separable recursion) against the direct per-pixel
   operator ``optics.spatially_varying_blur`` (numba) with the same kernels
   ``K_p = sum_j Gamma_j(p) A_j``, at S = 39, J = 20 on a 1024 x 1024 RGB float32 image
   (``--quick``: 256 x 256). Target >= 10x (the paper's cost ratio 39^2 : 6J is 12.7x).
2. The numba kernels against their naive NumPy twins and against the vectorised torch (CPU) path
   of the same operators, on small images (the naive twins are plain Python loops).
3. Rendering (``benchmarks.render``, another module) when it is present.

Timings are wall-clock, repeated with the contenders interleaved: each row shows the median and
the spread (interquartile range) and is decided only by a margin larger than that spread
(:mod:`benchmarks._timing`: PASS, FAIL or UNDECIDED). ``--quick`` rows are indicative (no verdict,
exit status 0); a full run exits 1 when a row fails or is undecided. The machine's load is printed.
Nothing here is a test: speed is never asserted in the test suite.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

import numpy as np

from optics import cli
from optics.atomic import atomic_write_bytes

from ._timing import QUICK_NOTE, exit_status, interleaved, ratio_bounds, result_cell, spread_text, times, verdict

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


def _row(benchmark: str, measured: str, target: str, passed: bool | None, notes: str = "") -> dict:
    return dict(benchmark=benchmark, measured=measured, target=target, passed=passed, notes=notes)


def bench_rkr_vs_direct(quick: bool, repeats: int = 5) -> list[dict]:
    """rkr_blur against the numba per-pixel operator at S = 39, J = 20 (same kernels).

    The direct operator is streamed in bands of 64 rows
    (:func:`validation.recursive_kernels.direct_rkr_blur_banded`: 0.4 GB of kernels at a time
    instead of the 6.4 GB field of 1024 x 1024); only its per-pixel gather is timed.
    """
    import optics
    from validation.recursive_kernels import direct_rkr_blur_banded

    n_atoms, s = 20, 39
    side = 256 if quick else 1024
    note = "--quick size" if quick else ""
    rng = np.random.default_rng(0)
    image = rng.random((side, side, 3), dtype=np.float32)
    gamma = rng.random((n_atoms, side, side), dtype=np.float32) / n_atoms
    taps = np.tile(BINOMIAL.astype(np.float32), (n_atoms - 1, 1))
    atoms = optics.rkr_atoms(taps)
    optics.rkr_blur(image[:32, :32], np.ascontiguousarray(gamma[:, :32, :32]), taps)  # compile
    direct_rkr_blur_banded(image[:8, :8], np.ascontiguousarray(gamma[:, :8, :8]), atoms)  # compile
    t_rkr, t_direct = [], []
    for _ in range(repeats):  # interleaved rounds: a burst of load hits both
        t_rkr += times(lambda: optics.rkr_blur(image, gamma, taps, boundary="zero"), 1)
        direct, seconds = direct_rkr_blur_banded(image, gamma, atoms)
        t_direct.append(seconds)
    fast = optics.rkr_blur(image, gamma, taps, boundary="zero")
    rel = float(np.max(np.abs(direct - fast)) / np.max(np.abs(direct)))
    median, low, high = ratio_bounds(t_direct, t_rkr)
    macs = side * side * 3 * s * s
    return [
        _row(f"rkr_blur, J=20, {side}x{side} RGB float32", spread_text(t_rkr), "-", None,
             f"6(J-1)+J = 134 multiply-adds per pixel and channel; {note}".strip("; ")),
        _row(f"direct per-pixel operator (numba, 64-row bands), S=39, {side}x{side} RGB float32",
             spread_text(t_direct, digits=0), "-", None,
             f"{macs / np.median(t_direct) / 1e9:.2f} G multiply-adds/s; same output as rkr_blur to {rel:.1e} (relative)"),
        _row("speed-up rkr_blur vs direct, S=39, J=20", f"median {median:.1f}x (IQR {low:.1f}-{high:.1f}x)",
             ">= 10x (paper cost ratio 39^2 : 6J = 12.7x)", verdict(low, high, 10.0, quick), note),
    ]


def _faster(name: str, fast: list[float], slow: dict[str, list[float]], quick: bool) -> dict:
    """Row 'numba faster than each of ``slow``' decided on the ratio ranges (target ratio 1)."""
    bounds = {k: ratio_bounds(v, fast) for k, v in slow.items()}
    measured = "; ".join([f"numba {spread_text(fast, digits=2)}"] + [f"{k} {spread_text(v, digits=2)}" for k, v in slow.items()])
    low = min(b[1] for b in bounds.values())
    high = min(b[2] for b in bounds.values())
    notes = ", ".join(f"{b[0]:.1f}x vs {k} (IQR {b[1]:.1f}-{b[2]:.1f}x)" for k, b in bounds.items())
    target = "numba faster than " + (" and ".join(slow) if len(slow) > 1 else next(iter(slow)))
    return _row(name, measured, target, verdict(low, high, 1.0, quick), notes)


def bench_twins(quick: bool, repeats: int = 7) -> list[dict]:
    """numba kernels against their naive NumPy twins and the vectorised torch CPU path.

    Each contender is timed ``repeats`` times, interleaved (the naive Python loops once: they are
    hundreds of times slower)."""
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
    ti, tk = torch.tensor(image), torch.tensor(kernels)
    counts = {"numba": repeats, "naive": 1, "torch CPU": repeats}
    t = interleaved({"numba": lambda: sv.spatially_varying_numba(image, kernels),
                     "naive": lambda: sv.spatially_varying_naive(image, kernels),
                     "torch CPU": lambda: optics.spatially_varying_blur(ti, tk)}, counts)
    rows.append(_faster(f"spatially-varying forward, {side}x{side}x3, S={s}, float64", t.pop("numba"), t, quick))
    t = interleaved({"numba": lambda: sv.spatially_varying_adjoint_numba(image, kernels),
                     "naive": lambda: sv.spatially_varying_adjoint_naive(image, kernels),
                     "torch CPU": lambda: optics.spatially_varying_blur_adjoint(ti, tk)}, counts)
    rows.append(_faster(f"spatially-varying adjoint, {side}x{side}x3, S={s}, float64", t.pop("numba"), t, quick))

    n_atoms = 20
    x = rng.random((3, side, side))
    gamma = rng.random((n_atoms, 1, side, side))
    taps = np.tile(BINOMIAL, (n_atoms - 1, 1, 1))
    sr.recursive_blur_numba(x[:, :4, :4], np.ascontiguousarray(gamma[:, :, :4, :4]), taps, "reflect")
    sr.recursive_blur_adjoint_numba(x[:, :4, :4], np.ascontiguousarray(gamma[:, :, :4, :4]), taps, "reflect")
    tx = torch.tensor(np.moveaxis(x, 0, -1).copy())
    tg = torch.tensor(gamma[:, 0].copy())
    tt = torch.tensor(taps[:, 0].copy())
    t = interleaved({"numba": lambda: sr.recursive_blur_numba(x, gamma, taps, "reflect"),
                     "naive": lambda: sr.recursive_blur_naive(x, gamma, taps, "reflect"),
                     "torch CPU": lambda: optics.rkr_blur(tx, tg, tt, boundary="reflect")}, counts)
    rows.append(_faster(f"separable recursion (rkr_blur), {side}x{side}x3, J={n_atoms}, float64", t.pop("numba"), t, quick))
    # a realistic size for the recursion: numba against the vectorised torch path only
    big = 256 if quick else 512
    xb = rng.random((3, big, big))
    gb = rng.random((n_atoms, 1, big, big))
    txb = torch.tensor(np.moveaxis(xb, 0, -1).copy())
    tgb = torch.tensor(gb[:, 0].copy())
    t = interleaved({"numba": lambda: sr.recursive_blur_numba(xb, gb, taps, "reflect"),
                     "torch CPU": lambda: optics.rkr_blur(txb, tgb, tt, boundary="reflect")}, repeats)
    rows.append(_faster(f"separable recursion (rkr_blur), {big}x{big}x3, J={n_atoms}, float64", t.pop("numba"), t, quick))
    # the naive adjoint builds a dense matrix: time it on a tiny image only
    xs, gs = x[:, :12, :12].copy(), gamma[:, :, :12, :12].copy()
    t = interleaved({"numba": lambda: sr.recursive_blur_adjoint_numba(xs, gs, taps, "reflect"),
                     "naive (dense transpose)": lambda: sr.recursive_blur_adjoint_naive(xs, gs, taps, "reflect")},
                    {"numba": repeats, "naive (dense transpose)": 1})
    rows.append(_faster(f"separable recursion adjoint, 12x12x3, J={n_atoms}, float64", t.pop("numba"), t, quick))
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
        result = result_cell(r["passed"])
        cells = [str(r[k]).replace("|", "\\|") for k in ("benchmark", "measured", "target")]
        notes = str(r["notes"]).replace("|", "\\|")
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]} | {result} | {notes} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.optics", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; rows are indicative only (smoke run)")
    parser.add_argument("--no-render", action="store_true", help="skip benchmarks.render")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table and machine to this file")
    cli.add_overwrite_argument(parser, "an existing --markdown file")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        cli.check_output_files([(args.markdown, [])], overwrite=args.overwrite, suffixes=(".md",), what="--markdown")
    before = machine()
    rows = run(args.quick, include_render=not args.no_render)
    table = format_table(rows)
    header = f"Machine: {before} (load at start); {machine().split('; ')[-1]} at the end.\n"
    if args.quick:
        header += f"\n{QUICK_NOTE}\n"
    print(header)
    print(table)
    status = exit_status(rows, args.quick)
    if args.markdown is not None:
        command = "python -m benchmarks.optics" + (" --quick" if args.quick else "") + (" --no-render" if args.no_render else "")
        atomic_write_bytes(args.markdown, f"Command: `{command}`\n\n{header}\n{table}\n".encode())
        print(f"results: {args.markdown}", file=sys.stderr)
    if status:
        print("error: a target was missed or not shown beyond the run-to-run spread (rows FAIL / UNDECIDED above)",
              file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
