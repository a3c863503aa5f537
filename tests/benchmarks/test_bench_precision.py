"""benchmarks.precision: bf16-vs-fp32 rows, and the CLI's refusal to overwrite a result."""

from __future__ import annotations

import pytest

from benchmarks import precision

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_rows_measure_a_real_difference():
    (row,) = precision.run(["kpac"], size=32, images=1)
    assert row["model"] == "kpac" and row["images"] == 1
    # bf16 changes the output, but only in its last bits: between 1e-5 and 0.05
    assert 1e-5 < row["max_abs_diff"] < 0.05 and 30 < row["psnr_bf16_vs_fp32"] < 150


def test_cli_writes_a_new_table_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "precision.md"
    assert precision.main(["--models", "kpac", "--size", "32", "--images", "1", "--out", str(out)]) == 0
    assert "| kpac | 1 |" in out.read_text() and "| kpac | 1 |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        precision.main(["--models", "kpac", "--size", "32", "--images", "1", "--out", str(out)])
    assert err.value.code == 2 and "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        precision.main(["--images", "0"])
    with pytest.raises(SystemExit):
        precision.main(["--checkpoint", "kpac"])
