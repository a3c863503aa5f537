"""validation.real_dual_pixel and benchmarks.real_dual_pixel: NOT RUN without data, bad input, and one
scene in Xin et al.'s layout (names and nesting of DP_data_pixel_4) scored end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from optics.image_io import png_bytes
from validation import real_dual_pixel as rdp

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(17)


def _run(*args, cwd):
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_without_data_it_reports_not_run(tmp_path):
    rows = rdp.run(tmp_path / "a")
    assert len(rows) == 1 and rows[0]["not_run"] and not rows[0]["passed"]
    assert json.loads((tmp_path / "a" / "real_dual_pixel.json").read_text())["ran"] is False
    proc = _run("validation", "--quick", "--only", "real_dual_pixel", "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert "[NOT RUN] validation.real_dual_pixel" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--data", "nowhere"], "has no gt_all_in_focus_im/ folder"),
    (["--data", ".", "--set", "wiener_eps"], "argument --set"),
    (["--data", ".", "--workers", "0"], "--workers must be"),
])
def test_benchmark_bad_input_is_one_line(tmp_path, args, message):
    proc = _run("benchmarks.real_dual_pixel", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array))


def test_one_scene_in_the_authors_layout_is_scored(tmp_path):
    """DP_data_pixel_4/{001_left,001_right}.png, gt_all_in_focus_im/001_gt.png, gt_defocus_map/001_gt.png,
    calibration/{blur_kernels_*.npy, white_sheet_*.png}: 2016x1512 raw views, 1344x1008 ground truth."""
    root = tmp_path / "DP_data_pixel_4"
    sharp = ndimage.gaussian_filter(RNG.random((1512, 2016)), 2.0)
    sharp = 0.1 + 0.8 * (sharp - sharp.min()) / np.ptp(sharp)
    k = np.zeros((9, 9))
    k[4, 2:5] = 1 / 3  # left half of a small disc; the right view's kernel is its mirror image
    views = {"left": ndimage.convolve(sharp, k, mode="mirror"), "right": ndimage.convolve(sharp, k[:, ::-1], mode="mirror")}
    for side, view in views.items():
        _write(root / f"001_{side}.png", np.round(1024 + view * 16383).astype(np.uint16))
        _write(root / f"calibration/white_sheet_{side}.png", np.full((1512, 2016), 1024 + 9000, np.uint16))
        np.save(root / f"calibration/blur_kernels_{side}.npy",
                np.broadcast_to(k if side == "left" else k[:, ::-1], (48, 9, 9)).astype(np.float32))
    crop = (slice(252, 252 + 1008), slice(336, 336 + 1344))
    _write(root / "gt_all_in_focus_im/001_gt.png", np.round(sharp[crop] * 65535).astype(np.uint16))
    depth = np.tile(np.linspace(1, 255, 1344), (1008, 1)).astype(np.uint8)
    _write(root / "gt_defocus_map/001_gt.png", depth)
    # centre_weight 0.5: this fixture's ground truth is the full-aperture image (Xin et al.'s sits near the left view)
    rows = rdp.measure(root, options=dict(scales=(0.5, 1.0, 1.5), scale_bias=0.0, workers=1, centre_weight=0.5))
    (row,) = rows
    assert row["scene"] == "001" and row["split"] == "tuning"
    assert abs(row["gt_scale"] - 1) < 0.01  # equal white sheets: no gain beyond the zero-padded border
    assert row["gain"] > 3 and row["gain_reg"] > 3  # a known 3 px blur, deblurred with its own kernels
    means = rdp.summary(rows)
    assert means["all"]["gain"] == row["gain"] and "held-out 009-017" not in means


def _fake_measure(interrupt: bool):
    def measure(data, scenes, psf, figures_to, log=print):
        rows = []
        for name in ("001", "009"):
            (figures_to / f"scene_{name}.png").write_bytes(b"png")
            if interrupt and name == "009":
                raise KeyboardInterrupt
            row = dict(scene=name, split="tuning" if name == "001" else "held-out", seconds=1.0, gt_scale=1.0,
                       spearman=0.9, spearman_all=0.8, figure=f"scene_{name}.png")
            for tag in ("", "_reg"):
                row.update({f"input_psnr{tag}": 30.0, f"ours_psnr{tag}": 33.0, f"gain{tag}": 3.0})
            row.update(input_ssim=0.8, ours_ssim=0.9)
            rows.append(row)
        return rows
    return measure


def test_an_interrupted_run_leaves_no_partial_report(tmp_path, monkeypatch):
    """Issue 28: Ctrl-C half-way through the scenes leaves neither figures nor a record of some scenes."""
    out = tmp_path / "out"
    monkeypatch.setattr(rdp, "measure", _fake_measure(interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        rdp.run(out, data=tmp_path)
    assert list(out.iterdir()) == []
    monkeypatch.setattr(rdp, "measure", _fake_measure(interrupt=False))
    rows = rdp.run(out, data=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["real_dual_pixel.json", "real_dual_pixel.md", "scene_001.png",
                                                     "scene_009.png"]
    assert rows[0]["passed"]
