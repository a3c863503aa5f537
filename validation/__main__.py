"""``python -m validation [--quick] [--out DIR] [--data DIR] [--kernels DIR]``: run every validation and write one report.

Each module listed in :data:`VALIDATIONS` exposes ``run(out_dir, quick) -> list[dict]``
(``real_dual_pixel`` also takes ``data``, ``dual_pixel_calibration`` ``kernels``: ``--data`` and
``--kernels`` are forwarded to them; without these they report NOT RUN); its figures,
JSON and markdown go to ``OUT/<name>/`` and all claims are collected into ``OUT/report.md`` and
``OUT/report.json``. ``OUT`` is ``validation_report/`` by default, ``validation_report_quick/`` with
``--quick`` (:data:`~validation._report.REPORT_FOLDERS`). The report keeps its command history: each
``--only X --overwrite`` and each ``python -m validation.X --overwrite`` into its part is appended to it.
Exits 0 iff every claim passes.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from pathlib import Path

from optics import cli

from ._report import (VALIDATIONS, command_line, decides, default_out, is_report_file, read_report, report_commands,
                      verdict, write_report)

#: Options of ``python -m validation`` forwarded to one validation's ``run``: option -> validation.
FORWARDED = {"data": "real_dual_pixel", "kernels": "dual_pixel_calibration"}


def _owned(path: Path) -> bool:
    """Entries of a previous report: report.md, report.json and one folder of report files per validation."""
    if path.name in ("report.md", "report.json"):
        return path.is_file()
    return path.is_dir() and path.name in VALIDATIONS and all(is_report_file(p) for p in path.iterdir())


def main(argv=None) -> int:
    """Run the validations; exit 0 iff every claim passes, 1 otherwise, 2 for bad input."""
    return cli.run(_main, argv)


def _main(argv) -> int:
    parser = cli.ArgumentParser(prog="python -m validation", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images and fewer cases")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"report folder (default {default_out(False)}, with --quick {default_out(True)})")
    parser.add_argument("--only", nargs="*", default=None, help="run only these validations")
    parser.add_argument("--data", type=Path, default=None,
                        help="Xin et al.'s DP_data_pixel_4 folder, for real_dual_pixel (else it reports NOT RUN)")
    parser.add_argument("--kernels", type=Path, default=None, help="Xin et al.'s DP_data_pixel_4 folder (the kernels in "
                        "its calibration/) or the folder holding blur_kernels_left.npy and blur_kernels_right.npy, for "
                        "dual_pixel_calibration (else it reports NOT RUN)")
    cli.add_overwrite_argument(parser, "a previous report in --out (cleared first; with --only, only the "
                               "named validations' parts are replaced)")
    args = parser.parse_args(argv)
    args.out = default_out(args.quick) if args.out is None else args.out
    names = args.only or VALIDATIONS
    unknown = sorted(set(names) - set(VALIDATIONS))
    if unknown:
        parser.error(f"unknown validation(s) {unknown}; choose from {VALIDATIONS}")
    options = {}
    for option, name in FORWARDED.items():
        value = getattr(args, option)
        if value is None:
            continue
        if name not in names:
            parser.error(f"argument --{option}: used only by {name}, which --only {' '.join(names)} leaves out; "
                         f"got --{option} {str(value)!r}")
        options[name] = {option: value}
    _check_forwarded(options)
    # --only X --overwrite replaces X's report alone: the other validations' folders and rows stay
    previous = _previous_report(args.out) if args.only and args.overwrite else {}
    if previous.get("quick") != args.quick:  # never mix --quick and full results in one report
        previous = {}
    out = cli.prepare_output_dir(args.out, overwrite=args.overwrite, owned=_owned, clear=not previous)
    for name in names if previous else ():
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)

    summary, this_run_ok = {}, True
    progress = cli.progress_bar(names, desc="validation", unit="validation")
    for name in progress:
        progress.set_postfix_str(name, refresh=sys.stderr.isatty())
        module = importlib.import_module(f"validation.{name}")
        t0 = time.perf_counter()
        rows = module.run(out / name, args.quick, **options.get(name, {}))
        seconds = time.perf_counter() - t0
        this_run_ok &= decides(rows)
        summary[name] = dict(passed=decides(rows), verdict=verdict(rows), seconds=round(seconds, 1), claims=rows)
        progress.write(f"[{verdict(rows)}] validation.{name} ({seconds:.0f} s)", file=sys.stdout)
    kept = {k: v for k, v in previous.get("validations", {}).items() if k not in summary and (out / k).is_dir()}
    summary = {k: (summary.get(k) or kept[k]) for k in VALIDATIONS if k in summary or k in kept}
    write_report(out, summary, args.quick, names, report_commands(previous) + [command_line("validation", argv)])
    cli.record_outputs(out)
    progress.close()
    print(f"results: {(out / 'report.md').resolve()} (figures and details in {out.resolve()}/<name>/)")
    return 0 if this_run_ok else 1


def _previous_report(folder: Path) -> dict:
    """The report.json of an earlier run in ``folder`` (empty if there is none or it is unreadable)."""
    return read_report(folder)


def _check_forwarded(options: dict) -> None:
    """Check ``--data`` and ``--kernels`` before any work, as the validations' own commands do."""
    if "real_dual_pixel" in options:
        from .real_dual_pixel import _check_data

        _check_data(options["real_dual_pixel"]["data"])
    if "dual_pixel_calibration" in options:
        from .dual_pixel_calibration import KernelDataError, load_kernels

        try:
            load_kernels(options["dual_pixel_calibration"]["kernels"])
        except KernelDataError as err:
            cli.usage_error(str(err))


if __name__ == "__main__":
    raise SystemExit(main())
