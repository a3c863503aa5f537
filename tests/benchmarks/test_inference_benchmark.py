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


def test_options_add_accuracy_against_our_defaults(tmp_path):
    """Issue 33: an option of ours (here the allocator) adds the accuracy columns; same output -> 0."""
    out = tmp_path / "t.md"
    assert inference.main(["--out", str(out), "--quick", "--models", "kpac", "--size", "64x48",
                           "--malloc", "glibc", "--no-channels-last"]) == 0
    text = out.read_text()
    assert "malloc=glibc" in text and "channels_last=False" in text and "vs our fp32: PSNR" in text
    row = next(line for line in text.splitlines() if line.startswith("| kpac | 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[9]) <= 1e-5  # channels-last off, glibc allocator: our float32 output within 1e-5
