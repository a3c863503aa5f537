"""Does the physics make real captures sharper? Training-free DP deblurring on Xin et al.'s 17 Pixel 4 scenes.

``python -m validation.real_dual_pixel --data DIR [--quick] [--psf calibration|pixel4] [--out DIR]``

``DIR`` is Xin et al.'s ``DP_data_pixel_4`` folder (github.com/cmu-ci-lab/
dual_pixel_defocus_estimation_deblurring, no licence given: the toolkit never ships nor downloads
it; docs/real_dual_pixel.md says how to fetch it). Each scene is read as their ``code/util.py``
does (``pixeldp:`` reader: black level, vignetting correction, central 1008 x 1344 crop),
deblurred by :func:`optics.dual_pixel.deblur.dual_pixel_deblur` with the calibrated kernels of
``DIR/calibration`` (or the fitted field, ``--psf pixel4``) and parameters fixed once for all
scenes (tuned on 001-008), and scored against ``gt_all_in_focus_im``:

- PSNR / SSIM of the input (mean of the views) and of ours, under raw scoring (``none``: as
  distributed) and registered scoring (``registered``: one global sub-pixel shift of each image
  onto its ground truth, scoring side only; :mod:`learned.data.protocols`);
- Spearman rank correlation of our signed defocus map with ``gt_defocus_map`` over the pixels
  where that map is nonzero (its zeros cover textureless regions and the in-focus plane's flat
  interiors, where its depth-from-focus source has no estimate; the correlation over all pixels
  is reported beside it);
- the ground truth's scale against the views (ratio of means, ``gt / ((L + R) / 2)``);
- seconds per scene: what a user waits, reading the capture (views, ground truth, vignetting
  correction) plus the deblurring, on this machine (the benchmark ``python -m
  benchmarks.real_dual_pixel`` times it on an idle machine); the deblurring alone beside it.

Means are given over all 17 scenes, over the tuning scenes 001-008 and over the held-out scenes
009-017. Targets (the second training-free DP issue): mean raw gain >= +2.2 dB, and >= +2.0 dB on
009-017 alone; registered gain >= +3.2 dB; no scene below its input; Spearman >= 0.88; <= 10 s per
scene, reading included. One figure per scene: input, ours and ground-truth
crops, our defocus map beside the ground truth's. Without ``--data`` it reports NOT RUN.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from optics import cli

from ._report import (claim, command_line, decides, default_out, finish_out, markdown_table, prepare_out, save_figure,
                      write_json, write_markdown)

NAME = "real_dual_pixel"
SOURCE = "github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring, DP_data_pixel_4 (Xin et al., ICCV 2021)"
TUNING = tuple(f"{i:03d}" for i in range(1, 9))
GAIN_TARGET = 2.2
HELD_OUT_GAIN_TARGET = 2.0
REGISTERED_GAIN_TARGET = 3.2
SPEARMAN_TARGET = 0.88
SECONDS_TARGET = 10.0
QUICK_SCENES = ("001", "009")
CROP = 256


def needs_data_message() -> str:
    return ("needs Xin et al.'s DP_data_pixel_4 folder (--data DIR; " + SOURCE + "; not shipped: no licence)")


def _check_data(data: Path) -> None:
    for sub in ("gt_all_in_focus_im", "gt_defocus_map", "calibration"):
        if not (data / sub).is_dir():
            raise FileNotFoundError(f"--data {str(data)!r} has no {sub}/ folder; point it at Xin et al.'s DP_data_pixel_4")


def spearman(ours: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(rho over pixels where ``truth`` > 0, rho over all pixels); scipy.stats.spearmanr on every 7th pixel."""
    from scipy.stats import spearmanr

    valid = truth > 0
    rho_valid = spearmanr(ours[valid][::7], truth[valid][::7])[0]
    rho_all = spearmanr(ours.ravel()[::7], truth.ravel()[::7])[0]
    return float(rho_valid), float(rho_all)


def _crop_box(target: np.ndarray) -> tuple[slice, slice]:
    """The CROP x CROP window (on a 64 px grid) with the most gradient energy in the ground truth."""
    g = np.abs(np.diff(target, axis=0))[:, :-1] + np.abs(np.diff(target, axis=1))[:-1, :]
    best, box = -1.0, (0, 0)
    for y in range(0, target.shape[0] - CROP, 64):
        for x in range(0, target.shape[1] - CROP, 64):
            e = float(g[y:y + CROP, x:x + CROP].sum())
            if e > best:
                best, box = e, (y, x)
    return slice(box[0], box[0] + CROP), slice(box[1], box[1] + CROP)


