r"""Fitting dual-pixel PSF models to measured kernels, and the field model of a calibrated camera.

* :func:`fit_dual_pixel_psfs` fits one measured left/right pair with any model of
  :func:`optics.dual_pixel_psfs` (``'half_disc'``, ``'butterworth'``) or the calibrated model of
  :func:`optics.calibrated_dual_pixel_psfs` (default).
* :func:`fit_dual_pixel_field` fits a :class:`DualPixelField`: every calibrated-model parameter
  (and the radius) as a low-order polynomial in the normalised image position, so that one fitted
  camera gives the PSF pair at any pixel and any defocus.

Errors are those of the pair jointly,

.. math:: e_2 = \frac{\|(\hat K_L, \hat K_R) - (K_L, K_R)\|_2}{\|(K_L, K_R)\|_2}, \qquad
          e_1 = \frac{\|(\hat K_L, \hat K_R) - (K_L, K_R)\|_1}{\|(K_L, K_R)\|_1},

after the best common gain :math:`g = \langle \hat K, K \rangle / \langle \hat K, \hat K \rangle`
(closed form, "scale free"). Fits use :func:`scipy.optimize.least_squares` with bounds.

References
----------
.. [1] S. Xin et al., "Defocus Map Estimation and Deblurring from a Single Dual-Pixel Image",
   ICCV 2021 (the Pixel 4 calibration these fits were developed on).
.. [2] A. Abuolaim et al., "Learning to Reduce Defocus Blur by Realistically Modeling Dual-Pixel
   Data", ICCV 2021.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .calibrated import PARAM_BOUNDS, CalibratedDPParams, calibrated_dual_pixel_psfs, calibrated_half_size
from .base import DualPixelPSFs, _check_coc, _check_dtype
from .models import DP_MODELS, dual_pixel_psfs, psf_half_size


def least_squares(*args, **kwargs):
    """:func:`scipy.optimize.least_squares`, imported at the first fit (scipy.optimize takes 0.2-0.4 s to import,
    and the deblurring command uses :class:`DualPixelField` without fitting)."""
    from scipy.optimize import least_squares as solve

    return solve(*args, **kwargs)

__all__ = [
    "DPFit",
    "DPFieldFit",
    "DualPixelField",
    "fit_dual_pixel_psfs",
    "fit_dual_pixel_field",
    "score_dual_pixel_field",
    "FIT_MODELS",
    "BUTTERWORTH_PAPER_GRID",
]

#: Models accepted by :func:`fit_dual_pixel_psfs`.
FIT_MODELS = ("calibrated",) + DP_MODELS

#: Abuolaim et al.'s sampled Butterworth settings: (order, cutoff_factor, beta), kappa = 1/7.
BUTTERWORTH_PAPER_GRID = tuple((n, cf, b) for n in (3, 6, 9) for cf in (2.5, 2.0) for b in (0.1, 0.2))

_RADIUS_BOUNDS = (0.5, 60.0)
_SHAPE_NAMES = CalibratedDPParams.names()


# ------------------------------------------------------------------------------------------ helpers
def _check_pair(left: Any, right: Any) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, k in (("left", left), ("right", right)):
        if not isinstance(k, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array (a measured kernel); got {type(k).__name__}")
        if k.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must have dtype float32 or float64; got {k.dtype}")
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or k.shape[0] < 5:
            raise ValueError(f"{name} must be a square kernel with an odd side >= 5; got shape {k.shape}")
        if not np.all(np.isfinite(k)):
            raise ValueError(f"{name} must contain only finite values")
        if not float(k.sum()) > 0:
            raise ValueError(f"{name} must have a positive sum; got {float(k.sum())}")
        out.append(k.astype(np.float64))
    if out[0].shape != out[1].shape:
        raise ValueError(f"left and right must have the same shape; got {out[0].shape} and {out[1].shape}")
    return out[0], out[1]


def _gain_and_errors(pred_l, pred_r, m_l, m_r) -> tuple[float, float, float]:
    """Best common gain and the relative L1 / L2 errors of the pair after it."""
    p = np.concatenate([pred_l.ravel(), pred_r.ravel()])
    m = np.concatenate([m_l.ravel(), m_r.ravel()])
    pp = float(p @ p)
    g = float(p @ m) / pp if pp > 0 else 0.0
    d = g * p - m
    return g, float(np.abs(d).sum() / np.abs(m).sum()), float(np.linalg.norm(d) / np.linalg.norm(m))


def _centroid(k: np.ndarray) -> tuple[float, float]:
    h = k.shape[0] // 2
    x = np.arange(-h, h + 1, dtype=np.float64)
    s = k.sum()
    return float((k.sum(axis=0) * x).sum() / s), float((k.sum(axis=1) * x).sum() / s)


def _sign_of_pair(m_l: np.ndarray, m_r: np.ndarray) -> float:
    """+1 where the left view lies right of the right view (c > 0 in this toolkit), else -1."""
    return 1.0 if _centroid(m_l)[0] >= _centroid(m_r)[0] else -1.0


def _radius_guess(m_l: np.ndarray, m_r: np.ndarray) -> float:
    """Radius of the uniform disc with the second moment of (L + R) / 2 (E rho^2 = r^2 / 2)."""
    full = (m_l / m_l.sum() + m_r / m_r.sum()) / 2
    cx, cy = _centroid(full)
    h = full.shape[0] // 2
    x = np.arange(-h, h + 1, dtype=np.float64)
    var = float((full.sum(axis=0) * (x - cx) ** 2).sum() + (full.sum(axis=1) * (x - cy) ** 2).sum())
    return float(np.clip(math.sqrt(2.0 * var), *_RADIUS_BOUNDS))


def _crop_centre(k: np.ndarray, n: int) -> np.ndarray:
    h0, h = k.shape[0] // 2, n // 2
    if h0 <= h:
        out = np.zeros((n, n), dtype=k.dtype)
        out[h - h0 : h + h0 + 1, h - h0 : h + h0 + 1] = k
        return out
    return k[h0 - h : h0 + h + 1, h0 - h : h0 + h + 1]


def _calibrated_on(c: float, p: CalibratedDPParams, n: int) -> tuple[np.ndarray, np.ndarray]:
    half = max(calibrated_half_size(c, p), n // 2)
    k = calibrated_dual_pixel_psfs(c, p, size=2 * half + 1)
    return _crop_centre(k.left, n), _crop_centre(k.right, n)


def _clip_vector(v: np.ndarray) -> np.ndarray:
    lo = np.array([PARAM_BOUNDS[n][0] for n in _SHAPE_NAMES])
    hi = np.array([PARAM_BOUNDS[n][1] for n in _SHAPE_NAMES])
    return np.clip(v, lo, hi)


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class DPFit:
    """Result of :func:`fit_dual_pixel_psfs`.

    Attributes
    ----------
    model : str
        ``'calibrated'``, ``'half_disc'`` or ``'butterworth'``.
    left, right : ndarray, shape of the measured kernels
        The fitted pair (gain applied) on the measured kernels' grid.
    params : dict
        Every fitted value: ``coc_radius`` (signed, pixels), ``gain`` and, for the calibrated
        model, its shape parameters (:class:`optics.CalibratedDPParams` fields); for the
        symmetric models the sub-pixel ``shift_x``, ``shift_y`` (pixels) and the model's options.
    rel_l1, rel_l2 : float
        Relative L1 / L2 error of the pair jointly (see the module notes).
    """

    model: str
    left: np.ndarray
    right: np.ndarray
    params: dict
    rel_l1: float
    rel_l2: float

    @property
    def calibrated(self) -> CalibratedDPParams:
        """The shape parameters of a calibrated-model fit."""
        if self.model != "calibrated":
            raise AttributeError(f"calibrated parameters exist for model 'calibrated' only; this fit is {self.model!r}")
        return CalibratedDPParams(**{n: self.params[n] for n in _SHAPE_NAMES})


# ------------------------------------------------------------------------------------------ single-pair fits
def _fit_calibrated(m_l, m_r, starts: int) -> DPFit:
    n = m_l.shape[0]
    sign = _sign_of_pair(m_l, m_r)
    r0 = _radius_guess(m_l, m_r)
    cx, cy = _centroid((m_l / m_l.sum() + m_r / m_r.sum()) / 2)
    # shifts are applied before the point reflection of c < 0
    base = CalibratedDPParams(
        shift_x=float(np.clip(sign * cx / r0, -0.5, 0.5)), shift_y=float(np.clip(sign * cy / r0, -0.5, 0.5))
    )
    lo = np.array([_RADIUS_BOUNDS[0]] + [PARAM_BOUNDS[k][0] for k in _SHAPE_NAMES])
    hi = np.array([_RADIUS_BOUNDS[1]] + [PARAM_BOUNDS[k][1] for k in _SHAPE_NAMES])
    m = np.concatenate([m_l.ravel(), m_r.ravel()])

    def residual(v):
        pl, pr = _calibrated_on(sign * v[0], CalibratedDPParams.from_vector(v[1:]), n)
        p = np.concatenate([pl.ravel(), pr.ravel()])
        pp = float(p @ p)
        return (float(p @ m) / pp if pp > 0 else 0.0) * p - m

    inits = [(0.15, 0.7), (0.5, 2.0), (0.15, 2.0), (0.5, 0.7)][: max(1, int(starts))]
    best = None
    for softness, power in inits:
        v0 = np.concatenate([[r0], base.as_vector()])
        v0[1 + _SHAPE_NAMES.index("split_softness")] = softness
        v0[1 + _SHAPE_NAMES.index("rim_power")] = power
        sol = least_squares(residual, np.clip(v0, lo, hi), bounds=(lo, hi), x_scale="jac", max_nfev=400)
        if best is None or sol.cost < best.cost:
            best = sol
    p = CalibratedDPParams.from_vector(best.x[1:])
    pl, pr = _calibrated_on(sign * float(best.x[0]), p, n)
    g, e1, e2 = _gain_and_errors(pl, pr, m_l, m_r)
    params = dict(coc_radius=sign * float(best.x[0]), gain=g, **{k: getattr(p, k) for k in _SHAPE_NAMES})
    return DPFit("calibrated", g * pl, g * pr, params, e1, e2)


def _symmetric_on(model: str, c: float, opts: dict, sx: float, sy: float, n: int):
    from scipy.ndimage import shift as nd_shift

    half = max(psf_half_size(c, model, kappa=opts.get("kappa", 1.0 / 7.0)), n // 2)
    k = dual_pixel_psfs(c, model, size=2 * half + 1, **opts)
    out = []
    for view in (k.left, k.right):
        view = _crop_centre(view, n)
        out.append(nd_shift(view, (sy, sx), order=3, mode="constant") if (sx or sy) else view)
    return out[0], out[1]


def _fit_symmetric(m_l, m_r, model: str, settings: str) -> DPFit:
    n = m_l.shape[0]
    sign = _sign_of_pair(m_l, m_r)
    r0 = _radius_guess(m_l, m_r)
    sx0, sy0 = _centroid((m_l / m_l.sum() + m_r / m_r.sum()) / 2)
    if model == "half_disc":
        candidates = [dict()]
        free: tuple[str, ...] = ()
    elif settings == "paper":
        candidates = [dict(order=o, cutoff_factor=cf, beta=b) for o, cf, b in BUTTERWORTH_PAPER_GRID]
        free = ()
    else:
        candidates = [dict(order=o) for o in range(1, 10)]
        free = ("beta", "cutoff_factor", "kappa")
    free_bounds = dict(beta=(0.0, 1.0), cutoff_factor=(0.5, 10.0), kappa=(0.01, 1.0))
    free_init = dict(beta=0.1, cutoff_factor=2.5, kappa=1.0 / 7.0)

    def err(opts, c, sx, sy):
        pl, pr = _symmetric_on(model, c, opts, sx, sy, n)
        return _gain_and_errors(pl, pr, m_l, m_r)[2]

    # stage 1: grid over the radius with the centroid's shift, every candidate setting
    radii = np.arange(max(0.6 * r0, 1.0), 1.4 * r0 + 0.25, 0.25)
    ranked = []
    for opts in candidates:
        e, r = min((err(opts, sign * r, sx0, sy0), r) for r in radii)
        ranked.append((e, r, opts))
    ranked.sort(key=lambda t: t[0])
    # stage 2: least squares over radius, shift (and the free settings) from the best few
    m = np.concatenate([m_l.ravel(), m_r.ravel()])
    best = None
    for _, r, opts in ranked[: 1 if not free and model == "half_disc" else (2 if not free else 3)]:
        lo = [_RADIUS_BOUNDS[0], sx0 - 3.0, sy0 - 3.0] + [free_bounds[k][0] for k in free]
        hi = [_RADIUS_BOUNDS[1], sx0 + 3.0, sy0 + 3.0] + [free_bounds[k][1] for k in free]

        def unpack(v, opts=opts):
            o = dict(opts)
            o.update({k: float(x) for k, x in zip(free, v[3:])})
            return o

        def residual(v, unpack=unpack):
            pl, pr = _symmetric_on(model, sign * v[0], unpack(v), v[1], v[2], n)
            p = np.concatenate([pl.ravel(), pr.ravel()])
            return (float(p @ m) / float(p @ p)) * p - m

        v0 = np.clip([r, sx0, sy0] + [free_init[k] for k in free], lo, hi)
        sol = least_squares(residual, v0, bounds=(lo, hi), diff_step=1e-2, max_nfev=80)
        if best is None or sol.cost < best[0].cost:
            best = (sol, unpack(sol.x))
    sol, opts = best
    c, sx, sy = sign * float(sol.x[0]), float(sol.x[1]), float(sol.x[2])
    pl, pr = _symmetric_on(model, c, opts, sx, sy, n)
    g, e1, e2 = _gain_and_errors(pl, pr, m_l, m_r)
    params = dict(coc_radius=c, gain=g, shift_x=sx, shift_y=sy, **opts)
    return DPFit(model, g * pl, g * pr, params, e1, e2)


def fit_dual_pixel_psfs(
    left: np.ndarray, right: np.ndarray, model: str = "calibrated", *, settings: str = "free", starts: int = 2
) -> DPFit:
    r"""Fit a dual-pixel PSF model to one measured left/right kernel pair.

    Parameters
    ----------
    left, right : ndarray, shape (n, n), n odd >= 5, float32 or float64
        Measured kernels (non-negative, any positive sum), origin at the centre pixel.
    model : {'calibrated', 'half_disc', 'butterworth'}
        ``'calibrated'``: :func:`optics.calibrated_dual_pixel_psfs` (signed radius and every
        shape parameter free). ``'half_disc'`` / ``'butterworth'``:
        :func:`optics.dual_pixel_psfs` with the signed radius and a sub-pixel shift free.
    settings : {'free', 'paper'}
        ``'butterworth'`` only: ``'paper'`` picks the best of Abuolaim et al.'s sampled settings
        (:data:`BUTTERWORTH_PAPER_GRID`, kappa 1/7); ``'free'`` fits beta, cut-off factor and
        kappa continuously for the best orders 1-9.
    starts : int >= 1
        ``'calibrated'`` only: number of starting points (split softness, rim power) tried.

    Returns
    -------
    DPFit
        ``.left``, ``.right`` (fitted pair on the measured grid), ``.params``, ``.rel_l1``,
        ``.rel_l2``.

    Notes
    -----
    The sign of the CoC comes from the order of the views' centroids (``c > 0``: the left view
    lies right of the right view, the toolkit's convention). The symmetric models are fitted in
    two stages, a grid over the radius (their kernels jump where the radius crosses a
    half-integer, so local derivatives cannot be trusted) and then bounded least squares with
    finite differences of 1 % from the best grid points. Sub-pixel shifts of the symmetric
    models use cubic-spline interpolation (:func:`scipy.ndimage.shift`).
    """
    m_l, m_r = _check_pair(left, right)
    if model not in FIT_MODELS:
        raise ValueError(f"model must be one of {FIT_MODELS}; got {model!r}")
    if settings not in ("free", "paper"):
        raise ValueError(f"settings must be 'free' or 'paper'; got {settings!r}")
    if isinstance(starts, bool) or not isinstance(starts, numbers.Integral) or not 1 <= starts <= 4:
        raise ValueError(f"starts must be an integer in [1, 4]; got {starts!r}")
    if model == "calibrated":
        return _fit_calibrated(m_l, m_r, int(starts))
    return _fit_symmetric(m_l, m_r, model, settings)


# ------------------------------------------------------------------------------------------ field model
def _monomials(X: np.ndarray, Y: np.ndarray, degree: int) -> np.ndarray:
    """(N, T) design matrix of X^a Y^b, a + b <= degree, in graded order (1, X, Y, X^2, XY, Y^2, ...)."""
    cols = [X**(d - b) * Y**b for d in range(degree + 1) for b in range(d + 1)]
    return np.stack(cols, axis=-1)


@dataclass(frozen=True)
class DualPixelField:
    r"""A calibrated dual-pixel camera: the calibrated model's parameters across the image.

    Attributes
    ----------
    coefficients : ndarray, shape (1 + P, T)
        Polynomial coefficients of the calibration radius (row 0, pixels) and of the P shape
        parameters (rows in :meth:`CalibratedDPParams.names` order) in the T monomials
        :math:`X^a Y^b`, :math:`a + b \le` ``degree`` (graded order 1, X, Y, X^2, XY, Y^2, ...).
    degree : int
    image_shape : (H, W)
        Size in pixels of the calibrated frame; pixel ``(x, y)`` (column, row) has normalised
        position :math:`X = (x - (W - 1)/2) / (W/2)`, :math:`Y = (y - (H - 1)/2) / (H/2)`.
    calibration_sign : {+1, -1}
        Sign of the CoC at which the kernels were measured.

    Notes
    -----
    At pixel :math:`(x, y)` and signed CoC :math:`c` the PSF pair is
    ``calibrated_dual_pixel_psfs(c * r(X, Y) / r(0, 0), params(X, Y))``: the CoC names the radius
    at the image centre and the field scales it by the calibrated ratio (lens field curvature,
    vignetting); every other parameter is dimensionless, so the kernel is the calibrated one
    rescaled, as Xin et al. rescale their kernels to other depths. Shape parameters are clipped
    to :data:`optics.dual_pixel.calibrated.PARAM_BOUNDS` (continuous) where a polynomial leaves them.
    ``psfs(calibration_coc, x, y)`` reproduces the calibration.
    """

    coefficients: np.ndarray
    degree: int
    image_shape: tuple[int, int]
    calibration_sign: float = 1.0

    def __post_init__(self):
        c = np.asarray(self.coefficients, dtype=np.float64)
        d = self.degree
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"degree must be an integer >= 0; got {d!r}")
        t = (d + 1) * (d + 2) // 2
        if c.shape != (1 + len(_SHAPE_NAMES), t):
            raise ValueError(f"coefficients must have shape {(1 + len(_SHAPE_NAMES), t)} for degree {d}; got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("coefficients must be finite")
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"image_shape must be (H, W) with H, W >= 1; got {self.image_shape!r}")
        if self.calibration_sign not in (1.0, -1.0):
            raise ValueError(f"calibration_sign must be +1 or -1; got {self.calibration_sign!r}")
        object.__setattr__(self, "coefficients", c)
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "calibration_sign", float(self.calibration_sign))

    # positions ------------------------------------------------------------------
    def normalised(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Normalised positions (X, Y) of pixel coordinates (column x, row y)."""
        H, W = self.image_shape
        return (np.asarray(x, np.float64) - (W - 1) / 2) / (W / 2), (np.asarray(y, np.float64) - (H - 1) / 2) / (H / 2)

    def _vector(self, x: float, y: float) -> np.ndarray:
        X, Y = self.normalised(x, y)
        return self.coefficients @ _monomials(np.float64(X), np.float64(Y), self.degree)

    def params_at(self, x: float, y: float) -> tuple[float, CalibratedDPParams]:
        """Calibration radius (pixels, > 0) and shape parameters at pixel (column x, row y)."""
        v = self._vector(float(x), float(y))
        return float(np.clip(v[0], *_RADIUS_BOUNDS)), CalibratedDPParams.from_vector(_clip_vector(v[1:]))

    @property
    def centre_radius(self) -> float:
        """Calibration radius at the image centre, r(0, 0) (pixels)."""
        return float(np.clip(self.coefficients[0] @ _monomials(np.float64(0), np.float64(0), self.degree), *_RADIUS_BOUNDS))

    @property
    def calibration_coc(self) -> float:
        """Signed CoC (radius at the centre) at which the kernels were measured."""
        return self.calibration_sign * self.centre_radius

    def psfs(self, coc_radius: float, x: float, y: float, *, size: int | None = None, dtype: Any = np.float64) -> DualPixelPSFs:
        """The PSF pair at pixel (column x, row y) for the signed CoC ``coc_radius`` (radius at the centre)."""
        c = _check_coc(coc_radius)
        r, p = self.params_at(x, y)
        return calibrated_dual_pixel_psfs(c * r / self.centre_radius, p, size=size, dtype=_check_dtype(dtype))

    # persistence -------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(dict(kind="optics.DualPixelField", degree=self.degree, image_shape=list(self.image_shape),
                               calibration_sign=self.calibration_sign, parameters=["radius", *_SHAPE_NAMES],
                               coefficients=self.coefficients.tolist()), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "DualPixelField":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("kind") != "optics.DualPixelField":
            raise ValueError("text is not a DualPixelField JSON document (kind 'optics.DualPixelField')")
        if d.get("parameters") != ["radius", *_SHAPE_NAMES]:
            raise ValueError(f"parameters must be {['radius', *_SHAPE_NAMES]}; got {d.get('parameters')}")
        return cls(np.array(d["coefficients"], dtype=np.float64), int(d["degree"]), tuple(d["image_shape"]),
                   float(d["calibration_sign"]))


