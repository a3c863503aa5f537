"""Tests for learned.models.kpac (KPAC 3-level, 2-level, dual-pixel).

Independent references: the parameter counts of the authors' TensorFlow models
(official-code-facts.md), the TensorFlow parameter list written out by hand from their
``model.py``, TensorFlow's documented 'SAME' padding rule, and ``optics.dilate`` for the dilated
(shared) atrous kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learned.models.kpac import KPAC, KPACDual, MODELS, SharedAtrousConv2d, TFSameConv2d, load_tensorflow_params


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name,expected", [("kpac", 2_057_893), ("kpac_2level", 1_578_277), ("kpac_dual", 2_061_493)]
)
def test_parameter_count(name, expected):
    assert n_params(MODELS[name]()) == expected


def _tf_shapes_3level():
    """TensorFlow params list of Defocus_Deblur_Net6_ds, in creation order (HWIO / [kh, kw, out, in])."""
    shapes = []

    def conv(kh, cin, cout, bias=True):
        shapes.append((kh, kh, cin, cout))
        if bias:
            shapes.append((cout,))

    conv(5, 3, 48); conv(3, 48, 48); conv(3, 48, 48); conv(3, 48, 48)  # c0 c0_2 c2 c2_2
    conv(3, 48, 96); conv(3, 96, 96); conv(3, 96, 96); conv(3, 96, 96)  # c3 c3_2 c4 c4_2
    for _ in range(2):
        conv(5, 96, 48, bias=False)  # dc1 (shared over the 5 rates, stored once)
        conv(5, 96, 32); conv(5, 32, 32); conv(5, 32, 16); conv(5, 16, 16)  # sca_dc1..4
        conv(5, 16, 5)  # sca_c2
        conv(1, 96, 12); conv(1, 12, 48)  # sha_c1, sha_c2
        conv(3, 240, 96)  # cf
    conv(3, 288, 96); conv(3, 96, 96)  # cm_1, cm_2
    shapes += [(4, 4, 96, 96), (96,)]; conv(3, 192, 96)  # d0 (deconv: kh, kw, out, in), d0_2
    shapes += [(4, 4, 48, 96), (48,)]; conv(3, 96, 48)  # d1, d1_2
    shapes += [(4, 4, 48, 48), (48,)]; conv(5, 96, 3)  # d2, d2_2
    return shapes


def _to_tf_layout(p: torch.Tensor) -> np.ndarray:
    return p.detach().permute(2, 3, 1, 0).numpy() if p.ndim == 4 else p.detach().numpy()


def test_parameter_order_matches_tensorflow_creation_order():
    model = KPAC()
    ours = [tuple(_to_tf_layout(p).shape) for p in model.parameters()]
    assert ours == _tf_shapes_3level()


def test_load_tensorflow_params_roundtrip_and_errors():
    torch.manual_seed(0)
    source, target = KPAC(levels=2).eval(), KPAC(levels=2).eval()
    arrays = [_to_tf_layout(p) for p in source.parameters()]
    load_tensorflow_params(target, arrays)
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected 58 arrays, got 57"):
        load_tensorflow_params(target, arrays[:-1])
    bad = list(arrays)
    bad[0] = bad[0][:, :, :, :47]
    with pytest.raises(ValueError, match="array 0"):
        load_tensorflow_params(target, bad)


@pytest.mark.parametrize("n,expected_centre_offset", [(8, 1), (9, 0), (10, 1)])
def test_tf_same_padding_stride2(n, expected_centre_offset):
    """TF 'SAME': total pad = max((ceil(n/2)-1)*2 + 3 - n, 0), split floor before / rest after.

    With a centre-tap (identity) 3x3 kernel, output i reads input 2 i + before-offset:
    even n pads 0 before (reads 2i+1), odd n pads 1 before (reads 2i)."""
    conv = TFSameConv2d(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1
    x = torch.arange(n * n, dtype=torch.float32).reshape(1, 1, n, n)
    with torch.no_grad():
        y = conv(x)
    m = -(-n // 2)
    assert y.shape == (1, 1, m, m)
    idx = 2 * np.arange(m) + expected_centre_offset
    np.testing.assert_array_equal(y[0, 0].numpy(), x[0, 0].numpy()[np.ix_(idx, idx)])
    # PyTorch's symmetric padding=1 differs on even sizes (that is why TFSameConv2d exists).
    if n % 2 == 0:
        with torch.no_grad():
            assert not torch.equal(y, F.conv2d(x, conv.weight, stride=2, padding=1))


def test_shared_atrous_equals_dilated_kernel():
    """Group j = lrelu(conv(x, dilate(w, r_j))): one weight, explicit zero-inserted kernels."""
    from optics import dilate

    torch.manual_seed(1)
    layer = SharedAtrousConv2d(4, 3, 5, dilations=(1, 2, 3))
    x = torch.randn(1, 4, 23, 19, dtype=torch.float64)
    layer = layer.double()
    y = layer(x)
    w = layer.weight.detach()
    for j, r in enumerate((1, 2, 3)):
        big = torch.stack([torch.stack([dilate(w[o, i], r) for i in range(4)]) for o in range(3)])
        assert big.shape[-1] == 4 * r + 1
        ref = F.leaky_relu(F.conv2d(x, big, padding=2 * r), 0.2)
        torch.testing.assert_close(y[:, 3 * j: 3 * (j + 1)], ref, rtol=1e-12, atol=1e-12)
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


@pytest.mark.parametrize("name", ["kpac", "kpac_2level", "kpac_dual"])
@pytest.mark.parametrize("h,w", [(37, 53), (8, 8)])
def test_smoke_odd_sizes_shape(name, h, w):
    torch.manual_seed(2)
    model = MODELS[name]().eval()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        out = model(x, x.flip(-1), x) if name == "kpac_dual" else model(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", ["kpac", "kpac_2level"])
def test_zero_residual_returns_input(name):
    """With the last conv zeroed the residual vanishes: [0,1] -> [-1,1] -> [0,1] is the identity."""
    model = MODELS[name]().eval()
    with torch.no_grad():
        model.d2_2.weight.zero_()
        model.d2_2.bias.zero_()
        x = torch.rand(1, 3, 21, 18)
        torch.testing.assert_close(model(x), x, rtol=0, atol=1e-7)


def test_dual_residual_goes_to_center_and_views_are_left_then_right():
    torch.manual_seed(3)
    model = KPACDual().eval()
    left, right, center = (torch.rand(1, 3, 16, 24) for _ in range(3))
    with torch.no_grad():
        model.d2_2.weight.zero_()
        model.d2_2.bias.zero_()
        torch.testing.assert_close(model(left, right, center), center, rtol=0, atol=1e-7)
    torch.manual_seed(3)
    model = KPACDual().eval()
    with torch.no_grad():
        model.c0.weight[:, 3:] = 0  # input channels 3-5 = the right view
        a = model(left, right, center)
        b = model(left, torch.rand_like(right), center)
        c = model(torch.rand_like(left), right, center)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a - c).abs().max()) > 0


def test_padding_is_replicate_then_crop():
    torch.manual_seed(4)
    model = KPAC().eval()
    x = torch.rand(1, 3, 13, 21)
    with torch.no_grad():
        ours = model(x, clip=False)
        reference = model(F.pad(x, (0, 3, 0, 3), mode="replicate"), clip=False)[..., :13, :21]
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["kpac_2level", "kpac_dual"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(5)
    model = MODELS[name]().train()
    x = torch.rand(1, 3, 16, 16)
    out = model(x, x.flip(-1), x) if name == "kpac_dual" else model(x)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), pname
        assert float(p.grad.abs().sum()) > 0, pname


def test_train_eval_behaviour():
    torch.manual_seed(6)
    model = KPAC(levels=2)
    with torch.no_grad():
        model.d2_2.bias.fill_(0.5)  # pushes the output above 1
    x = torch.rand(1, 3, 12, 12)
    model.train()
    train_out = model(x)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
        eval_unclipped = model(x, clip=False)
    torch.testing.assert_close(train_out.detach(), eval_unclipped, rtol=0, atol=0)
    torch.testing.assert_close(eval_out, eval_unclipped.clamp(0, 1), rtol=0, atol=0)
    assert float(train_out.detach().max()) > 1 and float(eval_out.max()) <= 1
    assert train_out.requires_grad


def test_determinism_under_seed_and_authors_init():
    outs, states = [], []
    for _ in range(2):
        torch.manual_seed(7)
        model = KPAC(levels=2).eval()
        states.append(model.state_dict())
        with torch.no_grad():
            outs.append(model(torch.rand(1, 3, 12, 20)))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    # The authors' initialiser: weights N(0, 0.04^2), biases 0.
    weights = torch.cat([p.detach().flatten() for n, p in KPAC().named_parameters() if not n.endswith("bias")])
    assert abs(float(weights.std()) - 0.04) < 1e-3 and abs(float(weights.mean())) < 1e-3
    assert all(float(p.detach().abs().max()) == 0 for n, p in KPAC().named_parameters() if n.endswith("bias"))


def test_float64():
    model = KPAC(levels=2).double().eval()
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        assert model(x).dtype == torch.float64


def test_bad_inputs_raise():
    model = KPAC().eval()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="4-D"):
        model(x[0])
    bad = x.clone()
    bad[..., 3, 3] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        model(bad)
    bad[..., 3, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        model(bad)
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.rand(1, 3, 16, 7))
    with pytest.raises(ValueError, match="at least 4x4"):
        MODELS["kpac_2level"]()(torch.rand(1, 3, 3, 16))
    with pytest.raises(TypeError, match="dtype"):
        model(x.double())
    with pytest.raises(TypeError, match="floating"):
        model((x * 255).to(torch.uint8))
    dual = KPACDual()
    with pytest.raises(ValueError, match="same shape"):
        dual(x, x, torch.rand(1, 3, 16, 24))
    with pytest.raises(ValueError, match="left must have 3 channels"):
        dual(torch.rand(1, 6, 16, 16), x, x)
    with pytest.raises(ValueError, match="levels"):
        KPAC(levels=4)
    with pytest.raises(ValueError, match="pad_mode"):
        KPAC(pad_mode="mirror")
