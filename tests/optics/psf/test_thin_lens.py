"""Thin-lens signed CoC: closed form from image distances, sign, inverse, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from optics.psf.thin_lens import Camera, depth_from_signed_coc, signed_coc_radius

CAM = dict(focus_distance_m=2.0, focal_length_mm=50.0, f_number=2.0, pixel_pitch_um=20.0)


def coc_from_image_distances(depth_m, focus_m, focal_mm, fnum, pitch_um):
    """Independent reference: similar triangles behind the lens, everything in millimetres."""
    d, df, f = depth_m * 1e3, focus_m * 1e3, focal_mm
    sensor = f * df / (df - f)  # lens-to-sensor distance
    image = f * d / (d - f)  # where the point focuses
    aperture = f / fnum
    diameter = aperture * (sensor - image) / image  # > 0 when the image forms in front of the sensor
    return diameter / 2 / (pitch_um * 1e-3)


@pytest.mark.parametrize("depth", [0.3, 1.0, 1.999, 2.0, 2.5, 7.0, 1e4])
def test_matches_similar_triangles(depth):
    expected = coc_from_image_distances(depth, CAM["focus_distance_m"], CAM["focal_length_mm"], CAM["f_number"], CAM["pixel_pitch_um"])
    got = signed_coc_radius(depth, **CAM)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_sign_convention_and_monotone():
    depths = np.linspace(0.2, 50.0, 1001)
    c = signed_coc_radius(depths, **CAM)
    assert np.all(np.diff(c) > 0)
    assert np.all(c[depths < 2.0] < 0) and np.all(c[depths > 2.0] > 0)
    assert signed_coc_radius(2.0, **CAM) == 0.0


def test_limit_at_infinity():
    cam = Camera(focal_length_mm=50.0, f_number=2.0, focus_distance_m=2.0, pixel_pitch_um=20.0)
    # f^2 / (2 N (d_f - f) p) in mm
    assert cam.coc_radius_at_infinity == pytest.approx(50.0**2 / (2 * 2.0 * 1950.0 * 0.020), rel=1e-14)
    assert cam.coc_radius(1e12) == pytest.approx(cam.coc_radius_at_infinity, rel=1e-9)
    assert cam.depth(cam.coc_radius_at_infinity) == math.inf


@given(st.floats(min_value=0.06, max_value=1e3))
def test_inverse_roundtrip_scalar(depth):
    c = signed_coc_radius(depth, **CAM)
    assert depth_from_signed_coc(c, **CAM) == pytest.approx(depth, rel=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_roundtrip_array_keeps_dtype(dtype):
    depth = np.geomspace(0.5, 40.0, 64).astype(dtype).reshape(8, 8)
    c = signed_coc_radius(depth, **CAM)
    assert c.dtype == dtype and c.shape == depth.shape
    back = depth_from_signed_coc(c, **CAM)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back, depth, rtol=rtol)


def test_torch_differentiable():
    depth = torch.tensor([1.0, 3.0, 5.0], dtype=torch.float64, requires_grad=True)
    c = signed_coc_radius(depth, **CAM)
    c.sum().backward()
    c_inf = Camera(**{k: CAM[k] for k in ("focal_length_mm", "f_number", "focus_distance_m", "pixel_pitch_um")}).coc_radius_at_infinity
    # d/dd [c_inf (1 - d_f / d)] = c_inf d_f / d^2
    np.testing.assert_allclose(depth.grad.numpy(), c_inf * 2.0 / depth.detach().numpy() ** 2, rtol=1e-12)


def test_for_coc_range_hits_target():
    cam = Camera.for_coc_range(1.0, 10.0, 2.0, 12.0)
    c = cam.coc_radius(np.array([1.0, 10.0]))
    assert max(abs(c)) == pytest.approx(12.0, rel=1e-12)
    assert cam.focal_length_mm == 50.0


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(focus_distance_m=0.04), ValueError),  # focus closer than f = 50 mm
        (dict(f_number=0.0), ValueError),
        (dict(pixel_pitch_um=-1.0), ValueError),
        (dict(focal_length_mm=float("nan")), ValueError),
        (dict(f_number="2"), TypeError),
    ],
)
def test_bad_lens_parameters(kwargs, err):
    params = {**CAM, **kwargs}
    with pytest.raises(err):
        signed_coc_radius(1.0, **params)
    with pytest.raises(err):
        Camera(**params)


def test_bad_depths():
    with pytest.raises(ValueError, match="depth_m"):
        signed_coc_radius(0.01, **CAM)  # inside the focal length
    with pytest.raises(ValueError, match="finite"):
        signed_coc_radius(np.array([1.0, np.inf]), **CAM)
    with pytest.raises(TypeError, match="dtype"):
        signed_coc_radius(np.array([1, 2]), **CAM)
    with pytest.raises(TypeError):
        signed_coc_radius("1.0", **CAM)


def test_bad_coc():
    cam = Camera(**{k: CAM[k] for k in ("focal_length_mm", "f_number", "focus_distance_m", "pixel_pitch_um")})
    with pytest.raises(ValueError, match="radius at infinity"):
        cam.depth(cam.coc_radius_at_infinity + 1.0)
    with pytest.raises(ValueError, match="radius at infinity"):
        cam.depth(np.array([0.0, cam.coc_radius_at_infinity * 2]))
