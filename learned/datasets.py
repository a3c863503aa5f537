"""``python -m learned.datasets check SPEC``: check a downloaded dataset against its published layout.

It counts every split against the published counts, reports image sizes and bit depths, prints the
first and last pairs, says whether dual-pixel views are present, and when it is pointed at the
wrong folder level it says which folder to point at. It exits 1 on any problem. The readers, and
the layouts they expect, are in :mod:`learned.data.readers` (their names are also exported here).
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from optics import cli

from .data.build import build_dataset, parse_spec
from .data.readers import (
    cuhk_records,
    DPDD_KNOWN_GAPS,
    dpdd_records,
    frame_number,
    image_shape,
    lfdof_records,
    list_for_split,
    list_records,
    list_split,
    parse_list_spec,
    pixel4_vignetting_scale,
    PIXEL4_VIGNETTING_WINDOW,
    pixeldp_records,
    PUBLISHED_COUNTS,
    PUBLISHED_LIST_COUNTS,
    read_pixel4_view,
    realdof_records,
    rtf_records,
    suggest_level,
)

__all__ = [
    "PUBLISHED_COUNTS",
    "DPDD_KNOWN_GAPS",
    "frame_number",
    "dpdd_records",
    "rtf_records",
    "lfdof_records",
    "realdof_records",
    "cuhk_records",
    "pixeldp_records",
    "read_pixel4_view",
    "pixel4_vignetting_scale",
    "PIXEL4_VIGNETTING_WINDOW",
    "list_records",
    "parse_list_spec",
    "list_split",
    "list_for_split",
    "suggest_level",
    "image_shape",
    "check_split",
    "check_dataset",
    "format_report",
    "main",
]


# ==================================================================================================
# check
# ==================================================================================================
@dataclass
class SplitReport:
    """What ``check`` found for one split."""

    split: str
    count: int = 0
    published: Optional[int] = None
    sizes: Counter = field(default_factory=Counter)
    depths: Counter = field(default_factory=Counter)
    dual_pixel: bool = False
    has_target: bool = False
    cropped: bool = False
    first: str = ""
    last: str = ""
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def _rel(path: Optional[Path], root: Path) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _pair_text(record, root: Path) -> str:
    centre = "(left + right) / 2" if record.left is not None and record.left == record.input else _rel(record.input, root)
    text = f"{record.name}: {centre}"
    if record.target is not None:
        text += f" -> {_rel(record.target, root)}"
    if record.left is not None:
        text += f" (views {_rel(record.left, root)}, {_rel(record.right, root)})"
    return text


def _has_list(file: Path, options: Dict[str, str], split: str) -> bool:
    try:
        list_for_split(file, options, split)
        return True
    except ValueError:
        return False


def _splits(kind: str, root: Path, options: Dict[str, str]) -> Tuple[str, ...]:
    if kind == "list":
        return tuple(s for s in ("train", "val", "test") if _has_list(root, options, s))
    if kind == "folder":
        return tuple(s for s in ("train", "val", "test") if (root / s).is_dir()) or ("test",)
    return {"dpdd": ("train", "val", "test"), "lfdof": ("train", "test")}.get(kind, ("test",))


def check_split(spec: str, split: str) -> SplitReport:
    """Build ``spec``'s ``split`` and inspect it (headers only; no pixel data is read)."""
    kind, root, options = parse_spec(spec)
    report = SplitReport(split)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = build_dataset(spec, split)
        except (ValueError, FileNotFoundError) as err:
            report.problems.append(str(err))
            return report
    for w in caught:
        (report.notes if "motion-blurred" in str(w.message) else report.problems).append(str(w.message))
    records = dataset.records
    base = root if kind != "list" else Path(options["root"]) if "root" in options else root.parent
    report.count = len(records)
    report.published = PUBLISHED_COUNTS.get("pixel4" if kind == "pixeldp" and dataset.centre_from_views else kind, {}).get(split)
    if kind == "list":
        report.published = PUBLISHED_LIST_COUNTS.get(list_for_split(root, options, split).name)
    if report.published is not None and report.count != report.published:
        report.problems.append(f"{split}: {report.count} samples, but the published {kind} {split} split has "
                               f"{report.published}")
    report.dual_pixel = dataset.has_dual_pixel
    report.cropped = dataset.centre_from_views
    report.has_target = dataset.has_target
    report.first, report.last = _pair_text(records[0], base), _pair_text(records[-1], base)
    header = {}

    def shape_of(path: Path):
        if path not in header:
            header[path] = image_shape(path)
        return header[path]

    for r in records:
        shapes = {}
        for key in ("input", "target", "left", "right"):
            path = getattr(r, key)
            if path is None or (key == "input" and dataset.centre_from_views):
                continue
            first = path not in header
            try:
                h, w, c, bits = shape_of(path)
            except ValueError as err:
                report.problems.append(str(err))
                continue
            if first:  # each file once (LFDOF's ground truth serves up to 15 inputs)
                report.depths[bits] += 1
            shapes[key] = (h, w)
            if key == ("target" if dataset.centre_from_views else "input"):
                report.sizes[f"{h}x{w}"] += 1
        if dataset.centre_from_views and "target" in shapes:
            shapes = {"target": shapes["target"]}  # the views are cropped to the ground truth
        if len(set(shapes.values())) > 1:
            report.problems.append(f"{r.name}: image sizes differ " + ", ".join(f"{k} {h}x{w}" for k, (h, w) in shapes.items()))
    return report


