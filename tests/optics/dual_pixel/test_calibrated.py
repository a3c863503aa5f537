"""Calibrated dual-pixel model, its fits and the field-varying renderer (no measured kernels needed).

Independent references: kernels rendered by each model itself with noise (parameter recovery),
scipy.signal.fftconvolve (constant-depth identity), exact flips (sign and mirror behaviour).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import fftconvolve

from optics import (
    CalibratedDPParams,
    DualPixelField,
    calibrated_dual_pixel_psfs,
    dual_pixel_psfs,
    fit_dual_pixel_field,
    fit_dual_pixel_psfs,
    render_coc_layers,
)
from optics.dual_pixel.calibrated import PARAM_BOUNDS
from optics.dual_pixel.fit import _monomials
from optics.render.field import tile_bounds

NAMES = CalibratedDPParams.names()
ASYM = CalibratedDPParams(edge=0.2, rim_beta=0.5, rim_power=1.2, split_angle=0.15, split_offset=0.2, split_softness=0.3,
                          tilt_left_x=-0.8, tilt_left_y=0.4, tilt_right_x=0.5, tilt_right_y=-0.3, shift_x=0.08,
                          shift_y=-0.05, ellipse_c=0.06, ellipse_s=-0.04)


def _noisy(pair, rng, level=0.01):
    return [k + level * k.max() * rng.standard_normal(k.shape) for k in pair]


# ----------------------------------------------------------------------------------------- the model
def test_views_are_normalised_and_delta_at_zero():
    left, right = calibrated_dual_pixel_psfs(7.3, ASYM)
    assert left.shape == right.shape and left.shape[0] % 2 == 1
    assert abs(left.sum() - 1) < 1e-12 and abs(right.sum() - 1) < 1e-12 and left.min() >= 0
    for c in (0.0, 0.05, -0.05):
        k = calibrated_dual_pixel_psfs(c, ASYM)
        np.testing.assert_array_equal(k.left, np.ones((1, 1)))
        np.testing.assert_array_equal(k.right, np.ones((1, 1)))


def test_size_zero_pads_without_changing_values():
    small = calibrated_dual_pixel_psfs(6.0, ASYM)
    big = calibrated_dual_pixel_psfs(6.0, ASYM, size=small.left.shape[0] + 10)
    np.testing.assert_allclose(big.left[5:-5, 5:-5], small.left, rtol=1e-13, atol=1e-18)
    assert np.all(big.left[:5] == 0) and np.all(big.left[:, -5:] == 0)


@pytest.mark.parametrize("c", [3.0, 8.4, 12.5])
def test_negative_coc_point_reflects_each_view(c):
    pos = calibrated_dual_pixel_psfs(c, ASYM)
    neg = calibrated_dual_pixel_psfs(-c, ASYM)
    np.testing.assert_allclose(neg.left, pos.left[::-1, ::-1], rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(neg.right, pos.right[::-1, ::-1], rtol=1e-12, atol=1e-18)


def _centroid_x(k):
    h = k.shape[0] // 2
    return float((k.sum(axis=0) * np.arange(-h, h + 1)).sum())


@pytest.mark.parametrize("c", [5.0, 11.0])
def test_mirror_behaviour_and_disparity_sign(c):
    # mirrored parameters give the mirror image with the views swapped
    k = calibrated_dual_pixel_psfs(c, ASYM)
    m = calibrated_dual_pixel_psfs(c, ASYM.mirrored())
    np.testing.assert_allclose(m.left, k.right[:, ::-1], rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(m.right, k.left[:, ::-1], rtol=1e-12, atol=1e-18)
    # a symmetric parameter set gives K_R = flip(K_L) (K3DN Eq. 1)
    sym = CalibratedDPParams(edge=0.1, tilt_left_x=0.7, tilt_right_x=-0.7, tilt_left_y=0.2, tilt_right_y=0.2, ellipse_c=0.1)
    assert sym.mirrored() == sym
    s = calibrated_dual_pixel_psfs(c, sym)
    np.testing.assert_allclose(s.right, s.left[:, ::-1], rtol=1e-12, atol=1e-18)
    # behind the focal plane the left view lies right of the right view (as dual_pixel_psfs),
    # in front of it the other way round: the disparity flips sign across the focal plane
    for sign in (1, -1):
        k = calibrated_dual_pixel_psfs(sign * c, sym)
        ref = dual_pixel_psfs(sign * c)
        assert np.sign(_centroid_x(k.left) - _centroid_x(k.right)) == np.sign(_centroid_x(ref.left) - _centroid_x(ref.right)) == sign


def _max_step(fn, grid):
    ks = [fn(v) for v in grid]
    return max(float(np.abs(a - b).max()) for a, b in zip(ks[:-1], ks[1:]))


def _on(size, c, params):
    k = calibrated_dual_pixel_psfs(c, params, size=size)
    return np.concatenate([k.left, k.right])


@pytest.mark.parametrize("name", NAMES)
def test_continuous_in_every_parameter(name):
    # Halving the step of a sweep must shrink the largest increment: a jump would not shrink.
    lo, hi = PARAM_BOUNDS[name]
    centre = getattr(ASYM, name)
    span = 0.05 * (hi - lo)
    a, b = max(lo, centre - span), min(hi, centre + span)

    def fn(v):
        p = CalibratedDPParams(**{**{n: getattr(ASYM, n) for n in NAMES}, name: float(v)})
        return _on(41, 7.5, p)

    coarse = _max_step(fn, np.linspace(a, b, 9))
    fine = _max_step(fn, np.linspace(a, b, 33))
    assert fine <= 0.5 * coarse + 1e-15


def test_continuous_in_radius_across_half_integers():
    grid = lambda step: np.arange(4.3, 4.7 + 1e-9, step)  # noqa: E731 (crosses 4.5)
    fn = lambda c: _on(31, c, ASYM)  # noqa: E731
    assert _max_step(fn, grid(0.0025)) <= 0.5 * _max_step(fn, grid(0.01))
    # the same check detects the Butterworth model's jump at the half-integer radius
    bw = lambda c: np.concatenate(dual_pixel_psfs(c, "butterworth", size=31))  # noqa: E731
    assert _max_step(bw, grid(0.0025)) > 0.5 * _max_step(bw, grid(0.01))


def test_params_bad_input():
    with pytest.raises(ValueError, match="split_softness"):
        CalibratedDPParams(split_softness=0.0)
    with pytest.raises(TypeError, match="edge"):
        CalibratedDPParams(edge="0.1")
    with pytest.raises(ValueError, match="size"):
        calibrated_dual_pixel_psfs(10.0, size=7)
    with pytest.raises(TypeError, match="params"):
        calibrated_dual_pixel_psfs(10.0, {"edge": 0.1})
    with pytest.raises(ValueError, match="vector"):
        CalibratedDPParams.from_vector([0.1, 0.2])


# ----------------------------------------------------------------------------------------- fits
def test_fit_recovers_calibrated_parameters():
    rng = np.random.default_rng(0)
    c = -9.3
    truth = calibrated_dual_pixel_psfs(c, ASYM, size=41)
    left, right = _noisy(truth, rng)
    fit = fit_dual_pixel_psfs(left, right)
    assert fit.left.shape == left.shape and fit.model == "calibrated"
    assert fit.params["coc_radius"] == pytest.approx(c, abs=0.15)
    p = fit.calibrated
    for name, tol in (("shift_x", 0.02), ("shift_y", 0.02), ("split_angle", 0.1), ("ellipse_c", 0.02), ("ellipse_s", 0.02)):
        assert getattr(p, name) == pytest.approx(getattr(ASYM, name), abs=tol), name
    # the fitted pair matches the noise-free truth better than the noisy data does
    noise = np.linalg.norm(np.concatenate([left - truth.left, right - truth.right]))
    err = np.linalg.norm(np.concatenate([fit.left - truth.left, fit.right - truth.right]))
    assert err < 0.5 * noise
    assert fit.rel_l2 < 0.15 and fit.rel_l1 > 0


@pytest.mark.parametrize("c", [-7.8, 10.4])
def test_fit_recovers_half_disc(c):
    rng = np.random.default_rng(1)
    left, right = _noisy(dual_pixel_psfs(c, size=41), rng)
    fit = fit_dual_pixel_psfs(left, right, "half_disc")
    assert fit.params["coc_radius"] == pytest.approx(c, abs=0.3)
    assert abs(fit.params["shift_x"]) < 0.25 and abs(fit.params["shift_y"]) < 0.25
    assert fit.rel_l2 < 0.1


def test_fit_recovers_butterworth_paper_settings():
    rng = np.random.default_rng(2)
    c, opts = 9.6, dict(order=6, cutoff_factor=2.0, beta=0.2)
    left, right = _noisy(dual_pixel_psfs(c, "butterworth", size=41, **opts), rng)
    fit = fit_dual_pixel_psfs(left, right, "butterworth", settings="paper")
    assert fit.params["coc_radius"] == pytest.approx(c, abs=0.3)
    assert (fit.params["order"], fit.params["cutoff_factor"], fit.params["beta"]) == (6, 2.0, 0.2)
    assert fit.rel_l2 < 0.1


def test_fit_recovers_butterworth_free_settings():
    rng = np.random.default_rng(3)
    c, opts = -8.2, dict(order=3, cutoff_factor=2.5, beta=0.4, kappa=0.2)
    truth = dual_pixel_psfs(c, "butterworth", size=41, **opts)
    left, right = _noisy(truth, rng)
    fit = fit_dual_pixel_psfs(left, right, "butterworth", settings="free")
    assert fit.params["coc_radius"] == pytest.approx(c, abs=0.3)
    assert fit.params["beta"] == pytest.approx(0.4, abs=0.1)
    assert fit.rel_l2 < 0.1


def test_fit_bad_input():
    k = dual_pixel_psfs(5.0, size=21)
    with pytest.raises(ValueError, match="model"):
        fit_dual_pixel_psfs(k.left, k.right, "gauss")
    with pytest.raises(ValueError, match="left and right"):
        fit_dual_pixel_psfs(k.left, k.right[1:-1, 1:-1])
    with pytest.raises(ValueError, match="left"):
        fit_dual_pixel_psfs(k.left[:, :-1], k.right)
    with pytest.raises(TypeError, match="right"):
        fit_dual_pixel_psfs(k.left, k.right.tolist())


# ----------------------------------------------------------------------------------------- field
def _field(degree=1, shape=(200, 300), sign=-1.0):
    T = (degree + 1) * (degree + 2) // 2
    coefs = np.zeros((1 + len(NAMES), T))
    coefs[0, 0] = 8.0
    coefs[1:, 0] = ASYM.as_vector()
    if degree >= 1:
        coefs[0, 1] = 0.6  # radius grows to the right
        coefs[1 + NAMES.index("split_offset"), 1] = -0.2  # balance changes across the field
        coefs[1 + NAMES.index("tilt_left_x"), 2] = 0.5
    return DualPixelField(coefs, degree, shape, sign)


def test_field_recovered_from_its_own_kernels():
    rng = np.random.default_rng(4)
    truth = _field()
    xs, ys = np.meshgrid([30.0, 110.0, 190.0, 270.0], [30.0, 100.0, 170.0])
    pos = np.stack([xs.ravel(), ys.ravel()], axis=1)
    pairs = [_noisy(truth.psfs(truth.calibration_coc, x, y, size=31), rng, 0.005) for x, y in pos]
    kl, kr = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    train = np.arange(len(pos)) % 2 == 0
    fit = fit_dual_pixel_field(kl[train], kr[train], pos[train], truth.image_shape, degree=1)
    assert fit.field.calibration_sign == -1.0
    assert fit.rel_l2.shape == (train.sum(),) and np.median(fit.rel_l2) < 0.1
    _, held_out = fit.score(kl[~train], kr[~train], pos[~train])
    assert np.median(held_out) < 0.1
    # radius field: 8 + 0.6 X
    r_left, _ = fit.field.params_at(0.0, 100.0)
    r_right, _ = fit.field.params_at(299.0, 100.0)
    assert r_right - r_left == pytest.approx(2 * 0.6 * 299 / 300, abs=0.3)


def test_field_json_round_trip_and_bad_input():
    f = _field(degree=2)
    g = DualPixelField.from_json(f.to_json())
    np.testing.assert_array_equal(g.coefficients, f.coefficients)
    assert (g.degree, g.image_shape, g.calibration_sign) == (f.degree, f.image_shape, f.calibration_sign)
    with pytest.raises(ValueError, match="coefficients"):
        DualPixelField(np.zeros((3, 3)), 1, (10, 10))
    with pytest.raises(ValueError, match="DualPixelField"):
        DualPixelField.from_json('{"kind": "other"}')


def test_field_psfs_scale_with_coc_and_flip_sign():
    f = _field()
    a = f.psfs(6.0, 150.0, 100.0)
    b = f.psfs(-6.0, 150.0, 100.0)
    np.testing.assert_allclose(b.left, a.left[::-1, ::-1], rtol=1e-12, atol=1e-18)
    r, p = f.params_at(150.0, 100.0)
    ref = calibrated_dual_pixel_psfs(6.0 * r / f.centre_radius, p)
    np.testing.assert_array_equal(a.left, ref.left)


# ----------------------------------------------------------------------------------------- rendering
def _reference_blur(image, psf):
    h = psf.shape[0] // 2
    padded = np.pad(image, ((h, h), (h, h), (0, 0)), mode="symmetric")
    return fftconvolve(padded, psf[:, :, None], mode="valid", axes=(0, 1))


def test_render_constant_depth_identity_with_a_uniform_field():
    # a field without variation: every tile has the same pair, so the views are I * K_v exactly,
    # tile seams included
    rng = np.random.default_rng(5)
    image = rng.random((70, 90, 3))
    f = _field(degree=0, shape=(70, 90))
    c = 5.0
    out = render_coc_layers(image, np.full((70, 90), c), model="calibrated", psf_field=f, tile=32)
    k = f.psfs(c, 0.0, 0.0)
    np.testing.assert_allclose(out.left, _reference_blur(image, k.left), atol=1e-10)
    np.testing.assert_allclose(out.right, _reference_blur(image, k.right), atol=1e-10)
    np.testing.assert_allclose(out.centre, (out.left + out.right) / 2, atol=0)


@pytest.mark.parametrize("c", [-4.0, 4.0])
def test_render_constant_depth_equals_local_pair_inside_tiles(c):
    rng = np.random.default_rng(6)
    H, W, tile = 96, 128, 48
    image = rng.random((H, W, 2))
    f = _field(degree=1, shape=(H, W))
    origin = (3.0, 5.0)
    out = render_coc_layers(image, np.full((H, W), c), model="calibrated", psf_field=f, tile=tile, field_origin=origin)
    rows, cols = tile_bounds(H, tile), tile_bounds(W, tile)
    pairs = {(y0, x0): f.psfs(c, origin[0] + (x0 + x1 - 1) / 2, origin[1] + (y0 + y1 - 1) / 2)
             for y0, y1 in rows for x0, x1 in cols}
    h = max(k.left.shape[0] // 2 for k in pairs.values())  # the reach of any tile's kernel
    checked = 0
    for y0, y1 in rows:
        for x0, x1 in cols:
            k = pairs[(y0, x0)]
            inner = (slice(y0 + h, y1 - h), slice(x0 + h, x1 - h))
            for view, kernel in (("left", k.left), ("right", k.right)):
                ref = _reference_blur(image, kernel)
                np.testing.assert_allclose(getattr(out, view)[inner], ref[inner], atol=1e-10)
                checked += 1
    assert checked == 2 * len(rows) * len(cols) == 12
    # the field varies: different tiles have different pairs
    assert not np.allclose(f.psfs(c, 0, 0, size=31).left, f.psfs(c, W, H, size=31).left)


def test_render_calibrated_bad_input():
    image = np.zeros((16, 16))
    coc = np.full((16, 16), 2.0)
    with pytest.raises(TypeError, match="psf_field"):
        render_coc_layers(image, coc, model="calibrated")
    with pytest.raises(ValueError, match="psf_field"):
        render_coc_layers(image, coc, model="half_disc", psf_field=_field())
    with pytest.raises(ValueError, match="tile"):
        render_coc_layers(image, coc, model="calibrated", psf_field=_field(), tile=2)
    with pytest.raises(ValueError, match="psf_options"):
        render_coc_layers(image, coc, model="calibrated", psf_field=_field(), psf_options=dict(beta=0.1))


def test_monomials_graded_order():
    X, Y = np.float64(2.0), np.float64(3.0)
    np.testing.assert_array_equal(_monomials(X, Y, 2), [1, 2, 3, 4, 6, 9])
    assert math.isclose(float(_monomials(X, Y, 0)[0]), 1.0)


# ----------------------------------------------------------------------------------------- synthesis
def test_synthesize_scene_with_the_pixel4_field():
    from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field
    from optics.render.synthesize import synthesize_scene

    scene = synthesize_scene(np.random.default_rng(0), shape=(40, 56), max_coc=4.0, psf_model="calibrated")
    assert scene.psf_model == "calibrated" and scene.psf_options["field"] == "pixel4"
    x0, y0 = scene.psf_options["field_origin"]
    H, W = pixel4_dual_pixel_field().image_shape
    assert 0 <= x0 <= W - 56 and 0 <= y0 <= H - 40
    for view in (scene.centre, scene.left, scene.right):
        assert view.shape == (40, 56, 3) and view.dtype == np.float32 and np.all(np.isfinite(view))
        assert view.min() >= -1e-4 and view.max() <= 1 + 1e-4
    # the dual-pixel views differ (asymmetric pair) and average to the centre view
    assert np.abs(scene.left - scene.right).max() > 1e-3
    np.testing.assert_allclose(scene.centre, (scene.left + scene.right) / 2, atol=1e-6)


def test_synthesize_scene_field_argument_checks():
    from optics.render.synthesize import synthesize_scene

    with pytest.raises(ValueError, match="psf_field"):
        synthesize_scene(np.random.default_rng(0), shape=(16, 16), psf_model="half_disc", psf_field=_field())
    with pytest.raises(TypeError, match="psf_field"):
        synthesize_scene(np.random.default_rng(0), shape=(16, 16), psf_model="calibrated", psf_field="pixel4")


def test_existing_models_draw_the_same_scenes():
    # psf_model='random' must not consume extra random numbers (datasets stay identical)
    from optics.render.synthesize import PSF_CHOICES, _draw_psf

    assert PSF_CHOICES[:3] == ("half_disc", "butterworth", "random")
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    _draw_psf(a, "random")
    _draw_psf(b, "random")
    assert a.random() == b.random()
