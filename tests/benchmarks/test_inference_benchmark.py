"""``python -m benchmarks.inference``: argument checks and a small end-to-end run (no timing asserted)."""

from __future__ import annotations

import pytest

from benchmarks import inference


def test_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "table.md"
    out.write_text("keep me")
    assert inference.main(["--out", str(out), "--quick", "--models", "kpac"]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_rejects_a_folder_that_is_not_the_authors_checkout(tmp_path, capsys):
    code = inference.main(["--out", str(tmp_path / "t.md"), "--official-ifan", str(tmp_path), "--models", "ifan"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --official-ifan") and "models/archs/IFAN.py" in err


@pytest.mark.parametrize("argv, word", [(["--runs", "0"], "--runs"), (["--threads", "0"], "--threads")])
def test_rejects_bad_counts(tmp_path, capsys, argv, word):
    assert inference.main(["--out", str(tmp_path / "t.md"), "--quick", *argv]) == 2
    assert word in capsys.readouterr().err


def test_quick_run_writes_the_table(tmp_path):
    out = tmp_path / "t.md"
    assert inference.main(["--out", str(out), "--quick", "--models", "kpac", "--size", "64x48"]) == 0
    text = out.read_text()
    assert "| kpac | 1 | - |" in text and "Machine at start" in text and "convolution macs" in text.lower()
