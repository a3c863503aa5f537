"""Tiled inference with overlap and smooth blending, for images larger than a memory budget.

Tiles of side ``tile`` step by ``tile - overlap``. Across each seam the two tiles' outputs are
blended with weights that are **zero on the outer quarter of the overlap** (where a tile's output
is affected by its own border), a raised-cosine ramp over the middle half, and one on the inner
quarter; at the image border a tile keeps weight one. If a quarter of the overlap covers the
network's receptive-field radius, every blended pixel comes from tiles that saw all of its
context, and the tiled result equals the untiled one up to rounding; with less overlap it is
still seamless (the weights are smooth and sum to one everywhere).

The networks' receptive fields are far larger than any overlap (KPAC's global pooling makes its
own infinite), so "exact" means within a tolerance: :data:`CONTEXT_PX` holds, per model, the
measured *effective* context (``python -m benchmarks.receptive_field``, :func:`context_errors`)
that keeps a pixel's output within 1/255 (and within 1e-6) of the output with more context.
Tiles start at multiples of :data:`TILE_ALIGN` so that they keep the strided layers' sampling
phase of the whole image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

__all__ = ["tile_starts", "trust_weights", "tiled_apply", "activation_bytes_per_pixel", "tile_side_for_budget",
           "TilePlan", "plan_tiles", "context_errors",
           "context_warning", "CONTEXT_PX", "CONTEXT_MAX_ERROR", "TILE_ALIGN"]


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``length``, neighbours overlapping by >= ``overlap``.

    With ``align == 1`` the starts are evenly spread and every tile has side ``tile``. With
    ``align > 1`` every start is a multiple of ``align`` (the network's downsampling factor, so
    that each tile keeps the strided layers' sampling phase of the whole image: a tile shifted by
    an odd pixel changes a strided network's output everywhere, not only near its border); the
    starts are then greedy and the last tile, which ends at ``length``, may be shorter.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile; got overlap {overlap}, tile {tile}")
    if align < 1 or (align > 1 and tile - overlap < align):
        raise ValueError(f"need align >= 1 and tile - overlap >= align; got align {align}, tile {tile}, overlap {overlap}")
    if length <= tile:
        return [0]
    if align == 1:
        count = math.ceil((length - tile) / (tile - overlap)) + 1
        return [round(i * (length - tile) / (count - 1)) for i in range(count)]  # evenly spread
    last = -(-(length - tile) // align) * align
    starts = [0]
    while starts[-1] < last:
        starts.append(min(last, (starts[-1] + tile - overlap) // align * align))
    return starts


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
    align: int = 1,
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
    align : int
        Tile starts are multiples of this (see :func:`tile_starts`); give the network's
        downsampling factor (:data:`TILE_ALIGN`) for results that match the untiled ones.
    """
    H, W = inputs[0].shape[-2:]
    if any(x.shape[-2:] != (H, W) for x in inputs):
        raise ValueError(f"all inputs must share the spatial size; got {[tuple(x.shape) for x in inputs]}")
    rows, cols = tile_starts(H, tile, overlap, align), tile_starts(W, tile, overlap, align)
    out = weight_sum = None
    jobs = [(r0, c0) for r0 in rows for c0 in cols]
    if progress:
        from optics.cli import progress_bar

        jobs = progress_bar(jobs, desc="tiles", unit="tile")
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


def context_errors(model: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], margins: Sequence[int],
                   centre: int = 32) -> list[tuple[int, float, float]]:
    """Max and mean |output change| of a central patch when its input context is cut to ``m`` px.

    The reference is the output of the whole input (B, C, S, S) on its central ``centre`` x
    ``centre`` patch (context ``(S - centre) / 2`` px on every side); for each margin ``m`` the
    network sees only that patch plus ``m`` px around it. Margins should keep ``(S - centre) / 2 - m``
    a multiple of the network's downsampling factor (16 is safe for every model here), so that the
    crop keeps the strided layers' sampling phase. Returns ``(m, max_err, mean_err)`` per margin on
    the unclipped outputs: an upper bound of the change of the clipped outputs the CLI writes
    (clipping is 1-Lipschitz), and still informative where an untrained network saturates.

    Notes
    -----
    The *effective* context at tolerance ``tol`` is the smallest ``m`` with ``max_err < tol``. A
    network's theoretical receptive field can be far larger (global pooling makes it infinite),
    so this is a measured, tolerance- and weight-dependent figure, not a bound.
    """
    S = inputs[0].shape[-1]
    if inputs[0].shape[-2] != S or (S - centre) % 2:
        raise ValueError(f"inputs must be square with (side - centre) even; got {tuple(inputs[0].shape)}, centre {centre}")
    full = (S - centre) // 2
    with torch.inference_mode():
        ref = model(*inputs)[..., full : full + centre, full : full + centre]
        rows = []
        for m in margins:
            if not 0 <= m <= full:
                raise ValueError(f"margin must be in [0, {full}]; got {m}")
            a, b = full - m, full + centre + m
            y = model(*[x[..., a:b, a:b] for x in inputs])[..., m : m + centre, m : m + centre]
            d = (y - ref).abs().float()
            rows.append((int(m), float(d.max()), float(d.mean())))
    return rows


