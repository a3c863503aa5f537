"""K3DN: disparity-aware kernel estimation for dual-pixel defocus deblurring.

A PyTorch implementation of K3DN designed from the text of the paper [1]_. The authors released
no code and the supplementary material (per-layer details of the Tiny / Lightweight / Large
models) is not available, so every layer not fixed by the paper's equations is a documented design
choice; ``docs/k3dn_design.md`` lists them, with the equation each one belongs to, and explains how
the published parameter counts (3.0 M, 5.0 M and 15.9 M) are met.

Data flow (Fig. 3 and Fig. 5 of [1]_)::

    (B_L, B_R) --Encoder E------------------> F_B (B, C_f, H/4, W/4)
    (B_L, B_R) --DisparityEstimator D-------> R   (B, C_d, H/(4p), W/(4p))     p = cell_size
    R, kernel set K (N symmetric kernels) --KernelQuery (Eq. 8-9)--> K_hat (one kernel per cell
                                                                     and feature channel)
    F_B, K_hat --PSFBlock (Eq. 10, Wiener inverse in the Fourier domain)--> F_hat_B
    F_B, F_hat_B --SRPBlock (Eq. 11-16, local attention)--> S
    S --Decoder G--> I_hat                    (plus the input average, a global residual)

    training only (Eq. 17): (I, I) --E--> F_I --PSFBlock(blur with the same K_hat)--> F_hat_I
                            --SRPBlock--> --G--> B_hat ~ (B_L + B_R) / 2

The physics (centred kernel -> OTF, Wiener inverse, OTF -> centred kernel) is the project's
:mod:`optics.operators.fourier`, running on torch tensors with autograd.

References
----------
.. [1] Y. Yang, L. Pan, L. Liu, M. Liu, "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel
   Defocus Deblurring", CVPR 2023.
.. [2] X. Cheng et al., "Hierarchical Neural Architecture Search for Deep Stereo Matching"
   (LEAStereo), NeurIPS 2020 -- the source of the disparity estimator's design in [1]_.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from optics.operators.fourier import otf_to_psf, psf_to_otf, wiener_filter

from ..inference._padding import check_input, crop_to, pad_to_multiple
from ..inference._speed import add_into, cpu_channels_last
from ..inference.precision import upcast_low_precision

__all__ = [
    "K3DN",
    "MODELS",
    "CONFIGS",
    "PAPER_PARAMETERS",
    "PAPER_GFLOPS_1120x1680",
    "k3dn_tiny",
    "k3dn_light",
    "k3dn_large",
    "KernelSet",
    "KernelQuery",
    "PSFBlock",
    "SRPBlock",
    "DisparityEstimator",
    "Encoder",
    "Decoder",
    "cellwise_depthwise_convolution",
    "wiener_inverse_kernels",
    "psf_deblur",
    "psf_reblur",
    "horizontal_correlation",
    "local_attention_scores",
]


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}; got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}")
    return value


def _check_odd(value, name: str, minimum: int = 1) -> int:
    value = _check_positive_int(value, name, minimum)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd (origin at the centre pixel); got {value}")
    return value


def _check_power_of_two(value, name: str) -> int:
    value = _check_positive_int(value, name)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two (1, 2, 4, ...); got {value}")
    return value


def _check_float_tensor(x, name: str, ndim: int, layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}; got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64; got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}; got {x.ndim}-D tensor of shape {tuple(x.shape)}")


def _cell_size(features: torch.Tensor, cell_kernels: torch.Tensor) -> int:
    """Check a (B, C, H, W) feature map against (B, C, Hd, Wd, k, k) kernels; return H // Hd."""
    _check_float_tensor(features, "features", 4, "(B, C, H, W)")
    _check_float_tensor(cell_kernels, "cell_kernels", 6, "(B, C, Hd, Wd, k, k)")
    if features.dtype != cell_kernels.dtype:
        raise TypeError(
            f"features and cell_kernels must share a dtype; got {features.dtype} and {cell_kernels.dtype}"
        )
    B, C, H, W = features.shape
    Bk, Ck, Hd, Wd, k0, k1 = cell_kernels.shape
    if (Bk, Ck) != (B, C):
        raise ValueError(
            "cell_kernels must have the batch and channel sizes of features "
            f"({B}, {C}); got ({Bk}, {Ck})"
        )
    if k0 != k1 or k0 % 2 == 0:
        raise ValueError(f"cell_kernels must be square with an odd side; got {k0}x{k1}")
    if Hd < 1 or Wd < 1 or H % Hd or W % Wd or H // Hd != W // Wd:
        raise ValueError(
            "features (H, W) must be an integer multiple p of the kernel grid (Hd, Wd), the same p on "
            f"both axes; got features {H}x{W} and kernel grid {Hd}x{Wd}"
        )
    return H // Hd


#: Largest number of complex OTF values the PSF block materialises at once on the CPU (2**21:
#: 16 MiB in complex64). Small chunks stay below glibc's mmap threshold (no page faults on reuse)
#: and keep the 169-tap cell-wise convolution of one chunk in cache: at 1280x720, 2**21 instead
#: of 2**25 took K3DN tiny from 13.8 to 7.8-9.6 s of CPU time (one thread), same output (issue 14).
_OTF_ELEMENTS_PER_CHUNK = 2**21
#: The same bound on other devices (2**25: 256 MiB in complex64), where fewer, larger launches pay.
_OTF_ELEMENTS_PER_CHUNK_DEVICE = 2**25

# ----------------------------------------------------------------------------------------------
# Functional operators: PSF block (Eq. 10), reblurring (Eq. 17), correlation, local attention
# ----------------------------------------------------------------------------------------------


