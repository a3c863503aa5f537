"""Issue 13: learned.train's command line: one-line errors, resume errors, Ctrl-C, where the results are."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

import learned.train as lt
from learned.training.checkpoints import load_training_checkpoint
from optics import cli


class Pairs(Dataset):
    def __init__(self, n: int = 3, size: int = 32):
        g = torch.Generator().manual_seed(7)
        self.sharp = torch.rand(n, 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.sharp)

    def __getitem__(self, i: int) -> dict:
        t = self.sharp[i]
        return {"input": 0.5 * t + 0.25, "target": t.clone(), "name": f"img{i}"}


BASE = ["--model", "kpac", "--crop", "32", "--batch-size", "1", "--model-arg", "channels=8", "--no-progress"]


@pytest.fixture
def tiny_data(monkeypatch):
    monkeypatch.setattr(lt, "recipe_dataset", lambda spec, split, **kw: Pairs())


def _run(argv, capsys):
    status = cli.run(lt.main, argv)
    return status, capsys.readouterr().err


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:") or "Traceback" in ln]


def test_ends_with_a_line_saying_where_the_results_are(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    status, err = _run(BASE + ["--steps", "2", "--out", str(out)], capsys)
    assert status == 0
    assert err.strip().splitlines()[-1] == f"results: {out} (model.pt, checkpoint.pt, log.csv, loss.png)"


def test_resume_errors_are_one_line(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    assert _run(BASE + ["--steps", "2", "--out", str(out)], capsys)[0] == 0
    # a finished run
    status, err = _run(["--resume", "--out", str(out)], capsys)
    assert status == 2
    assert _error_lines(err) == [f"error: argument --resume: the run in {str(out)!r} is finished (checkpoint at step 2, "
                                 "its 2 steps); pass --steps N with N > 2 to train further"]
    # a new run into a folder holding a run
    status, err = _run(BASE + ["--steps", "2", "--out", str(out)], capsys)
    assert status == 2 and "holds a run" in err and "--resume" in err and "--overwrite" in err
    assert _run(BASE + ["--steps", "1", "--out", str(out), "--overwrite"], capsys)[0] == 0
    assert load_training_checkpoint(out / "checkpoint.pt")["training"]["step"] == 1
    # a corrupt checkpoint: the toolkit's own refusal, never torch's advice to drop weights_only
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    status, err = _run(["--resume", "--steps", "3", "--out", str(out)], capsys)
    assert status == 2 and len(_error_lines(err)) == 1
    assert "weights_only=False" not in err and "cannot read" in err
    # a checkpoint holding a pickled object that would run code: "refused to load"
    torch.save({"format": "defocus-toolkit/1", "training": {"x": Pairs()}}, out / "checkpoint.pt")
    status, err = _run(["--resume", "--steps", "3", "--out", str(out)], capsys)
    assert status == 2 and len(_error_lines(err)) == 1
    assert "refused to load" in err and "weights_only=False" not in err and "Re-running" not in err


def test_ctrl_c_ends_with_one_line_naming_the_step_and_the_checkpoint(tmp_path, tiny_data, monkeypatch, capsys):
    out = tmp_path / "run"
    calls = []
    real_plot = lt.write_plot

    def plot_then_interrupt(*args, **kwargs):  # Ctrl-C arriving inside matplotlib, the case of the issue
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(lt, "write_plot", plot_then_interrupt)
    status, err = _run(BASE + ["--steps", "6", "--checkpoint-every", "2", "--out", str(out)], capsys)
    assert status == 130
    lines = [ln for ln in err.splitlines() if ln.strip() and " INFO" not in ln]
    assert lines == [f"error: interrupted after step 4 of 6; last checkpoint {str(out / 'checkpoint.pt')!r} (step 4) "
                     f"kept; continue with python -m learned.train --out {str(out)!r} --resume"]
    assert load_training_checkpoint(out / "checkpoint.pt")["training"]["step"] == 4
    monkeypatch.setattr(lt, "write_plot", real_plot)
    assert _run(["--resume", "--out", str(out), "--no-progress"], capsys)[0] == 0


def test_ctrl_c_before_a_checkpoint(tmp_path, monkeypatch, capsys):
    class Interrupting(Pairs):
        def __getitem__(self, i):
            raise KeyboardInterrupt

    monkeypatch.setattr(lt, "recipe_dataset", lambda spec, split, **kw: Interrupting())
    status, err = _run(BASE + ["--steps", "3", "--out", str(tmp_path / "run")], capsys)
    assert status == 130
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: interrupted after step 0 of 3; no checkpoint had been written yet"]


def test_real_ctrl_c_in_a_subprocess(tmp_path):
    """SIGINT (what Ctrl-C sends) to ``python -m learned.train`` once a checkpoint exists: exit 130 and
    one last line naming the step and the checkpoint, no traceback."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "learned.train", "--model", "kpac", "--preset", "cpu-smoke", "--steps", "100000",
         "--checkpoint-every", "5", "--crop", "32", "--model-arg", "channels=8", "--eval-images", "0",
         "--out", str(out), "--no-progress"],
        env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a background job may ignore SIGINT
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"error: interrupted after step (\d+) of 100000; last checkpoint '(.+)' \(step (\d+)\) kept; "
                     r"continue with python -m learned\.train --out '(.+)' --resume", last)
    assert m, last
    step, saved = int(m.group(1)), int(m.group(3))
    assert saved % 5 == 0 and 0 < saved <= step
    assert load_training_checkpoint(out / "checkpoint.pt")["training"]["step"] == saved


def test_a_crop_larger_than_the_data_leaves_no_folder_behind(tmp_path, capsys):
    """Issue 28: --crop 100000 is refused by the dataset; the --out folder this run created is removed."""
    out = tmp_path / "run"
    status, err = _run(["--model", "kpac", "--preset", "cpu-smoke", "--crop", "100000", "--steps", "1",
                        "--out", str(out), "--no-progress"], capsys)
    assert status == 2 and len(_error_lines(err)) == 1 and "crop 100000" in err, err
    assert not out.exists()
    out.mkdir()  # an empty folder given by the user stays, empty
    status, err = _run(["--model", "kpac", "--preset", "cpu-smoke", "--crop", "100000", "--steps", "1",
                        "--out", str(out), "--no-progress"], capsys)
    assert status == 2 and out.is_dir() and not any(out.iterdir())


def test_threads_above_the_cpu_count_are_refused(tmp_path, capsys):
    import os

    status, err = _run(BASE + ["--out", str(tmp_path / "run"), "--threads", str((os.cpu_count() or 1) + 1)], capsys)
    assert status == 2 and "argument --threads: expected 1.." in err and len(_error_lines(err)) == 1
    assert not (tmp_path / "run").exists()
