"""Issue 13: no silent overwrite in synthesize / evaluate / convert / validations, PSF size caps,
the streamed direct operator, benchmark verdicts that do not flip."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import optics
from optics import cli

SMALL = dict(shape=(24, 32), max_coc=4.0, motorcycle_fraction=0.0, progress=False)


# ------------------------------------------------------------------------------ optics.render.synthesize
def test_synthesize_refuses_a_non_empty_folder_and_overwrite_clears_it(tmp_path):
    from optics.render.synthesize import write_dataset

    out = tmp_path / "ds"
    write_dataset(out, 3, seed=1, **SMALL)
    old = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    with pytest.raises(FileExistsError, match="not empty.*--overwrite"):
        write_dataset(out, 1, seed=2, **SMALL)
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == old  # untouched
    manifest = write_dataset(out, 1, seed=2, overwrite=True, **SMALL)
    assert len(manifest) == 1 and len(json.loads((out / "scenes.json").read_text())) == 1
    assert len(list(out.rglob("*.png"))) == 4  # centre, left, right, target of the one new scene: no old file
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        write_dataset(out, 1, seed=3, overwrite=True, **SMALL)
    assert (out / "notes.txt").read_text() == "mine" and (out / "scenes.json").exists()
    (out / "notes.txt").unlink()
    # a file added inside a folder the command owns: the record of the previous run protects it
    (out / "train_c" / "source" / "my_photo.png").write_bytes(b"a user's photo")
    with pytest.raises(ValueError, match="previous run did not write.*train_c/source/my_photo.png"):
        write_dataset(out, 1, seed=3, overwrite=True, **SMALL)
    assert (out / "train_c" / "source" / "my_photo.png").read_bytes() == b"a user's photo"
    assert len(list(out.rglob("*.png"))) == 5  # nothing removed


# ------------------------------------------------------------------------------ evaluate, convert, validation
def test_evaluate_checks_out_before_any_work(tmp_path, capsys):
    from learned import evaluate

    (tmp_path / "metrics.csv").write_text("earlier results")
    argv = ["--data", f"folder:{tmp_path / 'no_such_dataset'}", "--no-lpips", "--out", str(tmp_path)]
    assert cli.run(evaluate.main, argv) == 2  # the dataset is never opened: the refusal comes first
    err = capsys.readouterr().err
    assert err.startswith("error: --out file") and "metrics.csv' exists; pass --overwrite" in err
    assert (tmp_path / "metrics.csv").read_text() == "earlier results"


def test_convert_refuses_to_replace_its_input(tmp_path, capsys):
    from learned import convert

    src = tmp_path / "weights.pth"
    src.write_bytes(b"authors' file")
    assert cli.run(convert.main, ["--model", "nrknet", "--official", str(src), "--out", str(src), "--overwrite"]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert src.read_bytes() == b"authors' file"


def test_validation_out_needs_overwrite(tmp_path, capsys):
    from validation import __main__ as runner

    (tmp_path / "report.md").write_text("an earlier report")
    assert runner.main(["--only", "iac_receptive_field", "--quick", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "report.md").read_text() == "an earlier report"
    (tmp_path / "todo.txt").write_text("mine")
    assert runner.main(["--only", "iac_receptive_field", "--quick", "--out", str(tmp_path), "--overwrite"]) == 2
    assert "todo.txt" in capsys.readouterr().err and (tmp_path / "report.md").exists()


# ------------------------------------------------------------------------------ PSF caps
def test_huge_psfs_fail_fast_with_a_clear_error():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"gaussian_psf\(sigma=10000\) needs a 80001 x 80001 kernel \(47.7 GiB\)"):
        optics.gaussian_psf(1e4)
    with pytest.raises(ValueError, match=r"radius <= 2048"):
        optics.gaussian_psf(1.0, radius=5000)
    with pytest.raises(ValueError, match=r"disc_psf\(radius=10000\) needs a 20001 x 20001 kernel"):
        optics.disc_psf(1e4)
    with pytest.raises(ValueError, match=r"working memory.*lower supersample"):
        optics.disc_psf(1000.0, supersample=100)
    assert time.perf_counter() - t0 < 1.0  # nothing was allocated
    assert optics.gaussian_psf(3.0).shape == (25, 25)


def test_disc_psf_unchanged_by_the_band_loop():
    """The coverage grid is built one sub-pixel row at a time; compare with the whole-grid formula."""
    for r, ss in ((0.3, 33), (2.5, 33), (7.2, 9), (11.0, 5)):
        h = max(int(np.ceil(r + 0.5)) - 1, 0)
        side = 2 * h + 1
        sub = (np.arange(ss) + 0.5) / ss - 0.5
        u = (np.arange(-h, h + 1)[:, None] + sub[None, :]).ravel()
        cover = ((u[:, None] ** 2 + u[None, :] ** 2) <= r * r).reshape(side, ss, side, ss).mean(axis=(1, 3))
        if cover.sum() == 0:
            cover[h, h] = 1.0
        np.testing.assert_array_equal(optics.disc_psf(r, supersample=ss), cover / cover.sum())


# ------------------------------------------------------------------------------ memory: the streamed direct operator
def test_banded_direct_operator_equals_the_whole_field():
    from validation.recursive_kernels import BINOMIAL, direct_rkr_blur_banded

    rng = np.random.default_rng(0)
    n_atoms, h, w = 6, 37, 29
    image = rng.random((h, w, 3), dtype=np.float32)
    gamma = rng.random((n_atoms, h, w), dtype=np.float32) / n_atoms
    atoms = optics.rkr_atoms(np.tile(BINOMIAL.astype(np.float32), (n_atoms - 1, 1)))
    whole = optics.spatially_varying_blur(image, optics.rkr_kernel_field(gamma, atoms), "zero")
    banded, seconds = direct_rkr_blur_banded(image, gamma, atoms, rows=8)
    np.testing.assert_allclose(banded, whole, rtol=1e-6, atol=1e-7)
    assert seconds > 0


# ------------------------------------------------------------------------------ benchmarks
def test_verdicts_need_a_margin_larger_than_the_spread():
    from benchmarks._timing import exit_status, quartiles, ratio_bounds, verdict

    assert verdict(11.0, 14.0, 10.0, quick=False) is True
    assert verdict(7.0, 9.0, 10.0, quick=False) is False
    assert verdict(9.0, 12.0, 10.0, quick=False) == "undecided"
    assert verdict(9.0, 12.0, 10.0, quick=True) is None
    assert verdict(8.1, 9.5, 10.0, quick=False, higher_is_better=False) is True  # "< 10 s"
    assert quartiles([1.0, 2.0, 3.0, 4.0, 100.0]) == (3.0, 2.0, 4.0)  # one stall does not move the spread
    median, low, high = ratio_bounds([10.0, 12.0, 11.0], [1.0, 1.0, 2.0])
    assert (median, low, high) == (10.0, 7.75, 11.0)
    rows = [{"passed": True}, {"passed": None}, {"passed": "undecided"}]
    assert exit_status(rows, quick=False) == 1 and exit_status(rows, quick=True) == 0
    assert exit_status(rows[:2], quick=False) == 0


def test_benchmark_exit_status_and_quick_note(monkeypatch, capsys):
    from benchmarks import optics as bench
    from benchmarks._timing import QUICK_NOTE

    rows = [bench._row("a", "1 ms", "faster", False, ""), bench._row("b", "1 ms", "faster", True, "")]
    monkeypatch.setattr(bench, "run", lambda quick, include_render=True: rows)
    assert bench.main(["--no-render"]) == 1
    captured = capsys.readouterr()
    assert "| a | 1 ms | faster | FAIL |" in captured.out and captured.err.startswith("error: a target was missed")
    monkeypatch.setattr(bench, "run", lambda quick, include_render=True: [dict(r, passed=None) for r in rows])
    assert bench.main(["--quick", "--no-render"]) == 0
    assert QUICK_NOTE in capsys.readouterr().out


@pytest.mark.skipif(not __import__("pathlib").Path("/usr/bin/time").is_file(), reason="needs GNU /usr/bin/time")
def test_peak_memory_reads_gnu_time(tmp_path):
    from benchmarks.peak_memory import measure

    r = measure(["optics.render.synthesize", "--out", str(tmp_path / "x"), "--count", "0"], tmp_path, timeout=120)
    assert 0.01 < r["rss_gb"] < 4 and r["seconds"] > 0
    assert r["status"].startswith("2 (error: ") and "count" in r["status"]


def test_validation_overwrite_replaces_only_its_own_report(tmp_path, capsys):
    from validation import iac_receptive_field

    out = tmp_path / "rep"
    assert iac_receptive_field.main(["--quick", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    (out / "holiday.png").write_bytes(b"a user's photo")  # a report file by its extension alone
    assert cli.run(iac_receptive_field.main, ["--quick", "--out", str(out), "--overwrite"]) == 2
    assert "holiday.png" in capsys.readouterr().err
    assert (out / "holiday.png").read_bytes() == b"a user's photo"
    (out / "holiday.png").unlink()
    assert iac_receptive_field.main(["--quick", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == written
