"""The ``torch.distributed`` (DDP) context of a run launched by ``torchrun``, and its device.

One process (no ``WORLD_SIZE`` above 1) is the default context: rank 0 of 1, nothing initialised.
The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "init_distributed", "resolve_device"]


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str) -> DistributedContext:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    initialised = False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_request in ("auto", "cuda") or device_request.startswith("cuda")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        initialised = True
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local, initialised)


def resolve_device(request: str, ctx: DistributedContext) -> torch.device:
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(request)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {request!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device
