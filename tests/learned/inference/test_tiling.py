"""Tiled inference: partition of unity, exactness with enough overlap, memory-budget tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from learned.deblur import deblur_image
from learned.inference.tiling import activation_bytes_per_pixel, tile_side_for_budget, tile_starts, tiled_apply, trust_weights


def small_net(seed=0):
    torch.manual_seed(seed)
    # receptive-field radius 4 (two 5x5 convolutions)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 5, padding=2)).eval()


@given(length=st.integers(1, 300), tile=st.integers(8, 80), overlap_frac=st.floats(0.0, 0.5))
def test_tiles_cover_and_weights_are_a_partition(length, tile, overlap_frac):
    overlap = int(overlap_frac * tile)
    starts = tile_starts(length, tile, overlap)
    total = np.zeros(length)
    for s in starts:
        size = min(tile, length - s)
        total[s : s + size] += trust_weights(s, size, length, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert (np.diff(starts) <= tile - overlap).all() if len(starts) > 1 else True
    assert (total > 0).all()  # every pixel is trusted by at least one tile


@pytest.mark.parametrize("shape", [(1, 3, 100, 137), (2, 3, 64, 65)])
def test_tiled_equals_untiled_with_enough_overlap(shape):
    net = small_net()
    x = torch.rand(shape)
    with torch.no_grad():
        full = net(x)
        tiled = tiled_apply(net, [x], tile=40, overlap=16)  # overlap / 4 = 4 = receptive-field radius
    assert torch.allclose(full, tiled, atol=1e-6, rtol=0)


def test_too_little_overlap_is_smooth_but_not_exact():
    net = small_net()
    x = torch.rand(1, 3, 90, 90)
    with torch.no_grad():
        full, tiled = net(x), tiled_apply(net, [x], tile=40, overlap=8)
    diff = (full - tiled).abs()
    assert diff.max() > 1e-4  # the seams are visible in the numbers...
    assert diff.mean() < 1e-2  # ...but confined to the blend bands


def test_two_input_models_are_tiled_together():
    net = small_net()
    fn = lambda a, b: net((a + b) / 2)  # noqa: E731
    a, b = torch.rand(1, 3, 70, 50), torch.rand(1, 3, 70, 50)
    with torch.no_grad():
        assert torch.allclose(tiled_apply(fn, [a, b], 32, 16), fn(a, b), atol=1e-6)
    with pytest.raises(ValueError, match="share the spatial size"):
        tiled_apply(fn, [a, b[..., :40]], 32, 16)


def test_memory_budget_selects_tiles():
    net = small_net()
    bpp = activation_bytes_per_pixel(net, [torch.rand(1, 3, 32, 32)])
    assert bpp == pytest.approx((8 + 8 + 3) * 4)  # conv, relu, conv outputs in float32
    assert tile_side_for_budget(bpp, 76 * 256 * 256) == 256
    with pytest.raises(ValueError, match="raise --max-memory"):
        tile_side_for_budget(bpp, 1000)
    image = np.random.default_rng(0).random((150, 170, 3)).astype(np.float32)
    untiled = deblur_image(net, image, max_memory_gib=None)
    budgeted = deblur_image(net, image, max_memory_gib=2 * 76 * 96 * 96 / 2**30, overlap=16)
    np.testing.assert_allclose(budgeted, untiled, atol=1e-6)


def test_bad_tiling_arguments():
    with pytest.raises(ValueError, match="overlap < tile"):
        tile_starts(100, 16, 16)


@given(length=st.integers(1, 400), tile=st.integers(64, 160), overlap_frac=st.floats(0.0, 0.5))
def test_aligned_tile_starts_keep_the_overlap_and_the_phase(length, tile, overlap_frac):
    overlap = min(int(overlap_frac * tile), tile - 16)
    starts = tile_starts(length, tile, overlap, align=16)
    assert starts[0] == 0 and all(s % 16 == 0 for s in starts)
    ends = [min(s + tile, length) for s in starts]
    assert ends[-1] == length and all(e - s <= tile for s, e in zip(starts, ends))
    assert all(e - s2 >= overlap for s2, e in zip(starts[1:], ends[:-1]))
    total = np.zeros(length)
    for s, e in zip(starts, ends):
        total[s:e] += trust_weights(s, e - s, length, overlap)
    assert (total > 0).all()


def test_every_model_has_a_measured_context_and_a_small_overlap_warns():
    import learned
    from learned.inference.tiling import CONTEXT_MAX_ERROR, CONTEXT_PX, context_warning

    # models that refine the physics estimate are never tiled (learned.deblur runs them whole)
    assert set(CONTEXT_PX) == set(learned.MODELS) - learned.PHYSICS_INPUT == set(CONTEXT_MAX_ERROR)
    for name, (at_255, _) in CONTEXT_PX.items():
        assert context_warning(name, 4 * at_255) == ""
        assert context_warning(name, 128) == ""  # the default overlap covers every measured context
        message = context_warning(name, 4 * at_255 - 4)
        assert message.startswith("--overlap") and "/255" in message and "\n" not in message


def test_a_real_network_tiles_within_1_255_with_4x_its_measured_context_and_not_with_less():
    """KPAC (2 levels, seeded random init): overlap >= 4 x CONTEXT_PX keeps seams below 1/255;
    overlap 8 (2 px of context) does not, and neither do unaligned tile starts (sampling phase)."""
    import learned
    from benchmarks.inference import _input
    from learned.inference.tiling import CONTEXT_PX

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = learned.build_model("kpac_2level").eval()
    x = _input(176, 208, seed=1)
    overlap = 4 * CONTEXT_PX["kpac_2level"][0]
    with torch.inference_mode():
        full = net(x)
        exact = tiled_apply(net, [x], tile=96, overlap=overlap, align=16)
        short = tiled_apply(net, [x], tile=96, overlap=8, align=16)
        unaligned = tiled_apply(net, [x], tile=96, overlap=overlap)
    assert tile_starts(208, 96, overlap) != tile_starts(208, 96, overlap, align=16)
    assert float((exact - full).abs().max()) < 1 / 255
    assert float((short - full).abs().max()) > 1 / 255
    assert float((unaligned - full).abs().max()) > 1 / 255


def test_deblur_warns_once_when_the_overlap_is_below_the_models_context(capsys):
    net = small_net()
    image = np.random.default_rng(0).random((150, 170, 3)).astype(np.float32)
    deblur_image(net, image, tile=64, overlap=16, model_name="nrknet")  # 4 px of context < 32 px
    err = capsys.readouterr().err
    assert err.startswith("warning: --overlap 16 px") and "nrknet" in err and err.count("\n") == 1
    deblur_image(net, image, tile=64, overlap=16)  # no model name: nothing measured, nothing said
    deblur_image(net, image, tile=256, overlap=128, model_name="nrknet")  # the default covers 32 px
    assert capsys.readouterr().err == ""


def test_deblur_never_tiles_a_model_that_normalises_with_its_whole_input(capsys):
    from learned import build_model

    torch.manual_seed(0)
    net = build_model("nrknet", base_channels=4, num_kernels=3, batchnorm_stats="batch").eval()
    image = np.random.default_rng(1).random((96, 96, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="statistics of its whole input.*--allow-inexact-tiles"):
        deblur_image(net, image, tile=64, overlap=16)
    deblur_image(net, image, tile=64, overlap=16, allow_inexact_tiles=True)
    assert "expect seams" in capsys.readouterr().err
    whole = deblur_image(net, image)  # untiled: runs
    net.batchnorm_stats = "running"
    assert deblur_image(net, image, tile=64, overlap=16).shape == whole.shape  # running statistics tile
