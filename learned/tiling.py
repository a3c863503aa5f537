"""Tiled inference with overlap and smooth blending, for images larger than a memory budget.

Tiles of side ``tile`` step by ``tile - overlap``. Across each seam the two tiles' outputs are
blended with weights that are **zero on the outer quarter of the overlap** (where a tile's output
is affected by its own border), a raised-cosine ramp over the middle half, and one on the inner
quarter; at the image border a tile keeps weight one. If a quarter of the overlap covers the
network's receptive-field radius, every blended pixel comes from tiles that saw all of its
context, and the tiled result equals the untiled one up to rounding; with less overlap it is
still seamless (the weights are smooth and sum to one everywhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

__all__ = ["tile_starts", "trust_weights", "tiled_apply", "activation_bytes_per_pixel", "tile_side_for_budget",
           "TilePlan", "plan_tiles"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``length``, neighbours overlapping by >= ``overlap``."""
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile; got overlap {overlap}, tile {tile}")
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]  # evenly spread


def trust_weights(start: int, size: int, length: int, overlap: int) -> np.ndarray:
    """1-D trust of one tile's output: 0 on the outer quarter of the overlap at an inner edge,
    a raised-cosine ramp over the next half, 1 elsewhere and at the image border."""
    d = np.arange(size, dtype=np.float64)
    q, r = overlap // 4, max(overlap // 2, 1)

    def ramp(dist):
        return np.clip(0.5 - 0.5 * np.cos(np.pi * np.clip((dist - q + 0.5) / r, 0.0, 1.0)), 0.0, 1.0) * (dist >= q)

    w = np.ones(size)
    if start > 0:
        w *= ramp(d)
    if start + size < length:
        w *= ramp(size - 1 - d)
    return w


def tiled_apply(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    tile: int,
    overlap: int,
    progress: bool = False,
) -> torch.Tensor:
    """Apply ``fn`` (B, C, h, w)... -> (B, C', h, w) tile by tile and blend the tiles.

    The blended output is ``sum_i t_i y_i / sum_i t_i`` with the separable trust weights of
    :func:`trust_weights` (a smooth partition of unity).

    Parameters
    ----------
    fn : callable
        Network (or any map) taking the tiles of every input (same spatial size) and returning one
        tensor of that spatial size.
    inputs : sequence of tensors, each (B, C_i, H, W)
    tile, overlap : int
        Tile side and overlap in pixels (``0 <= overlap < tile``).
    progress : bool
        Show a tqdm progress bar over tiles.
    """
    H, W = inputs[0].shape[-2:]
    if any(x.shape[-2:] != (H, W) for x in inputs):
        raise ValueError(f"all inputs must share the spatial size; got {[tuple(x.shape) for x in inputs]}")
    rows, cols = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    out = weight_sum = None
    jobs = [(r0, c0) for r0 in rows for c0 in cols]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="tiles", unit="tile")
    for r0, c0 in jobs:
        h, w = min(tile, H - r0), min(tile, W - c0)
        y = fn(*[x[..., r0 : r0 + h, c0 : c0 + w] for x in inputs])
        if out is None:  # blend in float32 at least (a bfloat16 output under autocast, too)
            dtype = torch.promote_types(y.dtype, torch.float32)
            out = torch.zeros((*y.shape[:-2], H, W), dtype=dtype, device=y.device)
            weight_sum = torch.zeros((H, W), dtype=dtype, device=y.device)
        t = np.outer(trust_weights(r0, h, H, overlap), trust_weights(c0, w, W, overlap))
        t = torch.from_numpy(t).to(dtype=out.dtype, device=y.device)
        out[..., r0 : r0 + h, c0 : c0 + w] += y * t
        weight_sum[r0 : r0 + h, c0 : c0 + w] += t
    return out / weight_sum