#: Downsampling factor of every model in :data:`learned.MODELS`: tiles start at multiples of it
#: (:func:`tile_starts`), so every tile keeps the strided layers' sampling phase of the whole image.
TILE_ALIGN = 16

#: Measured by ``python -m benchmarks.receptive_field --size 384 --margins 0 16 32 48 64 96 128 160``
#: (:func:`context_errors`; default configurations, ``torch.manual_seed(0)`` random initialisation,
#: eval mode, a 32 px central patch, 176 px of context as the reference). Per model, the max
#: |unclipped output change|, in units of 1/255, when the context is cut to ``m`` px: ``{m: error}``.
#: Effective figures at these weights, not receptive fields (KPAC's global pooling makes its own
#: infinite); trained weights can need more.
CONTEXT_MAX_ERROR: dict[str, dict[int, float]] = {
    "ifan": {0: 42.7, 16: 0.659, 32: 0.168, 48: 0.0529, 64: 0.0239, 96: 0.00315, 128: 0.000365, 160: 6.08e-05},
    "ifan_dual": {0: 46.5, 16: 0.797, 32: 0.259, 48: 0.191, 64: 0.0956, 96: 0.0098, 128: 0.000988, 160: 7.6e-05},
    "k3dn_large": {0: 8.3, 16: 0.0312, 32: 0.000334, 48: 1.52e-05, 64: 1.52e-05, 96: 1.52e-05, 128: 1.52e-05, 160: 0},
    "k3dn_light": {0: 24.3, 16: 0.0426, 32: 0.000243, 48: 3.04e-05, 64: 3.04e-05, 96: 3.04e-05, 128: 1.52e-05, 160: 0},
    "k3dn_tiny": {0: 14.3, 16: 0.0322, 32: 0.000365, 48: 1.52e-05, 64: 1.52e-05, 96: 3.04e-05, 128: 1.52e-05, 160: 0},
    "kpac": {0: 11.2, 16: 0.145, 32: 0.0709, 48: 0.065, 64: 0.0516, 96: 0.0198, 128: 0.00693, 160: 0.00255},
    "kpac_2level": {0: 11.1, 16: 0.153, 32: 0.0745, 48: 0.0461, 64: 0.0181, 96: 0.000912, 128: 1.52e-05, 160: 1.52e-05},
    "kpac_dual": {0: 17.7, 16: 0.139, 32: 0.123, 48: 0.0948, 64: 0.0621, 96: 0.033, 128: 0.0129, 160: 0.00306},
    "nrknet": {0: 82.8, 16: 10.2, 32: 0.0627, 48: 0.00541, 64: 0.00207, 96: 0.000182, 128: 0.000122, 160: 0.000122},
}

#: Smallest measured context (px) keeping that change below 1/255 and below 1e-6 (None: more than
#: 160 px), from :data:`CONTEXT_MAX_ERROR`; tiles are within the first when ``overlap // 4`` covers it.
CONTEXT_PX: dict[str, tuple[int, Optional[int]]] = {
    "ifan": (16, 160),
    "ifan_dual": (16, 160),
    "k3dn_large": (16, 48),
    "k3dn_light": (16, 32),
    "k3dn_tiny": (16, 48),
    "kpac": (16, None),
    "kpac_2level": (16, 128),
    "kpac_dual": (16, None),
    "nrknet": (32, 96),
}


def context_warning(model_name: str, overlap: int) -> str:
    """One line stating the measured seam error when ``overlap // 4`` is below the context
    :data:`CONTEXT_PX` gives for ``model_name`` at 1/255; ``""`` when it is not (or the model is unknown)."""
    if model_name not in CONTEXT_PX:
        return ""
    need, context = CONTEXT_PX[model_name][0], overlap // 4
    if context >= need:
        return ""
    m = max(k for k in CONTEXT_MAX_ERROR[model_name] if k <= context)
    return (f"--overlap {overlap} px keeps {context} px of context at a seam, below the {need} px that {model_name} "
            f"needs for seams within 1/255 (learned.tiling.CONTEXT_PX): expect seam errors up to about "
            f"{CONTEXT_MAX_ERROR[model_name][m]:.3g}/255 (measured with {m} px at random initialisation; trained "
            f"weights can differ); give --overlap {4 * need} or more")
