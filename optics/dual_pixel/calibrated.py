r"""A calibrated, field-varying dual-pixel PSF model that can be fitted to measured kernels.

The two models of :func:`optics.dual_pixel_psfs` are exactly mirror-symmetric
(``right == left[:, ::-1]``), as K3DN's Eq. 1-2 assume. Measured dual-pixel kernels are not
(Xin et al., ICCV 2021, Pixel 4 calibration): each view is a whole disc with a *smooth* split,
the rim is brighter on one side, the discs are slightly elliptical off-axis and the left/right
balance changes across the field. This module models each view as

.. math:: K_v(\mathbf x) \propto E(\rho)\, P(\rho_n)\, S_v(\mathbf p)\, T_v(\mathbf p),
          \qquad v \in \{L, R\}

on normalised pupil coordinates :math:`\mathbf p = M (\mathbf x - \mathbf x_0) / r`
(:math:`r = |c|` the CoC radius, :math:`\mathbf x_0 = r\,(s_x, s_y)` a sub-pixel shift,
:math:`M` a symmetric ellipse matrix),
:math:`\rho = r |\mathbf p|` and :math:`\rho_n = |\mathbf p|`:

* :math:`E(\rho)`: a soft disc edge, a raised cosine from 1 at :math:`\rho = r - w` to 0 at
  :math:`\rho = r + w`, :math:`w = \sqrt{(e\,r)^2 + 1/4}` pixels (never narrower than half a
  pixel, so point sampling does not alias; compact support, so the kernel size never changes a
  value);
* :math:`P(\rho_n) = \beta + (1 - \beta)\,\rho_n^{2k}`: the rim-to-centre profile (Abuolaim et
  al.'s Butterworth rim, without its kernel-size dependent normalisation);
* :math:`S_L = \sigma\big((\mathbf p \cdot \mathbf d_\theta - o) / \tau\big)`,
  :math:`S_R = 1 - S_L`: the sub-aperture split, a logistic across the pupil in direction
  :math:`\theta`, offset :math:`o`, softness :math:`\tau` (the L/(L+R) ratio runs smoothly
  across the disc, as measured);
* :math:`T_v = \exp(\mathbf t_v \cdot \mathbf p)`: a per-view intensity tilt across the pupil
  (the per-view imbalance; vignetting of the sub-apertures off-axis).

Each view is normalised to unit sum. All shape parameters are dimensionless (relative to the
radius), so a kernel at CoC :math:`c` is the calibrated one scaled by :math:`|c| / r`, as Xin et
al. rescale their calibrated kernels to other depths (their ``code/util.py``). For :math:`c < 0`
(in front of the focal plane) each view is point-reflected, :math:`K_v(\mathbf x; -|c|) =
K_v(-\mathbf x; |c|)`, the image of the aperture being inverted on the other side of focus (their
rescaling with a negative scale flips both axes). With :math:`\theta = o = 0`,
:math:`\mathbf t_R = (-t_x, t_y)` for :math:`\mathbf t_L = (t_x, t_y)`, no vertical shift and an
ellipse without a diagonal term, ``right == left[:, ::-1]`` as in K3DN Eq. 1 (to rounding).

Every value is a continuous function of every parameter and of :math:`c` (no dependence on the
integer kernel size: the support is computed, values outside it are exactly zero), so fits do
not get stuck at half-integer radii, unlike the Butterworth model, whose split ramp spans the
integer kernel half-size. At :math:`c = 0` the kernel is the 1x1 delta.

References
----------
.. [1] S. Xin, N. Wadhwa, T. Xue, J. T. Barron, P. P. Srinivasan, J. Chen, I. Gkioulekas,
   R. Garg, "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image", ICCV 2021
   (calibrated Pixel 4 kernels, ``DP_data_pixel_4/calibration``).
.. [2] A. Abuolaim, M. Delbracio, D. Kelly, M. S. Brown, P. Milanfar, "Learning to Reduce Defocus
   Blur by Realistically Modeling Dual-Pixel Data", ICCV 2021 (Butterworth DP-PSF model).
.. [3] A. Punnappurath, A. Abuolaim, M. Afifi, M. S. Brown, "Modeling Defocus-Disparity in
   Dual-Pixel Sensors", ICCP 2020.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .base import DualPixelPSFs, _check_coc, _check_dtype

__all__ = ["CalibratedDPParams", "calibrated_dual_pixel_psfs", "calibrated_half_size", "PARAM_BOUNDS"]

#: Lower and upper bound of every parameter of :class:`CalibratedDPParams` (used by the checks
#: and by the fits).
PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "edge": (0.0, 0.5),
    "rim_beta": (0.02, 1.0),
    "rim_power": (0.25, 8.0),
    "split_angle": (-math.pi / 2, math.pi / 2),
    "split_offset": (-0.9, 0.9),
    "split_softness": (0.02, 2.0),
    "tilt_left_x": (-6.0, 6.0),
    "tilt_left_y": (-6.0, 6.0),
    "tilt_right_x": (-6.0, 6.0),
    "tilt_right_y": (-6.0, 6.0),
    "shift_x": (-0.5, 0.5),
    "shift_y": (-0.5, 0.5),
    "ellipse_c": (-0.4, 0.4),
    "ellipse_s": (-0.4, 0.4),
}


@dataclass(frozen=True)
class CalibratedDPParams:
    r"""Dimensionless shape parameters of the calibrated dual-pixel model (see the module notes).

    Attributes
    ----------
    edge : float in [0, 0.5]
        Half-width of the soft disc edge relative to the radius, :math:`e` (width
        :math:`\sqrt{(e r)^2 + 1/4}` px).
    rim_beta : float in [0.02, 1]
        Centre intensity relative to the rim, :math:`\beta` (1: flat disc).
    rim_power : float in [0.25, 8]
        Exponent :math:`k` of the rim profile :math:`\beta + (1 - \beta) \rho_n^{2k}`.
    split_angle : float in [-pi/2, pi/2]
        Direction :math:`\theta` of the split (0: left/right along x; the left view is on the
        ``+x`` side for ``c > 0``, as :func:`optics.dual_pixel_psfs`).
    split_offset : float in [-0.9, 0.9]
        Position :math:`o` of the split line across the pupil (0: through the centre).
    split_softness : float in [0.02, 2]
        Width :math:`\tau` of the logistic split (small: the half disc's hard cut).
    tilt_left_x, tilt_left_y, tilt_right_x, tilt_right_y : float in [-6, 6]
        Per-view intensity tilt :math:`\mathbf t_v` across the pupil.
    shift_x, shift_y : float in [-0.5, 0.5]
        Sub-pixel shift of the pair relative to the radius (pixels / r).
    ellipse_c, ellipse_s : float in [-0.4, 0.4]
        Ellipticity :math:`(e_1, e_2)`: the pupil coordinates are
        :math:`\mathbf p = M (\mathbf x - \mathbf x_0) / r` with
        :math:`M = [[1 + e_1, e_2], [e_2, 1 - e_1]]` (0, 0: a circle; no wrap-around of an
        angle, so the field polynomials stay smooth).
    """

    edge: float = 0.08
    rim_beta: float = 0.4
    rim_power: float = 1.0
    split_angle: float = 0.0
    split_offset: float = 0.0
    split_softness: float = 0.25
    tilt_left_x: float = 0.0
    tilt_left_y: float = 0.0
    tilt_right_x: float = 0.0
    tilt_right_y: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    ellipse_c: float = 0.0
    ellipse_s: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{f.name} must be a real number; got {v!r} of type {type(v).__name__}")
            lo, hi = PARAM_BOUNDS[f.name]
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"{f.name} must lie in [{lo:g}, {hi:g}]; got {v}")
            object.__setattr__(self, f.name, float(v))

    def as_vector(self) -> np.ndarray:
        """The parameters in field order as a float64 vector."""
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)

    @classmethod
    def from_vector(cls, vector) -> "CalibratedDPParams":
        """Inverse of :meth:`as_vector` (values are checked against :data:`PARAM_BOUNDS`)."""
        names = cls.names()
        v = np.asarray(vector, dtype=np.float64).ravel()
        if v.shape != (len(names),):
            raise ValueError(f"vector must have {len(names)} entries ({', '.join(names)}); got shape {v.shape}")
        return cls(**{n: float(x) for n, x in zip(names, v)})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def mirrored(self) -> "CalibratedDPParams":
        """The parameters of the mirror image about the vertical axis with the views swapped.

        ``calibrated_dual_pixel_psfs(c, p.mirrored())`` is ``(right[:, ::-1], left[:, ::-1])``
        of ``calibrated_dual_pixel_psfs(c, p)``; a parameter set equal to its mirror gives a
        mirror-symmetric pair.
        """
        d = asdict(self)
        d.update(
            split_angle=-self.split_angle,
            split_offset=-self.split_offset,
            tilt_left_x=-self.tilt_right_x,
            tilt_left_y=self.tilt_right_y,
            tilt_right_x=-self.tilt_left_x,
            tilt_right_y=self.tilt_left_y,
            shift_x=-self.shift_x,
            ellipse_s=-self.ellipse_s,
        )
        return CalibratedDPParams(**d)


def _edge_width(r: float, edge: float) -> float:
    return math.sqrt((edge * r) ** 2 + 0.25)


def calibrated_half_size(coc_radius: float, params: CalibratedDPParams | None = None) -> int:
    """Half side ``h`` of the smallest kernel (side ``2 h + 1``) holding the whole calibrated PSF."""
    p = params if params is not None else CalibratedDPParams()
    r = abs(_check_coc(coc_radius))
    if r == 0.0:
        return 0
    # the support is rho < r + w on the un-stretched, un-shifted grid
    reach = (r + _edge_width(r, p.edge)) / (1.0 - math.hypot(p.ellipse_c, p.ellipse_s)) + r * math.hypot(p.shift_x, p.shift_y)
    return max(math.ceil(reach) - 1, 0)


def _views_float64(r: float, p: CalibratedDPParams, half: int, sign: float):
    """Unnormalised left and right views of radius ``r > 0`` on a ``2 half + 1`` grid, float64."""
    x = np.arange(-half, half + 1, dtype=np.float64)
    X, Y = np.meshgrid(x, x)
    if sign < 0:  # in front of the focal plane: the image of the aperture is point-reflected
        X, Y = -X, -Y
    X = X - p.shift_x * r
    Y = Y - p.shift_y * r
    U = ((1.0 + p.ellipse_c) * X + p.ellipse_s * Y) / r
    V = (p.ellipse_s * X + (1.0 - p.ellipse_c) * Y) / r
    rho_n = np.hypot(U, V)
    w = _edge_width(r, p.edge)
    t = np.clip((rho_n * r - r) / w, -1.0, 1.0)
    edge = 0.5 * (1.0 - np.sin(0.5 * math.pi * t))
    profile = edge * (p.rim_beta + (1.0 - p.rim_beta) * rho_n ** (2.0 * p.rim_power))
    z = (U * math.cos(p.split_angle) + V * math.sin(p.split_angle) - p.split_offset) / p.split_softness
    s_left = 0.5 * (1.0 + np.tanh(0.5 * z))  # logistic, overflow-free
    left = profile * s_left * np.exp(p.tilt_left_x * U + p.tilt_left_y * V)
    right = profile * (1.0 - s_left) * np.exp(p.tilt_right_x * U + p.tilt_right_y * V)
    return left, right


def calibrated_dual_pixel_psfs(
    coc_radius: float,
    params: CalibratedDPParams | None = None,
    *,
    size: int | None = None,
    dtype: Any = np.float64,
) -> DualPixelPSFs:
    r"""Left and right PSFs of the calibrated dual-pixel model for a signed CoC radius.

    Parameters
    ----------
    coc_radius : float
        Signed CoC radius in pixels (positive behind the focal plane); the disc radius is
        ``|coc_radius|`` (times the ellipse), a negative sign point-reflects both views.
    params : CalibratedDPParams, optional
        Shape parameters (default: a soft, symmetric disc with a logistic split).
    size : odd int, optional
        Side of the kernels; default the smallest that holds the support
        (:func:`calibrated_half_size`). A smaller one raises ``ValueError``.
    dtype : float32 or float64

    Returns
    -------
    DualPixelPSFs
        ``(left, right)``, each ``(size, size)`` and of unit sum; ``.full`` their average.

    Notes
    -----
    .. math:: K_v(\mathbf x) = \frac{E(\rho) P(\rho_n) S_v(\mathbf p) T_v(\mathbf p)}
              {\sum_{\mathbf x} E P S_v T_v}

    with the terms of the module notes. Unlike the mirror-symmetric models, ``(left + right) / 2``
    is the average of two separately normalised views (the views may carry different shares of
    the full aperture).

    References
    ----------
    .. [1] S. Xin et al., ICCV 2021; A. Abuolaim et al., ICCV 2021; A. Punnappurath et al.,
       ICCP 2020 (see the module docstring).
    """
    c = _check_coc(coc_radius)
    dt = _check_dtype(dtype)
    p = CalibratedDPParams() if params is None else params
    if not isinstance(p, CalibratedDPParams):
        raise TypeError(f"params must be a CalibratedDPParams; got {type(p).__name__}")
    need = calibrated_half_size(c, p)
    if size is None:
        half = need
    else:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"size must be an odd integer or None; got {size!r} of type {type(size).__name__}")
        if size % 2 == 0 or size < 2 * need + 1:
            raise ValueError(f"size must be odd and >= {2 * need + 1} (the support of CoC radius {c}); got {size}")
        half = (int(size) - 1) // 2
    r = abs(c)
    if need == 0:  # only the centre pixel is reached
        delta = np.zeros((2 * half + 1, 2 * half + 1), dtype=dt)
        delta[half, half] = 1
        return DualPixelPSFs(delta, delta.copy())
    left, right = _views_float64(r, p, half, math.copysign(1.0, c))
    return DualPixelPSFs((left / left.sum()).astype(dt), (right / right.sum()).astype(dt))