@dataclass(frozen=True)
class DPFieldFit:
    """Result of :func:`fit_dual_pixel_field`.

    Attributes
    ----------
    field : DualPixelField
    left, right : ndarray, (N, n, n)
        The field model's pairs at the given positions (per-cell gain applied).
    rel_l1, rel_l2 : ndarray, (N,)
        Per-position relative errors of the pair jointly.
    cell_fits : list of DPFit
        The per-position calibrated fits that initialised the field.
    """

    field: DualPixelField
    left: np.ndarray
    right: np.ndarray
    rel_l1: np.ndarray
    rel_l2: np.ndarray
    cell_fits: list | None = None

    def score(self, kernels_left, kernels_right, positions) -> tuple[np.ndarray, np.ndarray]:
        """Relative L1 and L2 errors of the field at other positions (held-out kernels)."""
        return score_dual_pixel_field(self.field, kernels_left, kernels_right, positions)[2:]


def _check_stack(kernels_left, kernels_right, positions):
    kl = np.asarray(kernels_left)
    kr = np.asarray(kernels_right)
    if kl.ndim != 3 or kl.shape != kr.shape:
        raise ValueError(f"kernels_left and kernels_right must both be (N, n, n); got {kl.shape} and {kr.shape}")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (kl.shape[0], 2) or not np.all(np.isfinite(pos)):
        raise ValueError(f"positions must be a finite (N, 2) array of (x, y) pixel coordinates, N = {kl.shape[0]}; got {pos.shape}")
    pairs = [_check_pair(kl[i], kr[i]) for i in range(kl.shape[0])]
    return pairs, pos


