"""Benchmark: held-out gain against wall time of a training preset, per family and seed.

``python -m benchmarks.training --preset cpu-smoke --seeds 0 1 2 --threads 1 --runs DIR --out TABLE.md``

Each (seed, model) trains with :func:`learned.train.train` and the preset (``cpu-smoke`` by
default) into ``DIR/MODEL-seedS`` and is scored on the held-out synthetic test split at the end
(``eval.json``: PSNR of the blurred input and of the output, per scene source). Runs are done
seed by seed, so an interrupted study still holds complete seeds; a run whose ``eval.json``
exists is not trained again (its recorded wall time is reused), so a study can be continued, and
``--collect`` only tabulates the runs already in ``DIR``. The table (markdown, printed, and
written to ``--out``, never overwriting) has one row per run (steps, wall time, input and output
PSNR, gain, gain per scene source) and one summary row per model: the mean gain over its seeds and
whether it meets the preset's target (``cpu-smoke``: gain > 0 dB; ``gpu-smoke``: >= +1 dB within
5 minutes). The machine line records the device, torch threads, process niceness and load.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from benchmarks._report import emit, refuse_existing
from optics import cli

#: Target gain (dB) and wall-time budget (s, None: none) of each preset.
TARGETS = {"cpu-smoke": (0.0, None), "gpu-smoke": (1.0, 300.0), "paper": (None, None)}
DEFAULT_MODELS = ("kpac", "ifan", "nrknet", "k3dn_tiny")
RESULT_NAME = "benchmark.json"


def run_one(model: str, seed: int, preset: str, runs: Path, device: str = "auto", steps: Optional[int] = None) -> dict:
    """Train (or reuse) ``runs/MODEL-seedS`` and return its row."""
    from learned.train import EVAL_NAME, make_config, train

    out = runs / f"{model}-seed{seed}"
    record = out / RESULT_NAME
    if record.is_file():
        return json.loads(record.read_text())
    if (out / "checkpoint.pt").exists():
        raise FileExistsError(f"{str(out)!r} holds an unfinished run (no {RESULT_NAME}); remove it or choose another --runs")
    config = make_config(model, preset=preset, seed=seed, out=str(out), device=device, progress=False, steps=steps)
    if config.eval_images < 1:
        config = make_config(model, preset=preset, seed=seed, out=str(out), device=device, progress=False,
                             steps=steps, eval_images=16)
    t0 = time.perf_counter()
    train(config)
    wall = time.perf_counter() - t0
    evaluation = json.loads((out / EVAL_NAME).read_text())
    row = {"model": model, "seed": seed, "preset": preset, "steps": config.recipe.steps, "wall_s": round(wall, 1),
           "images": evaluation["images"], "input_psnr": evaluation["input_psnr"],
           "output_psnr": evaluation["output_psnr"], "gain_db": evaluation["gain_db"],
           "gain_db_by_source": evaluation.get("gain_db_by_source", {}), "load_after": _load()}
    from learned.data.io import atomic_write_bytes

    atomic_write_bytes(record, json.dumps(row, indent=2).encode())
    return row


def collect(runs: Path, models: Sequence[str], seeds: Sequence[int]) -> List[dict]:
    """Rows of the finished runs in ``runs`` (seed-major order)."""
    rows = []
    for seed in seeds:
        for model in models:
            record = runs / f"{model}-seed{seed}" / RESULT_NAME
            if record.is_file():
                rows.append(json.loads(record.read_text()))
    return rows


def summarise(rows: Sequence[dict], preset: str, seeds: Sequence[int]) -> List[dict]:
    """Per model: seeds done, mean gain, mean wall time, and whether the preset's target is met."""
    target, budget = TARGETS.get(preset, (None, None))
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        gain = sum(r["gain_db"] for r in mine) / len(mine)
        wall = sum(r["wall_s"] for r in mine) / len(mine)
        if target is None:
            verdict = "-"
        elif len(mine) < len(seeds):
            verdict = f"incomplete ({len(mine)} of {len(seeds)} seeds)"
        else:
            met = gain > target if preset == "cpu-smoke" else gain >= target
            if budget is not None:
                met = met and wall <= budget
            verdict = "PASS" if met else "FAIL"
        out.append({"model": model, "seeds": len(mine), "mean_gain_db": gain, "mean_wall_s": wall, "target": verdict})
    return out


def format_markdown(rows: Sequence[dict], summary: Sequence[dict], title: str) -> str:
    lines = [f"# {title}", "", "| model | seed | steps | wall time | PSNR input -> output | gain (dB) | per source (dB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        sources = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(r.get("gain_db_by_source", {}).items()))
        lines.append(f"| {r['model']} | {r['seed']} | {r['steps']} | {_minutes(r['wall_s'])} | "
                     f"{r['input_psnr']:.2f} -> {r['output_psnr']:.2f} | {r['gain_db']:+.2f} | {sources} |")
    lines += ["", "| model | seeds | mean gain (dB) | mean wall time | target |", "|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['model']} | {s['seeds']} | {s['mean_gain_db']:+.2f} | {_minutes(s['mean_wall_s'])} | "
                     f"{s['target']} |")
    return "\n".join(lines) + "\n"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60))} s" if seconds >= 60 else f"{seconds:.0f} s"


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine(device: str) -> str:
    import torch

    name = device
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    nice = os.nice(0) if hasattr(os, "nice") else "n/a"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, device {name}, torch "
            f"{torch.__version__} with {torch.get_num_threads()} thread(s), nice {nice}, load average {_load()}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    from learned import MODELS
    from learned.training.recipes import PRESETS

    parser = cli.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-smoke", choices=sorted(PRESETS), help="training preset (cpu-smoke)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=sorted(MODELS), metavar="MODEL",
                        help=f"models to train (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the runs (MODEL-seedS inside)")
    parser.add_argument("--out", type=Path, help="write the markdown table here (refuses to overwrite)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps (a shorter study)")
    parser.add_argument("--collect", action="store_true", help="only tabulate the finished runs in --runs")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    refuse_existing(parser, args.out)
    import logging

    import torch

    if args.device != "auto":
        from learned._cli import check_device

        check_device(args.device)  # before any run: one line, exit 2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = machine(args.device)
    if not args.collect:
        for seed in args.seeds:
            for model in args.models:
                try:
                    row = run_one(model, seed, args.preset, args.runs, args.device, args.steps)
                except FileExistsError as err:
                    print(f"error: {err}", file=sys.stderr)
                    return 2
                print(f"{model} seed {seed}: {row['gain_db']:+.2f} dB in {_minutes(row['wall_s'])}", file=sys.stderr,
                      flush=True)
    rows = collect(args.runs, args.models, args.seeds)
    if not rows:
        print(f"error: no finished runs in {str(args.runs)!r}", file=sys.stderr)
        return 2
    if args.collect:
        title = (f"{args.preset} on the held-out synthetic split; runs collected from {str(args.runs)!r} "
                 f"(the load average after each run is in its {RESULT_NAME})")
    else:
        title = f"{args.preset} on the held-out synthetic split; machine at start: {started}; at the end: load {_load()}"
    emit(format_markdown(rows, summarise(rows, args.preset, args.seeds), title), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
