r"""Thin-lens defocus: signed circle-of-confusion radius in pixels from scene depth, and back.

Units (the names carry them): scene depth and focus distance in **metres**, focal length in
**millimetres**, pixel pitch in **micrometres**, circle-of-confusion (CoC) radius in **pixels**.

Sign convention
---------------
The CoC radius is **positive behind the focal plane** (depth > focus distance, the image of the
point forms in front of the sensor) and **negative in front of it** (depth < focus distance).
This is the sign of Abuolaim et al.'s DP synthesis code, and it is the sign that decides on which
side of the left/right dual-pixel PSFs the light falls (see :func:`optics.dual_pixel_psfs`).
Because the signed radius is a strictly increasing function of depth, sorting by signed CoC is
sorting from near to far.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .._backend import is_torch, namespace

__all__ = ["Camera", "signed_coc_radius", "depth_from_signed_coc"]


def _positive_finite(value: Any, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in {unit}; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0 (in {unit}); got {value}")
    return value


def _check_optics(focus_distance_m, focal_length_mm, f_number, pixel_pitch_um) -> tuple[float, float, float, float]:
    focus = _positive_finite(focus_distance_m, "focus_distance_m", "metres")
    focal = _positive_finite(focal_length_mm, "focal_length_mm", "millimetres")
    fnum = _positive_finite(f_number, "f_number", "units of the focal length / aperture diameter")
    pitch = _positive_finite(pixel_pitch_um, "pixel_pitch_um", "micrometres")
    if focus * 1e3 <= focal:
        raise ValueError(
            f"focus_distance_m must exceed the focal length (a real image needs an object beyond f); "
            f"got focus_distance_m={focus} m and focal_length_mm={focal} mm"
        )
    return focus, focal, fnum, pitch


def _coc_at_infinity_px(focus_m: float, focal_mm: float, fnum: float, pitch_um: float) -> float:
    """Signed CoC radius (pixels) of a point at infinite depth: f^2 / (2 N (d_f - f) p)."""
    focus_mm = focus_m * 1e3
    pitch_mm = pitch_um * 1e-3
    return focal_mm**2 / (2.0 * fnum * (focus_mm - focal_mm) * pitch_mm)


def _is_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def signed_coc_radius(
    depth_m: Any, focus_distance_m: float, focal_length_mm: float, f_number: float, pixel_pitch_um: float
) -> Any:
    r"""Signed circle-of-confusion radius, in pixels, of points at ``depth_m``.

    Parameters
    ----------
    depth_m : float or array of any shape (NumPy, CuPy or torch)
        Distance from the lens to the scene point along the optical axis, metres. Must be finite
        and greater than the focal length.
    focus_distance_m : float
        Distance from the lens to the plane in focus, metres (> focal length).
    focal_length_mm : float
        Focal length, millimetres.
    f_number : float
        Aperture f-number N (aperture diameter = focal length / N).
    pixel_pitch_um : float
        Pixel pitch of the sensor (of the image the CoC is measured in), micrometres.

    Returns
    -------
    float or array like ``depth_m``
        Signed CoC radius in pixels: positive behind the focal plane (``depth_m >
        focus_distance_m``), negative in front of it, zero on it. Differentiable for torch input.

    Raises
    ------
    TypeError
        If ``depth_m`` is neither a real number nor a float array.
    ValueError
        If a lens parameter is not finite and positive, the focus distance does not exceed the focal
        length, or a depth is not finite or not beyond the focal length.

    Notes
    -----
    With focal length :math:`f`, aperture diameter :math:`A = f / N`, focus distance
    :math:`d_f`, sensor distance :math:`s = f d_f / (d_f - f)` and image distance
    :math:`s_d = f d / (d - f)` of a point at depth :math:`d`, similar triangles give the blur
    circle diameter :math:`A (s - s_d) / s_d` on the sensor. In pixels of pitch :math:`p`:

    .. math:: c(d) = \frac{f^2}{2 N (d_f - f)\, p} \left(1 - \frac{d_f}{d}\right)
              = c_\infty \left(1 - \frac{d_f}{d}\right)

    a radius, signed, strictly increasing in :math:`d`, tending to :math:`c_\infty` at infinity
    and to :math:`-\infty` as :math:`d \to 0`. All lengths are converted to millimetres inside.

    References
    ----------
    .. [1] A. Abuolaim, M. Delbracio, D. Kelly, M. S. Brown, P. Milanfar, "Learning to Reduce
       Defocus Blur by Realistically Modeling Dual-Pixel Data", ICCV 2021 (thin-lens CoC of the
       DP synthesis code).
    .. [2] S. W. Hasinoff, K. N. Kutulakos, "Light-Efficient Photography", TPAMI 2011.
    """
    focus, focal, fnum, pitch = _check_optics(focus_distance_m, focal_length_mm, f_number, pixel_pitch_um)
    c_inf = _coc_at_infinity_px(focus, focal, fnum, pitch)
    focal_m = focal * 1e-3
    if _is_scalar(depth_m):
        d = float(depth_m)
        if not math.isfinite(d) or d <= focal_m:
            raise ValueError(f"depth_m must be finite and > the focal length {focal_m} m; got {d}")
        return c_inf * (1.0 - focus / d)
    be = namespace(depth_m)
    xp = be.xp
    _check_float_array(depth_m, "depth_m")
    if not bool(xp.all(xp.isfinite(depth_m))):
        raise ValueError("depth_m must be finite everywhere; got NaN or inf entries (mark missing depth first)")
    dmin = _to_float(xp.min(depth_m)) if _size(depth_m) else math.inf
    if dmin <= focal_m:
        raise ValueError(f"depth_m must be > the focal length {focal_m} m everywhere; got minimum {dmin}")
    return c_inf * (1.0 - focus / depth_m)


def depth_from_signed_coc(
    coc_radius_px: Any, focus_distance_m: float, focal_length_mm: float, f_number: float, pixel_pitch_um: float
) -> Any:
    r"""Depth in metres of points whose signed circle-of-confusion radius is ``coc_radius_px``.

    The inverse of :func:`signed_coc_radius` (same lens parameters and units).

    Parameters
    ----------
    coc_radius_px : float or array of any shape (NumPy, CuPy or torch)
        Signed CoC radius in pixels, ``<= c_inf`` (the radius at infinite depth); ``c_inf``
        itself maps to ``inf``.
    focus_distance_m, focal_length_mm, f_number, pixel_pitch_um : float
        As in :func:`signed_coc_radius`.

    Returns
    -------
    float or array like ``coc_radius_px``
        Depth in metres.

    Raises
    ------
    ValueError
        If a radius exceeds ``c_inf`` (no depth produces it) or is not finite.

    Notes
    -----
    .. math:: d(c) = \frac{d_f}{1 - c / c_\infty}, \qquad
              c_\infty = \frac{f^2}{2 N (d_f - f)\, p}

    Points with :math:`c < c(f)` (depths below the focal length) are returned by the formula
    but have no real image; :func:`signed_coc_radius` refuses them.
    """
    focus, focal, fnum, pitch = _check_optics(focus_distance_m, focal_length_mm, f_number, pixel_pitch_um)
    c_inf = _coc_at_infinity_px(focus, focal, fnum, pitch)
    if _is_scalar(coc_radius_px):
        c = float(coc_radius_px)
        if not math.isfinite(c) or c > c_inf:
            raise ValueError(
                f"coc_radius_px must be finite and <= the radius at infinity {c_inf:.6g} px; got {c}"
            )
        return math.inf if c == c_inf else focus / (1.0 - c / c_inf)
    be = namespace(coc_radius_px)
    xp = be.xp
    _check_float_array(coc_radius_px, "coc_radius_px")
    if not bool(xp.all(xp.isfinite(coc_radius_px))):
        raise ValueError("coc_radius_px must be finite everywhere; got NaN or inf entries")
    cmax = _to_float(xp.max(coc_radius_px)) if _size(coc_radius_px) else -math.inf
    if cmax > c_inf:
        raise ValueError(f"coc_radius_px must be <= the radius at infinity {c_inf:.6g} px; got maximum {cmax}")
    return focus / (1.0 - coc_radius_px / c_inf)


def _to_float(x: Any) -> float:
    return float(x.detach()) if is_torch(x) else float(x)


def _size(x: Any) -> int:
    return int(math.prod(int(s) for s in x.shape))


def _check_float_array(x: Any, name: str) -> None:
    from .._validate import real_float_dtype

    if not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be a real number or a float array; got {type(x).__name__}")
    if not real_float_dtype(x):
        raise TypeError(f"{name} must have dtype float32 or float64; got {str(x.dtype).replace('torch.', '')}")


@dataclass(frozen=True)
class Camera:
    r"""A thin-lens camera: the lens parameters that set the defocus of every depth.

    Parameters
    ----------
    focal_length_mm : float
        Focal length f, millimetres.
    f_number : float
        Aperture f-number N; the aperture diameter is f / N.
    focus_distance_m : float
        Distance of the plane in focus, metres (> f).
    pixel_pitch_um : float
        Pixel pitch of the rendered image, micrometres. For an image downsampled by a factor
        ``s`` from the sensor, use ``s`` times the sensor pitch.

    Examples
    --------
    A 50 mm f/1.8 lens focused at 2 m on a sensor with 20 um effective pixels (a full-frame
    sensor downsampled to 1680 x 1120, as in DPDD):

    >>> cam = Camera(focal_length_mm=50.0, f_number=1.8, focus_distance_m=2.0, pixel_pitch_um=21.4)
    >>> round(cam.coc_radius(4.0), 3)      # behind the focal plane: positive
    8.321
    >>> round(cam.depth(cam.coc_radius(1.0)), 12)
    1.0

    Notes
    -----
    :meth:`coc_radius` is :func:`signed_coc_radius`, :meth:`depth` is
    :func:`depth_from_signed_coc`; ``coc_radius_at_infinity`` is
    :math:`c_\infty = f^2 / (2 N (d_f - f) p)`.
    """

    focal_length_mm: float
    f_number: float
    focus_distance_m: float
    pixel_pitch_um: float

    def __post_init__(self) -> None:
        _check_optics(self.focus_distance_m, self.focal_length_mm, self.f_number, self.pixel_pitch_um)

    @property
    def aperture_diameter_mm(self) -> float:
        """Aperture (entrance pupil) diameter f / N, millimetres."""
        return self.focal_length_mm / self.f_number

    @property
    def coc_radius_at_infinity(self) -> float:
        """Signed CoC radius (pixels) of a point at infinite depth, the supremum of :meth:`coc_radius`."""
        return _coc_at_infinity_px(self.focus_distance_m, self.focal_length_mm, self.f_number, self.pixel_pitch_um)

    def coc_radius(self, depth_m: Any) -> Any:
        """Signed CoC radius in pixels at ``depth_m`` metres (see :func:`signed_coc_radius`)."""
        return signed_coc_radius(
            depth_m, self.focus_distance_m, self.focal_length_mm, self.f_number, self.pixel_pitch_um
        )

    def depth(self, coc_radius_px: Any) -> Any:
        """Depth in metres of a signed CoC radius in pixels (see :func:`depth_from_signed_coc`)."""
        return depth_from_signed_coc(
            coc_radius_px, self.focus_distance_m, self.focal_length_mm, self.f_number, self.pixel_pitch_um
        )

    @classmethod
    def for_coc_range(
        cls,
        near_m: float,
        far_m: float,
        focus_distance_m: float,
        max_abs_coc_px: float,
        *,
        focal_length_mm: float = 50.0,
        pixel_pitch_um: float = 21.4,
    ) -> "Camera":
        r"""The camera whose largest ``|CoC|`` over depths ``[near_m, far_m]`` is ``max_abs_coc_px``.

        Solves :math:`c_\infty \max(|1 - d_f/d_{near}|, |1 - d_f/d_{far}|) = c_{max}` for the
        f-number, keeping focal length and pixel pitch.

        Raises
        ------
        ValueError
            If the depth range is empty, does not exceed the focal length, or ``max_abs_coc_px`` is
            not positive, or the focus distance lies at both ends (no defocus at all).
        """
        near = _positive_finite(near_m, "near_m", "metres")
        far = _positive_finite(far_m, "far_m", "metres")
        cmax = _positive_finite(max_abs_coc_px, "max_abs_coc_px", "pixels")
        focus = _positive_finite(focus_distance_m, "focus_distance_m", "metres")
        if not near < far:
            raise ValueError(f"near_m must be < far_m; got near_m={near}, far_m={far}")
        if near * 1e3 <= focal_length_mm:
            raise ValueError(f"near_m must exceed the focal length {focal_length_mm} mm; got {near} m")
        spread = max(abs(1 - focus / near), abs(1 - focus / far))
        # c_inf = f^2 / (2 N (d_f - f) p)  =>  N = f^2 / (2 c_inf (d_f - f) p)
        c_inf = cmax / spread
        focus_mm, pitch_mm = focus * 1e3, pixel_pitch_um * 1e-3
        if focus_mm <= focal_length_mm:
            raise ValueError(f"focus_distance_m must exceed the focal length; got {focus} m")
        f_number = focal_length_mm**2 / (2 * c_inf * (focus_mm - focal_length_mm) * pitch_mm)
        return cls(focal_length_mm=focal_length_mm, f_number=f_number, focus_distance_m=focus, pixel_pitch_um=pixel_pitch_um)