def _field_pairs(coefs, degree, pos, field_obj, n, sign):
    X, Y = field_obj.normalised(pos[:, 0], pos[:, 1])
    V = _monomials(X, Y, degree) @ coefs.T  # (N, 1 + P)
    out = []
    for v in V:
        r = float(np.clip(v[0], *_RADIUS_BOUNDS))
        out.append(_calibrated_on(sign * r, CalibratedDPParams.from_vector(_clip_vector(v[1:])), n))
    return out


def score_dual_pixel_field(field_model: DualPixelField, kernels_left, kernels_right, positions):
    """The field's pairs at ``positions`` (gain fitted per pair) and their relative L1 / L2 errors.

    Returns ``(left, right, rel_l1, rel_l2)`` with shapes (N, n, n), (N, n, n), (N,), (N,).
    """
    pairs, pos = _check_stack(kernels_left, kernels_right, positions)
    n = pairs[0][0].shape[0]
    preds = _field_pairs(field_model.coefficients, field_model.degree, pos, field_model, n, field_model.calibration_sign)
    L, R, e1, e2 = [], [], [], []
    for (pl, pr), (m_l, m_r) in zip(preds, pairs):
        g, a, b = _gain_and_errors(pl, pr, m_l, m_r)
        L.append(g * pl)
        R.append(g * pr)
        e1.append(a)
        e2.append(b)
    return np.array(L), np.array(R), np.array(e1), np.array(e2)


