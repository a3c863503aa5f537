"""benchmarks.training: runs, reuse of finished runs, --collect, the summary and never overwriting."""

from __future__ import annotations

import json

import pytest

from benchmarks import training

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_study_records_reuses_and_tabulates(tmp_path, capsys, monkeypatch):
    runs, out = tmp_path / "runs", tmp_path / "table.md"
    argv = ["--models", "kpac", "--seeds", "3", "--steps", "2", "--runs", str(runs), "--device", "cpu"]
    assert training.main(argv + ["--out", str(out)]) == 0
    record = json.loads((runs / "kpac-seed3" / training.RESULT_NAME).read_text())
    evaluation = json.loads((runs / "kpac-seed3" / "eval.json").read_text())
    assert record["gain_db"] == evaluation["gain_db"] and record["steps"] == 2 and record["wall_s"] > 0
    table = out.read_text()
    assert "| kpac | 3 | 2 |" in table and f"{record['gain_db']:+.2f}" in table
    assert ("| kpac | 1 |" in table) and (("PASS" in table) == (record["gain_db"] > 0))
    # a finished run is not trained again
    monkeypatch.setattr("learned.train.train", lambda *a, **k: pytest.fail("retrained a finished run"))
    assert training.main(argv) == 0
    assert training.main(argv + ["--collect"]) == 0
    with pytest.raises(SystemExit) as err:
        training.main(argv + ["--out", str(out)])
    assert err.value.code == 2 and "exists" in capsys.readouterr().err
    assert training.main(["--runs", str(tmp_path / "empty"), "--collect"]) == 2


def test_summary_targets():
    rows = [{"model": "kpac", "seed": s, "gain_db": g, "wall_s": 100.0} for s, g in ((0, 0.3), (1, -0.1))]
    (s,) = training.summarise(rows, "cpu-smoke", [0, 1])
    assert s["mean_gain_db"] == pytest.approx(0.1) and s["target"] == "PASS"
    assert training.summarise(rows, "cpu-smoke", [0, 1, 2])[0]["target"].startswith("incomplete")
    assert training.summarise(rows, "gpu-smoke", [0, 1])[0]["target"] == "FAIL"  # +0.1 < +1 dB
    fast = [dict(r, gain_db=1.5, wall_s=400.0) for r in rows]
    assert training.summarise(fast, "gpu-smoke", [0, 1])[0]["target"] == "FAIL"  # over 5 minutes
