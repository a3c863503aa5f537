"""PSFs of dual-pixel views at a place of the sensor (:mod:`optics.dual_pixel.capture` reads the views).

A :class:`DualPixelPSFSource` is a camera's PSFs over its sensor (a calibrated
:class:`~optics.dual_pixel.psf_grid.DualPixelPSFGrid` centred in the sensor frame and what to use
outside it, or a spatially constant parametric pair); :meth:`DualPixelPSFSource.place` gives the
:class:`PlacedPSFs` of views at an origin, whose :meth:`PlacedPSFs.deblur` pads, deblurs
(:func:`optics.dual_pixel.pipeline.dual_pixel_deblur`) and crops back. :func:`dual_pixel_psf_source`
reads the ``--psf`` flags (:data:`PARAMETRIC_PSFS`, :data:`MIN_PSF_RADIUS`, :data:`MAX_PSF_RADIUS`,
defined in :mod:`optics.dual_pixel.psf_grid` and re-exported here), :func:`check_psf_flags` checks them
and :func:`default_dual_pixel_psfs` places a capture's.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .capture import CELL, MIN_VIEW, OUTSIDE, PIXEL4_SENSOR_FRAME, DualPixelCapture, _shape_text
from .defocus_map import DualPixelDeblurResult
from .pipeline import dual_pixel_deblur
from .pixel4 import PIXEL4_REFERENCE, PIXEL4_SCALE_BIAS
from .psf_grid import MAX_PSF_RADIUS, MIN_PSF_RADIUS, PARAMETRIC_PSFS, DualPixelPSFGrid


@dataclass(frozen=True)
class PlacedPSFs:
    """PSFs for views of ``shape`` at ``origin`` of the sensor (:meth:`DualPixelPSFSource.place`).

    ``grid`` covers the views padded (``pad``: ((top, bottom), (left, right)) rows and columns,
    mirrored) to whole cells of the calibrated lattice; :meth:`deblur` pads, deblurs and crops back.
    """

    grid: DualPixelPSFGrid
    pad: tuple
    shape: tuple
    origin: tuple
    notes: tuple = ()

    @property
    def name(self) -> str:
        return self.grid.name

    @property
    def cells(self) -> int:
        """Cells deblurred (each a window per pass: the cost, the layers, each TV step)."""
        return self.grid.grid[0] * self.grid.grid[1]

    def deblur(self, left: np.ndarray, right: np.ndarray, scales: Optional[Sequence[float]] = None,
               **options) -> DualPixelDeblurResult:
        """:func:`optics.dual_pixel.deblur.dual_pixel_deblur` of (H, W) views of ``shape``; maps of ``shape``."""
        left, right = np.asarray(left), np.asarray(right)
        if left.shape != tuple(self.shape) or right.shape != tuple(self.shape):
            raise ValueError(f"views must be {self.shape[0]}x{self.shape[1]} (the placed PSFs' views); got "
                             f"{_shape_text(left.shape)} and {_shape_text(right.shape)}")
        (t, b), (l_, r) = self.pad
        if t or b or l_ or r:
            left = np.pad(left, self.pad, mode="symmetric")
            right = np.pad(right, self.pad, mode="symmetric")
            if options.get("defocus") is not None:  # a given map of the views' shape, padded as they are
                options = dict(options, defocus=np.pad(np.asarray(options["defocus"]), self.pad, mode="symmetric"))
            if options.get("in_focus") is not None:
                options = dict(options, in_focus=np.pad(np.asarray(options["in_focus"]), self.pad, mode="symmetric"))
        res = dual_pixel_deblur(left, right, self.grid, scales, **options)
        if t or b or l_ or r:
            H, W = self.shape
            crop = (slice(t, t + H), slice(l_, l_ + W))
            res.image = res.image[crop]
            res.defocus = res.defocus[crop]
            res.confidence = res.confidence[crop]
            res.layers = None if res.layers is None else res.layers[crop]
            res.in_focus = None if res.in_focus is None else res.in_focus[crop]
        return res


@dataclass(frozen=True)
class DualPixelPSFSource:
    """A camera's PSFs over its sensor: a calibrated grid centred in ``frame_shape``, and what to use outside it.

    ``outside``: ``'field'`` (a fitted :class:`optics.DualPixelField` of the grid's frame,
    ``field``) or ``'nearest'``. ``frame_shape`` None: a spatially constant source (a parametric
    model, :meth:`DualPixelPSFGrid.from_model`) that places views of any size anywhere (the
    lattice starts at the views' origin; every cell is the grid's nearest, i.e. the same pair).
    """

    grid: DualPixelPSFGrid
    outside: str = "field"
    field: Any = None
    frame_shape: tuple = PIXEL4_SENSOR_FRAME
    description: str = ""

    @property
    def name(self) -> str:
        return self.description or self.grid.name

    @property
    def grid_origin(self) -> tuple:
        """(row, col) of the calibrated grid in the sensor frame (centred; (0, 0) without a frame)."""
        if self.frame_shape is None:
            return 0, 0
        gh, gw = self.grid.frame
        return (self.frame_shape[0] - gh) // 2, (self.frame_shape[1] - gw) // 2

    def place(self, shape: Sequence[int], origin: Optional[Sequence[int]] = None) -> PlacedPSFs:
        """PSFs for (H, W) views at ``origin`` (row, col) of the sensor (default: centred)."""
        H, W = (int(v) for v in shape[:2])
        if min(H, W) < MIN_VIEW:
            raise ValueError(f"views {H}x{W} are smaller than the {MIN_VIEW}x{MIN_VIEW} px minimum (two {CELL} px "
                             f"cells); expected views of at least {MIN_VIEW} px on each side")
        if self.frame_shape is None:  # spatially constant: any views, anywhere
            r0, c0 = (0, 0) if origin is None else (int(v) for v in origin)
            FH, FW = max(r0, 0) + H, max(c0, 0) + W
        else:
            FH, FW = self.frame_shape
            r0, c0 = ((FH - H) // 2, (FW - W) // 2) if origin is None else (int(v) for v in origin)
        if r0 < 0 or c0 < 0 or r0 + H > FH or c0 + W > FW:
            raise ValueError(f"origin: expected the {H}x{W} views inside the {FH}x{FW} sensor frame; got ({r0}, {c0})")
        c = self.grid.cell
        gr, gc = self.grid_origin
        top, left = (r0 - gr) % c, (c0 - gc) % c
        bottom, right = (-(top + H)) % c, (-(left + W)) % c
        win = (H + top + bottom, W + left + right)
        at = (r0 - top - gr, c0 - left - gc)
        outside = self.field if self.outside == "field" else "nearest"
        grid = self.grid.window(win, at, outside=outside)
        rows, cols = grid.grid
        R, C = self.grid.grid
        inside = sum(0 <= at[0] // c + i < R and 0 <= at[1] // c + j < C for i in range(rows) for j in range(cols))
        notes = []
        if top or bottom or left or right:
            notes.append(f"views mirror-padded by rows {top}/{bottom} (top/bottom) and columns {left}/{right} "
                         f"(left/right) to whole {c} px cells of the {'' if self.frame_shape is None else 'calibrated '}"
                         "lattice, cropped back after")
        if self.frame_shape is None:
            notes.append(f"PSFs: {self.name}; one pair for all {rows * cols} cells")
            return PlacedPSFs(grid, ((top, bottom), (left, right)), (H, W), (r0, c0), tuple(notes))
        gh, gw = self.grid.frame
        where = (f"{inside} of {rows * cols} cells inside the calibrated {gh}x{gw} at (row, col) ({gr}, {gc})")
        if inside < rows * cols:
            what = ("the fitted Pixel 4 field, extrapolated" if self.outside == "field"
                    else "the nearest calibrated cell")
            where += f"; {rows * cols - inside} outside use {what} (--outside {self.outside})"
        notes.append(f"PSFs: {self.name}; {where}")
        return PlacedPSFs(grid, ((top, bottom), (left, right)), (H, W), (r0, c0), tuple(notes))


def _parametric_source(psf: str, radius: Any, sign: Any, order: Any) -> DualPixelPSFSource:
    """The spatially constant source of ``--psf disc|butterworth`` (errors name the flags)."""
    if radius is None:
        raise ValueError(f"--psf {psf}: expected --psf-radius R (the blur radius in pixels at scale 1; "
                         f"{MIN_PSF_RADIUS:g}..{MAX_PSF_RADIUS:g}); got none")
    if (isinstance(radius, bool) or not isinstance(radius, numbers.Real) or not math.isfinite(radius)
            or not MIN_PSF_RADIUS <= radius <= MAX_PSF_RADIUS):
        raise ValueError(f"--psf-radius: expected a blur radius of {MIN_PSF_RADIUS:g}..{MAX_PSF_RADIUS:g} px at "
                         f"scale 1; got {radius!r}")
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"--psf-sign: expected 1 or -1; got {sign!r}")
    model = PARAMETRIC_PSFS[psf]
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or not 1 <= order <= 32:
        raise ValueError(f"--psf-order: expected a Butterworth order of 1..32 (Abuolaim et al. use 3, 6, 9); "
                         f"got {order!r}")
    grid = DualPixelPSFGrid.from_model(model, float(radius), cell=CELL, sign=int(sign), order=int(order))
    return DualPixelPSFSource(grid, "nearest", None, None, f"{grid.name} (--psf {psf})")


def dual_pixel_psf_source(psf: Any = "auto", folder: Optional[str | os.PathLike] = None, *,
                          outside: str = "field", radius: Optional[float] = None, sign: int = 1,
                          order: int = 3) -> DualPixelPSFSource:
    """The PSF source of a capture: ``psf`` 'auto', 'pixel4', 'calibration', 'disc', 'butterworth' or a folder of Xin et al.'s kernels.

    ``'auto'``: the calibrated kernels of ``folder/calibration`` (or ``folder``) when they exist
    (Xin et al.'s layout beside the views), else the fitted Pixel 4 field. ``'calibration'``
    requires them. ``outside``: 'field' or 'nearest' (module notes).

    ``'disc'`` (``'half_disc'``) and ``'butterworth'``: a camera without a calibration, one
    parametric pair for the whole frame (:meth:`DualPixelPSFGrid.from_model`, ``frame_shape``
    None: views of any size): ``radius`` (``--psf-radius``, required) is the blur radius in pixels at
    scale 1, the unit of the defocus map; ``sign`` (``--psf-sign``) +1 puts the left view's PSF
    right of the centre at positive scales, -1 left of it (the Pixel 4's convention); ``order``
    (``--psf-order``) is the Butterworth order. ``radius``, ``sign`` and ``order`` given with another
    ``psf`` are an error.
    """
    from .pixel4 import pixel4_dual_pixel_field

    if outside not in OUTSIDE:
        raise ValueError(f"--outside: expected one of {', '.join(OUTSIDE)}; got {outside!r}")
    if isinstance(psf, DualPixelPSFSource):
        return psf
    if isinstance(psf, str) and psf in PARAMETRIC_PSFS:
        return _parametric_source(psf, radius, sign, order)
    for flag, value, default in (("--psf-radius", radius, None), ("--psf-sign", sign, 1), ("--psf-order", order, 3)):
        if value != default:
            raise ValueError(f"{flag}: only with --psf {' or '.join(p for p in PARAMETRIC_PSFS if p != 'half_disc')} "
                             f"(a parametric model); got --psf {psf if isinstance(psf, str) else type(psf).__name__}")
    fld = pixel4_dual_pixel_field()
    if isinstance(psf, DualPixelPSFGrid):
        return DualPixelPSFSource(psf, outside, fld if outside == "field" else None)
    spec = str(psf)
    found = None
    if spec in ("auto", "calibration"):
        for cand in ([] if folder is None else [Path(folder) / "calibration", Path(folder)]):
            if (cand / "blur_kernels_left.npy").is_file() and (cand / "blur_kernels_right.npy").is_file():
                found = cand
                break
        if found is None and spec == "calibration":
            raise FileNotFoundError(f"--psf calibration: expected blur_kernels_{{left,right}}.npy in "
                                    f"{str(Path(folder or '.') / 'calibration')!r}; found none")
    elif spec != "pixel4":
        found = Path(spec)
        if not found.is_dir():
            raise FileNotFoundError(f"--psf: expected auto, pixel4, calibration, disc, butterworth or a folder of Xin et al.'s "
                                    f"blur_kernels_{{left,right}}.npy; got {spec!r}, which is not a folder")
    if found is not None:
        try:
            grid = replace(DualPixelPSFGrid.from_calibration(found, cell=CELL), reference=PIXEL4_REFERENCE,
                           scale_bias=PIXEL4_SCALE_BIAS)
        except ValueError as err:  # the file and the flag named (issue 34)
            raise ValueError(f"--psf {spec}: {str(found / 'blur_kernels_left.npy')!r} and blur_kernels_right.npy: "
                             f"expected Xin et al.'s calibrated kernels; {err}") from None
        how = "auto: found beside the views" if spec == "auto" else f"--psf {spec}"
        desc = f"Xin et al.'s calibrated kernels {str(found)!r} ({how})"
    else:
        grid = replace(DualPixelPSFGrid.from_field(fld, CELL), reference=PIXEL4_REFERENCE, scale_bias=PIXEL4_SCALE_BIAS)
        how = "auto: no calibration/ beside the views" if spec == "auto" else "--psf pixel4"
        desc = f"the fitted Pixel 4 field ({how})"
    return DualPixelPSFSource(grid, outside, fld if outside == "field" else None, PIXEL4_SENSOR_FRAME, desc)


def check_psf_flags(args) -> None:
    """The ``--psf-radius``, ``--psf-sign``, ``--psf-order`` of a command line (:func:`optics.dual_pixel.capture.add_capture_arguments`),
    checked before the capture is read: ValueError naming the flag."""
    if (args.psf in PARAMETRIC_PSFS or args.psf_radius is not None or args.psf_sign != 1 or args.psf_order != 3):
        dual_pixel_psf_source(args.psf, radius=args.psf_radius, sign=args.psf_sign, order=args.psf_order)


def default_dual_pixel_psfs(capture: "DualPixelCapture", psf: Any = "auto", *, outside: str = "field",
                            radius: Optional[float] = None, sign: int = 1, order: int = 3) -> PlacedPSFs:
    """The PSFs of ``capture``'s views at their origin: :func:`dual_pixel_psf_source` placed there.

    ``radius``, ``sign``, ``order``: the parametric sources' (``psf`` 'disc' or 'butterworth').
    """
    source = dual_pixel_psf_source(psf, capture.folder, outside=outside, radius=radius, sign=sign, order=order)
    return source.place(capture.shape, capture.origin)