def fit_dual_pixel_field(
    kernels_left,
    kernels_right,
    positions,
    image_shape: tuple[int, int],
    *,
    degree: int = 2,
    max_nfev: int = 40,
    cell_fits: list | None = None,
    smoothness: float = 1e-3,
) -> DPFieldFit:
    r"""Fit a :class:`DualPixelField` to measured kernel pairs at known image positions.

    Parameters
    ----------
    kernels_left, kernels_right : array, (N, n, n)
        Measured pairs, one per position.
    positions : array, (N, 2)
        Pixel coordinates (column x, row y) of each pair in the calibrated frame.
    image_shape : (H, W)
        The calibrated frame (normalises the positions).
    degree : int >= 0
        Polynomial degree in (X, Y); needs at least ``(degree + 1)(degree + 2) / 2`` positions.
    max_nfev : int
        Function evaluations of the joint refinement.
    cell_fits : list of DPFit, optional
        Calibrated fits of the same pairs (computed when not given).
    smoothness : float >= 0
        Weight :math:`\lambda` of a ridge penalty :math:`\lambda^2 \sum (a_{pj} / \Delta_p)^2`
        on the non-constant coefficients (:math:`\Delta_p` the width of parameter p's bounds),
        added to the kernels' squared residuals. It keeps parameters that the kernels barely
        determine (the rim exponent where the rim is flat) from swinging across the field.

    Returns
    -------
    DPFieldFit

    Notes
    -----
    1. Each pair is fitted alone (:func:`fit_dual_pixel_psfs`, calibrated model).
    2. Each parameter's polynomial is fitted to the per-pair values by linear least squares.
    3. All coefficients are refined jointly on the kernels themselves (bounded
       :func:`scipy.optimize.least_squares`, per-pair gain in closed form), which keeps
       parameters that trade off against each other (split offset against tilt) consistent
       across the field.
    The CoC sign is the majority sign of the per-pair fits.
    """
    pairs, pos = _check_stack(kernels_left, kernels_right, positions)
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0; got {degree!r}")
    T = (degree + 1) * (degree + 2) // 2
    if len(pairs) < T:
        raise ValueError(f"degree {degree} needs at least {T} kernel pairs; got {len(pairs)}")
    if cell_fits is None:
        cell_fits = [fit_dual_pixel_psfs(m_l, m_r, "calibrated") for m_l, m_r in pairs]
    elif len(cell_fits) != len(pairs) or not all(isinstance(f, DPFit) and f.model == "calibrated" for f in cell_fits):
        raise ValueError(f"cell_fits must be {len(pairs)} calibrated DPFit results, one per pair")
    signs = np.array([math.copysign(1.0, f.params["coc_radius"]) for f in cell_fits])
    sign = 1.0 if signs.sum() >= 0 else -1.0
    probe = DualPixelField(np.zeros((1 + len(_SHAPE_NAMES), T)), int(degree), tuple(image_shape), sign)
    X, Y = probe.normalised(pos[:, 0], pos[:, 1])
    A = _monomials(X, Y, int(degree))
    V = np.array([[abs(f.params["coc_radius"])] + [f.params[k] for k in _SHAPE_NAMES] for f in cell_fits])
    if isinstance(smoothness, bool) or not isinstance(smoothness, numbers.Real) or not smoothness >= 0:
        raise ValueError(f"smoothness must be a real number >= 0; got {smoothness!r}")
    widths = np.array([_RADIUS_BOUNDS[1] - _RADIUS_BOUNDS[0]] + [PARAM_BOUNDS[k][1] - PARAM_BOUNDS[k][0] for k in _SHAPE_NAMES])
    # per-parameter ridge fit of the per-pair values (the constant term is not penalised)
    coefs0 = np.empty((T, 1 + len(_SHAPE_NAMES)))
    ridge = np.diag([0.0] + [1.0] * (T - 1)) * 0.1 * len(pairs)
    for j in range(coefs0.shape[1]):
        coefs0[:, j] = np.linalg.solve(A.T @ A + ridge, A.T @ V[:, j])
    n = pairs[0][0].shape[0]
    measured = [np.concatenate([m_l.ravel(), m_r.ravel()]) for m_l, m_r in pairs]

    def residual(flat):
        preds = _field_pairs(flat.reshape(1 + len(_SHAPE_NAMES), T), int(degree), pos, probe, n, sign)
        out = []
        for (pl, pr), m in zip(preds, measured):
            p = np.concatenate([pl.ravel(), pr.ravel()])
            out.append((float(p @ m) / float(p @ p)) * p - m)
        coefs = flat.reshape(1 + len(_SHAPE_NAMES), T)
        out.append(float(smoothness) * (coefs[:, 1:] / widths[:, None]).ravel())
        return np.concatenate(out)

    x0 = coefs0.T.ravel()
    sol = least_squares(residual, x0, x_scale="jac", max_nfev=int(max_nfev))
    fitted = DualPixelField(sol.x.reshape(1 + len(_SHAPE_NAMES), T), int(degree), tuple(image_shape), sign)
    L, R, e1, e2 = score_dual_pixel_field(fitted, kernels_left, kernels_right, positions)
    return DPFieldFit(fitted, L, R, e1, e2, list(cell_fits))
