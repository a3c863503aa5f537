"""Fixtures of the benchmark tests: one scene in Xin et al.'s layout and a runner of ``python -m`` commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def xin(tmp_path_factory, xin_layout) -> Path:
    """One 336 x 336 scene in Xin et al.'s layout (conftest.write_xin_layout)."""
    root = tmp_path_factory.mktemp("DP_data_pixel_4")
    xin_layout(root, {"001": 3}, 336)
    return root


@pytest.fixture(scope="session")
def run_module():
    """``run_module(module, *args)``: ``python -m module args`` in the repository, output captured."""

    def run(module, *args):
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True,
                              text=True, timeout=600)

    return run
