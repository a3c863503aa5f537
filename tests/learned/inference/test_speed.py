"""The CPU speed paths of issue 14 compute the same function as the plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import learned
from learned.inference._speed import add_into, cpu_channels_last, needs_grad, pointwise_conv
from learned.models.k3dn import wiener_inverse_kernels
from optics.operators.fourier import otf_to_psf, psf_to_otf, wiener_filter

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_pointwise_conv_equals_conv2d_and_returns_nchw(bias, batch):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 11, 1, bias=bias).double()
    x = torch.randn(batch, 6, 5, 7, dtype=torch.float64)
    expected = F.conv2d(x, conv.weight, conv.bias)  # plain NCHW reference
    out = pointwise_conv(conv, x.contiguous(memory_format=torch.channels_last))
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # anything else falls back to the module itself
    torch.testing.assert_close(pointwise_conv(conv, x), expected, rtol=0, atol=1e-12)
    conv3 = nn.Conv2d(6, 4, 3, padding=1).double()
    xc = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pointwise_conv(conv3, xc), F.conv2d(x, conv3.weight, conv3.bias, padding=1))


def test_pointwise_conv_gradient_matches_conv2d():
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 5, 1).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    grads = torch.autograd.grad(pointwise_conv(conv, x).square().sum(), (x, conv.weight, conv.bias))
    expected = torch.autograd.grad(conv(x).square().sum(), (x, conv.weight, conv.bias))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)


def test_add_into_in_place_only_without_promotion_or_broadcast():
    a, b = torch.ones(2, 3), torch.full((2, 3), 2.0)
    assert add_into(a, b) is a and float(a[0, 0]) == 3.0
    small = torch.ones(1, 3)
    out = add_into(small, b)  # would have to broadcast a: out of place
    assert out is not small and out.shape == (2, 3) and float(small[0, 0]) == 1.0
    half = torch.ones(2, 3, dtype=torch.bfloat16)
    out = add_into(half, b)  # bf16 + f32 promotes: out of place, float32 result
    assert out is not half and out.dtype == torch.float32


def test_needs_grad_and_channels_last_helper():
    x = torch.zeros(1, 2, 3, 4, requires_grad=True)
    assert needs_grad(x)
    with torch.no_grad():
        assert not needs_grad(x)
    assert cpu_channels_last(x.detach()).is_contiguous(memory_format=torch.channels_last)
    v = torch.zeros(3, 4)
    assert cpu_channels_last(v) is v


@pytest.mark.parametrize("k, m", [(7, 13), (5, 9), (3, 7), (7, 7), (1, 5)])
def test_real_fft_wiener_inverse_equals_complex_path(k, m):
    """The rfft path (eps > 0) against the complex psf_to_otf / wiener_filter / otf_to_psf chain."""
    rng = np.random.default_rng(k * 100 + m)
    kern = torch.tensor(rng.random((2, 3, k, k)))
    kern = kern / kern.sum(dim=(-1, -2), keepdim=True)
    expected = otf_to_psf(wiener_filter(psf_to_otf(kern, (m, m)), 1e-2), m)
    torch.testing.assert_close(wiener_inverse_kernels(kern, m, 1e-2), expected, rtol=0, atol=1e-12)
    out32 = wiener_inverse_kernels(kern.float(), m, 1e-2)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), expected, rtol=0, atol=5e-6)


@pytest.mark.parametrize("name", ["ifan", "nrknet", "k3dn_tiny"])
def test_channels_last_input_gives_the_same_output(name):
    """The networks run channels-last inside on the CPU; the input's layout must not matter."""
    torch.manual_seed(0)
    net = learned.build_model(name).eval()
    x = torch.rand(1, 3, 48, 64)
    args = (lambda t: (t, t.flip(-1))) if name.startswith("k3dn") else (lambda t: (t,))
    with torch.no_grad():
        plain = net(*args(x))
        other = net(*args(x.contiguous(memory_format=torch.channels_last)))
    assert plain.is_contiguous()
    torch.testing.assert_close(other, plain, rtol=0, atol=1e-5)