def _figure(out: Path, name: str, blurred, ours, target, defocus, truth_map, row) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ys, xs = _crop_box(target)
    top = float(np.percentile(target, 99.5))
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.9))
    for ax, (img, title) in zip(axes[:3], ((blurred, f"input {row['input_psnr']:.2f} dB"),
                                           (ours, f"ours {row['ours_psnr']:.2f} dB"), (target, "ground truth"))):
        ax.imshow(img[ys, xs], cmap="gray", vmin=0, vmax=top)
        ax.set_title(title, fontsize=11)
    im = axes[3].imshow(defocus, cmap="viridis")
    axes[3].set_title("our signed defocus (x calibration)", fontsize=11)
    fig.colorbar(im, ax=axes[3], fraction=0.035)
    im = axes[4].imshow(np.where(truth_map > 0, truth_map, np.nan), cmap="viridis")
    axes[4].set_title(f"gt_defocus_map (0 blank); rho {row['spearman']:.2f}", fontsize=11)
    fig.colorbar(im, ax=axes[4], fraction=0.035)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"scene {name}: crop rows {ys.start}-{ys.stop}, columns {xs.start}-{xs.stop}", fontsize=12)
    fig.tight_layout()
    file = f"scene_{name}.png"
    save_figure(fig, out / file)
    return file


def measure(data: Path, scenes=None, psf: str = "calibration", figures_to: Path | None = None,
            log=lambda message: None, options: dict | None = None) -> list[dict]:
    """One row per scene: PSNR/SSIM (raw and registered) of input and ours, Spearman, GT scale, seconds.

    ``options`` override :data:`optics.dual_pixel.deblur.DEFAULTS` (the tuning runs of docs/real_dual_pixel.md).
    ``psf``: 'calibration', 'pixel4' or a :class:`optics.dual_pixel.deblur.DualPixelPSFSource` (e.g. a parametric
    one, ``dual_pixel_psf_source('butterworth', radius=...)``).
    """
    from learned.baseline import DualPixelBaseline
    from learned.data import build_dataset
    from learned.evaluate import score
    from optics.dual_pixel.deblur import dual_pixel_psf_source
    from optics.image_io import read_png

    psfs = psf if not isinstance(psf, str) else dual_pixel_psf_source("calibration" if psf == "calibration" else "pixel4",
                                                                      data)
    row_method = DualPixelBaseline(psfs, **(options or {}))
    dataset = build_dataset(f"pixeldp:{data}", "test", crop=None, augment=False)
    rows = []
    for i in range(len(dataset)):
        name = dataset.sample_name(i)
        if scenes is not None and name not in scenes:
            continue
        start = time.perf_counter()
        arrays = dataset.load(i)
        read_seconds = time.perf_counter() - start
        target = arrays["target"]
        ours = row_method(arrays)
        seconds = read_seconds + row_method.seconds[-1]
        result = row_method.last
        row = dict(scene=name, split="tuning" if name in TUNING else "held-out", seconds=seconds,
                   deblur_seconds=row_method.seconds[-1], read_seconds=read_seconds,
                   gt_scale=float(target.mean() / arrays["input"].mean()))
        for protocol, tag in (("none", ""), ("registered", "_reg")):
            for method, image in (("input", arrays["input"]), ("ours", ours)):
                s = score(np.clip(image, 0, 1), target, protocol=protocol)
                row[f"{method}_psnr{tag}"] = s["psnr"]
                row[f"{method}_ssim{tag}"] = s["ssim"]
            row[f"gain{tag}"] = row[f"ours_psnr{tag}"] - row[f"input_psnr{tag}"]
        truth_map = read_png(data / "gt_defocus_map" / f"{name}_gt.png").astype(np.float64)
        defocus = np.asarray(result.defocus, dtype=np.float64)
        row["spearman"], row["spearman_all"] = spearman(defocus, truth_map)
        if figures_to is not None:
            row["figure"] = _figure(figures_to, name, arrays["input"][..., 0], ours[..., 0], target[..., 0], defocus,
                                    truth_map, row)
        log(f"{name}: input {row['input_psnr']:.2f} dB, ours {row['ours_psnr']:.2f} dB ({row['gain']:+.2f}); "
            f"registered {row['gain_reg']:+.2f}; rho {row['spearman']:.3f}; {seconds:.1f} s")
        rows.append(row)
    return rows


