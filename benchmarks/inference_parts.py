"""Micro-measurements behind issue 14's CPU speed-ups: ``python -m benchmarks.inference_parts``.

Each line times one operator both ways (CPU time = user + system, ``time.process_time``, median
of ``--repeats`` alternating calls in this process, one thread unless ``--threads``) at the
sizes of a 1280x720 forward pass:

* a 32 -> 32 3x3 convolution and a 64 -> 32 4x4 stride-2 transposed convolution, NCHW against
  channels-last input (oneDNN reorders NCHW around every convolution);
* LeakyReLU of a 32-channel map out of place against in place (first-touch page faults);
* IFAN's IAC (N = 17, 128 channels, 90x160) on NCHW against channels-last features and
  filters, and, with ``--official-ifan DIR``, the authors' ``models/IAC.py`` on the same input;
* K3DN's Wiener inverse kernels (7x7 -> 13x13, ``--k3dn-channels`` channels on a 90x160 cell
  grid): the complex ``optics.operators.fourier`` chain against the real-FFT path.

Nothing here is a test; the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def _median_cpu(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def _pair(label: str, a_name: str, a, b_name: str, b, repeats: int) -> str:
    ta, tb = [], []
    a(), b()
    for _ in range(repeats):  # alternate, so that a change of load hits both
        ta.append(_median_cpu(a, 1))
        tb.append(_median_cpu(b, 1))
    ma, mb = statistics.median(ta), statistics.median(tb)
    return f"| {label} | {a_name} {ma:.3f} s | {b_name} {mb:.3f} s | {mb / ma:.2f} |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference_parts", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k3dn-channels", type=int, default=16, help="channels of the Wiener-inverse measurement")
    p.add_argument("--official-ifan", metavar="DIR", help="checkout of codeslake/IFAN at 66bf136 (adds its IAC)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.k3dn_channels < 1:
        print("error: --threads, --repeats and --k3dn-channels must be >= 1", file=sys.stderr)
        return 2
    if args.official_ifan is not None and not (Path(args.official_ifan) / "models" / "IAC.py").is_file():
        print(f"error: --official-ifan must contain models/IAC.py; got {args.official_ifan!r}", file=sys.stderr)
        return 2
    import torch
    import torch.nn.functional as F

    from learned.models.iac import iterative_adaptive_convolution, split_filter_prediction
    from learned.models.k3dn import wiener_inverse_kernels
    from optics.operators.fourier import otf_to_psf, psf_to_otf, wiener_filter

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cl = torch.channels_last
    r = args.repeats
    rows = ["| operator | first | second | second / first |", "|---|---|---|---|"]
    with torch.no_grad():
        x = torch.rand(1, 32, 720, 1280)
        w = torch.rand(32, 32, 3, 3)
        xc = x.contiguous(memory_format=cl)
        rows.append(_pair("conv 32->32 3x3, 1280x720", "NCHW", lambda: F.conv2d(x, w, padding=1),
                          "channels-last", lambda: F.conv2d(xc, w, padding=1), r))
        y = torch.rand(1, 64, 360, 640)
        wt = torch.rand(64, 32, 4, 4)
        yc = y.contiguous(memory_format=cl)
        rows.append(_pair("transposed conv 64->32 4x4 s2, to 1280x720", "NCHW",
                          lambda: F.conv_transpose2d(y, wt, stride=2, padding=1), "channels-last",
                          lambda: F.conv_transpose2d(yc, wt, stride=2, padding=1), r))
        rows.append(_pair("LeakyReLU, 32x1280x720", "out of place", lambda: F.leaky_relu(x, 0.1),
                          "in place", lambda: F.leaky_relu_(x, 0.1), r))
        n, c, k, h, wd = 17, 128, 3, 90, 160
        feat = torch.randn(1, c, h, wd)
        pred = torch.randn(1, n * (2 * c * k + c), h, wd) * 0.3
        kv, kh, b = split_filter_prediction(pred, n, c, k)
        featc, predc = feat.contiguous(memory_format=cl), pred.contiguous(memory_format=cl)
        kvc, khc, bc = split_filter_prediction(predc, n, c, k)
        rows.append(_pair("IAC N=17, 128x90x160 (ours)", "NCHW",
                          lambda: iterative_adaptive_convolution(feat, kv, kh, b, reuse_vertical_kernel=True),
                          "channels-last",
                          lambda: iterative_adaptive_convolution(featc, kvc, khc, bc, reuse_vertical_kernel=True), r))
        if args.official_ifan:
            sys.path.insert(0, str(Path(args.official_ifan).resolve()))
            from models.IAC import IAC  # the authors' code, from the user's checkout

            rows.append(_pair("IAC N=17, 128x90x160, NCHW", "authors'", lambda: IAC(feat.clone(), pred, n, c, k),
                              "ours",
                              lambda: iterative_adaptive_convolution(feat, kv, kh, b, reuse_vertical_kernel=True), r))
        kern = torch.rand(1, args.k3dn_channels, 90, 160, 7, 7)
        kern = kern / kern.sum(dim=(-1, -2), keepdim=True)
        rows.append(_pair(f"Wiener inverses 7->13, {args.k3dn_channels}x90x160 kernels", "complex chain",
                          lambda: otf_to_psf(wiener_filter(psf_to_otf(kern, (13, 13)), 1e-2), 13),
                          "real FFT", lambda: wiener_inverse_kernels(kern, 13, 1e-2), r))
    print(f"CPU time per call, {args.threads} thread(s), median of {r} alternating calls:\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
