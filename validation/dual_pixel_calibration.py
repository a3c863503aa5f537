"""How close are the toolkit's dual-pixel PSFs to a real sensor? Fits to the Pixel 4 calibration.

``python -m validation.dual_pixel_calibration --kernels DIR [--quick] [--out DIR]``

``DIR`` is Xin et al.'s ``DP_data_pixel_4`` data folder (the one ``--data DIR`` takes elsewhere; the
kernels are read from its ``calibration/``) or the folder that holds ``blur_kernels_left.npy`` and
``blur_kernels_right.npy`` of Xin et al. (ICCV 2021) itself, as
published in github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring under
``DP_data_pixel_4/calibration/`` (no licence is given with them, so the toolkit does not ship
them and this module never downloads them): float32 (48, 61, 61) each, index ``row * 8 + col``
on a 6 x 8 grid of 168 px cells over the central 1008 x 1344 crop, green channel, unit sums.
Without ``--kernels`` the validation reports that it needs these data and does nothing else
(``python -m validation`` then passes over it).

Measured, per model, on every pair with
:func:`optics.fit_dual_pixel_psfs` (signed radius, shift and a common gain free):

1. relative L2 (and L1) error of the pair (``--quick``: the symmetric models on 8 pairs): ``half_disc``; ``butterworth`` with Abuolaim et al.'s
   sampled settings; ``butterworth`` with beta, cut-off and kappa free; the calibrated model;
   and the floor of every mirror-symmetric pair (``K_R = flip(K_L)`` about the best vertical
   axis, each pair's best possible such fit);
2. the field model (:func:`optics.fit_dual_pixel_field`, degree 2) fitted on half of the grid
   (a checkerboard) and scored on the other half, both ways round.

Targets (the calibrated-DP issue): per-kernel median relative L2 <= 0.15; field model on held-out
cells <= 0.20. A progress bar on stderr counts the fits (the full run takes minutes). Figures: measured against fitted pairs, the L/(L+R) split along the centre row,
and the field's per-cell error map. The field fitted on all 48 cells is written as
``pixel4_dual_pixel_field.json`` (:meth:`optics.DualPixelField.from_json`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from optics import cli, fit_dual_pixel_field, fit_dual_pixel_psfs
from optics.atomic import atomic_write_bytes

from ._report import (claim, command_line, decides, default_out, finish_out, markdown_table, prepare_out, save_figure,
                      write_json, write_markdown)

NAME = "dual_pixel_calibration"
SOURCE = ("github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring, "
          "DP_data_pixel_4/calibration/blur_kernels_{left,right}.npy (Xin et al., ICCV 2021)")
FILES = ("blur_kernels_left.npy", "blur_kernels_right.npy")
GRID = (6, 8)
CELL = 168
FRAME = (GRID[0] * CELL, GRID[1] * CELL)

#: (label, model, settings) of the per-kernel table.
MODELS = (
    ("half_disc", "half_disc", "free"),
    ("butterworth, paper settings", "butterworth", "paper"),
    ("butterworth, every setting free", "butterworth", "free"),
    ("calibrated (this toolkit)", "calibrated", "free"),
)
QUICK_CELLS = (0, 7, 12, 19, 27, 36, 40, 47)
FIGURE_CELLS = (0, 27, 47)
PER_KERNEL_TARGET = 0.15
FIELD_TARGET = 0.20
FIELD_DEGREE = 2


class KernelDataError(ValueError):
    """The kernel folder is missing a file or holds arrays of the wrong layout."""


def needs_data_message() -> str:
    return (f"needs the Pixel 4 dual-pixel calibration kernels {FILES[0]} and {FILES[1]}, given as --kernels DIR "
            f"(Xin et al.'s DP_data_pixel_4 folder, or its calibration/ folder); they are published in {SOURCE} "
            "(not downloaded, not shipped: no licence)")


def kernel_folder(folder: Path) -> Path:
    """The folder holding the kernels: ``folder`` itself, or its ``calibration/`` when ``folder`` is the data
    folder ``DP_data_pixel_4`` (it has no kernels of its own)."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in FILES) and (folder / "calibration").is_dir():
        return folder / "calibration"
    return folder