def summary(rows: list[dict], keys=("input_psnr", "ours_psnr", "gain", "input_psnr_reg", "ours_psnr_reg", "gain_reg",
                                    "input_ssim", "ours_ssim", "spearman", "spearman_all", "seconds")) -> dict:
    """Means over all scenes, the tuning scenes and the held-out scenes (and the least gain, the median seconds)."""
    out = {}
    for label, part in (("all", rows), ("tuning 001-008", [r for r in rows if r["split"] == "tuning"]),
                        ("held-out 009-017", [r for r in rows if r["split"] == "held-out"])):
        if part:
            out[label] = {k: float(np.mean([r[k] for r in part])) for k in keys}
            out[label]["min_gain"] = float(min(r["gain"] for r in part))
            out[label]["median_seconds"] = float(np.median([r["seconds"] for r in part]))
            out[label]["scenes"] = len(part)
    return out


def scene_table(rows: list[dict]) -> str:
    head = ("| scene | split | input (dB) | ours (dB) | gain | registered: input / ours / gain | SSIM input / ours "
            "| Spearman (gt > 0 / all) | GT scale | s: read + deblur |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['scene']} | {r['split']} | {r['input_psnr']:.2f} | {r['ours_psnr']:.2f} | {r['gain']:+.2f} | "
             f"{r['input_psnr_reg']:.2f} / {r['ours_psnr_reg']:.2f} / {r['gain_reg']:+.2f} | "
             f"{r['input_ssim']:.3f} / {r['ours_ssim']:.3f} | {r['spearman']:.3f} / {r['spearman_all']:.3f} | "
             f"{r['gt_scale']:.3f} | {r.get('read_seconds', 0):.1f} + {r.get('deblur_seconds', r['seconds']):.1f} |"
             for r in rows]
    return head + "\n".join(lines) + "\n"


def mean_table(means: dict) -> str:
    head = ("| scenes | input (dB) | ours (dB) | gain (min) | registered gain | SSIM input / ours | Spearman "
            "(gt > 0 / all) | median s |\n|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {label} ({m['scenes']}) | {m['input_psnr']:.2f} | {m['ours_psnr']:.2f} | {m['gain']:+.2f} "
             f"({m['min_gain']:+.2f}) | {m['gain_reg']:+.2f} | {m['input_ssim']:.3f} / {m['ours_ssim']:.3f} | "
             f"{m['spearman']:.3f} / {m['spearman_all']:.3f} | {m['median_seconds']:.1f} |"
             for label, m in means.items()]
    return head + "\n".join(lines) + "\n"


