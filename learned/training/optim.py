"""The optimiser and LR scheduler of a recipe, and the schedule of a resumed run with more steps."""

from __future__ import annotations

import math

import torch

from .recipes import OptimizerConfig, ScheduleConfig

__all__ = ["build_optimizer", "build_scheduler", "reschedule", "optimizer_step"]

_OPTIMIZERS = {"adam": torch.optim.Adam, "radam": torch.optim.RAdam, "adamw": torch.optim.AdamW}


def build_optimizer(parameters, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """``torch.optim`` optimiser of ``cfg`` (foreach off: the same arithmetic on every run)."""
    cls = _OPTIMIZERS[cfg.name]
    extra = {}
    if cfg.decoupled_weight_decay and cfg.name != "adamw":  # AdamW is decoupled by definition
        extra["decoupled_weight_decay"] = True
    return cls(list(parameters), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=False,
               **extra)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps: int):
    """``MultiStepLR`` with milestones at ``round(fraction x steps)``, or ``CosineAnnealingLR``
    over ``steps`` (stepped once per step)."""
    if cfg.kind == "cosine":
        lr = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps),
                                                          eta_min=lr * cfg.final_fraction)
    milestones = sorted({max(1, round(f * steps)) for f in cfg.milestones})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.gamma)


def reschedule(scheduler, cfg: ScheduleConfig, steps: int, step: int) -> float:
    """Stretch a resumed run's LR schedule to ``steps`` in all: from ``step`` on, the LR is that of a
    run planned for ``steps`` from the start (cosine over ``steps``; milestones at the recipe's
    fractions of ``steps``), not the stored schedule's (whose cosine climbs back up after its end).
    Returns the LR set for the next step."""
    import bisect
    from collections import Counter

    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = max(1, steps)
        lrs = [scheduler.eta_min + (base - scheduler.eta_min) * (1 + math.cos(math.pi * step / scheduler.T_max)) / 2
               for base in scheduler.base_lrs]
    else:
        new = sorted({max(1, round(f * steps)) for f in cfg.milestones})  # as build_scheduler
        scheduler.milestones = Counter(new)
        lrs = [base * scheduler.gamma ** bisect.bisect_right(new, step) for base in scheduler.base_lrs]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)
    return lrs[0]


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler, scaler, parameters,
                   grad_clip_norm) -> float:
    """Back-propagate ``loss`` (through the AMP ``scaler``), clip the gradients' norm to ``grad_clip_norm``
    (None: no clipping), step the optimiser, then the scheduler. Returns the LR the step used."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip_norm)
    scaler.step(optimizer)
    scaler.update()
    lr = optimizer.param_groups[0]["lr"]
    scheduler.step()
    return lr
