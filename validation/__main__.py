"""``python -m validation [--quick] [--out DIR]``: run every validation and write one report.

Each module listed in :data:`VALIDATIONS` exposes ``run(out_dir, quick) -> list[dict]``; its figures,
JSON and markdown go to ``OUT/<name>/`` and all claims are collected into ``OUT/report.md`` and
``OUT/report.json``. Exits 0 iff every claim passes.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from pathlib import Path

from optics import cli
from optics.atomic import atomic_write_bytes

import json

from ._report import decides, is_report_file, markdown_table, verdict, write_json

#: Explicit list of validation modules (no directory scanning). Modules that are not present in
#: this checkout are reported as missing, never silently skipped.
VALIDATIONS = [
    "kernel_upsampling",
    "dual_pixel",
    "recursive_kernels",
    "iac_receptive_field",
    "dual_pixel_calibration",  # needs the Pixel 4 kernels (--kernels); here it reports 'needs data'
    "real_dual_pixel",  # needs Xin et al.'s Pixel 4 scenes (--data); here it reports 'needs data'
]


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
    parser.add_argument("--out", type=Path, default=Path("validation_report"), help="report folder")
    parser.add_argument("--only", nargs="*", default=None, help="run only these validations")
    cli.add_overwrite_argument(parser, "a previous report in --out (cleared first; with --only, only the "
                               "named validations' parts are replaced)")
    args = parser.parse_args(argv)
    names = args.only or VALIDATIONS
    unknown = sorted(set(names) - set(VALIDATIONS))
    if unknown:
        parser.error(f"unknown validation(s) {unknown}; choose from {VALIDATIONS}")
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
        rows = module.run(out / name, args.quick)
        seconds = time.perf_counter() - t0
        this_run_ok &= decides(rows)
        summary[name] = dict(passed=decides(rows), verdict=verdict(rows), seconds=round(seconds, 1), claims=rows)
        progress.write(f"[{verdict(rows)}] validation.{name} ({seconds:.0f} s)", file=sys.stdout)
    kept = {k: v for k, v in previous.get("validations", {}).items() if k not in summary and (out / k).is_dir()}
    summary = {k: (summary.get(k) or kept[k]) for k in VALIDATIONS if k in summary or k in kept}
    all_ok = all(v["passed"] for v in summary.values())
    sections = []
    for name, entry in summary.items():
        rows, seconds = entry["claims"], entry["seconds"]
        figs = sorted(p.name for p in (out / name).glob("*.png"))
        sections.append(
            f"## {name}: {verdict(rows)} ({seconds:.0f} s{'' if name in names else ', an earlier run'})\n\n"
            f"Details: [{name}/{name}.md]({name}/{name}.md)\n\n" + markdown_table(rows)
            + "".join(f"\n![{f}]({name}/{f})\n" for f in figs)
        )
    header = f"# Validation report{' (--quick)' if args.quick else ''}\n\nCommand: `python -m validation{' --quick' if args.quick else ''}`\n\n"
    atomic_write_bytes(out / "report.md", (header + "\n".join(sections)).encode())
    write_json(out / "report.json", dict(quick=args.quick, passed=all_ok, validations=summary))
    cli.record_outputs(out)
    progress.close()
    print(f"results: {(out / 'report.md').resolve()} (figures and details in {out.resolve()}/<name>/)")
    return 0 if this_run_ok else 1


def _previous_report(folder: Path) -> dict:
    """The report.json of an earlier run in ``folder`` (empty if there is none or it is unreadable)."""
    try:
        report = json.loads((Path(folder) / "report.json").read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) and isinstance(report.get("validations"), dict) else {}


if __name__ == "__main__":
    raise SystemExit(main())
