"""The papers' evaluation protocols (learned.data.protocols) against independent references.

Expected values are computed here from the stored integer pixels with NumPy closed forms, a
naive sliding-window SSIM, numpy.pad and Pillow's own 16-bit PNG decoding, never with the code
under test.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from learned.data import build_dataset
from learned.evaluate import evaluate_dataset, main
from learned.data.protocols import PROTOCOLS, Protocol, prepare, quantise, read_as_8bit, score
from optics.image_io import png_bytes

RNG = np.random.default_rng(12)


def _write(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array))
    return array


def naive_ssim(x: np.ndarray, y: np.ndarray, gaussian: bool) -> float:
    """SSIM of (H, W, C) images in [0, 1] from its definition, window by window (valid region)."""
    if gaussian:
        t = np.arange(11) - 5.0
        g = np.exp(-t * t / (2 * 1.5**2))
        g /= g.sum()
        w, k, sample = np.outer(g, g), 11, False
    else:
        w, k, sample = np.full((7, 7), 1 / 49), 7, True
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for c in range(x.shape[2]):
        X = sliding_window_view(x[..., c].astype(np.float64), (k, k))
        Y = sliding_window_view(y[..., c].astype(np.float64), (k, k))
        mx, my = (X * w).sum((-2, -1)), (Y * w).sum((-2, -1))
        vx = (X * X * w).sum((-2, -1)) - mx * mx
        vy = (Y * Y * w).sum((-2, -1)) - my * my
        cxy = (X * Y * w).sum((-2, -1)) - mx * my
        if sample:
            f = k * k / (k * k - 1)
            vx, vy, cxy = vx * f, vy * f, cxy * f
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        values.append(s.mean())
    return float(np.mean(values))


def f32(values: np.ndarray, scale: int) -> np.ndarray:
    """Integer pixels over their scale as the loader's float32 (the closed forms then run in float64)."""
    return values.astype(np.float32) / np.float32(scale)


def closed_forms(x: np.ndarray, y: np.ndarray, gaussian: bool = False) -> dict:
    d = x.astype(np.float64) - y.astype(np.float64)
    return {"psnr": 10 * math.log10(1 / np.mean(d * d)), "mae": float(np.mean(np.abs(d))),
            "ssim": naive_ssim(x, y, gaussian)}


def _assert_row(row: dict, expected: dict) -> None:
    for k, v in expected.items():
        # scikit-image computes SSIM in the images' float32; PSNR and MAE accumulate in float64
        assert row[k] == pytest.approx(v, rel=1e-6 if k == "ssim" else 1e-9, abs=1e-12), k


# --------------------------------------------------------------------------------------------------
# Reading at 8 bits
# --------------------------------------------------------------------------------------------------
def test_read_as_8bit_matches_pillows_decoding_of_16_bit_png(tmp_path):
    raw = RNG.integers(0, 2**16, (6, 7, 3), dtype=np.uint16)
    raw[0, :3, 0] = [0x1234, 0x00FF, 0xFFFF]
    path = tmp_path / "x.png"
    _write(path, raw)
    with Image.open(path) as im:
        assert im.mode == "RGB"
        pillow = np.asarray(im)  # Pillow keeps the high byte of 16-bit RGB, as OpenCV's png_set_strip_16
    ours = read_as_8bit(raw.astype(np.float32) / np.float32(65535))
    np.testing.assert_array_equal(ours * 255, pillow.astype(np.float32))
    assert ours[0, 0, 0] * 255 == 0x12 and ours[0, 1, 0] == 0 and ours[0, 2, 0] == 1
    eight = RNG.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    x8 = eight.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(read_as_8bit(x8), x8)  # 8-bit files are unchanged


# --------------------------------------------------------------------------------------------------
# Each protocol's arithmetic
# --------------------------------------------------------------------------------------------------
def _dpdd_fixture(root: Path, shape=(21, 30)):
    """Two DPDD test scenes (16-bit) with real names; returns the stored (source, target) arrays."""
    pairs = []
    for src, tgt in (("1P0A0917", "1P0A0916"), ("1P0A0984", "1P0A0985")):
        sharp = RNG.integers(0, 2**16, (*shape, 3)).astype(np.float64)
        blurred = np.clip(sharp + RNG.normal(0, 6000, sharp.shape), 0, 65535)
        pairs.append((_write(root / f"test_c/source/{src}.png", blurred.astype(np.uint16)),
                      _write(root / f"test_c/target/{tgt}.png", sharp.astype(np.uint16))))
    return pairs


def test_ifan_input_row_closed_form(tmp_path):
    pairs = _dpdd_fixture(tmp_path)
    rows = evaluate_dataset(build_dataset(f"dpdd:{tmp_path}", "test"), protocol="ifan")
    for row, (a, b) in zip(rows, pairs):
        x, y = f32(a[:16, :24] >> 8, 255), f32(b[:16, :24] >> 8, 255)  # high byte, crop to multiples of 8
        _assert_row(row, closed_forms(x, y))


def test_dpdnet_reads_16_bits_and_refuses_other_sizes(tmp_path):
    pairs = _dpdd_fixture(tmp_path)
    ds = build_dataset(f"dpdd:{tmp_path}", "test")
    fixture_size = Protocol("dpdnet_fixture", size=(21, 30))  # DPDNet's protocol at the fixture's size
    for i, (a, b) in enumerate(pairs):
        arrays = prepare(ds.load(i), fixture_size)
        _assert_row(score(arrays["input"], arrays["target"], fixture_size), closed_forms(f32(a, 65535), f32(b, 65535)))
    portrait = prepare({"input": np.zeros((30, 21, 3))}, fixture_size)  # rotated sizes are accepted
    assert portrait["input"].shape == (30, 21, 3)
    with pytest.raises(ValueError, match=r"resizes every image to 1120x1680.*got 21x30"):
        evaluate_dataset(ds, protocol="dpdnet")


def test_nrknet_pads_centred_and_scores_the_padded_images():
    x = RNG.integers(0, 256, (21, 30, 3)) / 255.0
    y = RNG.integers(0, 256, (21, 30, 3)) / 255.0
    out = prepare({"input": x, "target": y}, "nrknet")
    # ceil(21/16)*16 = 32: (32 - 21) // 2 = 5 rows per side -> 31; ceil(30/16)*16 = 32: 1 column per side
    pad = ((5, 5), (1, 1), (0, 0))
    np.testing.assert_array_equal(out["input"], np.pad(x, pad, mode="reflect"))
    np.testing.assert_array_equal(out["target"], np.pad(y, pad, mode="reflect"))
    row = score(out["input"], out["target"], "nrknet")
    _assert_row(row, closed_forms(np.pad(x, pad, mode="reflect"), np.pad(y, pad, mode="reflect"), gaussian=True))
    # RTF: NRKNet crops [4:364] of its 360x360 images, i.e. the padding; here 24 -> 32 by 4 per side
    x, y = RNG.integers(0, 256, (24, 24, 3)) / 255.0, RNG.integers(0, 256, (24, 24, 3)) / 255.0
    out = prepare({"input": x, "target": y}, "nrknet_rtf")
    assert out["input"].shape == (32, 32, 3)
    row = score(out["input"], out["target"], "nrknet_rtf", original_size=(24, 24))
    _assert_row(row, closed_forms(x, y, gaussian=True))


def test_output_quantisation_nrknet_rounds_half_to_even_kpac_half_up():
    x = np.array([0.5, 1.5, 2.5, 254.7, 255.4]).reshape(1, 5, 1) / 255.0
    np.testing.assert_array_equal(quantise(x, "round") * 255, np.array([0, 2, 2, 255, 255]).reshape(1, 5, 1))
    np.testing.assert_array_equal(quantise(x, "round_half_up") * 255, np.array([1, 2, 3, 255, 255]).reshape(1, 5, 1))
    pred = RNG.random((16, 16, 3))
    target = RNG.integers(0, 256, (16, 16, 3)) / 255.0
    _assert_row(score(pred, target, "kpac"), closed_forms(np.floor(pred * 255 + 0.5) / 255, target))
    _assert_row(score(pred, target, "nrknet"), closed_forms(np.round(pred * 255) / 255, target, gaussian=True))


def test_lpips_input_channel_order():
    seen = []

    def fake_lpips(a, b):
        seen.append((a.copy(), b.copy()))
        return 0.25

    pred = RNG.integers(0, 256, (16, 16, 3)) / 255.0
    target = RNG.integers(0, 256, (16, 16, 3)) / 255.0
    assert score(pred, target, "nrknet", lpips_metric=fake_lpips)["lpips"] == 0.25
    np.testing.assert_array_equal(seen[-1][0], pred[..., ::-1])  # NRKNet feeds OpenCV's BGR order
    np.testing.assert_array_equal(seen[-1][1], target[..., ::-1])
    score(pred, target, "ifan", lpips_metric=fake_lpips)
    np.testing.assert_array_equal(seen[-1][0], pred)


def test_cli_prints_the_input_row_without_a_model(tmp_path, capsys):
    pairs = _dpdd_fixture(tmp_path / "dd_dp_dataset_png")
    out = tmp_path / "results"
    argv = ["--data", f"dpdd:{tmp_path / 'dd_dp_dataset_png'}", "--protocol", "ifan", "--baseline", "none",
            "--no-lpips", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| input |" in printed and "protocol ifan" in printed
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["input"] * 3
    expected = [closed_forms(f32(a[:16, :24] >> 8, 255), f32(b[:16, :24] >> 8, 255)) for a, b in pairs]
    assert float(rows[-1]["psnr"]) == pytest.approx(np.mean([e["psnr"] for e in expected]), rel=1e-9)
    assert float(rows[-1]["ssim"]) == pytest.approx(np.mean([e["ssim"] for e in expected]), rel=1e-6)


def test_protocol_table_is_complete():
    assert set(PROTOCOLS) == {"none", "ifan", "nrknet", "nrknet_rtf", "kpac", "dpdnet", "registered"}
    with pytest.raises(ValueError, match="protocol must be one of"):
        prepare({"input": np.zeros((8, 8, 3))}, "dpdd")
