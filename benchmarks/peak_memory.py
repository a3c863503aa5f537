"""Peak resident memory of the toolkit's main commands: ``python -m benchmarks.peak_memory [--only NAME...]``.

Each command runs in a fresh process under GNU ``/usr/bin/time -v`` (its "Maximum resident set
size", which includes the child processes it waits for), in a temporary folder, with inputs made
on the spot: a 1280 x 720 PNG (a scikit-image photo tiled) and freshly initialised checkpoints
(the memory of inference does not depend on the weights' values). Prints a markdown table (and
with ``--markdown FILE`` writes it). Wall times are shown too but are only indicative: they depend
on the machine's load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from optics import cli
from optics.atomic import atomic_write_bytes

DEBLUR_MODELS = ("kpac", "ifan", "nrknet", "k3dn_tiny")
TRAIN_MODELS = ("kpac", "kpac_dual", "ifan", "ifan_dual", "nrknet", "k3dn_tiny", "k3dn_light", "k3dn_large")
SMOKE_MODELS = ("kpac", "ifan", "nrknet", "k3dn_tiny", "k3dn_large")


@dataclass(frozen=True)
class Command:
    name: str
    argv: Callable[[Path], list[str]]  # given the work folder


def _commands() -> list[Command]:
    out: list[Command] = [
        Command("validation --quick", lambda d: ["validation", "--quick", "--out", str(d / "vq")]),
        Command("validation", lambda d: ["validation", "--out", str(d / "v")]),
        Command("optics.render.synthesize --count 4", lambda d: ["optics.render.synthesize", "--out", str(d / "ds"), "--count", "4",
                                                          "--no-progress"]),
        Command("learned.summary --no-latency", lambda d: ["learned.summary", "--no-latency"]),
        Command("learned.evaluate --limit 4 --no-lpips (input and Wiener rows)",
                lambda d: ["learned.evaluate", "--limit", "4", "--no-lpips", "--out", str(d / "ev")]),
        Command("benchmarks.optics --quick", lambda d: ["benchmarks.optics", "--quick"]),
    ]
    for m in DEBLUR_MODELS:
        extra = ["--right", "{photo}"] if m.startswith("k3dn") else []
        out.append(Command(f"learned.deblur 1280x720 --model {m}",
                           lambda d, m=m, extra=extra: ["learned.deblur", str(d / "photo.png"), str(d / f"out_{m}.png"),
                                                        "--model", m, "--checkpoint", str(d / f"{m}.pt"),
                                                        *[str(d / "photo.png") if e == "{photo}" else e for e in extra]]))
    for m in TRAIN_MODELS:
        out.append(Command(f"learned.train --steps 2 --model {m} (paper recipe, default crop)",
                           lambda d, m=m: ["learned.train", "--model", m, "--steps", "2", "--out", str(d / f"run_{m}"),
                                           "--no-progress"]))
    for m in SMOKE_MODELS:
        out.append(Command(f"learned.train --steps 2 --model {m} --preset cpu-smoke",
                           lambda d, m=m: ["learned.train", "--model", m, "--steps", "2", "--preset", "cpu-smoke",
                                           "--eval-images", "0", "--out", str(d / f"smoke_{m}"), "--no-progress"]))
    return out


def _prepare(work: Path) -> None:
    """The 1280 x 720 photo and the deblurring checkpoints."""
    import numpy as np
    import torch
    from skimage import data

    import learned
    from learned.data.io import write_image

    photo = np.tile(data.astronaut(), (2, 3, 1))[:720, :1280].astype(np.float64) / 255.0
    write_image(work / "photo.png", photo, 8)
    for m in DEBLUR_MODELS:
        torch.manual_seed(0)
        learned.save_checkpoint(learned.build_model(m), m, work / f"{m}.pt")


def measure(argv: list[str], cwd: Path, timeout: float) -> dict:
    """Run ``python -m argv`` under ``/usr/bin/time -v``; peak RSS (GB), wall seconds, exit status."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    try:
        proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(rss_gb=float("nan"), seconds=float("nan"), status=f"timed out after {timeout:.0f} s")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr)
    seconds = float("nan")
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    status = str(proc.returncode)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        status += f" ({errors[-1][:120]})" if errors else ""
    return dict(rss_gb=int(rss.group(1)) * 1024 / 1e9 if rss else float("nan"), seconds=seconds, status=status)


def main(argv=None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.peak_memory", description=__doc__.splitlines()[0])
    names = [c.name for c in _commands()]
    parser.add_argument("--only", nargs="*", metavar="SUBSTRING",
                        help="measure only the commands whose name contains one of these (e.g. validation deblur)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command (default 1800)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    cli.add_overwrite_argument(parser, "an existing --markdown file")
    args = parser.parse_args(argv)
    if not Path("/usr/bin/time").is_file():
        raise FileNotFoundError("/usr/bin/time (GNU time) is needed to measure peak memory; install the 'time' package")
    if args.markdown is not None:
        cli.check_output_files([(args.markdown, [])], overwrite=args.overwrite, suffixes=(".md",), what="--markdown")
    chosen = [c for c in _commands() if not args.only or any(s in c.name for s in args.only)]
    if not chosen:
        parser.error(f"argument --only: no command matches {args.only}; the commands are {names}")
    lines = ["| command | peak RSS (GB) | wall time (indicative) | exit status |", "|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(prefix="peak_memory_") as tmp:
        work = Path(tmp)
        _prepare(work)
        for command in chosen:
            r = measure(command.argv(work), work, args.timeout)
            line = f"| `python -m {command.name}` | {r['rss_gb']:.2f} | {r['seconds']:.0f} s | {r['status']} |"
            lines.append(line)
            print(line, flush=True)
    if args.markdown is not None:
        atomic_write_bytes(args.markdown, ("\n".join(lines) + "\n").encode())
        print(f"results: {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
