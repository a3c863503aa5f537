"""Xin et al.'s Pixel 4 scenes for the real-capture benchmarks: checked, read as every entry point reads them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["pixel4_scenes"]


def pixel4_scenes(parser: argparse.ArgumentParser, data: Path, scenes: Optional[Sequence[str]]):
    """``(dataset, [(index, name), ...])`` of the ``pixeldp:`` reader over ``data``, the scenes asked for
    (all when ``scenes`` is None or empty); an unknown scene is ``parser.error`` naming ``--scenes``."""
    from learned.data import build_dataset
    from validation.real_dual_pixel import _check_data

    _check_data(data)
    dataset = build_dataset(f"pixeldp:{data}", "test", crop=None, augment=False)
    names = [dataset.sample_name(i) for i in range(len(dataset))]
    unknown = sorted(set(scenes or ()) - set(names))
    if unknown:
        parser.error(f"argument --scenes: {unknown} are not scenes of {data} (it has {names[0]}..{names[-1]})")
    return dataset, [(i, n) for i, n in enumerate(names) if not scenes or n in scenes]


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"expected -1 or >= 1; got {text}")
    return value


def add_workers_and_out(parser: argparse.ArgumentParser, out_what: str) -> None:
    """The ``--workers`` (threads over the cells' windows, checked: -1 or >= 1) and ``--out`` (a new
    file for ``out_what``) arguments of the real-capture benchmarks."""
    parser.add_argument("--workers", type=_workers, default=-1,
                        help="threads over the cells' windows (default -1: every core)")
    parser.add_argument("--out", type=Path, help=f"also write the {out_what} here (refuses to overwrite)")
