"""``synthetic:psf=calibrated``: training data rendered with the fitted Pixel 4 dual-pixel field."""

from __future__ import annotations

import numpy as np
import pytest

from learned.data import build_dataset


def test_synthetic_calibrated_spec_renders_dual_pixel_views():
    ds = build_dataset("synthetic:size=48,count=2,psf=calibrated,max_coc=4", "train", seed=0)
    sample = ds.load(0)
    for key in ("input", "target", "left", "right"):
        assert sample[key].shape == (48, 48, 3) and sample[key].dtype == np.float32
    assert np.abs(sample["left"] - sample["right"]).max() > 1e-3


def test_synthetic_bad_psf_is_refused_at_construction():
    with pytest.raises(ValueError, match="psf"):
        build_dataset("synthetic:psf=gauss", "train")
