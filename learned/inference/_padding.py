"""Input checks and pad-to-multiple / crop-back helpers shared by the ``learned`` networks.

Encoder-decoder networks need spatial sizes divisible by ``2 ** levels``. Rather than
resizing or cropping the user's image, every network pads its input up to the next multiple
with :func:`pad_to_multiple` and crops its output back with :func:`crop_to`, so output shape
always equals input shape and no pixel is dropped.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["pad_to_multiple", "crop_to", "check_input"]

_PAD_MODES = ("replicate", "reflect", "constant", "circular")


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "replicate"
) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad a (B, C, H, W) tensor at the bottom/right so H and W become multiples of ``multiple``.

    Parameters
    ----------
    x : torch.Tensor
        Batch of shape (B, C, H, W).
    multiple : int
        Positive integer; the padded height and width are the smallest multiples of it that
        are >= H and >= W.
    mode : {'replicate', 'reflect', 'constant', 'circular'}
        Padding mode passed to :func:`torch.nn.functional.pad` (``'constant'`` pads zeros).
        ``'reflect'`` needs the padding to be smaller than the size; otherwise a ValueError
        is raised (nothing is substituted silently).

    Returns
    -------
    x_padded : torch.Tensor
        Shape (B, C, H', W') with H' = ceil(H / multiple) * multiple (likewise W'). ``x`` itself
        (no copy) when no padding is needed.
    original_size : tuple of int
        ``(H, W)``, to pass to :func:`crop_to`.

    Notes
    -----
    Padding is added only at the bottom and right, so pixel (i, j) of the input keeps its
    coordinates; :func:`crop_to` then takes ``[..., :H, :W]``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (B, C, H, W); got {x.ndim}-D tensor of shape {tuple(x.shape)}")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive int; got {multiple!r}")
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {_PAD_MODES}; got {mode!r}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    if mode == "reflect" and (pad_h >= h or pad_w >= w):
        raise ValueError(
            f"mode='reflect' needs padding smaller than the size; got size {(h, w)} and padding "
            f"{(pad_h, pad_w)} to reach a multiple of {multiple}"
        )
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Crop a (..., H', W') tensor to its top-left (..., H, W) corner, undoing :func:`pad_to_multiple`.

    Parameters
    ----------
    x : torch.Tensor
        Tensor of shape (..., H', W') with H' >= H and W' >= W.
    size : tuple of int
        Target ``(H, W)``.

    Returns
    -------
    torch.Tensor
        View ``x[..., :H, :W]``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., H, W); got shape {tuple(x.shape)}")
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"size must be a pair of ints (H, W); got {size!r}") from None
    if h < 1 or w < 1 or h > x.shape[-2] or w > x.shape[-1]:
        raise ValueError(
            f"size must satisfy 1 <= H <= {x.shape[-2]} and 1 <= W <= {x.shape[-1]} for a tensor of "
            f"shape {tuple(x.shape)}; got {(h, w)}"
        )
    return x[..., :h, :w]


def check_input(
    x: torch.Tensor,
    name: str,
    channels: Optional[int],
    min_size: int = 1,
) -> None:
    """Check a network input: a finite float (B, C, H, W) tensor with the expected channels.

    Parameters
    ----------
    x : torch.Tensor
        The tensor to check.
    name : str
        Argument name used in error messages.
    channels : int or None
        Required channel count C, or None to accept any.
    min_size : int
        Minimum height and width (the network's smallest supported input).

    Raises
    ------
    TypeError
        If ``x`` is not a torch tensor or its dtype is not floating point.
    ValueError
        If ``x`` is not 4-D, has the wrong channel count, an empty batch, a side smaller than
        ``min_size``, or contains NaN/inf.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must have a floating dtype (float32 or float64, RGB in [0, 1]); got {x.dtype}. "
            "Convert 8-bit images with x.float() / 255 first."
        )
    if x.ndim != 4:
        hint = " (add a batch axis with x[None])" if x.ndim == 3 else ""
        raise ValueError(
            f"{name} must be 4-D (B, C, H, W); got {x.ndim}-D tensor of shape {tuple(x.shape)}{hint}"
        )
    if x.shape[0] < 1:
        raise ValueError(f"{name} must have a batch size >= 1; got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels; got {x.shape[1]} (shape {tuple(x.shape)})")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h < min_size or w < min_size:
        raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels; got {h}x{w}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise ValueError(f"{name} must contain only finite values; got {n_bad} NaN or inf entries")


def check_dual_pixel_inputs(
    left: torch.Tensor, right: torch.Tensor, center: Optional[torch.Tensor], min_size: int
) -> torch.Tensor:
    """Check a dual-pixel pair (and the combined image); return ``center``.

    ``center`` defaults to ``(left + right) / 2``, the dual-pixel image formation (K3DN Eq. 1-2):
    the full-aperture image is the mean of the two half-aperture views.
    """
    check_input(left, "left", 3, min_size)
    check_input(right, "right", 3, min_size)
    if center is None:
        if left.shape != right.shape:
            raise ValueError(f"left and right must have the same shape; got {tuple(left.shape)} and {tuple(right.shape)}")
        return (left + right) / 2
    check_input(center, "center", 3, min_size)
    if not (left.shape == right.shape == center.shape):
        raise ValueError(
            "left, right and center must have the same shape; got "
            f"{tuple(left.shape)}, {tuple(right.shape)} and {tuple(center.shape)}"
        )
    return center
