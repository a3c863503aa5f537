"""``python -m validation [--quick] [--out DIR]``: run every validation and write one report.

Each module listed in :data:`VALIDATIONS` exposes ``run(out_dir, quick) -> list[dict]``; its figures,
JSON and markdown go to ``OUT/<name>/`` and all claims are collected into ``OUT/report.md`` and
``OUT/report.json``. Exits 0 iff every claim passes.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from optics import cli
from optics.atomic import atomic_write_bytes

from ._report import decides, is_report_file, markdown_table, write_json

#: Explicit list of validation modules (no directory scanning). Modules that are not present in
#: this checkout are reported as missing, never silently skipped.
VALIDATIONS = [
    "kernel_upsampling",
    "dual_pixel",
    "recursive_kernels",
    "iac_receptive_field",
    "dual_pixel_calibration",  # needs the Pixel 4 kernels (--kernels); here it reports 'needs data'
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
    cli.add_overwrite_argument(parser, "a previous report in --out (cleared first)")
    args = parser.parse_args(argv)
    names = args.only or VALIDATIONS
    unknown = sorted(set(names) - set(VALIDATIONS))
    if unknown:
        parser.error(f"unknown validation(s) {unknown}; choose from {VALIDATIONS}")
    out = cli.prepare_output_dir(args.out, overwrite=args.overwrite, owned=_owned)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    sections, summary, all_ok = [], {}, True
    progress = tqdm(names, desc="validation", unit="validation", file=sys.stderr)
    for name in progress:
        progress.set_postfix_str(name)
        module = importlib.import_module(f"validation.{name}")
        t0 = time.perf_counter()
        rows = module.run(out / name, args.quick)
        seconds = time.perf_counter() - t0
        ok = decides(rows)
        all_ok &= ok
        summary[name] = dict(passed=ok, seconds=round(seconds, 1), claims=rows)
        figs = sorted(p.name for p in (out / name).glob("*.png"))
        sections.append(
            f"## {name}: {'PASS' if ok else 'FAIL'} ({seconds:.0f} s)\n\n"
            f"Details: [{name}/{name}.md]({name}/{name}.md)\n\n" + markdown_table(rows)
            + "".join(f"\n![{f}]({name}/{f})\n" for f in figs)
        )
        progress.write(f"[{'PASS' if ok else 'FAIL'}] validation.{name} ({seconds:.0f} s)", file=sys.stdout)
    header = f"# Validation report{' (--quick)' if args.quick else ''}\n\nCommand: `python -m validation{' --quick' if args.quick else ''}`\n\n"
    atomic_write_bytes(out / "report.md", (header + "\n".join(sections)).encode())
    write_json(out / "report.json", dict(quick=args.quick, passed=all_ok, validations=summary))
    cli.record_outputs(out)
    progress.close()
    print(f"results: {(out / 'report.md').resolve()} (figures and details in {out.resolve()}/<name>/)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
