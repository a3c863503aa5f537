"""Repeated timings and verdicts that do not flip: median, spread, and a margin larger than the spread.

Every compared quantity is timed ``repeats`` times (the contenders interleaved, so a burst of load
hits both); the row reports the median and the run-to-run spread as the interquartile range
(25th-75th percentile; the extremes on a shared machine are single stalls of tens of ms). A
comparison uses the ratio of each round's pair of timings. A row **passes** only if its whole
spread is on the right side of its target, **fails** only if the whole spread is on the wrong side,
and is **UNDECIDED** when the spread straddles the target (its margin is smaller than its
run-to-run spread): such a row would flip between runs, so it is neither. A
full run exits non-zero when any row fails or is undecided. ``--quick`` rows are indicative only
(small sizes, no verdict, exit status 0).
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["times", "interleaved", "quartiles", "spread_text", "ratio_bounds", "verdict", "exit_status", "QUICK_NOTE"]

QUICK_NOTE = ("--quick: small sizes; the timing rows are indicative only (no verdict) and the exit status is 0; "
              "run without --quick for the verdicts")


def times(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: Mapping[str, int] | int) -> dict[str, list[float]]:
    """Time several functions in turn (round-robin), ``repeats`` calls each (or per name)."""
    counts = {k: (repeats if isinstance(repeats, int) else repeats[k]) for k in fns}
    out: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(max(counts.values())):
        for k, fn in fns.items():
            if i < counts[k]:
                out[k].extend(times(fn, 1))
    return out


def quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentiles (linear interpolation; one sample: all three equal)."""
    q25, med, q75 = np.percentile(np.asarray(samples, dtype=np.float64), [25, 50, 75])
    return float(med), float(q25), float(q75)


def spread_text(samples: Sequence[float], scale: float = 1e3, unit: str = "ms", digits: int = 1) -> str:
    """``'median 12.3 ms (IQR 11.9-13.0, n=5)'``."""
    med, q25, q75 = quartiles(samples)
    if len(samples) == 1:
        return f"{med * scale:.{digits}f} {unit} (n=1)"
    return f"median {med * scale:.{digits}f} {unit} (IQR {q25 * scale:.{digits}f}-{q75 * scale:.{digits}f}, n={len(samples)})"


def ratio_bounds(slow: Sequence[float], fast: Sequence[float]) -> tuple[float, float, float]:
    """Median and interquartile range of the per-round ratios ``slow[i] / fast[i]`` (the shorter
    list is reused cyclically, e.g. a naive loop timed once against 7 runs)."""
    n = max(len(slow), len(fast))
    ratios = [slow[i % len(slow)] / fast[i % len(fast)] for i in range(n)]
    return quartiles(ratios)


def verdict(low: float, high: float, target: float, quick: bool, higher_is_better: bool = True) -> bool | None | str:
    """``True`` / ``False`` when the whole range ``[low, high]`` is on one side of ``target``;
    ``'undecided'`` when it straddles it; ``None`` (indicative) in ``quick`` runs."""
    if quick:
        return None
    if not higher_is_better:
        low, high, target = -high, -low, -target
    if low >= target:
        return True
    if high < target:
        return False
    return "undecided"


def result_cell(passed: bool | None | str) -> str:
    if passed is None:
        return "-"
    if passed == "undecided":
        return "UNDECIDED (spread straddles the target)"
    return "PASS" if passed else "FAIL"


def exit_status(rows: Sequence[Mapping], quick: bool) -> int:
    """0 unless a full run has a row that failed or is undecided (then 1)."""
    if quick:
        return 0
    return 1 if any(r.get("passed") is False or r.get("passed") == "undecided" for r in rows) else 0