def cellwise_depthwise_convolution(features: torch.Tensor, cell_kernels: torch.Tensor) -> torch.Tensor:
    r"""Depth-wise convolution whose kernel is constant on each p x p cell of the feature map.

    Parameters
    ----------
    features : torch.Tensor, shape (B, C, H, W)
        Feature map :math:`\mathbf{F}`; ``H = p Hd`` and ``W = p Wd``.
    cell_kernels : torch.Tensor, shape (B, C, Hd, Wd, k, k)
        One centred kernel (odd ``k``, origin at the centre pixel) per cell and channel.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
        ``out[b, c, y, x] = sum_{u, v} K[b, c, y // p, x // p, u, v] F[b, c, y - (u - k//2),
        x - (v - k//2)]``, a true convolution (not a correlation) with zero padding outside the
        map. The kernel of an output pixel is the one of the cell that pixel lies in (nearest
        neighbour, footnote 2 of [1]_); the input pixels it reads may lie in neighbouring cells.

    Notes
    -----
    The layer-wise convolution :math:`\mathbf{F}^i \otimes \hat{\mathbf{K}}^i` of Eq. 10 and
    Eq. 17 of [1]_, "implemented via depth-wise convolution". It loops over the :math:`k^2`
    kernel taps and multiplies a shifted view of the padded map by the per-cell weights, so no
    unfolded (B, C k^2, H, W) copy is ever held; the backward pass is the hand-written adjoint
    (same loop, accumulated in place). First derivatives only: double backward is not supported.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 10 and Eq. 17.
    """
    (features, cell_kernels), result_dtype = upcast_low_precision(features, cell_kernels)  # autocast: float32
    _cell_size(features, cell_kernels)
    return _CellwiseDepthwiseConvolution.apply(features, cell_kernels).to(result_dtype)


