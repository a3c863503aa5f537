"""Iterative adaptive convolution (IAC), the filtering operator of IFAN.

Reference: J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
Image Defocus Deblurring", CVPR 2021 (``../shared/papers/003_*.txt``, Sec. 3.1 and Eq. 1).

IAC applies, ``N`` times in a row, a *per-pixel, per-channel separable* filter predicted by the
network: a vertical ``k``-tap pass, a horizontal ``k``-tap pass, a per-pixel bias, and a leaky
ReLU. Because the filters are applied iteratively, ``N`` passes of ``k`` taps reach
``N (k - 1) + 1`` pixels in each direction while costing only ``2 N k`` multiplications per
pixel and channel.

The released code (``codeslake/IFAN`` at 66bf136, ``models/IAC.py``) has a bug that its released
checkpoints were trained with: the horizontal pass multiplies by the *vertical* kernel again and
never uses the horizontal one. ``reuse_vertical_kernel=True`` reproduces that bug exactly; it is
needed to run the official weights and should stay off for new training.

This implementation never materialises the ``k``-fold unfolded copy of the features
(``(B, C, H, W, k)``, as ``Tensor.unfold`` does); it accumulates ``k`` shifted views of the padded
features into one output tensor (in-place multiply-adds; the replicate-padded border is read
through narrow slices), so the transient memory per pass is the one (B, C, H, W) output.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inference.precision import upcast_low_precision

__all__ = [
    "iterative_adaptive_convolution",
    "separable_adaptive_filter",
    "split_filter_prediction",
    "IterativeAdaptiveConvolution",
]


def _check_float_tensor(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must have a floating dtype; got {x.dtype}")


def _check_iac_arguments(
    features: torch.Tensor,
    kernels_v: torch.Tensor,
    kernels_h: torch.Tensor,
    bias: torch.Tensor,
) -> Tuple[int, int]:
    """Validate shapes and dtypes; return (iterations N, taps k)."""
    for value, name in ((features, "features"), (kernels_v, "kernels_v"), (kernels_h, "kernels_h"), (bias, "bias")):
        _check_float_tensor(value, name)
    if features.ndim != 4:
        raise ValueError(
            f"features must be 4-D (B, C, H, W); got {features.ndim}-D tensor of shape {tuple(features.shape)}"
        )
    b, c, h, w = features.shape
    if kernels_v.ndim != 6:
        raise ValueError(
            "kernels_v must be 6-D (B, N, C, k, H, W); got "
            f"{kernels_v.ndim}-D tensor of shape {tuple(kernels_v.shape)}"
        )
    n, k = int(kernels_v.shape[1]), int(kernels_v.shape[3])
    expected_kernel = (b, n, c, k, h, w)
    for value, name in ((kernels_v, "kernels_v"), (kernels_h, "kernels_h")):
        if tuple(value.shape) != expected_kernel:
            raise ValueError(
                f"{name} must have shape (B, N, C, k, H, W) = {expected_kernel} to match features "
                f"{tuple(features.shape)}; got {tuple(value.shape)}"
            )
    if tuple(bias.shape) != (b, n, c, h, w):
        raise ValueError(
            f"bias must have shape (B, N, C, H, W) = {(b, n, c, h, w)}; got {tuple(bias.shape)}"
        )
    if n < 1:
        raise ValueError(f"the number of iterations N (axis 1 of kernels_v) must be >= 1; got {n}")
    if k < 1 or k % 2 == 0:
        raise ValueError(f"the number of taps k (axis 3 of kernels_v) must be odd and >= 1; got {k}")
    for value, name in ((kernels_v, "kernels_v"), (kernels_h, "kernels_h"), (bias, "bias")):
        if value.dtype != features.dtype:
            raise TypeError(f"{name} must have the dtype of features ({features.dtype}); got {value.dtype}")
        if value.device != features.device:
            raise ValueError(f"{name} must be on the device of features ({features.device}); got {value.device}")
    return n, k


def _filter_along(
    features: torch.Tensor, kernel: torch.Tensor, dim: int, out: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """One per-pixel k-tap pass along ``dim`` (2 = vertical, 3 = horizontal), replicate padding.

    ``kernel`` has shape (B, C, k, H, W); tap ``t`` weights the neighbour at offset ``t - (k-1)/2``.
    The taps are accumulated in order into one output tensor (in-place multiply-adds on shifted
    views), and the clamped border rows/columns are handled by narrow slices, so no padded copy
    and no per-tap temporary is allocated. The output has the memory layout of ``features``
    (channels-last stays channels-last), which keeps the loops contiguous along the channels.
    ``out``, if given, is a tensor like ``features`` (not overlapping it) that receives the
    result: no-grad callers reuse buffers whose pages are already mapped.
    """
    k = kernel.shape[2]
    half = (k - 1) // 2
    size = features.shape[dim]
    if out is None:
        out = torch.empty_like(features)
    for tap in range(k):
        offset = tap - half
        taps = kernel[:, :, tap]
        # output positions whose neighbour index i + offset lies inside [0, size) ...
        start, stop = max(0, -offset), min(size, size - offset)
        # ... and the border positions clamped to the first / last index (replicate padding)
        pieces = []
        if stop > start:
            pieces.append((start, stop - start, start + offset))
        if start > 0:
            pieces.append((0, min(start, size), None))
        if stop < size:
            lo = max(stop, 0)
            pieces.append((lo, size - lo, None))
        for begin, length, source in pieces:
            if source is None:  # every position of the piece reads the clamped edge value
                edge = 0 if begin == 0 and offset < 0 else size - 1
                neighbour = features.narrow(dim, edge, 1)
            else:
                neighbour = features.narrow(dim, source, length)
            target = out.narrow(dim, begin, length)
            weight = taps.narrow(dim, begin, length)
            if tap == 0 and not (torch.is_grad_enabled() and (neighbour.requires_grad or weight.requires_grad)):
                torch.mul(neighbour, weight, out=target)  # one pass; out= is not differentiable
            elif tap == 0:
                target.copy_(neighbour).mul_(weight)
            else:
                target.addcmul_(neighbour, weight)
    return out


def separable_adaptive_filter(
    features: torch.Tensor,
    kernel_v: torch.Tensor,
    kernel_h: torch.Tensor,
    *,
    reuse_vertical_kernel: bool = False,
) -> torch.Tensor:
    """One separable adaptive filtering step (the ``SAC`` of the released code), without bias.

    Parameters
    ----------
    features : torch.Tensor
        Shape (B, C, H, W).
    kernel_v, kernel_h : torch.Tensor
        Per-pixel, per-channel vertical and horizontal taps, shape (B, C, k, H, W), ``k`` odd.
    reuse_vertical_kernel : bool
        Reproduce the released code's bug: the horizontal pass uses ``kernel_v``.

    Returns
    -------
    torch.Tensor
        Shape (B, C, H, W).

    Notes
    -----
    With ``r = (k - 1) / 2`` and replicate padding (indices clamped to the image),

    .. math::
        g(y, x) = \\sum_{t=0}^{k-1} v_t(y, x)\\, f(y + t - r, x), \\qquad
        h(y, x) = \\sum_{t=0}^{k-1} u_t(y, x)\\, g(y, x + t - r),

    with ``u = v`` when ``reuse_vertical_kernel`` is set.
    """
    vertical = _filter_along(features, kernel_v, dim=2)
    return _filter_along(vertical, kernel_v if reuse_vertical_kernel else kernel_h, dim=3)


def iterative_adaptive_convolution(
    features: torch.Tensor,
    kernels_v: torch.Tensor,
    kernels_h: torch.Tensor,
    bias: torch.Tensor,
    *,
    negative_slope: float = 0.1,
    activate_last: bool = True,
    reuse_vertical_kernel: bool = False,
) -> torch.Tensor:
    """Iterative adaptive convolution (IFAN, Eq. 1), memory-lean.

    Parameters
    ----------
    features : torch.Tensor
        Input features, shape (B, C, H, W), float32 or float64; float16 / bfloat16 inputs (any of
        the four, as under ``torch.autocast``) are cast to float32 at entry and the result is
        returned in their promoted dtype (:func:`learned.inference.precision.upcast_low_precision`).
    kernels_v, kernels_h : torch.Tensor
        Per-pixel vertical and horizontal taps for each iteration, shape (B, N, C, k, H, W) with
        ``k`` odd; tap ``t`` weights the neighbour at offset ``t - (k - 1) / 2``.
    bias : torch.Tensor
        Per-pixel bias for each iteration, shape (B, N, C, H, W).
    negative_slope : float
        Slope of the leaky ReLU applied after every iteration (0.1 in IFAN).
    activate_last : bool
        Apply the leaky ReLU after the last iteration too (True in IFAN's deblurring network,
        False in its reblurring network).
    reuse_vertical_kernel : bool
        Reproduce the released code's bug (horizontal pass multiplies by the vertical kernel;
        ``kernels_h`` is then unused). Needed for the official checkpoints only.

    Returns
    -------
    torch.Tensor
        Filtered features, shape (B, C, H, W), dtype of ``features`` (the promoted dtype of the
        four inputs when some are 16-bit).

    Raises
    ------
    TypeError
        For non-tensor or non-floating inputs, or mixed float32 / float64 dtypes.
    ValueError
        For inconsistent shapes, an even or zero tap count, or mixed devices.

    Notes
    -----
    For iterations :math:`n = 1, \\dots, N`, with :math:`f^{(0)}` = ``features``,

    .. math::
        f^{(n)} = \\phi\\big( \\mathcal{H}_{u^{(n)}} \\mathcal{V}_{v^{(n)}} f^{(n-1)} + b^{(n)} \\big),

    where :math:`\\mathcal{V}` and :math:`\\mathcal{H}` are the per-pixel, per-channel ``k``-tap
    vertical and horizontal filters of :func:`separable_adaptive_filter` (replicate padding),
    and :math:`\\phi` is the leaky ReLU (omitted at :math:`n = N` if ``activate_last`` is False).
    The receptive field is :math:`N (k - 1) + 1` pixels along each axis.

    The ``(B, C, H, W, k)`` unfolded copy used by the released code is never formed: each pass
    accumulates ``k`` shifted views of the features (edges clamped, i.e. replicate padding)
    into its output in place.

    As in the released code, the taps are applied as a correlation (tap ``t`` weights offset
    ``t - r``); the paper writes a convolution, which for predicted filters is only a reversal
    of the tap order.

    References
    ----------
    .. [1] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
       Image Defocus Deblurring", CVPR 2021, Sec. 3.1, Eq. 1.
    """
    # float16 / bfloat16 inputs (autocast): accumulate in float32, return the promoted dtype
    (features, kernels_v, kernels_h, bias), result_dtype = upcast_low_precision(features, kernels_v, kernels_h, bias)
    n_iterations, _ = _check_iac_arguments(features, kernels_v, kernels_h, bias)
    out = features
    for i in range(n_iterations):
        out = iac_step(
            out, kernels_v[:, i], kernels_h[:, i], bias[:, i],
            negative_slope=negative_slope, activate=i < n_iterations - 1 or activate_last,
            reuse_vertical_kernel=reuse_vertical_kernel,
        )
    return out.to(result_dtype)


def iac_step(
    features: torch.Tensor,
    kernel_v: torch.Tensor,
    kernel_h: torch.Tensor,
    bias: torch.Tensor,
    *,
    negative_slope: float,
    activate: bool,
    reuse_vertical_kernel: bool = False,
    buffers: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
) -> torch.Tensor:
    """One IAC iteration: :func:`separable_adaptive_filter`, ``+ bias``, leaky ReLU if ``activate``.

    ``kernel_v``, ``kernel_h`` have shape (B, C, k, H, W) and ``bias`` (B, C, H, W), all of the
    dtype of ``features`` (no checks: internal helper of :func:`iterative_adaptive_convolution`
    and of IFAN's streamed filter head). The inputs are only read, so the caller may overwrite
    the kernels and bias afterwards. The result is a fresh tensor, or with ``buffers``
    (no-grad use only: two tensors like ``features``, overlapping neither it nor each other)
    the vertical pass goes to ``buffers[0]`` and the result is ``buffers[1]``.
    """
    if buffers is None:
        out = separable_adaptive_filter(features, kernel_v, kernel_h, reuse_vertical_kernel=reuse_vertical_kernel)
    else:
        vertical = _filter_along(features, kernel_v, 2, out=buffers[0])
        out = _filter_along(vertical, kernel_v if reuse_vertical_kernel else kernel_h, 3, out=buffers[1])
    # ``out`` is a fresh tensor that autograd does not keep: add and activate in place
    out = out.add_(bias)
    if activate:
        out = F.leaky_relu(out, negative_slope, inplace=True)
    return out


def split_filter_prediction(
    prediction: torch.Tensor, iterations: int, channels: int, taps: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split IFAN's filter-predictor output into (kernels_v, kernels_h, bias) views.

    Parameters
    ----------
    prediction : torch.Tensor
        Shape (B, N (2 C k + C), H, W), laid out as in the released code: first ``N`` blocks of
        ``2 C k`` channels, each ``[vertical (C k) | horizontal (C k)]`` with channel index
        ``c k + t`` (channel-major), then ``N`` bias blocks of ``C`` channels.
    iterations, channels, taps : int
        ``N``, ``C`` and ``k``.

    Returns
    -------
    kernels_v, kernels_h : torch.Tensor
        Views of shape (B, N, C, k, H, W).
    bias : torch.Tensor
        View of shape (B, N, C, H, W).
    """
    _check_float_tensor(prediction, "prediction")
    if prediction.ndim != 4:
        raise ValueError(
            f"prediction must be 4-D (B, N(2Ck + C), H, W); got shape {tuple(prediction.shape)}"
        )
    for value, name in ((iterations, "iterations"), (channels, "channels"), (taps, "taps")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    n, c, k = iterations, channels, taps
    expected = n * (2 * c * k + c)
    if prediction.shape[1] != expected:
        raise ValueError(
            f"prediction must have N (2 C k + C) = {n} x (2 x {c} x {k} + {c}) = {expected} channels; "
            f"got {prediction.shape[1]}"
        )
    b, _, h, w = prediction.shape
    kernels = prediction[:, : n * 2 * c * k].reshape(b, n, 2, c, k, h, w)
    bias = prediction[:, n * 2 * c * k :].reshape(b, n, c, h, w)
    return kernels[:, :, 0], kernels[:, :, 1], bias


class IterativeAdaptiveConvolution(nn.Module):
    """Module form of :func:`iterative_adaptive_convolution` (no learnable parameters).

    Parameters
    ----------
    negative_slope : float
        Leaky-ReLU slope after every iteration (0.1 in IFAN).
    activate_last : bool
        Apply the leaky ReLU after the last iteration too.
    reuse_vertical_kernel : bool
        Reproduce the released code's vertical-kernel-reuse bug (official checkpoints only).

    Examples
    --------
    >>> import torch
    >>> iac = IterativeAdaptiveConvolution()
    >>> f = torch.rand(1, 4, 8, 8)
    >>> kv = torch.rand(1, 2, 4, 3, 8, 8)
    >>> iac(f, kv, kv, torch.zeros(1, 2, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(
        self, negative_slope: float = 0.1, activate_last: bool = True, reuse_vertical_kernel: bool = False
    ) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.activate_last = bool(activate_last)
        self.reuse_vertical_kernel = bool(reuse_vertical_kernel)

    def forward(
        self,
        features: torch.Tensor,
        kernels_v: torch.Tensor,
        kernels_h: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        """Filter ``features`` (B, C, H, W) with per-pixel kernels (B, N, C, k, H, W) and bias (B, N, C, H, W)."""
        return iterative_adaptive_convolution(
            features,
            kernels_v,
            kernels_h,
            bias,
            negative_slope=self.negative_slope,
            activate_last=self.activate_last,
            reuse_vertical_kernel=self.reuse_vertical_kernel,
        )

    def extra_repr(self) -> str:
        return (
            f"negative_slope={self.negative_slope}, activate_last={self.activate_last}, "
            f"reuse_vertical_kernel={self.reuse_vertical_kernel}"
        )
