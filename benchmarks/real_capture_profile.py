"""Where the time of ``python -m optics.dual_pixel.deblur`` goes, phase by phase, in this checkout and
another one (``--baseline``, e.g. commit a919800): the profile before and after issue 33.

Each checkout runs in a fresh process that imports ``optics.dual_pixel.deblur`` (timed: the imports),
wraps the phases' functions by name wherever the package holds them (reading the capture, the cost
volume, its aggregation, the layered deconvolution, encoding the PNG), then runs the command's
``main`` on the scene; wall seconds per phase, the worker threads included (a phase's time is the wall
time of its call). "other" is the rest of ``main`` (PSF placement, the map's post-processing, the
in-focus blend, writing). Usage::

    python -m benchmarks.real_capture_profile --data DP_data_pixel_4 --scene 004 --baseline ../base_a919800
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from ._report import emit, refuse_existing

ROOT = Path(__file__).resolve().parents[1]

#: Phase -> function names (the first one found in the checkout's optics.dual_pixel modules is timed).
PHASES = {
    "read the capture (views, white sheets)": ("read_dual_pixel_capture",),
    "cost volume": ("dual_pixel_cost_volume",),
    "aggregation": ("aggregate_cost",),
    "layered deconvolution": ("layered_deconvolution",),
    "PNG encoding": ("png_bytes",),
}

_DRIVER = r"""
import functools, importlib, json, sys, time
t0 = time.perf_counter()
import optics.dual_pixel.deblur as entry
imports = time.perf_counter() - t0
phases = json.loads(sys.argv[1])
spent = {name: 0.0 for name in phases}
for module in ["optics.image_io", "optics.dual_pixel.capture", "optics.dual_pixel.defocus_map",
               "optics.dual_pixel.pipeline", "optics.dual_pixel.deconvolution", "optics.dual_pixel.deblur"]:
    try:
        importlib.import_module(module)
    except ImportError:
        pass
for phase, names in phases.items():
    for fname in names:
        holders = [m for k, m in list(sys.modules.items()) if k.startswith("optics") and m is not None
                   and callable(getattr(m, fname, None))]
        if not holders:
            continue
        original = getattr(holders[0], fname)

        def timed(*a, __f=original, __p=phase, **k):
            t = time.perf_counter()
            try:
                return __f(*a, **k)
            finally:
                spent[__p] += time.perf_counter() - t

        for m in holders:
            if getattr(m, fname) is original:
                setattr(m, fname, timed)
        break
t1 = time.perf_counter()
status = entry.main(sys.argv[2:])
main = time.perf_counter() - t1
print(json.dumps(dict(status=status, imports=imports, main=main, phases=spent)))
"""


def profile_once(checkout: Path, left: Path, right: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-c", _DRIVER, json.dumps(PHASES), str(left), str(right), str(out), "--overwrite"]
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"profiling in {checkout} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_capture_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    p.add_argument("--scene", default="004", help="scene number (default 004)")
    p.add_argument("--baseline", type=Path, help="another checkout of this project (e.g. a919800)")
    p.add_argument("--repeats", type=int, default=2, help="processes per checkout; the median is reported (default 2)")
    p.add_argument("--out", type=Path, help="markdown file to write (refused if it exists)")
    args = p.parse_args(argv)
    refuse_existing(p, args.out)
    left, right = args.data / f"{args.scene}_left.png", args.data / f"{args.scene}_right.png"
    for view in (left, right):
        if not view.is_file():
            p.error(f"--data {str(args.data)!r} has no {view.name}")
    checkouts = {"this checkout": ROOT}
    if args.baseline is not None:
        checkouts = {f"baseline ({args.baseline.name})": args.baseline.resolve(), **checkouts}
    results: dict = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, args.repeats)):
            for name, checkout in checkouts.items():
                results[name].append(profile_once(checkout, left, right, Path(tmp) / "out.png"))

    def median(values):
        values = sorted(values)
        return values[len(values) // 2] if len(values) % 2 else 0.5 * (values[len(values) // 2 - 1] + values[len(values) // 2])

    rows = ["imports of optics.dual_pixel.deblur", *PHASES, "other (placement, post-processing, writing)",
            "imports + main"]
    table = {}
    for name, runs in results.items():
        col = {"imports of optics.dual_pixel.deblur": median([r["imports"] for r in runs])}
        for phase in PHASES:
            col[phase] = median([r["phases"][phase] for r in runs])
        col["other (placement, post-processing, writing)"] = median(
            [r["main"] - sum(r["phases"].values()) for r in runs])
        col["imports + main"] = median([r["imports"] + r["main"] for r in runs])
        table[name] = col
    lines = [f"# Phases of `python -m optics.dual_pixel.deblur` on scene {args.scene} (seconds, median of "
             f"{max(1, args.repeats)} process(es); {os.cpu_count()} cores, 1-min load {os.getloadavg()[0]:.1f} at "
             "the end)", "", "| phase | " + " | ".join(table) + " |", "|---|" + "---|" * len(table)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(f"{table[name][row]:.2f}" for name in table) + " |")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
