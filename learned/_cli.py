"""Command-line options shared by the ``learned`` commands: ``--device`` and ``--threads``.

Both are checked before a model is loaded: ``--device cuda`` on a build of torch without CUDA (or
on a machine without a GPU) is one ``error:`` line and exit status 2, not an ``AssertionError``
from deep inside torch after the model has loaded.
"""

from __future__ import annotations

import argparse
import os

import torch

from optics import cli

__all__ = ["check_device", "add_threads_argument", "check_threads", "default_threads", "apply_threads"]


def check_device(request: str, what: str = "--device") -> torch.device:
    """``request`` as a :class:`torch.device` that this machine can use; else one usage error line (exit 2)."""
    try:
        device = torch.device(request)
    except (RuntimeError, TypeError):
        cli.usage_error(f"argument {what}: expected cpu, cuda or cuda:N; got {request!r}")
    if device.type not in ("cpu", "cuda"):
        cli.usage_error(f"argument {what}: expected cpu, cuda or cuda:N; got {request!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = ("this build of torch has no CUDA support (a CPU wheel)" if torch.version.cuda is None
                     else "no CUDA GPU is visible on this machine")
            cli.usage_error(f"argument {what}: expected a device this machine has; got {request!r}, but {build}: "
                            "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            cli.usage_error(f"argument {what}: expected cuda:0..cuda:{torch.cuda.device_count() - 1}; got {request!r}")
    return device


def default_threads() -> int:
    """CPU threads for inference: the cores this process may use that are not already busy.

    torch's own default is one thread per core; OpenMP threads spin-wait for each other, so on a
    machine whose cores are busy with other jobs extra threads cost far more than they bring
    (measured in ``docs/training.md``: 20 IFAN training steps on a loaded 2-core machine, 5x slower
    with 2 threads than with 1). This takes the cores available to the process minus the 1-minute
    load average, at least 1.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def add_threads_argument(parser: argparse.ArgumentParser, default_help: str | None = None) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads of torch (torch.set_num_threads); " + (default_help or
                             "default: the cores not already busy (cores minus the 1-minute load average, at least 1)"))


def check_threads(threads: int | None, what: str = "--threads") -> None:
    """``threads`` (None: the default) must be 1 .. the machine's CPU count; else one usage error line (exit 2)."""
    from optics.cli import check_threads as check_thread_count

    try:
        check_thread_count(threads, what)
    except ValueError as err:  # one rule and one message for every command (optics.dual_pixel.capture)
        cli.usage_error(f"argument {err}")


def apply_threads(threads: int | None, default: int | None = None) -> int:
    """Set torch's CPU threads to ``threads`` (checked: >= 1), else ``default``, else :func:`default_threads`."""
    check_threads(threads)
    n = threads or default or default_threads()
    torch.set_num_threads(n)
    return n
