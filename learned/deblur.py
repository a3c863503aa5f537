"""``python -m learned.deblur``: deblur photos with a zoo model and a checkpoint (ours or the authors').

Examples
--------
``python -m learned.deblur blurry.png sharp.png --model ifan --checkpoint IFAN.pytorch``
``python -m learned.deblur a.png b.png --out results/ --model nrknet --checkpoint NRKNet_epoch3846.pth``
``python -m learned.deblur left.png out.png --right right.png --model ifan_dual --checkpoint IFAN_dual.pytorch``

The checkpoint format is detected: a KPAC ``.npz``, one of this toolkit's checkpoints (written by
``learned.train`` or ``learned.convert``), or else the authors' state dict (``--official`` forces
the last). 8- and 16-bit PNG in (JPEG too, EXIF orientation applied), the same bit depth out
(``--bit-depth`` overrides). The network output is clipped to [0, 1] before it is written, as in
the authors' evaluation. Images whose activations would exceed ``--max-memory`` are processed in
overlapping tiles with smooth blending (:mod:`learned.tiling`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from . import DUAL_PIXEL, MODELS
from .checkpoints import _torch_load, is_toolkit_checkpoint, load_checkpoint, load_official_checkpoint
from .io import read_image, write_image
from .precision import autocast
from .tiling import activation_bytes_per_pixel, tile_side_for_budget, tiled_apply


def load_any_checkpoint(model_name: str, path: Path, official: bool = False) -> torch.nn.Module:
    """Load ``path`` for ``model_name``, detecting whether it is ours or the authors'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if official or path.suffix.lower() == ".npz":
        return load_official_checkpoint(model_name, path)
    if is_toolkit_checkpoint(_torch_load(path)):
        return load_checkpoint(path, model_name)
    return load_official_checkpoint(model_name, path)


def to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


#: Safety factor on the hook-measured activation memory (functional ops inside forward are not hooked).
MEMORY_SAFETY = 2.0


def deblur_image(
    model: torch.nn.Module,
    image: np.ndarray,
    right: np.ndarray | None = None,
    device: str = "cpu",
    max_memory_gib: float | None = None,
    tile: int | None = None,
    overlap: int = 128,
    progress: bool = False,
    amp: bool = False,
) -> np.ndarray:
    """Run ``model`` on an (H, W, 3) float image (and the right view for dual-pixel models).

    With ``tile`` (or when the image would not fit ``max_memory_gib``), the image is processed in
    overlapping tiles blended smoothly (:mod:`learned.tiling`); the result equals the untiled one
    where a quarter of ``overlap`` covers the network's receptive-field radius. ``amp`` runs the
    network under ``torch.autocast`` (:func:`learned.precision.autocast`: bfloat16, or float16
    on GPUs without bfloat16); the output is returned in float32.
    """
    inputs = [to_tensor(image, device)] + ([] if right is None else [to_tensor(right, device)])
    H, W = image.shape[:2]
    if tile is None and max_memory_gib is not None:
        probe = [x[..., :64, :64] for x in inputs]
        bpp = MEMORY_SAFETY * activation_bytes_per_pixel(model, probe)
        if H * W * bpp > max_memory_gib * 2**30:
            tile = tile_side_for_budget(bpp, max_memory_gib * 2**30)
    with torch.inference_mode(), autocast(device, amp):
        if tile is None or (tile >= H and tile >= W):
            out = model(*inputs)
        else:
            out = tiled_apply(model, inputs, tile, min(overlap, tile // 2), progress=progress)
    return np.clip(out[0].float().cpu().numpy().transpose(1, 2, 0), 0.0, 1.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learned.deblur", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="INPUT OUTPUT, or INPUT... with --out DIR")
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--official", action="store_true", help="treat the checkpoint as the authors' format")
    parser.add_argument("--out", type=Path, help="output folder (then every positional path is an input)")
    parser.add_argument("--right", type=Path, help="right view for a dual-pixel model (the input is the left view)")
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bit depth (default: the input's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-memory", type=float, default=8.0, metavar="GIB",
                        help="activation memory budget; larger images are tiled (default 8 GiB)")
    parser.add_argument("--tile", type=int, help="force tiles of this side (pixels)")
    parser.add_argument("--amp", action="store_true",
                        help="run the network under torch.autocast (bfloat16; float16 on GPUs without it)")
    parser.add_argument("--overlap", type=int, default=128,
                        help="tile overlap; exact when overlap/4 >= the receptive-field radius (default 128)")
    args = parser.parse_args(argv)

    if args.out is None:
        if len(args.paths) != 2:
            parser.error(f"give INPUT OUTPUT (2 paths) or inputs with --out DIR; got {len(args.paths)} paths")
        jobs = [(args.paths[0], args.paths[1])]
    else:
        jobs = [(p, args.out / (p.stem + ".png")) for p in args.paths]
    dual = args.model in DUAL_PIXEL
    if dual and (args.right is None or len(jobs) != 1):
        parser.error(f"model {args.model!r} takes a dual-pixel pair: give one left-view INPUT and --right RIGHT")
    if not dual and args.right is not None:
        parser.error(f"model {args.model!r} takes a single image; --right is only for {sorted(DUAL_PIXEL)}")

    model = load_any_checkpoint(args.model, args.checkpoint, args.official).to(args.device)
    for src, dst in jobs:
        image, depth = read_image(src)
        right = None
        if dual:
            right, _ = read_image(args.right)
            if right.shape != image.shape:
                raise ValueError(f"left {image.shape} and right {right.shape} views must have the same size")
        result = deblur_image(model, image, right, args.device, args.max_memory, args.tile, args.overlap,
                              progress=sys.stderr.isatty(), amp=args.amp)
        write_image(dst, result, args.bit_depth or depth)
        print(f"{src} -> {dst} ({args.bit_depth or depth}-bit)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
