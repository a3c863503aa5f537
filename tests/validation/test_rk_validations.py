"""validation.recursive_kernels and validation.iac_receptive_field: measuring functions and CLI.

The expensive end-to-end runs live in ``python -m validation``; here the building blocks are
checked against closed forms on small cases, and the IAC validation (fast) is run end to end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import optics
from validation import iac_receptive_field as iac
from validation import recursive_kernels as rk


# ---------------------------------------------------------------------------------------------
# IAC receptive field
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_iter,k", [(1, 3), (3, 3), (2, 5), (4, 7)])
def test_receptive_field_is_n_times_k_minus_1_plus_1(n_iter, k):
    response, twin, _ = iac.impulse_response(n_iter, k, np.random.default_rng(0))
    assert iac.receptive_field(response) == (n_iter * (k - 1) + 1,) * 2
    np.testing.assert_allclose(response, twin, rtol=1e-12, atol=0)


def test_receptive_field_measures_extent():
    response = np.zeros((9, 9))
    response[2, 3] = 1.0
    response[6, 4] = -1e-30
    assert iac.receptive_field(response) == (5, 2)


def test_local_separable_iteration_is_replicate_padded_correlation():
    """One iteration with constant taps equals scipy's correlate1d (mode='nearest') twice."""
    from scipy.ndimage import correlate1d

    rng = np.random.default_rng(1)
    image = rng.random((7, 6))
    taps_v, taps_h = np.array([0.2, 0.5, 0.3]), np.array([0.1, 0.6, 0.3])
    kv = np.broadcast_to(taps_v[None, :, None, None], (1, 3, 7, 6))
    kh = np.broadcast_to(taps_h[None, :, None, None], (1, 3, 7, 6))
    expected = correlate1d(correlate1d(image, taps_v, axis=0, mode="nearest"), taps_h, axis=1, mode="nearest")
    np.testing.assert_allclose(iac.local_separable_iteration(image, kv, kh), expected, atol=1e-14)


def test_iac_validation_end_to_end_on_the_first_table_entry(tmp_path, monkeypatch):
    """run() on IFAN's N = 8 entry only (the full table runs in `python -m validation`)."""
    monkeypatch.setattr(iac, "PAPER_TABLE4", {8: 17})
    rows = iac.run(tmp_path, quick=True)
    assert rows[0]["paper"] == "RF 17 (Table 4)"
    assert all(r["passed"] for r in rows)
    data = json.loads((tmp_path / "iac_receptive_field.json").read_text())
    assert [(r["N"], r["k"], r["measured_rows"]) for r in data["results"]] == [(8, 3, 17), (8, 5, 33)]
    assert (tmp_path / "iac_receptive_field.png").stat().st_size > 0
    assert "Table 4" in (tmp_path / "iac_receptive_field.md").read_text()


# ---------------------------------------------------------------------------------------------
# recursive kernels
# ---------------------------------------------------------------------------------------------
def test_supports_are_2j_minus_1():
    for s in rk.supports(6, np.random.default_rng(2)):
        assert s["rows"] == s["cols"] == 2 * s["j"] - 1
        assert s["nonzeros"] == (2 * s["j"] - 1) ** 2


def test_atom_variance_is_sum_of_step_variances():
    # a step [a, 1-2a, a] has variance 2a; J-1 steps add up.
    assert rk.atom_variance(np.tile([0.25, 0.5, 0.25], (6, 1))) == pytest.approx(6 * 0.5, rel=1e-12)
    assert rk.atom_variance(np.tile([0.5, 0.0, 0.5], (4, 1))) == pytest.approx(4.0, rel=1e-12)


def test_atom_profiles_give_rkr_atoms():
    taps = np.random.default_rng(3).dirichlet((2, 2, 2), size=5)
    profiles = rk.atom_profiles(taps, 11)
    np.testing.assert_allclose(profiles[:, :, None] * profiles[:, None, :], optics.rkr_atoms(taps), atol=1e-15)


def test_fit_is_exact_for_the_atoms_themselves():
    taps = np.tile(rk.BINOMIAL, (5, 1))
    atoms = optics.rkr_atoms(taps)  # (6, 11, 11)
    targets = np.stack([atoms[2], 0.3 * atoms[1] + 0.7 * atoms[5]])
    for method in ("ls", "nnls"):
        assert np.all(rk.fit_fixed(targets, 6, method) < 1e-10)


def test_fit_optimised_improves_on_binomial_taps():
    """Targets built from asymmetric taps: optimising the taps must beat the fixed binomial ones."""
    taps = np.tile([0.6, 0.3, 0.1], (2, 1))
    atoms = optics.rkr_atoms(taps)
    targets = np.stack([atoms[2], 0.5 * atoms[1] + 0.5 * atoms[2]])
    fixed = rk.fit_fixed(targets, 3, "ls")
    optimised, _ = rk.fit_optimised(targets, 3, iterations=40)
    assert optimised.mean() < 0.5 * fixed.mean()


def test_neumann_errors_show_convergence_and_divergence():
    image = np.random.default_rng(5).random((24, 24))
    errors = rk.neumann_errors(image, 12)
    assert np.all(np.diff(errors["gaussian sigma=2"]) <= 1e-12)
    assert errors["contraction"]["disc r=4"] > 1
    assert errors["disc r=4"][-1] > min(errors["disc r=4"])


def test_cross_scale_report_fields():
    image = np.random.default_rng(6).random((32, 32))
    cs = rk.cross_scale(image, repeats=1)
    assert cs["blur_cost_eq10"] == pytest.approx(1.6875)
    assert cs["error_full_eq8"] < cs["error_blurred"]
    assert [t["t"] for t in cs["terms"]] == [2, 3]
