"""CPU inference benchmark of the learned models, side by side with the authors' code.

``python -m benchmarks.inference --out PATH [--size HxW] [--threads 1 2] [--runs N] [--repeats R]
[--official-ifan DIR] [--official-nrknet DIR] [--quick] [--profile]``

Every measurement runs in a fresh Python process (``python -m benchmarks.inference --worker``):
it builds the network, runs ``--warmup`` untimed forward passes and ``--runs`` timed ones on one
fixed input (1, 3, H, W) under ``torch.no_grad()`` with ``torch.set_num_threads(t)`` and
``OMP_NUM_THREADS=t``, and reports the wall times and its peak resident memory
(``ru_maxrss``, which includes the model and the warm-up). ``--repeats`` such processes run per
implementation, alternating ours and the authors' (ABBA...), so that a change of machine load
affects both; the table gives the median and the range of all timed runs and the ratio of the
medians.

The authors' networks are never downloaded or copied by this project. To compare with them, get a
checkout of their repositories yourself and pass its folder:

.. code-block:: bash

    git clone https://github.com/codeslake/IFAN && git -C IFAN checkout 66bf136
    git clone https://github.com/csZcWu/NRKNet && git -C NRKNet checkout 90fad36
    python -m benchmarks.inference --official-ifan IFAN --official-nrknet NRKNet --out table.md

From ``IFAN`` only ``models/archs/IFAN.py``, ``models/IAC.py``, ``models/nn_common.py`` and
``models/utils.py`` are imported (``Network`` with the ``config_IFAN`` values N = 17, ch = 32,
ks = Fs = 3, res_num = 2); from ``NRKNet``, ``NRKNet.py``, ``layers.py``, ``symcm.py`` and
``config.py`` (their ``.cuda()`` calls are made no-ops inside the worker process, nothing else is
changed). Both implementations load the same weights: the checkpoint given with
``--ifan-checkpoint`` / ``--nrknet-checkpoint`` (the authors' ``.pytorch`` / ``.pth`` format), or
else a seeded random initialisation of ours written to a temporary file in that format. The
authors' NRKNet is fed the BGR input it was trained on and its output is flipped back before the
output difference is taken. KPAC and K3DN have no PyTorch code from their authors; their rows
give our time and convolution MACs per second (MACs from ``torch.utils.flop_counter``, see
``learned.summary``).

Nothing here is a test: the ratios depend on the machine and its load, which the table states.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

MODELS = ("kpac", "ifan", "nrknet", "k3dn_tiny")
OFFICIAL = ("ifan", "nrknet")
#: Configuration of the authors' IFAN (``configs/config_IFAN.py`` at 66bf136).
IFAN_CONFIG = dict(device="cpu", ks=3, Fs=3, res_num=2, ch=32, wiF=1.5, N=17)


# ------------------------------------------------------------------------------------ worker side
def _input(height: int, width: int, seed: int = 0):
    """The benchmark image: (1, 3, H, W) float32 RGB in [0, 1], a smooth pattern plus noise."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(x / 37.0)[None] * np.cos(y / 23.0 + np.arange(3)[:, None, None])
    image = np.clip(base + 0.05 * rng.standard_normal((3, height, width)), 0.0, 1.0).astype(np.float32)
    return torch.from_numpy(image[None])


def _build_ours(model: str, checkpoint: Optional[str]):
    import torch

    import learned

    if checkpoint:
        return learned.load_official_checkpoint(model, checkpoint).eval()
    torch.manual_seed(0)
    return learned.build_model(model).eval()


