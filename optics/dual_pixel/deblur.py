r"""Training-free deblurring of a real dual-pixel (DP) capture: defocus from the DP pair, then deconvolution.

This module is the command line (``python -m optics.dual_pixel.deblur``, :func:`main`) and the
façade of the pieces, each in its own module (issue 32); every name of :data:`__all__` is
importable from here as before:

* :mod:`optics.dual_pixel.defaults`: :data:`DEFAULTS` (tuned on Xin et al.'s scenes 001-008),
  :data:`SGM_OPTIONS`, :data:`DEFAULT_SCALES` and the argument checks;
* :mod:`optics.dual_pixel.psf_grid`: the PSFs, :class:`DualPixelPSFGrid` (one calibrated pair per
  cell, rescaled to any defocus by :func:`rescale_blur_kernel`), :func:`load_psfs`;
* :mod:`optics.dual_pixel.defocus_map`: the whitened cross-consistency cost
  (:func:`dual_pixel_cost_volume`), its aggregation (:func:`aggregate_cost`, :func:`guided_filter`)
  and :func:`dual_pixel_defocus_map` (the maths and references are there);
* :mod:`optics.dual_pixel.pipeline`: :func:`dual_pixel_deblur`, the layered two-view deconvolution
  with that map (its maths there), :func:`deblur_capture` and :class:`window_progress`;
* :mod:`optics.dual_pixel.psf_source`: PSFs of views at a place of the sensor
  (:class:`DualPixelPSFSource`, :class:`PlacedPSFs`, :func:`dual_pixel_psf_source`, the ``--psf`` flags).

They import one another in that order (no module of :mod:`optics` imports this one); the cell windows
are in :mod:`optics.dual_pixel._cells`, the deconvolution in :mod:`optics.dual_pixel.deconvolution`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

# the façade: every name this module held before the split (issue 32), so that every import keeps working
from .._backend import namespace, to_numpy  # noqa: F401
from ._cells import _WINDOW_PROGRESS, _map_windows, _otfs, _windows  # noqa: F401
from .capture import CELL, MIN_VIEW, OUTSIDE, PIXEL4_SENSOR_FRAME, DualPixelCapture, _shape_text  # noqa: F401
from .deconvolution import DECONVOLUTION_METHODS, layered_deconvolution  # noqa: F401
from .pixel4 import PIXEL4_REFERENCE  # noqa: F401
from .defaults import (  # noqa: F401
    AGGREGATIONS, DEFAULT_SCALES, PARAMETRIC_SCALES, DEFAULTS, SGM_OPTIONS, _check_aggregation, _check_options, _check_positive,
    _check_scales, _check_workers,
)
from .psf_grid import (  # noqa: F401
    MAX_PSF_RADIUS, MIN_PSF_RADIUS, PARAMETRIC_PSFS, DualPixelPSFGrid, _centroid, load_psfs, rescale_blur_kernel,
)
from .defocus_map import (  # noqa: F401
    DualPixelDeblurResult, _check_views, _defocus, _gaussian_slices, _ndimage, _subscale_argmin, aggregate_cost,
    dual_pixel_cost_volume, dual_pixel_defocus_map, guided_filter, source_scales,
)
from .pipeline import (  # noqa: F401
    _layer_index, biased_defocus, deblur_capture, defocus_warnings, dual_pixel_deblur, in_focus_weight,
    window_progress,
)
from .psf_source import (  # noqa: F401
    DualPixelPSFSource, PlacedPSFs, _parametric_source, check_psf_flags, default_dual_pixel_psfs,
    dual_pixel_psf_source,
)

__all__ = [
    "DualPixelPSFGrid",
    "DualPixelDeblurResult",
    "DEFAULT_SCALES",
    "rescale_blur_kernel",
    "dual_pixel_cost_volume",
    "dual_pixel_defocus_map",
    "dual_pixel_deblur",
    "guided_filter",
    "aggregate_cost",
    "DEFAULTS",
    "load_psfs",
    "PlacedPSFs",
    "DualPixelPSFSource",
    "dual_pixel_psf_source",
    "default_dual_pixel_psfs",
    "PARAMETRIC_PSFS",
    "MIN_PSF_RADIUS",
    "MAX_PSF_RADIUS",
    "check_psf_flags",
    "deblur_capture",
    "window_progress",
    "PARAMETRIC_SCALES",
    "biased_defocus",
    "in_focus_weight",
    "defocus_warnings",
    "source_scales",
]


#: Most candidate scales ``--scales`` may ask for: the cost volume holds one float32 image per scale
#: (1008 x 1344 x 4 B = 5.4 MB each; 256 scales: 1.4 GB), and the defaults use 21.
MAX_CLI_SCALES = 256


def _parse_scales(text: str) -> tuple:
    import argparse

    try:
        lo, hi, count = text.split(":")
        lo, hi, count = float(lo), float(hi), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH:COUNT of increasing scales, e.g. -0.875:1.625:21; got {text!r}") from None
    if count > MAX_CLI_SCALES:
        raise argparse.ArgumentTypeError(f"expected COUNT <= {MAX_CLI_SCALES} (each scale adds one image to the cost "
                                         f"volume; the default is 21); got {count} in {text!r}")
    try:
        scales = np.round(np.linspace(lo, hi, count), 6)
        return tuple(float(s) for s in _check_scales(scales))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH:COUNT of increasing scales, e.g. -0.875:1.625:21; got {text!r}") from None


def _join_negative_values(argv: Sequence[str], options: Sequence[str] = ("--scales", "--origin", "--scale-bias")) -> list:
    """``['--scales', '-0.9:1.6:21']`` -> ``['--scales=-0.9:1.6:21']``: argparse takes a value with a
    leading minus (that is not a plain number) for an option, so the help's own form would be refused."""
    out: list = []
    for arg in argv:
        if out and out[-1] in options and arg[:2] in {"-" + c for c in "0123456789."}:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    import sys

    from .. import cli
    from ..atomic import atomic_write_bytes
    from ..image_io import npy_bytes, png_bytes
    from . import capture as cap

    parser = cli.ArgumentParser(
        prog="python -m optics.dual_pixel.deblur",
        description="Deblur a dual-pixel capture without training: a defocus map from the DP pair and "
                    "deconvolution with the calibrated PSFs (optics.dual_pixel.deblur).")
    parser.add_argument("left", type=Path, help="left view (PNG; raw, linear or sRGB: --input-format)")
    parser.add_argument("right", type=Path, help="right view")
    parser.add_argument("out", type=Path, help="all-in-focus output, 16-bit PNG in the input's encoding (sRGB for "
                                               "an sRGB input, else the views' linear scale), clipped to [0, 1]")
    parser.add_argument("--defocus-map", type=Path, help="also write the signed defocus map: .npy (float32, "
                        "units of the calibration defocus) or .png (16-bit, scales' range mapped to 0..65535)")
    parser.add_argument("--confidence", type=Path, help="also write the confidence map (.npy, float32 in [0, 1])")
    cap.add_capture_arguments(parser)
    parser.add_argument("--scales", type=_parse_scales, default=None, metavar="LOW:HIGH:COUNT",
                        help="candidate signed defocus scales (default: the PSF source's, with 0, the in-focus "
                        "identity: -0.875:1.625:21 for the Pixel 4, -1.5:1.5:21 for disc and butterworth; COUNT "
                        f"<= {MAX_CLI_SCALES})")
    parser.add_argument("--scale-bias", type=float, default=None, metavar="B",
                        help="move the estimated defocus by B away from 0 (B < 0: towards it, never across it) "
                        "before deconvolving (default: the PSF source's, -0.1 measured for the Pixel 4 kernels, 0 "
                        "for disc and butterworth)")
    parser.add_argument("--wiener-eps", type=float, default=DEFAULTS["wiener_eps"],
                        help=f"Wiener noise parameter (default {DEFAULTS['wiener_eps']:g})")
    parser.add_argument("--threads", type=int, metavar="N", help="threads over the cells (default: every core)")
    cap.add_display_arguments(parser)
    cli.add_overwrite_argument(parser)
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))

    left_path = cli.check_input_file(args.left, "left view", cap._READ_SUFFIXES)
    right_path = cli.check_input_file(args.right, "right view", cap._READ_SUFFIXES)
    inputs = [left_path, right_path]
    jobs = [(args.out, inputs)]
    extras = [(args.defocus_map, (".npy", ".png")), (args.confidence, (".npy",))] + cap.display_outputs(args)
    for extra, suffixes in extras:
        if extra is not None:
            cli.check_output_files([(extra, inputs)], overwrite=args.overwrite, suffixes=suffixes)
            jobs.append((extra, inputs))
    outs = [Path(j[0]) for j in jobs]
    if len({o.resolve() for o in outs}) != len(outs):
        raise ValueError("the output, --defocus-map, --confidence, --preview, --defocus-png and --side-by-side must "
                         "be different files")
    cli.check_output_files(jobs[:1], overwrite=args.overwrite, suffixes=(".png",))
    _check_positive(args.wiener_eps, "--wiener-eps")
    if args.scale_bias is not None and not (np.isfinite(args.scale_bias) and abs(args.scale_bias) <= 1):
        raise ValueError(f"--scale-bias: expected a number within -1..1 (scale units); got {args.scale_bias}")
    workers = cli.check_threads(args.threads)
    check_psf_flags(args)

    parametric = args.psf in PARAMETRIC_PSFS  # any camera: the views' own frame, one pair everywhere
    capture = cap.read_dual_pixel_capture(left_path, right_path, input_format=args.input_format,
                                          white_sheets=cap.white_sheets_arg(args.white_sheets), origin=args.origin,
                                          crop=args.crop, frame_shape=None if parametric else PIXEL4_SENSOR_FRAME)
    psfs = default_dual_pixel_psfs(capture, args.psf, outside=args.outside, radius=args.psf_radius,
                                   sign=args.psf_sign, order=args.psf_order)
    for note in capture.notes + list(psfs.notes):
        print(note, file=sys.stderr)
    res = deblur_capture(capture, psfs, args.scales, wiener_eps=args.wiener_eps, scale_bias=args.scale_bias,
                         workers=workers, progress=True)
    image = np.clip(res.image, 0, 1)
    encoded, encoding = cap.encode_like_input(image, capture)
    atomic_write_bytes(args.out, png_bytes(encoded))
    map_warnings = defocus_warnings(res, args.psf)  # the capture's were printed with its notes
    for line in map_warnings:
        print(line, file=sys.stderr)
    warnings = [n for n in capture.notes if n.startswith("warning:")] + map_warnings
    if args.defocus_map is not None:
        if args.defocus_map.suffix.lower() == ".npy":
            atomic_write_bytes(args.defocus_map, npy_bytes(res.defocus.astype(np.float32)))
        else:
            s = res.scales
            level = np.round((res.defocus - s[0]) / (s[-1] - s[0]) * 65535).astype(np.uint16)
            atomic_write_bytes(args.defocus_map, png_bytes(level))
    if args.confidence is not None:
        atomic_write_bytes(args.confidence, npy_bytes(res.confidence.astype(np.float32)))
    for line in cap.write_display_outputs(args, capture, image, res.defocus, res.scales):
        print(line, file=sys.stderr)
    H, W = image.shape[:2]
    kept = 0.0 if res.in_focus is None else float(np.mean(res.in_focus))
    said = f"; {len(warnings)} warning(s): " + " | ".join(w[len("warning: "):] for w in warnings) if warnings else ""
    print(f"results: {args.out} ({H}x{W} at (row, col) {capture.origin} of the sensor, {encoding}; defocus "
          f"{float(res.defocus.min()):.2f} .. {float(res.defocus.max()):.2f} x the calibration defocus; "
          f"{100 * kept:.0f}% kept as in focus{said})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from .. import cli as _cli
    from ..memory import reuse_freed_memory

    reuse_freed_memory()  # a command-line process: freed temporaries are reused, not faulted in again (issue 33)
    raise SystemExit(_cli.run(main))
