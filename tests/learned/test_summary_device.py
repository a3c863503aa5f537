"""learned.summary: --device handling, the median-of-10 timing rule, and the CUDA path (gpu marker)."""

from __future__ import annotations

import pytest
import torch

from learned import build_model, summary


def test_median_time_skips_warmup_and_takes_the_median():
    calls = []
    times = iter([1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0, 100.0])

    def timer(run):
        run()
        return next(times)

    # 3 warm-up calls are not timed; the 10 timed values are 1..9 and 100 -> median 5.5
    assert summary.median_time_ms(lambda: calls.append(1), timer, warmup=3, repeats=10) == 5.5
    assert len(calls) == 13
    with pytest.raises(ValueError, match="repeats"):
        summary.median_time_ms(lambda: None, timer, warmup=0, repeats=0)


def test_device_argument(capsys):
    assert summary.main(["--models", "kpac", "--size", "64x48", "--no-latency", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| kpac |" in out and "latency CPU" in out
    with pytest.raises(SystemExit) as err:
        summary.main(["--models", "kpac", "--device", "tpu"])
    assert err.value.code == 2 and "argument --device: expected cpu, cuda or cuda:N; got 'tpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as err:
            summary.main(["--models", "kpac", "--device", "cuda"])
        message = capsys.readouterr().err
        assert err.value.code == 2 and ("no CUDA support" in message or "no CUDA GPU" in message)
        assert "use --device cpu" in message


def test_cpu_latency_is_timed_as_benchmarks_inference_times_it():
    """Issue 20: one untimed warm-up pass (the first one pays for oneDNN primitives and caches),
    then the median of the timed passes, without autograd."""
    calls = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            calls.append(torch.is_grad_enabled())
            return x

    summary.latency(Probe(), (torch.zeros(1),), warmup=1, runs=3)
    assert calls == [False] * 4


def test_cuda_latency_modes_and_peak_memory(cuda_device):
    torch.manual_seed(0)
    model = build_model("kpac", channels=8).eval().to(cuda_device)
    x = torch.rand(1, 3, 64, 64, device=cuda_device)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    result = summary.cuda_latency(model, [x], warmup=1, repeats=3)
    assert set(result) == {"fp32", "tf32", "bf16", "peak_gib"}
    assert all(result[k] > 0 for k in result)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags  # restored
    assert summary.main(["--models", "kpac", "--size", "64x48", "--device", cuda_device]) == 0


def test_paper_figures_and_notes_only_at_their_size(capsys):
    """Issue 20: the notes quote 720x1280 figures; at another --size they are left out."""
    assert summary.main(["--models", "kpac", "--size", "64x48", "--no-latency", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("| kpac |"))
    assert "197 G" not in row and summary.PAPER["kpac"].note not in row
    assert "paper figures and notes are for 720x1280" in out


def _table(out: str) -> list:
    """The Markdown table of learned.summary's stdout: from its header row to its last row, every line."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| model |"))
    end = max(i for i, ln in enumerate(lines) if ln.startswith("| "))
    return lines[start:end + 1]


def test_size_is_height_x_width_and_the_table_is_unbroken(capsys, monkeypatch):
    """Issue 28: --size is HEIGHTxWIDTH (a NumPy shape); no text line inside the Markdown table."""
    seen = []
    inputs = summary.example_inputs
    monkeypatch.setattr(summary, "example_inputs", lambda name, h, w, device="cpu": seen.append((h, w)) or inputs(name, h, w))
    assert summary.main(["--models", "kpac", "nrknet", "--size", "48x64", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert seen == [(48, 64), (48, 64)] and "Models at 48x64 (HEIGHTxWIDTH)" in out
    table = _table(out)
    assert len(table) == 4 and all(ln.startswith("|") for ln in table), table


@pytest.mark.parametrize("argv, expected", [
    (["--size", "100000x100000"], ["argument --size", "2160x3840", "10,000,000,000 pixels"]),
    (["--threads", "100000"], ["argument --threads", "cores", "100000"]),
])
def test_absurd_sizes_and_threads_are_refused_before_work(capsys, argv, expected):
    from optics import cli

    assert cli.run(summary.main, ["--models", "kpac", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and all(text in err[0] for text in expected), err
    assert "| kpac |" not in captured.out  # nothing measured


def test_dp_refine_latency_includes_the_physics_step(capsys, monkeypatch):
    """Issue 28: dp_refine's CPU latency adds the optics.dual_pixel.deblur step it refines (where it runs)."""
    monkeypatch.setattr(summary, "latency", lambda model, inputs, runs=3: 0.5)
    monkeypatch.setattr(summary, "physics_latency", lambda h, w: 2.0)
    monkeypatch.setattr(summary, "PHYSICS_SIZE", (48, 64))
    assert summary.main(["--models", "dp_refine", "kpac", "--size", "48x64"]) == 0
    out = capsys.readouterr().out
    assert "| 2.5 s (0.5 network + 2.0 physics) |" in next(ln for ln in out.splitlines() if ln.startswith("| dp_refine |"))
    assert "| 0.5 s |" in next(ln for ln in out.splitlines() if ln.startswith("| kpac |"))
    assert "network plus its physics step" in out and len(_table(out)) == 4
    assert summary.main(["--models", "dp_refine", "--size", "32x64"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| dp_refine |"))
    assert "0.5 s network only (physics step: 48x64 only)" in row


@pytest.mark.slow
def test_physics_latency_runs_the_physics_step():
    assert summary.physics_latency(*summary.PHYSICS_SIZE) > 0
