"""Reproduce the inverse-kernel claims of the KPAC supplementary (Fig. 1, Eq. 3/4, Fig. 2, Fig. 3).

``python -m validation.kernel_upsampling [--quick] [--out DIR]``

Claims (H. Son et al., "Single Image Defocus Deblurring Using Kernel-Sharing Parallel Atrous
Convolutions: Supplementary Material", ICCV 2021):

1. Fig. 1: ``(1/s^2) k_up_s`` of a Gaussian of std ``sigma`` equals the Gaussian of std ``s sigma``.
2. Eq. 3/4: ``(1/s^2 k_up_s)^dagger = 1/s^2 (k^dagger)_up_s`` on the periodic grid.
3. Fig. 3: deblurring with the dilated inverse kernel ``k^dagger_up/s`` and with the upsampled
   ``1/s^2 (k^dagger)_up_s`` agree to PSNR > 40 dB for s = 3, 4, 5.
4. Fig. 2: NNLS blends of deconvolutions at sampled scales s_1 < s_t < s_2 approximate the one at
   s_t with "approximation accuracy" ``1 - MAE(1, x_hat / x_s)`` of 95-99 %.

Choices the paper leaves open, fixed here and written into the report: see ``CHOICES``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.fft
from scipy.special import erf

import optics
from optics.operators import fourier

from ._report import claim, cli_main, photos, save_figure, write_json, write_markdown

NAME = "kernel_upsampling"

#: Paper figures (supplementary, Fig. 2 caption).
FIG2_TRIPLES = [(3, 3.4, 4), (3, 3.5, 4), (3, 3.6, 4), (2, 2.6, 3), (1, 1.7, 2)]
FIG2_PAPER_UPSAMPLED = [98.68, 97.84, 98.96, 95.37, 97.03]
FIG2_PAPER_DILATED = [98.55, 97.87, 99.10, 96.12, 97.64]

CHOICES = {
    "fig1_kernel_radius": "ceil(6 sigma) (tails below 1.6e-8 of the peak)",
    "commutation_grid": "Gaussian sigma = 1 (radius 6) embedded in a periodic 31 x 31 grid; upsampled grid 31 s",
    "fig3_base_kernel": "Gaussian sigma0 = 1.5, radius 8; k^dagger = wiener_inverse(k, eps = 1e-2, size = 41)",
    "fig3_blur": "photo blurred by (1/s^2) k_up_s with convolve(boundary='symmetric')",
    "fig2_kernels": "scale s means Gaussian std 1.5 s (= (1/s^2) k_up_s by claim 1); inverse kernels with eps = 1e-2; "
    "k^dagger at sampled scales = (1/s^2) fourier_upsample(k^dagger, s) or dilate(k^dagger, s); target "
    "x_s = y * wiener_inverse(k_{s_t}, eps, size 40 s_t + 1)",
    "fig2_accuracy_floor": "1 - mean|1 - x_hat/x_s| over pixels with x_s >= 0.05 (the ratio is unbounded where x_s "
    "-> 0; the fraction of pixels kept is reported)",
    "photos": "scikit-image's bundled camera, astronaut, coffee, chelsea (and rocket in full mode), float64 in [0, 1]",
}


def psnr(a, b) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(a, b, data_range=1.0))


def aliasing_bound(sigma: float) -> float:
    r"""Peak-relative error bound of sinc-interpolating a point-sampled Gaussian.

    The continuous Gaussian's spectrum :math:`\exp(-2\pi^2\sigma^2|f|^2)` outside the sampling band
    :math:`[-1/2, 1/2]^2` is both missing from the interpolant and aliased into it, so
    :math:`\max|k_{\uparrow} - g| \le 2 \iint_{\text{out}} \hat g`, which relative to the peak
    :math:`1/(2\pi\sigma^2)` is :math:`2 (1 - \mathrm{erf}^2(\pi\sigma/\sqrt2))`.
    """
    return 2.0 * (1.0 - erf(math.pi * sigma / math.sqrt(2.0)) ** 2)


# --------------------------------------------------------------------------------------------------
# Claim 1: Fig. 1
# --------------------------------------------------------------------------------------------------
def gaussian_upsampling(sigmas=(1.0, 1.5, 2.0), factors=(2, 3, 4, 5)) -> list[dict]:
    results = []
    for sigma in sigmas:
        r = math.ceil(6 * sigma)
        k = optics.gaussian_psf(sigma, radius=r)
        for s in factors:
            up = optics.fourier_upsample(k, s) / s**2
            ref = optics.gaussian_psf(s * sigma, radius=s * r)
            results.append(
                dict(
                    sigma=sigma,
                    factor=s,
                    max_rel_error=float(np.abs(up - ref).max() / ref.max()),
                    max_abs_error_unit_mass=float(np.abs(up - ref).max()),
                    bound=aliasing_bound(sigma),
                )
            )
    return results


def figure1(out: Path) -> str:
    import matplotlib.pyplot as plt

    sigma, s, r = 1.5, 3, 9
    k = optics.gaussian_psf(sigma, radius=r)
    up = optics.fourier_upsample(k, s) / s**2
    ref = optics.gaussian_psf(s * sigma, radius=s * r)
    x_k = np.arange(-r, r + 1) * s
    x_up = np.arange(-s * r, s * r + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(x_k, k[r] / s**2, "o", label=r"$k$ ($\sigma$=1.5), positions $\times 3$, values / 9")
    ax.plot(x_up, up[s * r], "-", lw=2.5, label=r"$\frac{1}{9} k_{\uparrow 3}$")
    ax.plot(x_up, ref[s * r], "--", color="k", label=r"$k'$: Gaussian $\sigma$ = 4.5")
    ax.set_xlabel("pixel")
    ax.set_ylabel("kernel value (centre row)")
    ax.set_title("Fig. 1: 3x upsampling of a 2-D Gaussian (centre row)")
    ax.legend(fontsize=8, loc="upper left")  # the left half is empty; the peak is in the middle
    fig.tight_layout()
    save_figure(fig, out / "fig1_gaussian_upsampling.png")
    return "fig1_gaussian_upsampling.png"


# --------------------------------------------------------------------------------------------------
# Claim 2: Eq. 3/4 on the periodic grid
# --------------------------------------------------------------------------------------------------
def commutation(factors=(2, 3, 4, 5), epsilons=(1e-3, 1e-2, 0.0), grid=31) -> list[dict]:
    """max |(1/s^2 k_up)^dagger - 1/s^2 (k^dagger)_up| on the periodic s*grid, float64."""
    k = optics.gaussian_psf(1.0, radius=6)
    big = np.zeros((grid, grid))
    c, h = grid // 2, k.shape[0] // 2
    big[c - h : c + h + 1, c - h : c + h + 1] = k
    k0 = scipy.fft.ifftshift(big)  # origin at [0, 0]
    spectrum = scipy.fft.fftn(k0)
    rows = []
    for s in factors:
        for eps in epsilons:
            # eps = 0: F(k) has no zeros but F(k_up) is zero outside the original band, where the
            # paper's proof sets the inverse to 0: the pseudo-inverse (rcond) does exactly that.
            rcond = None if eps > 0 else 1e-9
            lhs = np.real(scipy.fft.ifftn(fourier.wiener_filter(scipy.fft.fftn(fourier.periodic_upsample(k0, s) / s**2), eps, rcond)))
            inv0 = np.real(scipy.fft.ifftn(fourier.wiener_filter(spectrum, eps)))
            rhs = fourier.periodic_upsample(inv0, s) / s**2
            rows.append(dict(factor=s, eps=eps, max_abs_error=float(np.abs(lhs - rhs).max()), scale=float(np.abs(rhs).max())))
    return rows


# --------------------------------------------------------------------------------------------------
# Claim 3: Fig. 3
# --------------------------------------------------------------------------------------------------
def dilated_vs_upsampled(images: dict, factors=(3, 4, 5), sigma0=1.5, eps=1e-2, size=41):
    k = optics.gaussian_psf(sigma0, radius=8)
    k_inv = optics.wiener_inverse(k, eps, size)
    rows, examples = [], []
    for s in factors:
        blur_k = optics.fourier_upsample(k, s) / s**2
        up_inv = optics.fourier_upsample(k_inv, s) / s**2
        dil_inv = optics.dilate(k_inv, s)
        for name, x in images.items():
            b = optics.convolve(x, blur_k)
            d = optics.convolve(b, up_inv)
            f = optics.convolve(b, dil_inv)
            rows.append(dict(factor=s, photo=name, psnr_d_f=psnr(d, f), psnr_gt_blurred=psnr(x, b), psnr_gt_d=psnr(x, d)))
            if name == next(iter(images)):
                examples.append((s, x, b, up_inv, d, dil_inv, f))
    return rows, examples


def figure3(out: Path, examples) -> str:
    import matplotlib.pyplot as plt

    titles = ["(a) blurred by $\\frac{1}{s^2}k_{\\uparrow s}$", "(b) ground truth", "(c) $\\frac{1}{s^2}(k^\\dagger_{\\uparrow s})$",
              "(d) deblurred by (c)", "(e) $k^\\dagger_{\\uparrow/s}$", "(f) deblurred by (e)"]
    fig, axes = plt.subplots(len(examples), 6, figsize=(15, 2.6 * len(examples)))
    axes = np.atleast_2d(axes)
    for row, (s, x, b, up_inv, d, dil_inv, f) in enumerate(examples):
        panels = [b, x, up_inv, d, dil_inv, f]
        for col, img in enumerate(panels):
            ax = axes[row, col]
            if col in (2, 4):
                c, h = img.shape[0] // 2, min(img.shape[0] // 2, 8 * s)  # zoom on the kernel's core
                img = img[c - h : c + h + 1, c - h : c + h + 1]
                lim = np.abs(img).max()
                ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            else:
                ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
        axes[row, 0].set_ylabel(f"s = {s}")
        axes[row, 5].set_xlabel(f"PSNR(d, f) = {psnr(d, f):.1f} dB", fontsize=9)
    save_figure(fig, out / "fig3_dilated_inverse_kernels.png")
    return "fig3_dilated_inverse_kernels.png"


# --------------------------------------------------------------------------------------------------
# Claim 4: Fig. 2
# --------------------------------------------------------------------------------------------------
def approximation_accuracy(x_hat, x_s, floor=0.05):
    """``1 - mean|1 - x_hat / x_s|`` over pixels with ``x_s >= floor``; returns (accuracy %, kept fraction)."""
    keep = x_s >= floor
    return 100.0 * (1.0 - float(np.mean(np.abs(1.0 - x_hat[keep] / x_s[keep])))), float(keep.mean())


def nnls_blending(images: dict, sigma0=1.5, eps=1e-2, size=41, floor=0.05):
    k = optics.gaussian_psf(sigma0, radius=8)
    k_inv = optics.wiener_inverse(k, eps, size)
    rows, examples = [], []
    for (s1, st, s2), paper_d, paper_e in zip(FIG2_TRIPLES, FIG2_PAPER_UPSAMPLED, FIG2_PAPER_DILATED):
        k_t = optics.gaussian_psf(sigma0 * st, radius=math.ceil(5 * sigma0 * st))
        size_t = 2 * round(st * (size - 1) / 2) + 1
        inv_t = optics.wiener_inverse(k_t, eps, size_t)
        up = [optics.fourier_upsample(k_inv, s) / s**2 for s in (s1, s2)]
        dil = [optics.dilate(k_inv, s) for s in (s1, s2)]
        for name, x in images.items():
            y = optics.convolve(x, k_t)
            x_s = optics.convolve(y, inv_t)
            cand_d = [optics.convolve(y, kk) for kk in up]
            cand_e = [optics.convolve(y, kk) for kk in dil]
            w_d = optics.nnls_blend(cand_d, x_s)
            w_e = optics.nnls_blend(cand_e, x_s)
            x_d = w_d[0] * cand_d[0] + w_d[1] * cand_d[1]
            x_e = w_e[0] * cand_e[0] + w_e[1] * cand_e[1]
            acc_d, kept = approximation_accuracy(x_d, x_s, floor)
            acc_e, _ = approximation_accuracy(x_e, x_s, floor)
            best_single = max(approximation_accuracy(c, x_s, floor)[0] for c in cand_d)
            rows.append(dict(triple=(s1, st, s2), photo=name, accuracy_upsampled=acc_d, accuracy_dilated=acc_e,
                             paper_upsampled=paper_d, paper_dilated=paper_e, weights_upsampled=w_d.tolist(),
                             weights_dilated=w_e.tolist(), best_single_unblended=best_single, pixels_kept=kept))
            if name == next(iter(images)):
                examples.append(((s1, st, s2), y, cand_d[0], cand_d[1], x_d, x_e, x_s, acc_d, acc_e))
    return rows, examples


def figure2_title(photo: str, count: int) -> str:
    """Figure 2 shows one photo; the table's rows are means over ``count`` photos: the title says so."""
    return (f"Fig. 2 on one photo ('{photo}') of the {count} whose mean accuracy the report's table gives; "
            "the accuracies under (d) and (e) are this photo's")


