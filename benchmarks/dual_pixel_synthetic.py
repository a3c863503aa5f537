"""Benchmark: training-free dual-pixel deblurring on renders with known ground truth, region by region.

``python -m benchmarks.dual_pixel_synthetic [--data DIR] [--sources ...] [--encodings ...] [--seed N]
[--size HxW] [--keep DIR] [--out FILE]``

Xin et al.'s real scenes are defocused almost everywhere and their ground truth is another capture,
so they cannot say whether what is *in focus* stays sharp. This benchmark renders scenes whose truth
is known, with the toolkit's occlusion-aware layered renderer (:func:`optics.render_coc_layers`):

* **three planes**: a far plane (signed CoC ``+c``, the cat photo, mirror-tiled) behind an in-focus subject (CoC 0: an astronaut's
  face and a line of text, scikit-image's photos) and a near plane (gravel) (CoC ``-c``: a band along the
  bottom and a vertical pole on the left) in front of both, so both signs of defocus and depth
  edges in every orientation;
* **all in focus**: the same photo at CoC 0 everywhere, both views equal up to noise.

Each scene is rendered through every PSF source a user can pick: the fitted Pixel 4 field
(``pixel4``; rendered and deblurred with it), Xin et al.'s measured kernels (``calibration``, with
``--data``: rendered with the fitted field, deblurred with the measurements) and the parametric
models (``disc`` and ``butterworth``, ``--psf-radius 8``, both ``--psf-sign`` values). The views get
the Pixel 4's measured Poisson-Gaussian noise (:data:`optics.dual_pixel.sensor_noise.PIXEL4_NOISE`)
and are written as files in two encodings, 16-bit linear (one channel) and 8-bit sRGB (RGB). They
are then read and deblurred exactly as ``python -m optics.dual_pixel.deblur`` reads and deblurs a
capture (:func:`optics.dual_pixel.capture.read_dual_pixel_capture`, the source's defaults, the
output encoded as the input was: :func:`optics.dual_pixel.capture.encode_like_input`).

Scores are PSNR in the output's encoding (linear values, or sRGB values for an sRGB input) against
the sharp image, and the **gain** over the full-aperture input ``(L + R) / 2`` encoded the same way,
per region: ``in focus``, ``far``, ``near`` (each more than 8 px from a depth edge) and ``edges``
(the 16 px band along each depth edge); the all-in-focus pair is scored over the whole image.
Targets (issue 32): in focus >= -0.1 dB, far and near >= +2 dB, edges >= 0 dB, all in focus
>= -0.1 dB, for every source and encoding.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from benchmarks._report import emit, refuse_existing
from optics import cli

#: Region targets (dB of gain over the full-aperture input), issue 32.
TARGETS = {"in focus": -0.1, "far": 2.0, "near": 2.0, "edges": 0.0, "all in focus": -0.1}
#: Radius of the parametric sources at scale 1 (pixels).
PARAMETRIC_RADIUS = 8.0
#: |CoC| of the far and near planes, as a share of the source's blur at scale 1.
DEFOCUS_SHARE = 0.8
#: Pixels either side of a depth edge that form the ``edges`` band.
EDGE_BAND = 8
#: The sources: name -> (``--psf``, ``--psf-radius``, ``--psf-sign``).
SOURCES = {
    "pixel4": ("pixel4", None, 1),
    "calibration": ("calibration", None, 1),
    "disc+1": ("disc", PARAMETRIC_RADIUS, 1),
    "disc-1": ("disc", PARAMETRIC_RADIUS, -1),
    "butterworth+1": ("butterworth", PARAMETRIC_RADIUS, 1),
    "butterworth-1": ("butterworth", PARAMETRIC_RADIUS, -1),
}
ENCODINGS = ("linear16", "srgb8")


# --------------------------------------------------------------------------------------------- scenes
def _fit(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, 3) in [0, 1] at ``shape``: its centre cropped when it is large enough (no resampling,
    so it keeps its own detail), else mirror-tiled."""
    h, w = image.shape[:2]
    H, W = shape
    if h < H or w < W:
        image = np.pad(image, ((0, max(H - h, 0)), (0, max(W - w, 0)), (0, 0)), mode="symmetric")
        h, w = image.shape[:2]
    return image[(h - H) // 2:(h - H) // 2 + H, (w - W) // 2:(w - W) // 2 + W]


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` cropped to ``shape``'s aspect ratio around its centre, then resized to it (for the subject)."""
    from skimage.transform import resize

    h, w = image.shape[:2]
    H, W = shape
    if h * W > w * H:
        ch = int(round(w * H / W))
        image = image[(h - ch) // 2:(h - ch) // 2 + ch]
    else:
        cw = int(round(h * W / H))
        image = image[:, (w - cw) // 2:(w - cw) // 2 + cw]
    return resize(image, (H, W), order=3, anti_aliasing=True, mode="reflect").clip(0, 1)


def _photo(name: str) -> np.ndarray:
    from skimage import data, img_as_float

    a = img_as_float(getattr(data, name)())
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]


def scene_labels(shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int8 labels: 0 far plane, 1 in-focus subject (an ellipse), 2 near plane (bottom band, left pole)."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    labels = np.zeros((H, W), np.int8)
    subject = ((yy - 0.45 * H) / (0.33 * H)) ** 2 + ((xx - 0.55 * W) / (0.24 * W)) ** 2 <= 1
    labels[subject] = 1
    band = yy >= H * (0.82 + 0.04 * np.sin(2 * np.pi * xx / (0.37 * W)))
    pole = (xx >= 0.07 * W) & (xx < 0.15 * W) & (yy >= 0.12 * H)
    labels[band | pole] = 2
    return labels


def sharp_scene(shape: tuple[int, int], labels: np.ndarray, ground_truths: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The all-in-focus linear RGB image (H, W, 3) in [0, 0.8]: a photo per plane, text on the subject.

    ``ground_truths``: sharp photos to use for the far and near planes instead of scikit-image's
    (e.g. Xin et al.'s all-in-focus images of scenes 001-008), linear, (h, w) or (h, w, 3).
    """
    from optics.render.synthesize import srgb_decode

    H, W = shape
    far, near = (_photo("chelsea"), _photo("gravel"))
    if ground_truths:
        extra = [g if g.ndim == 3 else np.repeat(g[..., None], 3, axis=2) for g in ground_truths]
        far = extra[0] / max(float(np.percentile(extra[0], 99.5)), 1e-6)
        near = extra[min(1, len(extra) - 1)] / max(float(np.percentile(extra[-1], 99.5)), 1e-6)
        far, near = (np.clip(v, 0, 1) for v in (far, near))
    else:
        far, near = srgb_decode(far), srgb_decode(near)
    ys, xs = np.nonzero(labels == 1)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    subject = np.zeros((H, W, 3))
    face = srgb_decode(_photo("astronaut")[20:330, 110:390])
    subject[y0:y1, x0:x1] = _resize(face, (y1 - y0, x1 - x0))
    text = srgb_decode(_photo("text"))
    th = (y1 - y0) // 5
    tw = x1 - x0 - 2 * th
    ty = y1 - th - (y1 - y0) // 6
    subject[ty:ty + th, x0 + th:x0 + th + tw] = _resize(text, (th, tw))
    image = np.where((labels == 0)[..., None], _fit(far, shape), 0.0)
    image = np.where((labels == 1)[..., None], subject, image)
    image = np.where((labels == 2)[..., None], _fit(near, shape), image)
    return 0.8 * image


def region_masks(labels: np.ndarray, band: int = EDGE_BAND) -> dict:
    """Boolean masks: ``in focus``, ``far``, ``near`` (more than ``band`` px from a depth edge), ``edges``."""
    import scipy.ndimage as nd

    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    near_edge = nd.binary_dilation(edge, iterations=band)
    out = {name: (labels == k) & ~near_edge for k, name in enumerate(("far", "in focus", "near"))}
    out["edges"] = near_edge
    return {k: out[k] for k in ("in focus", "far", "near", "edges")}


@dataclass
class Rendering:
    left: np.ndarray
    right: np.ndarray
    sharp: np.ndarray


def _unit_coc(source: str) -> float:
    """Signed CoC radius (px) of scale 1 for ``source`` (the grid's pair at scale 1)."""
    psf, radius, sign = SOURCES[source]
    if radius is not None:
        return sign * radius
    from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field

    return pixel4_dual_pixel_field().calibration_coc


def render_views(sharp: np.ndarray, coc: np.ndarray, source: str, *, origin: tuple[int, int],
                 rng: np.random.Generator) -> Rendering:
    """Left and right views of ``sharp`` (linear, (H, W, 3)) at the signed CoC map ``coc`` through ``source``'s PSFs, noisy."""
    from optics.dual_pixel.sensor_noise import PIXEL4_NOISE, add_poisson_gaussian_noise
    from optics.render import render_coc_layers

    psf, radius, sign = SOURCES[source]
    if radius is None:
        from optics.dual_pixel.capture import PIXEL4_SENSOR_FRAME
        from optics.dual_pixel.pixel4 import PIXEL4_FRAME, pixel4_dual_pixel_field

        fr = ((PIXEL4_SENSOR_FRAME[0] - PIXEL4_FRAME[0]) // 2, (PIXEL4_SENSOR_FRAME[1] - PIXEL4_FRAME[1]) // 2)
        field_origin = (float(origin[1] - fr[1]), float(origin[0] - fr[0]))  # (x, y) in the calibrated frame
        views = render_coc_layers(sharp, coc, model="calibrated", psf_field=pixel4_dual_pixel_field(),
                                  field_origin=field_origin, coc_step=0.5)
    else:
        model = {"disc": "half_disc", "butterworth": "butterworth"}[psf]
        views = render_coc_layers(sharp, coc, model=model, coc_step=0.5)
    a, b = PIXEL4_NOISE
    left = add_poisson_gaussian_noise(views.left, a, b, rng)
    right = add_poisson_gaussian_noise(views.right, a, b, rng)
    return Rendering(left, right, sharp)


def write_views(rendering: Rendering, encoding: str, folder: Path) -> tuple[Path, Path]:
    """The views as a user's files: ``linear16`` one 16-bit linear channel (green), ``srgb8`` 8-bit sRGB RGB."""
    from optics.image_io import png_bytes
    from optics.display import linear_to_srgb

    paths = []
    for name, view in (("left", rendering.left), ("right", rendering.right)):
        v = np.clip(view, 0, 1)
        if encoding == "linear16":
            data = np.round(v[..., 1] * 65535).astype(np.uint16)
        else:
            data = np.round(linear_to_srgb(v) * 255).astype(np.uint8)
        path = folder / f"{name}.png"
        path.write_bytes(png_bytes(data))
        paths.append(path)
    return paths[0], paths[1]


def truth_in_encoding(linear: np.ndarray, encoding: str) -> np.ndarray:
    """The sharp image as the output's encoding shows it, as floats in [0, 1] (no quantisation)."""
    from optics.display import linear_to_srgb

    v = np.clip(linear, 0, 1)
    return v[..., 1] if encoding == "linear16" else linear_to_srgb(v)


def _psnr(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if d.ndim == 3:
        d = d.mean(axis=2)
    mse = float(d[mask].mean() if mask is not None else d.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def deblur_files(left: Path, right: Path, source: str, encoding: str, data: Optional[Path], workers: int):
    """Read and deblur the pair as ``python -m optics.dual_pixel.deblur`` does; the output and the input
    ``(L + R) / 2`` in the input's encoding, as floats in [0, 1]."""
    from optics.dual_pixel.capture import encode_like_input, read_dual_pixel_capture
    from optics.dual_pixel.deblur import PARAMETRIC_PSFS, deblur_capture, default_dual_pixel_psfs

    psf, radius, sign = SOURCES[source]
    fmt = "linear" if encoding == "linear16" else "srgb"
    parametric = psf in PARAMETRIC_PSFS
    capture = read_dual_pixel_capture(left, right, input_format=fmt, white_sheets=None,
                                      **({"frame_shape": None} if parametric else {}))
    spec = str(data / "calibration") if psf == "calibration" else psf
    psfs = default_dual_pixel_psfs(capture, spec, radius=radius, sign=sign)
    res = deblur_capture(capture, psfs, workers=workers)
    out, _ = encode_like_input(res.image, capture)
    inp, _ = encode_like_input(capture.mean(), capture)
    scale = float(np.iinfo(out.dtype).max)
    return out / scale, inp / scale, res


def run_source(source: str, encodings: Sequence[str], *, data: Optional[Path], shape: tuple[int, int], seed: int,
               workers: int, keep: Optional[Path], ground_truths: Sequence[np.ndarray] = ()) -> list:
    """Rows ``{source, encoding, scene, region, input, output, gain, seconds}`` for one source."""
    from optics.dual_pixel.capture import PIXEL4_SENSOR_FRAME

    labels = scene_labels(shape)
    masks = region_masks(labels)
    sharp = sharp_scene(shape, labels, ground_truths)
    c = DEFOCUS_SHARE * abs(_unit_coc(source))
    coc3 = np.choose(labels, [c, 0.0, -c]).astype(np.float64)  # far +c, subject 0, near -c (near to far ascending)
    origin = ((PIXEL4_SENSOR_FRAME[0] - shape[0]) // 2, (PIXEL4_SENSOR_FRAME[1] - shape[1]) // 2)
    rows = []
    for scene, coc in (("three planes", coc3), ("all in focus", np.zeros(shape))):
        rng = np.random.default_rng([seed, list(SOURCES).index(source), scene == "all in focus"])
        rendering = render_views(sharp, coc, source, origin=origin, rng=rng)
        for encoding in encodings:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) if keep is None else keep / f"{source}_{encoding}_{scene.replace(' ', '_')}"
                folder.mkdir(parents=True, exist_ok=True)
                left, right = write_views(rendering, encoding, folder)
                t0 = time.perf_counter()
                out, inp, res = deblur_files(left, right, source, encoding, data, workers)
                seconds = time.perf_counter() - t0
                truth = truth_in_encoding(sharp, encoding)
                if keep is not None:
                    from optics.image_io import png_bytes

                    (folder / "output.png").write_bytes(png_bytes(np.round(out * 65535).astype(np.uint16)))
                    (folder / "sharp.png").write_bytes(png_bytes(np.round(truth * 65535).astype(np.uint16)))
                    np.save(folder / "defocus.npy", np.asarray(res.defocus, np.float32))
            regions = masks.items() if scene == "three planes" else [("all in focus", None)]
            for region, mask in regions:
                pi, po = _psnr(inp, truth, mask), _psnr(out, truth, mask)
                rows.append(dict(source=source, encoding=encoding, scene=scene, region=region, input=pi, output=po,
                                 gain=po - pi, seconds=seconds))
    return rows


def format_report(rows: list, command: str) -> str:
    lines = ["# Training-free DP deblurring on renders with known ground truth", "",
             f"Command: `{command}`", "",
             "Gain in dB over the full-aperture input (L + R) / 2, in the output's encoding; target in brackets.", "",
             "| source | encoding | in focus [>= -0.1] | far [>= +2] | near [>= +2] | edges [>= 0] | "
             "all in focus [>= -0.1] | seconds |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["source"], r["encoding"]) for r in rows}, key=lambda k: (list(SOURCES).index(k[0]), k[1]))
    missed = []
    for source, encoding in keys:
        cells = []
        for region in ("in focus", "far", "near", "edges", "all in focus"):
            r = [x for x in rows if x["source"] == source and x["encoding"] == encoding and x["region"] == region]
            if not r:
                cells.append("-")
                continue
            ok = r[0]["gain"] >= TARGETS[region]
            if not ok:
                missed.append(f"{source} {encoding} {region} {r[0]['gain']:+.2f}")
            cells.append(f"{r[0]['gain']:+.2f}{'' if ok else ' (missed)'}")
        secs = max(x["seconds"] for x in rows if x["source"] == source and x["encoding"] == encoding)
        lines.append(f"| {source} | {encoding} | " + " | ".join(cells) + f" | {secs:.1f} |")
    lines += ["", "Input PSNR per region (dB): " + "; ".join(
        f"{r['source']} {r['encoding']} {r['region']} {r['input']:.1f}" for r in rows if r["source"] == keys[0][0]
        and r["encoding"] == keys[0][1])]
    lines += ["", f"Targets: {'all met' if not missed else 'missed: ' + ', '.join(missed)}"]
    return "\n".join(lines)


def _read_ground_truths(data: Path, scenes: Sequence[str]) -> list:
    from optics.image_io import read_png

    out = []
    for s in scenes:
        path = data / "gt_all_in_focus_im" / f"{s}.png"
        if not path.is_file():
            raise FileNotFoundError(f"--textures: expected {str(path)!r} (Xin et al.'s ground truth); not found")
        a = read_png(path)
        out.append(a.astype(np.float64) / np.iinfo(a.dtype).max)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.dual_pixel_synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Xin et al.'s DP_data_pixel_4 folder: adds the 'calibration' "
                        "source (its measured kernels)")
    parser.add_argument("--sources", nargs="+", choices=tuple(SOURCES), help="PSF sources (default: all; "
                        "'calibration' needs --data)")
    parser.add_argument("--encodings", nargs="+", choices=ENCODINGS, default=list(ENCODINGS))
    parser.add_argument("--textures", nargs=2, metavar="SCENE", help="with --data: the far and near planes show "
                        "Xin et al.'s all-in-focus images of these scenes (tuning scenes 001-008 only)")
    parser.add_argument("--size", default="336x504",
                        help="HEIGHTxWIDTH of the renders, at least 336 each (default 336x504: 2 x 3 cells)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=-1, help="threads over the cells (-1: every core)")
    parser.add_argument("--keep", type=Path, help="keep the views, outputs and maps in this new folder")
    parser.add_argument("--out", type=Path, help="also write the report here (refuses to overwrite)")
    args = parser.parse_args(argv)
    refuse_existing(parser, args.out)
    try:
        H, W = (int(v) for v in str(args.size).lower().split("x"))
    except ValueError:
        parser.error(f"argument --size: expected HEIGHTxWIDTH, e.g. 504x672; got {args.size!r}")
    if min(H, W) < 336:
        parser.error(f"argument --size: expected at least 336 px a side; got {H}x{W}")
    sources = args.sources or [s for s in SOURCES if s != "calibration" or args.data is not None]
    if "calibration" in sources and args.data is None:
        parser.error("argument --sources: 'calibration' needs --data DIR (Xin et al.'s measured kernels)")
    if args.textures and args.data is None:
        parser.error("argument --textures: needs --data DIR")
    if args.textures and any(t not in {f"{i:03d}" for i in range(1, 9)} for t in args.textures):
        parser.error(f"argument --textures: expected tuning scenes 001-008; got {args.textures}")
    if args.keep is not None and args.keep.exists():
        parser.error(f"argument --keep: {str(args.keep)!r} exists; expected a new folder")
    truths = _read_ground_truths(args.data, args.textures) if args.textures else []
    rows = []
    for source in sources:
        rows += run_source(source, args.encodings, data=args.data, shape=(H, W), seed=args.seed,
                           workers=args.workers, keep=args.keep, ground_truths=truths)
        print(f"{source}: done", file=sys.stderr)
    command = "python -m benchmarks.dual_pixel_synthetic " + " ".join(sys.argv[1:] if argv is None else argv)
    emit(format_report(rows, command.strip()), args.out)
    print(f"results: {args.out if args.out else 'printed above'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