def _import_from(folder: str, module: str):
    import importlib

    folder = str(Path(folder).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(module)


def _build_authors(model: str, folder: str, checkpoint: str):
    """The authors' network from a user's checkout, with the weights of ``checkpoint``."""
    import types

    import torch

    from learned.training.checkpoints import _strip_ifan_prefixes

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if model == "ifan":
        net = _import_from(folder, "models.archs.IFAN").Network(types.SimpleNamespace(**IFAN_CONFIG))
        net.load_state_dict(_strip_ifan_prefixes(state), strict=True)
        net.eval()
        return lambda x: net(x, None, None, False)["result"]
    # NRKNet calls .cuda() inside its layers; on a CPU-only run those calls become no-ops.
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    config = _import_from(folder, "config")
    net = _import_from(folder, "NRKNet").NRKNet(config)
    net.load_state_dict({k[7:] if k.startswith("module.") else k: v for k, v in state.items()}, strict=True)
    net.eval()
    # their network takes and returns BGR
    return lambda x: net(x.flip(1).contiguous(), None, "test")[0][-1].flip(1)


def _top_operators(forward, image, count: int = 12) -> List[dict]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        forward(image)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return [{"name": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in rows]


def worker(spec: dict) -> dict:
    """One measurement (run in a fresh process): times, peak RSS, optional output / profile / MACs."""
    import numpy as np
    import torch

    import contextlib

    torch.set_num_threads(spec["threads"])
    # the options of issue 33 apply to ours only ("reference" is ours without them)
    options = (spec.get("options") or {}) if spec["impl"] == "ours" else {}
    # our default allocator setting (as in learned.deblur / learned.evaluate); never the authors'
    if spec["impl"] in ("ours", "reference") and options.get("malloc", "reuse") == "reuse":
        from learned.inference._speed import reuse_freed_memory

        if not reuse_freed_memory():
            raise RuntimeError("--malloc reuse: glibc's mallopt is not available here")
    image = _input(spec["height"], spec["width"])
    if spec["impl"] == "baseline":  # another checkout of this project: import its packages instead
        sys.path.insert(0, str(Path(spec["baseline"]).resolve()))
    if spec["impl"] == "authors":
        forward = _build_authors(spec["model"], spec["official"], spec["checkpoint"])
    else:
        net = _build_ours(spec["model"], spec.get("checkpoint"))
        if spec["model"].startswith("k3dn"):
            forward = lambda x: net(x, x)  # noqa: E731  (a dual-pixel pair; speed only)
        else:
            forward = net
        if options.get("jit"):
            with torch.no_grad():
                example = (image, image) if spec["model"].startswith("k3dn") else (image,)
                traced = torch.jit.trace(forward, example, check_trace=False)
                forward = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        if options.get("compile"):
            from learned.inference._speed import compile_for_cpu

            forward = compile_for_cpu(forward)
    contexts = []
    if options.get("amp"):
        from learned.inference.precision import autocast

        contexts.append(lambda: autocast("cpu"))
    if options.get("channels_last") is False:
        from learned.inference._speed import set_cpu_channels_last

        contexts.append(lambda: set_cpu_channels_last(False))

    def run_once(x):
        with contextlib.ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context())
            return forward(x)

    times, cpu_times, warmup_times = [], [], []
    with torch.no_grad():
        for i in range(spec["warmup"] + spec["runs"]):
            t0, c0 = time.perf_counter(), time.process_time()
            out = run_once(image)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            if i >= spec["warmup"]:
                times.append(elapsed)
                cpu_times.append(cpu)
            else:
                warmup_times.append(elapsed)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"times": times, "cpu_times": cpu_times, "peak_rss": usage.ru_maxrss * 1024,
              "warmup_times": warmup_times, "minor_faults": usage.ru_minflt}
    if spec.get("output"):
        np.save(spec["output"], out.detach().float().numpy())
    if spec.get("profile"):
        result["profile"] = _top_operators(run_once, image)
    if spec.get("macs"):
        from learned.summary import count_macs

        result["macs"] = count_macs(forward if spec["impl"] == "authors" else net,
                                    (image, image) if spec["model"].startswith("k3dn") else (image,))
    return result


