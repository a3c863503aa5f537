"""Small helpers that make the CPU forward passes cheaper without changing what they compute.

Two costs dominate a 1280x720 forward pass of the convolutional networks on a CPU besides the
convolutions themselves (``python -m benchmarks.inference --profile``, issue 14):

* **Fresh full-size tensors.** Every out-of-place activation or addition allocates a new
  (B, C, H, W) tensor; above glibc's mmap threshold (32 MB at most) each allocation is a fresh
  mapping whose every 4 KB page faults on first touch. A 32-channel 1280x720 float32 map is
  118 MB: an out-of-place LeakyReLU of it took 58 ms of CPU time here, the in-place one 4 ms.
* **Memory layout.** oneDNN, torch's CPU convolution backend, works in NHWC (channels-last);
  a contiguous NCHW input is reordered into a blocked copy and the output back for every
  convolution. A 32 -> 32 3x3 convolution at 1280x720 took 0.25 s in NCHW and 0.13 s in NHWC,
  a 64 -> 32 4x4 transposed one 0.41 s against 0.13 s (one thread).

The helpers below are used by the networks' forward passes; the results are the same numbers up
to the summation order of the convolutions (float rounding, ~1e-7).
"""

from __future__ import annotations

import torch

import contextlib

from optics.memory import reuse_freed_memory  # noqa: F401  (re-exported: issue 33 put it in optics)

__all__ = [
    "add_into", "compile_for_cpu", "cpu_channels_last", "needs_grad", "pointwise_conv",
    "reuse_freed_memory", "set_cpu_channels_last",
]

#: Whether :func:`cpu_channels_last` converts (see :func:`set_cpu_channels_last`).
_CHANNELS_LAST = True


def needs_grad(*tensors: torch.Tensor) -> bool:
    """True when autograd is recording and one of ``tensors`` requires a gradient."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def add_into(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b``, written into ``a``'s memory when that gives the same result.

    The caller guarantees that ``a`` is a temporary nobody else reads (for example a fresh
    convolution output that autograd does not keep). The addition is done in place only when
    the result has ``a``'s shape and dtype (no broadcasting of ``a``, no type promotion, e.g.
    a bfloat16 ``a`` plus a float32 ``b`` under autocast stays out of place).
    """
    if a.dtype == torch.promote_types(a.dtype, b.dtype) and a.shape == torch.broadcast_shapes(a.shape, b.shape):
        return a.add_(b)
    return a + b


def cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory format if it is a 4-D CPU tensor, else ``x`` unchanged.

    Convolutions keep the layout of their input, so a network fed a channels-last tensor runs
    every layer in NHWC. GPU tensors are left as they are (their layout choice is cuDNN's).
    """
    if _CHANNELS_LAST and x.device.type == "cpu" and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


@contextlib.contextmanager
def set_cpu_channels_last(enabled: bool):
    """Context in which :func:`cpu_channels_last` converts (True, the default) or not (False).

    Only for measuring what the layout gains (``python -m benchmarks.inference
    --no-channels-last``): the networks compute the same values either way (up to the summation
    order of oneDNN's convolutions). Not thread-safe: a module-level switch.
    """
    global _CHANNELS_LAST
    previous, _CHANNELS_LAST = _CHANNELS_LAST, bool(enabled)
    try:
        yield
    finally:
        _CHANNELS_LAST = previous


def compile_for_cpu(model):
    """``torch.compile`` (inductor) of an eval-mode network for CPU inference, weights frozen.

    Sets ``torch._inductor.config.freezing`` (constant-folds the weights and lets inductor pick
    oneDNN's prepacked convolutions with fused element-wise post-operations); the compiled
    function must be called under ``torch.no_grad()`` / ``torch.inference_mode()``. Needs a C++
    compiler; the first call compiles (tens of seconds to minutes on 2 cores, see
    docs/benchmarks.md, "Issue 33"). Outputs differ from the eager ones by float rounding
    (fused operations, ~1e-7).
    """
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model, backend="inductor")


def pointwise_conv(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1 convolution of a channels-last CPU input, as one matrix product.

    A channels-last (B, C, H, W) tensor is a row-major (B, H W, C) matrix ``X``; the 1x1
    convolution is ``W X^T + b``, computed by one ``baddbmm`` whose (B, C_out, H W) result is the
    contiguous (NCHW) output. torch itself sends a single-threaded 1x1 convolution of a batch
    below 16 to its im2col path, which copies a channels-last input and output (IFAN's
    128 -> 15232 filter head: an 877 MB output at 1280x720). The NCHW result keeps every
    predicted filter plane contiguous for the per-pixel filtering that reads it. Any other case
    falls back to ``conv(x)``.
    """
    simple = (
        conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding in ((0, 0), "valid")
        and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
    )
    if not (simple and x.device.type == "cpu" and x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and x.dtype == conv.weight.dtype):
        return conv(x)
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view
    weight = conv.weight.reshape(1, conv.out_channels, c).expand(b, -1, -1)
    if conv.bias is None:
        out = torch.bmm(weight, rows.transpose(1, 2))
    else:
        out = torch.baddbmm(conv.bias.view(1, -1, 1), weight, rows.transpose(1, 2))
    return out.view(b, conv.out_channels, h, w)
