"""Tests for learned.models.iac: IFAN's iterative adaptive convolution.

References used: a naive per-pixel loop written from Eq. 1 of the IFAN paper (clamped indices =
replicate padding), float64 gradcheck, the receptive-field identity N(k-1)+1, and the parity
vectors produced by the authors' own code (../shared/parity/ifan).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learned.models.iac import (
    IterativeAdaptiveConvolution,
    iterative_adaptive_convolution,
    separable_adaptive_filter,
    split_filter_prediction,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
PARITY = SHARED / "parity" / "ifan"


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _random_inputs(b=1, n=2, c=2, k=3, h=5, w=6, dtype=torch.float64, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    kv = torch.randn(b, n, c, k, h, w, generator=g, dtype=dtype) * 0.7
    kh = torch.randn(b, n, c, k, h, w, generator=g, dtype=dtype) * 0.7
    bias = torch.randn(b, n, c, h, w, generator=g, dtype=dtype) * 0.1
    if requires_grad:
        for t in (f, kv, kh, bias):
            t.requires_grad_(True)
    return f, kv, kh, bias


def _naive_iac(f, kv, kh, bias, slope=0.1, activate_last=True, reuse_vertical=False):
    """Per-pixel loops straight from the definition; indices clamped at the border."""
    f = f.detach().numpy().copy()
    kv, kh, bias = (t.detach().numpy() for t in (kv, kh, bias))
    b_, n_, c_, k_, h_, w_ = kv.shape
    r = (k_ - 1) // 2
    for it in range(n_):
        vert = np.zeros_like(f)
        for b in range(b_):
            for c in range(c_):
                for y in range(h_):
                    for x in range(w_):
                        vert[b, c, y, x] = sum(
                            kv[b, it, c, t, y, x] * f[b, c, min(max(y + t - r, 0), h_ - 1), x] for t in range(k_)
                        )
        hk = kv if reuse_vertical else kh
        out = np.zeros_like(f)
        for b in range(b_):
            for c in range(c_):
                for y in range(h_):
                    for x in range(w_):
                        out[b, c, y, x] = sum(
                            hk[b, it, c, t, y, x] * vert[b, c, y, min(max(x + t - r, 0), w_ - 1)] for t in range(k_)
                        )
        out = out + bias[:, it]
        if it < n_ - 1 or activate_last:
            out = np.where(out >= 0, out, slope * out)
        f = out
    return f


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("reuse_vertical", [False, True])
@pytest.mark.parametrize("activate_last", [False, True])
def test_matches_naive_loop(k, reuse_vertical, activate_last):
    f, kv, kh, bias = _random_inputs(b=2, n=3, c=2, k=k, h=5, w=7)
    out = iterative_adaptive_convolution(
        f, kv, kh, bias, activate_last=activate_last, reuse_vertical_kernel=reuse_vertical
    )
    ref = _naive_iac(f, kv, kh, bias, activate_last=activate_last, reuse_vertical=reuse_vertical)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_and_matches_float64():
    f, kv, kh, bias = _random_inputs(n=4, h=6, w=6)
    out64 = iterative_adaptive_convolution(f, kv, kh, bias)
    out32 = iterative_adaptive_convolution(f.float(), kv.float(), kh.float(), bias.float())
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reuse_vertical", [False, True])
def test_gradcheck_float64(reuse_vertical):
    inputs = _random_inputs(n=2, c=2, k=3, h=3, w=4, requires_grad=True)

    def fn(f, kv, kh, bias):
        return iterative_adaptive_convolution(f, kv, kh, bias, reuse_vertical_kernel=reuse_vertical)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, fast_mode=True)


def test_gradcheck_float64_full_jacobian():
    inputs = _random_inputs(n=2, c=1, k=3, h=3, w=3, requires_grad=True, seed=3)
    assert torch.autograd.gradcheck(iterative_adaptive_convolution, inputs, eps=1e-6, atol=1e-7)


def test_function_equals_module():
    f, kv, kh, bias = _random_inputs(n=3)
    for kwargs in (dict(), dict(negative_slope=0.2, activate_last=False, reuse_vertical_kernel=True)):
        module = IterativeAdaptiveConvolution(**kwargs)
        assert list(module.parameters()) == []
        torch.testing.assert_close(module(f, kv, kh, bias), iterative_adaptive_convolution(f, kv, kh, bias, **kwargs),
                                   rtol=0, atol=0)


def test_bug_option_differs_from_fixed_version():
    f, kv, kh, bias = _random_inputs(n=2)
    fixed = iterative_adaptive_convolution(f, kv, kh, bias)
    buggy = iterative_adaptive_convolution(f, kv, kh, bias, reuse_vertical_kernel=True)
    assert (fixed - buggy).abs().max() > 1e-3
    # With the bug, kernels_h is never read.
    buggy_other_h = iterative_adaptive_convolution(f, kv, torch.zeros_like(kh), bias, reuse_vertical_kernel=True)
    torch.testing.assert_close(buggy, buggy_other_h, rtol=0, atol=0)
    # Both agree when the horizontal kernel equals the vertical one.
    torch.testing.assert_close(
        iterative_adaptive_convolution(f, kv, kv, bias),
        iterative_adaptive_convolution(f, kv, kh, bias, reuse_vertical_kernel=True),
    )


@pytest.mark.parametrize("n,k", [(1, 3), (4, 3), (3, 5), (17, 3)])
def test_receptive_field_from_impulse(n, k):
    size = n * (k - 1) + 9
    f = torch.zeros(1, 1, size, size, dtype=torch.float64)
    f[0, 0, size // 2, size // 2] = 1.0
    kv = torch.full((1, n, 1, k, size, size), 1.0 / k, dtype=torch.float64)
    bias = torch.zeros(1, n, 1, size, size, dtype=torch.float64)
    out = iterative_adaptive_convolution(f, kv, kv, bias)
    rows = torch.nonzero(out[0, 0].abs().sum(1) > 0).flatten()
    cols = torch.nonzero(out[0, 0].abs().sum(0) > 0).flatten()
    assert int(rows.max() - rows.min() + 1) == n * (k - 1) + 1
    assert int(cols.max() - cols.min() + 1) == n * (k - 1) + 1
    # Separable box filters of positive taps: total mass is preserved away from the border.
    assert float(out.sum()) == pytest.approx(1.0, rel=1e-12)


def test_separable_filter_tap_offsets():
    """Tap t weights the neighbour at offset t - (k-1)/2 (vertical first, then horizontal)."""
    f = torch.arange(5 * 6, dtype=torch.float64).reshape(1, 1, 5, 6)
    k = 3
    for tap, offset in ((0, -1), (1, 0), (2, 1)):
        kv = torch.zeros(1, 1, k, 5, 6, dtype=torch.float64)
        kv[:, :, tap] = 1
        ident = torch.zeros_like(kv)
        ident[:, :, 1] = 1
        vert = separable_adaptive_filter(f, kv, ident)
        rows = np.clip(np.arange(5) + offset, 0, 4)
        np.testing.assert_array_equal(vert[0, 0].numpy(), f[0, 0].numpy()[rows, :])
        horiz = separable_adaptive_filter(f, ident, kv)
        cols = np.clip(np.arange(6) + offset, 0, 5)
        np.testing.assert_array_equal(horiz[0, 0].numpy(), f[0, 0].numpy()[:, cols])


def test_split_filter_prediction_layout():
    n, c, k, h, w = 3, 4, 3, 2, 2
    total = n * (2 * c * k + c)
    pred = torch.arange(total, dtype=torch.float32).reshape(1, total, 1, 1).expand(2, total, h, w)
    kv, kh, bias = split_filter_prediction(pred, n, c, k)
    assert kv.shape == kh.shape == (2, n, c, k, h, w) and bias.shape == (2, n, c, h, w)
    for i in range(n):
        for ch in range(c):
            for t in range(k):
                assert kv[1, i, ch, t, 1, 0] == i * 2 * c * k + ch * k + t
                assert kh[0, i, ch, t, 0, 1] == i * 2 * c * k + c * k + ch * k + t
            assert bias[0, i, ch, 1, 1] == n * 2 * c * k + i * c + ch
    with pytest.raises(ValueError, match="channels"):
        split_filter_prediction(pred[:, :-1], n, c, k)


def test_bad_arguments_raise():
    f, kv, kh, bias = _random_inputs()
    with pytest.raises(ValueError, match="features must be 4-D"):
        iterative_adaptive_convolution(f[0], kv, kh, bias)
    with pytest.raises(ValueError, match="kernels_h must have shape"):
        iterative_adaptive_convolution(f, kv, kh[..., :-1], bias)
    with pytest.raises(ValueError, match="bias must have shape"):
        iterative_adaptive_convolution(f, kv, kh, bias[:, :1])
    with pytest.raises(ValueError, match="odd"):
        iterative_adaptive_convolution(f, kv[:, :, :, :2], kh[:, :, :, :2], bias)
    with pytest.raises(TypeError, match="dtype"):
        iterative_adaptive_convolution(f, kv.float(), kh, bias)
    with pytest.raises(TypeError, match="floating"):
        iterative_adaptive_convolution(f.long(), kv, kh, bias)
    with pytest.raises(TypeError, match="torch.Tensor"):
        iterative_adaptive_convolution(f.numpy(), kv, kh, bias)


@pytest.mark.skipif(not PARITY.is_dir(), reason=f"IFAN parity vectors not found at {PARITY} (../shared missing)")
def test_bug_option_reproduces_official_iac_output():
    """The authors' IAC output (iac_output.npy) is reproduced only with the bug switched on."""
    from learned.models.ifan import IFAN

    state = torch.load(PARITY / "IFAN_parity.pytorch", weights_only=True)
    state = {k.removeprefix("module.").removeprefix("Network."): v for k, v in state.items()}
    model = IFAN(reuse_vertical_kernel=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    image = torch.from_numpy(np.load(PARITY / "input.npy"))
    expected = torch.from_numpy(np.load(PARITY / "iac_output.npy"))
    with torch.no_grad():
        buggy = model(image, return_aux=True)["iac_output"]
        model.reuse_vertical_kernel = False
        fixed = model(image, return_aux=True)["iac_output"]
    assert float((buggy - expected).abs().max()) <= 1e-5
    assert float((fixed - expected).abs().max()) > 1e-4


def test_no_unfolded_copy_is_materialised():
    """Memory-lean: no intermediate tensor is larger than one replicate-padded feature map,
    whereas the released code's unfold/permute path creates (B, C, H, W, k) tensors."""
    from torch.utils._pytree import tree_flatten
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.is_view:  # views share storage: no allocation
                return out
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    LargestOutput.largest = max(LargestOutput.largest, t.numel())
            return out

    b, n, c, k, h, w = 2, 3, 8, 5, 10, 12
    f, kv, kh, bias = _random_inputs(b=b, n=n, c=c, k=k, h=h, w=w, dtype=torch.float32)
    with LargestOutput():
        iterative_adaptive_convolution(f, kv, kh, bias)
    padded = b * c * max((h + k - 1) * w, h * (w + k - 1))
    assert LargestOutput.largest <= padded < b * c * h * w * k


def test_device_matches_float64_cpu(device):
    f, kv, kh, bias = _random_inputs(b=2, n=3, c=4, h=9, w=11)
    ref = iterative_adaptive_convolution(f, kv, kh, bias, reuse_vertical_kernel=True)
    out = iterative_adaptive_convolution(
        *(t.float().to(device) for t in (f, kv, kh, bias)), reuse_vertical_kernel=True
    )
    assert out.device.type == device and out.dtype == torch.float32
    np.testing.assert_allclose(out.cpu().numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
