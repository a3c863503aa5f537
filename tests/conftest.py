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


def write_xin_layout(root, seeds: dict, size: int = 336) -> None:
    """Scenes in Xin et al.'s ``DP_data_pixel_4`` layout under ``root`` (scene number -> seed): a smooth
    random sharp scene blurred by half-disc kernels of radius 3 (left the mirror of right), 16-bit raw
    views (black level 1024, 14 bit), flat white sheets, the kernels as ``blur_kernels_*.npy``, the
    ground truth and a constant ground-truth defocus map. Tests that need a real capture use it."""
    from pathlib import Path

    from scipy import ndimage

    from optics.image_io import png_bytes

    def write(path: Path, array: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(array))

    root = Path(root)
    c = np.arange(15) - 7
    yy, xx = np.meshgrid(c, c, indexing="ij")
    disc = np.clip(3.5 - np.hypot(yy, xx), 0, 1)
    kl = disc / (1 + np.exp(xx / 0.7))
    kl /= kl.sum()
    kr = kl[:, ::-1].copy()
    S = size
    for name, seed in seeds.items():
        x = ndimage.gaussian_filter(np.random.default_rng(seed).random((S + 40, S + 40)), 1.5)
        sharp = 0.05 + 0.3 * (x - x.min()) / np.ptp(x)
        for side, k in (("left", kl), ("right", kr)):
            view = ndimage.convolve(sharp, k, mode="mirror")[20:-20, 20:-20]
            write(root / f"{name}_{side}.png", np.round(1024 + view * 16383).astype(np.uint16))
        write(root / f"gt_all_in_focus_im/{name}_gt.png", np.round(sharp[20:-20, 20:-20] * 65535).astype(np.uint16))
        write(root / f"gt_defocus_map/{name}_gt.png", np.full((S, S), 100, np.uint8))
    for side, k in (("left", kl), ("right", kr)):
        write(root / f"calibration/white_sheet_{side}.png", np.full((S, S), 1024 + 9000, np.uint16))
        np.save(root / f"calibration/blur_kernels_{side}.npy", np.broadcast_to(k, (48, 15, 15)).astype(np.float32))


@pytest.fixture(scope="session")
def xin_layout():
    """:func:`write_xin_layout`, for fixtures of any scope."""
    return write_xin_layout
