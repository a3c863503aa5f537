"""Tests of the training loop (learned.train).

Resume bit-exactness (in-process with an interruption mid-step, and through the CLI on the
synthetic renderer of learned.data), atomic checkpoints under a crash between write and rename,
NaN/inf stops (non-finite loss, and non-finite weights never checkpointed), DDP on gloo with 2
processes launched by torchrun, and a 2-step CLI run of every model name.

All runs use tiny models (reduced widths), 32x32 crops, one CPU thread and an in-test dataset of
random tensors unless said otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import learned.train as lt
from learned import MODELS, build_model, load_checkpoint
from learned.train import TrainConfig, make_config, train
from learned.training.checkpoints import load_training_checkpoint
from learned.training.held_out import evaluate_psnr
from learned.training.optim import build_scheduler
from learned.training.sampling import StepBatchSampler

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fast_cpu_settings():
    """One thread (OpenMP threads spin-wait when another job holds a core: 10x slower on a shared
    machine) and no oneDNN (its per-shape kernel generation costs seconds on the first step of
    every tiny model, more than the training itself here)."""
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn

#: Tiny constructor overrides per model (the smoke test's point is the code path, not the size).
TINY = {
    "kpac": dict(channels=8),
    "kpac_2level": dict(channels=8),
    "kpac_dual": dict(channels=8),
    "ifan": dict(channels=4, iterations=2),
    "ifan_dual": dict(channels=4, iterations=2),
    "nrknet": dict(base_channels=4, num_kernels=3),
    "k3dn_tiny": dict(widths=(4, 8, 8), encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1), disparity_width=4,
                      disparity_channels=4, num_kernels=4, kernel_size=3),
}
TINY["k3dn_light"] = TINY["k3dn_large"] = TINY["k3dn_tiny"]
TINY["dp_refine"] = dict(channels=4, levels=2)


class RandomPairs(Dataset):
    """Random blurred/sharp pairs with dual-pixel views; random crops use the global torch RNG
    (as a real dataset's augmentation would), so resume exactness covers them."""

    def __init__(self, n: int = 5, size: int = 40, crop: int = 32, dual_pixel: bool = True, nan_after: int = -1):
        g = torch.Generator().manual_seed(1234)
        self.sharp = torch.rand(n, 3, size, size, generator=g)
        self.crop, self.dual_pixel, self.nan_after, self.calls = crop, dual_pixel, nan_after, 0

    def __len__(self) -> int:
        return len(self.sharp)

    def __getitem__(self, i: int) -> dict:
        self.calls += 1
        top, left = (int(v) for v in torch.randint(0, self.sharp.shape[-1] - self.crop + 1, (2,)))
        t = self.sharp[i, :, top : top + self.crop, left : left + self.crop]
        blurred = 0.5 * t + 0.25 + 0.05 * torch.rand(t.shape)
        sample = {"input": blurred, "target": t.clone(), "name": f"img{i}"}
        if self.dual_pixel:
            sample["left"] = torch.roll(blurred, 1, -1)
            sample["right"] = torch.roll(blurred, -1, -1)
            sample["physics"] = 0.5 * blurred + 0.5 * t  # what dp_refine refines, and its defocus map
            sample["defocus"] = blurred[:1] - 0.5
        if 0 <= self.nan_after < self.calls:
            sample["target"] = torch.full_like(t, float("nan"))
        return sample


class Interrupt(Exception):
    pass


class InterruptingPairs(RandomPairs):
    def __init__(self, stop_at_call: int, **kw):
        super().__init__(**kw)
        self.stop_at_call = stop_at_call

    def __getitem__(self, i):
        if self.calls + 1 == self.stop_at_call:
            raise Interrupt("simulated kill")
        return super().__getitem__(i)


def _config(tmp_path, model="kpac", steps=2, name="run", **kw) -> TrainConfig:
    kw.setdefault("batch_size", 1)
    return make_config(model, steps=steps, crop=32, out=str(tmp_path / name), model_overrides=TINY[model],
                       progress=False, **kw)


def _all_tensors(ckpt: dict) -> dict:
    """Flatten model, auxiliary and optimiser tensors of a training checkpoint."""
    out = {f"model.{k}": v for k, v in ckpt["state_dict"].items()}
    out.update({f"aux.{k}": v for k, v in ckpt["training"]["auxiliary"].items()})
    for pid, st in ckpt["training"]["optimizer"]["state"].items():
        out.update({f"opt.{pid}.{k}": v for k, v in st.items() if isinstance(v, torch.Tensor)})
    return out


# ------------------------------------------------------------------------------------------------
def test_resume_is_bit_exact(tmp_path):
    """Killed during step 3 after the step-2 checkpoint and resumed, a run ends with exactly the
    weights and optimiser state of an uninterrupted run. A tiny KPAC with IFAN's optimiser (RAdam,
    weight decay, gradient clipping, LR milestones inside the run) and random crops drawn from the
    global RNG by the dataset."""
    kw = dict(model="kpac", steps=4, batch_size=2, checkpoint_every=2)
    ifan = lt.RECIPES["ifan"]
    recipe = lambda cfg: dataclasses.replace(cfg, recipe=dataclasses.replace(
        cfg.recipe, optimizer=ifan.optimizer, schedule=ifan.schedule))
    _config_ = _config
    config = lambda tmp, **k: recipe(_config_(tmp, **k))
    full = train(config(tmp_path, name="full", **kw), train_dataset=RandomPairs())
    cfg = config(tmp_path, name="cut", **kw)
    assert cfg.recipe.optimizer.name == "radam" and cfg.recipe.optimizer.grad_clip_norm == 0.5
    assert build_scheduler(torch.optim.SGD([torch.zeros(1)], lr=1.0), cfg.recipe.schedule, 4).milestones
    with pytest.raises(Interrupt):
        train(cfg, train_dataset=InterruptingPairs(stop_at_call=6))  # step 3's second sample
    assert load_training_checkpoint(Path(cfg.out) / "checkpoint.pt")["training"]["step"] == 2
    resumed = train(cfg, resume=True, train_dataset=RandomPairs())
    assert resumed.step == full.step == 4
    a = _all_tensors(load_training_checkpoint(full.checkpoint))
    b = _all_tensors(load_training_checkpoint(resumed.checkpoint))
    assert a.keys() == b.keys() and any(k.startswith("opt.") for k in a)
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, unequal[:5]
    # the CSV of the resumed run has every step exactly once, with the same losses
    rows_full = (Path(full.checkpoint).parent / "log.csv").read_text().splitlines()
    rows_cut = (Path(cfg.out) / "log.csv").read_text().splitlines()
    strip = lambda rows: [",".join(r.split(",")[:-1]) for r in rows]  # drop the timing column
    assert strip(rows_full) == strip(rows_cut) and len(rows_full) == 5
    assert (Path(cfg.out) / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the deploy file loads through the public API
    model = load_checkpoint(Path(cfg.out) / "model.pt")
    assert all(torch.equal(v, a[f"model.{k}"]) for k, v in model.state_dict().items())


def test_resume_refuses_a_changed_configuration(tmp_path):
    train(_config(tmp_path, steps=1), train_dataset=RandomPairs())
    with pytest.raises(ValueError, match="different configuration.*seed"):
        train(_config(tmp_path, steps=2, seed=5), resume=True, train_dataset=RandomPairs())
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(tmp_path, steps=2), train_dataset=RandomPairs())


def test_checkpoint_is_loadable_weights_only_and_holds_rng_states(tmp_path):
    result = train(_config(tmp_path, steps=1), train_dataset=RandomPairs())
    obj = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    rng = obj["training"]["rng"]
    assert isinstance(rng["torch"], torch.Tensor) and isinstance(rng["numpy"]["keys"], torch.Tensor)
    assert isinstance(rng["python"]["state"], torch.Tensor) and obj["training"]["sampler"]["next_step"] == 2
    assert obj["training"]["step"] == 1 and obj["model"] == "kpac"


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    """A crash between writing the temporary file and renaming it (the second checkpoint) leaves
    the first checkpoint intact and no temporary file behind."""
    real_replace = os.replace
    saves = []

    def crashing_replace(src, dst):
        if str(dst).endswith("checkpoint.pt"):
            saves.append(dst)
            if len(saves) == 2:
                raise OSError("simulated crash during checkpoint write")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    cfg = _config(tmp_path, steps=3, checkpoint_every=1)
    with pytest.raises(OSError, match="simulated crash"):
        train(cfg, train_dataset=RandomPairs())
    monkeypatch.setattr(os, "replace", real_replace)
    out = Path(cfg.out)
    assert load_training_checkpoint(out / "checkpoint.pt")["training"]["step"] == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _config(tmp_path, steps=5, checkpoint_every=2)
    with pytest.raises(FloatingPointError, match=r"at step 3;.*step 2\) kept"):
        train(cfg, train_dataset=RandomPairs(nan_after=2))  # samples 1-2 fine (steps 1-2), step 3 NaN
    ckpt = load_training_checkpoint(Path(cfg.out) / "checkpoint.pt")
    assert ckpt["training"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_dual_pixel_model_without_views_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dual-pixel views"):
        train(_config(tmp_path, model="k3dn_tiny", steps=1), train_dataset=RandomPairs(dual_pixel=False))


def test_ifan_disparity_loss_is_skipped_with_a_message_without_views(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="learned.training.step"):
        result = train(_config(tmp_path, model="ifan", steps=1), train_dataset=RandomPairs(dual_pixel=False))
    assert "disparity loss skipped" in caplog.text
    assert "disparity" not in result.losses and "reblur" in result.losses


def test_evaluate_psnr_reference():
    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    ds = RandomPairs(n=2, dual_pixel=False)
    torch.manual_seed(0)
    e = evaluate_psnr(Identity(), "kpac", ds, torch.device("cpu"))
    assert e["gain_db"] == pytest.approx(0.0, abs=1e-9)
    torch.manual_seed(0)
    s = ds[0]
    mse = float(((s["input"].double() - s["target"].double()) ** 2).mean())
    assert e["per_image"][0]["input_psnr"] == pytest.approx(-10 * math.log10(mse), rel=1e-12)


def test_evaluate_psnr_groups_synthetic_scenes_by_source():
    from learned.data import build_dataset

    class Halve(torch.nn.Module):
        def forward(self, x):
            return x * 0.5

    ds = build_dataset("synthetic:size=32,test_count=4", "test")
    e = evaluate_psnr(Halve(), "kpac", ds, torch.device("cpu"))
    assert [r["source"] for r in e["per_image"]] == ["dead_leaves"] * 3 + ["motorcycle"]
    gains = [r["output_psnr"] - r["input_psnr"] for r in e["per_image"]]
    assert e["gain_db_by_source"]["dead_leaves"] == pytest.approx(np.mean(gains[:3]), rel=1e-12)
    assert e["gain_db_by_source"]["motorcycle"] == pytest.approx(gains[3], rel=1e-12)


def test_sampler_is_a_function_of_seed_and_step():
    a = StepBatchSampler(7, 3, seed=1, start_step=0, stop_step=5)
    b = StepBatchSampler(7, 3, seed=1, start_step=3, stop_step=5)
    assert list(a)[3:] == list(b)
    flat = [i for batch in list(a)[:2] for i, _ in batch] + [i for i, _ in a.batch(3)][:1]
    assert sorted(flat) == list(range(7))  # the first 7 positions are one epoch: a permutation
    r0 = StepBatchSampler(7, 2, seed=1, start_step=0, stop_step=1, rank=0, world_size=2).batch(1)
    r1 = StepBatchSampler(7, 2, seed=1, start_step=0, stop_step=1, rank=1, world_size=2).batch(1)
    assert r0 + r1 == StepBatchSampler(7, 4, seed=1, start_step=0, stop_step=1).batch(1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cli_two_steps_every_model(name, tmp_path, monkeypatch):
    """``python -m learned.train --model NAME --steps 2 --out DIR`` (in-process; tiny widths)."""
    monkeypatch.setattr(lt, "recipe_dataset", lambda spec, split, **kw: RandomPairs(n=3))
    args = ["--model", name, "--steps", "2", "--out", str(tmp_path / name), "--crop", "32", "--batch-size", "1",
            "--no-progress"]
    for key, value in TINY[name].items():
        args += ["--model-arg", f"{key}={value!r}"]
    assert lt.main(args) == 0
    rows = (tmp_path / name / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("step,lr,total")
    assert load_training_checkpoint(tmp_path / name / "checkpoint.pt")["training"]["step"] == 2


# ------------------------------------------------------------------------------------------------
_DDP_SCRIPT = """
import os, sys, torch
torch.backends.mkldnn.enabled = False
sys.path.insert(0, {tests!r})
from test_train import RandomPairs, TINY
from learned.train import make_config, train
out = sys.argv[1]
cfg = make_config("kpac", steps=2, crop=32, batch_size=1, out=out, model_overrides=TINY["kpac"], progress=False,
                  device="cpu")
result = train(cfg, train_dataset=RandomPairs(n=4))
torch.save({{k: v.detach() for k, v in result.model.state_dict().items()}}, f"{{out}}/rank{{os.environ['RANK']}}.pt")
"""


@pytest.mark.slow
def test_ddp_gloo_two_processes(tmp_path):
    """DDP code path: torchrun launches 2 CPU processes (gloo) for 2 steps of a tiny KPAC with
    batch 1 each; both ranks end with identical weights, equal (up to float summation order) to a
    single process trained on the same global batch of 2."""
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(_DDP_SCRIPT.format(tests=str(Path(__file__).parent))))
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    w0, w1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    single = train(make_config("kpac", steps=2, crop=32, batch_size=2, out=str(tmp_path / "single"),
                               model_overrides=TINY["kpac"], progress=False, device="cpu"),
                   train_dataset=RandomPairs(n=4))
    ref = single.model.state_dict()
    for k in w0:
        torch.testing.assert_close(w0[k], ref[k], rtol=1e-5, atol=1e-6)
    # the weights moved from their initialisation
    torch.manual_seed(0)
    fresh = build_model("kpac", **TINY["kpac"]).state_dict()
    assert any(not torch.equal(fresh[k], w0[k]) for k in w0)
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 3


def test_cli_resume_extends_steps_and_refuses_changed_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(lt, "recipe_dataset", lambda spec, split, **kw: RandomPairs(n=3))
    out = str(tmp_path / "run")
    base = ["--out", out, "--no-progress"]
    assert lt.main(["--model", "kpac", "--steps", "1", "--crop", "32", "--batch-size", "1",
                    "--model-arg", "channels=8"] + base) == 0
    with pytest.raises(SystemExit, match="--seed 3"):
        lt.main(["--resume", "--steps", "2", "--seed", "3"] + base)
    assert lt.main(["--resume", "--steps", "2"] + base) == 0
    assert load_training_checkpoint(Path(out) / "checkpoint.pt")["training"]["step"] == 2
    assert len((Path(out) / "log.csv").read_text().splitlines()) == 3


def test_resume_on_the_synthetic_dataset_is_bit_exact(tmp_path):
    """Through the CLI with learned.data's renderer (random crops and flips keyed by sample seeds):
    2 steps, then ``--resume --steps 4``, equals 4 uninterrupted steps."""
    common = ["--model", "kpac", "--data", "synthetic:size=40,count=3", "--crop", "32", "--batch-size", "2",
              "--model-arg", "channels=8", "--no-progress"]
    assert lt.main(common + ["--steps", "4", "--out", str(tmp_path / "a")]) == 0
    assert lt.main(common + ["--steps", "2", "--out", str(tmp_path / "b")]) == 0
    assert lt.main(["--resume", "--steps", "4", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    a = _all_tensors(load_training_checkpoint(tmp_path / "a" / "checkpoint.pt"))
    b = _all_tensors(load_training_checkpoint(tmp_path / "b" / "checkpoint.pt"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _PoisoningScheduler(torch.optim.lr_scheduler.MultiStepLR):
    """Sets the first parameter to NaN after its 4th step (a finite loss with NaN gradients)."""

    calls = 0

    def step(self, *args, **kwargs):
        super().step(*args, **kwargs)
        self.calls += 1
        if self.calls == 5:  # the constructor steps once
            with torch.no_grad():
                self.optimizer.param_groups[0]["params"][0].fill_(float("nan"))


def test_non_finite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    """NaN weights after step 4 (injected after the optimiser step, so the loss of step 4 was
    finite) stop the run at the step-4 checkpoint, which is not written: step 2's stays."""
    monkeypatch.setattr(lt, "build_scheduler", lambda opt, cfg, steps: _PoisoningScheduler(opt, milestones=[]))
    cfg = _config(tmp_path, steps=6, checkpoint_every=2)
    with pytest.raises(FloatingPointError, match=r"non-finite weights after step 4.*step 2\) kept"):
        train(cfg, train_dataset=RandomPairs())
    assert load_training_checkpoint(Path(cfg.out) / "checkpoint.pt")["training"]["step"] == 2


def test_cosine_schedule_follows_the_closed_form():
    from learned.train import ScheduleConfig

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    sched = build_scheduler(opt, ScheduleConfig(kind="cosine", final_fraction=0.1), 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    # lr_t = lr_min + (lr_0 - lr_min) (1 + cos(pi t / T)) / 2
    expected = [0.2 + 1.8 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="schedule kind"):
        ScheduleConfig(kind="linear")
    with pytest.raises(ValueError, match="final_fraction"):
        ScheduleConfig(kind="cosine", final_fraction=2.0)


def test_recipes_presets_and_config_checks():
    ifan = make_config("ifan")
    assert (ifan.recipe.optimizer.name, ifan.recipe.optimizer.lr, ifan.recipe.optimizer.weight_decay) == ("radam", 1e-4, 0.01)
    assert ifan.recipe.optimizer.grad_clip_norm == 0.5 and ifan.recipe.loss.disparity_weight == 1.0
    nrk = make_config("nrknet")
    assert nrk.recipe.loss.scale_weights == (1.0, 0.75, 0.5, 0.25)
    assert (nrk.recipe.loss.fft_weight, nrk.recipe.loss.reblur_weight) == (0.1, 0.1)
    assert make_config("kpac_dual").recipe.batch_size == 8 and make_config("k3dn_large").recipe.optimizer.name == "adamw"
    smoke = make_config("kpac", preset="cpu-smoke", lr=5e-4)
    assert smoke.recipe.optimizer.lr == 5e-4 and smoke.model_overrides["channels"] == 16 and smoke.eval_images == 16
    assert TrainConfig.from_dict(smoke.to_dict()) == smoke
    assert smoke.recipe.schedule.kind == "cosine" and make_config("kpac").recipe.schedule.kind == "multistep"
    assert smoke.data == "synthetic:size=128,photo_fraction=0.5,in_focus_fraction=0.5"
    assert make_config("kpac").data == "synthetic"
    assert make_config("kpac", preset="cpu-smoke", data="dpdd:/x").data == "dpdd:/x"  # explicit --data wins
    with pytest.raises(ValueError, match="multiple of 16"):
        make_config("nrknet", crop=40)
    with pytest.raises(ValueError, match="unknown model"):
        make_config("unet")
    with pytest.raises(ValueError, match="preset"):
        make_config("kpac", preset="fast")