# ------------------------------------------------------------------------------------ parent side
def _run_worker(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    cmd = [sys.executable, "-m", "benchmarks.inference", "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec['impl']} {spec['model']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    """CPU model, core count and load average, in words."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}; load average {load}"


def _seconds(times: Sequence[float]) -> str:
    return f"{statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f})"


def _options(args: argparse.Namespace) -> dict:
    """The issue-33 options of our implementation given on the command line (empty: today's defaults)."""
    options = {}
    if args.amp:
        options["amp"] = True
    if args.compile:
        options["compile"] = True
    if args.jit:
        options["jit"] = True
    if args.malloc != "reuse":
        options["malloc"] = args.malloc
    if args.no_channels_last:
        options["channels_last"] = False
    return options


def _accuracy(ours, reference) -> tuple[float, float]:
    """Max abs difference and PSNR (dB, peak 1, both clipped to [0, 1]) of ``ours`` against ``reference``."""
    import numpy as np

    diff = float(np.max(np.abs(ours - reference)))
    mse = float(np.mean((np.clip(ours, 0, 1) - np.clip(reference, 0, 1)) ** 2))
    return diff, (float("inf") if mse == 0 else 10 * float(np.log10(1.0 / mse)))


def _write_seed_checkpoint(model: str, folder: str) -> str:
    """Seeded random weights of our network, saved in the authors' checkpoint format."""
    import torch

    path = os.path.join(folder, f"{model}_seed0.pth")
    torch.save(_build_ours(model, None).state_dict(), path)
    return path


def run(args: argparse.Namespace, log=print) -> str:
    """Run every measurement and return the markdown report."""
    import numpy as np

    official = {"ifan": args.official_ifan, "nrknet": args.official_nrknet}
    checkpoints = {"ifan": args.ifan_checkpoint, "nrknet": args.nrknet_checkpoint}
    options = _options(args)
    described = ", ".join(f"{k}={v}" for k, v in options.items()) or "none (today's defaults)"
    lines = [
        f"Command: `python -m benchmarks.inference {' '.join(args.argv)}`",
        "",
        f"Machine at start: {machine()}",
        "",
        f"Input 1x3x{args.height}x{args.width} float32; {args.warmup} warm-up + {args.runs} timed forward passes "
        f"per process, {args.repeats} process(es) per implementation (alternating); time = median (min-max) "
        "of all timed passes; CPU time = user + system time of the process during the passes (less sensitive "
        "to other jobs than wall time); peak RSS = largest `ru_maxrss` of the processes.",
        "",
        f"Options of ours: {described}; ours keeps freed memory for reuse unless `--malloc glibc` "
        "(learned.inference._speed.reuse_freed_memory, the default of learned.deblur); the authors' code runs as "
        "published (float32, glibc's default allocator). "
        "Accuracy of ours against our own float32 defaults (an untimed extra process without the options; "
        "PSNR with peak 1 on outputs clipped to [0, 1]): "
        + ("see the last columns." if options else "not measured (no option given)."),
        "",
        "| model | threads | authors' code | ours | ours / authors' | CPU time ours / authors' | peak RSS (authors' / ours) "
        "| max abs output diff | ours GMAC/s |" + (" vs our fp32: max abs diff | vs our fp32: PSNR | ours: first pass |"
                                                   if options else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if options else ""),
    ]
    profiles: Dict[str, List[dict]] = {}
    mac_lines: List[str] = []
    baseline_rows: List[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            has_official = model in OFFICIAL and official[model] is not None
            checkpoint = checkpoints.get(model)
            if model in OFFICIAL and checkpoint is None and has_official:
                checkpoint = _write_seed_checkpoint(model, tmp)
            macs = None
            for threads in args.threads:
                impls = (["ours", "authors"] if has_official else ["ours"]) + (["baseline"] if args.baseline else [])
                times: Dict[str, List[float]] = {i: [] for i in impls}
                cpu: Dict[str, List[float]] = {i: [] for i in impls}
                rss: Dict[str, int] = {i: 0 for i in impls}
                outputs: Dict[str, str] = {}
                first_pass: List[float] = []
                extra = ""
                if options:  # ours without the options, once: the accuracy reference
                    reference = os.path.join(tmp, f"{model}_reference_{threads}.npy")
                    _run_worker(dict(impl="reference", model=model, threads=threads, height=args.height,
                                     width=args.width, warmup=0, runs=1, checkpoint=checkpoint, output=reference),
                                args.timeout)
                for r in range(args.repeats):
                    for impl in impls if r % 2 == 0 else impls[::-1]:
                        first = impl not in outputs and impl != "baseline"
                        spec = dict(
                            impl=impl, model=model, threads=threads, height=args.height, width=args.width,
                            warmup=args.warmup, runs=args.runs, checkpoint=checkpoint,
                            official=official.get(model), baseline=args.baseline,
                            output=os.path.join(tmp, f"{model}_{impl}_{threads}.npy")
                            if first and (has_official or (options and impl == "ours")) else None,
                            profile=bool(args.profile and first and threads == max(args.threads)),
                            macs=bool(impl == "ours" and macs is None and not options.get("jit")),
                            options=options,
                        )
                        res = _run_worker(spec, args.timeout)
                        times[impl] += res["times"]
                        cpu[impl] += res["cpu_times"]
                        rss[impl] = max(rss[impl], res["peak_rss"])
                        if spec["output"]:
                            outputs[impl] = spec["output"]
                        if impl == "ours":
                            first_pass.extend(res["warmup_times"])
                        if "macs" in res:
                            macs = res["macs"]
                        if "profile" in res:
                            profiles[f"{model}, {'authors' if impl == 'authors' else 'ours'}, {threads} thread(s)"] = res["profile"]
                        log(f"  {model} {impl} threads={threads}: {_seconds(res['times'])}, CPU {_seconds(res['cpu_times'])}, "
                            f"peak RSS {res['peak_rss'] / 2**30:.2f} GiB")
                ours = statistics.median(times["ours"])
                gmacs = f"{macs / ours / 1e9:.1f}" if macs else "-"
                if options:
                    diff_ref, psnr_ref = _accuracy(np.load(outputs["ours"]), np.load(reference))
                    first = f"{max(first_pass):.1f} s" if first_pass else "-"
                    extra = f" {diff_ref:.1e} | {psnr_ref:.1f} dB | {first} |"
                if has_official:
                    theirs = statistics.median(times["authors"])
                    diff = float(np.max(np.abs(np.load(outputs["ours"]) - np.load(outputs["authors"]))))
                    cpu_ratio = statistics.median(cpu["ours"]) / statistics.median(cpu["authors"])
                    row = (f"| {model} | {threads} | {_seconds(times['authors'])} | {_seconds(times['ours'])} | "
                           f"**{ours / theirs:.2f}** | {cpu_ratio:.2f} | {rss['authors'] / 2**30:.2f} / "
                           f"{rss['ours'] / 2**30:.2f} GiB | {diff:.1e} | {gmacs} |" + extra)
                else:
                    row = (f"| {model} | {threads} | - | {_seconds(times['ours'])} | - | - | - / "
                           f"{rss['ours'] / 2**30:.2f} GiB | - | {gmacs} |" + extra)
                lines.append(row)
                log(row)
                if args.baseline:
                    base = statistics.median(times["baseline"])
                    base_cpu = statistics.median(cpu["baseline"])
                    baseline_rows.append(
                        f"| {model} | {threads} | {_seconds(times['baseline'])} | {_seconds(times['ours'])} | "
                        f"**{ours / base:.2f}** | {statistics.median(cpu['ours']) / base_cpu:.2f} | "
                        f"{rss['baseline'] / 2**30:.2f} / {rss['ours'] / 2**30:.2f} GiB |")
            if macs:
                mac_lines.append(f"{model}: {macs / 1e9:.1f} G")
    if baseline_rows:
        lines += ["", f"Against the baseline checkout `{args.baseline}` (same weights, same input):", "",
                  "| model | threads | baseline | ours | ours / baseline | CPU time ours / baseline | peak RSS (baseline / ours) |",
                  "|---|---|---|---|---|---|---|", *baseline_rows]
    lines += ["", f"Convolution MACs per forward pass at {args.height}x{args.width} (`torch.utils.flop_counter`): "
              + "; ".join(mac_lines) + ".", "", f"Machine at end: {machine()}"]
    if profiles:
        lines += ["", "Top operators of one forward pass (`torch.profiler`, self CPU time):"]
        for key, rows in profiles.items():
            lines += ["", f"{key}:", "", "| operator | self CPU | calls |", "|---|---|---|"]
            lines += [f"| `{r['name']}` | {r['self_s']:.3f} s | {r['calls']} |" for r in rows]
    return "\n".join(lines) + "\n"


def _size(text: str) -> tuple[int, int]:
    """``--size``: HEIGHTxWIDTH, both >= 32 (:func:`optics.cli.parse_size`)."""
    from optics import cli  # not at module level: the workers timing the authors' code import nothing of ours

    return cli.parse_size(text, minimum=32)


def build_parser() -> argparse.ArgumentParser:
    from optics import cli

    p = cli.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="markdown file to write (refused if it exists)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--size", type=_size, default=None, help="HEIGHTxWIDTH (default 720x1280; --quick: 192x320)")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default 1 2)")
    p.add_argument("--runs", type=int, default=None, help="timed forward passes per process (default 3)")
    p.add_argument("--repeats", type=int, default=None, help="processes per implementation (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed forward passes per process (default 1)")
    p.add_argument("--official-ifan", metavar="DIR", help="checkout of codeslake/IFAN at 66bf136")
    p.add_argument("--official-nrknet", metavar="DIR", help="checkout of csZcWu/NRKNet at 90fad36")
    p.add_argument("--baseline", metavar="DIR", help="another checkout of this project (e.g. `git worktree add "
                   "../base 91ecb12`) timed alongside ours, for before/after ratios")
    p.add_argument("--ifan-checkpoint", metavar="PATH", help="IFAN weights in the authors' format (default: seeded random)")
    p.add_argument("--nrknet-checkpoint", metavar="PATH", help="NRKNet weights in the authors' format (default: seeded random)")
    p.add_argument("--amp", action="store_true", help="ours under bfloat16 autocast (learned.inference.precision.autocast)")
    p.add_argument("--compile", action="store_true", help="ours through torch.compile (inductor, frozen weights; "
                   "needs a C++ compiler; the first pass compiles)")
    p.add_argument("--jit", action="store_true", help="ours as torch.jit.trace + freeze + optimize_for_inference (oneDNN)")
    p.add_argument("--malloc", choices=("glibc", "reuse"), default="reuse",
                   help="allocator settings of our worker: 'reuse' (default, as learned.deblur: freed memory kept "
                        "for the next allocation, learned.inference._speed.reuse_freed_memory) or glibc's defaults "
                        "(before issue 33)")
    p.add_argument("--no-channels-last", action="store_true",
                   help="ours without the channels-last layout on the CPU (learned.inference._speed.set_cpu_channels_last)")
    p.add_argument("--profile", action="store_true", help="add torch.profiler's top operators of one forward pass")
    p.add_argument("--quick", action="store_true", help="smoke run: 192x320, 1 thread, 1 run, 1 process each")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit 0 when the table was written, 2 for bad input (one ``error:`` line, :func:`optics.cli.run`).

    ``--worker JSON`` is the timing worker of one measurement: it imports nothing of ours beyond
    this module (the authors' code is timed in a process free of our packages)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(json.loads(argv[1]))))
        return 0
    from optics import cli

    return cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    height, width = args.size or ((192, 320) if args.quick else (720, 1280))
    args.width, args.height = width, height
    if args.threads is None:
        args.threads = [1] if args.quick else [1, 2]
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    for name in ("runs", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1; got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0; got {args.warmup}")
    if any(t < 1 for t in args.threads):
        raise ValueError(f"--threads must be positive; got {args.threads}")
    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"--out {str(out)!r} exists; choose a new path (this benchmark never overwrites)")
    if not out.parent.is_dir():
        raise ValueError(f"--out: folder {str(out.parent)!r} does not exist")
    for flag, folder, marker in (("--official-ifan", args.official_ifan, "models/archs/IFAN.py"),
                                 ("--official-nrknet", args.official_nrknet, "NRKNet.py")):
        if folder is not None and not (Path(folder) / marker).is_file():
            raise ValueError(f"{flag} must be a checkout of the authors' repository containing {marker}; got {folder!r}")
    if args.baseline is not None and not (Path(args.baseline) / "learned" / "__init__.py").is_file():
        raise ValueError(f"--baseline must be a checkout of this project containing learned/__init__.py; got {args.baseline!r}")
    for flag, path in (("--ifan-checkpoint", args.ifan_checkpoint), ("--nrknet-checkpoint", args.nrknet_checkpoint)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{flag} must be an existing file; got {path!r}")
    if (args.official_ifan or args.official_nrknet) and (width % 16 or height % 16):
        raise ValueError(f"--size must be a multiple of 16 in both sides to run the authors' code; got {height}x{width}")
    report = run(args)
    from optics.atomic import atomic_write_bytes

    if out.exists():
        raise ValueError(f"--out {str(out)!r} appeared during the run; not overwritten")
    atomic_write_bytes(out, report.encode())
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
