"""Tests for learned.models.dp_refine (the physics-refinement network).

Independent references: its untrained output is the physics estimate exactly (the zero-initialised
head); the exposure equivariance the design states (scaling the views and the estimate by k scales
the output by k); float64 gradcheck; float32 against bfloat16 autocast on the CPU; the toolkit's
checkpoint round trip.
"""

from __future__ import annotations

import pytest
import torch

import learned
from learned.models.dp_refine import DPRefine

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _inputs(B=2, H=13, W=17, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    left, right, physics = (0.05 + 0.4 * torch.rand(B, 3, H, W, generator=g, dtype=dtype) for _ in range(3))
    defocus = 2.5 * torch.rand(B, 1, H, W, generator=g, dtype=dtype) - 0.9
    return left, right, physics, defocus


def _perturbed(model: DPRefine, seed=1) -> DPRefine:
    """The head starts at zero; give it weights so that the tests see the whole network."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.copy_(0.1 * torch.randn(model.head.weight.shape, generator=g))
        model.head.bias.copy_(0.01 * torch.randn(model.head.bias.shape, generator=g))
    return model


def test_registered_as_a_physics_input_dual_pixel_model():
    assert learned.MODELS["dp_refine"] is DPRefine
    assert "dp_refine" in learned.PHYSICS_INPUT and "dp_refine" in learned.DUAL_PIXEL
    assert isinstance(learned.build_model("dp_refine", channels=4), DPRefine)


def test_untrained_network_returns_the_physics_estimate_exactly():
    torch.manual_seed(0)
    model = DPRefine(channels=4, levels=3).eval()
    left, right, physics, defocus = _inputs()
    with torch.no_grad():
        assert torch.equal(model(left, right, physics, defocus), physics)


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("size", [(1, 1), (7, 5), (16, 16), (13, 17)])
def test_shapes_any_size(levels, size):
    model = _perturbed(DPRefine(channels=4, levels=levels)).eval()
    left, right, physics, defocus = _inputs(H=size[0], W=size[1])
    with torch.no_grad():
        out = model(left, right, physics, defocus)
    assert out.shape == physics.shape and torch.isfinite(out).all()


def test_exposure_equivariance():
    """s is the mean level of (L + R) / 2: scaling L, R and P by k scales the output by k."""
    torch.manual_seed(0)
    model = _perturbed(DPRefine(channels=4, levels=2)).double().eval()
    left, right, physics, defocus = _inputs(dtype=torch.float64)
    k = 3.0
    with torch.no_grad():
        a = model(left, right, physics, defocus)
        b = model(k * left, k * right, k * physics, defocus)
    torch.testing.assert_close(b, k * a, rtol=1e-12, atol=1e-12)


def test_gradcheck_float64():
    torch.manual_seed(0)
    model = _perturbed(DPRefine(channels=2, levels=2)).double()
    left, right, physics, defocus = (t.requires_grad_() for t in _inputs(B=1, H=6, W=6, dtype=torch.float64))
    assert torch.autograd.gradcheck(model, (left, right, physics, defocus), eps=1e-6, atol=1e-6)


def test_bfloat16_autocast_close_to_float32():
    torch.manual_seed(0)
    model = _perturbed(DPRefine(channels=8, levels=3)).eval()
    left, right, physics, defocus = _inputs(H=32, W=32)
    with torch.no_grad():
        ref = model(left, right, physics, defocus)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(left, right, physics, defocus)
    assert low.shape == ref.shape
    # bfloat16 has 8 bits of mantissa: the correction (about 0.1 of the image) to ~1 %
    assert float((low.float() - ref).abs().max()) < 2e-2


def test_checkpoint_round_trip(tmp_path):
    model = _perturbed(DPRefine(channels=4, levels=2)).eval()
    learned.save_checkpoint(model, "dp_refine", tmp_path / "m.pt", config=dict(channels=4, levels=2))
    loaded = learned.load_checkpoint(tmp_path / "m.pt", "dp_refine")
    inputs = _inputs()
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), model(*inputs))


@pytest.mark.parametrize("change, match", [
    (lambda a: (a[0][:, :1], *a[1:]), "left"),
    (lambda a: (a[0], a[1], a[2], a[3].expand(-1, 3, -1, -1)), "defocus"),
    (lambda a: (a[0], a[1], a[2][..., :-1], a[3]), "share batch and size"),
    (lambda a: (a[0], a[1][:1], a[2], a[3]), "share batch and size"),
    (lambda a: (a[0], a[1], a[2].long(), a[3]), "physics"),
    (lambda a: (a[0], a[1], a[2], a[3][0]), "defocus"),
])
def test_bad_input_one_line_error(change, match):
    model = DPRefine(channels=4)
    with pytest.raises((ValueError, TypeError), match=match) as info:
        model(*change(_inputs()))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [dict(channels=0), dict(levels=0), dict(channels=2.5), dict(levels=True)])
def test_bad_configuration(kwargs):
    with pytest.raises(ValueError, match="channels|levels"):
        DPRefine(**kwargs)
