"""Self-supervised fine-tuning on real dual-pixel views (learned.training.real_views, learned.train --real-views)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import learned
from learned.models.dp_refine import DPRefine
from learned.training.checkpoints import init_weights_
from learned.baseline import dual_pixel_row
from learned.data import build_dataset
from learned.training.real_views import RealViewCrops, RealViewsConfig, real_view_loss
from optics.image_io import png_bytes

REPO = Path(__file__).resolve().parents[3]
S = 336


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array))


@pytest.fixture(scope="module")
def xin(tmp_path_factory, xin_layout) -> Path:
    """Two 336 x 336 scenes in Xin et al.'s layout (conftest.write_xin_layout)."""
    root = tmp_path_factory.mktemp("DP_data_pixel_4")
    xin_layout(root, {"001": 3, "002": 4}, S)
    return root


@pytest.fixture(scope="module")
def crops(xin) -> RealViewCrops:
    return _crops(RealViewsConfig(f"pixeldp:{xin}", scenes=("001", "002"), crop=64, batch_size=3,
                                  monitor_every=1, monitor_size=128))


def _crops(config: RealViewsConfig) -> RealViewCrops:
    """As learned.train builds them: the reader and the physics of learned.evaluate."""
    return RealViewCrops(config, build_dataset(config.data, "test"), dual_pixel_row(config.data))


def test_training_reads_the_views_only_never_the_ground_truth(xin, tmp_path, crops):
    """The same folder with every ground-truth image replaced by noise of its size (the size is the
    authors' crop, ``_crop_image_central_fov``): the training arrays are identical, only the
    monitor, which scores, sees the difference."""
    other = tmp_path / "DP_data_pixel_4"
    for p in xin.rglob("*"):
        if p.is_file():
            q = other / p.relative_to(xin)
            q.parent.mkdir(parents=True, exist_ok=True)
            if p.parent.name == "gt_all_in_focus_im":
                _write(q, np.random.default_rng(0).integers(0, 65535, (S, S)).astype(np.uint16))
            else:
                q.write_bytes(p.read_bytes())
    real = _crops(RealViewsConfig(f"pixeldp:{other}", scenes=("001", "002"), crop=64, batch_size=3,
                                  monitor_size=128))
    for s in ("001", "002"):
        assert set(real.scenes[s]) == {"left", "right", "physics", "defocus", "reblur_defocus"}  # all from the views
        for k in real.scenes[s]:
            assert np.array_equal(real.scenes[s][k], crops.scenes[s][k]), (s, k)
    net = DPRefine(4, 2)
    torch.nn.init.normal_(net.head.weight, std=0.01)
    assert real.monitor(net, "dp_refine")["real_gain_db"] != pytest.approx(crops.monitor(net, "dp_refine")["real_gain_db"])


def test_crops_are_deterministic_per_seed_and_step_and_inside_the_frame(crops):
    a, b, c = crops.sample(0, 5), crops.sample(0, 5), crops.sample(0, 6)
    assert len(a) == 3
    for x, y in zip(a, b):
        assert x["offset"] == y["offset"] and x["scene"] == y["scene"]
        assert torch.equal(x["left"], y["left"]) and torch.equal(x["reblur_defocus"], y["reblur_defocus"])
    assert [x["offset"] for x in a] != [x["offset"] for x in c]
    side = 64 + 2 * 16
    for x in a + c:
        assert x["left"].shape == (1, 3, side, side) and x["defocus"].shape == (1, 1, side, side)
        y0, x0 = x["offset"]
        assert 0 <= y0 <= S - side and 0 <= x0 <= S - side
        # the crop is the frame's window at its offset
        full = crops.scenes[x["scene"]]["left"]
        assert np.array_equal(x["left"][0, 0].numpy(), full[y0:y0 + side, x0:x0 + side])
        # the reblur map is the map the physics deconvolved with: its map moved by the source's scale bias
        # towards 0, never across it (issue 32), inside the scales
        from optics.dual_pixel.deblur import biased_defocus
        from optics.dual_pixel.pixel4 import PIXEL4_SCALE_BIAS

        d = np.clip(biased_defocus(x["defocus"].double().numpy(), PIXEL4_SCALE_BIAS), crops.scales[0], crops.scales[-1])
        np.testing.assert_allclose(x["reblur_defocus"].double().numpy(), d, atol=1e-6)


class _Returns(torch.nn.Module):
    def __init__(self, what):
        super().__init__()
        self.what = what
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, left, right, physics, defocus):
        return self.w * (physics if self.what == "physics" else 0.5 * (left + right))


def test_reblur_term_prefers_the_physics_estimate_to_the_blurred_input(crops):
    """On the fixture the physics recovers the sharp scene (a known blur): reblurring it explains the
    views far better than the blurred input does (the shortcut the term must not reward)."""
    samples = crops.sample(1, 0)
    sharp = real_view_loss(_Returns("physics"), "dp_refine", samples, crops.psfs, crops.config)
    blurred = real_view_loss(_Returns("input"), "dp_refine", samples, crops.psfs, crops.config)
    assert float(sharp.detach()) < 0.5 * float(blurred.detach())
    # an untrained dp_refine returns the physics estimate exactly: the same loss
    untrained = real_view_loss(DPRefine(4, 2), "dp_refine", samples, crops.psfs, crops.config)
    assert float(untrained.detach()) == pytest.approx(float(sharp.detach()), rel=1e-6)
    # gradients reach the network's parameters
    m = _Returns("physics")
    real_view_loss(m, "dp_refine", samples, crops.psfs, crops.config).backward()
    assert m.w.grad is not None and torch.isfinite(m.w.grad)


