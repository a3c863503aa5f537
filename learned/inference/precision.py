"""Mixed precision: the autocast context of the CLIs and the float32 boundaries of the models.

Under ``torch.autocast`` convolutions and matrix products run in bfloat16 (or float16), and
element-wise operations run in the dtype of their inputs. Some computations of the zoo must not
run in 16 bits: FFTs (cuFFT has no bfloat16 transform, and a Wiener inverse loses its accuracy),
the per-pixel accumulations of IFAN's IAC, RKR's recursion (NRKNet's Neumann series subtracts
nearly equal images) and the losses. Each of these casts its 16-bit inputs to float32 at its
entry (:func:`upcast_low_precision`) instead of rejecting them, and returns the dtype the inputs
promote to (float32 when a 16-bit tensor meets a float32 one, as under autocast; bfloat16 when
every input was bfloat16).

:func:`autocast` is the inference context of ``--amp`` in :mod:`learned.deblur` and
:mod:`learned.evaluate`: bfloat16 on the CPU and on GPUs that support it, float16 otherwise.
Training (:mod:`learned.train`) uses the same choice on CUDA, with a ``torch.amp.GradScaler`` for
float16.
"""

from __future__ import annotations

import contextlib
from functools import reduce
from typing import Any, Tuple

import torch

__all__ = ["LOW_PRECISION", "upcast_low_precision", "amp_dtype", "autocast"]

#: 16-bit floating dtypes that autocast produces.
LOW_PRECISION = (torch.float16, torch.bfloat16)


def upcast_low_precision(*values: Any) -> Tuple[Tuple[Any, ...], torch.dtype | None]:
    """Cast the 16-bit float tensors among ``values`` to float32; also return the result dtype.

    Parameters
    ----------
    *values
        Tensors (anything else is passed through unchanged, for the caller's own type checks).

    Returns
    -------
    values : tuple
        ``values`` with every float16 / bfloat16 tensor cast to float32 (differentiable).
    result_dtype : torch.dtype or None
        ``torch.promote_types`` over the original floating dtypes (None if there is none): the
        dtype the caller casts its float32 result back to at its exit.

    Examples
    --------
    >>> import torch
    >>> (a, b), dtype = upcast_low_precision(torch.ones(1, dtype=torch.bfloat16), torch.ones(1))
    >>> a.dtype, b.dtype, dtype
    (torch.float32, torch.float32, torch.float32)
    """
    dtypes = [v.dtype for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]
    result = reduce(torch.promote_types, dtypes) if dtypes else None
    cast = tuple(v.float() if isinstance(v, torch.Tensor) and v.dtype in LOW_PRECISION else v for v in values)
    return cast, result


def amp_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on the CPU and on CUDA devices that support it, float16 on older GPUs."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device | str, enabled: bool = True):
    """``torch.autocast`` on ``device`` with :func:`amp_dtype`, or a no-op context if not ``enabled``."""
    if not enabled:
        return contextlib.nullcontext()
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))
