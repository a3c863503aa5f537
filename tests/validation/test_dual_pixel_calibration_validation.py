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
