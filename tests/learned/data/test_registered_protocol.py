"""The ``registered`` scoring protocol and the ``dual_pixel`` evaluation row."""

import numpy as np
import pytest
from scipy import ndimage

from learned.baseline import DualPixelBaseline
from learned.data import protocols as P
from optics.dual_pixel.deblur import DualPixelPSFGrid

RNG = np.random.default_rng(5)


def _texture(shape=(256, 256)):
    return ndimage.gaussian_filter(RNG.random(shape), 1.5)  # band-limited texture in [0, 1]


@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.3, -2.6), (-0.45, 0.8)])
def test_register_to_finds_a_known_subpixel_shift(shift):
    target = _texture()
    # prediction = target displaced by -shift: registering must move it back by +shift
    prediction = ndimage.shift(target, [-s for s in shift], order=3, mode="nearest")
    moved, cut, found = P.register_to(prediction[..., None], target[..., None])
    assert np.allclose(found, shift, atol=0.1)  # 1/20 px grid; measured error up to 0.05-0.1 px on this texture
    assert moved.shape == cut.shape == (256 - 16, 256 - 16, 1)
    # after registration the two agree far better than before, on the same interior
    before = np.mean((prediction[8:-8, 8:-8] - target[8:-8, 8:-8]) ** 2)
    after = np.mean((moved[..., 0] - cut[..., 0]) ** 2)
    assert after < 0.05 * before or before < 1e-12


def test_registered_protocol_scores_a_shifted_copy_higher_than_raw():
    target = np.repeat(_texture()[..., None], 3, axis=2)
    prediction = ndimage.shift(target, (1.5, -2.0, 0), order=1, mode="nearest")
    raw = P.score(prediction, target, "none")["psnr"]
    registered = P.score(prediction, target, "registered")["psnr"]
    assert registered > raw + 10


def test_registration_refuses_a_shift_beyond_the_border():
    target = _texture()
    prediction = np.roll(target, 12, axis=1)
    with pytest.raises(ValueError, match="beyond the 8 px border"):
        P.register_to(prediction, target)


def test_registered_is_a_named_protocol():
    assert "registered" in P.NAMES and P.get_protocol("registered").register


def _grid():
    k = np.zeros((9, 9))
    k[4, 3:5] = 0.5
    left = np.broadcast_to(k, (2, 2, 9, 9)).copy()
    return DualPixelPSFGrid(left, left[..., ::-1].copy(), 32, name="test grid")


def test_dual_pixel_row_needs_the_views_and_its_psf_type():
    with pytest.raises(TypeError, match="psfs must be"):
        DualPixelBaseline("pixel4")
    row = DualPixelBaseline(_grid())
    with pytest.raises(ValueError, match="left and right views"):
        row({"input": np.zeros((64, 64, 3), np.float32)})


def test_dual_pixel_row_deblurs_a_replicated_plane_once_and_clips():
    grid = _grid()
    plane = RNG.random((64, 64)).astype(np.float32)
    views = {side: np.repeat(plane[..., None], 3, axis=2) for side in ("left", "right")}
    row = DualPixelBaseline(grid, workers=1)
    out = row(views)
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    assert np.array_equal(out[..., 0], out[..., 2]) and out.min() >= 0 and out.max() <= 1
    assert len(row.seconds) == 1 and row.last.defocus.shape == (64, 64)
