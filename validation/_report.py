"""Shared helpers of the validation modules: test photos, atomic writes, claim rows, CLI."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from optics import cli
from optics.atomic import atomic_write_bytes

__all__ = ["available_memory_bytes", "photos", "claim", "write_json", "write_markdown", "save_figure", "cli_main",
           "VALIDATIONS", "write_report", "prepare_out", "finish_out", "default_out", "command_line", "REPORT_FOLDERS"]

#: Explicit list of validation modules of ``python -m validation`` (no directory scanning), in report order.
VALIDATIONS = [
    "kernel_upsampling",
    "dual_pixel",
    "recursive_kernels",
    "iac_receptive_field",
    "dual_pixel_calibration",  # needs the Pixel 4 kernels (--kernels); without them it reports 'needs data'
    "real_dual_pixel",  # needs Xin et al.'s Pixel 4 scenes (--data); without them it reports 'needs data'
]

#: Default report folder of ``python -m validation`` without and with ``--quick``: quick and full results never
#: share one (a report never mixes them), so a ``--quick`` run of one validation right after the full main job
#: writes a folder of its own, and one after ``python -m validation --quick`` replaces its part of that report.
REPORT_FOLDERS = {False: "validation_report", True: "validation_report_quick"}


def default_out(quick: bool, name: str | None = None) -> Path:
    """The default ``--out`` of ``python -m validation`` (``name`` None) or of ``python -m validation.<name>``:
    its part of the default report of the same ``--quick``."""
    folder = Path(REPORT_FOLDERS[bool(quick)])
    return folder if name is None else folder / name


def command_line(module: str, argv) -> str:
    """The command as typed: ``python -m MODULE ARGS`` (``argv`` None: this process's arguments)."""
    return " ".join(["python", "-m", module, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])


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
    else 'PASS' or 'FAIL' as :func:`decides`, followed by the number of informational rows that
    fell outside their tolerance, if any (so a header never says a bare PASS over a FAIL row)."""
    if rows and all(r.get("not_run") for r in rows):
        return "NOT RUN"
    outcome = "PASS" if decides(rows) else "FAIL"
    outside = sum(1 for r in rows if r.get("informational") and not r.get("not_run") and not r["passed"])
    if outside:  # a header over a failed row must not read as a plain PASS
        outcome += f" ({outside} informational row{'s' if outside > 1 else ''} FAIL)"
    return outcome


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


def write_report(out: Path, summary: dict, quick: bool, fresh, commands) -> bool:
    """``out/report.md`` and ``out/report.json`` of ``python -m validation`` from ``summary`` (name ->
    entry, in report order); ``fresh``: the validations this run ran (the others are marked as an
    earlier run's); ``commands``: the report's history, every command that wrote a part of it, in order
    (a string: one command). Returns whether every validation passed."""
    commands = [commands] if isinstance(commands, str) else list(commands)
    out = Path(out)
    all_ok = all(v["passed"] for v in summary.values())
    sections = []
    for name, entry in summary.items():
        rows, seconds = entry["claims"], entry["seconds"]
        figs = sorted(p.name for p in (out / name).glob("*.png"))
        sections.append(
            f"## {name}: {verdict(rows)} ({seconds:.0f} s{'' if name in fresh else ', an earlier run'})\n\n"
            f"Details: [{name}/{name}.md]({name}/{name}.md)\n\n" + markdown_table(rows)
            + "".join(f"\n![{f}]({name}/{f})\n" for f in figs)
        )
    if len(commands) == 1:
        history = f"Command: `{commands[0]}`\n\n"
    else:
        history = "Commands, in order (each later one replaced the parts it names):\n\n" + "".join(
            f"{i}. `{c}`\n" for i, c in enumerate(commands, 1)) + "\n"
    header = f"# Validation report{' (--quick)' if quick else ''}\n\n" + history
    atomic_write_bytes(out / "report.md", (header + "\n".join(sections)).encode())
    write_json(out / "report.json", dict(quick=quick, passed=all_ok, command="; then ".join(commands),
                                         commands=commands, validations=summary))
    return all_ok


def report_commands(report: dict) -> list:
    """The command history of a report.json (``commands``; an older report has one ``command`` string)."""
    if isinstance(report.get("commands"), list):
        return [str(c) for c in report["commands"]]
    return [c for c in str(report.get("command") or "").split("; then ") if c]


def read_report(folder: Path) -> dict:
    """The report.json of an earlier ``python -m validation`` in ``folder`` (empty if none or unreadable)."""
    try:
        report = json.loads((Path(folder) / "report.json").read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) and isinstance(report.get("validations"), dict) else {}


def _report_holding(out: Path, name: str) -> Path | None:
    """The folder of a finished ``python -m validation`` whose part ``name/`` is ``out``, else None.

    ``out`` is such a part when it is called ``name``, has no record of its own, and its parent
    holds a report.json and a complete record of the files that run wrote, some of them below ``name/``."""
    out = Path(out)
    if out.name != name or not out.is_dir() or (out / cli.OUTPUT_RECORD).exists():
        return None
    record = cli._read_record(out.parent)
    if record is None or not record.get("complete") or not read_report(out.parent):
        return None
    return out.parent if any(str(f).startswith(name + "/") for f in record["files"]) else None


def prepare_out(out: Path, name: str, *, overwrite: bool, quick: bool) -> Path | None:
    """Check and prepare the ``--out`` of ``python -m validation.<name>`` before any work.

    A fresh or own folder: :func:`optics.cli.prepare_output_dir`; returns None. With ``overwrite``,
    a folder that is the ``name/`` part of a report of ``python -m validation`` (its default
    ``validation_report/<name>``): that part alone is replaced, after the same checks (only report
    files, none added since that run, the same ``--quick``); returns the report's folder, whose
    report.md and report.json :func:`finish_out` then updates."""
    out = Path(out)
    report = _report_holding(out, name) if overwrite else None
    if report is None:
        cli.prepare_output_dir(out, overwrite=overwrite, owned=is_report_file)
        return None
    previous = read_report(report)
    if bool(previous.get("quick")) != quick:
        kind = "a --quick" if previous.get("quick") else "a full (not --quick)"
        raise ValueError(f"--out {str(out)!r} is the {name} part of {kind} report of python -m validation "
                         f"({str(report / 'report.md')!r}); refusing to mix --quick and full results in one report: "
                         f"{'add' if previous.get('quick') else 'leave out'} --quick, or choose another --out")
    entries = sorted(out.iterdir())
    foreign = [p.name for p in entries if not is_report_file(p)]
    recorded = {str(f)[len(name) + 1:] for f in cli._read_record(report)["files"] if str(f).startswith(name + "/")}
    added = [f for f in cli._files_under(out) if f not in recorded]
    bad = sorted(set(foreign) | set(added))
    if bad:
        raise ValueError(f"--out {str(out)!r} holds {len(bad)} entries the report's run did not write "
                         f"({', '.join(repr(n) for n in bad[:4])}{' ...' if len(bad) > 4 else ''}); --overwrite only replaces that run's outputs: move "
                         "them, or choose another --out")
    cli._write_record(report, None)  # the report is incomplete until finish_out
    for p in entries:
        p.unlink()
    return report


def finish_out(out: Path, name: str, report: Path | None, rows: list[dict], seconds: float, quick: bool,
               command: str | None = None) -> str:
    """Record the outputs of ``python -m validation.<name>``; when ``out`` is a part of ``report``
    (:func:`prepare_out`), put this run's rows in its report.md and report.json, and ``command`` (default:
    this process's) at the end of the report's command history. Returns the ``results:`` line."""
    out = Path(out)
    where = f"figures, {name}.json and {name}.md in {out.resolve()}"
    if report is None:
        cli.record_outputs(out)
        return f"results: {where}"
    previous = read_report(report)
    entries = dict(previous["validations"])
    entries[name] = dict(passed=decides(rows), verdict=verdict(rows), seconds=round(seconds, 1), claims=rows)
    summary = {k: entries[k] for k in VALIDATIONS if k in entries and (report / k).is_dir()}
    history = report_commands(previous) or [f"python -m validation{' --quick' if quick else ''}"]
    write_report(report, summary, quick, [name], history + [command or command_line(f"validation.{name}", None)])
    cli.record_outputs(report)
    return f"results: {where}; its part of {(report / 'report.md').resolve()} replaced"


def cli_main(name: str, run: Callable[[Path, bool], list[dict]], argv=None) -> int:
    """``python -m validation.<name> [--quick] [--out DIR] [--overwrite]``: run, print the table,
    exit 0 iff all pass, 1 if a claim fails or the run fails, 2 for bad input (one ``error:`` line,
    :func:`optics.cli.run`). A non-empty ``--out`` needs ``--overwrite``, which clears the
    previous report first."""
    return cli.run(lambda a: _cli_main(name, run, a), argv)


def _cli_main(name: str, run: Callable[[Path, bool], list[dict]], argv) -> int:
    parser = cli.ArgumentParser(prog=f"python -m validation.{name}", description=run.__doc__)
    parser.add_argument("--quick", action="store_true", help="small images and fewer cases (CI smoke run)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {default_out(False, name)}, "
                        f"with --quick {default_out(True, name)}: the part of the report of python -m validation)")
    cli.add_overwrite_argument(parser, "a previous report in --out (cleared first)")
    args = parser.parse_args(argv)
    args.out = default_out(args.quick, name) if args.out is None else args.out
    report = prepare_out(args.out, name, overwrite=args.overwrite, quick=args.quick)
    t0 = time.perf_counter()
    rows = run(args.out, args.quick)
    results = finish_out(args.out, name, report, rows, time.perf_counter() - t0, args.quick,
                         command_line(f"validation.{name}", argv))
    print(markdown_table(rows))
    print(results)
    return 0 if decides(rows) else 1
