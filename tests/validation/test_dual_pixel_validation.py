"""validation.dual_pixel --quick: every claim passes, rows are well-formed, files are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from validation import dual_pixel


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("dual_pixel")
    exit_code = dual_pixel.main(["--quick", "--out", str(out)])  # the CLI calls run(out, quick=True)
    return out, exit_code


def test_quick_run_passes(quick_report):
    out, exit_code = quick_report
    rows = json.loads((out / "dual_pixel.json").read_text())["claims"]
    assert len(rows) >= 9
    for row in rows:
        assert {"claim", "paper", "ours", "tolerance", "passed"} <= set(row)
        assert isinstance(row["passed"], bool)
    failed = [r["claim"] for r in rows if not r["passed"]]
    assert not failed, failed
    assert exit_code == 0


def test_quick_run_writes_markdown_and_figures(quick_report):
    out, _ = quick_report
    md = (out / "dual_pixel.md").read_text()
    assert "| claim | paper | ours | tolerance | result |" in md
    for fig in ("psfs.png", "disparity_vs_coc.png", "rendered_scene.png"):
        assert (out / fig).stat().st_size > 1000


def test_disparity_measure_on_a_known_shift():
    rng = np.random.default_rng(0)
    right = rng.random((32, 64))
    left = np.roll(right, 5, axis=1)  # left = right displaced by +5 px
    assert dual_pixel.measure_disparity(left, right, max_shift=10) == pytest.approx(5.0, abs=1e-9)
    assert dual_pixel.measure_disparity(right, left, max_shift=10) == pytest.approx(-5.0, abs=1e-9)
