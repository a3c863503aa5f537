r"""DPRefine: a small network that refines the training-free dual-pixel deblurring.

Not a paper's network: the "physics refinement" candidate of the toolkit's real-capture study
(``docs/pixel4_training.md``). :func:`optics.dual_pixel.deblur.dual_pixel_deblur` inverts the layered
dual-pixel image formation of K3DN (Eq. 1-2) with the calibrated PSFs and a per-pixel defocus
map; what it leaves (ringing at depth edges, noise amplified by the Wiener filter, the spill of
occlusions, errors of the map) is local and depends on the image, the views and the map. This
network sees exactly those and predicts a correction of the physics estimate:

.. math:: \hat x = P + s \, f_\theta\!\left(\frac{L}{s}, \frac{R}{s}, \frac{P}{s}, \frac{L - R}{s}, D\right),
          \qquad s = \max\!\left(\overline{(L + R) / 2},\ 10^{-3}\right)

with ``P`` the physics estimate, ``D`` its signed defocus map (multiples of the calibration
CoC), ``s`` the image's mean level (so the correction is the same at every exposure: the real
raw frames' levels differ by 4x) and ``f`` a two-level U-Net whose last convolution starts at
zero, so an untrained network returns the physics estimate exactly (the identity start of
:mod:`learned.models.warmstart`, built in).

References
----------
.. [1] Y. Mao, K. Ji, K. Wang et al., "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel
   Defocus Deblurring", CVPR 2023, Eq. 1-2 (``../shared/papers/002_*``).
.. [2] S. Xin, N. Wadhwa, T. Xue et al., "Defocus Map Estimation and Deblurring from a Single
   Dual-Pixel Image", ICCV 2021 (the calibrated kernels and the data).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inference._padding import check_input, crop_to, pad_to_multiple

__all__ = ["DPRefine"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1))


class DPRefine(nn.Module):
    """Refine a physics estimate from the dual-pixel views and its defocus map (module docstring).

    Parameters
    ----------
    channels : int
        Width of the first level (doubled per level).
    levels : int
        Number of resolution levels of the U-Net (>= 1); inputs are padded (replicate) to a
        multiple of ``2 ** (levels - 1)`` and the output cropped back.

    Inputs are (B, 3, H, W) ``left``, ``right``, ``physics`` (linear, raw planes replicated as
    the ``pixeldp`` reader gives them, or colour) and ``defocus`` (B, 1, H, W).
    """

    min_size = 1
    physics_input = True

    def __init__(self, channels: int = 16, levels: int = 3) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer; got {channels!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive integer; got {levels!r}")
        self.channels, self.levels = channels, levels
        self.multiple = 2 ** (levels - 1)
        widths = [channels * 2 ** i for i in range(levels)]
        self.encoders = nn.ModuleList()
        cin = 3 * 4 + 1
        for w in widths:
            self.encoders.append(_block(cin, w))
            cin = w
        self.decoders = nn.ModuleList()
        for w_low, w in zip(widths[::-1][:-1], widths[::-1][1:]):
            self.decoders.append(nn.ModuleDict({"up": nn.ConvTranspose2d(w_low, w, 2, stride=2),
                                                "block": _block(2 * w, w)}))
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, left: torch.Tensor, right: torch.Tensor, physics: torch.Tensor,
                defocus: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) refined estimate; not clipped (the evaluation clips every row)."""
        for x, name in ((left, "left"), (right, "right"), (physics, "physics")):
            check_input(x, name, 3, self.min_size)
        check_input(defocus, "defocus", 1, self.min_size)
        if len({tuple(left.shape[-2:]), tuple(right.shape[-2:]), tuple(physics.shape[-2:]),
                tuple(defocus.shape[-2:])}) != 1 or len({t.shape[0] for t in (left, right, physics, defocus)}) != 1:
            raise ValueError(f"left, right, physics and defocus must share batch and size; got "
                             f"{[tuple(t.shape) for t in (left, right, physics, defocus)]}")
        level = (0.5 * (left + right)).mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        x = torch.cat([left / level, right / level, physics / level, (left - right) / level,
                       defocus.to(left.dtype)], 1)
        x, size = pad_to_multiple(x, self.multiple, "replicate")
        skips = []
        for i, enc in enumerate(self.encoders):
            if i:
                x = F.avg_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        for dec, skip in zip(self.decoders, skips[::-1][1:]):
            x = dec["block"](torch.cat([dec["up"](x), skip], 1))
        return physics + level * crop_to(self.head(x), size)


