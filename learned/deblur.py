"""``python -m learned.deblur``: deblur photos with a zoo model and a checkpoint (ours or the authors').

Examples
--------
``python -m learned.deblur blurry.png sharp.png --model ifan --checkpoint IFAN.pytorch``
``python -m learned.deblur a.png b.png --out results/ --model nrknet --checkpoint NRKNet_epoch3846.pth``
``python -m learned.deblur left.png out.png --right right.png --model ifan_dual --checkpoint IFAN_dual.pytorch``
``python -m learned.deblur left.png out.png --right right.png --model dp_refine --pretrained pixel4``

``--pretrained NAME`` takes bundled weights (:mod:`learned.pretrained`) instead of ``--checkpoint``.
``dp_refine`` first runs the training-free dual-pixel deblurring (:func:`optics.dual_pixel.deblur.dual_pixel_deblur`
with ``--psf``, default: the calibration beside the views, else the fitted Pixel 4 field) and refines its estimate; its views are
linear raw planes as the ``pixeldp`` reader gives them (black level removed, the right view's
vignetting corrected: ``python -m optics.dual_pixel.deblur``'s reading of Xin et al.'s captures), never
tiled.

The checkpoint format is detected: a KPAC ``.npz``, one of this toolkit's checkpoints (written by
``learned.train`` or ``learned.convert``), or else the authors' state dict (``--official`` forces
the last). 8- and 16-bit PNG in (JPEG too, EXIF orientation applied), the same bit depth out
(``--bit-depth`` overrides). The network output is clipped to [0, 1] before it is written, as in
the authors' evaluation. Images whose activations would exceed ``--max-memory`` are processed in
overlapping tiles with smooth blending (:mod:`learned.tiling`).

Reads PNG, TIFF (8/16 bit), JPEG and BMP; writes PNG or TIFF (``--suffix`` with ``--out``). Nothing
is overwritten silently: an output that is an input is refused, an existing output needs
``--overwrite``, two inputs with one output name (``a.png``, ``a.jpg``) are refused, all before the
model is loaded. Tiles keep ``--overlap``; when ``--max-memory`` cannot allow that, the command
refuses and names the smallest budget that would, unless ``--allow-inexact-tiles``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from optics import cli
from optics.dual_pixel import capture as cap
from optics.dual_pixel.capture import PIXEL4_SENSOR_FRAME
from optics.dual_pixel.deblur import PARAMETRIC_PSFS, check_psf_flags, default_dual_pixel_psfs, window_progress

from . import DUAL_PIXEL, MODELS, PHYSICS_INPUT
from ._cli import add_threads_argument, apply_threads, check_device
from .training.checkpoints import load_any_checkpoint  # noqa: F401  (its home before issue 19's review)
from .data.io import READ_SUFFIXES, WRITE_SUFFIXES, is_grayscale, read_image, write_image
from .data.readers import image_shape
from .inference.precision import autocast
from .inference.tiling import TILE_ALIGN, activation_bytes_per_pixel, context_errors, context_warning, plan_tiles, tiled_apply


def to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


#: Safety factor on the hook-measured activation memory (functional ops inside forward are not hooked).
MEMORY_SAFETY = 2.0


def refine_physics(model: torch.nn.Module, model_name: str, left: np.ndarray, right: np.ndarray, physics,
                   device: str = "cpu", amp: bool = False) -> np.ndarray:
    """A model of :data:`learned.PHYSICS_INPUT` on one (H, W, 3) pair: the estimate of ``physics``
    (a :class:`learned.baseline.DualPixelBaseline`), then the network on the whole image (never
    tiled); the (H, W, 3) output clipped to [0, 1]."""
    from .baseline import add_physics
    from .evaluate import run_model

    arrays, _ = add_physics({"left": left, "right": right}, physics)
    return run_model(model, model_name, arrays, device=device, amp=amp)


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
    allow_inexact_tiles: bool = False,
    model_name: str | None = None,
) -> np.ndarray:
    """Run ``model`` on an (H, W, 3) float image (and the right view for dual-pixel models).

    With ``tile`` (or when the image would not fit ``max_memory_gib``), the image is processed in
    overlapping tiles blended smoothly (:mod:`learned.tiling`); the result equals the untiled one
    where a quarter of ``overlap`` covers the network's receptive-field radius. The overlap is
    never shrunk silently: tiles too small for it raise ``ValueError`` naming the smallest budget
    that works, unless ``allow_inexact_tiles`` (then a warning states the error measured on one
    crop of this image). ``amp`` runs the network under ``torch.autocast``
    (:func:`learned.precision.autocast`: bfloat16, or float16 on GPUs without bfloat16); the
    output is returned in float32. Tile starts are multiples of :data:`learned.tiling.TILE_ALIGN`
    (16 px) so that every tile keeps the strided layers' sampling phase of the whole image.

    With ``model_name`` (a key of :data:`learned.MODELS`), tiling whose ``overlap // 4`` is below
    that model's measured effective context at 1/255 (:data:`learned.tiling.CONTEXT_PX`) prints
    one warning stating the measured seam error. The default ``overlap`` is kept rather than raised
    to each model's context: 128 px (32 px of context) already covers every model's measured
    context at 1/255, and a larger default would only cost memory and time; a user who lowers it
    is told what it costs. A model that normalises with the statistics of its whole input (NRKNet
    with ``batchnorm_stats='batch'``) is never tiled silently: tiling raises ``ValueError`` unless
    ``allow_inexact_tiles`` (then a warning).
    """
    inputs = [to_tensor(image, device)] + ([] if right is None else [to_tensor(right, device)])
    H, W = image.shape[:2]
    bpp = None
    if tile is None and max_memory_gib is not None and H * W > 64 * 64:
        probe = [x[..., :64, :64] for x in inputs]
        bpp = MEMORY_SAFETY * activation_bytes_per_pixel(model, probe)
    plan = plan_tiles(H, W, overlap=overlap, tile=tile, bytes_per_pixel=bpp,
                      budget_bytes=None if max_memory_gib is None else max_memory_gib * 2**30,
                      allow_inexact=allow_inexact_tiles)
    if plan.tile is not None and getattr(model, "batchnorm_stats", None) == "batch":
        message = (f"the model normalises with the statistics of its whole input (batchnorm_stats='batch'), so "
                   f"{plan.tile} px tiles would each be normalised differently")
        if not allow_inexact_tiles:
            raise ValueError(f"{message}; run the image whole (no --tile, a larger --max-memory) or pass "
                             "--allow-inexact-tiles")
        cli.warn(f"{message}; expect seams")
    with torch.inference_mode(), autocast(device, amp):
        if plan.tile is None:
            out = model(*inputs)
        else:
            if not plan.exact:
                worst, mean = context_error(model, inputs, plan.tile)
                cli.warn(f"inexact tiles ({plan.reason}): using {plan.tile} px tiles with a {plan.overlap} px overlap; "
                         f"expect errors near the seams of about {255 * worst:.1f}/255 at most ({255 * mean:.2f}/255 "
                         f"on average), measured on one crop of this image with {plan.overlap // 4} px of context "
                         "against more; the true error can be larger")
            elif model_name is not None and (message := context_warning(model_name, plan.overlap)):
                cli.warn(message)
            out = tiled_apply(model, inputs, plan.tile, plan.overlap, progress=progress, align=TILE_ALIGN)
    return np.clip(out[0].float().cpu().numpy().transpose(1, 2, 0), 0.0, 1.0)


def context_error(model, inputs, tile: int) -> tuple[float, float]:
    """Max and mean |output| change (clipped to [0, 1]) from cutting a pixel's context to ``tile // 8`` px.

    On a centred crop of side ``t = min(tile, H, W)``, the output of its central half (inner
    pixels at least ``t // 8`` px from that half's border, the context a seam pixel keeps when the
    overlap is half the tile) is compared with the output of the whole crop
    (:func:`learned.tiling.context_errors` with margin ``t // 8``).
    """
    H, W = inputs[0].shape[-2:]
    t = min(tile, H, W)
    r0, c0 = (H - t) // 2, (W - t) // 2
    crop = [x[..., r0 : r0 + t, c0 : c0 + t] for x in inputs]
    m, q = t // 4, t // 8
    ((_, worst, mean),) = context_errors(lambda *x: model(*x).clamp(0, 1), crop, [q], centre=t - 2 * (m + q))
    return worst, mean


def _read_sizes(paths, problems: list) -> dict:
    """Read every input image once before the model is used: each unreadable or empty file is
    named (all of them, one entry of ``problems``), so a batch does not stop half-way at a bad
    file. Returns each readable path's (height, width)."""
    bad, sizes = [], {}
    for path in paths:
        try:
            image, _ = read_image(path)
            is_grayscale(path)
        except (ValueError, OSError) as err:
            bad.append(cli.one_line(err))
            continue
        sizes[path] = image.shape[:2]
    if bad:
        problems.append(f"{len(bad)} of {len(paths)} input images cannot be deblurred (nothing was written): "
                        + "; ".join(bad))
    return sizes


def _raise_problems(problems: list) -> None:
    """One error line naming every problem found (numbered when there are several)."""
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError(f"{len(problems)} problems with the inputs (nothing was written): "
                         + " ".join(f"({i}) {text}" for i, text in enumerate(problems, 1)))


def _check_sizes(sizes: dict, model: torch.nn.Module, model_name: str) -> None:
    """Every image at least the model's ``min_size`` on each side, checked before any is processed."""
    minimum = int(getattr(model, "min_size", 1))
    small = [f"{str(p)!r} is {h}x{w} px (HxW)" for p, (h, w) in sizes.items() if min(h, w) < minimum]
    if small:
        raise ValueError(f"{len(small)} of {len(sizes)} input images are smaller than the {minimum}x{minimum} px "
                         f"that {model_name} needs (nothing was written): " + "; ".join(small))


def _jobs(args) -> list[tuple[Path, Path]]:
    if args.out is None:
        if len(args.paths) != 2:
            raise ValueError(f"give INPUT OUTPUT (2 paths), or inputs with --out DIR; got {len(args.paths)} paths "
                             f"({' '.join(map(str, args.paths[:4]))}{' ...' if len(args.paths) > 4 else ''})")
        return [(args.paths[0], args.paths[1])]
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out {str(args.out)!r} is a file; expected a folder")
    return [(p, args.out / (p.stem + args.suffix)) for p in args.paths]


def main(argv=None) -> int:
    parser = cli.ArgumentParser(prog="python -m learned.deblur", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="INPUT OUTPUT, or INPUT... with --out DIR")
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", type=Path, help="our checkpoint or the authors' file")
    weights.add_argument("--pretrained", metavar="NAME",
                         help="bundled weights (python -m learned.pretrained lists them), e.g. pixel4")
    cap.add_capture_arguments(parser, psf_help_extra=" (dp_refine's physics estimate; --dual-pixel-psf is "
                                                     "the same option)")
    parser.add_argument("--dual-pixel-psf", dest="psf", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    cap.add_display_arguments(parser)
    parser.add_argument("--official", action="store_true", help="treat the checkpoint as the authors' format")
    parser.add_argument("--out", type=Path, help="output folder (then every positional path is an input)")
    parser.add_argument("--suffix", default=".png", choices=WRITE_SUFFIXES,
                        help="output format with --out (default .png)")
    cli.add_overwrite_argument(parser)
    parser.add_argument("--right", type=Path, help="right view for a dual-pixel model (the input is the left view)")
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bit depth (default: the input's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_threads_argument(parser)
    parser.add_argument("--max-memory", type=float, default=8.0, metavar="GIB",
                        help="activation memory budget; larger images are tiled (default 8 GiB)")
    parser.add_argument("--tile", type=int, help="force tiles of this side (pixels)")
    parser.add_argument("--amp", action="store_true",
                        help="run the network under torch.autocast (bfloat16; float16 on GPUs without it)")
    parser.add_argument("--overlap", type=int, default=128,
                        help="tile overlap; seams within 1/255 when overlap/4 >= the model's measured context "
                             "(16 or 32 px, see learned.tiling.CONTEXT_PX; default 128)")
    parser.add_argument("--allow-inexact-tiles", action="store_true",
                        help="when the budget cannot keep --overlap, shrink it (with a warning stating the error)")
    args = parser.parse_args(argv)

    dual = args.model in DUAL_PIXEL
    if dual and args.right is None:
        parser.error(f"model {args.model!r} takes a dual-pixel pair: give one left-view INPUT and --right RIGHT")
    if not dual and args.right is not None:
        parser.error(f"model {args.model!r} takes a single image; --right is only for {sorted(DUAL_PIXEL)}")
    if args.max_memory <= 0:
        parser.error(f"argument --max-memory: expected a budget > 0 GiB; got {args.max_memory}")
    if args.overlap < 0:
        parser.error(f"argument --overlap: expected >= 0 px; got {args.overlap}")
    if args.tile is not None and args.tile < 1:
        parser.error(f"argument --tile: expected >= 1 px; got {args.tile}")
    given = [flag for flag, value, default in (("--input-format", args.input_format, "auto"),
                                               ("--white-sheets", args.white_sheets, "auto"),
                                               ("--origin", args.origin, None), ("--crop", args.crop, "auto"),
                                               ("--outside", args.outside, "field"))
             if value != default]
    if given and not dual:
        parser.error(f"{', '.join(given)}: only for the dual-pixel models {sorted(DUAL_PIXEL)} (they read a capture)")
    psf_flags = [flag for flag, value, default in (("--psf", args.psf, "auto"), ("--psf-radius", args.psf_radius, None),
                                                   ("--psf-sign", args.psf_sign, 1), ("--psf-order", args.psf_order, 3),
                                                   ("--outside", args.outside, "field"),
                                                   ("--defocus-png", args.defocus_png, None))
                 if value != default]
    if psf_flags and args.model not in PHYSICS_INPUT:
        parser.error(f"{psf_flags[0]} is only for {sorted(PHYSICS_INPUT)} (the models with a physics estimate)")
    try:
        check_psf_flags(args)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.pretrained is not None:
        from .pretrained import checkpoint_path

        try:
            args.checkpoint = checkpoint_path(args.model, args.pretrained)
        except (ValueError, FileNotFoundError) as err:
            parser.error(str(err))
    # everything checked before the model is loaded
    device = str(check_device(args.device))
    threads = apply_threads(args.threads)
    jobs = _jobs(args)
    if dual and len(jobs) != 1:
        parser.error(f"model {args.model!r} takes one dual-pixel pair; got {len(jobs)} inputs")
    # every bad input is named in one line: missing files, outputs, unreadable images, frames, sizes
    problems: list[str] = []

    def check(fn, *a, **kw):
        try:
            return fn(*a, **kw)
        except cli.BAD_INPUT as err:
            problems.append(cli.one_line(err))
            return None

    sources = [(src, "input image") for src, _ in jobs] + ([(args.right, "--right image")] if dual else [])
    present = [src for src, what in sources if check(cli.check_input_file, src, what, READ_SUFFIXES) is not None]
    check(cli.check_input_file, args.checkpoint, "--checkpoint")
    outputs = [(dst, [src] + ([args.right] if dual else [])) for src, dst in jobs]
    check(cli.check_output_files, outputs, overwrite=args.overwrite, suffixes=WRITE_SUFFIXES, inputs=[args.checkpoint],
          what="output image")
    extras = cap.display_outputs(args)
    if extras and len(jobs) != 1:
        parser.error("--preview, --defocus-png and --side-by-side take one input (INPUT OUTPUT)")
    for extra, suffixes in extras:
        check(cli.check_output_files, [(extra, outputs[0][1])], overwrite=args.overwrite, suffixes=suffixes,
              inputs=[args.checkpoint])
    names = [Path(p).resolve() for p in [jobs[0][1]] + [e for e, _ in extras]]
    if len(set(names)) != len(names):
        problems.append("the output, --preview, --defocus-png and --side-by-side must be different files")
    sizes = _read_sizes(present, problems) if not dual else {}
    _raise_problems(problems)  # all of the above at once, before the capture is read and the model loaded

    capture = physics = None
    encode = True
    if dual:
        # one reading path with optics.dual_pixel.deblur (optics.dual_pixel.capture), before the model is loaded
        from optics.dual_pixel.capture import detect_input_format, _read_file

        fmt = args.input_format
        if fmt == "auto" and args.model not in PHYSICS_INPUT:
            detected = detect_input_format(_read_file(jobs[0][0], "left view"))
            if detected == "srgb":  # networks trained on sRGB photos see the file's values as stored
                fmt, encode = "linear", False
                print(f"input format: the 8-bit values as stored (auto; {args.model} was trained on sRGB-encoded "
                      "images; --input-format srgb linearises)", file=sys.stderr)
        capture = cap.read_dual_pixel_capture(jobs[0][0], args.right, input_format=fmt,
                                              white_sheets=cap.white_sheets_arg(args.white_sheets),
                                              origin=args.origin, crop=args.crop,
                                              frame_shape=None if args.psf in PARAMETRIC_PSFS else PIXEL4_SENSOR_FRAME)
        sizes = {jobs[0][0]: capture.shape}
        notes = list(capture.notes)
        if args.model in PHYSICS_INPUT:
            from .baseline import DualPixelBaseline

            placed = default_dual_pixel_psfs(capture, args.psf, outside=args.outside, radius=args.psf_radius,
                                             sign=args.psf_sign, order=args.psf_order)
            notes += list(placed.notes)
            physics = DualPixelBaseline(placed, workers=threads)
        for note in notes:
            print(note, file=sys.stderr)
    model = load_any_checkpoint(args.model, args.checkpoint, args.official).to(device)
    _check_sizes(sizes, model, args.model)  # needs the model (its min_size); every small image named
    for src, dst in jobs:
        right = None
        if dual:
            image, right = (np.repeat(v[:, :, None], 3, axis=2) if v.ndim == 2 else v
                            for v in (capture.left, capture.right))
            gray = capture.left.ndim == 2
            depth = image_shape(Path(src))[3]
        else:
            image, depth = read_image(src)
            gray = is_grayscale(src)
        if physics is not None:
            same = 1 if gray else 3
            with window_progress(2 * physics.psfs.cells * same, desc="physics cells"):
                result = refine_physics(model, args.model, image, right, physics, device, amp=args.amp)
        else:
            result = deblur_image(model, image, right, device, args.max_memory, args.tile, args.overlap,
                                  progress=True, amp=args.amp,
                                  allow_inexact_tiles=args.allow_inexact_tiles, model_name=args.model)
        if gray:  # a grayscale photo comes back grayscale (the networks see it as R = G = B)
            result = result.mean(axis=2)
        srgb = dual and capture.input_format == "srgb"  # linearised to read: written back in sRGB (issue 32)
        written = cap.linear_to_srgb(np.clip(result, 0, 1)) if srgb else result
        write_image(dst, written, args.bit_depth or depth)
        print(f"{src} -> {dst} ({args.bit_depth or depth}-bit{', sRGB, as the input' if srgb else ''})",
              file=sys.stderr)
        if extras:
            reference = capture.mean() if dual else image
            if gray and reference.ndim == 3:
                reference = reference.mean(axis=2)
            shown = cap.DualPixelCapture(reference, reference, capture.origin if dual else (0, 0),
                                         capture.frame_shape if dual else reference.shape[:2], "", None)
            defocus = None if physics is None else np.asarray(physics.last.defocus)
            for line in cap.write_display_outputs(args, shown, result, defocus,
                                                  None if physics is None else physics.last.scales, encode=encode):
                print(line, file=sys.stderr)
    where = jobs[0][1] if len(jobs) == 1 else f"{len(jobs)} images in {args.out}"
    print(f"results: {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # a command-line process: keep freed memory for the next tensor instead of unmapping it
    # (same outputs, fewer page faults; learned.inference._speed.reuse_freed_memory, issue 33)
    from .inference._speed import reuse_freed_memory

    reuse_freed_memory()
    raise SystemExit(cli.run(main))
