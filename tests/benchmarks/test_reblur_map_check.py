"""benchmarks.reblur_map_check: the ground truth's alignment to the estimate (issue 26's diagnosis)."""

import numpy as np
from scipy import ndimage

from benchmarks.reblur_map_check import _aligned_truth


def test_aligned_truth_recovers_a_known_shift_and_gain():
    rng = np.random.default_rng(0)
    truth = ndimage.gaussian_filter(rng.random((96, 96)), 2.0)
    win = (slice(20, 70), slice(24, 74))
    estimate = 0.8 * ndimage.shift(truth, (0.5, -1.0), order=3, mode="nearest")[win]
    aligned, shift, gain = _aligned_truth(truth, estimate, win)
    assert shift == (0.5, -1.0)
    assert abs(gain - 0.8) < 1e-3
    # the spline of a window differs from the whole image's by its prefilter's reach only
    assert np.allclose(aligned, estimate, atol=1e-3)
