"""Tests for learned.models.ifan (IFAN, IFAN dual-pixel, reblurring network).

Independent references: the parameter counts of the authors' models (official-code-facts.md),
the key/shape list and the input/outputs of the authors' own code in ../shared/parity/ifan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from learned.models.ifan import IFAN, IFANDual, IFANReblurNetwork, MODELS

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
PARITY = SHARED / "parity" / "ifan"
needs_parity = pytest.mark.skipif(
    not PARITY.is_dir(), reason=f"IFAN parity vectors not found at {PARITY} (../shared missing)"
)

PARITY_ATOL = 1e-5  # README of the parity vectors: atol 1e-5, rtol 0, float32


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def small_ifan(cls=IFAN, **kwargs):
    """A narrow IFAN (same structure) for fast gradient tests."""
    return cls(channels=4, iterations=2, **kwargs)


def _official_state():
    state = torch.load(PARITY / "IFAN_parity.pytorch", weights_only=True)
    return {k.removeprefix("module.").removeprefix("Network."): v for k, v in state.items()}


@pytest.fixture(scope="module")
def official_model():
    if not PARITY.is_dir():
        pytest.skip(f"IFAN parity vectors not found at {PARITY} (../shared missing)")
    model = IFAN(reuse_vertical_kernel=True)
    model.load_state_dict(_official_state(), strict=True)
    return model.eval()


def _load(name):
    return torch.from_numpy(np.load(PARITY / f"{name}.npy"))


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize(
    "factory,expected",
    [
        (IFAN, 10_476_996),
        (IFANDual, 10_477_860),
        (IFANReblurNetwork, 19_139_685),
        (lambda: IFAN(iterations=8), 9_436_740),
        (lambda: IFAN(iterations=26), 11_517_252),
    ],
    ids=["ifan", "ifan_dual", "reblur", "ifan_N8", "ifan_N26"],
)
def test_parameter_count(factory, expected):
    assert n_params(factory()) == expected


def test_models_fragment():
    assert set(MODELS) == {"ifan", "ifan_dual"}
    assert n_params(MODELS["ifan"]()) == 10_476_996
    assert n_params(MODELS["ifan_dual"]()) == 10_477_860


# --------------------------------------------------------------------------- official checkpoint
@needs_parity
def test_state_dict_matches_official_keys_and_shapes():
    official = _official_state()
    ours = IFAN().state_dict()
    assert list(ours) == list(official)  # same keys, same order
    for key, value in official.items():
        assert tuple(ours[key].shape) == tuple(value.shape), key


@needs_parity
def test_output_parity_with_authors_code(official_model):
    image = _load("input")
    with torch.no_grad():
        aux = official_model(image, return_aux=True)
        plain = official_model(image)
    for key in ("output", "output_unclipped", "disparity", "iac_output"):
        diff = float((aux[key] - _load(key)).abs().max())
        assert diff <= PARITY_ATOL, f"{key}: max abs diff {diff:.3g}"
    torch.testing.assert_close(plain, aux["output"], rtol=0, atol=0)
    # (test_iac checks that switching the IAC bug off breaks this parity.)


@needs_parity
def test_float64_agrees_with_float32_parity(official_model):
    model64 = IFAN(reuse_vertical_kernel=True).double().eval()
    model64.load_state_dict(official_model.state_dict())
    image = _load("input")
    with torch.no_grad():
        out = model64(image.double(), clip=False)
    assert out.dtype == torch.float64
    assert float((out - _load("output_unclipped").double()).abs().max()) <= PARITY_ATOL


@needs_parity
def test_estimate_disparity_matches_forward(official_model):
    image = _load("input")
    with torch.no_grad():
        disparity = official_model.estimate_disparity(image)
    assert float((disparity - _load("disparity")).abs().max()) <= PARITY_ATOL


# --------------------------------------------------------------------------- smoke / shapes
@pytest.mark.parametrize("h,w", [(37, 53), (8, 8), (16, 24)])
def test_smoke_odd_sizes_shape(h, w):
    torch.manual_seed(0)
    model = IFAN().eval()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        aux = model(x, return_aux=True)
    assert aux["output"].shape == x.shape
    assert aux["output_unclipped"].shape == x.shape
    h8, w8 = -(-h // 8), -(-w // 8)
    assert aux["disparity"].shape == (2, 1, h8, w8)
    assert aux["filters"].shape == (2, 15232, h8, w8)
    assert aux["iac_output"].shape == (2, 128, h8, w8)


def test_padding_is_replicate_then_crop():
    torch.manual_seed(1)
    model = small_ifan().eval()
    x = torch.rand(1, 3, 13, 21)
    manual = F.pad(x, (0, 3, 0, 3), mode="replicate")
    with torch.no_grad():
        ours = model(x, clip=False)
        reference = model(manual, clip=False)[..., :13, :21]
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


def test_dual_smoke_and_view_order():
    torch.manual_seed(2)
    model = small_ifan(IFANDual).eval()
    left, right, center = (torch.rand(1, 3, 19, 26) for _ in range(3))
    with torch.no_grad():
        out = model(left, right, center)
    assert out.shape == center.shape
    # The filter encoder takes concat(R, L): zeroing the weights of input channels 0-2
    # makes the output independent of the right view only.
    with torch.no_grad():
        model.kconv1_1[0].weight[:, :3] = 0
        a = model(left, right, center)
        b = model(left, torch.rand_like(right), center)
        c = model(torch.rand_like(left), right, center)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a - c).abs().max()) > 0


def test_reblur_network_shapes_and_errors():
    torch.manual_seed(3)
    model = small_ifan().train()
    rbn = IFANReblurNetwork(filter_channels=model.filter_dim, channels=16, iterations=2)
    x = torch.rand(2, 3, 16, 24)
    sharp = torch.rand(2, 3, 16, 24)
    aux = model(x, return_aux=True)
    reblurred = rbn(sharp, aux["filters"])
    assert reblurred.shape == (2, 3, 2, 3)
    with pytest.raises(ValueError, match="sharp must have shape"):
        rbn(sharp[..., :23], aux["filters"])
    with pytest.raises(ValueError, match="channels"):
        rbn(sharp, aux["filters"][:, :-1])


# --------------------------------------------------------------------------- gradients / modes
def test_gradients_reach_every_parameter():
    torch.manual_seed(4)
    model = small_ifan().train()
    rbn = IFANReblurNetwork(filter_channels=model.filter_dim, channels=8, iterations=2)
    x = torch.rand(1, 3, 16, 16)
    aux = model(x, return_aux=True)
    loss = aux["output"].square().mean() + aux["disparity"].square().mean()
    loss = loss + rbn(torch.rand(1, 3, 16, 16), aux["filters"]).square().mean()
    loss.backward()
    for name, p in list(model.named_parameters()) + [("reblur." + n, p) for n, p in rbn.named_parameters()]:
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name


def test_train_eval_behaviour():
    torch.manual_seed(5)
    model = small_ifan()
    x = torch.rand(1, 3, 16, 16) * 1.4 - 0.2  # pushes outputs outside [0, 1]
    model.train()
    train_out = model(x)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
        eval_unclipped = model(x, clip=False)
    # No dropout / batch norm: only the clipping differs between modes.
    torch.testing.assert_close(train_out.detach(), eval_unclipped, rtol=0, atol=0)
    torch.testing.assert_close(eval_out, eval_unclipped.clamp(0, 1), rtol=0, atol=0)
    assert float(train_out.detach().min()) < 0 or float(train_out.detach().max()) > 1
    assert train_out.requires_grad


def test_determinism_under_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = small_ifan().eval()
        x = torch.rand(1, 3, 12, 20)
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


@needs_parity
def test_initialisation_reproduces_the_authors_draw():
    """README of the parity vectors: seed 20261122, DeblurNet + init(), then biases += randn * 0.01
    in named_parameters() order. The same recipe on our module gives the same checkpoint."""
    torch.manual_seed(20261122)
    model = IFAN()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p += torch.randn(p.shape) * 0.01
    official = _official_state()
    for key, value in model.state_dict().items():
        assert torch.equal(value, official[key]), key


@torch.no_grad()
def test_initialisation_statistics():
    torch.manual_seed(0)
    model = IFAN()
    w = model.conv2_2[0].weight  # 64 x 64 x 3 x 3: xavier bound sqrt(6 / (2 * 576))
    bound = (6.0 / (64 * 9 + 64 * 9)) ** 0.5
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.95 * bound
    head = model.F[3].weight  # gain 1.5
    head_bound = 1.5 * (6.0 / (128 + 15232)) ** 0.5
    assert float(head.abs().max()) <= head_bound and float(head.abs().max()) > 0.95 * head_bound
    assert all(float(b.abs().max()) == 0 for n, b in model.named_parameters() if n.endswith("bias"))


# --------------------------------------------------------------------------- errors
def test_bad_inputs_raise():
    model = small_ifan().eval()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 4, 16, 16))
    with pytest.raises(ValueError, match="4-D"):
        model(x[0])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        model(bad)
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.rand(1, 3, 7, 30))
    with pytest.raises(TypeError, match="floating"):
        model((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="dtype"):
        model(x.double())
    dual = small_ifan(IFANDual)
    with pytest.raises(ValueError, match="same shape"):
        dual(x, x, torch.rand(1, 3, 16, 24))
    with pytest.raises(ValueError, match="right must have 3 channels"):
        dual(x, torch.rand(1, 6, 16, 16), x)
    with pytest.raises(ValueError, match="iterations"):
        IFAN(iterations=0)
    with pytest.raises(ValueError, match="pad_mode"):
        IFAN(pad_mode="mirror")


# --------------------------------------------------------------------------- devices
def test_forward_on_gpu_matches_cpu(cuda_device):
    torch.manual_seed(8)
    model = small_ifan().eval()
    x = torch.rand(1, 3, 13, 21)
    with torch.no_grad():
        ref = model(x, return_aux=True)
        out = model.to(cuda_device)(x.to(cuda_device), return_aux=True)
    for key in ("output", "disparity"):
        assert out[key].device.type == cuda_device
        torch.testing.assert_close(out[key].cpu(), ref[key], rtol=1e-4, atol=1e-5)


@needs_parity
def test_output_parity_on_gpu(cuda_device, official_model):
    device = cuda_device
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        model = IFAN(reuse_vertical_kernel=True).to(device).eval()
        model.load_state_dict(official_model.state_dict())
        with torch.no_grad():
            out = model(_load("input").to(device), clip=False).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert float((out - _load("output_unclipped")).abs().max()) <= PARITY_ATOL


# ------------------------------------------------------------------ learned/inference/_padding.py helpers
def test_pad_to_multiple_and_crop_to():
    from learned.inference._padding import crop_to, pad_to_multiple

    x = torch.arange(2 * 5 * 7, dtype=torch.float64).reshape(1, 2, 5, 7)
    padded, size = pad_to_multiple(x, 4, "replicate")
    assert padded.shape == (1, 2, 8, 8) and size == (5, 7)
    torch.testing.assert_close(padded[..., :5, :7], x, rtol=0, atol=0)
    torch.testing.assert_close(padded[..., 7, :7], x[..., 4, :], rtol=0, atol=0)  # last row repeated
    torch.testing.assert_close(padded[..., :5, 7], x[..., :, 6], rtol=0, atol=0)  # last column repeated
    assert torch.equal(crop_to(padded, size), x)
    same, _ = pad_to_multiple(x[..., :4, :4], 4)
    assert same.data_ptr() == x.data_ptr()  # nothing to pad: no copy
    zeros, _ = pad_to_multiple(x, 3, "constant")
    assert zeros.shape == (1, 2, 6, 9) and float(zeros[..., 5, :].abs().max()) == 0
    with pytest.raises(ValueError, match="multiple must be a positive int"):
        pad_to_multiple(x, 0)
    with pytest.raises(ValueError, match="mode must be one of"):
        pad_to_multiple(x, 4, "mirror")
    with pytest.raises(ValueError, match="reflect"):
        pad_to_multiple(x[..., :1, :1], 4, "reflect")
    with pytest.raises(ValueError, match="size must satisfy"):
        crop_to(x, (6, 7))


def test_check_input_messages():
    from learned.inference._padding import check_input

    check_input(torch.rand(2, 3, 8, 9), "image", 3, 8)  # valid: no exception
    with pytest.raises(TypeError, match="image must be a torch.Tensor"):
        check_input(np.zeros((1, 3, 8, 8)), "image", 3, 8)
    with pytest.raises(ValueError, match=r"image must be 4-D \(B, C, H, W\); got 3-D .*add a batch axis"):
        check_input(torch.rand(3, 8, 8), "image", 3, 8)
    with pytest.raises(ValueError, match="image must have 3 channels; got 1"):
        check_input(torch.rand(1, 1, 8, 8), "image", 3, 8)
    with pytest.raises(ValueError, match="at least 8x8 pixels; got 8x5"):
        check_input(torch.rand(1, 3, 8, 5), "image", 3, 8)
    with pytest.raises(ValueError, match="got 2 NaN or inf entries"):
        bad = torch.rand(1, 3, 8, 8)
        bad[0, 0, 0, :2] = torch.tensor([float("nan"), float("-inf")])
        check_input(bad, "image", 3, 8)
    with pytest.raises(ValueError, match="batch size"):
        check_input(torch.rand(0, 3, 8, 8), "image", 3, 8)
