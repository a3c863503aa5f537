"""validation.dual_pixel_calibration without the (unshipped) Pixel 4 kernels: needs-data path,
input checks, the mirror-symmetric floor and the grid layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optics import CalibratedDPParams, calibrated_dual_pixel_psfs
from validation import dual_pixel_calibration as dpc
from validation._report import decides


def test_without_kernels_says_what_it_needs_and_passes(tmp_path, capsys):
    rows = dpc.run(tmp_path / "a")
    assert decides(rows) and rows[0]["informational"] == "needs data"
    assert "cmu-ci-lab/dual_pixel_defocus_estimation_deblurring" in rows[0]["ours"]
    assert json.loads((tmp_path / "a" / "dual_pixel_calibration.json").read_text())["ran"] is False
    assert dpc.main(["--out", str(tmp_path / "b")]) == 0
    assert "blur_kernels_left.npy" in capsys.readouterr().out


def test_bad_kernel_folder_is_a_one_line_error(tmp_path, capsys):
    assert dpc.main(["--kernels", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --kernels")
    np.save(tmp_path / "blur_kernels_left.npy", np.zeros((48, 60, 60), np.float32))
    np.save(tmp_path / "blur_kernels_right.npy", np.zeros((48, 60, 60), np.float32))
    with pytest.raises(dpc.KernelDataError, match="blur_kernels_left.npy must be"):
        dpc.load_kernels(tmp_path)


def test_mirror_floor():
    p = CalibratedDPParams(tilt_left_x=0.5, tilt_right_x=-0.5)  # mirror-symmetric parameters
    k = calibrated_dual_pixel_psfs(8.0, p, size=31)
    left = np.roll(k.left, 2, axis=1)  # the pair's axis is 2 px right of the centre
    right = np.roll(k.right, 2, axis=1)
    assert dpc.mirror_floor(left, right) < 1e-12
    asym = calibrated_dual_pixel_psfs(8.0, CalibratedDPParams(split_offset=0.3, tilt_left_y=1.0), size=31)
    assert dpc.mirror_floor(asym.left, asym.right) > 0.05


def test_cell_positions_follow_row_major_index():
    pos = dpc.cell_positions()
    assert pos.shape == (48, 2)
    np.testing.assert_allclose(pos[0], [83.5, 83.5])
    np.testing.assert_allclose(pos[7], [7 * 168 + 83.5, 83.5])  # index = row * 8 + col
    np.testing.assert_allclose(pos[9], [168 + 83.5, 168 + 83.5])
    assert dpc.FRAME == (1008, 1344)


def _kernels(folder, n=9):
    folder.mkdir(parents=True, exist_ok=True)
    k = np.random.default_rng(0).random((48, n, n)).astype(np.float32)
    k /= k.sum(axis=(1, 2), keepdims=True)
    np.save(folder / "blur_kernels_left.npy", k)
    np.save(folder / "blur_kernels_right.npy", k[:, :, ::-1].copy())
    return k


def test_kernels_accepts_the_data_folder(tmp_path, capsys):
    """Issue 34: --kernels DIR takes the data folder DP_data_pixel_4 (the README's DIR), whose calibration/ holds
    the kernels, as well as calibration/ itself; a folder with neither says both."""
    data = tmp_path / "DP_data_pixel_4"
    k = _kernels(data / "calibration")
    for folder in (data, data / "calibration"):
        left, right = dpc.load_kernels(folder)
        assert np.array_equal(left, k) and np.array_equal(right, k[:, :, ::-1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(dpc.KernelDataError, match=r"'.*empty' \(nor its calibration/ folder\) has no blur_kernels_left"):
        dpc.load_kernels(tmp_path / "empty")
    # python -m validation forwards it and checks it the same way (before any work)
    from validation import __main__ as suite

    assert suite._check_forwarded({"dual_pixel_calibration": {"kernels": data}}) is None


def test_a_calibration_run_shows_its_progress(tmp_path, monkeypatch, capsys):
    """Issue 34: the full run took 6 minutes without a word; a progress bar on stderr counts its fits."""
    from types import SimpleNamespace

    from optics import cli

    data = tmp_path / "DP_data_pixel_4"
    _kernels(data / "calibration")
    fit = SimpleNamespace(rel_l2=0.1, rel_l1=0.1, params={})

    class Field:
        def __init__(self, left, *a, **k):
            self.rel_l2 = np.full(len(left), 0.1)
            self.field = SimpleNamespace(to_json=lambda: "{}")

        def score(self, left, right, positions):
            return None, np.full(len(left), 0.1)

    monkeypatch.setattr(dpc, "fit_dual_pixel_psfs", lambda *a, **k: fit)
    monkeypatch.setattr(dpc, "fit_dual_pixel_field", Field)
    for name in ("figure_pairs", "figure_split", "figure_field"):
        monkeypatch.setattr(dpc, name, lambda *a, **k: "figure.png")
    monkeypatch.setattr(cli, "PROGRESS_LINE_INTERVAL", 0.0)
    for quick, total in ((True, 8 * 3 + 48 + 8 + 2), (False, 48 * 3 + 48 + 48 + 3)):
        rows = dpc.run(tmp_path / f"out{quick}", quick, data)
        assert decides(rows)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("dual_pixel_calibration:")]
        assert len(lines) >= 2 and f"{total}/{total}" in lines[-1] and "100%" in lines[-1], err