def test_in_place_paths_keep_training_gradients():
    """In-place activations/additions must not break autograd (grad mode uses the safe paths)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    for name in ("ifan", "nrknet", "k3dn_tiny"):
        net = learned.build_model(name).train()
        out = net(x, x) if name.startswith("k3dn") else net(x)
        out.square().mean().backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reuse_vertical_kernel", [False, True])
def test_streamed_filter_head_equals_full_filter_prediction(dtype, reuse_vertical_kernel):
    # forward(return_aux=False) streams IFAN's filter head through IAC one iteration at a
    # time into reused buffers; return_aux=True forms the whole prediction and runs
    # iterative_adaptive_convolution on it: the same numbers, bit for bit.
    torch.manual_seed(3)
    model = learned.models.ifan.IFAN(channels=4, iterations=3, filter_taps=5,
                              reuse_vertical_kernel=reuse_vertical_kernel).to(dtype).eval()
    x = torch.rand(2, 3, 19, 26, dtype=dtype)
    padded = cpu_channels_last(F.pad(x, (0, 6, 0, 5)))
    with torch.no_grad():
        streamed_run = model._run(padded, padded, keep_filters=False)
        full_run = model._run(padded, padded, keep_filters=True)
        streamed, full = model(x), model(x, return_aux=True)["output"]
    assert "filters" not in streamed_run and "filters" in full_run
    torch.testing.assert_close(streamed_run["iac_output"], full_run["iac_output"], rtol=0, atol=0)
    torch.testing.assert_close(streamed, full, rtol=0, atol=0)
    # the streamed path is the one taken without aux outputs (and only without gradients)
    f = cpu_channels_last(torch.rand(1, model.F[3].in_channels, 4, 4, dtype=dtype))
    feats = torch.rand(1, model.iac_channels, 4, 4, dtype=dtype)
    with torch.no_grad():
        assert model._streamed_iac(f, feats.clone()) is not None
    assert model._streamed_iac(f, feats.clone()) is None  # parameters require grad


# ---------------------------------------------------------------------------- issue 33 options
@pytest.mark.parametrize("name", ["ifan", "nrknet"])
def test_channels_last_switch_changes_the_layout_not_the_output(name):
    """``set_cpu_channels_last(False)`` (benchmarks.inference --no-channels-last) runs NCHW, same output."""
    from learned.inference._speed import set_cpu_channels_last

    x = torch.zeros(1, 2, 3, 4)
    with set_cpu_channels_last(False):
        assert cpu_channels_last(x) is x
    assert cpu_channels_last(x).is_contiguous(memory_format=torch.channels_last)  # restored
    torch.manual_seed(0)
    net = learned.build_model(name).eval()
    image = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        default = net(image)
        with set_cpu_channels_last(False):
            plain = net(image)
    torch.testing.assert_close(plain, default, rtol=0, atol=1e-5)


_REUSE_SCRIPT = r"""
import resource, torch
from learned.inference._speed import reuse_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(6):
        t = torch.empty(16 << 20)  # 64 MB: above glibc's largest mmap threshold
        t.fill_(1.0)
        del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

torch.manual_seed(0)
import learned
net = learned.build_model("ifan").eval()
x = torch.rand(1, 3, 40, 56)
with torch.no_grad():
    before = net(x)
plain = faults()
assert reuse_freed_memory()
faults()  # the heap grows once
reused = faults()
with torch.no_grad():
    after = net(x)
print(plain, reused, torch.equal(before, after))
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's mallopt")
def test_reuse_freed_memory_avoids_page_faults_and_keeps_outputs():
    """In a fresh process (the setting is process-wide): big tensors stop faulting, outputs bit-equal."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", _REUSE_SCRIPT], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain, reused, equal = proc.stdout.split()
    assert int(plain) > 6 * 10000  # 6 x 16384 fresh 4 KB pages without the setting
    assert int(reused) < int(plain) // 20
    assert equal == "True"


@pytest.mark.slow
def test_compile_for_cpu_matches_eager():
    """torch.compile (inductor, frozen weights) of a small conv net equals eager within 1e-5."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile's inductor needs a C++ compiler")
    from learned.inference._speed import compile_for_cpu

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                        nn.Conv2d(8, 3, 3, padding=1)).eval()
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        expected = net(x)
        out = compile_for_cpu(net)(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_streamed_filter_head_under_autocast_equals_plain_autocast_path(monkeypatch):
    """Issue 33: bf16 autocast streams IFAN's filter head too, with the plain autocast path's values."""
    from learned.models import ifan as ifan_module

    calls = []
    loop = ifan_module.IFAN._streamed_iac_loop
    monkeypatch.setattr(ifan_module.IFAN, "_streamed_iac_loop",
                        lambda self, f, features, low: calls.append((f.dtype, features.dtype, low))
                        or loop(self, f, features, low))
    torch.manual_seed(0)
    net = learned.build_model("ifan", reuse_vertical_kernel=True).eval()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        streamed = net(x)
        assert calls == [(torch.bfloat16, torch.float32, True)]
        plain = net(x, return_aux=True)["output"]  # keeps the full filter prediction
    assert len(calls) == 1 and streamed.dtype == plain.dtype
    torch.testing.assert_close(streamed, plain, rtol=0, atol=1e-3)
    with torch.no_grad():
        assert (streamed.float() - net(x)).abs().max() < 0.05  # still an approximation of float32
