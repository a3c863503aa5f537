"""Issue 20: --resume with more steps decays over the new total; the thread count is stored and
reused; checkpoints by time; the paper recipe on a CPU says it needs a GPU."""

from __future__ import annotations

import csv

import pytest
import torch

import learned.train as lt
from learned.training.optim import build_scheduler, reschedule
from optics import cli

from torch.utils.data import Dataset


class Pairs(Dataset):
    def __init__(self, n: int = 3, size: int = 32):
        self.sharp = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(7))

    def __len__(self) -> int:
        return len(self.sharp)

    def __getitem__(self, i: int) -> dict:
        t = self.sharp[i]
        return {"input": 0.5 * t + 0.25, "target": t.clone(), "name": f"img{i}"}


BASE = ["--model", "kpac", "--crop", "32", "--batch-size", "1", "--model-arg", "channels=8", "--no-progress"]
SMOKE = BASE + ["--preset", "cpu-smoke"]


@pytest.fixture(autouse=True)
def tiny_data_and_threads(monkeypatch):
    monkeypatch.setattr(lt, "recipe_dataset", lambda spec, split, **kw: Pairs())
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _run(argv, capsys):
    status = cli.run(lt.main, argv)
    return status, capsys.readouterr().err


def _lrs(folder) -> list[float]:
    with open(folder / "log.csv") as fh:
        return [float(r["lr"]) for r in csv.DictReader(fh)]


def test_resume_with_more_steps_follows_the_schedule_of_the_new_total(tmp_path, capsys):
    # the cosine of a 4-step run ends at 0 and, stepped further, climbs back to the peak; a resumed
    # run with --steps 10 must use the LR of a 10-step run from step 5 on
    short, full = tmp_path / "short", tmp_path / "full"
    assert _run(SMOKE + ["--steps", "4", "--out", str(short)], capsys)[0] == 0
    status, err = _run(["--resume", "--out", str(short), "--steps", "10", "--no-progress"], capsys)
    assert status == 0, err
    assert _run(SMOKE + ["--steps", "10", "--out", str(full)], capsys)[0] == 0
    resumed, fresh = _lrs(short), _lrs(full)
    assert len(resumed) == 10
    assert resumed[4:] == pytest.approx(fresh[4:], rel=1e-12)
    assert max(resumed[4:]) < resumed[0]  # never back to the peak


def test_the_thread_count_is_stored_and_reused_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    torch.set_num_threads(1)
    assert _run(SMOKE + ["--steps", "2", "--threads", "2", "--out", str(out)], capsys)[0] == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["training"]["threads"] == 2
    torch.set_num_threads(1)
    status, err = _run(["--resume", "--out", str(out), "--steps", "3", "--no-progress"], capsys)
    assert status == 0 and "warning" not in err
    assert torch.get_num_threads() == 2  # reused without being asked
    status, err = _run(["--resume", "--out", str(out), "--steps", "4", "--threads", "1", "--no-progress"], capsys)
    assert status == 0
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "--threads 1 differs from the 2 thread(s)" in warnings[0]
    assert "not bit-exactly" in warnings[0]


def test_a_new_run_uses_one_thread_unless_told(tmp_path, capsys):
    torch.set_num_threads(2)
    assert _run(SMOKE + ["--steps", "1", "--out", str(tmp_path / "run")], capsys)[0] == 0
    assert torch.get_num_threads() == 1


def test_checkpoints_by_time_as_well_as_by_steps(tmp_path, monkeypatch, capsys):
    saved = []
    real = lt.save_training_checkpoint

    def record(path, step, *args):
        saved.append(step)
        real(path, step, *args)

    monkeypatch.setattr(lt, "save_training_checkpoint", record)
    common = SMOKE + ["--steps", "3", "--checkpoint-every", "1000"]
    assert _run(common + ["--checkpoint-minutes", "0", "--out", str(tmp_path / "a")], capsys)[0] == 0
    assert saved == [3]
    saved.clear()
    assert _run(common + ["--checkpoint-minutes", "1e-9", "--out", str(tmp_path / "b")], capsys)[0] == 0
    assert saved == [1, 2, 3]
    status, err = _run(common + ["--checkpoint-minutes", "-1", "--out", str(tmp_path / "c")], capsys)
    assert status == 2 and "error: argument --checkpoint-minutes: expected >= 0; got -1" in err


def test_the_paper_recipe_on_a_cpu_says_it_needs_a_gpu(tmp_path, monkeypatch, capsys):
    import types

    monkeypatch.setattr(lt, "train", lambda config, resume: types.SimpleNamespace(evaluation=None))  # no training
    status, err = _run(BASE + ["--device", "cpu", "--out", str(tmp_path / "paper")], capsys)
    assert status == 0
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "needs a GPU" in warnings[0] and "--preset cpu-smoke" in warnings[0]
    for extra in (["--preset", "cpu-smoke"], ["--steps", "10"]):  # a CPU preset, or a short run
        status, err = _run(BASE + extra + ["--device", "cpu", "--out", str(tmp_path / extra[-1])], capsys)
        assert status == 0 and "needs a GPU" not in err


@pytest.mark.parametrize("schedule", [lt.ScheduleConfig(milestones=(0.5, 0.75), gamma=0.5),
                                      lt.ScheduleConfig(kind="cosine", final_fraction=0.1)])
def test_reschedule_gives_the_lr_of_a_run_planned_for_the_new_total(schedule):
    def lrs(total, stretch_at=None, to=None):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        sched = build_scheduler(opt, schedule, total)
        out = []
        for step in range(1, (to or total) + 1):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
            if step == stretch_at:
                reschedule(sched, schedule, to, step)
        return out

    assert lrs(4, stretch_at=4, to=10)[4:] == pytest.approx(lrs(10)[4:], rel=1e-12)
