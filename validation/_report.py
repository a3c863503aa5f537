"""Shared helpers of the validation modules: test photos, atomic writes, claim rows, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from optics import cli
from optics.atomic import atomic_write_bytes

__all__ = ["available_memory_bytes", "photos", "claim", "write_json", "write_markdown", "save_figure", "cli_main"]

#: Photos bundled inside the scikit-image wheel (no download): name -> loader attribute.
PHOTO_NAMES = ("camera", "astronaut", "coffee", "chelsea", "rocket")


def available_memory_bytes() -> int:
    """``MemAvailable`` from /proc/meminfo in bytes (0 where it cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def photos(names=PHOTO_NAMES, crop: int | None = None) -> dict[str, np.ndarray]:
    """Bundled scikit-image photos as float64 in [0, 1], optionally centre-cropped to ``crop``."""
    from skimage import data, img_as_float

    out = {}
    for name in names:
        img = img_as_float(getattr(data, name)())
        if crop is not None:
            h, w = img.shape[:2]
            c = min(crop, h, w)
            top, left = (h - c) // 2, (w - c) // 2
            img = img[top : top + c, left : left + c]
        out[name] = np.ascontiguousarray(img)
    return out


def claim(name: str, paper: str, ours: str, tolerance: str, passed: bool, informational: str | None = None, **extra) -> dict:
    """One row of a validation report.

    ``informational``: why the row, although measured against a tolerance, is not a test of a
    claim the paper makes (it is shown with its PASS/FAIL outcome but does not decide the run).
    """
    row = dict(claim=name, paper=paper, ours=ours, tolerance=tolerance, passed=bool(passed), **extra)
    if informational:
        row["informational"] = informational
    return row


def verdict(rows: list[dict]) -> str:
    """'NOT RUN' when every row says the validation could not run (``not_run``, e.g. no data),
    else 'PASS' or 'FAIL' as :func:`decides`."""
    if rows and all(r.get("not_run") for r in rows):
        return "NOT RUN"
    return "PASS" if decides(rows) else "FAIL"


def decides(rows: list[dict]) -> bool:
    """True iff every row that tests a paper claim passed (informational rows do not count)."""
    return all(r["passed"] for r in rows if not r.get("informational"))


def _result_cell(row: dict) -> str:
    if row.get("not_run"):
        return f"NOT RUN ({row['informational']})" if row.get("informational") else "NOT RUN"
    outcome = "PASS" if row["passed"] else "FAIL"
    return f"INFO ({outcome}; {row['informational']})" if row.get("informational") else outcome


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), json.dumps(obj, indent=2, default=_json_default).encode())


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def markdown_table(rows: list[dict]) -> str:
    lines = ["| claim | paper | ours | tolerance | result |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [str(r[k]).replace("|", "\\|").replace("\n", " ") for k in ("claim", "paper", "ours", "tolerance")]
        lines.append("| " + " | ".join(cells) + f" | {_result_cell(r)} |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, title: str, rows: list[dict], preamble: str = "", figures=()) -> None:
    text = f"# {title}\n\n{preamble}\n\n" + markdown_table(rows)
    for fig in figures:
        text += f"\n![{fig}]({fig})\n"
    atomic_write_bytes(Path(path), text.encode())


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def is_report_file(path: Path) -> bool:
    """What a validation writes into its folder: figures, JSON and markdown (for ``--overwrite``)."""
    return path.is_file() and path.suffix.lower() in (".png", ".json", ".md")


def cli_main(name: str, run: Callable[[Path, bool], list[dict]], argv=None) -> int:
    """``python -m validation.<name> [--quick] [--out DIR] [--overwrite]``: run, print the table,
    exit 0 iff all pass, 1 if a claim fails or the run fails, 2 for bad input (one ``error:`` line,
    :func:`optics.cli.run`). A non-empty ``--out`` needs ``--overwrite``, which clears the
    previous report first."""
    return cli.run(lambda a: _cli_main(name, run, a), argv)


def _cli_main(name: str, run: Callable[[Path, bool], list[dict]], argv) -> int:
    parser = cli.ArgumentParser(prog=f"python -m validation.{name}", description=run.__doc__)
    parser.add_argument("--quick", action="store_true", help="small images and fewer cases (CI smoke run)")
    parser.add_argument("--out", type=Path, default=Path("validation_report") / name, help="output folder")
    cli.add_overwrite_argument(parser, "a previous report in --out (cleared first)")
    args = parser.parse_args(argv)
    cli.prepare_output_dir(args.out, overwrite=args.overwrite, owned=is_report_file)
    rows = run(args.out, args.quick)
    cli.record_outputs(args.out)
    print(markdown_table(rows))
    print(f"results: figures, {name}.json and {name}.md in {args.out.resolve()}")
    return 0 if decides(rows) else 1
