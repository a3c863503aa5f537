"""Issue 20: the README is a short guide whose statements are true when tried."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_readme_is_a_guide_of_at_most_300_lines():
    assert len(README.splitlines()) <= 300


def test_ci_runs_the_readmes_install_and_test_commands():
    ci = (REPO / ".ci" / "run").read_text()
    install, tests = _blocks("bash")[0].strip().splitlines()
    assert install.startswith("python3 -m venv .venv && .venv/bin/pip install \"torch==2.13.0\" -e \".[test]\"")
    assert ".venv/bin/pip install --quiet \"torch==2.13.0\" -e \".[test]\"" in ci
    assert tests.startswith(".venv/bin/python -m pytest") and ".venv/bin/python -m pytest" in ci


def test_quick_tour_runs_and_its_numbers_are_true():
    (tour,) = [b for b in _blocks("python") if "fourier_upsample" in b]
    scope: dict = {}
    exec(compile(tour, "README quick tour", "exec"), scope)
    assert f"{scope['err']:.1e}" == "2.9e-06"  # "2.9e-6 of the peak"
    psnr = 10 * np.log10(1.0 / np.mean((scope["x1"] - scope["x2"]) ** 2))
    assert f"{psnr:.1f}" == "72.9"  # "PSNR(x1, x2) = 72.9 dB"


def test_every_flag_in_the_readme_examples_exists():
    """Each ``python -m MODULE ... --flag`` of the README's bash blocks names a module and flags that exist."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    helps: dict[str, str] = {}
    checked = 0
    for block in _blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line.split("#")[0]) if "python -m" in line else []
            if "-m" not in words or words[0].startswith("python3"):
                continue
            module = words[words.index("-m") + 1]
            if module in ("pytest", "validation") and len(words) <= 3:
                continue
            if module not in helps:
                proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=env,
                                      capture_output=True, text=True, timeout=120)
                assert proc.returncode == 0, (module, proc.stderr[-1000:])
                helps[module] = proc.stdout
            for flag in (w.split("=")[0] for w in words if w.startswith("--")):
                assert flag in helps[module], (module, flag)
                checked += 1
    assert checked >= 20


def test_real_dual_pixel_method_states_the_codes_parameters():
    """Issue 28: docs/real_dual_pixel.md's four steps quote optics.dual_pixel.deblur.DEFAULTS (step 4 said eps 2e-2)."""
    from optics.dual_pixel.deblur import DEFAULTS

    doc = (REPO / "docs" / "real_dual_pixel.md").read_text()
    method = doc[doc.index("## The method"):doc.index("## Results")]
    step3 = re.search(r"3\. \*\*Edge-aware aggregation.\*\*.*?sigma (\S+) px.*?radius (\d+), eps (\S+?)\)", method, re.S)
    assert (float(step3[1]), int(step3[2]), float(step3[3])) == (DEFAULTS["smooth"], DEFAULTS["radius"],
                                                                   DEFAULTS["guide_eps"])
    step4 = re.search(r"4\. \*\*Deconvolution.\*\*.*?\(eps ([0-9.e+-]+)", method, re.S)
    assert float(step4[1]) == DEFAULTS["wiener_eps"], step4[0]
    from optics.dual_pixel.pixel4 import PIXEL4_SCALE_BIAS  # issue 32: the bias belongs to the Pixel 4 sources

    assert f"scale bias of `{PIXEL4_SCALE_BIAS}`" in method
    assert f"{DEFAULTS['margin']} px of real context" in method
