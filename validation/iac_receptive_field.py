"""IFAN Table 4: N iterations of k-tap separable filters have a receptive field of N (k - 1) + 1.

``python -m validation.iac_receptive_field [--quick] [--out DIR]``

The receptive field is measured, not computed: an impulse is pushed through the iterative
adaptive convolution (:func:`learned.models.iac.iterative_adaptive_convolution`, random positive per-pixel
taps, zero bias, so every leaky ReLU acts as the identity and nothing cancels) and the extent of
the non-zero response is counted along each axis. A tiny independent NumPy implementation of
the same iteration (replicate padding, vertical then horizontal pass) checks the operator itself.

References
----------
.. [1] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single Image
   Defocus Deblurring", CVPR 2021, Sec. 3.1 and Table 4 (N = 8, 17, 26, 35, 44 -> RF 17, 35, 53,
   71, 89 with k = 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._report import claim, cli_main, save_figure, write_json, write_markdown

NAME = "iac_receptive_field"

#: IFAN Table 4: number of filters N -> receptive field printed in the paper (k = 3).
PAPER_TABLE4 = {8: 17, 17: 35, 26: 53, 35: 71, 44: 89}


def local_separable_iteration(image: np.ndarray, kernels_v: np.ndarray, kernels_h: np.ndarray) -> np.ndarray:
    """Independent NumPy twin of the linear part of IAC for one channel.

    ``image`` (H, W); ``kernels_v``/``kernels_h`` (N, k, H, W), tap ``t`` weighting the neighbour at
    offset ``t - (k - 1) / 2``; replicate padding; vertical pass, then horizontal, N times.
    """
    n_iter, k, h, w = kernels_v.shape
    r = (k - 1) // 2
    out = image.astype(np.float64)
    rows = np.arange(h)
    cols = np.arange(w)
    for n in range(n_iter):
        vertical = np.zeros_like(out)
        for t in range(k):
            vertical += kernels_v[n, t] * out[np.clip(rows + t - r, 0, h - 1), :]
        horizontal = np.zeros_like(out)
        for t in range(k):
            horizontal += kernels_h[n, t] * vertical[:, np.clip(cols + t - r, 0, w - 1)]
        out = horizontal
    return out


def _iac_operator():
    """The project's IAC if present (preferred), else None."""
    try:
        from learned.models.iac import iterative_adaptive_convolution
    except ImportError:
        return None
    return iterative_adaptive_convolution