def check_dataset(spec: str) -> Tuple[List[SplitReport], List[str]]:
    """Reports of every split of ``spec`` and the list of problems (empty when all is well)."""
    kind, root, options = parse_spec(spec)
    if kind == "synthetic":
        raise ValueError("synthetic data is rendered on the fly; there is nothing on disk to check")
    if not root.exists():
        raise ValueError(f"{'list file' if kind == 'list' else 'dataset folder'} {str(root)!r} does not exist")
    reports = [check_split(spec, s) for s in _splits(kind, root, options)]
    problems = [p for r in reports for p in r.problems]
    return reports, problems


def format_report(spec: str, reports: Sequence[SplitReport]) -> str:
    lines = [f"# {spec}"]
    for r in reports:
        published = f" (published: {r.published})" if r.published is not None else ""
        lines.append(f"{r.split}: {r.count} samples{published}")
        if r.count:
            sizes = ", ".join(f"{s} ({n})" for s, n in r.sizes.most_common(4)) + (" ..." if len(r.sizes) > 4 else "")
            depths = ", ".join(f"{b}-bit ({n} files)" for b, n in sorted(r.depths.items()))
            lines += [f"  sizes (HxW): {sizes}" + (" (the views cropped to the ground truth's window)" if r.cropped else ""),
                      f"  bit depths: {depths}",
                      f"  ground truth: {'yes' if r.has_target else 'no (inputs only)'}",
                      f"  dual-pixel views: {'yes' if r.dual_pixel else 'no'}",
                      f"  first: {r.first}", f"  last:  {r.last}"]
        lines += [f"  note: {n}" for n in r.notes]
        lines += [f"  PROBLEM: {p}" for p in r.problems]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m learned.datasets check SPEC``: exit 0 when no problem is found, 1 on a problem in the
    data, 2 for a bad spec or a missing path (one ``error:`` line, :func:`optics.cli.run`)."""
    return cli.run(_main, argv)


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = cli.ArgumentParser(
        prog="python -m learned.datasets",
        description="Check a downloaded dataset against its published layout and counts.",
        epilog="Specs: dpdd:PATH, lfdof:PATH, realdof:PATH, rtf:PATH, cuhk:PATH, pixeldp:PATH, folder:PATH, "
               "list:FILE[,root=DIR]. Layouts: see the docstring of learned/data/readers.py.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="counts, sizes, bit depths and pairing of every split; exit 1 on a problem")
    check.add_argument("spec", help="dataset spec, e.g. dpdd:/data/dd_dp_dataset_png")
    args = parser.parse_args(argv)
    reports, problems = check_dataset(args.spec)  # bad spec / missing path: one error line, exit 2 (cli.run)
    print(format_report(args.spec, reports))
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
    else:
        print("ok: no problems found")
    print(f"results: the report above on stdout ({len(reports)} split(s) of {args.spec}, {len(problems)} problem(s); "
          "redirect with > FILE to keep it)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
