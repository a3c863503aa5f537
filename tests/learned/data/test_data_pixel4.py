"""``synthetic:sensor=pixel4``: raw Pixel 4 training scenes as the ``pixeldp`` reader gives real ones.

Checked against the sensor model (:mod:`optics.render.pixel4_raw`, :mod:`optics.dual_pixel.sensor_noise`): linear
grey values replicated to 3 channels on the 14-bit grid (before the reader's correction of the
right view), noise present and absent as asked, the corrected views' vignetting undone. No real data.
"""

from __future__ import annotations

import numpy as np
import pytest

from learned.data import build_dataset
from optics.dual_pixel.sensor_noise import PIXEL4_NOISE_A, PIXEL4_NOISE_B

SPEC = "synthetic:sensor=pixel4,size=48,count=2,val_count=1,test_count=1"


def test_pixel4_samples_are_raw_grey_dual_pixel():
    ds = build_dataset(SPEC, "train", seed=0)
    assert ds.psf == "calibrated" and ds.noise and ds.vignetting
    sample = ds.load(0)
    for key in ("input", "target", "left", "right"):
        v = sample[key]
        assert v.shape == (48, 48, 3) and v.dtype == np.float32
        np.testing.assert_array_equal(v[..., 0], v[..., 1])
        np.testing.assert_array_equal(v[..., 0], v[..., 2])
        assert 0 <= v.min() and v.max() <= 1.5
    # left: the 14-bit grid; input: mean of the corrected views (the reader's centre_from_views)
    left = sample["left"][..., 0].astype(np.float64)
    np.testing.assert_allclose(left * 16383, np.round(left * 16383), atol=2e-3)
    np.testing.assert_allclose(sample["input"], 0.5 * (sample["left"] + sample["right"]), atol=1e-6)
    # linear and dark like the raw frames: the target's mean lies within the exposure range
    assert 0.005 < float(sample["target"].mean()) < 0.8
    item = ds[0]
    assert set(item) >= {"input", "target", "left", "right", "name"} and tuple(item["left"].shape) == (3, 48, 48)


def test_pixel4_noise_and_vignetting_switches():
    """Same scene with noise on and off: the difference of the left views has the model's variance
    a x + b within 15 % (2304 samples: standard error 3 %); with vignetting off the
    right view is not corrected (no gain), with it on the corrected right view is not on the
    14-bit grid (it was divided by g, quantised, multiplied back)."""
    noisy = build_dataset(SPEC, "val").load(0)
    clean = build_dataset(SPEC + ",noise=off", "val").load(0)
    x = clean["left"][..., 0].astype(np.float64)
    resid = noisy["left"][..., 0].astype(np.float64) - x
    expected = float(np.mean(PIXEL4_NOISE_A * x + PIXEL4_NOISE_B)) + 2 / 16383**2 / 12
    assert abs(resid.var() - expected) <= 0.15 * expected
    np.testing.assert_array_equal(clean["target"], noisy["target"])
    flat = build_dataset(SPEC + ",noise=off,vignetting=off", "val").load(0)
    right = flat["right"][..., 0].astype(np.float64)
    np.testing.assert_allclose(right * 16383, np.round(right * 16383), atol=2e-3)
    r_on = clean["right"][..., 0].astype(np.float64) * 16383
    assert np.abs(r_on - np.round(r_on)).max() > 0.05


def test_pixel4_val_test_fixed_and_train_by_seed():
    a = build_dataset(SPEC, "test", seed=0).load(0)
    b = build_dataset(SPEC, "test", seed=5).load(0)
    np.testing.assert_array_equal(a["left"], b["left"])
    t0 = build_dataset(SPEC, "train", seed=0).load(0)
    t1 = build_dataset(SPEC, "train", seed=1).load(0)
    assert not np.array_equal(t0["left"], t1["left"])


def test_pixel4_butterworth_ablation():
    ds = build_dataset(SPEC + ",psf=butterworth", "val")
    assert ds.psf == "butterworth"
    sample = ds.load(0)
    assert np.abs(sample["left"] - sample["right"]).max() > 1e-3


