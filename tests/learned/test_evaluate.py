"""Tests of learned.evaluate (protocols, table, CLI) and learned.baseline (Wiener row)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from learned import build_model, save_checkpoint
from learned import metrics as M
from learned.baseline import WienerBaseline, fit_wiener_baseline
from learned.data import build_dataset
from learned.evaluate import apply_protocol_crop, evaluate_dataset, format_csv, main, mean_rows, run_model, score
from optics import convolve, gaussian_psf
from optics.image_io import png_bytes

RNG = np.random.default_rng(5)


# --------------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------------
def test_ifan_protocol_crops_top_left_to_multiples_of_8():
    arrays = {k: RNG.integers(0, 256, (37, 50, 3)) / 255.0 for k in ("input", "target", "left")}  # 8-bit values
    out = apply_protocol_crop(arrays, "ifan")
    for k in arrays:
        np.testing.assert_array_equal(out[k], arrays[k][:32, :48])
    assert apply_protocol_crop(arrays, "none") is arrays
    with pytest.raises(ValueError, match="protocol must be one of"):
        apply_protocol_crop(arrays, "dpdd")


class _ShapeRecorder(nn.Module):
    """Returns 1 - x and records the input shape (a stand-in network)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return self.scale * (1 - x)


def test_nrknet_protocol_reflect_pads_to_16_and_crops_back():
    model = _ShapeRecorder()
    image = RNG.random((20, 30, 3)).astype(np.float32)
    out = run_model(model, "kpac", {"input": image}, protocol="nrknet")
    assert model.seen == [(1, 3, 32, 32)]
    np.testing.assert_allclose(out, 1 - image, rtol=1e-6)
    out = run_model(model, "kpac", {"input": image}, protocol="none")
    assert model.seen[-1] == (1, 3, 20, 30)


def test_run_model_clips_to_unit_range():
    model = _ShapeRecorder()
    with torch.no_grad():
        model.scale.fill_(3.0)
    out = run_model(model, "kpac", {"input": np.zeros((8, 8, 3), np.float32)})
    assert out.max() == 1.0


def test_nrknet_protocol_quantises_to_8_bits_and_uses_gaussian_ssim():
    x = RNG.random((24, 24, 3))
    y = np.clip(x + 0.05 * RNG.standard_normal(x.shape), 0, 1)
    row = score(x, y, protocol="nrknet")
    xq, yq = np.round(x * 255) / 255, np.round(y * 255) / 255
    assert row["psnr"] == pytest.approx(10 * math.log10(1 / np.mean((xq - yq) ** 2)), rel=1e-12)
    assert row["ssim"] == pytest.approx(M.ssim(xq, yq, gaussian=True), rel=1e-12)
    assert math.isnan(row["lpips"])
    plain = score(x, y)
    assert plain["ssim"] == pytest.approx(M.ssim(x, y), rel=1e-12)


def test_dual_pixel_model_needs_views():
    model = build_model("k3dn_tiny")
    with pytest.raises(ValueError, match="needs dual-pixel views"):
        run_model(model, "k3dn_tiny", {"input": np.zeros((32, 32, 3), np.float32)})


def test_mean_rows_closed_form():
    rows = [{"image": "a", "method": "input", "psnr": 20.0, "ssim": 0.5, "mae": 0.1, "rmse_rel": 0.1, "lpips": 0.2},
            {"image": "b", "method": "input", "psnr": 30.0, "ssim": 0.7, "mae": 0.3, "rmse_rel": 0.03, "lpips": 0.4}]
    (m,) = mean_rows(rows)
    assert m["psnr"] == 25.0 and m["ssim"] == pytest.approx(0.6) and m["count"] == 2
    text = format_csv(rows)
    assert text.splitlines()[-1].startswith("mean,input,25.0,")


