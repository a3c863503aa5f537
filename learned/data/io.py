"""Image and checkpoint file I/O: bit-depth-preserving PNG/TIFF reading/writing and atomic saves.

Read: PNG and TIFF (8 or 16 bit, lossless), JPEG and BMP (8 bit; JPEG's EXIF orientation applied).
Written: PNG and TIFF, 8 or 16 bit, losslessly and atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from optics.atomic import atomic_write_bytes
from optics.cli import one_line
from optics.image_io import png_bytes, read_png

__all__ = ["READ_SUFFIXES", "WRITE_SUFFIXES", "read_image", "is_grayscale", "write_image", "atomic_save", "atomic_write_bytes"]

#: File suffixes :func:`read_image` accepts (lower case).
READ_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: File suffixes :func:`write_image` writes (lossless).
WRITE_SUFFIXES = (".png", ".tif", ".tiff")
_TIFF = (".tif", ".tiff")


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an 8- or 16-bit RGB (or grayscale) image as float32 (H, W, 3) in [0, 1].

    EXIF orientation is applied (a phone photo comes out the way it is displayed). Grayscale is
    replicated to 3 channels.

    Returns
    -------
    image : ndarray, float32, (H, W, 3)
    bit_depth : int
        8 or 16, the depth of the file (so the output can be written back at the same depth).

    Raises
    ------
    FileNotFoundError, ValueError
        Unreadable files, alpha channels (4-channel PNG: say how to composite it first) and other
        dtypes are refused by name.
    """
    import imageio.v3 as iio

    from optics.cli import check_input_file

    path = check_input_file(path, "input image", READ_SUFFIXES)
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ValueError(f"cannot read image {str(path)!r}: the file is empty (0 bytes)")
    try:
        if suffix == ".png":
            img = read_png(path)  # lossless 16-bit (Pillow would truncate 16-bit RGB to 8 bits)
        elif suffix in _TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:  # lossless 8/16-bit; imageio's rotate= is not for TIFF
                if len(tif.pages) == 0:
                    raise ValueError("no image in the file (damaged TIFF?)")
                img = tif.asarray()
        else:
            img = iio.imread(path, rotate=True)  # apply EXIF orientation
    except (OSError, ValueError, RuntimeError, SyntaxError, EOFError) as err:  # readers raise many types for corrupt files
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from err
    img = np.asarray(img)
    if img.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif img.dtype == np.uint16:
        depth, scale = 16, 65535.0
    else:
        raise ValueError(f"image {str(path)!r} must be 8- or 16-bit; got dtype {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3,):
        channels = img.shape[2] if img.ndim == 3 else img.ndim
        raise ValueError(
            f"image {str(path)!r} must be RGB or grayscale; got {channels} channels"
            + (" (RGBA: flatten the alpha channel onto a background first)" if channels == 4 else "")
        )
    return (img.astype(np.float32) / scale), depth


def is_grayscale(path: str | os.PathLike) -> bool:
    """True when the image file at ``path`` stores one channel (read from its header only)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            import png

            reader = png.Reader(filename=str(path))
            reader.preamble()
            return not reader.color_type & 2 and not reader.color_type & 1  # neither colour nor palette
        if suffix in _TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return bool(tif.pages) and tif.pages[0].samplesperpixel == 1
        from PIL import Image

        with Image.open(path) as img:
            return img.mode in ("L", "I;16", "I;16B", "I;16L", "I", "1")
    except Exception as err:  # noqa: BLE001 - the readers raise many types; read_image names the problem
        raise ValueError(f"cannot read image {str(path)!r}: {one_line(err) or type(err).__name__}") from err


def write_image(path: str | os.PathLike, image: np.ndarray, bit_depth: int = 8) -> None:
    """Write a float (H, W, 3) image (or (H, W) grayscale) in [0, 1] as an 8- or 16-bit PNG or TIFF (by suffix), atomically.

    Values outside [0, 1] are an error rather than silently clipped: clip them explicitly first
    (every network output in this toolkit is clipped by its caller with ``np.clip``).
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16; got {bit_depth}")
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be (H, W, 3), or (H, W) for grayscale; got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image must be finite; got NaN or inf values")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"image values must lie in [0, 1]; got range [{lo:.4g}, {hi:.4g}] (clip first)")
    check_write_suffix(path)
    scale, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    data = np.round(image.astype(np.float64) * scale).astype(dtype)
    atomic_write_bytes(path, png_bytes(data) if Path(path).suffix.lower() == ".png" else _tiff_bytes(data))


def check_write_suffix(path: str | os.PathLike) -> None:
    """``path`` must end in one of :data:`WRITE_SUFFIXES` (lossless formats)."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise ValueError(f"output image {str(path)!r} must end in one of {', '.join(WRITE_SUFFIXES)} "
                         f"(lossless, 8 or 16 bit); got {suffix or 'no suffix'!r}")


def _tiff_bytes(data: np.ndarray) -> bytes:
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, photometric="rgb" if data.ndim == 3 else "minisblack")  # uncompressed, lossless
    return buffer.getvalue()


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file and rename it over ``path`` (never a half-written file)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
