r"""One way to read a dual-pixel capture and choose its PSFs, shared by every command.

:func:`read_dual_pixel_capture` reads a left/right pair of files into linear float32 views and
says where they sit on the sensor; :func:`optics.dual_pixel.deblur.default_dual_pixel_psfs` gives the PSFs of those views;
:meth:`optics.dual_pixel.deblur.PlacedPSFs.deblur` runs :func:`optics.dual_pixel.deblur.dual_pixel_deblur` on views of any
size at any place of the frame. ``python -m optics.dual_pixel.deblur``, ``python -m
learned.deblur`` (dual-pixel models), the ``pixeldp:`` reader of :mod:`learned.data` (so
``learned.evaluate``) and ``validation.real_dual_pixel`` all read through here, with the same
defaults.

Input formats (``input_format``)
    ``pixel4-raw``: Xin et al.'s Pixel 4 dual-pixel PNGs, one 16-bit channel, 14 bit above a black
    level of 1024: ``max(v - 1024, 0) / (2**14 - 1)`` (their ``code/util.py``, lines 26-32).
    ``linear``: 8- or 16-bit values divided by the type's maximum. ``srgb``: the same, then the
    sRGB EOTF (IEC 61966-2-1: ``c / 12.92`` below 0.04045, else ``((c + 0.055) / 1.055) ** 2.4``).
    ``auto`` (default): ``pixel4-raw`` for a single-channel 16-bit PNG whose values all lie within
    0..17407 (14 bit + black level) and whose 0.1th percentile is at least 512 (a black level is
    present); ``srgb`` for an 8-bit file; ``linear`` for any other 16-bit file. The choice is
    stated in the capture's notes.

Vignetting (``white_sheets``)
    As the authors (``code/util.py`` lines 39-44): the right view times the 101 x 101 box average
    (zero padded) of the white-sheet ratio ``W_L / W_R``
    (:func:`optics.dual_pixel.pixel4.pixel4_vignetting_gain`), before any crop. ``'auto'``
    (default): the sheets of a ``calibration/`` folder beside the left view (Xin et al.'s layout),
    else none (a warning for raw input); ``None`` or ``False``: off; a folder: its
    ``white_sheet_{left,right}.png``. Sheets of the whole sensor frame are sliced at the views'
    origin; sheets of the views' own size are applied as they are.

Place on the sensor (``origin``, ``crop``)
    ``origin`` (row, col) of the views' pixel (0, 0) in the 1512 x 2016 Pixel 4 frame; default:
    centred (``((1512 - H) // 2, (2016 - W) // 2)``: 1008 x 1344 views are Xin et al.'s central
    crop, 1512 x 2016 views the whole frame). ``crop``: ``'auto'`` (default) crops views of the
    whole frame to the central calibrated 1008 x 1344 (their ``_crop_image_central_fov``, the
    frame of their ground truth) and leaves other views as they are; ``'full'`` / None keeps the
    views whole; ``(h, w)`` crops centrally; ``(top, left, h, w)`` crops that window. Every crop
    is stated in the notes and moves the origin with it.

PSFs (:func:`optics.dual_pixel.deblur.default_dual_pixel_psfs`, in :mod:`.deblur` beside the grid it places)
    ``psf='auto'`` (default): Xin et al.'s calibrated kernels when a ``calibration/`` folder with
    ``blur_kernels_{left,right}.npy`` lies beside the views, else the fitted Pixel 4 field
    (:func:`optics.dual_pixel.pixel4.pixel4_dual_pixel_field`). The calibrated grid covers the
    central 1008 x 1344 (6 x 8 cells of 168 px). Views elsewhere are deblurred on the same cell
    lattice: they are mirror-padded to whole cells of the lattice (and cropped back after), the
    cells inside the calibrated frame keep their calibrated kernels and the cells outside take
    the fitted field extrapolated there (``outside='field'``, default) or the nearest calibrated
    cell (``outside='nearest'``), as :meth:`~optics.dual_pixel.deblur.DualPixelPSFGrid.window`
    does; the placed PSFs' notes say which. Views smaller than :data:`MIN_VIEW` on a side are
    refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..display import linear_to_srgb
from .pixel4 import PIXEL4_BLACK_LEVEL, PIXEL4_FRAME, PIXEL4_WHITE, pixel4_vignetting_gain

__all__ = [
    "DualPixelCapture",
    "INPUT_FORMATS",
    "OUTSIDE",
    "MIN_VIEW",
    "PIXEL4_SENSOR_FRAME",
    "CELL",
    "read_dual_pixel_capture",
    "detect_input_format",
    "srgb_to_linear",
    "parse_origin",
    "parse_crop",
    "encode_like_input",
    "linear_to_srgb",
    "view_warnings",
]

#: (H, W) of the whole Pixel 4 dual-pixel frame of Xin et al.'s captures.
PIXEL4_SENSOR_FRAME = (1512, 2016)
#: Side of a calibration cell (Xin et al.'s ``patch_size``).
CELL = 168
#: Smallest view side accepted for deblurring: two cells (the cost aggregation needs context).
MIN_VIEW = 2 * CELL
INPUT_FORMATS = ("auto", "pixel4-raw", "linear", "srgb")
OUTSIDE = ("field", "nearest")
_READ_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass
class DualPixelCapture:
    """A dual-pixel pair read by :func:`read_dual_pixel_capture`.

    Attributes
    ----------
    left, right : (H, W) or (H, W, 3) float32 arrays
        Linear views on one scale (vignetting corrected when ``vignetting`` says so), not clipped.
    origin : (row, col)
        The views' pixel (0, 0) in the sensor frame.
    frame_shape : (H, W)
        The sensor frame (the Pixel 4's 1512 x 2016).
    input_format : str
        The format used (``auto`` resolved).
    vignetting : str or None
        What was applied to the right view, None when nothing.
    notes : list of str
        What was done, one line each (read, format, vignetting, crop); lines starting
        ``warning:`` are warnings.
    folder : Path or None
        The left view's folder (where Xin et al.'s ``calibration/`` would be).
    bit_depth : int
        8 or 16, the files' (the outputs keep the input's encoding: :func:`encode_like_input`).
    """

    left: np.ndarray
    right: np.ndarray
    origin: tuple
    frame_shape: tuple
    input_format: str
    vignetting: Optional[str]
    notes: list = field(default_factory=list)
    folder: Optional[Path] = None
    bit_depth: int = 16

    @property
    def shape(self) -> tuple:
        """(H, W) of the views."""
        return tuple(self.left.shape[:2])

    def mean(self) -> np.ndarray:
        """``(left + right) / 2``, the ordinary (blurred) image."""
        return (self.left + self.right) / 2


# ------------------------------------------------------------------------------------------ parsing
def parse_origin(text: str) -> tuple[int, int]:
    """``'252,336'`` -> ``(252, 336)`` (an argparse ``type`` for ``--origin ROW,COL``)."""
    import argparse

    try:
        row, col = (int(v) for v in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (pixels, >= 0), e.g. 252,336; got {text!r}") from None
    if row < 0 or col < 0:
        raise argparse.ArgumentTypeError(f"expected ROW,COL with both >= 0 (pixels); got {text!r}")
    return row, col


def parse_crop(text: str):
    """``'auto'``, ``'full'``, ``'HxW'`` (central) or ``'HxW@TOP,LEFT'`` (an argparse ``type`` for ``--crop``)."""
    import argparse

    t = str(text).strip().lower()
    if t in ("auto", "full"):
        return t
    try:
        size, _, at = t.partition("@")
        h, w = (int(v) for v in size.split("x"))
        if at:
            top, left = (int(v) for v in at.split(","))
            box = (top, left, h, w)
        else:
            box = (h, w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, full, HxW or HxW@TOP,LEFT (pixels), e.g. 504x672 or "
                                         f"504x672@100,200; got {text!r}") from None
    if min(box) < 0 or h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected a crop of positive size at TOP,LEFT >= 0; got {text!r}")
    return box


# ------------------------------------------------------------------------------------------ reading
def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The sRGB EOTF (IEC 61966-2-1) of values in [0, 1]."""
    c = np.asarray(c, dtype=np.float32)
    return np.where(c <= 0.04045, c / np.float32(12.92), ((c + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4)).astype(np.float32)


def _read_file(path: Path, what: str) -> np.ndarray:
    """A file's values as stored: uint8 or uint16, (H, W) or (H, W, C)."""
    from ..image_io import read_png

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a folder; expected an image file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {str(path)!r}: the file is empty (0 bytes); expected an image file")
    if path.suffix.lower() not in _READ_SUFFIXES:
        raise ValueError(f"{what} {str(path)!r}: expected one of {', '.join(_READ_SUFFIXES)}; got "
                         f"{path.suffix or 'no suffix'!r}")
    if path.suffix.lower() == ".png":
        return read_png(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            a = tifffile.imread(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read {what} {str(path)!r}: {err}") from err
        if a.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{what} {str(path)!r}: expected 8- or 16-bit values; got {a.dtype}")
        return a
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            a = np.asarray(im)
    except OSError as err:
        raise ValueError(f"cannot read {what} {str(path)!r}: {err}") from err
    if a.dtype not in (np.uint8, np.uint16):
        if a.dtype.kind in "iu" and a.size and int(a.max()) <= 65535 and int(a.min()) >= 0:
            a = a.astype(np.uint16)
        else:
            raise ValueError(f"{what} {str(path)!r}: expected 8- or 16-bit values; got {a.dtype}")
    return a


def detect_input_format(raw: np.ndarray) -> str:
    """``auto``'s choice for a file's values (module notes): ``pixel4-raw``, ``srgb`` or ``linear``."""
    if raw.dtype == np.uint16 and raw.ndim == 2 and raw.size:
        if int(raw.max()) <= PIXEL4_BLACK_LEVEL + PIXEL4_WHITE and float(np.percentile(raw, 0.1)) >= PIXEL4_BLACK_LEVEL / 2:
            return "pixel4-raw"
    return "srgb" if raw.dtype == np.uint8 else "linear"


def _to_linear(raw: np.ndarray, fmt: str, what: str) -> np.ndarray:
    if raw.ndim == 3 and raw.shape[2] == 4:
        raw = raw[:, :, :3]  # alpha dropped (noted by the caller)
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if not (raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 3)):
        raise ValueError(f"{what}: expected one channel (a raw plane) or three (RGB); got shape {raw.shape}")
    if fmt == "pixel4-raw":
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise ValueError(f"{what}: --input-format pixel4-raw expects a single-channel 16-bit PNG (Xin et al.'s raw "
                             f"green plane); got {raw.dtype} with shape {raw.shape}")
        if int(raw.max()) > PIXEL4_BLACK_LEVEL + PIXEL4_WHITE:
            raise ValueError(f"{what}: --input-format pixel4-raw expects values within 0..{PIXEL4_BLACK_LEVEL + PIXEL4_WHITE}"
                             f" (14 bits above the black level {PIXEL4_BLACK_LEVEL}); got values above 14 bits + black "
                             f"level (max {int(raw.max())})")
        # Xin et al., code/util.py lines 26-32 (as optics.dual_pixel.pixel4.read_pixel4_raw)
        return np.maximum(raw.astype(np.float32) - PIXEL4_BLACK_LEVEL, 0.0) / PIXEL4_WHITE
    scaled = raw.astype(np.float32) / np.float32(np.iinfo(raw.dtype).max)
    return srgb_to_linear(scaled) if fmt == "srgb" else scaled


def _find_sheets(folders: Sequence[Path]) -> Optional[Path]:
    for folder in folders:
        if (folder / "white_sheet_left.png").is_file() and (folder / "white_sheet_right.png").is_file():
            return folder
    return None


def _shape_text(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def read_dual_pixel_capture(left: str | os.PathLike, right: str | os.PathLike, *, input_format: str = "auto",
                            white_sheets: Any = "auto", origin: Optional[Sequence[int]] = None, crop: Any = "auto",
                            frame_shape: Optional[tuple[int, int]] = PIXEL4_SENSOR_FRAME) -> DualPixelCapture:
    """Read a dual-pixel pair into linear float32 views placed on the sensor (module notes).

    Parameters
    ----------
    left, right : paths
        The two views: PNG (8/16 bit), or TIFF, JPEG, BMP (Pillow).
    input_format : {'auto', 'pixel4-raw', 'linear', 'srgb'}
    white_sheets : 'auto', None/False or a folder
        The right view's vignetting correction (Xin et al.'s), applied before any crop.
    origin : (row, col), optional
        The views' pixel (0, 0) in ``frame_shape``; default: centred.
    crop : 'auto', 'full', None, (h, w) or (top, left, h, w)
    frame_shape : (H, W) or None
        The sensor frame (default the Pixel 4's). None: the views' own frame (any size; origin
        (0, 0); ``crop='auto'`` keeps them whole), for a camera without a calibration
        (``--psf disc|butterworth``).

    Returns
    -------
    DualPixelCapture

    Raises
    ------
    ValueError, FileNotFoundError
        One line naming the argument, what was expected and what was received.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format: expected one of {', '.join(INPUT_FORMATS)}; got {input_format!r}")
    left, right = Path(left), Path(right)
    notes: list = []
    raws = [_read_file(left, "left view"), _read_file(right, "right view")]
    fmt = input_format
    if fmt == "auto":
        fmt = detect_input_format(raws[0])
        why = {"pixel4-raw": "a single-channel 16-bit file within 14 bits above a black level",
               "srgb": "an 8-bit file", "linear": "a 16-bit file that is not Pixel 4 raw"}[fmt]
        notes.append(f"input format: {fmt} (auto: {why}; --input-format overrides)")
    views = []
    for raw, path, what in ((raws[0], left, "left view"), (raws[1], right, "right view")):
        if raw.ndim == 3 and raw.shape[2] == 4:
            notes.append(f"{what} {str(path)!r}: alpha channel dropped")
        views.append(_to_linear(raw, fmt, f"{what} {str(path)!r}"))
    L, R = views
    if L.shape != R.shape:
        raise ValueError(f"left view {str(left)!r} is {_shape_text(L.shape)}{'x3' if L.ndim == 3 else ''} but right view "
                         f"{str(right)!r} is {_shape_text(R.shape)}{'x3' if R.ndim == 3 else ''}; expected one size")
    H, W = L.shape[:2]
    own = frame_shape is None
    FH, FW = frame_shape = (H, W) if own else tuple(frame_shape)
    if origin is None:
        if H > FH or W > FW:
            raise ValueError(f"views {H}x{W} are larger than the {FH}x{FW} sensor frame; expected views within it")
        origin = ((FH - H) // 2, (FW - W) // 2)
        how = "the whole frame" if (H, W) == (FH, FW) else "centred in it (--origin overrides)"
        notes.append(f"views {H}x{W} at (row, col) {origin} of the {FH}x{FW} sensor frame: {how}")
    else:
        try:
            r0, c0 = (int(v) for v in origin)
        except (TypeError, ValueError):
            raise ValueError(f"--origin: expected ROW,COL; got {origin!r}") from None
        if r0 < 0 or c0 < 0 or r0 + H > FH or c0 + W > FW:
            raise ValueError(f"--origin: expected the {H}x{W} views inside the {FH}x{FW} sensor frame (ROW 0..{FH - H}, "
                             f"COL 0..{FW - W}); got {r0},{c0}")
        origin = (r0, c0)
        notes.append(f"views {H}x{W} at (row, col) {origin} of the {FH}x{FW} sensor frame (--origin)")

    # vignetting, before any crop (Xin et al., code/util.py lines 39-44)
    vignetting = None
    if white_sheets is None or white_sheets is False or (isinstance(white_sheets, str) and white_sheets == "none"):
        notes.append("vignetting correction off (--white-sheets none)")
        sheets = None
    elif isinstance(white_sheets, str) and white_sheets == "auto":
        sheets = _find_sheets([left.parent / "calibration", left.parent])
        if sheets is None:
            msg = (f"no white sheets found beside the views ({str(left.parent / 'calibration')!r}): the right view's "
                   "vignetting is not corrected (--white-sheets DIR to give them)")
            notes.append(("warning: " if fmt == "pixel4-raw" else "") + msg)
    else:
        sheets = Path(white_sheets)
        if _find_sheets([sheets]) is None:
            if (sheets / "calibration").is_dir() and _find_sheets([sheets / "calibration"]):
                sheets = sheets / "calibration"
            else:
                raise FileNotFoundError(f"--white-sheets: expected a folder with white_sheet_left.png and "
                                        f"white_sheet_right.png; got {str(white_sheets)!r}")
    if sheets is not None:
        gain = pixel4_vignetting_gain(sheets)
        if gain.shape == (H, W):
            g = gain
            where = "sheets of the views' size"
        elif gain.shape == tuple(frame_shape):
            g = gain[origin[0]:origin[0] + H, origin[1]:origin[1] + W]
            where = f"sheets of the whole frame, sliced at {origin}"
        else:
            raise ValueError(f"--white-sheets {str(sheets)!r}: expected sheets of the views' size {H}x{W} or of the "
                             f"{FH}x{FW} frame; got {gain.shape[0]}x{gain.shape[1]}")
        R = (R * (g if R.ndim == 2 else g[:, :, None])).astype(np.float32)
        vignetting = (f"right view x box101(W_L / W_R) of {str(sheets)!r} ({where}; Xin et al., code/util.py "
                      "lines 39-44)")
        notes.append(f"vignetting: {vignetting}")

    # crop
    box = None
    if crop is None or crop == "full":
        pass
    elif isinstance(crop, str) and crop == "auto":
        if not own and (H, W) == tuple(frame_shape) and tuple(frame_shape) == PIXEL4_SENSOR_FRAME:
            h, w = PIXEL4_FRAME
            box = ((H - h) // 2, (W - w) // 2, h, w)
            notes.append(f"views {H}x{W} (the whole frame) cropped to the central calibrated {h}x{w} at {box[:2]} "
                         "(Xin et al.'s _crop_image_central_fov; --crop full keeps the whole frame)")
    else:
        try:
            c = tuple(int(v) for v in crop)
        except (TypeError, ValueError):
            raise ValueError(f"--crop: expected auto, full, (h, w) or (top, left, h, w); got {crop!r}") from None
        if len(c) == 2:
            box = ((H - c[0]) // 2, (W - c[1]) // 2, c[0], c[1])
        elif len(c) == 4:
            box = c
        else:
            raise ValueError(f"--crop: expected auto, full, (h, w) or (top, left, h, w); got {crop!r}")
        t, l_, h, w = box
        if h < 1 or w < 1 or t < 0 or l_ < 0 or t + h > H or l_ + w > W:
            raise ValueError(f"--crop: expected a window inside the {H}x{W} views; got {h}x{w} at (top, left) ({t}, {l_})")
        notes.append(f"views {H}x{W} cropped to {h}x{w} at (top, left) ({t}, {l_}) (--crop)")
    if box is not None:
        t, l_, h, w = box
        L, R = L[t:t + h, l_:l_ + w], R[t:t + h, l_:l_ + w]
        origin = (origin[0] + t, origin[1] + l_)
    notes += view_warnings(L, R, raws)
    return DualPixelCapture(np.ascontiguousarray(L), np.ascontiguousarray(R), tuple(origin), tuple(frame_shape), fmt,
                            vignetting, notes, left.parent, 8 if raws[0].dtype == np.uint8 else 16)


#: Share of a view at the file's largest value above which it is called saturated (a warning).
SATURATED_SHARE = 0.05


def view_warnings(left: np.ndarray, right: np.ndarray, raws: Sequence[np.ndarray] = ()) -> list:
    """``warning:`` lines for views whose result is likely wrong: bit-identical views (the same file twice,
    or a camera that gave no dual-pixel signal: an in-focus capture still differs by its noise), an all-zero
    view, a view saturated over more than :data:`SATURATED_SHARE` of its pixels. ``raws``: the files' values, as
    stored (the identity is judged on them: the right view's vignetting correction makes a file differ from itself)."""
    out = []
    same = np.array_equal(raws[0], raws[1]) if len(raws) == 2 else np.array_equal(left, right)  # before vignetting
    if same:
        out.append("warning: the left and right views are bit-identical, so they carry no dual-pixel signal (the "
                   "same file twice, or a camera that gave none): the defocus map is 0 and the output is the input; "
                   "give the two views of one dual-pixel capture")
    for name, view, raw in zip(("left", "right"), (left, right), list(raws) + [None, None]):
        if not np.any(view):
            out.append(f"warning: the {name} view is all zero (black): nothing to deblur; check the file and "
                       "--input-format")
            continue
        if raw is not None and raw.size:
            top = np.iinfo(raw.dtype).max
            share = float(np.mean(raw >= top))
            if share > SATURATED_SHARE:
                out.append(f"warning: the {name} view is saturated (at {top}) over {100 * share:.0f}% of its "
                           f"values (more than {100 * SATURATED_SHARE:.0f}%): clipped regions break the blur model; "
                           "use a darker exposure")
    return out


def encode_like_input(image: np.ndarray, capture: DualPixelCapture, bit_depth: Optional[int] = None):
    """``image`` (linear, the views' scale) as integers in the capture's encoding: ``(array, description)``.

    An sRGB capture gives sRGB values, a linear or raw capture linear values; ``bit_depth`` (8 or 16) defaults
    to 16 for the dual-pixel command's outputs. Values are clipped to [0, 1] first (said in the description).
    """
    bits = 16 if bit_depth is None else int(bit_depth)
    if bits not in (8, 16):
        raise ValueError(f"bit_depth: expected 8 or 16; got {bit_depth!r}")
    srgb = capture.input_format == "srgb"
    v = linear_to_srgb(image) if srgb else np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    top = 255 if bits == 8 else 65535
    out = np.round(v * top).astype(np.uint8 if bits == 8 else np.uint16)
    what = f"{bits}-bit {'sRGB' if srgb else 'linear'} (the input's encoding; clipped to [0, 1])"
    return out, what


# ------------------------------------------------------------------------------------------ command lines
def add_capture_arguments(parser, *, psf_help_extra: str = "") -> None:
    """``--input-format``, ``--white-sheets``, ``--origin``, ``--crop``, ``--psf``, ``--outside`` (both CLIs)."""
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                        help="pixel4-raw: 16-bit raw, black level 1024, 14 bit (Xin et al.); linear: 8/16-bit values "
                             "divided by the type's maximum; srgb: the same, then the sRGB EOTF; auto (default): "
                             "pixel4-raw when the file looks raw, srgb for 8-bit, else linear (printed)")
    parser.add_argument("--white-sheets", default="auto", metavar="auto|none|DIR",
                        help="correct the right view's vignetting with DIR/white_sheet_{left,right}.png as Xin et al. "
                             "(code/util.py); auto (default): calibration/ beside the views when it has them; none: off")
    parser.add_argument("--origin", type=parse_origin, metavar="ROW,COL",
                        help="the views' top-left pixel in the 1512x2016 Pixel 4 frame (default: centred; 1008x1344 "
                             "views are Xin et al.'s central crop)")
    parser.add_argument("--crop", type=parse_crop, default="auto", metavar="auto|full|HxW|HxW@TOP,LEFT",
                        help="auto (default): whole-frame 1512x2016 views are cropped to the central calibrated "
                             "1008x1344, others kept; full: keep the views whole; HxW: central crop; HxW@TOP,LEFT: "
                             "that window (printed)")
    parser.add_argument("--psf", default="auto", metavar="auto|pixel4|calibration|disc|butterworth|DIR",
                        help="PSFs: auto (default): Xin et al.'s calibration/blur_kernels_{left,right}.npy beside the "
                             "views, else the fitted Pixel 4 field (pixel4); or a folder of those kernels; or, for a "
                             "camera without a calibration, one parametric pair for the whole frame: disc (each view "
                             "half a disc) or butterworth (Abuolaim et al.'s model), with --psf-radius"
                             + psf_help_extra)
    parser.add_argument("--psf-radius", type=float, metavar="R",
                        help="--psf disc|butterworth (required): the blur radius in pixels at scale 1, the unit of the "
                             "defocus map (scales -0.9..1.6 search radii up to 1.6 R); 1..48")
    parser.add_argument("--psf-sign", type=int, default=1, metavar="1|-1",
                        help="--psf disc|butterworth: 1 (default): at positive scales the left view's PSF lies right "
                             "of the centre (optics.dual_pixel_psfs, optics.render_defocus); -1: left of it (Xin et "
                             "al.'s Pixel 4 calibration)")
    parser.add_argument("--psf-order", type=int, default=3, metavar="N",
                        help="--psf butterworth: the Butterworth order (default 3; Abuolaim et al. use 3, 6, 9)")
    parser.add_argument("--outside", choices=OUTSIDE, default="field",
                        help="cells outside the calibrated central 1008x1344: the fitted Pixel 4 field extrapolated "
                             "(field, default) or the nearest calibrated cell (nearest)")


def add_display_arguments(parser, *, defocus: bool = True) -> None:
    """``--preview``, ``--defocus-png``, ``--side-by-side`` (:mod:`optics.display`)."""
    parser.add_argument("--preview", type=Path, metavar="FILE.png|.jpg",
                        help="also write an 8-bit sRGB preview: the input's 99.5th percentile maps to 0.9, then sRGB "
                             "encoding (for viewing only)")
    if defocus:
        parser.add_argument("--defocus-png", type=Path, metavar="FILE.png",
                            help="also write the defocus map colour-mapped, with a colour bar and its units")
    parser.add_argument("--side-by-side", type=Path, metavar="FILE.png|.jpg",
                        help="also write input | output side by side, both as the preview, at 1:1 pixels")


def display_outputs(args) -> list:
    """(path, suffixes) of the display files asked for."""
    from ..display import PREVIEW_SUFFIXES

    out = []
    for name in ("preview", "defocus_png", "side_by_side"):
        p = getattr(args, name, None)
        if p is not None:
            out.append((p, PREVIEW_SUFFIXES if name != "defocus_png" else (".png",)))
    return out


def _unit_of_defocus(args) -> str:
    """What scale 1 of the defocus map is, for the PSF source the command used."""
    psf = str(getattr(args, "psf", "auto"))
    if psf in ("disc", "butterworth"):
        return f"1 = the {psf} PSF pair of blur radius {getattr(args, 'psf_radius', None):g} px (--psf-radius)"
    return "1 = the calibrated kernels (blur radius about 10.6 px at the frame centre)"


def write_display_outputs(args, capture: DualPixelCapture, image: np.ndarray, defocus=None, scales=None, *,
                          encode: bool = True) -> list:
    """Write the display files asked for; returns one line per file written.

    ``encode=False``: the values are already display-encoded (a network's output on sRGB files):
    no exposure change, no sRGB encoding, only 8-bit rounding.
    """
    from ..display import write_defocus_png, write_preview, write_side_by_side

    ref = capture.mean()
    lines = []
    if getattr(args, "preview", None) is not None:
        g = write_preview(args.preview, image, ref, encode=encode)
        how = (f"8-bit sRGB, exposure x{g:.3g} (the input's 99.5th percentile -> 0.9, then the sRGB encoding)"
               if encode else "8-bit, the values as they are (already sRGB-encoded)")
        lines.append(f"preview {args.preview}: {how}")
    if getattr(args, "defocus_png", None) is not None and defocus is not None:
        write_defocus_png(args.defocus_png, defocus, scales,
                          units="signed defocus (x the calibration defocus)",
                          title=f"defocus map, views {capture.shape[0]}x{capture.shape[1]} at (row, col) {capture.origin}"
                                f"\n{_unit_of_defocus(args)}; < 0: the other side of focus")
        lines.append(f"defocus map {args.defocus_png}: viridis, {scales[0]:g} .. {scales[-1]:g} with a colour bar")
    if getattr(args, "side_by_side", None) is not None:
        write_side_by_side(args.side_by_side, ref, image, encode=encode)
        lines.append(f"side by side {args.side_by_side}: input | output, both as the preview")
    return lines


def white_sheets_arg(text: str):
    """``--white-sheets`` text to :func:`read_dual_pixel_capture`'s ``white_sheets``."""
    return None if str(text).lower() == "none" else ("auto" if str(text).lower() == "auto" else Path(text))