class _CellwiseDepthwiseConvolution(torch.autograd.Function):
    """Tap loop with a hand-written adjoint.

    Autograd through the tap loop would allocate a zero-filled padded-map-sized gradient for every
    one of the k^2 slices in the backward pass; this backward accumulates all taps in place into
    one buffer instead. First derivatives only (checked by ``torch.autograd.gradcheck`` in the tests).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, cell_kernels: torch.Tensor) -> torch.Tensor:
        B, C, H, W = features.shape
        Hd, Wd, k = cell_kernels.shape[2], cell_kernels.shape[3], cell_kernels.shape[-1]
        p, r = H // Hd, k // 2
        padded = F.pad(features, (r, r, r, r))
        # Tap-major, contiguous weights: weights[u, v] is a dense (B, C, Hd, Wd) slice.
        weights = cell_kernels.permute(4, 5, 0, 1, 2, 3).contiguous()
        out = features.new_zeros(B, C, Hd, p, Wd, p)
        for u in range(k):
            for v in range(k):
                # out[y, x] += K[u, v] F[y - (u - r), x - (v - r)] = K[u, v] padded[y + k-1-u, x + k-1-v]
                window = padded[:, :, k - 1 - u : k - 1 - u + H, k - 1 - v : k - 1 - v + W]
                out.addcmul_(window.reshape(B, C, Hd, p, Wd, p), weights[u, v][:, :, :, None, :, None])
        ctx.save_for_backward(features, weights)
        return out.reshape(B, C, H, W)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        features, weights = ctx.saved_tensors
        B, C, H, W = features.shape
        k, Hd, Wd = weights.shape[0], weights.shape[4], weights.shape[5]
        p, r = H // Hd, k // 2
        g = grad_out.contiguous().reshape(B, C, Hd, p, Wd, p)
        need_features, need_kernels = ctx.needs_input_grad
        padded = F.pad(features, (r, r, r, r))
        grad_padded = features.new_zeros(B, C, H + 2 * r, W + 2 * r) if need_features else None
        grad_weights = torch.empty_like(weights) if need_kernels else None
        for u in range(k):
            for v in range(k):
                rows, cols = slice(k - 1 - u, k - 1 - u + H), slice(k - 1 - v, k - 1 - v + W)
                if need_features:
                    target = grad_padded[:, :, rows, cols].view(B, C, Hd, p, Wd, p)
                    target.addcmul_(g, weights[u, v][:, :, :, None, :, None])
                if need_kernels:
                    window = padded[:, :, rows, cols].reshape(B, C, Hd, p, Wd, p)
                    grad_weights[u, v] = (window * g).sum(dim=(3, 5))
        grad_features = grad_padded[:, :, r : r + H, r : r + W] if need_features else None
        grad_kernels = grad_weights.permute(2, 3, 4, 5, 0, 1) if need_kernels else None
        return grad_features, grad_kernels


def wiener_inverse_kernels(cell_kernels: torch.Tensor, inverse_size: int, eps: float) -> torch.Tensor:
    r"""Spatial Wiener inverses :math:`\mathcal{F}'(\overline{\mathcal{F}(K)}/(|\mathcal{F}(K)|^2+\epsilon))`.

    Parameters
    ----------
    cell_kernels : torch.Tensor, shape (..., k, k)
        Centred kernels with odd side ``k``.
    inverse_size : int
        Odd side ``m >= k`` of the periodic grid on which the inverse is computed; the result is
        the full ``m x m`` period, centred.
    eps : float
        Wiener noise-to-signal parameter (``eps > 0`` keeps the inverse bounded where
        :math:`\mathcal{F}(K)` vanishes; ``eps = 0`` is the direct inverse of Eq. 10 and raises if
        :math:`\mathcal{F}(K)` has zeros).

    Returns
    -------
    torch.Tensor, shape (..., m, m)
        Real centred inverse kernels, dtype of ``cell_kernels``.

    Notes
    -----
    ``optics.operators.fourier.otf_to_psf(optics.operators.fourier.wiener_filter(optics.operators.fourier.psf_to_otf(K, (m, m)),
    eps), m)``: the :math:`1/\mathcal{F}(\hat{\mathbf{K}}^i)` of Eq. 10 of [1]_, regularised as a
    Wiener filter.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 7 and Eq. 10.
    """
    if not isinstance(cell_kernels, torch.Tensor):
        raise TypeError(f"cell_kernels must be a torch.Tensor of shape (..., k, k); got {type(cell_kernels).__name__}")
    (cell_kernels,), result_dtype = upcast_low_precision(cell_kernels)  # FFTs in float32 under autocast
    if cell_kernels.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"cell_kernels must be float32 or float64; got {cell_kernels.dtype}")
    if cell_kernels.ndim < 2:
        raise ValueError(f"cell_kernels must be at least 2-D (..., k, k); got shape {tuple(cell_kernels.shape)}")
    k = cell_kernels.shape[-1]
    if cell_kernels.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"cell_kernels must be square with an odd side; got {tuple(cell_kernels.shape[-2:])}")
    m = _check_odd(inverse_size, "inverse_size")
    if m < k:
        raise ValueError(f"inverse_size must be >= the kernel side {k}; got {m}")
    if eps > 0:
        return _wiener_inverse_rfft(cell_kernels, m, eps).to(result_dtype)
    otf = psf_to_otf(cell_kernels, (m, m))
    return otf_to_psf(wiener_filter(otf, eps), m).to(result_dtype)


@functools.lru_cache(maxsize=8)
def _centring_phase(m: int, shift: int) -> torch.Tensor:
    """``exp(-2 pi i (u + v) shift / m)`` on the (m, m // 2 + 1) half spectrum, complex128."""
    u = torch.arange(m, dtype=torch.int64)[:, None]
    v = torch.arange(m // 2 + 1, dtype=torch.int64)[None, :]
    angle = -2.0 * math.pi * (((u + v) * shift) % m).to(torch.float64) / m  # exact integer phase index
    return torch.polar(torch.ones_like(angle), angle)


def _wiener_inverse_rfft(cell_kernels: torch.Tensor, m: int, eps: float) -> torch.Tensor:
    r""":func:`wiener_inverse_kernels` for ``eps > 0`` with real FFTs and no shifted copies.

    With the ``k x k`` kernel zero-padded at the end (``S = rfft2(K, s=(m, m))``, its centre at
    ``r = k // 2``), the centred OTF is :math:`S e^{2\pi i (u + v) r / m}`; the Wiener filter
    :math:`\overline{OTF} / (|OTF|^2 + \epsilon)` and the centring roll by ``h = m // 2`` of the
    spatial result fold into one phase factor:

    .. math:: k^\dagger = \mathrm{irfft2}\Big(rac{\overline{S}\, e^{-2\pi i (u + v)(r + h) / m}}
              {|S|^2 + \epsilon}\Big).

    The same values as ``otf_to_psf(wiener_filter(psf_to_otf(K, (m, m)), eps), m)`` up to float
    rounding, on the half spectrum (Hermitian symmetry of a real kernel's transform), without the
    embedding, the two rolls and the ``real`` copy of the complex path.
    """
    k = cell_kernels.shape[-1]
    spectrum = torch.fft.rfft2(cell_kernels, s=(m, m))
    power = torch.view_as_real(spectrum).square().sum(-1).add_(eps)
    phase = _centring_phase(m, k // 2 + m // 2).to(device=spectrum.device, dtype=spectrum.dtype)
    filtered = spectrum.conj_physical().mul_(phase).div_(power)
    return torch.fft.irfft2(filtered, s=(m, m))


def psf_deblur(features: torch.Tensor, cell_kernels: torch.Tensor, *, inverse_size: int, eps: float) -> torch.Tensor:
    r"""PSF block, Eq. 10 of [1]_: deblur each cell and channel with the inverse of its kernel.

    Parameters
    ----------
    features : torch.Tensor, shape (B, C, H, W)
        Blurry feature map :math:`\mathbf{F}_B`, ``H = p Hd``, ``W = p Wd``.
    cell_kernels : torch.Tensor, shape (B, C, Hd, Wd, k, k)
        Estimated kernels :math:`\hat{\mathbf{K}}^i` (Eq. 9), one per cell and channel.
    inverse_size : int
        Odd side of the Fourier grid and of the spatial inverse kernel (see
        :func:`wiener_inverse_kernels`).
    eps : float
        Wiener regularisation.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
        Deblurred feature map :math:`\hat{\mathbf{F}}_B`.

    Notes
    -----
    .. math:: \hat{\mathbf{F}}_B^i = \mathbf{F}_B^i \otimes \mathcal{F}'\!\left(
              \frac{\overline{\mathcal{F}(\hat{\mathbf{K}}^i)}}{|\mathcal{F}(\hat{\mathbf{K}}^i)|^2
              + \epsilon}\right), \quad i = 1, \dots, H_d W_d

    Eq. 10 of [1]_ with the direct inverse :math:`1/\mathcal{F}` replaced by the Wiener filter
    (identical for ``eps = 0``).

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 10.
    """
    (features, cell_kernels), result_dtype = upcast_low_precision(features, cell_kernels)  # FFTs in float32
    _cell_size(features, cell_kernels)
    B, C, Hd, Wd = cell_kernels.shape[:4]
    m = _check_odd(inverse_size, "inverse_size")
    # The complex OTFs of all cells and channels at once would take B*C*Hd*Wd*m*m complex values
    # (gigabytes for a 1120 x 1680 image), so channels are processed in chunks; channels are
    # independent (depth-wise), so the result is identical.
    per_channel = max(1, B * Hd * Wd * m * m)
    budget = _OTF_ELEMENTS_PER_CHUNK if features.device.type == "cpu" else _OTF_ELEMENTS_PER_CHUNK_DEVICE
    chunk = max(1, budget // per_channel)
    outputs = []
    for start in range(0, C, chunk):
        inverse = wiener_inverse_kernels(cell_kernels[:, start : start + chunk], m, eps)
        outputs.append(cellwise_depthwise_convolution(features[:, start : start + chunk], inverse))
    return (outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)).to(result_dtype)


def psf_reblur(features: torch.Tensor, cell_kernels: torch.Tensor) -> torch.Tensor:
    r"""Reblurring, Eq. 17 of [1]_: :math:`\hat{\mathbf{F}}_I^i = \mathbf{F}_I^i \otimes \hat{\mathbf{K}}^i`.

    Parameters
    ----------
    features : torch.Tensor, shape (B, C, H, W)
        Sharp feature map :math:`\mathbf{F}_I`.
    cell_kernels : torch.Tensor, shape (B, C, Hd, Wd, k, k)
        The same kernels :math:`\hat{\mathbf{K}}^i` used for deblurring.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 17.
    """
    return cellwise_depthwise_convolution(features, cell_kernels)


def horizontal_correlation(left: torch.Tensor, right: torch.Tensor, max_disparity: int) -> torch.Tensor:
    r"""Correlation cost volume along the disparity (horizontal) axis.

    Parameters
    ----------
    left, right : torch.Tensor, shape (B, C, H, W)
        Feature maps of the two dual-pixel views.
    max_disparity : int
        Disparities :math:`d = -D, \dots, D` are evaluated (DP disparity is signed).

    Returns
    -------
    torch.Tensor, shape (B, 2D + 1, H, W)
        ``out[:, d + D, y, x] = mean_c left[:, c, y, x] * right[:, c, y, x - d]``, zero where
        ``x - d`` falls outside the map.
    """
    (left, right), result_dtype = upcast_low_precision(left, right)  # autocast: accumulate in float32
    _check_float_tensor(left, "left", 4, "(B, C, H, W)")
    _check_float_tensor(right, "right", 4, "(B, C, H, W)")
    if left.shape != right.shape:
        raise ValueError(f"left and right must have the same shape; got {tuple(left.shape)} and {tuple(right.shape)}")
    D = _check_positive_int(max_disparity, "max_disparity", 0)
    W = left.shape[-1]
    padded = F.pad(right, (D, D))
    costs = []
    for d in range(-D, D + 1):
        # right[x - d] = padded[x - d + D]
        shifted = padded[..., D - d : D - d + W]
        costs.append((left * shifted).mean(dim=1))
    return torch.stack(costs, dim=1).to(result_dtype)


def local_attention_scores(query: torch.Tensor, key: torch.Tensor, window: int) -> torch.Tensor:
    r"""Local attention map :math:`\mathbf{O}_B` of Eq. 11 of [1]_.

    Parameters
    ----------
    query, key : torch.Tensor, shape (B, C, H, W)
        :math:`\mathbf{Q}_B` and :math:`\mathbf{K}_B` (Eq. 12-13).
    window : int
        Odd attention window side :math:`s`.

    Returns
    -------
    torch.Tensor, shape (B, s*s, H, W)
        ``softmax_o(<q(y, x), k(y + dy_o, x + dx_o)> / sqrt(C))`` over the :math:`s^2` offsets
        ``o`` (row-major, ``dy`` and ``dx`` from ``-(s//2)`` to ``s//2``). Offsets that fall
        outside the map are excluded from the softmax (their score is exactly 0).

    Notes
    -----
    .. math:: \mathbf{O}_B(x, o) = \frac{\exp(\mathbf{q}_x^\top \mathbf{k}_{x+o} / \sqrt{C})}
              {\sum_{o' \in \mathcal{W}_s,\ x + o' \in \Omega}
              \exp(\mathbf{q}_x^\top \mathbf{k}_{x+o'} / \sqrt{C})}

    Scaled dot-product attention [2]_ restricted to an :math:`s \times s` window.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 11-13.
    .. [2] Vaswani et al., "Attention is all you need", NeurIPS 2017.
    """
    (query, key), result_dtype = upcast_low_precision(query, key)  # autocast: accumulate in float32
    _check_float_tensor(query, "query", 4, "(B, C, H, W)")
    _check_float_tensor(key, "key", 4, "(B, C, H, W)")
    if query.shape != key.shape:
        raise ValueError(f"query and key must have the same shape; got {tuple(query.shape)} and {tuple(key.shape)}")
    s = _check_odd(window, "window")
    r = s // 2
    B, C, H, W = query.shape
    padded = F.pad(key, (r, r, r, r))
    inside = F.pad(key.new_ones(1, 1, H, W), (r, r, r, r))
    scale = 1.0 / math.sqrt(C)
    scores, masks = [], []
    for dy in range(s):
        for dx in range(s):
            scores.append((query * padded[:, :, dy : dy + H, dx : dx + W]).sum(dim=1) * scale)
            masks.append(inside[:, 0, dy : dy + H, dx : dx + W])
    logits = torch.stack(scores, dim=1)
    valid = torch.stack(masks, dim=1) > 0
    logits = logits.masked_fill(~valid, float("-inf"))
    return torch.softmax(logits, dim=1).to(result_dtype)


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """``x + conv3x3(relu(conv3x3(x)))`` at constant width (no normalisation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fresh conv outputs that autograd does not keep: activate and add in place
        return add_into(self.conv2(F.relu(self.conv1(x), inplace=True)), x)


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])


class Encoder(nn.Module):
    r"""Convolutional encoder :math:`\mathbf{E}(\mathbf{B}_L, \mathbf{B}_R)` (Sec. 3.2 of [1]_).

    ``conv3x3(2 in_channels -> w0)``, then per level ``l``: ``blocks[l]`` residual blocks at width
    ``widths[l]``, a stride-2 3x3 convolution to ``widths[l + 1]`` between levels. Output
    :math:`\mathbf{F}_B` has ``widths[-1]`` channels at ``1 / 2**(len(widths) - 1)`` resolution.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Sec. 3.2 (Encoder).
    """

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: Sequence[int]):
        super().__init__()
        self.stem = nn.Conv2d(2 * in_channels, widths[0], 3, padding=1)
        self.stages = nn.ModuleList(_stage(w, n) for w, n in zip(widths, blocks))
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(len(widths) - 1)
        )

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        # channels-last on the CPU (oneDNN's layout, see learned.inference._speed); F_B leaves contiguous
        x = self.stem(cpu_channels_last(torch.cat([left, right], dim=1)))
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.downs):
                x = F.relu(self.downs[i](x), inplace=True)
        return x.contiguous()


class Decoder(nn.Module):
    r"""Convolutional decoder :math:`\mathbf{G}(\cdot)` (Sec. 3.2 of [1]_), the encoder's mirror.

    Per level from coarse to fine: ``blocks[l]`` residual blocks at ``widths[l]``, a 2x2
    stride-2 transposed convolution to the next finer width; a final ``conv3x3(w0 -> out)``. No
    skip connections from the encoder: the decoder sees only the SRP block's output, as in
    Fig. 3 and Fig. 5 of [1]_.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Sec. 3.2 (Decoder).
    """

    def __init__(self, out_channels: int, widths: Sequence[int], blocks: Sequence[int]):
        super().__init__()
        coarse_to_fine = list(widths)[::-1]
        self.stages = nn.ModuleList(_stage(w, n) for w, n in zip(coarse_to_fine, list(blocks)[::-1]))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(coarse_to_fine[i], coarse_to_fine[i + 1], 2, stride=2)
            for i in range(len(widths) - 1)
        )
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = cpu_channels_last(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.ups):
                x = F.relu(self.ups[i](x), inplace=True)
        return self.head(x).contiguous()


class DisparityEstimator(nn.Module):
    r"""Disparity feature network :math:`\mathbf{D}(\mathbf{B}_L, \mathbf{B}_R)` (Sec. 3.2 of [1]_).

    A lightweight stereo encoder after LEAStereo's feature net [2]_: a weight-shared (siamese)
    extractor brings each view to ``1 / 2**feature_levels`` resolution, a horizontal correlation
    cost volume over disparities ``-max_disparity .. max_disparity`` is concatenated with both
    views' features, and ``log2(cell_size)`` stride-2 convolutions plus residual blocks produce
    :math:`\mathbf{R}` with ``out_channels`` = :math:`C_d` channels on the cell grid.

    Parameters
    ----------
    in_channels : int
        Channels per view (3).
    width : int
        Width of the siamese extractor.
    out_channels : int
        :math:`C_d`.
    feature_levels : int
        Number of stride-2 convolutions in the siamese extractor (= the encoder's levels - 1 so
        that :math:`\mathbf{R}` and :math:`\mathbf{F}_B` are aligned).
    cell_size : int
        Ratio :math:`H_f / H_d` (power of two).
    max_disparity : int
        Range of the correlation at the extractor's resolution.
    blocks : int
        Residual blocks after the extractor's stem and on the cell grid.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Sec. 3.2 (Disparity estimator).
    .. [2] Cheng et al., "Hierarchical Neural Architecture Search for Deep Stereo Matching",
       NeurIPS 2020.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        out_channels: int,
        feature_levels: int,
        cell_size: int,
        max_disparity: int,
        blocks: int,
    ):
        super().__init__()
        self.max_disparity = max_disparity
        layers = []
        c = in_channels
        for _ in range(feature_levels):
            layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.ReLU()]
            c = width
        if feature_levels == 0:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
        layers.append(_stage(width, blocks))
        self.features = nn.Sequential(*layers)
        fused = 2 * width + 2 * max_disparity + 1
        head = []
        c = fused
        for _ in range(int(math.log2(cell_size))):
            head += [nn.Conv2d(c, out_channels, 3, stride=2, padding=1), nn.ReLU()]
            c = out_channels
        head += [nn.Conv2d(c, out_channels, 3, padding=1), _stage(out_channels, blocks)]
        self.head = nn.Sequential(*head)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        f_left, f_right = self.features(left), self.features(right)
        cost = horizontal_correlation(f_left, f_right, self.max_disparity)
        return self.head(torch.cat([f_left, f_right, cost], dim=1))


class KernelSet(nn.Module):
    r"""Trainable set :math:`\mathcal{K} = \{\mathbf{K}^j\}_{j=1}^N` of DP-symmetric kernels.

    Each kernel is stored sparsely as its left sub-kernel: the ``k x (k//2 + 1)`` columns left
    of and including the centre column are free parameters, the right columns are zero (the
    sparse representation of Sec. 3.2 of [1]_). The left-view kernel is
    :math:`\mathbf{K}_L^j = \mathrm{softmax}(\theta^j)` on that support (non-negative, unit
    sum), the right-view kernel its mirror :math:`\mathbf{K}_R^j = \mathrm{flip}(\mathbf{K}_L^j)`
    and the kernel of the combined image (Eq. 2)

    .. math:: \mathbf{K}^j = \tfrac12 (\mathbf{K}_L^j + \mathrm{flip}(\mathbf{K}_L^j)),

    which is symmetric about the vertical axis and sums to 1 per channel.

    Parameters
    ----------
    num_kernels : int
        :math:`N` (128 in [1]_).
    channels : int
        :math:`C_f`: every kernel holds one ``k x k`` slice per feature channel.
    kernel_size : int
        Odd :math:`H_k = W_k`.

    Notes
    -----
    Initialisation: :math:`\theta^j_c(y, x) = -(y^2 + x^2) / (2 \sigma_j^2)`, minus
    :math:`\log 2` on the centre column (shared by both halves), so that :math:`\mathbf{K}^j` is
    exactly the normalised Gaussian of width :math:`\sigma_j`; :math:`\sigma_j` is geometrically
    spaced from 0.25 (an in-focus, near-delta kernel) to ``k / 3`` (broad blur), identical for all
    channels; deterministic.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 1-2 and Sec. 3.2 (Kernel estimation).
    """

    def __init__(self, num_kernels: int, channels: int, kernel_size: int):
        super().__init__()
        self.num_kernels = _check_positive_int(num_kernels, "num_kernels")
        self.channels = _check_positive_int(channels, "channels")
        self.kernel_size = _check_odd(kernel_size, "kernel_size")
        half = kernel_size // 2 + 1
        self.logits = nn.Parameter(torch.empty(num_kernels, channels, kernel_size, half))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        k, half = self.kernel_size, self.kernel_size // 2 + 1
        r = k // 2
        y = torch.arange(k, dtype=torch.float64) - r
        x = torch.arange(half, dtype=torch.float64) - r  # columns -r .. 0
        d2 = y[:, None] ** 2 + x[None, :] ** 2
        sigmas = torch.logspace(math.log10(0.25), math.log10(max(k / 3.0, 0.5)), self.num_kernels, dtype=torch.float64)
        logits = -d2[None] / (2 * sigmas[:, None, None] ** 2)
        # The centre column is shared by K_L and flip(K_L): halving it there makes K^j exactly
        # the normalised Gaussian of width sigma_j.
        logits[..., -1] -= math.log(2.0)
        self.logits.copy_(logits[:, None].expand_as(self.logits).to(self.logits.dtype))

    def left_kernels(self) -> torch.Tensor:
        """Left-view kernels :math:`\\mathbf{K}_L^j`, shape (N, C_f, k, k), zero right of centre."""
        N, C, k, half = self.logits.shape
        left_half = torch.softmax(self.logits.reshape(N, C, k * half), dim=-1).reshape(N, C, k, half)
        return F.pad(left_half, (0, k - half))

    def right_kernels(self) -> torch.Tensor:
        """Right-view kernels :math:`\\mathbf{K}_R^j = \\mathrm{flip}(\\mathbf{K}_L^j)`, shape (N, C_f, k, k)."""
        return torch.flip(self.left_kernels(), dims=(-1,))

    def forward(self) -> torch.Tensor:
        """Combined kernels :math:`\\mathbf{K}^j` (Eq. 2), shape (N, C_f, k, k), symmetric in x."""
        left = self.left_kernels()
        return 0.5 * (left + torch.flip(left, dims=(-1,)))


class KernelQuery(nn.Module):
    r"""Disparity-queried kernel estimation, Eq. 8-9 of [1]_.

    .. math:: \mathbf{a}^i = \sigma\big(\mathbf{W}_v(\mathrm{Sum}(\mathbf{W}_k \otimes \mathcal{K})
              \odot (\mathbf{W}_r \mathbf{r}^i))\big), \qquad
              \hat{\mathbf{K}}^i = \sum_{j=1}^N a^i_j \mathbf{K}^j

    with :math:`\mathbf{W}_k \in \mathbb{R}^{N \times C_f \times H_k \times W_k}` (one weighting
    slice per kernel, Hadamard product then sum of all elements),
    :math:`\mathbf{W}_r \in \mathbb{R}^{N \times C_d}`, :math:`\mathbf{W}_v \in \mathbb{R}^{N
    \times N}` (no biases) and :math:`\sigma` the softmax over the N kernels.

    Notes
    -----
    :math:`\mathbf{W}_k` is initialised to :math:`1 / C_f`, so that at initialisation
    :math:`\mathrm{Sum}(\mathbf{W}_k \otimes \mathbf{K}^j) = 1` for every ``j`` (each kernel sums to
    1 per channel); :math:`\mathbf{W}_r, \mathbf{W}_v` use PyTorch's default ``nn.Linear`` init.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 8-9.
    """

    def __init__(self, num_kernels: int, channels: int, kernel_size: int, disparity_channels: int):
        super().__init__()
        self.kernel_set = KernelSet(num_kernels, channels, kernel_size)
        self.kernel_weighting = nn.Parameter(torch.empty(num_kernels, channels, kernel_size, kernel_size))  # W_k
        self.disparity_projection = nn.Linear(disparity_channels, num_kernels, bias=False)  # W_r
        self.value_projection = nn.Linear(num_kernels, num_kernels, bias=False)  # W_v
        nn.init.constant_(self.kernel_weighting, 1.0 / channels)

    def weights(self, disparity_features: torch.Tensor, kernels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Soft assignment :math:`\\mathbf{a}^i` (Eq. 8), shape (B, N, Hd, Wd), summing to 1 over N."""
        if kernels is None:
            kernels = self.kernel_set()
        summed = (self.kernel_weighting * kernels).sum(dim=(1, 2, 3))  # Sum(W_k (x) K), (N,)
        r = disparity_features.permute(0, 2, 3, 1)  # (B, Hd, Wd, C_d)
        logits = self.value_projection(self.disparity_projection(r) * summed)
        return torch.softmax(logits, dim=-1).permute(0, 3, 1, 2)

    def forward(self, disparity_features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (cell kernels (B, C_f, Hd, Wd, k, k) of Eq. 9, weights (B, N, Hd, Wd) of Eq. 8)."""
        kernels = self.kernel_set()
        a = self.weights(disparity_features, kernels)
        cell_kernels = torch.einsum("bnhw,ncuv->bchwuv", a, kernels)
        return cell_kernels, a


class PSFBlock(nn.Module):
    r"""PSF block (Eq. 10) and its reblurring use (Eq. 17) of [1]_; no trainable parameters.

    Parameters
    ----------
    inverse_size : int
        Odd side of the Fourier grid of the inverse kernel (see :func:`wiener_inverse_kernels`).
    eps : float
        Wiener regularisation of :math:`1 / \mathcal{F}(\hat{\mathbf{K}})`.

    ``forward(features, cell_kernels, mode="deblur")`` is :func:`psf_deblur`;
    ``mode="reblur"`` is :func:`psf_reblur`.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 10 and Eq. 17.
    """

    def __init__(self, inverse_size: int, eps: float):
        super().__init__()
        self.inverse_size = _check_odd(inverse_size, "inverse_size")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite float >= 0; got {eps!r}")
        self.eps = float(eps)

    def forward(self, features: torch.Tensor, cell_kernels: torch.Tensor, mode: str = "deblur") -> torch.Tensor:
        if mode == "deblur":
            return psf_deblur(features, cell_kernels, inverse_size=self.inverse_size, eps=self.eps)
        if mode == "reblur":
            return psf_reblur(features, cell_kernels)
        raise ValueError(f"mode must be 'deblur' or 'reblur'; got {mode!r}")

    def extra_repr(self) -> str:
        return f"inverse_size={self.inverse_size}, eps={self.eps}"


class FeedForward(nn.Module):
    """``x + conv1x1(gelu(dwconv3x3(conv1x1(x))))`` with hidden width ``expansion * channels``."""

    def __init__(self, channels: int, expansion: float):
        super().__init__()
        hidden = int(round(channels * expansion))
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.project = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.gelu(self.depthwise(self.expand(x))))


class SRPBlock(nn.Module):
    r"""Sharp region preservation block :math:`\mathbf{S}(\mathbf{F}_B, \hat{\mathbf{F}}_B)`, Eq. 11-16 of [1]_.

    .. math::
        \mathbf{Q}_B = \Phi_q(\mathrm{CAT}(\mathbf{F}_B, \hat{\mathbf{F}}_B)), \quad
        \mathbf{K}_B = \Phi_k(\mathrm{CAT}(\mathbf{F}_B, \hat{\mathbf{F}}_B)) \quad (2C_f \text{ channels})

        \mathbf{O}_B = \mathrm{Attention}(\mathbf{Q}_B, \mathbf{K}_B) \in \mathbb{R}^{H_f \times W_f \times s^2}

        \mathbf{S} = \mathrm{FFN}(\Phi_{v_1}(\mathbf{O}_B) \odot \mathbf{F}_B +
                     \Phi_{v_2}(\mathbf{O}_B) \odot \hat{\mathbf{F}}_B)

    :math:`\Phi_q, \Phi_k` are 1x1 convolutions :math:`2C_f \to 2C_f`, :math:`\Phi_{v_1},
    \Phi_{v_2}` 1x1 convolutions :math:`s^2 \to C_f`, Attention is
    :func:`local_attention_scores` and FFN is :class:`FeedForward`.

    References
    ----------
    .. [1] Yang et al., "K3DN", CVPR 2023, Eq. 11-16.
    """

    def __init__(self, channels: int, window: int, ffn_expansion: float):
        super().__init__()
        self.window = _check_odd(window, "window")
        self.query = nn.Conv2d(2 * channels, 2 * channels, 1)  # Phi_q
        self.key = nn.Conv2d(2 * channels, 2 * channels, 1)  # Phi_k
        self.value_blurry = nn.Conv2d(window * window, channels, 1)  # Phi_v1
        self.value_deblurred = nn.Conv2d(window * window, channels, 1)  # Phi_v2
        self.ffn = FeedForward(channels, ffn_expansion)

    def attention(self, features: torch.Tensor, deblurred: torch.Tensor) -> torch.Tensor:
        """Similarity map :math:`\\mathbf{O}_B`, shape (B, s*s, H_f, W_f) (Eq. 11-13)."""
        both = torch.cat([features, deblurred], dim=1)
        return local_attention_scores(self.query(both), self.key(both), self.window)

    def forward(self, features: torch.Tensor, deblurred: torch.Tensor) -> torch.Tensor:
        scores = self.attention(features, deblurred)
        values = self.value_blurry(scores) * features + self.value_deblurred(scores) * deblurred
        return self.ffn(values)


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


class K3DN(nn.Module):
    r"""K3DN dual-pixel defocus deblurring network [1]_.

    Parameters
    ----------
    widths : sequence of int
        Encoder/decoder width per level, finest first; the last entry is :math:`C_f`. The feature
        map :math:`\mathbf{F}_B` lives at ``1 / 2**(len(widths) - 1)`` of the image resolution.
    encoder_blocks, decoder_blocks : sequence of int
        Residual blocks per level (finest first).
    disparity_width : int
        Width of the disparity estimator's siamese extractor.
    disparity_channels : int
        :math:`C_d`, channels of :math:`\mathbf{R}`.
    disparity_blocks : int
        Residual blocks in each part of the disparity estimator.
    max_disparity : int
        Correlation range (in feature pixels) of the disparity estimator.
    num_kernels : int
        :math:`N`, size of the trainable kernel set (128 in [1]_).
    kernel_size : int
        Odd :math:`H_k = W_k`, in feature pixels.
    inverse_size : int or None
        Odd side of the Wiener inverse kernel; ``None`` means ``2 * kernel_size - 1``.
    cell_size : int
        :math:`H_f / H_d` (power of two): one kernel per ``cell_size x cell_size`` feature cell.
    window : int
        Odd local-attention window :math:`s` of the SRP block.
    ffn_expansion : float
        Hidden-width factor of the SRP block's feed-forward network.
    wiener_eps : float
        Regularisation of the Fourier inverse in the PSF block.
    in_channels : int
        Channels per view (3, RGB).

    Notes
    -----
    ``forward(left, right)`` takes the two dual-pixel views, (B, 3, H, W) RGB in [0, 1] of any
    size ``H, W >= min_size``; the input is padded (replicate, bottom/right) to a multiple of
    ``pad_multiple`` inside and the output cropped back, so the output has the input's shape. The
    output is the restored all-in-focus RGB image on the input's [0, 1] scale; it is not clipped.

    :meth:`reblur` (Eq. 17, training only) and :meth:`forward_train` expose the reblurring
    regularisation, which reuses every module and adds no parameters.

    References
    ----------
    .. [1] Y. Yang, L. Pan, L. Liu, M. Liu, "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel
       Defocus Deblurring", CVPR 2023.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128),
        encoder_blocks: Sequence[int] = (1, 2, 4),
        decoder_blocks: Sequence[int] = (1, 2, 4),
        disparity_width: int = 32,
        disparity_channels: int = 64,
        disparity_blocks: int = 1,
        max_disparity: int = 4,
        num_kernels: int = 128,
        kernel_size: int = 7,
        inverse_size: Optional[int] = None,
        cell_size: int = 2,
        window: int = 7,
        ffn_expansion: float = 2.0,
        wiener_eps: float = 1e-2,
        in_channels: int = 3,
    ):
        super().__init__()
        widths = tuple(_check_positive_int(w, "widths[i]") for w in widths)
        if len(widths) < 1:
            raise ValueError("widths must have at least one level")
        for name, blocks in (("encoder_blocks", encoder_blocks), ("decoder_blocks", decoder_blocks)):
            if len(blocks) != len(widths):
                raise ValueError(f"{name} must have one entry per level ({len(widths)}); got {len(blocks)}")
            for n in blocks:
                _check_positive_int(n, f"{name}[i]", 0)
        kernel_size = _check_odd(kernel_size, "kernel_size")
        inverse_size = 2 * kernel_size - 1 if inverse_size is None else _check_odd(inverse_size, "inverse_size")
        if inverse_size < kernel_size:
            raise ValueError(f"inverse_size must be >= kernel_size {kernel_size}; got {inverse_size}")
        cell_size = _check_power_of_two(cell_size, "cell_size")
        self.in_channels = _check_positive_int(in_channels, "in_channels")
        self.feature_channels = widths[-1]
        self.feature_stride = 2 ** (len(widths) - 1)
        self.cell_size = cell_size
        self.pad_multiple = self.feature_stride * cell_size
        self.min_size = self.pad_multiple
        self.config = dict(
            widths=widths, encoder_blocks=tuple(encoder_blocks), decoder_blocks=tuple(decoder_blocks),
            disparity_width=disparity_width, disparity_channels=disparity_channels,
            disparity_blocks=disparity_blocks, max_disparity=max_disparity, num_kernels=num_kernels,
            kernel_size=kernel_size, inverse_size=inverse_size, cell_size=cell_size, window=window,
            ffn_expansion=ffn_expansion, wiener_eps=wiener_eps, in_channels=in_channels,
        )

        self.encoder = Encoder(in_channels, widths, encoder_blocks)
        self.disparity = DisparityEstimator(
            in_channels,
            _check_positive_int(disparity_width, "disparity_width"),
            _check_positive_int(disparity_channels, "disparity_channels"),
            len(widths) - 1,
            cell_size,
            _check_positive_int(max_disparity, "max_disparity", 0),
            _check_positive_int(disparity_blocks, "disparity_blocks", 0),
        )
        self.kernel_query = KernelQuery(num_kernels, widths[-1], kernel_size, disparity_channels)
        self.psf = PSFBlock(inverse_size, wiener_eps)
        self.srp = SRPBlock(widths[-1], window, ffn_expansion)
        self.decoder = Decoder(in_channels, widths, decoder_blocks)

    # -- input handling -------------------------------------------------------------------------

    def _check_pair(self, left: torch.Tensor, right: torch.Tensor, names=("left", "right")) -> None:
        check_input(left, names[0], self.in_channels, self.min_size)
        check_input(right, names[1], self.in_channels, self.min_size)
        if left.shape != right.shape:
            raise ValueError(
                f"{names[0]} and {names[1]} must have the same shape; got {tuple(left.shape)} and {tuple(right.shape)}"
            )
        param = next(self.parameters())
        for name, x in zip(names, (left, right)):
            if x.dtype != param.dtype:
                raise TypeError(
                    f"{name} has dtype {x.dtype} but the model's parameters are {param.dtype}; "
                    f"convert one of them (e.g. model.to({x.dtype}))"
                )
            if x.device != param.device:
                raise ValueError(f"{name} is on {x.device} but the model is on {param.device}")

    def _pad(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        return pad_to_multiple(x, self.pad_multiple, mode="replicate")

    # -- stages ---------------------------------------------------------------------------------

    def estimate_kernels(self, left: torch.Tensor, right: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""Per-cell kernels :math:`\hat{\mathbf{K}}` and weights :math:`\mathbf{a}` of a (padded) DP pair.

        Inputs must already have sides divisible by ``pad_multiple``. Returns cell kernels of
        shape (B, C_f, H / pad_multiple, W / pad_multiple, k, k) and weights (B, N, same grid).
        """
        for name, x in (("left", left), ("right", right)):
            if x.ndim != 4 or x.shape[-2] % self.pad_multiple or x.shape[-1] % self.pad_multiple:
                raise ValueError(
                    f"{name} must be (B, C, H, W) with H and W multiples of {self.pad_multiple} "
                    f"(use forward(), which pads); got shape {tuple(x.shape)}"
                )
        return self.kernel_query(self.disparity(left, right))

    def _restore(self, left, right, cell_kernels, mode: str) -> torch.Tensor:
        features = self.encoder(left, right)
        processed = self.psf(features, cell_kernels, mode=mode)
        refined = self.srp(features, processed)
        return 0.5 * (left + right) + self.decoder(refined)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Deblur a dual-pixel pair: (B, 3, H, W) x 2 -> (B, 3, H, W) all-in-focus estimate."""
        self._check_pair(left, right)
        (left_p, size), (right_p, _) = self._pad(left), self._pad(right)
        cell_kernels, _ = self.estimate_kernels(left_p, right_p)
        return crop_to(self._restore(left_p, right_p, cell_kernels, "deblur"), size)

    def reblur(self, sharp: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        r"""Reblurring path (Eq. 17, Fig. 5): blur the sharp image with the kernels of (left, right).

        Parameters
        ----------
        sharp : torch.Tensor, shape (B, 3, H, W)
            All-in-focus image :math:`\mathbf{I}`; it is duplicated into the pair (I, I).
        left, right : torch.Tensor, shape (B, 3, H, W)
            The blurry DP views whose disparity selects the kernels :math:`\hat{\mathbf{K}}`.

        Returns
        -------
        torch.Tensor, shape (B, 3, H, W)
            :math:`\hat{\mathbf{B}}`, the estimate of :math:`\mathbf{B} = (\mathbf{B}_L + \mathbf{B}_R)/2`
            used by the reblurring loss of Eq. 18.
        """
        return self.forward_train(left, right, sharp)[1]

    def forward_train(
        self, left: torch.Tensor, right: torch.Tensor, sharp: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (deblurred I_hat, reblurred B_hat), sharing one kernel estimate (Eq. 9)."""
        self._check_pair(left, right)
        self._check_pair(sharp, left, names=("sharp", "left"))
        (left_p, size), (right_p, _), (sharp_p, _) = self._pad(left), self._pad(right), self._pad(sharp)
        cell_kernels, _ = self.estimate_kernels(left_p, right_p)
        deblurred = self._restore(left_p, right_p, cell_kernels, "deblur")
        reblurred = self._restore(sharp_p, sharp_p, cell_kernels, "reblur")
        return crop_to(deblurred, size), crop_to(reblurred, size)


# ----------------------------------------------------------------------------------------------
# Model zoo
# ----------------------------------------------------------------------------------------------

#: Configurations of the three published sizes (parameters: Tiny 3.0 M, Lightweight 5.0 M,
#: Large 15.9 M in Tab. 1 of [1]; see docs/k3dn_design.md for how they were met).
CONFIGS = {
    "k3dn_tiny": dict(
        widths=(24, 48, 96), encoder_blocks=(4, 4, 4), decoder_blocks=(4, 4, 4),
        disparity_width=24, disparity_channels=48, disparity_blocks=1,
    ),
    "k3dn_light": dict(
        widths=(32, 64, 128), encoder_blocks=(4, 4, 4), decoder_blocks=(4, 4, 4),
        disparity_width=32, disparity_channels=80, disparity_blocks=1,
    ),
    "k3dn_large": dict(
        widths=(62, 124, 248), encoder_blocks=(4, 4, 4), decoder_blocks=(4, 4, 4),
        disparity_width=48, disparity_channels=96, disparity_blocks=2,
    ),
}

#: Published parameter counts (Tab. 1 of [1]); ours are within 1 % (docs/k3dn_design.md).
PAPER_PARAMETERS = {"k3dn_tiny": 3.00e6, "k3dn_light": 5.00e6, "k3dn_large": 15.90e6}
#: Published "flops" at 1120 x 1680 x 3 (Tab. 1 of [1]), in G; the table's IFAN/Restormer entries
#: match their multiply-accumulate counts, so these are read as GMACs.
PAPER_GFLOPS_1120x1680 = {"k3dn_tiny": 571.0, "k3dn_light": 1033.0, "k3dn_large": 3352.0}


def _build(name: str, **overrides) -> K3DN:
    config = dict(CONFIGS[name])
    config.update(overrides)
    return K3DN(**config)


k3dn_tiny = functools.partial(_build, "k3dn_tiny")
k3dn_light = functools.partial(_build, "k3dn_light")
k3dn_large = functools.partial(_build, "k3dn_large")

#: Explicit factories, ``MODELS[name](**overrides) -> K3DN``.
MODELS = {"k3dn_tiny": k3dn_tiny, "k3dn_light": k3dn_light, "k3dn_large": k3dn_large}
