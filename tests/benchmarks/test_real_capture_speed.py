"""benchmarks.real_capture_speed and benchmarks.real_capture_profile on a scene in Xin et al.'s layout: the
tables, the verdicts and the one-line errors (the timings themselves are never asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_speed_table_against_this_checkout_as_baseline(xin, tmp_path, run_module):
    out = tmp_path / "speed.md"
    proc = run_module("benchmarks.real_capture_speed", "--data", xin, "--scenes", "001", "--baseline", REPO,
                      "--repeats", "1", "--threads", "1", "--target", "100", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]  # the same code against itself: ratio about 1 <= 100
    text = out.read_text()
    assert "| ours |" in text and "| baseline |" in text and "| ours / baseline |" in text and "PASS" in text
    again = run_module("benchmarks.real_capture_speed", "--data", xin, "--scenes", "001", "--out", out)
    assert again.returncode == 2 and "exists" in again.stderr  # results are never overwritten


def test_speed_verdict_fails_an_impossible_target(xin, run_module):
    proc = run_module("benchmarks.real_capture_speed", "--data", xin, "--scenes", "001", "--baseline", REPO,
                      "--repeats", "1", "--threads", "1", "--target", "0.01")
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def test_profile_has_every_phase(xin, run_module):
    proc = run_module("benchmarks.real_capture_profile", "--data", xin, "--scene", "001", "--repeats", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for phase in ("imports of optics.dual_pixel.deblur", "cost volume", "aggregation", "layered deconvolution",
                  "PNG encoding", "imports + main"):
        assert f"| {phase} |" in proc.stdout
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in proc.stdout.splitlines()
            if line.startswith("| ") and line.split("|")[2].strip().replace(".", "").isdigit()}
    assert rows["cost volume"] > 0 and rows["layered deconvolution"] > 0  # the wrapped phases ran


@pytest.mark.parametrize("module, args, expected", [
    ("benchmarks.real_capture_speed", ["--scenes", "999"], "has no 999_left.png"),
    ("benchmarks.real_capture_speed", ["--repeats", "0"], "--repeats must be >= 1"),
    ("benchmarks.real_capture_speed", ["--scenes", "001", "--baseline", "/"], "is not a checkout of this project"),
    ("benchmarks.real_capture_profile", ["--scene", "999"], "has no 999_left.png"),
])
def test_bad_arguments_are_one_line(xin, module, args, expected, run_module):
    proc = run_module(module, "--data", xin, *args)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr
