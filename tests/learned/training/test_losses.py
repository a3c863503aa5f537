"""Tests of learned.training.losses against closed forms and naive NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learned.training.losses import (
    NRKNET_SCALE_WEIGHTS,
    area_downsample,
    fft_l1_loss,
    ifan_disparity_loss,
    ifan_reblur_loss,
    k3dn_loss,
    mse_loss,
    nrknet_loss,
    nrknet_pyramid,
    warp_horizontal,
)

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _naive_dft2(x: np.ndarray) -> np.ndarray:
    """2-D DFT over the last two axes by explicit DFT matrices (independent of any FFT)."""
    h, w = x.shape[-2:]
    wh = np.exp(-2j * np.pi * np.outer(np.arange(h), np.arange(h)) / h)
    ww = np.exp(-2j * np.pi * np.outer(np.arange(w), np.arange(w)) / w)
    return wh @ x @ ww.T


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fft_l1_matches_naive_dft(dtype):
    rng = np.random.default_rng(0)
    p = rng.random((2, 3, 6, 5))
    t = rng.random((2, 3, 6, 5))
    spectrum = _naive_dft2(p - t)
    expected = 0.5 * (np.abs(spectrum.real).mean() + np.abs(spectrum.imag).mean())
    got = fft_l1_loss(torch.tensor(p, dtype=dtype), torch.tensor(t, dtype=dtype))
    assert got.dtype == dtype
    np.testing.assert_allclose(float(got), expected, **TOL[dtype])


def test_fft_l1_closed_forms():
    # A constant offset c has DFT c*H*W at DC only: mean |Re| = c, Im = 0 -> c / 2.
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert float(fft_l1_loss(x + 0.3, x)) == pytest.approx(0.15, rel=1e-12)
    # An impulse a at the origin has a flat spectrum a: again a / 2.
    y = x.clone()
    y[0, 1, 0, 0] += 2.0
    assert float(fft_l1_loss(y, x)) == pytest.approx(2.0 / 2 / 3, rel=1e-12)  # 1 of 3 channels
    assert float(fft_l1_loss(x, x)) == 0.0


def test_mse_and_shape_errors():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(mse_loss(a, b)) == 0.25
    with pytest.raises(ValueError, match="same shape"):
        mse_loss(a, torch.zeros(1, 3, 4, 5))
    # mixed precision: a lower-precision output is compared in the target's wider dtype
    assert mse_loss(a.bfloat16(), b).dtype == torch.float32 and fft_l1_loss(a, b.double()).dtype == torch.float64
    with pytest.raises(TypeError, match="floating-point"):
        mse_loss(a.int(), b)
    with pytest.raises(ValueError, match="4-D"):
        mse_loss(a[0], b[0])


def test_area_downsample_matches_block_mean():
    x = np.random.default_rng(1).random((2, 3, 16, 24))
    expected = x.reshape(2, 3, 2, 8, 3, 8).mean(axis=(3, 5))
    np.testing.assert_allclose(area_downsample(torch.tensor(x), 8).numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="multiples of factor 8"):
        area_downsample(torch.zeros(1, 3, 12, 16), 8)


@pytest.mark.parametrize("shift", [0, 1, 3, -2])
def test_warp_integer_shift_equals_indexing(shift):
    rng = np.random.default_rng(2)
    img = rng.random((2, 3, 5, 9))
    disparity = torch.full((2, 1, 5, 9), float(shift), dtype=torch.float64)
    got = warp_horizontal(torch.tensor(img), disparity).numpy()
    cols = np.clip(np.arange(9) + shift, 0, 8)  # border padding = clamped index
    np.testing.assert_allclose(got, img[..., cols], atol=1e-12)


def test_warp_fractional_shift_on_a_ramp_is_exact():
    # Bilinear interpolation reproduces a linear ramp exactly away from the clamped border.
    w = 12
    ramp = torch.arange(w, dtype=torch.float64).view(1, 1, 1, w).expand(1, 2, 4, w) * 0.5 + 1.0
    disparity = torch.full((1, 1, 4, w), 0.3, dtype=torch.float64)
    got = warp_horizontal(ramp, disparity)
    np.testing.assert_allclose(got[..., : w - 1].numpy(), (ramp[..., : w - 1] + 0.15).numpy(), atol=1e-12)


def test_warp_is_differentiable_in_disparity():
    img = torch.arange(8, dtype=torch.float64).view(1, 1, 1, 8).repeat(1, 1, 2, 1)
    d = torch.full((1, 1, 2, 8), 0.5, dtype=torch.float64, requires_grad=True)
    warp_horizontal(img, d)[..., :7].sum().backward()
    # d/dd of a ramp of slope 1 sampled at x + d is 1 at every interior pixel
    np.testing.assert_allclose(d.grad[..., :7].numpy(), 1.0, atol=1e-12)


def test_ifan_disparity_loss_naive_reference_and_known_shift():
    rng = np.random.default_rng(3)
    left = rng.random((1, 3, 32, 48))
    right = rng.random((1, 3, 32, 48))
    d = 2
    disparity = torch.full((1, 1, 4, 6), float(d), dtype=torch.float64)
    got = float(ifan_disparity_loss(torch.tensor(left), torch.tensor(right), disparity))
    left8 = left.reshape(1, 3, 4, 8, 6, 8).mean(axis=(3, 5))
    right8 = right.reshape(1, 3, 4, 8, 6, 8).mean(axis=(3, 5))
    warped = right8[..., np.clip(np.arange(6) + d, 0, 5)]
    assert got == pytest.approx(((warped - left8) ** 2).mean(), rel=1e-12)

    # the right view is the left view moved by 16 px = 2 cells at 1/8: the true disparity
    # (2 cells) warps it back exactly (away from the 2 border cells)
    base = rng.random((1, 3, 32, 64))
    left = torch.tensor(base[..., :48])
    right = torch.tensor(base[..., 16:64])  # right(x) = base(x + 16) ... i.e. right(x - 16) = left(x)
    true = torch.full((1, 1, 4, 6), -2.0, dtype=torch.float64)
    warped = warp_horizontal(area_downsample(right, 8), true)
    np.testing.assert_allclose(warped[..., 2:].numpy(), area_downsample(left, 8)[..., 2:].numpy(), atol=1e-12)
    wrong = torch.zeros_like(true)
    assert float(ifan_disparity_loss(left, right, true)) < float(ifan_disparity_loss(left, right, wrong))

    with pytest.raises(ValueError, match="multiple"):
        ifan_disparity_loss(left, right, torch.zeros(1, 1, 5, 6, dtype=torch.float64))


def test_ifan_reblur_loss_closed_form():
    blurred = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    reblurred = F.avg_pool2d(blurred, 8) + 0.2
    assert float(ifan_reblur_loss(reblurred, blurred)) == pytest.approx(0.04, rel=1e-12)


def test_nrknet_pyramid_is_every_other_pixel():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    x1, x2, x3 = nrknet_pyramid(x)
    assert torch.equal(x2, x[..., ::2, ::2]) and torch.equal(x3, x[..., ::4, ::4]) and x1 is x


def test_nrknet_loss_multiscale_weights_closed_form():
    """Z_t = X_t + c_t and D_t(X_t) = Y_t + r_t (constant offsets): every term has a closed form.

    MSE(Z_t, X_t) = c_t^2, FFT-L1 = c_t / 2, reblur MSE = r_t^2, so
    L = sum_t lambda_t (c_t^2 + beta c_t / 2) + alpha sum_{t>=1} lambda_t r_t^2.
    """
    torch.manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    blurred = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    c = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}
    r = {1: 0.05, 2: 0.07, 3: 0.11}
    x1, x2, x3 = sharp, sharp[..., ::2, ::2], sharp[..., ::4, ::4]
    y1, y2, y3 = blurred, blurred[..., ::2, ::2], blurred[..., ::4, ::4]
    deblurred = [x3 + c[3], x2 + c[2], x1 + c[1], x1 + c[0]]  # [Z_3, Z_2, Z_1, Z_0]
    reblurred = [y3 + r[3], y2 + r[2], y1 + r[1]]  # [D_3 X_3, D_2 X_2, D_1 X_1]
    lam = dict(enumerate(NRKNET_SCALE_WEIGHTS))
    assert NRKNET_SCALE_WEIGHTS == (1.0, 0.75, 0.5, 0.25)
    alpha, beta = 0.1, 0.1
    expected = sum(lam[t] * (c[t] ** 2 + beta * c[t] / 2) for t in range(4)) + alpha * sum(
        lam[t] * r[t] ** 2 for t in (1, 2, 3)
    )
    total, parts = nrknet_loss(deblurred, reblurred, blurred, sharp, fft_weight=beta, reblur_weight=alpha)
    assert float(total) == pytest.approx(expected, rel=1e-10)
    assert float(parts["mse"]) == pytest.approx(sum(lam[t] * c[t] ** 2 for t in range(4)), rel=1e-10)
    assert float(parts["reblur"]) == pytest.approx(sum(lam[t] * r[t] ** 2 for t in (1, 2, 3)), rel=1e-10)
    # without reblurred outputs the reblur term is absent
    total2, parts2 = nrknet_loss(deblurred, [], blurred, sharp, fft_weight=beta, reblur_weight=alpha)
    assert "reblur" not in parts2
    assert float(total2) == pytest.approx(expected - alpha * float(parts["reblur"]), rel=1e-10)
    with pytest.raises(ValueError, match="4 tensors"):
        nrknet_loss(deblurred[:3], reblurred, blurred, sharp)


def test_k3dn_loss_closed_form():
    sharp = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    blurred = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    total, parts = k3dn_loss(sharp + 0.1, sharp, blurred - 0.3, blurred, reblur_weight=0.5)
    assert float(total) == pytest.approx(0.01 + 0.5 * 0.09, rel=1e-10)
    assert float(parts["deblur"]) == pytest.approx(0.01, rel=1e-10)
