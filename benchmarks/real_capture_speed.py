"""Wall time and peak memory of ``python -m optics.dual_pixel.deblur`` on real Pixel 4 captures, process
against process: this checkout against another one (``--baseline``, e.g. commit a919800), and the whole
frame against the central crop (issue 33).

Each measurement is one fresh Python process running the command line as a user does (imports,
reading the views and the white sheets, deblurring, writing the 16-bit PNG). The implementations
alternate scene by scene and round by round, so load hits both; the ratio of each round's pair is
reported with its spread (:mod:`benchmarks._timing`). Peak memory is the process's ``ru_maxrss``
(``os.wait4``). Verdicts: ours at most ``--target`` x the baseline's time (issue 33: 0.4), the whole
frame at most ``--full-target`` x the central crop's (2.5).

Usage::

    git worktree add ../base_a919800 a919800
    python -m benchmarks.real_capture_speed --data DP_data_pixel_4 --baseline ../base_a919800 --out speed.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence


from ._report import emit, refuse_existing
from ._timing import quartiles, ratio_bounds, result_cell, verdict

ROOT = Path(__file__).resolve().parents[1]
#: Default scenes: two of the tuning set and two held out (Xin et al.'s numbering).
DEFAULT_SCENES = ("002", "004", "010", "015")


def run_once(checkout: Path, left: Path, right: Path, out: Path, extra: Sequence[str] = (),
             threads: Optional[int] = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one ``python -m optics.dual_pixel.deblur`` process run in ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "optics.dual_pixel.deblur", str(left), str(right), str(out), "--overwrite", *extra]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} (in {checkout}) failed with status {proc.returncode}:\n"
                           f"{stderr.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024.0


def _row(name: str, samples: list[float], rss: list[float]) -> str:
    med, q25, q75 = quartiles(samples)
    return f"| {name} | {med:.2f} | {q25:.2f}-{q75:.2f} | {len(samples)} | {max(rss):.0f} |"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_capture_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="Xin et al.'s DP_data_pixel_4 folder")
    p.add_argument("--scenes", nargs="+", default=list(DEFAULT_SCENES), help="scene numbers (default: %(default)s)")
    p.add_argument("--baseline", type=Path, help="another checkout of this project to time against (e.g. a919800)")
    p.add_argument("--repeats", type=int, default=2, help="rounds over the scenes (default 2)")
    p.add_argument("--threads", type=int, default=None, help="--threads of the command (default: every core)")
    p.add_argument("--full", action="store_true", help="also time --crop full (the whole 1512x2016 frame) with ours")
    p.add_argument("--target", type=float, default=0.4, help="ours / baseline time target (default 0.4)")
    p.add_argument("--full-target", type=float, default=2.5, help="whole frame / central crop target (default 2.5)")
    p.add_argument("--out", type=Path, help="markdown file to write (refused if it exists)")
    args = p.parse_args(argv)
    refuse_existing(p, args.out)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1; got {args.repeats}")
    for scene in args.scenes:
        for side in ("left", "right"):
            if not (args.data / f"{scene}_{side}.png").is_file():
                p.error(f"--data {str(args.data)!r} has no {scene}_{side}.png")
    if args.baseline is not None and not (args.baseline / "optics" / "dual_pixel").is_dir():
        p.error(f"--baseline {str(args.baseline)!r} is not a checkout of this project (no optics/dual_pixel)")

    impls = {"ours": ROOT}
    if args.baseline is not None:
        impls["baseline"] = args.baseline.resolve()
    runs = [(name, checkout, ()) for name, checkout in impls.items()]
    if args.full:
        runs.append(("ours --crop full", ROOT, ("--crop", "full")))
    seconds = {name: [] for name, _, _ in runs}
    rss = {name: [] for name, _, _ in runs}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for scene in args.scenes:
                order = runs if r % 2 == 0 else runs[::-1]
                for name, checkout, extra in order:
                    left, right = args.data / f"{scene}_left.png", args.data / f"{scene}_right.png"
                    t, m = run_once(checkout, left, right, Path(tmp) / f"{name.replace(' ', '_')}.png", extra,
                                    args.threads)
                    seconds[name].append(t)
                    rss[name].append(m)
                    print(f"round {r + 1} scene {scene} {name}: {t:.2f} s, {m:.0f} MiB", file=sys.stderr)
    load_end = os.getloadavg()[0]

    lines = [f"# `python -m optics.dual_pixel.deblur`, process against process (scenes {' '.join(args.scenes)}, "
             f"{args.repeats} round(s), threads {args.threads or 'every core'}, {os.cpu_count()} cores, 1-min load "
             f"{load_start:.1f} at the start and {load_end:.1f} at the end)", "",
             "| implementation | median s | IQR s | processes | peak RSS MiB |", "|---|---|---|---|---|"]
    lines += [_row(name, seconds[name], rss[name]) for name, _, _ in runs]
    lines += ["", "| ratio | median | IQR | target | verdict |", "|---|---|---|---|---|"]
    status = 0
    pairs = []
    if "baseline" in seconds:
        pairs.append(("ours / baseline", seconds["ours"], seconds["baseline"], args.target))
    if args.full:
        pairs.append(("whole frame / central crop (ours)", seconds["ours --crop full"], seconds["ours"], args.full_target))
    for name, a, b, target in pairs:
        med, q25, q75 = ratio_bounds(a, b)
        passed = verdict(q25, q75, target, quick=False, higher_is_better=False)
        status |= passed is not True
        lines.append(f"| {name} | {med:.3f} | {q25:.3f}-{q75:.3f} | <= {target:g} | {result_cell(passed)} |")
    emit("\n".join(lines), args.out)
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
