"""Mixed precision: every family under ``torch.autocast`` (CPU bfloat16 in CI, CUDA under ``gpu``).

CI has no GPU, so the dtype mismatches that broke AMP training on CUDA (IFAN's
``kernels_v must have the dtype of features``, K3DN's ``left must be float32 or float64``) are
caught here on the CPU: a forward pass, a backward pass and one optimiser step of the training
loss per family under ``torch.autocast("cpu", dtype=torch.bfloat16)``. The float32 boundaries
(IAC accumulation, K3DN's correlation / attention / FFT Wiener inverse, NRKNet's RKR recursion)
are checked against the same computation run in float32 on the upcast inputs.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from learned import DUAL_PIXEL, build_model
from learned.models.iac import iterative_adaptive_convolution
from learned.models.k3dn import horizontal_correlation, local_attention_scores, psf_deblur
from learned.inference.precision import amp_dtype, autocast, upcast_low_precision
from learned.train import make_config
from learned.training.optim import build_optimizer
from learned.training.step import TrainingStep
from test_train import TINY as ALL_TINY  # tests/learned/test_train.py

pytestmark = pytest.mark.usefixtures("single_torch_thread")

#: Tiny widths (those of test_train): the point is the dtype path, not the size. One model per
#: family and the dual-pixel variants.
TINY = {name: ALL_TINY[name] for name in ("kpac", "kpac_dual", "ifan", "ifan_dual", "nrknet", "k3dn_tiny")}
BF16 = torch.bfloat16


def _batch(device="cpu", size=32):
    g = torch.Generator().manual_seed(7)
    sharp = torch.rand(2, 3, size, size, generator=g)
    left = (0.7 * sharp + 0.3 * torch.roll(sharp, 1, -1)).clamp(0, 1)
    right = (0.7 * sharp + 0.3 * torch.roll(sharp, -1, -1)).clamp(0, 1)
    blurred = 0.5 * (left + right)
    return [t.to(device) for t in (blurred, sharp, left, right)]


def _forward(model, name, blurred, left, right):
    if name not in DUAL_PIXEL:
        return model(blurred)
    return model(left, right, blurred) if name.startswith(("kpac", "ifan")) else model(left, right)


def _training_step(name, device, dtype, scaler=None):
    """Loss (autocast) -> backward -> optimiser step; returns the loss, the trainer before and after."""
    torch.manual_seed(0)
    cfg = make_config(name, crop=32, model_overrides=TINY[name])
    trainer = TrainingStep(build_model(name, **TINY[name]), name, cfg.recipe.loss).to(device)
    before = copy.deepcopy(trainer.state_dict())
    optimizer = build_optimizer(trainer.parameters(), cfg.recipe.optimizer)
    blurred, sharp, left, right = _batch(device)
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        terms = trainer(blurred, sharp, left, right)
    total = terms["total"]
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        total.backward()
        optimizer.step()
    else:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    return terms, trainer, before


@pytest.mark.parametrize("name", sorted(TINY))
def test_autocast_cpu_bf16_forward_backward_and_one_training_step(name):
    terms, trainer, before = _training_step(name, "cpu", BF16)
    assert terms["total"].dtype == torch.float32 and bool(torch.isfinite(terms["total"]))
    grads = {n: p.grad for n, p in trainer.named_parameters() if p.grad is not None}
    assert grads, "no parameter received a gradient"
    assert all(bool(torch.isfinite(g).all()) for g in grads.values())
    after = trainer.state_dict()
    changed = [k for k in grads if not torch.equal(before[k], after[k])]
    assert changed, "the optimiser step changed no parameter"
    # the same step in float32: the autocast loss is the float32 loss up to bfloat16 rounding
    torch.manual_seed(0)
    cfg = make_config(name, crop=32, model_overrides=TINY[name])
    reference = TrainingStep(build_model(name, **TINY[name]), name, cfg.recipe.loss)
    blurred, sharp, left, right = _batch()
    with torch.no_grad():
        loss32 = float(reference(blurred, sharp, left, right)["total"])
    mixed = float(terms["total"].detach())
    assert abs(mixed - loss32) <= 0.05 * abs(loss32) + 1e-4, (mixed, loss32)


@pytest.mark.parametrize("name", sorted(TINY))
def test_autocast_cpu_bf16_inference_is_close_to_float32(name):
    torch.manual_seed(0)
    model = build_model(name, **TINY[name]).eval()
    blurred, _, left, right = _batch(size=48)
    with torch.no_grad():
        reference = _forward(model, name, blurred, left, right)
        with autocast("cpu"):
            mixed = _forward(model, name, blurred, left, right)
    assert mixed.shape == reference.shape and bool(torch.isfinite(mixed).all())
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9); tiny random nets stay within 0.05
    assert float((mixed.float() - reference).abs().max()) < 0.05


def test_upcast_low_precision_and_amp_dtype():
    (a, b, c), dtype = upcast_low_precision(torch.ones(2, dtype=BF16), torch.ones(2), "x")
    assert (a.dtype, b.dtype, c, dtype) == (torch.float32, torch.float32, "x", torch.float32)
    (a,), dtype = upcast_low_precision(torch.ones(2, dtype=torch.float16))
    assert (a.dtype, dtype) == (torch.float32, torch.float16)
    (a, b), dtype = upcast_low_precision(torch.ones(2, dtype=torch.float64), torch.ones(2))
    assert (a.dtype, b.dtype, dtype) == (torch.float64, torch.float32, torch.float64)
    assert amp_dtype("cpu") == BF16
    with autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == BF16
    with autocast("cpu", enabled=False):
        assert not torch.is_autocast_enabled("cpu")


def test_iac_accumulates_16_bit_inputs_in_float32():
    g = torch.Generator().manual_seed(3)
    features = torch.rand(1, 2, 6, 7, generator=g)
    kv, kh = (torch.rand(1, 3, 2, 3, 6, 7, generator=g).to(BF16) for _ in range(2))
    bias = (0.1 * torch.randn(1, 3, 2, 6, 7, generator=g)).to(BF16)
    out = iterative_adaptive_convolution(features, kv, kh, bias)  # was a TypeError
    reference = iterative_adaptive_convolution(features, kv.float(), kh.float(), bias.float())
    assert out.dtype == torch.float32 and torch.equal(out, reference)
    all16 = iterative_adaptive_convolution(features.to(BF16), kv, kh, bias)
    expected = iterative_adaptive_convolution(features.to(BF16).float(), kv.float(), kh.float(), bias.float())
    assert all16.dtype == BF16 and torch.equal(all16, expected.to(BF16))
    with pytest.raises(TypeError, match="kernels_v must have the dtype of features"):  # float32 / float64 mixes stay errors
        iterative_adaptive_convolution(features.double(), kv.float(), kh.double(), bias.double())


def test_k3dn_float32_boundaries():
    g = torch.Generator().manual_seed(5)
    left, right = (torch.rand(1, 4, 8, 8, generator=g).to(BF16) for _ in range(2))
    corr = horizontal_correlation(left, right, 2)  # was "left must be float32 or float64"
    assert corr.dtype == BF16 and torch.equal(corr, horizontal_correlation(left.float(), right.float(), 2).to(BF16))
    scores = local_attention_scores(left, right.float(), 3)
    assert scores.dtype == torch.float32 and torch.equal(scores, local_attention_scores(left.float(), right.float(), 3))
    features = torch.rand(1, 2, 8, 8, generator=g)
    kernels = torch.softmax(torch.rand(1, 2, 2, 2, 9, generator=g), -1).reshape(1, 2, 2, 2, 3, 3).to(BF16)
    deblurred = psf_deblur(features, kernels, inverse_size=5, eps=1e-2)
    reference = psf_deblur(features, kernels.float(), inverse_size=5, eps=1e-2)
    assert deblurred.dtype == torch.float32 and torch.equal(deblurred, reference)


def test_nrknet_rkr_recursion_stays_float32_under_autocast():
    torch.manual_seed(0)
    net = build_model("nrknet", **TINY["nrknet"])
    y = torch.rand(1, 3, 16, 16)
    coefficients = torch.softmax(torch.rand(1, net.GCM.n_steps + 1, 16, 16), 1).to(BF16)
    with autocast("cpu"):
        mixed = net.blur(y, coefficients)
    reference = net.blur(y, coefficients.float())
    assert mixed.dtype == torch.float32 and torch.equal(mixed, reference)


# ------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU): AMP training step, bf16 where supported, fp16 with a GradScaler
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TINY))
def test_cuda_amp_training_step(name, cuda_device):
    dtype = amp_dtype(cuda_device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    terms, trainer, before = _training_step(name, cuda_device, dtype, scaler)
    assert bool(torch.isfinite(terms["total"]))
    after = trainer.state_dict()
    assert any(not torch.equal(before[k].cpu(), after[k].cpu()) for k in after)


@pytest.mark.parametrize("name", sorted(TINY))
def test_cuda_fp16_gradscaler_training_step(name, cuda_device):
    scaler = torch.amp.GradScaler("cuda")
    terms, _, _ = _training_step(name, cuda_device, torch.float16, scaler)
    assert bool(torch.isfinite(terms["total"]))


@pytest.mark.parametrize("name", sorted(TINY))
def test_cuda_train_loop_with_amp(name, cuda_device, tmp_path):
    from learned.train import train

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            blurred, sharp, left, right = (t[i] for t in _batch())
            return {"input": blurred, "target": sharp, "left": left, "right": right}

    cfg = make_config(name, steps=2, crop=32, batch_size=2, device=cuda_device, amp=True,
                      model_overrides=TINY[name], out=str(tmp_path / name), progress=False)
    result = train(cfg, train_dataset=Pairs())
    assert result.step == 2 and np.isfinite(result.losses["total"])


# ------------------------------------------------------------------------------------------------
# --amp on the inference CLIs (CPU: bfloat16 autocast)
# ------------------------------------------------------------------------------------------------
def test_deblur_image_amp_is_close_to_float32_and_tiles_blend_in_float32():
    from learned.deblur import deblur_image

    torch.manual_seed(0)
    net = build_model("ifan", **TINY["ifan"]).eval()
    image = np.random.default_rng(0).random((96, 112, 3), dtype=np.float32)
    reference = deblur_image(net, image)
    mixed = deblur_image(net, image, amp=True)
    tiled = deblur_image(net, image, amp=True, tile=64, overlap=16)
    assert mixed.dtype == tiled.dtype == np.float32
    assert 0 < np.abs(mixed - reference).max() < 0.05 and np.abs(tiled - reference).max() < 0.05


def test_evaluate_and_deblur_cli_take_amp(tmp_path, capsys):
    from learned import save_checkpoint
    from learned.deblur import main as deblur_main
    from learned.evaluate import main as evaluate_main
    from learned.data.io import write_image

    torch.manual_seed(0)
    checkpoint = tmp_path / "kpac.pt"
    save_checkpoint(build_model("kpac", **TINY["kpac"]), "kpac", checkpoint, dict(TINY["kpac"]))
    spec = "synthetic:size=32,test_count=1,count=1"
    argv = ["--model", "kpac", "--checkpoint", str(checkpoint), "--data", spec, "--no-lpips", "--baseline", "none",
            "--device", "cpu"]
    assert evaluate_main(argv) == 0
    plain = capsys.readouterr().out
    assert evaluate_main(argv + ["--amp"]) == 0
    mixed = capsys.readouterr().out
    assert "autocast bfloat16" in mixed and "autocast" not in plain
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    write_image(src, np.random.default_rng(1).random((24, 32, 3)), 8)
    assert deblur_main([str(src), str(dst), "--model", "kpac", "--checkpoint", str(checkpoint), "--device", "cpu",
                        "--amp"]) == 0
    assert dst.is_file()
