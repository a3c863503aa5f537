"""benchmarks.dual_pixel_synthetic: its scene, its regions, and one source end to end (issue 32)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import dual_pixel_synthetic as bench


def test_regions_partition_the_frame_and_the_edge_band_reaches_8_px_either_side():
    labels = bench.scene_labels((336, 504))
    assert set(np.unique(labels)) == {0, 1, 2}
    masks = bench.region_masks(labels)
    total = sum(m.astype(int) for m in masks.values())
    assert total.max() == 1 and total.min() == 1  # every pixel in exactly one region
    row = labels[:, 252]
    edge = int(np.flatnonzero(row == 1)[0])  # the subject's top edge on the centre column
    band = np.flatnonzero(masks["edges"][:, 252] & (np.abs(np.arange(336) - edge) < 20))
    assert band.min() == edge - bench.EDGE_BAND and band.max() == edge + bench.EDGE_BAND


@pytest.mark.slow
def test_one_source_end_to_end_meets_the_in_focus_targets(tmp_path):
    out = tmp_path / "report.md"
    assert bench.main(["--sources", "disc+1", "--encodings", "srgb8", "--out", str(out)]) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| disc+1 | srgb8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    in_focus, all_in_focus = float(cells[2].split()[0]), float(cells[6].split()[0])
    assert in_focus >= -0.1 and all_in_focus >= -0.1, row  # measured +0.00 and +0.00
    assert float(cells[4].split()[0]) >= 2.0, row  # near: measured +4.69


def test_bad_arguments_are_one_line(capsys):
    with pytest.raises(SystemExit) as err:
        bench.main(["--sources", "calibration"])
    assert err.value.code == 2
    assert "'calibration' needs --data" in capsys.readouterr().err