def test_monitor_scores_the_gain_over_the_physics(crops):
    """An untrained dp_refine is the physics: gain 0 dB."""
    assert crops.monitor(DPRefine(4, 2), "dp_refine")["real_gain_db"] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(data="dpdd:/x"), "pixeldp:DIR"),
    (dict(scenes=("1",)), "three-digit"),
    (dict(scenes=("001", "001")), "must not repeat"),
    (dict(weight=-1.0), "weight"),
    (dict(crop=8), "crop"),
    (dict(penalty="l2"), "penalty"),
])
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RealViewsConfig(**{"data": "pixeldp:/x", **kwargs})


def test_missing_scene_is_named(xin):
    with pytest.raises(ValueError, match="no scene 009"):
        _crops(RealViewsConfig(f"pixeldp:{xin}", scenes=("009",)))


def test_only_view_reading_networks(xin):
    from learned.training.recipes import make_config

    with pytest.raises(ValueError, match="dp_refine or a dual-pixel KPAC"):
        make_config("kpac", preset="cpu-smoke", real_views=RealViewsConfig(f"pixeldp:{xin}"))


def test_init_weights_loads_a_checkpoint_strictly(tmp_path):
    torch.manual_seed(0)
    a = DPRefine(4, 2)
    torch.nn.init.normal_(a.head.weight)
    learned.save_checkpoint(a, "dp_refine", tmp_path / "a.pt", config=dict(channels=4, levels=2))
    b = DPRefine(4, 2)
    init_weights_(b, "dp_refine", str(tmp_path / "a.pt"))
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    with pytest.raises(ValueError, match="holds model 'dp_refine', not 'kpac_dual'"):
        init_weights_(learned.build_model("kpac_dual", channels=8), "kpac_dual", str(tmp_path / "a.pt"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        init_weights_(b, "dp_refine", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="mis-shaped"):
        init_weights_(DPRefine(8, 2), "dp_refine", str(tmp_path / "a.pt"))


def _train(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "learned.train", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_train_with_real_views_logs_the_reblur_term_and_the_monitor_and_resumes(xin, tmp_path):
    """learned.train --real-views: the reblur term and the monitored gain are logged per step; --init
    starts from a checkpoint; a resumed run continues the same crops (bit-exact with an uninterrupted one)."""
    torch.manual_seed(1)
    start = DPRefine(4, 2)
    learned.save_checkpoint(start, "dp_refine", tmp_path / "start.pt", config=dict(channels=4, levels=2))
    common = ["--model", "dp_refine", "--preset", "pixel4", "--data",
              "synthetic:sensor=pixel4,size=168,count=2,physics=on", "--model-arg", "channels=4",
              "--model-arg", "levels=2", "--crop", "64", "--batch-size", "1", "--eval-images", "0", "--no-progress",
              "--init", str(tmp_path / "start.pt"), "--real-views", f"pixeldp:{xin}", "--real-scenes", "001", "002",
              "--real-crop", "48", "--real-batch", "1", "--real-monitor-every", "2", "--threads", "1"]
    full = _train(*common, "--steps", "3", "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "full" / "log.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert all(float(r["reblur_real"]) > 0 for r in rows)
    assert rows[0]["real_gain_db"] == "" and rows[1]["real_gain_db"] != "" and rows[2]["real_gain_db"] != ""
    part = _train(*common, "--steps", "2", "--out", str(tmp_path / "part"))
    assert part.returncode == 0, part.stderr[-3000:]
    resumed = _train("--resume", "--out", str(tmp_path / "part"), "--steps", "3", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = list(csv.DictReader(open(tmp_path / "part" / "log.csv")))
    assert [r["step"] for r in again] == ["1", "2", "3"] and again[2]["real_gain_db"] != ""
    # the same crops and start: the first two steps are those of the uninterrupted run
    assert [r["reblur_real"] for r in again[:2]] == [r["reblur_real"] for r in rows[:2]]


def test_real_options_need_real_views():
    proc = _train("--model", "dp_refine", "--preset", "pixel4", "--real-crop", "64", "--out", "/nonexistent/x")
    assert proc.returncode == 2
    assert "--real-crop: expected --real-views pixeldp:DIR" in proc.stderr.strip().splitlines()[-1]


def test_reblur_loss_is_exported_by_the_losses_module():
    from learned.training import losses, reblur

    assert losses.dp_reblur_loss is reblur.reblur_loss and losses.DPReblurLoss is reblur.DPReblurLoss


def test_real_view_loss_under_bf16_autocast_is_close_to_float32(crops):
    """The GPU path runs under autocast: the network in bfloat16, the reblur in float32 (torch.fft)."""
    torch.manual_seed(0)
    net = DPRefine(4, 2)
    torch.nn.init.normal_(net.head.weight, std=0.05)
    samples = crops.sample(2, 0)
    ref = real_view_loss(net, "dp_refine", samples, crops.psfs, crops.config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = real_view_loss(net, "dp_refine", samples, crops.psfs, crops.config)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert float(low.detach()) == pytest.approx(float(ref.detach()), rel=0.05)
    low.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
