"""benchmarks.dual_pixel_oracle and benchmarks.dual_pixel_tuning: the oracle's arithmetic, both commands on a
scene in Xin et al.'s layout, and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.dual_pixel_oracle import oracle_index


def test_oracle_index_picks_the_layer_closest_in_each_window():
    target = np.zeros((40, 60))
    stack = np.stack([target + 0.3, target + 0.1, target + 0.2])
    stack[2, :, 30:] = 0.0  # the right half of layer 2 is exact
    idx = oracle_index(stack, target, sigma=2.0)
    assert idx.shape == target.shape and idx.dtype == stack.dtype
    assert np.all(idx[:, :20] == 1) and np.all(idx[:, 40:] == 2)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        oracle_index(stack, target, 0.0)
    with pytest.raises(ValueError, match=r"stack must be \(S, H, W\)"):
        oracle_index(stack[:, :10], target, 1.0)


def test_oracle_bounds_the_method_on_a_scene_in_the_authors_layout(xin, tmp_path, run_module):
    out = tmp_path / "oracle.md"
    proc = run_module("benchmarks.dual_pixel_oracle", "--data", xin, "--sigma", "8", "--workers", "1",
                      "--set", "centre_weight=0.5", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(ln for ln in out.read_text().splitlines() if ln.startswith("| 001 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    inp, ours, const, oracle = float(cells[1]), float(cells[2]), float(cells[3].split()[0]), float(cells[4])
    assert ours > inp + 1  # a known blur, deblurred with its own kernels (default map, 21 scales)
    assert oracle >= ours - 0.05 and oracle >= const - 1e-6  # the oracle bounds the method and every constant map
    assert cells[5] == f"{oracle - ours:+.2f}"
    assert proc.stderr.rstrip().splitlines()[-1] == f"results: {out}"


def test_tuning_grid_rows_equal_the_benchmark_settings(xin, tmp_path, run_module):
    out = tmp_path / "grid.md"
    proc = run_module("benchmarks.dual_pixel_tuning", "--data", xin, "--scenes", "001", "--workers", "1",
                      "--grid", "deconvolution=wiener,tv", "--grid", "centre_weight=0.5,1", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| wiener") or ln.startswith("| tv")]
    assert len(rows) == 4
    best = rows[0].split("|")
    assert best[2].strip() == "0.5"  # this fixture's ground truth is the full-aperture image


@pytest.mark.parametrize("module, args, message", [
    ("benchmarks.dual_pixel_oracle", ["--data", "nowhere"], "--data 'nowhere' has no gt_all_in_focus_im/"),
    ("benchmarks.dual_pixel_oracle", ["--data", "x", "--sigma", "0"], "argument --sigma: expected finite numbers > 0"),
    ("benchmarks.dual_pixel_oracle", ["--data", "x", "--set", "speed=3"], "expected NAME=VALUE"),
    ("benchmarks.dual_pixel_tuning", ["--data", "x"], "argument --grid: expected at least one"),
    ("benchmarks.dual_pixel_tuning", ["--data", "x", "--grid", "tv_weight=a"], "tv_weight needs numbers"),
    ("benchmarks.dual_pixel_tuning", ["--data", "x", "--grid", "radius=3"], "expected NAME=V1,V2"),
    ("benchmarks.dual_pixel_scale_bias", ["--data", "x", "--scale", "1.6"], "argument --scale: expected -0.675 to 1.525"),
    ("benchmarks.dual_pixel_scale_bias", ["--data", "nowhere"], "--data 'nowhere' has no gt_all_in_focus_im/"),
])
def test_bad_input_is_one_line(module, args, message, run_module):
    proc = run_module(module, *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
