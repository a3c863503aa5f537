"""Tests for learned.models.k3dn (K3DN, Yang et al., CVPR 2023).

References used: naive per-cell / per-pixel loops, scipy.signal.convolve2d (true convolution),
a NumPy Wiener inverse, closed-form parameter counts from the layer formulas, and the paper's
identities (symmetric kernels, softmax weights summing to one, deblur o reblur = identity).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from learned.models.k3dn import (
    CONFIGS,
    K3DN,
    MODELS,
    PAPER_PARAMETERS,
    KernelQuery,
    KernelSet,
    PSFBlock,
    cellwise_depthwise_convolution,
    horizontal_correlation,
    local_attention_scores,
    psf_deblur,
    psf_reblur,
    wiener_inverse_kernels,
)

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MODELS["k3dn_tiny"]().eval()


def _pair(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype), torch.rand(shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# Functional operators against independent references
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cellwise_convolution_matches_per_cell_scipy(dtype):
    rng = np.random.default_rng(1)
    B, C, Hd, Wd, p, k = 2, 3, 3, 4, 2, 5
    f = rng.standard_normal((B, C, Hd * p, Wd * p))
    kern = rng.standard_normal((B, C, Hd, Wd, k, k))
    out = cellwise_depthwise_convolution(torch.tensor(f, dtype=dtype), torch.tensor(kern, dtype=dtype))
    assert out.dtype == dtype and out.shape == f.shape
    expected = np.zeros_like(f)
    for b in range(B):
        for c in range(C):
            for i in range(Hd):
                for j in range(Wd):
                    full = scipy.signal.convolve2d(f[b, c], kern[b, c, i, j], mode="same", boundary="fill")
                    cell = (slice(i * p, (i + 1) * p), slice(j * p, (j + 1) * p))
                    expected[b, c][cell] = full[cell]
    np.testing.assert_allclose(out.numpy(), expected, **TOL[dtype])


def test_cellwise_convolution_is_convolution_not_correlation():
    # An off-centre impulse kernel must shift the image towards +x (true convolution).
    f = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    f[0, 0, 4, 3] = 1.0
    kern = torch.zeros(1, 1, 4, 4, 3, 3, dtype=torch.float64)
    kern[..., 1, 2] = 1.0  # offset (dy, dx) = (0, +1)
    out = cellwise_depthwise_convolution(f, kern)
    assert out[0, 0, 4, 4] == 1.0 and out.sum() == 1.0


def test_wiener_inverse_kernels_match_numpy():
    rng = np.random.default_rng(2)
    k, m, eps = 5, 9, 0.05
    kern = rng.random((2, 3, k, k))
    out = wiener_inverse_kernels(torch.tensor(kern), m, eps).numpy()
    big = np.zeros((2, 3, m, m))
    big[..., m // 2 - k // 2 : m // 2 + k // 2 + 1, m // 2 - k // 2 : m // 2 + k // 2 + 1] = kern
    K = np.fft.fft2(np.fft.ifftshift(big, axes=(-2, -1)))
    inv = np.real(np.fft.ifft2(np.conj(K) / (np.abs(K) ** 2 + eps)))
    np.testing.assert_allclose(out, np.fft.fftshift(inv, axes=(-2, -1)), rtol=1e-10, atol=1e-12)


def test_psf_deblur_inverts_reblur_in_the_interior():
    # A well-conditioned kernel has an exponentially decaying inverse; on a 31 x 31 grid the
    # periodic truncation is ~1e-10 on a 25 x 25 grid and deblur(reblur(f)) = f away from the
    # zero-padded border.
    y, x = torch.meshgrid(torch.arange(5.0) - 2, torch.arange(5.0) - 2, indexing="ij")
    g = torch.exp(-(x**2 + y**2) / 2).double()
    kern = 0.4 * g / g.sum()
    kern[2, 2] += 0.6
    f = torch.rand(1, 2, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    K = kern.expand(1, 2, 12, 12, 5, 5)
    restored = psf_deblur(psf_reblur(f, K), K, inverse_size=25, eps=0.0)
    b = 2 + 25 // 2
    torch.testing.assert_close(restored[..., b:-b, b:-b], f[..., b:-b, b:-b], rtol=0, atol=1e-9)
    assert (restored - f).abs().max() > 1e-3  # ... while the border, where padding enters, is not


def test_psf_deblur_delta_kernel_is_wiener_gain():
    f = torch.rand(1, 3, 8, 12, dtype=torch.float64)
    K = torch.zeros(1, 3, 2, 3, 5, 5, dtype=torch.float64)
    K[..., 2, 2] = 1.0
    eps = 0.25
    torch.testing.assert_close(psf_deblur(f, K, inverse_size=7, eps=eps), f / (1 + eps))


def test_psf_deblur_channel_chunking_is_exact(monkeypatch):
    import learned.models.k3dn as mod

    f = torch.rand(1, 5, 8, 8, dtype=torch.float64)
    K = torch.rand(1, 5, 4, 4, 3, 3, dtype=torch.float64)
    full = psf_deblur(f, K, inverse_size=5, eps=0.1)
    monkeypatch.setattr(mod, "_OTF_ELEMENTS_PER_CHUNK", 2 * 16 * 25)  # two channels per chunk
    torch.testing.assert_close(psf_deblur(f, K, inverse_size=5, eps=0.1), full, rtol=0, atol=0)


def test_psf_block_gradcheck():
    g = torch.Generator().manual_seed(4)
    f = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    K = (0.1 + torch.rand(1, 1, 2, 2, 3, 3, dtype=torch.float64, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: psf_deblur(a, b, inverse_size=5, eps=0.1), (f, K))
    assert torch.autograd.gradcheck(psf_reblur, (f, K))


def test_psf_block_module_equals_function(device):
    f = torch.rand(2, 3, 8, 8, device=device)
    K = torch.rand(2, 3, 4, 4, 3, 3, device=device)
    block = PSFBlock(inverse_size=5, eps=0.01)
    torch.testing.assert_close(block(f, K), psf_deblur(f, K, inverse_size=5, eps=0.01), rtol=0, atol=0)
    torch.testing.assert_close(block(f, K, mode="reblur"), psf_reblur(f, K), rtol=0, atol=0)
    with pytest.raises(ValueError, match="mode"):
        block(f, K, mode="sharpen")


def test_psf_block_errors():
    f = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="kernel grid"):
        psf_deblur(f, torch.rand(1, 3, 3, 3, 3, 3), inverse_size=5, eps=0.1)  # 8 not a multiple of 3
    with pytest.raises(ValueError, match="odd"):
        psf_deblur(f, torch.rand(1, 3, 4, 4, 4, 4), inverse_size=5, eps=0.1)
    with pytest.raises(ValueError, match="batch and channel"):
        psf_deblur(f, torch.rand(1, 2, 4, 4, 3, 3), inverse_size=5, eps=0.1)
    with pytest.raises(ValueError, match="inverse_size"):
        psf_deblur(f, torch.rand(1, 3, 4, 4, 5, 5), inverse_size=3, eps=0.1)
    with pytest.raises(TypeError, match="dtype"):
        psf_deblur(f, torch.rand(1, 3, 4, 4, 3, 3, dtype=torch.float64), inverse_size=5, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        PSFBlock(5, -1.0)


def test_horizontal_correlation_matches_loop():
    rng = np.random.default_rng(5)
    left, right = rng.standard_normal((2, 2, 4, 3, 7))
    D = 2
    out = horizontal_correlation(torch.tensor(left), torch.tensor(right), D).numpy()
    expected = np.zeros((2, 2 * D + 1, 3, 7))
    for d in range(-D, D + 1):
        for x in range(7):
            if 0 <= x - d < 7:
                expected[:, d + D, :, x] = (left[:, :, :, x] * right[:, :, :, x - d]).mean(axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_local_attention_matches_loop_and_masks_border():
    rng = np.random.default_rng(6)
    q, k = rng.standard_normal((2, 1, 4, 5, 6))
    s = 3
    out = local_attention_scores(torch.tensor(q), torch.tensor(k), s).numpy()
    expected = np.zeros((1, s * s, 5, 6))
    for y in range(5):
        for x in range(6):
            logits = np.full(s * s, -np.inf)
            for o, (dy, dx) in enumerate((dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)):
                if 0 <= y + dy < 5 and 0 <= x + dx < 6:
                    logits[o] = q[0, :, y, x] @ k[0, :, y + dy, x + dx] / math.sqrt(4)
            w = np.exp(logits - logits.max())
            expected[0, :, y, x] = w / w.sum()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert out[0, 0, 0, 0] == 0.0  # the (-1, -1) neighbour of the corner lies outside


# ------------------------------------------------------------------------------------------------
# Kernel set and query (Eq. 1-2, 8-9)
# ------------------------------------------------------------------------------------------------


def test_kernel_set_is_dp_symmetric_with_unit_sum():
    ks = KernelSet(num_kernels=6, channels=3, kernel_size=5).double()
    with torch.no_grad():  # break the symmetric initialisation so the test is not about it
        ks.logits.normal_(generator=torch.Generator().manual_seed(7))
    K, left, right = ks(), ks.left_kernels(), ks.right_kernels()
    assert K.shape == (6, 3, 5, 5)
    torch.testing.assert_close(K, torch.flip(K, dims=(-1,)), rtol=0, atol=0)  # K = flip(K), Eq. 2
    torch.testing.assert_close(right, torch.flip(left, dims=(-1,)), rtol=0, atol=0)  # K_R = flip(K_L)
    torch.testing.assert_close(K, 0.5 * (left + right), rtol=0, atol=0)
    assert torch.all(left[..., 5 // 2 + 1 :] == 0)  # sparse: only the left sub-kernel is non-zero
    assert torch.all(K >= 0)
    torch.testing.assert_close(K.sum(dim=(-2, -1)), torch.ones(6, 3, dtype=torch.float64))


def test_kernel_set_initialisation_is_a_gaussian_family():
    ks = KernelSet(num_kernels=4, channels=2, kernel_size=7)
    K = ks().detach().double()
    y, x = np.mgrid[-3:4, -3:4]
    for j, sigma in enumerate(np.geomspace(0.25, 7 / 3, 4)):
        g = np.exp(-(x**2 + y**2) / (2 * sigma**2))
        for c in range(2):
            np.testing.assert_allclose(K[j, c].numpy(), g / g.sum(), rtol=0, atol=1e-6)


def test_kernel_query_matches_eq8_eq9():
    torch.manual_seed(8)
    q = KernelQuery(num_kernels=5, channels=2, kernel_size=3, disparity_channels=4).double()
    with torch.no_grad():
        q.kernel_weighting.normal_()
        q.kernel_set.logits.normal_()
    r = torch.randn(1, 4, 2, 3, dtype=torch.float64)
    cell_kernels, a = q(r)
    K = q.kernel_set().detach().numpy()
    Wk = q.kernel_weighting.detach().numpy()
    Wr = q.disparity_projection.weight.detach().numpy()
    Wv = q.value_projection.weight.detach().numpy()
    summed = np.array([np.sum(Wk[j] * K[j]) for j in range(5)])
    for y in range(2):
        for x in range(3):
            logits = Wv @ (summed * (Wr @ r[0, :, y, x].numpy()))
            expected_a = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            np.testing.assert_allclose(a[0, :, y, x].detach().numpy(), expected_a, rtol=1e-12)
            expected_k = np.tensordot(expected_a, K, axes=1)
            np.testing.assert_allclose(cell_kernels[0, :, y, x].detach().numpy(), expected_k, rtol=1e-12)


def test_estimated_kernels_are_symmetric(tiny):
    left, right = _pair((1, 3, 16, 24))
    with torch.no_grad():
        cell_kernels, a = tiny.estimate_kernels(left, right)
    assert cell_kernels.shape == (1, 96, 2, 3, 7, 7) and a.shape == (1, 128, 2, 3)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(1, 2, 3))
    torch.testing.assert_close(cell_kernels, torch.flip(cell_kernels, dims=(-1,)))


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------


def _conv(cin, cout, k):
    return cin * cout * k * k + cout


def _expected_parameters(c) -> int:
    """Closed-form parameter count of a K3DN configuration (layer formulas, not the module)."""
    w, eb, db = c["widths"], c["encoder_blocks"], c["decoder_blocks"]
    rb = lambda ch: 2 * _conv(ch, ch, 3)  # noqa: E731
    total = _conv(6, w[0], 3) + sum(n * rb(ch) for ch, n in zip(w, eb))
    total += sum(_conv(w[i], w[i + 1], 3) for i in range(len(w) - 1))
    total += sum(n * rb(ch) for ch, n in zip(w, db)) + _conv(w[0], 3, 3)
    total += sum(w[i + 1] * w[i] * 4 + w[i] for i in range(len(w) - 1))  # transposed 2x2 convs
    dw, dc, dbl = c["disparity_width"], c["disparity_channels"], c["disparity_blocks"]
    levels = len(w) - 1
    total += _conv(3, dw, 3) + (levels - 1) * _conv(dw, dw, 3) + dbl * rb(dw)
    total += _conv(2 * dw + 2 * 4 + 1, dc, 3) + _conv(dc, dc, 3) + dbl * rb(dc)  # cell_size 2, D = 4
    N, C, k = 128, w[-1], 7
    total += N * C * k * (k // 2 + 1) + N * C * k * k + N * dc + N * N  # theta, W_k, W_r, W_v
    total += 2 * _conv(2 * C, 2 * C, 1) + 2 * _conv(49, C, 1)  # Phi_q, Phi_k, Phi_v1, Phi_v2
    total += _conv(C, 2 * C, 1) + (2 * C * 9 + 2 * C) + _conv(2 * C, C, 1)  # FFN
    return total


@pytest.mark.parametrize("name", ["k3dn_tiny", "k3dn_light", "k3dn_large"])
def test_parameter_count(name):
    model = MODELS[name]()
    count = sum(p.numel() for p in model.parameters())
    assert count == _expected_parameters(CONFIGS[name])
    assert abs(count / PAPER_PARAMETERS[name] - 1) < 0.05, (name, count)
    assert sum(b.numel() for b in model.buffers()) == 0  # everything counted is a parameter


@pytest.mark.parametrize(
    "name, size",
    [("k3dn_tiny", (8, 8)), ("k3dn_tiny", (13, 29)), ("k3dn_light", (9, 23)), ("k3dn_large", (13, 29))],
)
def test_smoke_odd_sizes_shape_preserved(name, size):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    left, right = _pair((1, 3, *size))
    with torch.no_grad():
        out = model(left, right)
    assert out.shape == left.shape and out.dtype == left.dtype
    assert torch.isfinite(out).all()


def test_float64_and_batch():
    model = MODELS["k3dn_tiny"]().double().eval()
    left, right = _pair((2, 3, 11, 17), dtype=torch.float64)
    with torch.no_grad():
        out = model(left, right)
        single = model(left[1:], right[1:])
    assert out.dtype == torch.float64 and out.shape == (2, 3, 11, 17)
    torch.testing.assert_close(out[1:], single)  # samples do not interact


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = MODELS["k3dn_tiny"]().train()
    left, right = _pair((1, 3, 16, 16))
    deblurred = model(left, right)
    deblurred.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing


def test_reblur_path_reaches_every_parameter_and_shapes():
    torch.manual_seed(0)
    model = MODELS["k3dn_tiny"]().train()
    left, right = _pair((2, 3, 13, 21))
    sharp = torch.rand(2, 3, 13, 21)
    deblurred, reblurred = model.forward_train(left, right, sharp)
    assert deblurred.shape == reblurred.shape == left.shape
    blurry = 0.5 * (left + right)  # Eq. 18: B_hat is supervised by B = (B_L + B_R) / 2
    (deblurred - sharp).abs().mean().add((reblurred - blurry).abs().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    with torch.no_grad():
        torch.testing.assert_close(model.reblur(sharp, left, right), reblurred)
        torch.testing.assert_close(model(left, right), deblurred)


def test_reblur_uses_the_deblurring_kernels(tiny, monkeypatch):
    # Eq. 17: the reblurring PSF block receives exactly the kernels estimated from (B_L, B_R).
    left, right = _pair((1, 3, 16, 16))
    seen = []
    original = tiny.psf.forward

    def spy(features, cell_kernels, mode="deblur"):
        seen.append((mode, cell_kernels))
        return original(features, cell_kernels, mode)

    monkeypatch.setattr(tiny.psf, "forward", spy)
    with torch.no_grad():
        tiny.forward_train(left, right, torch.rand(1, 3, 16, 16))
        expected, _ = tiny.estimate_kernels(left, right)
    assert [m for m, _ in seen] == ["deblur", "reblur"]
    torch.testing.assert_close(seen[0][1], expected, rtol=0, atol=0)
    torch.testing.assert_close(seen[1][1], expected, rtol=0, atol=0)


def test_train_eval_same_output(tiny):
    # No dropout or batch normalisation: train and eval modes compute the same function.
    left, right = _pair((1, 3, 16, 16))
    with torch.no_grad():
        tiny.train()
        a = tiny(left, right)
        tiny.eval()
        b = tiny(left, right)
    assert not tiny.training and all(not m.training for m in tiny.modules())
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_determinism_under_seed():
    left, right = _pair((1, 3, 16, 16))
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = MODELS["k3dn_tiny"]().eval()
        with torch.no_grad():
            outs.append(model(left, right))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_padding_does_not_leak_into_the_crop(tiny):
    # Output equals the output of the explicitly padded input, cropped (padding happens inside).
    left, right = _pair((1, 3, 13, 19))
    pad = lambda x: torch.nn.functional.pad(x, (0, 5, 0, 3), mode="replicate")  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(tiny(left, right), tiny(pad(left), pad(right))[..., :13, :19])


def test_input_errors(tiny):
    left, right = _pair((1, 3, 16, 16))
    with pytest.raises(ValueError, match="channels"):
        tiny(torch.rand(1, 4, 16, 16), torch.rand(1, 4, 16, 16))
    with pytest.raises(ValueError, match="4-D"):
        tiny(left[0], right[0])
    nan = left.clone()
    nan[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        tiny(nan, right)
    with pytest.raises(ValueError, match="at least 8x8"):
        tiny(left[..., :7], right[..., :7])
    with pytest.raises(ValueError, match="same shape"):
        tiny(left, right[..., :15])
    with pytest.raises(TypeError, match="dtype"):
        tiny(left.double(), right.double())
    with pytest.raises(TypeError, match="floating"):
        tiny((left * 255).to(torch.uint8), (right * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="same shape"):
        tiny.forward_train(left, right, torch.rand(1, 3, 16, 15))
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny.estimate_kernels(left[..., :12], right[..., :12])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(kernel_size=6), ValueError, "kernel_size"),
        (dict(inverse_size=5), ValueError, "inverse_size"),
        (dict(cell_size=3), ValueError, "cell_size"),
        (dict(window=4), ValueError, "window"),
        (dict(widths=(8, 16), encoder_blocks=(1,), decoder_blocks=(1, 1)), ValueError, "encoder_blocks"),
        (dict(num_kernels=0), ValueError, "num_kernels"),
        (dict(disparity_channels=2.5), TypeError, "disparity_channels"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        K3DN(**kwargs)


def test_smoke_on_device(device):
    torch.manual_seed(0)
    model = MODELS["k3dn_tiny"]().to(device).eval()
    left, right = (x.to(device) for x in _pair((1, 3, 13, 29)))
    with torch.no_grad():
        out = model(left, right)
    assert out.shape == left.shape and out.device == left.device


def test_models_dict_and_overrides():
    assert set(MODELS) == {"k3dn_tiny", "k3dn_light", "k3dn_large"}
    model = MODELS["k3dn_tiny"](num_kernels=64)
    assert model.kernel_query.kernel_set.num_kernels == 64
    assert model.pad_multiple == 8 and model.config["widths"] == (24, 48, 96)