@pytest.mark.parametrize("options,match", [
    ("sensor=pixel5", r"sensor must be one of \('none', 'pixel4'\); got 'pixel5'"),
    ("sensor=pixel4,psf=half_disc", r"psf must be one of \('calibrated', 'butterworth'\) with sensor=pixel4"),
    ("sensor=pixel4,noise=maybe", r"synthetic option noise='maybe': must be one of"),
    ("sensor=pixel4,vignetting=2", r"synthetic option vignetting='2'"),
    ("sensor=pixel4,max_coc=4", r"max_coc does not apply with sensor=pixel4"),
    ("sensor=pixel4,photo_fraction=0.5", r"photo_fraction and in_focus_fraction do not apply with sensor=pixel4"),
    ("noise=off", r"noise, vignetting, depth and physics need sensor=pixel4"),
    ("physics=on", r"noise, vignetting, depth and physics need sensor=pixel4"),
    ("sensor=pixel4,size=200,physics=on", r"physics=on needs a size that is a multiple of 168"),
    ("depth=smooth", r"noise, vignetting, depth and physics need sensor=pixel4"),
    ("sensor=pixel4,depth=flat", r"depth must be one of \('dead_leaves', 'smooth'\)"),
])
def test_bad_pixel4_options_give_one_line_errors(options, match):
    with pytest.raises(ValueError, match=match) as info:
        build_dataset(f"synthetic:{options}", "train")
    assert "\n" not in str(info.value)


def test_pixel4_reader_correction_undoes_the_vignetting():
    """Noise off, one scene with vignetting on and off: the left views are equal and the corrected
    right views agree within the rounding of the raw right view times g (g <= 1.45: 1e-4)."""
    on = build_dataset(SPEC + ",noise=off", "val").load(0)
    off = build_dataset(SPEC + ",noise=off,vignetting=off", "val").load(0)
    np.testing.assert_array_equal(on["left"], off["left"])
    np.testing.assert_allclose(on["right"], off["right"], atol=1e-4)
    assert np.abs(on["right"] - off["right"]).max() > 0


def test_pixel4_physics_estimate_added_and_cropped_with_the_views():
    """physics=on: the sample carries the training-free estimate of its own views (run here
    independently with the field's window at the scene's origin) and its defocus map, cropped at
    the same place as the views."""
    from optics.dual_pixel.deblur import DualPixelPSFGrid, dual_pixel_deblur
    from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field
    from optics.render.pixel4_raw import synthesize_pixel4_raw

    ds = build_dataset("synthetic:sensor=pixel4,size=168,count=1,physics=on", "train", seed=3, crop=64)
    full = ds.load(0)
    assert full["physics"].shape == (168, 168, 3) and full["defocus"].shape == (168, 168, 1)
    scene = synthesize_pixel4_raw(ds.scene_rng(0), (168, 168))
    np.testing.assert_array_equal(full["left"][..., 0], scene.left)
    grid = DualPixelPSFGrid.from_field(pixel4_dual_pixel_field(), 168, shape=(168, 168), origin=scene.field_origin)
    ref = dual_pixel_deblur(scene.left, scene.right, grid, workers=1)
    np.testing.assert_array_equal(full["physics"][..., 1], np.clip(ref.image, 0, 1))
    np.testing.assert_array_equal(full["defocus"][..., 0], ref.defocus)
    item = ds[(0, 5)]
    assert tuple(item["physics"].shape) == (3, 64, 64) and tuple(item["defocus"].shape) == (1, 64, 64)
    # the crop of the estimate sits where the crop of the views does
    rows = [r for r in range(168 - 63) for c in range(168 - 63)
            if np.array_equal(full["left"][r:r + 64, c:c + 64, 0], item["left"][0].numpy())]
    assert rows, "the left crop is a window of the scene"
    r = rows[0]
    cols = [c for c in range(168 - 63) if np.array_equal(full["left"][r:r + 64, c:c + 64, 0], item["left"][0].numpy())]
    np.testing.assert_array_equal(item["physics"][0].numpy(), full["physics"][r:r + 64, cols[0]:cols[0] + 64, 0])


def test_pixel4_smooth_depth_has_few_large_regions():
    """depth=smooth: the same kind of texture, but depth edges are rare: most pixels lie 24 px or
    more from a jump of the CoC map (> 0.5 px between neighbours), against few with one depth per
    dead leaf."""
    from scipy import ndimage

    from optics.render.pixel4_raw import synthesize_pixel4_raw

    def far_share(scene):
        coc = scene.coc
        jumps = (np.abs(np.diff(coc, axis=0, prepend=coc[:1])) > 0.5) | (
            np.abs(np.diff(coc, axis=1, prepend=coc[:, :1])) > 0.5)
        return float((ndimage.distance_transform_edt(~jumps) >= 24).mean())

    smooth = [far_share(synthesize_pixel4_raw(np.random.default_rng(i), (336, 336), depth_model="smooth"))
              for i in range(4)]
    leaves = [far_share(synthesize_pixel4_raw(np.random.default_rng(i), (336, 336))) for i in range(4)]
    # measured: 0.60-0.86 against 0.00-0.21 on these seeds
    assert np.mean(smooth) > 0.5 and np.mean(leaves) < 0.25 and min(smooth) > max(leaves)
    ds = build_dataset("synthetic:sensor=pixel4,size=48,count=1,depth=smooth", "train")
    assert ds.depth == "smooth" and ds.load(0)["left"].shape == (48, 48, 3)