def run(out_dir: Path, quick: bool = False, data: Path | None = None, psf: str = "calibration") -> list[dict]:
    """Deblur and score every scene (needs --data DIR); claims against the issue's targets."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = "Training-free dual-pixel deblurring of real Pixel 4 captures"
    if data is None:
        rows = [claim(title, "training-free DP issue targets", "not run: " + needs_data_message(), "-", False,
                      informational="needs data", not_run=True)]
        write_json(out / f"{NAME}.json", dict(validation=NAME, ran=False, reason=needs_data_message(), claims=rows))
        write_markdown(out / f"{NAME}.md", title, rows,
                       f"Not run: {needs_data_message()}.\n\nRun `python -m validation.{NAME} --data DIR`.")
        return rows
    start = time.perf_counter()
    scenes = QUICK_SCENES if quick else None
    # the scenes' figures go to a temporary folder and join the report only when every scene is done,
    # so a Ctrl-C (or a failure) half-way leaves no partial report behind
    partial = out / ".scenes.partial.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        per_scene = measure(Path(data), scenes, psf, partial, log=print)
        for figure in sorted(partial.iterdir()):
            os.replace(figure, out / figure.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    means = summary(per_scene)
    m = means["all"]
    scales = [r["gt_scale"] for r in per_scene]
    rows = [
        claim("mean PSNR gain over the vignetting-corrected input, raw scoring", f"target >= +{GAIN_TARGET} dB",
              f"{m['gain']:+.2f} dB (tuning {means.get('tuning 001-008', m)['gain']:+.2f}, held out "
              f"{means.get('held-out 009-017', m)['gain']:+.2f})", f">= +{GAIN_TARGET} dB", m["gain"] >= GAIN_TARGET),
        claim("mean PSNR gain on the held-out scenes 009-017, raw scoring", f"target >= +{HELD_OUT_GAIN_TARGET} dB",
              f"{means.get('held-out 009-017', m)['gain']:+.2f} dB", f">= +{HELD_OUT_GAIN_TARGET} dB",
              means.get('held-out 009-017', m)['gain'] >= HELD_OUT_GAIN_TARGET),
        claim("no scene below its input, raw scoring", "target", f"least gain {m['min_gain']:+.2f} dB", "> 0",
              m["min_gain"] > 0),
        claim("Spearman of our defocus map with gt_defocus_map (its nonzero pixels)", f"target >= {SPEARMAN_TARGET}",
              f"{m['spearman']:.3f} (all pixels {m['spearman_all']:.3f})", f">= {SPEARMAN_TARGET}",
              m["spearman"] >= SPEARMAN_TARGET),
        claim("seconds per scene at 1008x1344 on this machine, reading included (median)", "target <= 10 s",
              f"{m['median_seconds']:.1f} s", "<= 10 s", m["median_seconds"] <= SECONDS_TARGET),
        claim("mean PSNR gain, registered scoring", f"target >= +{REGISTERED_GAIN_TARGET} dB",
              f"{m['gain_reg']:+.2f} dB", f">= +{REGISTERED_GAIN_TARGET} dB", m["gain_reg"] >= REGISTERED_GAIN_TARGET),
        claim("ground truth's scale: mean of gt / mean of (L + R) / 2", "authors' normalisation",
              f"{np.mean(scales):.3f} +- {np.std(scales):.3f} (range {min(scales):.3f}-{max(scales):.3f})", "-", True,
              informational="the reader's vignetting-corrected views and the 16-bit ground truth share one scale"),
    ]
    write_json(out / f"{NAME}.json", dict(validation=NAME, ran=True, quick=quick, source=SOURCE, psf=psf, scenes=per_scene,
                                          means=means, claims=rows, seconds=time.perf_counter() - start))
    preamble = (f"Xin et al.'s Pixel 4 scenes ({SOURCE}), read as their code/util.py does, deblurred by "
                f"optics.dual_pixel.deblur with {'the calibrated kernels' if psf == 'calibration' else 'the fitted Pixel 4 field'}"
                " and parameters fixed once for all scenes (tuned on 001-008).\n\n" + mean_table(means) + "\n"
                + scene_table(per_scene))
    write_markdown(out / f"{NAME}.md", title, rows, preamble, [r["figure"] for r in per_scene])
    return rows


def main(argv=None) -> int:
    """Exit 0 iff every claim passes, 1 otherwise, 2 for bad input (one ``error:`` line)."""
    return cli.run(_main, argv)


def _main(argv) -> int:
    parser = cli.ArgumentParser(prog=f"python -m validation.{NAME}", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="Xin et al.'s DP_data_pixel_4 folder")
    parser.add_argument("--psf", choices=("calibration", "pixel4"), default="calibration",
                        help="the data's calibrated kernels (default) or the fitted Pixel 4 field")
    parser.add_argument("--quick", action="store_true", help=f"scenes {' and '.join(QUICK_SCENES)} only")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {default_out(False, NAME)}, "
                        f"with --quick {default_out(True, NAME)}: the part of the report of python -m validation)")
    cli.add_overwrite_argument(parser, "a previous report in --out")
    args = parser.parse_args(argv)
    args.out = default_out(args.quick, NAME) if args.out is None else args.out
    if args.data is None:
        print(needs_data_message())
    else:
        _check_data(args.data)
    report = prepare_out(args.out, NAME, overwrite=args.overwrite, quick=args.quick)
    t0 = time.perf_counter()
    rows = run(args.out, args.quick, args.data, args.psf)
    results = finish_out(args.out, NAME, report, rows, time.perf_counter() - t0, args.quick,
                         command_line(f"validation.{NAME}", argv))
    print(markdown_table(rows))
    print(results)
    return 0 if decides(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