def figure2(out: Path, examples, photo: str = "", count: int = 1) -> str:
    import matplotlib.pyplot as plt

    titles = ["(a) input", "(b) $s_1$", "(c) $s_2$", "(d) blend of (b), (c)", "(e) blend, dilated", "(f) target $s_t$"]
    fig, axes = plt.subplots(len(examples), 6, figsize=(15, 2.6 * len(examples)))
    axes = np.atleast_2d(axes)
    for row, (triple, *panels, acc_d, acc_e) in enumerate(examples):
        for col, img in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=9)
        axes[row, 0].set_ylabel("({}, {}, {})".format(*triple), fontsize=9)
        axes[row, 3].set_xlabel(f"this photo: accuracy {acc_d:.2f} %", fontsize=9)
        axes[row, 4].set_xlabel(f"this photo: accuracy {acc_e:.2f} %", fontsize=9)
    fig.suptitle(figure2_title(photo, count), fontsize=10)
    save_figure(fig, out / "fig2_nnls_blending.png")
    return "fig2_nnls_blending.png"


# --------------------------------------------------------------------------------------------------
def run(out_dir: Path, quick: bool = False) -> list[dict]:
    """Reproduce KPAC supplementary Fig. 1, Eq. 3/4, Fig. 2 and Fig. 3; write figures, JSON, markdown."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = ("camera", "astronaut", "coffee") if quick else ("camera", "astronaut", "coffee", "chelsea", "rocket")
    images = photos(names, crop=160 if quick else None)
    rows: list[dict] = []

    fig1 = gaussian_upsampling()
    for sigma in sorted({r["sigma"] for r in fig1}):
        sub = [r for r in fig1 if r["sigma"] == sigma]
        worst = max(r["max_rel_error"] for r in sub)
        tol = max(1e-4, aliasing_bound(sigma))
        note = "" if tol == 1e-4 else f" (sampling-theorem bound {aliasing_bound(sigma):.2g} > 1e-4: a sampled sigma={sigma} Gaussian is aliased)"
        rows.append(claim(f"Fig. 1: (1/s^2) k_up_s == Gaussian(s sigma), sigma={sigma}, s=2..5",
                          "equal (plot)", f"max rel. error {worst:.2e}; per unit mass {max(r['max_abs_error_unit_mass'] for r in sub):.1e}",
                          f"<= {tol:.2g}{note}", worst <= tol, details=sub))

    comm = commutation()
    for eps in (1e-3, 1e-2, 0.0):
        sub = [r for r in comm if r["eps"] == eps]
        worst = max(r["max_abs_error"] for r in sub)
        label = f"eps={eps:g}" + (" (pseudo-inverse outside the band)" if eps == 0 else "")
        rows.append(claim(f"Eq. 3/4: (1/s^2 k_up)^+ == 1/s^2 (k^+)_up, periodic grid, float64, {label}, s=2..5",
                          "exact (proof)", f"max abs error {worst:.1e}", "<= 1e-10", worst <= 1e-10, details=sub))

    fig3_rows, fig3_examples = dilated_vs_upsampled(images)
    for s in (3, 4, 5):
        sub = [r for r in fig3_rows if r["factor"] == s]
        worst = min(r["psnr_d_f"] for r in sub)
        rows.append(claim(f"Fig. 3: PSNR(deblurred by 1/s^2 k^+_up, by dilated k^+), s={s}, {len(sub)} photos",
                          "> 40 dB", f"min {worst:.1f} dB (" + ", ".join(f"{r['photo']} {r['psnr_d_f']:.1f}" for r in sub) + ")",
                          ">= 40 dB", worst >= 40.0, details=sub))

    fig2_rows, fig2_examples = nnls_blending(images)
    for triple, paper_d, paper_e in zip(FIG2_TRIPLES, FIG2_PAPER_UPSAMPLED, FIG2_PAPER_DILATED):
        sub = [r for r in fig2_rows if tuple(r["triple"]) == triple]
        acc_d = float(np.mean([r["accuracy_upsampled"] for r in sub]))
        acc_e = float(np.mean([r["accuracy_dilated"] for r in sub]))
        low = min(min(r["accuracy_upsampled"], r["accuracy_dilated"]) for r in sub)
        single = float(np.mean([r["best_single_unblended"] for r in sub]))
        rows.append(claim(f"Fig. 2: NNLS blend accuracy, (s1, st, s2) = {triple}",
                          f"{paper_d:.2f} % / dilated {paper_e:.2f} %",
                          f"{acc_d:.2f} % / dilated {acc_e:.2f} % (mean of {len(sub)} photos, min {low:.2f} %; "
                          f"best single unblended kernel {single:.2f} %)",
                          ">= 95 % on every photo", low >= 95.0, details=sub))

    figures = [figure1(out), figure3(out, fig3_examples), figure2(out, fig2_examples, next(iter(images)), len(images))]
    write_json(out / f"{NAME}.json", dict(validation=NAME, quick=quick, choices=CHOICES, claims=rows, figures=figures))
    preamble = "KPAC supplementary (Son et al., ICCV 2021), Fig. 1-3 and Eq. 3/4.\n\nChoices:\n" + "\n".join(
        f"- {k}: {v}" for k, v in CHOICES.items()
    ) + ("\n\n--quick: 160x160 centre crops of three photos." if quick else "")
    write_markdown(out / f"{NAME}.md", "Kernel upsampling and inverse kernels (KPAC supplementary)", rows, preamble, figures)
    return rows


def main(argv=None) -> int:
    return cli_main(NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
