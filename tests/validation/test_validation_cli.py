"""Issue 28: a single validation replaces its part of the folder ``python -m validation`` wrote
(with --overwrite), and ``python -m validation`` forwards --data and --kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")


def _run(*argv, cwd):
    return subprocess.run([sys.executable, "-m", *map(str, argv)], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


def _one_error(proc, *expected):
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("name", ["real_dual_pixel", "dual_pixel_calibration"])
def test_a_single_validation_replaces_its_part_of_the_report_with_overwrite(tmp_path, name):
    proc = _run("validation", "--quick", "--only", "dual_pixel_calibration", "real_dual_pixel", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = tmp_path / "validation_report_quick"  # --quick's default folder (issue 34)
    other = ({"real_dual_pixel", "dual_pixel_calibration"} - {name}).pop()
    kept = (report / other / f"{other}.md").read_bytes()
    _one_error(_run(f"validation.{name}", "--quick", cwd=tmp_path), "is not empty", "--overwrite")
    _one_error(_run(f"validation.{name}", "--overwrite", "--out", report / name, cwd=tmp_path),
               "refusing to mix --quick and full")
    (report / name / f"{name}.json").write_text("{}")  # replaced by the new run
    proc = _run(f"validation.{name}", "--quick", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "results:" in proc.stdout.splitlines()[-1] and "report.md replaced" in proc.stdout
    assert json.loads((report / name / f"{name}.json").read_text())["validation"] == name
    assert (report / other / f"{other}.md").read_bytes() == kept
    summary = json.loads((report / "report.json").read_text())
    assert list(summary["validations"]) == ["dual_pixel_calibration", "real_dual_pixel"]
    assert summary["validations"][name]["verdict"] == "NOT RUN"
    assert f"validation.{name} --quick --overwrite" in (report / "report.md").read_text()
    # the report folder stays whole: python -m validation --overwrite still replaces it
    proc = _run("validation", "--quick", "--only", "real_dual_pixel", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # a file added to the part since is named, nothing is removed
    (report / name / "notes.md").write_text("mine")
    _one_error(_run(f"validation.{name}", "--quick", "--overwrite", cwd=tmp_path), "'notes.md'", "did not write")
    assert (report / name / "notes.md").exists() and (report / name / f"{name}.json").exists()


def test_the_readme_single_validation_line_works_right_after_the_main_job(tmp_path):
    """Issue 34: after the (full) main job, the README's ``python -m validation.kernel_upsampling --quick`` was
    refused (the folder was the full report's part, and --overwrite refused to mix): --quick runs now default to
    validation_report_quick/, a folder of their own. The main job here is its fast part (no data: NOT RUN)."""
    main_job = _run("validation", "--only", "dual_pixel_calibration", "real_dual_pixel", cwd=tmp_path)
    assert main_job.returncode == 0, main_job.stderr
    full = (tmp_path / "validation_report" / "report.md").read_bytes()
    readme = [ln for ln in (REPO / "README.md").read_text().splitlines() if "-m validation.kernel_upsampling" in ln]
    assert readme, "the README shows no single-validation line"
    argv = readme[0].split("#")[0].split()
    assert argv[:3] == [".venv/bin/python", "-m", "validation.kernel_upsampling"], readme[0]
    proc = _run(*argv[2:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    own = tmp_path / "validation_report_quick" / "kernel_upsampling"
    assert (own / "kernel_upsampling.json").is_file() and str(own.resolve()) in proc.stdout.splitlines()[-1]
    assert (tmp_path / "validation_report" / "report.md").read_bytes() == full  # the main report untouched
    _one_error(_run(*argv[2:], cwd=tmp_path), "is not empty", "--overwrite")  # again: --overwrite, as everywhere


def test_the_report_keeps_its_whole_command_history(tmp_path):
    """Issue 34: after ``--only X --overwrite`` report.md's "Command:" line had dropped the earlier
    ``validation.Y --overwrite`` step; report.md and report.json list every command now."""
    steps = [("validation", "--quick", "--only", "dual_pixel_calibration", "real_dual_pixel"),
             ("validation.dual_pixel_calibration", "--quick", "--overwrite"),
             ("validation", "--quick", "--only", "real_dual_pixel", "--overwrite")]
    for step in steps:
        proc = _run(*step, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    report = tmp_path / "validation_report_quick"
    commands = ["python -m " + " ".join(step) for step in steps]
    summary = json.loads((report / "report.json").read_text())
    assert summary["commands"] == commands and summary["command"] == "; then ".join(commands)
    text = (report / "report.md").read_text()
    assert "Commands, in order" in text and all(f"{i}. `{c}`" in text for i, c in enumerate(commands, 1)), text


def test_validation_forwards_data_and_kernels(tmp_path, monkeypatch):
    _one_error(_run("validation", "--quick", "--only", "dual_pixel_calibration", "--data", tmp_path, cwd=tmp_path),
               "argument --data", "real_dual_pixel", "leaves out")
    _one_error(_run("validation", "--quick", "--only", "dual_pixel_calibration", "--kernels", tmp_path / "none",
                    "--out", tmp_path / "r", cwd=tmp_path), "--kernels", "none")
    assert not (tmp_path / "r").exists()  # checked before any work

    from validation import __main__ as suite
    from validation import _report, real_dual_pixel

    seen = {}

    def fake_run(out_dir, quick=False, data=None, psf="calibration"):
        seen["data"] = data
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return [_report.claim("c", "-", "-", "-", True)]

    monkeypatch.setattr(real_dual_pixel, "run", fake_run)
    monkeypatch.setattr(real_dual_pixel, "_check_data", lambda data: None)
    assert suite.main(["--quick", "--only", "real_dual_pixel", "--data", str(tmp_path), "--out",
                       str(tmp_path / "rep")]) == 0
    assert seen["data"] == tmp_path
    assert f"--data {tmp_path}" in (tmp_path / "rep" / "report.md").read_text()


def test_a_header_never_says_a_bare_pass_over_a_failed_row():
    """Issue 28: recursive_kernels' section said PASS over an informational row outside its tolerance."""
    from validation._report import claim, decides, markdown_table, verdict

    rows = [claim("a", "-", "-", "-", True), claim("b", "-", "-", "-", False, informational="not the paper's claim")]
    assert decides(rows) and verdict(rows) == "PASS (1 informational row FAIL)"
    assert "INFO (FAIL; not the paper's claim)" in markdown_table(rows)
    assert verdict(rows[:1]) == "PASS" and verdict([claim("c", "-", "-", "-", False)]) == "FAIL"
    not_run = [claim("d", "-", "-", "-", False, informational="needs data", not_run=True)]
    assert verdict(not_run) == "NOT RUN"


def test_figure_titles_say_what_they_show():
    """Issue 28: disparity_vs_coc said 'linear' over bending Butterworth points; fig2 showed one photo beside
    a table of 5-photo means."""
    from validation import dual_pixel, kernel_upsampling

    def entry(points):
        import numpy as np

        c, d = np.array([p[0] for p in points]), np.array([p[1] for p in points])
        slope, intercept = np.polyfit(c, d, 1)
        pred = slope * c + intercept
        r2 = 1 - np.sum((d - pred) ** 2) / np.sum((d - d.mean()) ** 2)
        return dict(rows=[dict(coc_px=x, disparity_px=y) for x, y in points], slope=slope, intercept=intercept, r2=r2)

    cocs = [-16, -12, -8, -4, 4, 8, 12, 16]
    bent = [(c, 0.7 * c if abs(c) <= 8 else 0.7 * 8 * (1 if c > 0 else -1) + 0.3 * (c - 8 * (1 if c > 0 else -1)))
            for c in cocs]  # Butterworth-like: slope drops beyond |CoC| 8
    title = dual_pixel.disparity_title({"half_disc": entry([(c, 0.85 * c) for c in cocs]), "butterworth": entry(bent)})
    assert "linear" not in title and "half_disc straight" in title and "butterworth not straight: bends" in title
    title = kernel_upsampling.figure2_title("camera", 5)
    assert "one photo ('camera') of the 5" in title and "mean" in title