def impulse_response(n_iter: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Response of N IAC iterations to a centred impulse; returns (response, twin response, source)."""
    side = n_iter * (k - 1) + 1 + 24  # the field plus a margin of 12 pixels on each side
    centre = side // 2
    image = np.zeros((side, side))
    image[centre, centre] = 1.0
    kernels_v = rng.uniform(0.2, 1.0, size=(n_iter, k, side, side))
    kernels_h = rng.uniform(0.2, 1.0, size=(n_iter, k, side, side))
    twin = local_separable_iteration(image, kernels_v, kernels_h)
    iac = _iac_operator()
    if iac is None:
        return twin, twin, "local NumPy iteration (learned.iac not available)"
    import torch

    response = iac(
        torch.tensor(image)[None, None],
        torch.tensor(kernels_v)[None, :, None],
        torch.tensor(kernels_h)[None, :, None],
        torch.zeros((1, n_iter, 1, side, side), dtype=torch.float64),
    )[0, 0].numpy()
    return response, twin, "learned.iac.iterative_adaptive_convolution"


def receptive_field(response: np.ndarray) -> tuple[int, int]:
    """Extent (rows, columns) of the non-zero part of an impulse response."""
    rows = np.nonzero(np.any(response != 0, axis=1))[0]
    cols = np.nonzero(np.any(response != 0, axis=0))[0]
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _figure(results: list[dict], responses: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k3 = [r for r in results if r["k"] == 3]
    # two rows (impulse responses, then the plot) so that the text stays readable at page width
    cols = (len(k3) + 1) // 2 + 1
    fig = plt.figure(figsize=(3.0 * cols, 6.4), constrained_layout=True)
    grid = fig.add_gridspec(2, cols)
    axes = [fig.add_subplot(grid[i // (cols - 1), i % (cols - 1)]) for i in range(len(k3))]
    axes.append(fig.add_subplot(grid[:, cols - 1]))
    for ax, r in zip(axes, k3):
        resp = responses[(r["N"], 3)]
        ax.imshow(np.log10(np.maximum(resp / resp.max(), 1e-300)), cmap="magma", vmin=-40, vmax=0)
        ax.set_title(f"N={r['N']}: RF {r['measured_rows']}\n(paper {r['paper']})", fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    ns = np.array([r["N"] for r in k3])
    ax.plot(ns, ns * 2 + 1, "-", color="grey", label="N(k-1)+1, k=3")
    ax.plot(list(PAPER_TABLE4), list(PAPER_TABLE4.values()), "s", mfc="none", ms=10, label="IFAN Table 4")
    ax.plot(ns, [r["measured_rows"] for r in k3], "x", color="C3", ms=8, label="measured (impulse)")
    for r in (r for r in results if r["k"] != 3):
        ax.plot(r["N"], r["measured_rows"], "+", color="C2", ms=9)
    ax.set_xlabel("iterations N", fontsize=12)
    ax.set_ylabel("receptive field (px)", fontsize=12)
    ax.tick_params(labelsize=11)
    ax.legend(fontsize=11)
    ax.set_title("'+': k = 5 (4N+1)", fontsize=12)
    fig.suptitle("IAC impulse responses, log10(response / max), black below 1e-40 (IFAN Table 4)", fontsize=13)
    save_figure(fig, out / "iac_receptive_field.png")
    return ["iac_receptive_field.png"]


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    """Measure the receptive field of IAC for IFAN's N = 8..44 (k = 3) and a k = 5 check."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = [(n, 3) for n in PAPER_TABLE4] + ([(8, 5)] if quick else [(8, 5), (17, 5)])
    results, responses, source = [], {}, ""
    for n_iter, k in cases:
        response, twin, source = impulse_response(n_iter, k, rng)
        responses[(n_iter, k)] = response
        rf_rows, rf_cols = receptive_field(response)
        rel = float(np.max(np.abs(response - twin)) / np.max(np.abs(twin)))
        results.append(
            dict(N=n_iter, k=k, paper=PAPER_TABLE4.get(n_iter) if k == 3 else None, formula=n_iter * (k - 1) + 1,
                 measured_rows=rf_rows, measured_cols=rf_cols, twin_receptive_field=list(receptive_field(twin)),
                 max_rel_difference_to_twin=rel)
        )
    rows = []
    for r in results:
        paper = f"RF {r['paper']} (Table 4)" if r["paper"] else f"N(k-1)+1 = {r['formula']}"
        ok = r["measured_rows"] == r["measured_cols"] == r["formula"] and (r["paper"] in (None, r["formula"]))
        rows.append(claim(f"receptive field of N={r['N']} iterations of {r['k']}-tap separable filters", paper,
                          f"{r['measured_rows']} x {r['measured_cols']} px (impulse response)", "exact", ok))
    worst = max(r["max_rel_difference_to_twin"] for r in results)
    rows.append(claim("IAC operator equals an independent NumPy separable iteration (linear regime)",
                      "Eq. 1 (definition)", f"max relative difference {worst:.1e}", "<= 1e-12", worst <= 1e-12))
    figures = _figure(results, responses, out)
    write_json(out / f"{NAME}.json", dict(validation=NAME, quick=quick, operator=source, results=results, claims=rows))
    preamble = (
        f"Operator: `{source}`, float64, random positive per-pixel taps U(0.2, 1), zero bias (the leaky "
        "ReLU is then the identity). The receptive field is the extent of the non-zero impulse response. "
        "`python -m validation.iac_receptive_field" + (" --quick`" if quick else "`")
    )
    write_markdown(out / f"{NAME}.md", "IAC receptive field (IFAN Table 4)", rows, preamble, figures)
    return rows


def main(argv=None) -> int:
    return cli_main(NAME, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
