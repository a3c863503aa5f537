"""Shared fixtures: Hypothesis profiles, dtype tolerances, device selection."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Deterministic profile for CI (derandomised, bounded); "dev" explores more.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tolerance per dtype, tied to machine epsilon (Kornia-style table).
TOLERANCE = {
    np.dtype(np.float32): dict(rtol=2e3 * np.finfo(np.float32).eps, atol=2e3 * np.finfo(np.float32).eps),
    np.dtype(np.float64): dict(rtol=1e6 * np.finfo(np.float64).eps, atol=1e6 * np.finfo(np.float64).eps),
}


def tol(dtype) -> dict:
    """Tolerances for comparing results computed in ``dtype`` (NumPy or torch dtype)."""
    name = str(dtype).replace("torch.", "")
    return TOLERANCE[np.dtype(name)]


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """Torch device; the CUDA variant skips cleanly when no GPU is present."""
    if request.param == "cuda" and not _cuda_available():
        pytest.skip("no CUDA device")
    return request.param


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.gpu)])
def cuda_device(request):
    """CUDA only, for tests that compare a GPU run with the CPU reference (a CPU instance would
    compare CPU with CPU); skips cleanly when no GPU is present."""
    if not _cuda_available():
        pytest.skip("no CUDA device")
    return request.param


@pytest.fixture(scope="module")
def single_torch_thread():
    """One intra-op torch thread for a module of small-tensor tests (no OpenMP oversubscription on
    a busy 2-core machine); use with ``pytestmark = pytest.mark.usefixtures("single_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A command's ``main`` run in-process sets torch's thread count (``--threads`` and its
    default, issue 20); put it back so that no test changes the threads of the tests after it."""
    import torch

    previous = torch.get_num_threads()
    yield
    if torch.get_num_threads() != previous:
        torch.set_num_threads(previous)
