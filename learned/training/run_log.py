"""A training run's log: the CSV of one row per step and the loss curve drawn from it.

``log.csv``: step, lr, total loss, each loss term, ``blurred_input_mse`` (the MSE of the blurred
input against the target: the loss of doing nothing, for reference), seconds. Appended and flushed
every row; rows after the resumed step are dropped on ``--resume``.

(Named ``run_log`` rather than ``logging`` so that it never shadows the standard library.)
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, List, Mapping, Optional

import numpy as np

from ..data.io import atomic_write_bytes

__all__ = ["CsvLog", "read_log", "write_plot"]


def write_plot(log_path: Path, plot_path: Path, title: str) -> None:
    """Loss curve (every term, log scale) from the CSV log, written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = read_log(log_path)
    if not rows:
        return
    columns = [c for c in rows[0] if c not in ("step", "lr", "seconds")]
    steps = np.array([int(r["step"]) for r in rows], dtype=np.float64)
    # per-step losses are noisy: faint raw total, and every term averaged over <= 200 bins of steps
    bins = np.array_split(np.arange(len(rows)), min(len(rows), 200))
    fig = Figure(figsize=(9, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, [float(r["total"]) for r in rows], color="0.75", linewidth=0.5, label="total (per step)", zorder=1)
    for i, c in enumerate(columns):
        values = np.array([float(r[c]) if r.get(c) not in (None, "") else math.nan for r in rows])
        style = (dict(color="k", linestyle="--", linewidth=1.0, zorder=2) if c == "blurred_input_mse"  # reference
                 else dict(color=f"C{i}", linewidth=2.0 if c == "total" else 1.2, zorder=3 + (c != "total")))
        label = "blurred input's mse (reference)" if c == "blurred_input_mse" else f"{c} (bin mean)"
        ax.plot([steps[b].mean() for b in bins], [values[b].mean() for b in bins], label=label, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if all(float(r["total"]) > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside the curves
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(plot_path, buffer.getvalue())


def read_log(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class CsvLog:
    """Append-only CSV (one row per step, flushed); the header grows never: terms fixed at the first row."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        self.fields: Optional[List[str]] = None
        rows = read_log(path)
        if rows:
            kept = [r for r in rows if int(r["step"]) <= resume_step]
            self.fields = list(rows[0].keys())
            if len(kept) != len(rows):  # drop rows of steps that will be re-run
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(kept)
                atomic_write_bytes(path, buffer.getvalue().encode())
        self._fh = None

    def write(self, row: Mapping[str, Any]) -> None:
        if self.fields is None:
            self.fields = list(row.keys())
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields).writeheader()
        if self._fh is None:
            self._fh = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=self.fields, extrasaction="ignore")
        self._writer.writerow({k: row.get(k, "") for k in self.fields})
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