def load_kernels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Both (48, n, n) stacks, checked against Xin et al.'s layout; ``folder`` is the data folder
    (``DP_data_pixel_4``, the kernels in its ``calibration/``) or the kernels' own folder."""
    given = Path(folder)
    if not given.is_dir():
        raise KernelDataError(f"--kernels must be Xin et al.'s DP_data_pixel_4 folder or its calibration/ folder "
                              f"(holding {FILES[0]} and {FILES[1]}); got {str(given)!r}")
    folder = kernel_folder(given)
    out = []
    for name in FILES:
        path = folder / name
        if not path.is_file():
            where = repr(str(folder)) + ("" if folder != given else " (nor its calibration/ folder)")
            raise KernelDataError(f"--kernels folder {where} has no {name} ({needs_data_message()})")
        k = np.load(path, allow_pickle=False)
        n_cells = GRID[0] * GRID[1]
        if k.ndim != 3 or k.shape[0] != n_cells or k.shape[1] != k.shape[2] or k.shape[1] % 2 == 0:
            raise KernelDataError(f"--kernels folder {str(folder)!r}: {name} must be ({n_cells}, n, n) with n odd; got shape {k.shape}")
        if not np.all(np.isfinite(k)) or k.min() < -1e-6:
            raise KernelDataError(f"--kernels folder {str(folder)!r}: {name} must hold finite, non-negative kernels")
        out.append(k)
    return out[0], out[1]


def cell_positions() -> np.ndarray:
    """(48, 2) pixel coordinates (x, y) of the cell centres in the 1008 x 1344 frame."""
    rows, cols = np.divmod(np.arange(GRID[0] * GRID[1]), GRID[1])
    return np.stack([cols * CELL + (CELL - 1) / 2, rows * CELL + (CELL - 1) / 2], axis=1)


def mirror_floor(left: np.ndarray, right: np.ndarray, max_axis: float = 6.0) -> float:
    """Smallest relative L2 error of any pair with ``R = flip(L)`` about a vertical axis.

    For an axis at ``a`` (half-integer steps) the best pair is ``L = (M_L + flip_a(M_R)) / 2``
    (least squares; flipping is a permutation); the best axis within ``max_axis`` px is kept.
    """
    n = left.shape[1]
    h = n // 2
    m = np.concatenate([left.ravel(), right.ravel()]).astype(np.float64)
    best = np.inf
    for twice_a in range(-int(2 * max_axis), int(2 * max_axis) + 1):
        src = twice_a - (np.arange(n) - h) + h  # column j <- column 2a - x
        ok = (src >= 0) & (src < n)

        def flip(k):
            out = np.zeros_like(k, dtype=np.float64)
            out[:, ok] = k[:, src[ok]]
            return out

        est_l = (left + flip(right)) / 2
        est_r = flip(est_l)
        err = np.linalg.norm(np.concatenate([est_l.ravel(), est_r.ravel()]) - m) / np.linalg.norm(m)
        best = min(best, float(err))
    return best


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return dict(median=float(np.median(v)), min=float(v.min()), max=float(v.max()))


def _fmt(s: dict) -> str:
    return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"


def _no_progress(label: str) -> None:
    pass