def activation_bytes_per_pixel(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Upper bound of inference memory per input pixel: all module outputs of one forward, summed.

    Measured with forward hooks on a small probe input; under ``torch.inference_mode`` the real
    peak is lower (intermediate tensors are freed), so a tile sized from this bound fits.
    """
    total = 0

    def hook(_module, _inp, output):
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.inference_mode():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    pixels = inputs[0].shape[-1] * inputs[0].shape[-2] * inputs[0].shape[0]
    return max(total, 1) / pixels


def tile_side_for_budget(bytes_per_pixel: float, budget_bytes: float, multiple: int = 16, minimum: int = 64) -> int:
    """Largest tile side (a multiple of ``multiple``) whose activations fit ``budget_bytes``."""
    side = int(math.sqrt(max(budget_bytes, 1) / bytes_per_pixel)) // multiple * multiple
    if side < minimum:
        raise ValueError(
            f"memory budget {budget_bytes / 2**30:.2f} GiB allows tiles of only {side} px "
            f"(model needs ~{bytes_per_pixel / 1024:.1f} KiB per pixel); raise --max-memory"
        )
    return side


@dataclass(frozen=True)
class TilePlan:
    """How an image is processed: ``tile`` None means in one piece; ``exact`` False means the
    overlap had to shrink below the one asked for (only with ``allow_inexact``)."""

    tile: Optional[int]
    overlap: int
    exact: bool = True
    reason: str = ""


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_tiles(height: int, width: int, *, overlap: int, tile: Optional[int] = None,
               bytes_per_pixel: Optional[float] = None, budget_bytes: Optional[float] = None,
               allow_inexact: bool = False, multiple: int = 16, minimum: int = 64) -> TilePlan:
    """Choose tiles that keep ``overlap`` (the context every seam pixel needs), or refuse.

    The tile side is ``tile`` if given, else the largest multiple of ``multiple`` whose
    activations (``bytes_per_pixel`` per pixel) fit ``budget_bytes``; no tiling when the whole
    image fits. Tiles keep the requested ``overlap`` only if they are at least ``2 overlap`` (and
    ``minimum``) px; otherwise this raises ``ValueError`` stating the smallest budget (or tile)
    that would work, unless ``allow_inexact``: then the overlap shrinks to half the tile and the
    plan is marked inexact.
    """
    if overlap < 0:
        raise ValueError(f"--overlap must be >= 0; got {overlap}")
    budgeted = tile is None
    if budgeted:
        if budget_bytes is None or bytes_per_pixel is None or height * width * bytes_per_pixel <= budget_bytes:
            return TilePlan(None, overlap)
        tile = int(math.sqrt(max(budget_bytes, 1) / bytes_per_pixel)) // multiple * multiple
    elif tile < 1:
        raise ValueError(f"--tile must be >= 1; got {tile}")
    if tile >= height and tile >= width:
        return TilePlan(None, overlap)
    needed = max(_round_up(2 * overlap, multiple), minimum)
    if tile >= needed:
        return TilePlan(tile, overlap)
    if budgeted:
        smallest = needed * needed * bytes_per_pixel / 2**30
        step = 10 ** (math.floor(math.log10(smallest)) - 2)  # 3 significant digits, rounded up: it must suffice
        smallest = math.ceil(smallest / step) * step
        reason = (f"--max-memory {budget_bytes / 2**30:.3g} GiB allows tiles of only {tile} px, but tiles that keep "
                  f"--overlap {overlap} px must be at least {needed} px: give --max-memory {smallest:.3g} or more")
    else:
        reason = f"--tile {tile} px is smaller than the {needed} px that --overlap {overlap} px needs: give --tile {needed} or more"
    if tile < minimum:
        raise ValueError(reason + f" (tiles below {minimum} px are refused)")
    if not allow_inexact:
        raise ValueError(reason + ", or a smaller --overlap (exact only while overlap/4 covers the network's "
                         "receptive-field radius), or --allow-inexact-tiles to accept seams")
    return TilePlan(tile, tile // 2, exact=False, reason=reason)
