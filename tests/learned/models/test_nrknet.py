"""Tests for learned.models.nrknet (NRKNet, Quan, Wu and Ji, CVPR 2023).

The parity tests compare with outputs of the authors' unmodified code on an authors'-format
checkpoint (``shared/parity/nrknet``, see its README); they skip when that folder is absent.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learned.models.nrknet import MIN_SIZE, MODELS, NRKNet, RecursiveKernelStack

PARITY = Path(__file__).resolve().parents[3].parent / "shared" / "parity" / "nrknet"
needs_parity = pytest.mark.skipif(
    not (PARITY / "NRKNet_parity.pth").is_file(),
    reason=f"parity vectors not found at {PARITY} (the shared folder beside the repository is absent)",
)
PARITY_ATOL = 1e-5  # README: max abs diff <= 1e-5 in float32 (outputs reach about 4.3)


@pytest.fixture(scope="module")
def parity_net():
    if not (PARITY / "NRKNet_parity.pth").is_file():
        pytest.skip(f"parity vectors not found at {PARITY}")
    net = NRKNet()
    net.load_state_dict(torch.load(PARITY / "NRKNet_parity.pth", weights_only=True), strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return NRKNet().eval()


def _load(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(PARITY / name))


# ------------------------------------------------------------------------------------------
# parity with the authors' code
# ------------------------------------------------------------------------------------------
@needs_parity
def test_checkpoint_keys_and_shapes_match_exactly():
    state = torch.load(PARITY / "NRKNet_parity.pth", weights_only=True)
    ours = NRKNet().state_dict()
    assert list(state) == list(ours)  # same keys, same order as the authors' module
    for key, value in state.items():
        assert tuple(value.shape) == tuple(ours[key].shape), key
        assert value.dtype == ours[key].dtype, key
    manifest = json.loads((PARITY / "manifest.json").read_text())
    assert manifest["key_prefix"] == ""


@needs_parity
def test_parity_eval_mode_running_stats(parity_net):
    with torch.no_grad():
        out = parity_net(_load("input_rgb.npy"))
    expected = _load("output_rgb.npy")
    assert out.dtype == torch.float32 and out.shape == expected.shape
    max_abs = (out - expected).abs().max().item()
    assert max_abs <= PARITY_ATOL, f"max abs diff {max_abs:.3g}"
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_bgr_interface_is_channel_flip(small_net):
    # bgr=True feeds the authors' channel order directly; RGB input is flipped inside.
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(small_net(x.flip(1), bgr=True).flip(1), small_net(x), rtol=0, atol=0)


@needs_parity
def test_parity_testpy_batch_statistics(parity_net):
    # The authors' test.py never calls .eval(): BatchNorm uses each image's statistics.
    x = _load("input_rgb.npy")
    expected = _load("output_rgb_testpy_trainmodeBN.npy")
    net = copy.deepcopy(parity_net)
    running_mean = net.APU.conv.main[1].running_mean.clone()
    net.batchnorm_stats = "batch"
    with torch.no_grad():
        out = net(x)
    assert (out - expected).abs().max().item() <= PARITY_ATOL
    torch.testing.assert_close(net.APU.conv.main[1].running_mean, running_mean, rtol=0, atol=0)  # untouched
    # and literally as test.py runs it: the module in train() mode
    net.train()
    with torch.no_grad():
        out_train = net(x)
    assert (out_train - expected).abs().max().item() <= PARITY_ATOL
    # the two behaviours really differ on these vectors (README: 0.118)
    assert (expected - _load("output_rgb.npy")).abs().max().item() > 0.05


def test_padding_matches_authors_centred_reflect_padding(small_net):
    # data_v3.TestDataset pads floor(d/2) per side (torchvision pad [pad_w, pad_h], reflect);
    # ours is the same for an even difference d, and the output is cropped back.
    x = torch.rand(1, 3, 40, 38, generator=torch.Generator().manual_seed(8))  # -> 48 x 48
    padded = F.pad(x, [5, 5, 4, 4], mode="reflect")
    with torch.no_grad():
        ours = small_net(x)
        theirs = small_net(padded)[..., 4:44, 5:43]
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@needs_parity
def test_rkr_parameters_are_symmetric_softmax_taps(parity_net):
    # official FullRKR: kernels (63, 1, 1, 2) -> reflect-pad to [a, b, a] -> softmax
    k = parity_net.GCM.kernels.detach()
    official = torch.softmax(F.pad(k, [0, 1, 0, 0], mode="reflect"), dim=3)
    torch.testing.assert_close(parity_net.GCM.taps().reshape(63, 1, 1, 3), official, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------
# structure
# ------------------------------------------------------------------------------------------
def test_parameter_count_exact():
    net = NRKNet()
    assert sum(p.numel() for p in net.parameters()) == 6_094_107
    assert net.GCM.kernels.numel() == 126  # 21 steps x 3 channels x 2 free taps
    assert MODELS == {"nrknet": NRKNet}


def test_recursive_kernel_stack_equals_official_fullrkr_formula():
    # Independent restatement of symcm.FullRKR.forward (dilation 1) with depthwise conv2d.
    torch.manual_seed(0)
    module = RecursiveKernelStack(21, 3).double()
    x = torch.rand(2, 3, 19, 23, dtype=torch.float64)
    k_x = torch.softmax(F.pad(module.kernels, [0, 1, 0, 0], mode="reflect"), dim=3)
    k_y = k_x.view(63, 1, 3, 1)
    res = [x]
    for i in range(0, 63, 3):
        c_x = F.conv2d(F.pad(res[-1], [1] * 4, mode="reflect"), k_x[i : i + 3], groups=3)
        res.append(F.conv2d(c_x, k_y[i : i + 3], groups=3))
    torch.testing.assert_close(module(x), torch.cat(res, dim=1), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Kornia-style behaviour tests
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3, MIN_SIZE, MIN_SIZE), (2, 3, 23, 37), (1, 3, 33, 18)])
def test_smoke_odd_sizes_shape_preserved(small_net, shape, device):
    net = small_net.to(device)
    x = torch.rand(shape, device=device)
    with torch.no_grad():
        out = net(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    small_net.to("cpu")


def test_float64_network():
    torch.manual_seed(1)
    net = NRKNet().double().eval()
    x = torch.rand(1, 3, 20, 21, dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
    assert out.dtype == torch.float64 and out.shape == x.shape


def test_gradients_reach_every_parameter():
    torch.manual_seed(2)
    net = NRKNet().train()
    x = torch.rand(1, 3, 32, 32)
    (net(x) ** 2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_train_eval_behaviour():
    torch.manual_seed(3)
    net = NRKNet()
    x = torch.rand(2, 3, 32, 48)
    bn = net.APU.conv.main[1]
    net.eval()
    with torch.no_grad():
        out_eval = net(x)
    assert bn.num_batches_tracked.item() == 0  # eval does not touch the running stats
    net.train()
    with torch.no_grad():
        out_train = net(x)
    assert bn.num_batches_tracked.item() == 3  # BatchNorm ran once per scale
    assert not torch.allclose(out_eval, out_train)
    # 'batch' in eval() reproduces train-mode outputs without updating the statistics
    net.eval()
    net.batchnorm_stats = "batch"
    before = bn.running_var.clone()
    with torch.no_grad():
        out_batch = net(x)
    torch.testing.assert_close(out_batch, out_train, rtol=1e-6, atol=1e-6)
    assert torch.equal(bn.running_var, before) and bn.num_batches_tracked.item() == 3


def test_determinism_under_seed():
    x = torch.rand(1, 3, 24, 30, generator=torch.Generator().manual_seed(5))
    outs = []
    for _ in range(2):
        torch.manual_seed(4)
        net = NRKNet().eval()
        with torch.no_grad():
            outs.append(net(x))
    assert torch.equal(outs[0], outs[1])


def test_forward_multiscale_consistent_with_forward():
    torch.manual_seed(6)
    net = NRKNet().eval()
    x, sharp = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        deblurred, reblurred = net.forward_multiscale(x, sharp)
        out = net(x)
    assert [tuple(t.shape[-2:]) for t in deblurred] == [(8, 12), (16, 24), (32, 48), (32, 48)]
    assert [tuple(t.shape[-2:]) for t in reblurred] == [(8, 12), (16, 24), (32, 48)]
    torch.testing.assert_close(deblurred[-1], out, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="multiples of 16"):
        net.forward_multiscale(torch.rand(1, 3, 33, 48))


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
def test_clear_errors(small_net):
    with pytest.raises(ValueError, match="3 channels"):
        small_net(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="4-D"):
        small_net(torch.rand(3, 32, 32))
    bad = torch.rand(1, 3, 32, 32)
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        small_net(bad)
    with pytest.raises(ValueError, match=f"at least {MIN_SIZE}x{MIN_SIZE}"):
        small_net(torch.rand(1, 3, 16, 40))
    with pytest.raises(TypeError, match="floating"):
        small_net(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8))
    with pytest.raises(TypeError, match="dtype of the network"):
        small_net(torch.rand(1, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(ValueError, match="batchnorm_stats"):
        NRKNet(batchnorm_stats="eval")
    with pytest.raises(ValueError, match="num_kernels"):
        NRKNet(num_kernels=0)
