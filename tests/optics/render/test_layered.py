"""Depth-layered DP rendering: K3DN Eq. 1-2 and 5 against scipy, occlusion vs naive, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from optics import Camera, convolve, dual_pixel_psfs, full_aperture_psf, render_coc_layers, render_defocus

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


def scipy_blur(image, psf, mode="symmetric"):
    """Reference convolution: numpy.pad + scipy.signal.fftconvolve, 'valid' part."""
    h = psf.shape[0] // 2
    img = image if image.ndim == 3 else image[:, :, None]
    padded = np.pad(img, ((h, h), (h, h), (0, 0)), mode=mode)
    out = fftconvolve(padded, psf[:, :, None], mode="valid", axes=(0, 1))
    return out if image.ndim == 3 else out[:, :, 0]


@pytest.mark.parametrize("model", ["half_disc", "butterworth"])
@pytest.mark.parametrize("occlusion", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("coc", [-7.0, 0.0, 4.6])
def test_constant_depth_reduces_to_convolution(model, occlusion, dtype, coc):
    rng = np.random.default_rng(1)
    image = rng.random((37, 52, 3)).astype(dtype)
    out = render_coc_layers(image, np.full((37, 52), coc), model=model, occlusion=occlusion)
    left_k, right_k = dual_pixel_psfs(round(coc), model)
    full_k = full_aperture_psf(round(coc), model)
    for got, k in ((out.left, left_k), (out.right, right_k), (out.centre, full_k)):
        assert got.dtype == dtype and got.shape == image.shape
        np.testing.assert_allclose(got, scipy_blur(image.astype(np.float64), k), **TOL[dtype])  # K3DN Eq. 1-2


def test_render_defocus_uses_the_camera_and_matches_optics_convolve():
    cam = Camera(focal_length_mm=50.0, f_number=2.0, focus_distance_m=2.0, pixel_pitch_um=20.0)
    depth = np.full((30, 40), 3.0)
    c = cam.coc_radius(3.0)  # 5.34 -> layer radius 5
    image = np.random.default_rng(2).random((30, 40))
    centre, left, right = render_defocus(image, depth, cam)
    k_left, k_right = dual_pixel_psfs(float(np.rint(c)))
    np.testing.assert_allclose(left, convolve(image, k_left), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(right, convolve(image, k_right), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(centre, convolve(image, (k_left + k_right) / 2), rtol=1e-12, atol=1e-13)


def three_layer_scene(rng, shape=(48, 64)):
    H, W = shape
    coc = np.full(shape, 6.0)
    coc[:, : W // 3] = -3.0
    coc[H // 4 : 3 * H // 4, W // 2 : W // 2 + 12] = 0.0
    return rng.random((H, W, 3)), coc


@pytest.mark.parametrize("boundary, pad_mode", [("symmetric", "symmetric"), ("periodic", "wrap"), ("zero", "constant")])
def test_naive_mode_is_k3dn_eq5(boundary, pad_mode):
    rng = np.random.default_rng(3)
    image, coc = three_layer_scene(rng)
    out = render_coc_layers(image, coc, occlusion=False, boundary=boundary, model="butterworth")
    expected_left = np.zeros_like(image)
    expected_right = np.zeros_like(image)
    for c in np.unique(coc):
        layer = image * (coc == c)[:, :, None]  # I^i = I (.) M^i   (Eq. 4)
        k_left, k_right = dual_pixel_psfs(c, "butterworth")
        expected_left += scipy_blur(layer, k_left, pad_mode)  # B^i = I^i * K^i (Eq. 5)
        expected_right += scipy_blur(layer, k_right, pad_mode)
    np.testing.assert_allclose(out.left, expected_left, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(out.right, expected_right, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(out.centre, (expected_left + expected_right) / 2, rtol=1e-11, atol=1e-12)


def small_scene_big_kernels(rng):
    coc = rng.choice([-9.0, -2.0, 0.0, 4.0, 11.0], size=(12, 17))
    coc[:, :5] = 11.0  # a layer reaching far beyond the image on one side
    return rng.random((12, 17, 3)), coc


@pytest.mark.parametrize("scene", [three_layer_scene, small_scene_big_kernels])
@pytest.mark.parametrize("boundary, pad_mode", [("symmetric", "symmetric"), ("periodic", "wrap"), ("zero", "constant")])
def test_occlusion_mode_matches_direct_compositing_loop(scene, boundary, pad_mode):
    rng = np.random.default_rng(4)
    image, coc = scene(rng)
    out = render_coc_layers(image, coc, occlusion=True, boundary=boundary)
    for view, idx in (("left", 0), ("right", 1)):
        acc = np.zeros_like(image)
        transmit = np.ones(coc.shape)
        for c in np.unique(coc):  # near (most negative CoC) to far
            mask = (coc == c).astype(float)
            k = dual_pixel_psfs(c)[idx]
            colour = scipy_blur(image * mask[:, :, None], k, pad_mode)
            alpha = scipy_blur(mask, k, pad_mode)
            acc += colour * transmit[:, :, None]
            transmit *= 1 - alpha
        np.testing.assert_allclose(getattr(out, view), acc, rtol=1e-11, atol=1e-12)


def test_occlusion_keeps_sharp_foreground_naive_leaks_background():
    # left half: in-focus foreground (CoC 0, nearer); right half: blurred background (CoC 8)
    H, W = 40, 60
    coc = np.full((H, W), 8.0)
    coc[:, :30] = 0.0
    image = np.zeros((H, W, 3))
    image[:, :30] = (1.0, 0.0, 0.0)
    image[:, 30:] = (0.0, 0.0, 1.0)
    occ = render_coc_layers(image, coc, occlusion=True)
    naive = render_coc_layers(image, coc, occlusion=False)
    for view in (occ.left, occ.right, occ.centre):
        # a sharp foreground has alpha 1 on its pixels: nothing from behind shows through
        np.testing.assert_allclose(view[:, :30], image[:, :30], atol=1e-12)
    leak = naive.centre[:, 22:30, 2]  # blue background blurred over the red foreground
    assert leak.max() > 0.1
    # away from the edge (farther than the kernel radius 8) the two modes agree
    np.testing.assert_allclose(occ.centre[:, :21], naive.centre[:, :21], atol=1e-12)
    np.testing.assert_allclose(occ.centre[:, 39:], naive.centre[:, 39:], atol=1e-12)
    # at the edge they differ
    assert np.abs(occ.centre[:, 22:38] - naive.centre[:, 22:38]).max() > 0.1


def test_normalize_coverage_removes_the_dark_fringe():
    H, W = 32, 48
    coc = np.full((H, W), 6.0)
    coc[:, :24] = 0.0
    image = np.full((H, W, 3), 0.5)
    plain = render_coc_layers(image, coc)
    normalized = render_coc_layers(image, coc, normalize_coverage=True)
    # uniform grey everywhere: the normalised composite is exactly that grey
    np.testing.assert_allclose(normalized.centre, 0.5, atol=1e-12)
    assert plain.centre[:, 24:30].min() < 0.45  # background layer lacks the hidden pixels


def test_impulse_gives_the_psf_with_true_convolution_orientation():
    image = np.zeros((31, 31))
    image[15, 15] = 1.0
    out = render_coc_layers(image, np.full((31, 31), 5.0), boundary="zero")
    k_left, k_right = dual_pixel_psfs(5.0)
    np.testing.assert_allclose(out.left[10:21, 10:21], k_left, atol=1e-15)
    np.testing.assert_allclose(out.right[10:21, 10:21], k_right, atol=1e-15)
    x = np.arange(31) - 15
    centroid_left = (out.left.sum(axis=0) * x).sum()
    assert centroid_left > 1.5  # behind the focal plane: left view's light at x > 0
    out_neg = render_coc_layers(image, np.full((31, 31), -5.0), boundary="zero")
    assert (out_neg.left.sum(axis=0) * x).sum() == pytest.approx(-centroid_left, rel=1e-12)


def test_layer_quantisation():
    coc = np.array([[-2.4, -0.6, 0.4], [1.5, 2.5, 3.49]])
    out = render_coc_layers(np.zeros((2, 3)), coc, boundary="zero")
    np.testing.assert_array_equal(out.layer_coc_radii, [-2.0, -1.0, 0.0, 2.0, 3.0])
    out2 = render_coc_layers(np.zeros((2, 3)), coc, coc_step=2.0, boundary="zero")
    np.testing.assert_array_equal(out2.layer_coc_radii, [-2.0, 0.0, 2.0, 4.0])


def test_bad_input():
    img = np.zeros((8, 8, 3))
    coc = np.zeros((8, 8))
    with pytest.raises(ValueError, match="coc_radius must have shape"):
        render_coc_layers(img, np.zeros((8, 9)))
    with pytest.raises(TypeError, match="NumPy"):
        render_coc_layers(torch.zeros(8, 8, 3, dtype=torch.float64), coc)
    with pytest.raises(TypeError, match="dtype"):
        render_coc_layers(np.zeros((8, 8, 3), dtype=np.uint8), coc)
    with pytest.raises(ValueError, match="finite"):
        render_coc_layers(img, np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="coc_step"):
        render_coc_layers(img, coc, coc_step=0)
    with pytest.raises(ValueError, match="boundary"):
        render_coc_layers(img, coc, boundary="mirror")
    with pytest.raises(ValueError, match="psf_options"):
        render_coc_layers(img, coc, psf_options={"sigma": 1.0})
    with pytest.raises(ValueError, match="normalize_coverage"):
        render_coc_layers(img, coc, occlusion=False, normalize_coverage=True)
    with pytest.raises(ValueError, match="image must be"):
        render_coc_layers(np.zeros((8, 8, 3, 1)), coc)
    with pytest.raises(TypeError, match="camera"):
        render_defocus(img, np.ones((8, 8)), camera=None)
    cam = Camera(50.0, 2.0, 2.0, 20.0)
    with pytest.raises(ValueError, match="depth"):
        render_defocus(img, np.full((8, 8), 0.01), cam)  # inside the focal length


def test_occlusion_views_stay_in_range_naive_can_overshoot():
    from optics.render.synthesize import dead_leaves_scene

    image, depth = dead_leaves_scene(np.random.default_rng(6), (64, 80))
    cam = Camera.for_coc_range(1.0, 10.0, 2.0, 10.0)
    occ = render_defocus(image, depth, cam)
    # sum_i T_i a_i = 1 - prod_i (1 - a_i) <= 1 and colour <= alpha: a convex-like combination
    for view in occ:
        assert view.min() >= -1e-12 and view.max() <= image.max() + 1e-12
    naive = render_defocus(image, depth, cam, occlusion=False)
    assert max(v.max() for v in naive) > image.max()  # overlapping blurs of different layers add up
