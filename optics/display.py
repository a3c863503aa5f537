r"""Display-ready files beside a linear result: an sRGB preview, a colour-mapped defocus map, a side-by-side figure.

Linear results (16-bit PNGs on the views' scale) look dark and flat on a screen. These writers
make files for looking at, never for measuring:

* :func:`preview_8bit`: exposure-normalised so that the :data:`PREVIEW_PERCENTILE` th percentile
  of the *reference* (the blurred input, ``(L + R) / 2``) maps to :data:`PREVIEW_WHITE`, clipped
  to [0, 1], then sRGB-encoded (IEC 61966-2-1 OETF) and rounded to 8 bits. Input and output
  share one exposure, so they can be compared.
* :func:`write_defocus_png`: the signed defocus map colour-mapped (viridis) with a colour bar
  and its units (matplotlib, Agg backend).
* :func:`write_side_by_side`: input | output, both as :func:`preview_8bit`, 16 px white gap, at
  1:1 pixels.

Every file is written atomically (:mod:`optics.atomic`); ``.png`` or ``.jpg`` (quality 95).
This module imports only the toolkit's plumbing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .atomic import atomic_write_bytes
from .image_io import png_bytes

__all__ = ["PREVIEW_PERCENTILE", "PREVIEW_WHITE", "PREVIEW_SUFFIXES", "linear_to_srgb", "exposure_gain",
           "preview_8bit", "write_preview", "write_defocus_png", "write_side_by_side"]

#: Percentile of the reference image that maps to :data:`PREVIEW_WHITE` before sRGB encoding.
PREVIEW_PERCENTILE = 99.5
PREVIEW_WHITE = 0.9
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg")
GAP = 16


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB OETF (IEC 61966-2-1) of linear values in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def exposure_gain(reference: np.ndarray) -> float:
    """``PREVIEW_WHITE / percentile(reference, PREVIEW_PERCENTILE)`` (1 for an all-dark reference)."""
    p = float(np.percentile(np.asarray(reference, dtype=np.float64), PREVIEW_PERCENTILE))
    return PREVIEW_WHITE / p if p > 0 else 1.0


def preview_8bit(image: np.ndarray, reference: Optional[np.ndarray] = None, gain: Optional[float] = None, *,
                 encode: bool = True) -> np.ndarray:
    """uint8 sRGB preview of a linear (H, W) or (H, W, 3) image (module notes); ``gain`` overrides the exposure.

    ``encode=False``: values already display-encoded, only clipped and rounded (no gain, no sRGB encoding).
    """
    x = np.asarray(image, dtype=np.float64)
    if not encode:
        return np.round(255 * np.clip(x, 0, 1)).astype(np.uint8)
    g = exposure_gain(x if reference is None else reference) if gain is None else float(gain)
    return np.round(255 * linear_to_srgb(x * g)).astype(np.uint8)


def _encode(path: Path, rgb8: np.ndarray) -> bytes:
    if path.suffix.lower() == ".png":
        return png_bytes(rgb8)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(rgb8).save(buffer, format="JPEG", quality=95)
        return buffer.getvalue()
    raise ValueError(f"{str(path)!r}: expected one of {', '.join(PREVIEW_SUFFIXES)}; got {path.suffix or 'no suffix'!r}")


def write_preview(path: str | os.PathLike, image: np.ndarray, reference: Optional[np.ndarray] = None, *,
                  encode: bool = True) -> float:
    """Write :func:`preview_8bit` of ``image`` to ``path`` (.png/.jpg); returns the exposure gain used."""
    path = Path(path)
    g = exposure_gain(image if reference is None else reference) if encode else 1.0
    atomic_write_bytes(path, _encode(path, preview_8bit(image, gain=g, encode=encode)))
    return g


def write_side_by_side(path: str | os.PathLike, before: np.ndarray, after: np.ndarray, *, encode: bool = True) -> float:
    """Write ``before | after`` (both previews at the exposure of ``before``, a 16 px white gap); returns the gain."""
    path = Path(path)
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"before and after must have one shape; got {before.shape} and {after.shape}")
    g = exposure_gain(before) if encode else 1.0
    a, b = preview_8bit(before, gain=g, encode=encode), preview_8bit(after, gain=g, encode=encode)
    gap = np.full((a.shape[0], GAP) + a.shape[2:], 255, np.uint8)
    atomic_write_bytes(path, _encode(path, np.concatenate([a, gap, b], axis=1)))
    return g


def write_defocus_png(path: str | os.PathLike, defocus: np.ndarray, scales: Sequence[float],
                      units: str = "signed defocus (x the calibration defocus)", title: Optional[str] = None) -> None:
    """The defocus map, viridis from ``scales[0]`` to ``scales[-1]``, with a labelled colour bar (PNG or JPEG).

    The figure keeps the map's aspect ratio, about 10 inches wide at 100 dpi.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    d = np.asarray(defocus, dtype=np.float64)
    H, W = d.shape
    fig, ax = plt.subplots(figsize=(10, 10 * H / W * 0.85 + 0.6), dpi=100)
    im = ax.imshow(d, cmap="viridis", vmin=float(scales[0]), vmax=float(scales[-1]), interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(units)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(path.suffix.lower())
    if fmt is None:
        plt.close(fig)
        raise ValueError(f"{str(path)!r}: expected one of {', '.join(PREVIEW_SUFFIXES)}; got {path.suffix or 'no suffix'!r}")
    fig.savefig(buffer, format=fmt)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