def test_inputs_only_dataset_cannot_be_scored(tmp_path):
    (tmp_path / "x.png").write_bytes(png_bytes(RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="no ground-truth"):
        evaluate_dataset(build_dataset(f"rtf:{tmp_path}", "test"))


# --------------------------------------------------------------------------------------------------
# Wiener baseline
# --------------------------------------------------------------------------------------------------
def test_wiener_baseline_finds_the_blur_it_was_fitted_on():
    sharp = [RNG.random((48, 48, 3)) for _ in range(2)]
    sharp = [convolve(s, gaussian_psf(0.7)) for s in sharp]  # band-limit a little (natural-image-like)
    blurred = [convolve(s, gaussian_psf(1.5)) for s in sharp]
    fitted = fit_wiener_baseline(zip(blurred, sharp), sigmas=(0.0, 1.0, 1.5, 2.0), eps_values=(1e-4, 1e-2))
    assert (fitted.sigma, fitted.eps) == (1.5, 1e-4)
    assert len(fitted.grid) == 1 + 3 * 2
    gain = np.mean([M.psnr(fitted(b), s) - M.psnr(np.clip(b, 0, 1), s) for b, s in zip(blurred, sharp)])
    assert gain > 5.0


def test_wiener_baseline_identity_and_errors():
    x = RNG.random((10, 10, 3)).astype(np.float32)
    out = WienerBaseline(0.0, 0.01)(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match="eps must be"):
        WienerBaseline(1.0, 0.0)
    with pytest.raises(ValueError, match="sigma must be"):
        WienerBaseline(-1.0, 0.1)
    with pytest.raises(ValueError, match="at least one"):
        fit_wiener_baseline([])


# --------------------------------------------------------------------------------------------------
# Command line on a tiny synthetic set with an untrained KPAC
# --------------------------------------------------------------------------------------------------
def _read_csv(path: Path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_csv_and_markdown(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = tmp_path / "kpac.pt"
    save_checkpoint(build_model("kpac"), "kpac", checkpoint)
    spec = "synthetic:size=32,test_count=2,count=2"
    out = tmp_path / "results"
    argv = ["--model", "kpac", "--checkpoint", str(checkpoint), "--data", spec, "--out", str(out),
            "--baseline-images", "2"]
    try:
        M.find_lpips_weights()
        has_lpips = True
    except FileNotFoundError:
        argv.append("--no-lpips")
        has_lpips = False
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| kpac |" in printed and "| wiener |" in printed and "| input |" in printed
    rows = _read_csv(out / "metrics.csv")
    assert [(r["image"], r["method"]) for r in rows] == [
        ("test_00000", "input"), ("test_00000", "wiener"), ("test_00000", "kpac"),
        ("test_00001", "input"), ("test_00001", "wiener"), ("test_00001", "kpac"),
        ("mean", "input"), ("mean", "wiener"), ("mean", "kpac"),
    ]
    # the input row, recomputed independently from the dataset
    test = build_dataset(spec, "test")
    for i in range(2):
        arrays = test.load(i)
        expected = M.psnr(arrays["input"], arrays["target"])
        assert float(rows[3 * i]["psnr"]) == pytest.approx(expected, rel=1e-12)
        assert float(rows[3 * i]["rmse_rel"]) == pytest.approx(10 ** (-expected / 20), rel=1e-9)
    mean_psnr = np.mean([float(rows[3 * i + 2]["psnr"]) for i in range(2)])
    assert float(rows[8]["psnr"]) == pytest.approx(mean_psnr, rel=1e-12)
    assert (rows[0]["lpips"] != "") == has_lpips
    assert (out / "metrics.md").read_text().startswith("# kpac on synthetic")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.md"]  # no temporary files left


def test_cli_ends_with_a_results_line_with_and_without_out(tmp_path, capsys):
    """Issue 34: without --out the last line was the table; it is a ``results:`` line with the means."""
    spec = "synthetic:size=32,test_count=2,count=2"
    assert main(["--data", spec, "--no-lpips", "--baseline-params", "1.0,0.01"]) == 0
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("results: the table above on stdout") and "--out DIR" in last, last
    assert "mean over 2 images: input " in last and "wiener " in last and " dB, SSIM " in last, last
    out = tmp_path / "scores"
    assert main(["--data", spec, "--no-lpips", "--baseline", "none", "--out", str(out)]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"results: {out / 'metrics.csv'} and {out / 'metrics.md'}; mean over 2 images: input "), last
    input_psnr = float(_read_csv(out / "metrics.csv")[-1]["psnr"])
    assert f"input {input_psnr:.2f} dB" in last


def test_cli_argument_errors(tmp_path):
    with pytest.raises(SystemExit):
        main(["--model", "kpac", "--data", "synthetic", "--no-lpips"])
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "x.pt"), "--data", "synthetic", "--no-lpips"])


