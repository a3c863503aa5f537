"""Issue 20: what a new user ran into, each run as a user runs it (``python -m ...``, a subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")


def _run(module: str, *argv, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, argv)], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def _one_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import learned
    from optics.image_io import png_bytes

    folder = tmp_path_factory.mktemp("newcomer")
    torch.manual_seed(0)
    learned.save_checkpoint(learned.build_model("kpac", channels=8), "kpac", folder / "kpac.pt", {"channels": 8})
    rng = np.random.default_rng(0)
    (folder / "a.png").write_bytes(png_bytes(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)))
    (folder / "gray.png").write_bytes(png_bytes(rng.integers(0, 255, (96, 112), dtype=np.uint8)))
    (folder / "one.png").write_bytes(png_bytes(np.zeros((1, 1, 3), np.uint8)))
    (folder / "empty.png").write_bytes(b"")
    (folder / "bad.png").write_bytes((folder / "a.png").read_bytes()[:100])  # a truncated download
    (folder / "empty.pt").write_bytes(b"")
    return folder


def test_bad_images_are_all_named_before_the_model_loads(files):
    proc = _run("learned.deblur", "a.png", "empty.png", "bad.png", "--out", "out", "--model", "kpac",
                "--checkpoint", "empty.pt", cwd=files)  # an empty checkpoint too: the images are checked first
    line = _one_error(proc, "2 of 3 input images", "'empty.png'", "empty (0 bytes)", "'bad.png'", "nothing was written")
    assert "EOFError" not in line
    # too small for the model: every such file named before any image is processed
    proc = _run("learned.deblur", "a.png", "one.png", "--out", "out", "--model", "kpac", "--checkpoint", "kpac.pt",
                cwd=files)
    _one_error(proc, "1 of 2 input images are smaller than the 8x8 px that kpac needs", "'one.png' is 1x1 px (HxW)",
               "nothing was written")
    assert not (files / "out").exists()


def test_an_empty_or_foreign_checkpoint_is_one_short_line(files):
    proc = _run("learned.deblur", "a.png", "o.png", "--model", "kpac", "--checkpoint", "empty.pt", cwd=files)
    _one_error(proc, "'empty.pt'", "the file is empty (0 bytes)")
    for model in ("kpac", "ifan"):  # a KPAC .npz reader and a torch state-dict reader
        proc = _run("learned.deblur", "a.png", "o.png", "--model", model, "--checkpoint", "kpac.pt", "--official",
                    cwd=files)
        line = _one_error(proc, "one of this toolkit's checkpoints", "drop --official")
        assert len(line) < 250
    assert not (files / "o.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("module, argv", [
    ("learned.deblur", ["a.png", "o.png", "--model", "kpac", "--checkpoint", "kpac.pt"]),
    ("learned.evaluate", ["--model", "kpac", "--checkpoint", "kpac.pt", "--no-lpips", "--limit", "1"]),
    ("learned.summary", ["--models", "kpac"]),
    ("learned.train", ["--model", "kpac", "--steps", "1", "--out", "run"]),
    ("benchmarks.training", ["--runs", "run"]),
])
def test_device_cuda_without_cuda_fails_first_in_one_line(files, module, argv):
    proc = _run(module, *argv, "--device", "cuda", cwd=files)
    _one_error(proc, "argument --device", "use --device cpu")
    assert not (files / "o.png").exists() and not (files / "run").exists()


def test_a_grayscale_photo_comes_back_grayscale_and_progress_is_printed_as_lines(files):
    import png

    proc = _run("learned.deblur", "gray.png", "gray_out.png", "--model", "kpac", "--checkpoint", "kpac.pt",
                "--tile", "64", "--overlap", "16", cwd=files)
    assert proc.returncode == 0, proc.stderr
    assert png.Reader(filename=str(files / "gray_out.png")).read()[3]["planes"] == 1
    # stderr is a pipe, not a terminal: tqdm's redraws become whole lines (no carriage returns)
    assert "\r" not in proc.stderr
    assert re.search(r"^tiles: +100%\| (\d+)/\1 ", proc.stderr, re.M), proc.stderr


def test_evaluate_prints_the_mean_last(files):
    proc = _run("learned.evaluate", "--data", "synthetic:size=64", "--limit", "2", "--baseline", "none", "--no-lpips",
                cwd=files)
    assert proc.returncode == 0, proc.stderr
    headings = [ln for ln in proc.stdout.splitlines() if ln.startswith("## ")]
    assert headings == ["## Per image", "## Mean over 2 images"]


def test_synthesize_checks_its_options_by_flag_before_making_the_folder(files):
    out = files / "ds"
    _one_error(_run("optics.render.synthesize", "--out", out, "--count", "1", "--max-coc", "1", cwd=files),
               "--min-coc (2) must be <= --max-coc (1)")
    _one_error(_run("optics.render.synthesize", "--out", out, "--count", "1", "--size", "1000x1000", cwd=files),
               "--size 1000x1000 exceeds the motorcycle image", "--motorcycle-fraction 0")
    line = _one_error(_run("optics.render.synthesize", "--out", out, "--count", "1", "--size", "200000x200000",
                           "--motorcycle-fraction", "0", cwd=files), "GiB of working memory")
    assert "motorcycle_fraction" not in line
    assert not out.exists()
    proc = _run("optics.render.synthesize", "--out", out, "--count", "1", "--size", "32x32", "--max-coc", "1", "--min-coc",
                "0.5", "--no-progress", cwd=files)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "scenes.json").read_text())[0]["max_abs_coc_px"] <= 1.0 + 1e-6


def test_validation_without_data_is_not_run_and_only_replaces_only(tmp_path):
    out = tmp_path / "report"
    proc = _run("validation", "--quick", "--only", "iac_receptive_field", "dual_pixel_calibration", "--out", out,
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[NOT RUN] validation.dual_pixel_calibration" in proc.stdout
    assert "[PASS] validation.dual_pixel_calibration" not in proc.stdout
    report = (out / "report.md").read_text()
    assert "## dual_pixel_calibration: NOT RUN" in report and "| NOT RUN (needs data) |" in report
    iac_figure = (out / "iac_receptive_field" / "iac_receptive_field.png").read_bytes()
    proc = _run("validation", "--quick", "--only", "dual_pixel_calibration", "--out", out, "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "iac_receptive_field" / "iac_receptive_field.png").read_bytes() == iac_figure  # kept
    report = json.loads((out / "report.json").read_text())
    assert list(report["validations"]) == ["iac_receptive_field", "dual_pixel_calibration"]
    assert report["validations"]["dual_pixel_calibration"]["verdict"] == "NOT RUN"


def test_every_model_states_its_smallest_input():
    """learned.deblur checks each photo against ``model.min_size`` before processing any: it must be true."""
    import learned

    for name in learned.MODELS:
        model = learned.build_model(name).eval()
        m = model.min_size
        shape = lambda s: (1, 3, s, s + 1)  # noqa: E731
        inputs = (lambda s: (torch.rand(shape(s)), torch.rand(shape(s)))) if name in learned.DUAL_PIXEL else (
            lambda s: (torch.rand(shape(s)),))
        if name in learned.PHYSICS_INPUT:
            inputs = lambda s: (torch.rand(shape(s)), torch.rand(shape(s)), torch.rand(shape(s)),  # noqa: E731
                                torch.rand((1, 1, s, s + 1)))
        with torch.no_grad():
            assert model(*inputs(m)).shape[-2:] == (m, m + 1), name
            if m > 1:
                with pytest.raises(ValueError, match="must be at least"):
                    model(*inputs(m - 1))


def test_deblur_names_every_bad_input_in_one_line(files):
    """Issue 28: a missing input, an unreadable one, an existing output and a missing checkpoint, all in one line."""
    (files / "out28").mkdir(exist_ok=True)
    (files / "out28" / "a.png").write_bytes(b"a previous result")
    proc = _run("learned.deblur", "a.png", "missing.png", "bad.png", "--out", "out28", "--model", "kpac",
                "--checkpoint", "nowhere.pt", cwd=files)
    _one_error(proc, "4 problems with the inputs (nothing was written)", "(1) input image 'missing.png' does not exist",
               "--checkpoint 'nowhere.pt' does not exist", "out28/a.png' exists; pass --overwrite",
               "1 of 2 input images cannot be deblurred", "'bad.png'")
    assert (files / "out28" / "a.png").read_bytes() == b"a previous result"