def per_kernel(left, right, cells, calibrated_cells, tick=_no_progress) -> tuple[dict, dict]:
    """Fits of every model (the calibrated one on ``calibrated_cells``) and the mirror floor; ``tick(label)``
    after each fit."""
    results, fits = {}, {}
    for label, model, settings in MODELS:
        t0 = time.perf_counter()
        these = calibrated_cells if model == "calibrated" else cells
        f = []
        for i in these:
            f.append(fit_dual_pixel_psfs(left[i], right[i], model, settings=settings))
            tick(label)
        fits[label] = f
        results[label] = dict(
            model=model, settings=settings, rel_l2=_summary([x.rel_l2 for x in f]), rel_l1=_summary([x.rel_l1 for x in f]),
            seconds=time.perf_counter() - t0, per_cell=[dict(cell=int(i), rel_l2=x.rel_l2, rel_l1=x.rel_l1, params=x.params)
                                                        for i, x in zip(these, f)],
            cells=list(these),
        )
    floor = []
    for i in cells:
        floor.append(mirror_floor(left[i], right[i]))
        tick("mirror-symmetric floor")
    results["mirror-symmetric floor"] = dict(model="any K_R = flip(K_L)", rel_l2=_summary(floor), per_cell=floor,
                                             cells=list(cells))
    return results, fits


def field_held_out(left, right, cells, cal_fits, max_nfev: int, degree: int = FIELD_DEGREE, tick=_no_progress) -> dict:
    """A field fitted on one checkerboard half, scored on the other, both ways round; ``tick(label)`` after each."""
    pos = cell_positions()
    cells = np.asarray(cells)
    rows, cols = np.divmod(cells, GRID[1])
    out = {}
    for name, parity in (("even cells -> odd cells", 0), ("odd cells -> even cells", 1)):
        train = (rows + cols) % 2 == parity
        idx_tr, idx_te = cells[train], cells[~train]
        fit = fit_dual_pixel_field(left[idx_tr], right[idx_tr], pos[idx_tr], FRAME, degree=degree,
                                   max_nfev=max_nfev, cell_fits=[cal_fits[i] for i in np.flatnonzero(train)])
        _, held = fit.score(left[idx_te], right[idx_te], pos[idx_te])
        out[name] = dict(train_cells=idx_tr.tolist(), test_cells=idx_te.tolist(), train_rel_l2=_summary(fit.rel_l2),
                         held_out_rel_l2=_summary(held), held_out_per_cell=held.tolist(), train_per_cell=fit.rel_l2.tolist())
        tick(f"field, {name}")
    return out


# ----------------------------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_pairs(out: Path, left, right, cells, fits) -> str:
    plt = _plt()
    shown = [c for c in FIGURE_CELLS if c in cells]
    short = {"half_disc": "half disc", "butterworth, paper settings": "Butterworth\n(paper)",
             "butterworth, every setting free": "Butterworth\n(free)", "calibrated (this toolkit)": "calibrated"}
    columns = [("measured", None)] + [(short[label], label) for label, _, _ in MODELS]
    fig, axes = plt.subplots(len(shown), 2 * len(columns), figsize=(1.5 * 2 * len(columns), 1.7 * len(shown)), squeeze=False)
    h = left.shape[1] // 2
    view = slice(h - 18, h + 19)
    for r, cell in enumerate(shown):
        for c, (title, label) in enumerate(columns):
            pair = (left[cell], right[cell]) if label is None else (fits[label][cell].left, fits[label][cell].right)
            vmax = max(float(left[cell].max()), float(right[cell].max()))
            for v, k in enumerate(pair):
                ax = axes[r, 2 * c + v]
                ax.imshow(k[view, view], cmap="magma", vmin=0, vmax=vmax)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{title} {'L' if v == 0 else 'R'}", fontsize=6)
            if c == 0:
                axes[r, 0].set_ylabel(f"cell {cell}", fontsize=7)
    fig.suptitle("Pixel 4 dual-pixel kernels (Xin et al. ICCV 2021) and per-kernel fits", fontsize=9)
    save_figure(fig, out / "pairs.png")
    return "pairs.png"


