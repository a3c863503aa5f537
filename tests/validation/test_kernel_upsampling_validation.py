"""Smoke test of `python -m validation.kernel_upsampling --quick` and of the report it writes."""

from __future__ import annotations

import json

from validation import kernel_upsampling


def test_quick_run_passes_and_writes_report(tmp_path):
    code = kernel_upsampling.main(["--quick", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "kernel_upsampling.json").read_text())
    failed = [c["claim"] for c in report["claims"] if not c["passed"]]
    assert code == 0, failed
    assert len(report["claims"]) == 3 + 3 + 3 + 5  # Fig. 1 (per sigma), Eq. 3/4 (per eps), Fig. 3 (per s), Fig. 2
    for fig in report["figures"]:
        assert (tmp_path / fig).stat().st_size > 10_000
    md = (tmp_path / "kernel_upsampling.md").read_text()
    assert "98.68" in md and "PASS" in md  # the paper's figure sits beside ours


def test_accuracy_metric_definition():
    import numpy as np

    x_s = np.array([0.5, 1.0, 0.01])
    x_hat = np.array([0.45, 1.1, 5.0])
    acc, kept = kernel_upsampling.approximation_accuracy(x_hat, x_s, floor=0.05)
    assert kept == 2 / 3
    assert abs(acc - 100 * (1 - (0.1 + 0.1) / 2)) < 1e-12