def test_cli_names_dual_pixel_psf_and_refuses_out_in_the_dataset(tmp_path, capsys):
    """Issue 28: errors about --dual-pixel-psf name it (not optics.dual_pixel.deblur's --psf); --out may not be
    the dataset's folder (nor inside it)."""
    from optics import cli

    data = tmp_path / "dpdd"
    (data / "test").mkdir(parents=True)
    cases = [(["--baseline", "dual_pixel", "--dual-pixel-psf", str(tmp_path / "nowhere")],
              ["argument --dual-pixel-psf", "nowhere"]),
             (["--out", str(data)], ["argument --out", "the folder of --data"]),
             (["--out", str(data / "test")], ["argument --out", "inside the folder of --data"])]
    for extra, expected in cases:
        assert cli.run(main, ["--data", f"dpdd:{data}", "--no-lpips", "--baseline", "none", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(text in err[0] for text in expected) and "--psf " not in err[0], err
    assert sorted(p.name for p in data.rglob("*")) == ["test"]  # nothing written
    (tmp_path / "empty").mkdir()  # a folder without kernels: load_psfs's message, under the right flag
    assert cli.run(main, ["--data", "synthetic:size=32,test_count=1,count=1", "--no-lpips", "--baseline", "dual_pixel",
                          "--dual-pixel-psf", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: argument --dual-pixel-psf") and "blur_kernels_left.npy" in err, err


def test_nrknet_protocols_run_batchnorm_on_each_images_statistics():
    # NRKNet's test.py never calls .eval(): its BatchNorm normalises with each test image's statistics
    torch.manual_seed(0)
    net = build_model("nrknet", base_channels=4, num_kernels=3)
    with torch.no_grad():  # running statistics far from any image's, so that the two modes differ
        net.APU.conv.main[1].running_mean.fill_(3.0)
    net.eval()
    ds = build_dataset("synthetic:size=32,test_count=1", "test")

    def psnr_with(stats, protocol):
        net.batchnorm_stats = stats
        arrays = apply_protocol_crop(ds.load(0), protocol)
        out = run_model(net, "nrknet", arrays, protocol=protocol)
        net.batchnorm_stats = "running"
        return score(out, arrays["target"], protocol=protocol, original_size=(32, 32))["psnr"]

    assert abs(psnr_with("batch", "nrknet") - psnr_with("running", "nrknet")) > 0.01
    for protocol, stats in (("nrknet", "batch"), ("nrknet_rtf", "batch"), ("none", "running")):
        rows = evaluate_dataset(ds, model=net, model_name="nrknet", protocol=protocol)
        assert net.batchnorm_stats == "running"  # the model is handed back as it came
        out_psnr = [r["psnr"] for r in rows if r["method"] == "nrknet"][0]
        assert out_psnr == pytest.approx(psnr_with(stats, protocol), abs=1e-9), protocol


def test_physics_refinement_model_gets_the_dual_pixel_estimate_computed_once():
    """An untrained dp_refine returns the physics estimate exactly (zero head), so its row equals
    the dual_pixel row; the estimate is computed once per image for both rows."""
    from learned.baseline import DualPixelBaseline
    from learned.data import build_dataset
    from learned.evaluate import evaluate_dataset
    from learned.models.dp_refine import DPRefine
    from optics.dual_pixel.deblur import DualPixelPSFGrid
    from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field

    ds = build_dataset("synthetic:sensor=pixel4,size=168,test_count=2", "test")
    grid = DualPixelPSFGrid.from_field(pixel4_dual_pixel_field(), 168, shape=(168, 168))
    row = DualPixelBaseline(grid, workers=1)
    model = DPRefine(channels=4)
    rows = evaluate_dataset(ds, model=model, model_name="dp_refine", dual_pixel=row)
    by = {(r["image"], r["method"]): r for r in rows}
    for name in ("test_00000", "test_00001"):
        # the same image (an untrained head adds exactly 0); the mean's summation order may differ with the
        # arrays' memory layout (the network's output is a transposed tensor), so equal to 1e-12, not bit for bit
        assert by[(name, "dp_refine")]["psnr"] == pytest.approx(by[(name, "dual_pixel")]["psnr"], rel=1e-12, abs=0)
        assert by[(name, "dp_refine")]["psnr"] != by[(name, "input")]["psnr"]
    assert len(row.seconds) == 2
    with pytest.raises(ValueError, match="refines the physics estimate"):
        evaluate_dataset(ds, model=model, model_name="dp_refine")