def figure_split(out: Path, left, right, cells, fits) -> str:
    plt = _plt()
    shown = [c for c in FIGURE_CELLS if c in cells]
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), squeeze=False)
    h = left.shape[1] // 2
    x = np.arange(-h, h + 1)
    for ax, cell in zip(axes[0], shown):
        curves = [("measured", left[cell], right[cell], "k-")] + [
            (label.split(",")[0] + (" (paper)" if "paper" in label else " (free)" if "free" in label else ""),
             fits[label][cell].left, fits[label][cell].right, style)
            for (label, _, _), style in zip(MODELS, ("C0--", "C1--", "C2-.", "C3-"))
        ]
        rows = slice(h - 2, h + 3)
        for name, kl, kr, style in curves:
            lsum, rsum = kl[rows].sum(axis=0), kr[rows].sum(axis=0)
            total = lsum + rsum
            keep = total > 0.05 * total.max()
            ratio = np.full(total.shape, np.nan)
            ratio[keep] = lsum[keep] / total[keep]
            ax.plot(x, ratio, style, label=name, lw=1.2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("x (px), 5 centre rows")
        ax.set_title(f"cell {cell}: L / (L + R)", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    save_figure(fig, out / "split_profile.png")
    return "split_profile.png"


def figure_field(out: Path, field: dict) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, len(field), figsize=(4.2 * len(field), 2.8), squeeze=False)
    for ax, (name, res) in zip(axes[0], field.items()):
        grid = np.full(GRID, np.nan)
        for c, e in zip(res["test_cells"], res["held_out_per_cell"]):
            grid[divmod(c, GRID[1])] = e
        for c, e in zip(res["train_cells"], res["train_per_cell"]):
            grid[divmod(c, GRID[1])] = e
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=0.3)
        for c in res["train_cells"]:
            r, k = divmod(c, GRID[1])
            ax.text(k, r, "fit", ha="center", va="center", fontsize=6, color="w")
        ax.set_title(f"field rel. L2, {name}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.03)
    save_figure(fig, out / "field_errors.png")
    return "field_errors.png"


# ----------------------------------------------------------------------------------------------- run
def run(out_dir: Path, quick: bool = False, kernels: Path | None = None) -> list[dict]:
    """Fit the dual-pixel PSF models to the Pixel 4 calibration kernels (needs --kernels DIR)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if kernels is None:
        rows = [claim("Dual-pixel PSF models against the measured Pixel 4 kernels", "Xin et al. ICCV 2021 calibration",
                      "not run: " + needs_data_message(), "-", False, informational="needs data",
                      not_run=True)]
        write_json(out / f"{NAME}.json", dict(validation=NAME, ran=False, reason=needs_data_message(), claims=rows))
        write_markdown(out / f"{NAME}.md", "Dual-pixel PSFs against measured Pixel 4 kernels", rows,
                       f"Not run: {needs_data_message()}.\n\nRun `python -m validation.dual_pixel_calibration --kernels DIR`.")
        return rows
    left, right = load_kernels(kernels)
    all_cells = list(range(GRID[0] * GRID[1]))
    cells = list(QUICK_CELLS) if quick else all_cells
    # the fits, counted on stderr: per pair and model, the mirror floor per pair, the two held-out fields, the full one
    total = len(cells) * (len(MODELS) - 1) + len(all_cells) + len(cells) + 2 + (0 if quick else 1)
    bar = cli.progress_bar(total=total, desc=NAME, unit="fit")

    def tick(label: str) -> None:
        bar.set_postfix_str(label, refresh=False)
        bar.update(1)

    try:
        table, fits = per_kernel(left, right, cells, all_cells, tick)
        cal = fits[MODELS[-1][0]]  # calibrated fits of all cells
        degree = FIELD_DEGREE
        field = field_held_out(left, right, all_cells, cal, max_nfev=10 if quick else 40, degree=degree, tick=tick)
        full = None
        if not quick:
            full = fit_dual_pixel_field(left, right, cell_positions(), FRAME, degree=FIELD_DEGREE, cell_fits=cal)
            tick("field, all 48 pairs")
    finally:
        bar.close()
    rows = []
    for label, res in table.items():
        ours = f"median rel. L2 {_fmt(res['rel_l2'])}" + (f"; rel. L1 {_fmt(res['rel_l1'])}" if "rel_l1" in res else "")
        n_pairs = len(res["cells"])
        if label.startswith("calibrated"):
            rows.append(claim(f"per-kernel fit, {label}, {n_pairs} pairs", "target of the calibrated-DP issue", ours,
                              f"median <= {PER_KERNEL_TARGET}", res["rel_l2"]["median"] <= PER_KERNEL_TARGET, details=res))
        else:
            why = ("the best any mirror-symmetric pair can do (bound for half_disc and butterworth)" if "floor" in label
                   else "a model the toolkit keeps for the papers' assumptions")
            rows.append(claim(f"per-kernel fit, {label}, {n_pairs} pairs", "-", ours, "-", True, informational=why,
                              details=res))
    for name, res in field.items():
        rows.append(claim(f"field model (degree {degree}), {name}: held-out cells", "target of the calibrated-DP issue",
                          f"median rel. L2 {_fmt(res['held_out_rel_l2'])} on {len(res['test_cells'])} held-out pairs "
                          f"(fitted pairs {_fmt(res['train_rel_l2'])})", f"median <= {FIELD_TARGET}",
                          res["held_out_rel_l2"]["median"] <= FIELD_TARGET, details=res))
    shown = {label: dict(zip(table[label]["cells"], f)) for label, f in fits.items()}
    figures = [figure_pairs(out, left, right, cells, shown), figure_split(out, left, right, cells, shown), figure_field(out, field)]
    if full is not None:
        atomic_write_bytes(out / "pixel4_dual_pixel_field.json", full.field.to_json().encode())
        rows.append(claim("field model fitted on all 48 pairs (written as pixel4_dual_pixel_field.json)", "-",
                          f"median rel. L2 {_fmt(_summary(full.rel_l2))}", "-", True,
                          informational="the camera used by synthetic:psf=calibrated (optics.dual_pixel.pixel4)"))
    write_json(out / f"{NAME}.json", dict(validation=NAME, ran=True, quick=quick, source=SOURCE, cells=cells,
                                          claims=rows, figures=figures))
    preamble = (
        f"Fits of the toolkit's dual-pixel PSF models to the Pixel 4 calibration kernels ({SOURCE}); "
        "relative L2 / L1 error of each left/right pair jointly after a common gain, median (min-max) over "
        f"{len(cells)} pairs.\n\nThe field model is fitted on a checkerboard half of the 6 x 8 grid and scored on "
        "the other half." + ("\n\n--quick: the symmetric models on 8 pairs, a shorter field refinement." if quick else "")
    )
    write_markdown(out / f"{NAME}.md", "Dual-pixel PSFs against measured Pixel 4 kernels", rows, preamble, figures)
    return rows


def main(argv=None) -> int:
    """Exit 0 iff every claim passes, 1 otherwise, 2 for bad input (one ``error:`` line)."""
    return cli.run(_main, argv)


def _main(argv) -> int:
    parser = cli.ArgumentParser(prog=f"python -m validation.{NAME}", description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=Path, default=None,
                        help="Xin et al.'s DP_data_pixel_4 folder (the kernels in its calibration/) or the folder "
                        "holding blur_kernels_left.npy and blur_kernels_right.npy")
    parser.add_argument("--quick", action="store_true", help="8 pairs and a shorter field fit")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {default_out(False, NAME)}, "
                        f"with --quick {default_out(True, NAME)}: the part of the report of python -m validation)")
    cli.add_overwrite_argument(parser, "a previous report in --out (cleared first)")
    args = parser.parse_args(argv)
    args.out = default_out(args.quick, NAME) if args.out is None else args.out
    if args.kernels is None:
        print(needs_data_message())
    else:
        try:
            load_kernels(args.kernels)
        except KernelDataError as err:
            cli.usage_error(str(err))
    report = prepare_out(args.out, NAME, overwrite=args.overwrite, quick=args.quick)
    t0 = time.perf_counter()
    rows = run(args.out, args.quick, args.kernels)
    results = finish_out(args.out, NAME, report, rows, time.perf_counter() - t0, args.quick,
                         command_line(f"validation.{NAME}", argv))
    print(markdown_table(rows))
    print(results)
    return 0 if decides(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
