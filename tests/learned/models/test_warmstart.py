"""The identity-preserving starts of NRKNet and IFAN (learned.models.warmstart) and the presets that use them.

Reference: the identity itself. With D_t ~ I every Neumann term (I - D_t)^k Y_t is ~0, so NRKNet
returns its input; the authors' initialisation is far from it (measured 4.6 multi-scale MSE at
step 1 against 0.0067 for the input). IFAN is Y + LReLU(conv_out(f)): a small conv_out makes the
residual small.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from learned import build_model
from learned.training.recipes import TrainConfig, make_config
from learned.models.warmstart import identity_start_, ifan_identity_start_, nrknet_identity_start_

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.mark.parametrize("overrides", [dict(base_channels=8, num_kernels=5), dict(base_channels=16)])
def test_nrknet_identity_start_returns_the_input_and_keeps_the_keys(overrides):
    torch.manual_seed(0)
    default = build_model("nrknet", **overrides)
    torch.manual_seed(0)
    net = nrknet_identity_start_(build_model("nrknet", **overrides))
    assert list(net.state_dict()) == list(default.state_dict())  # checkpoint keys unchanged
    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    net.train()  # BatchNorm on batch statistics, as in training
    out = net(x)
    assert float((out.detach() - x).abs().max()) < 0.05  # ~1 % of the input
    with torch.no_grad():
        far = float((default.train()(x) - x).abs().max())
    assert far > 0.2  # the authors' initialisation is not near the identity
    out.sum().backward()
    starved = [n for n, p in net.named_parameters() if p.grad is None or not bool((p.grad != 0).any())]
    assert not starved, starved  # every parameter learns from step 1


@pytest.mark.parametrize("name", ["ifan", "ifan_dual"])
def test_ifan_identity_start_returns_the_input_and_keeps_the_keys(name):
    overrides = dict(channels=8, iterations=2)
    torch.manual_seed(0)
    default = build_model(name, **overrides)
    torch.manual_seed(0)
    net = identity_start_(build_model(name, **overrides), name)
    assert list(net.state_dict()) == list(default.state_dict())  # checkpoint keys unchanged
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 48, generator=g)
    views = (torch.rand(2, 3, 32, 48, generator=g), torch.rand(2, 3, 32, 48, generator=g))
    args = (*views, x) if name == "ifan_dual" else (x,)
    net.train()
    out = net(*args, clip=False)
    near = float((out.detach() - x).abs().max())
    with torch.no_grad():
        far = float((default.train()(*args, clip=False) - x).abs().max())
    assert near < 0.02 * far and near < 0.01  # the authors' initialisation is much further from the input
    out.sum().backward()
    starved = [n for n, p in net.named_parameters() if p.grad is None or not bool((p.grad != 0).any())]
    assert not starved, starved  # every parameter learns from step 1


def test_identity_start_errors():
    with pytest.raises(ValueError, match="no identity-preserving start"):
        identity_start_(build_model("kpac", channels=8), "kpac")
    with pytest.raises(ValueError, match="scale"):
        nrknet_identity_start_(build_model("nrknet", base_channels=4, num_kernels=3), scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        ifan_identity_start_(build_model("ifan", channels=8, iterations=1), scale=2.0)


def test_presets_identity_start_and_gpu_smoke():
    assert make_config("nrknet", preset="cpu-smoke").recipe.identity_start
    assert make_config("nrknet", preset="gpu-smoke").recipe.identity_start
    assert not make_config("nrknet").recipe.identity_start  # the paper recipe: the authors' initialisation
    gpu = make_config("ifan", preset="gpu-smoke")
    assert (gpu.model_overrides, gpu.recipe.batch_size, gpu.recipe.crop, gpu.recipe.optimizer.lr) == ({}, 16, 64, 5e-4)
    assert gpu.recipe.schedule.kind == "cosine" and gpu.eval_images == 16 and gpu.recipe.identity_start
    assert not make_config("kpac", preset="gpu-smoke").recipe.identity_start
    assert make_config("ifan", preset="cpu-smoke").recipe.identity_start and not make_config("ifan").recipe.identity_start
    # NRKNet is scored as its authors run it: BatchNorm on each image's statistics
    for preset in ("cpu-smoke", "gpu-smoke"):
        assert make_config("nrknet", preset=preset).model_overrides["batchnorm_stats"] == "batch"
    assert "batchnorm_stats" not in make_config("nrknet").model_overrides
    nrk = make_config("nrknet", preset="cpu-smoke")
    assert TrainConfig.from_dict(nrk.to_dict()) == nrk
    with pytest.raises(ValueError, match="identity_start"):
        kpac = make_config("kpac")
        dataclasses.replace(kpac, recipe=dataclasses.replace(kpac.recipe, identity_start=True))


def test_training_starts_from_the_identity(tmp_path):
    from learned.train import train

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            t = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i))
            return {"input": 0.5 * t + 0.25, "target": t}

    cfg = make_config("nrknet", preset="cpu-smoke", steps=1, crop=32, batch_size=2, lr=1e-12, eval_images=0,
                      model_overrides=dict(base_channels=4, num_kernels=3), out=str(tmp_path / "run"),
                      progress=False, device="cpu")
    result = train(cfg, train_dataset=Pairs())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    result.model.train()
    with torch.no_grad():
        assert float((result.model(x) - x).abs().max()) < 0.05


def test_explicit_identity_start_overrides_the_preset():
    from learned.train import _make_cli_config, _parser

    assert not make_config("nrknet", preset="cpu-smoke", identity_start=False).recipe.identity_start
    assert make_config("nrknet", identity_start=True).recipe.identity_start
    args = _parser().parse_args(["--model", "nrknet", "--preset", "cpu-smoke", "--no-identity-start"])
    assert not _make_cli_config(args).recipe.identity_start
    args = _parser().parse_args(["--model", "nrknet", "--preset", "cpu-smoke"])
    assert _make_cli_config(args).recipe.identity_start
