"""Train any model of the zoo with its paper's recipe: ``python -m learned.train``.

One readable loop, typed dataclass configurations, no framework.

Usage
-----
::

    # the paper's recipe (256x256 crops, the paper's optimiser, losses, batch size and steps)
    python -m learned.train --model nrknet --data synthetic --out runs/nrknet
    python -m learned.train --model ifan --data dpdd:/data/dd_dp_dataset_png --out runs/ifan
    # continue an interrupted run (bit-exact on CPU); only --steps may change
    python -m learned.train --out runs/ifan --resume
    # two seconds on a CPU: a smoke test of the whole pipeline
    python -m learned.train --model k3dn_tiny --steps 2 --crop 32 --batch-size 1 --out /tmp/smoke
    # smoke tests: reduced widths on a CPU (gain > 0 dB), paper widths on a GPU (>= +1 dB in 5 minutes)
    python -m learned.train --model kpac --preset cpu-smoke --out runs/kpac-smoke
    python -m learned.train --model nrknet --preset gpu-smoke --out runs/nrknet-gpu-smoke

Multi-GPU and multi-node training use ``torch.distributed`` (DDP) launched by ``torchrun``::

    torchrun --standalone --nproc_per_node 4 -m learned.train --model ifan --data dpdd:/data/dpdd --out runs/ifan
    # two nodes of 8 GPUs (run on each node, same rendezvous endpoint)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        -m learned.train --model ifan --data dpdd:/data/dpdd --out runs/ifan

``--batch-size`` is per process: the global batch is ``batch_size x world_size``. The backend is
NCCL on CUDA and gloo on CPU. Rank 0 writes checkpoints, logs and plots.

Outputs (in ``--out``)
----------------------
``checkpoint.pt``
    Everything needed to resume: model weights, optimiser, LR scheduler, AMP scaler, the
    training-only networks (IFAN's reblurring network), RNG states and the step. Written
    atomically (temporary file + ``os.replace``) every ``--checkpoint-every`` steps and at the
    end; a crash or a NaN never leaves a half-written or poisoned file. It is also a valid
    :func:`learned.load_checkpoint` file (format ``defocus-toolkit/1`` plus a ``training`` entry),
    and loads with ``torch.load(weights_only=True)``: every RNG state is stored as tensors and
    lists, nothing is pickled as an object.
``model.pt``
    The deploy weights alone (:func:`learned.save_checkpoint`), written at the end.
``log.csv``
    One row per step: step, lr, total loss, each loss term, ``blurred_input_mse`` (the MSE of
    the blurred input against the target: the loss of doing nothing, for reference), seconds.
    Appended and flushed every row; rows after the resumed step are dropped on ``--resume``.
``loss.png``
    The loss curve (matplotlib Agg), re-drawn at every checkpoint.
``eval.json``
    Held-out PSNR of the blurred input and of the output (``--eval-images N`` > 0).

Reproducibility
---------------
Batch ``s`` is a pure function of ``(seed, s)``: the sample order is a permutation per epoch
drawn from ``(seed, epoch)`` and every sample gets a seed derived from ``(seed, s, slot)``.
Datasets of :mod:`learned.data` take the key ``(index, sample_seed)`` and draw crops and
augmentation (flips, IFAN's noise / grayscale / rescale) from a generator seeded by it; any other
dataset is indexed with the global torch / NumPy / ``random`` RNGs seeded by the sample seed
(restored afterwards). So batches do not depend on worker processes or on where a run was
interrupted, and the sampler has no state to save (its seed and next step are stored for the
record). The global RNG states are saved in the checkpoint as well. On CPU a run interrupted at step k and
resumed ends with exactly the weights of an uninterrupted run (tested with ``torch.equal``);
on GPU, cuDNN / atomics make runs reproducible only up to floating-point non-determinism.
Bit-exact needs the same number of CPU threads (the summation order of the convolutions depends
on it): the checkpoint stores it, ``--resume`` reuses it, and a different ``--threads`` is
accepted with a warning. ``--resume --steps N`` with a larger ``N`` continues on the LR
schedule of an N-step run (:func:`reschedule`), which differs from an uninterrupted N-step run
only in the steps already taken.

Recipes and presets
-------------------
Each paper's recipe (:data:`RECIPES`), the presets (:data:`PRESETS`) and the typed configurations
(:class:`TrainConfig`, :func:`make_config`) live in :mod:`learned.recipes`; they are re-exported here.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from . import DUAL_PIXEL, MODELS, PHYSICS_INPUT, build_model
from optics import cli

from ._cli import check_device, check_threads
from .training.checkpoints import _torch_load, load_state_dict_strict, save_checkpoint
from .data.io import atomic_save, atomic_write_bytes
from .training.losses import (
    ifan_disparity_loss,
    ifan_reblur_loss,
    k3dn_loss,
    mse_loss,
    nrknet_loss,
)
from .inference.precision import amp_dtype as precision_amp_dtype
from .training import recipes as _recipes
from .training.recipes import (  # re-exported: the recipes, presets and configs live in learned.training.recipes
    OPTIMIZER_NAMES,
    PRESETS,
    RECIPES,
    AugmentConfig,
    LossConfig,
    OptimizerConfig,
    Recipe,
    ScheduleConfig,
    TrainConfig,
    _plain,
    describe_recipe,
    make_config,
    model_family,
)

__all__ = [
    *_recipes.__all__,  # re-exported
    "TrainingStep",
    "StepBatchSampler",
    "train",
    "evaluate_psnr",
    "load_training_checkpoint",
    "main",
]

log = logging.getLogger("learned.train")

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "log.csv"
PLOT_NAME = "loss.png"
EVAL_NAME = "eval.json"
TRAIN_FORMAT = "defocus-toolkit-train/1"


# ==================================================================================================
# Loss computation: one module so DDP sees a single forward
# ==================================================================================================
class TrainingStep(nn.Module):
    """The model, its training-only networks and its loss, as one module whose ``forward`` returns
    the loss terms (so DDP can wrap it and every custom forward path syncs gradients).

    Parameters
    ----------
    model : nn.Module
        A network of :data:`learned.MODELS`.
    model_name : str
    loss : LossConfig
    """

    def __init__(self, model: nn.Module, model_name: str, loss: LossConfig) -> None:
        super().__init__()
        self.model = model
        self.model_name = model_name
        self.family = model_family(model_name)
        self.dual_pixel_input = model_name in DUAL_PIXEL
        self.loss = loss
        self.auxiliary = nn.ModuleDict()
        if self.family == "ifan" and loss.reblur_weight > 0:
            from .models.ifan import IFANReblurNetwork

            self.auxiliary["ifan_reblur"] = IFANReblurNetwork(
                filter_channels=model.filter_dim, channels=model.iac_channels, iterations=model.iterations,
                filter_taps=model.filter_taps, downsample_factor=model.multiple,
                reuse_vertical_kernel=model.reuse_vertical_kernel,
            )
        self._warned: set = set()

    def _skip_once(self, what: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("%s", what)

    def forward(
        self,
        blurred: torch.Tensor,
        sharp: torch.Tensor,
        left: Optional[torch.Tensor] = None,
        right: Optional[torch.Tensor] = None,
        physics: Optional[torch.Tensor] = None,
        defocus: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """Loss terms of one batch: ``{'total': scalar, term: detached scalar, ...}``.

        ``blurred`` (B, 3, H, W) is the network input (the combined image C for dual-pixel data),
        ``sharp`` the ground truth, ``left``/``right`` the dual-pixel views or None,
        ``physics``/``defocus`` the physics estimate and its defocus map (``dp_refine``) or None.
        """
        has_views = left is not None and right is not None
        if self.dual_pixel_input and not has_views:
            raise ValueError(
                f"model {self.model_name!r} takes dual-pixel views but the batch has no 'left'/'right'; "
                "use a dataset with dual-pixel views (synthetic, dpdd, pixeldp)"
            )
        model, cfg = self.model, self.loss
        if self.family == "dp_refine":
            if physics is None or defocus is None:
                raise ValueError(f"model {self.model_name!r} refines the physics estimate but the batch has no "
                                 "'physics'/'defocus'; use synthetic:sensor=pixel4,physics=on")
            out = model(left, right, physics, defocus)
            total = mse_loss(out, sharp)
            return {"total": total, "mse": total.detach()}
        if self.family == "kpac":
            out = model(left, right, blurred) if self.dual_pixel_input else model(blurred)
            total = mse_loss(out, sharp)
            return {"total": total, "mse": total.detach()}
        if self.family == "ifan":
            aux = model(left, right, blurred, return_aux=True) if self.dual_pixel_input else model(blurred, return_aux=True)
            mse = mse_loss(aux["output"], sharp)
            terms = {"mse": mse.detach()}
            total = mse
            if "ifan_reblur" in self.auxiliary:
                reblurred = self.auxiliary["ifan_reblur"](sharp, aux["filters"])
                reblur = ifan_reblur_loss(reblurred, blurred)
                total = total + cfg.reblur_weight * reblur
                terms["reblur"] = reblur.detach()
            if cfg.disparity_weight > 0:
                if has_views:
                    # IFAN: the filter encoder + DME on the right view (the authors' training pass);
                    # IFANDual: its filter encoder already saw concat(R, L).
                    disparity = aux["disparity"] if self.dual_pixel_input else model.estimate_disparity(right)
                    disp = ifan_disparity_loss(left, right, disparity)
                    total = total + cfg.disparity_weight * disp
                    terms["disparity"] = disp.detach()
                else:
                    self._skip_once(
                        "IFAN disparity loss skipped: the batch has no dual-pixel views ('left'/'right'); "
                        "training with MSE + reblurring loss only"
                    )
            return {"total": total, **terms}
        if self.family == "nrknet":
            deblurred, reblurred = model.forward_multiscale(blurred, sharp if cfg.reblur_weight > 0 else None)
            total, parts = nrknet_loss(
                deblurred, reblurred, blurred, sharp, scale_weights=cfg.scale_weights,
                fft_weight=cfg.fft_weight, reblur_weight=cfg.reblur_weight,
            )
            return {"total": total, **parts}
        if self.family == "k3dn":
            deblurred, reblurred = model.forward_train(left, right, sharp)
            total, parts = k3dn_loss(deblurred, sharp, reblurred, 0.5 * (left + right), reblur_weight=cfg.reblur_weight)
            return {"total": total, **parts}
        raise ValueError(f"unknown family {self.family!r}")


# ==================================================================================================
# Deterministic data order
# ==================================================================================================
def _derive_seed(*values: int) -> int:
    """A 63-bit seed from integers (NumPy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


class StepBatchSampler(Sampler):
    """Batches of ``(index, sample_seed)`` whose content is a pure function of ``(seed, step)``.

    Step ``s`` (1-based) uses positions ``(s - 1) G .. s G - 1`` of the endless sequence of
    epoch permutations (epoch ``e`` permuted by a generator seeded from ``(seed, e)``), with
    ``G = batch_size x world_size``; rank ``r`` takes the slots ``r b .. (r + 1) b - 1``. Each
    sample's seed is derived from ``(seed, s, slot)``. Resuming at step k is starting the sampler
    at k: there is no hidden state to restore.

    Parameters
    ----------
    dataset_size : int
    batch_size : int
        Per process.
    seed : int
    start_step, stop_step : int
        Yields the batches of steps ``start_step + 1 .. stop_step``.
    rank, world_size : int
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, start_step: int, stop_step: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if dataset_size < 1:
            raise ValueError(f"the training dataset is empty (dataset_size={dataset_size})")
        self.n, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.start_step, self.stop_step = start_step, stop_step
        self.rank, self.world_size = rank, world_size
        self._epoch: Optional[int] = None
        self._perm: Optional[torch.Tensor] = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_derive_seed(self.seed, 1, epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch(self, step: int) -> List[Tuple[int, int]]:
        """The ``(index, sample_seed)`` list of this rank at 1-based ``step``."""
        global_batch = self.batch_size * self.world_size
        out = []
        for slot in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            position = (step - 1) * global_batch + slot
            index = int(self._permutation(position // self.n)[position % self.n])
            out.append((index, _derive_seed(self.seed, 2, step, slot)))
        return out

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for step in range(self.start_step + 1, self.stop_step + 1):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.stop_step - self.start_step


@contextlib.contextmanager
def _seeded_global_rngs(seed: int):
    """Seed torch / NumPy / ``random`` global RNGs with ``seed`` inside, restore them after."""
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


class _SeededSamples(Dataset):
    """Wraps a dataset so ``wrapper[(index, seed)]`` is a pure function of ``(index, seed)``.

    Datasets of :mod:`learned.data` take the key ``(index, sample_seed)`` themselves (their crops
    and augmentation come from a generator seeded by it); any other dataset gets ``index`` and is
    called with the global torch / NumPy / ``random`` RNGs seeded by ``seed`` (then restored).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.takes_seeded_keys = _takes_seeded_keys(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]) -> dict:
        index, seed = key
        if self.takes_seeded_keys:
            sample = self.dataset[(index, seed)]
        else:
            with _seeded_global_rngs(seed):
                sample = self.dataset[index]
        if not isinstance(sample, Mapping) or "input" not in sample or "target" not in sample:
            raise TypeError(
                f"dataset samples must be dicts with 'input' and 'target' tensors (and optional 'left', "
                f"'right', 'name'); sample {index} is {type(sample).__name__}"
                + (f" with keys {sorted(sample)}" if isinstance(sample, Mapping) else "")
            )
        return dict(sample)


def _takes_seeded_keys(dataset: Dataset) -> bool:
    try:
        from .data import FileDataset, SyntheticDataset
    except ImportError:  # pragma: no cover
        return False
    return isinstance(dataset, (FileDataset, SyntheticDataset))


def _collate(samples: List[dict]) -> dict:
    keys = set(samples[0])
    for s in samples[1:]:
        if set(s) != keys:
            raise ValueError(f"samples of one batch have different keys: {sorted(keys)} vs {sorted(s)}")
    return default_collate(samples)


# ==================================================================================================
# RNG state (weights-only serialisable)
# ==================================================================================================
def _rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ==================================================================================================
# Helpers: optimiser, distributed context, logging, plots
# ==================================================================================================
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


@dataclass
class _Distributed:
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


def _init_distributed(device_request: str) -> _Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Distributed()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    initialised = False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_request in ("auto", "cuda") or device_request.startswith("cuda")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        initialised = True
    return _Distributed(dist.get_rank(), dist.get_world_size(), local, initialised)


def _resolve_device(request: str, ctx: _Distributed) -> torch.device:
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


def _write_plot(log_path: Path, plot_path: Path, title: str) -> None:
    """Loss curve (every term, log scale) from the CSV log, written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = _read_log(log_path)
    if not rows:
        return
    columns = [c for c in rows[0] if c not in ("step", "lr", "seconds")]
    steps = np.array([int(r["step"]) for r in rows], dtype=np.float64)
    # per-step losses are noisy: faint raw total, and every term averaged over <= 200 bins of steps
    bins = np.array_split(np.arange(len(rows)), min(len(rows), 200))
    fig = Figure(figsize=(9, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, [float(r["total"]) for r in rows], color="0.75", linewidth=0.5, label="total (per step)", zorder=1)
    for i, c in enumerate(columns):
        values = np.array([float(r[c]) if r.get(c) not in (None, "") else math.nan for r in rows])
        style = (dict(color="k", linestyle="--", linewidth=1.0, zorder=2) if c == "blurred_input_mse"  # reference
                 else dict(color=f"C{i}", linewidth=2.0 if c == "total" else 1.2, zorder=3 + (c != "total")))
        label = "blurred input's mse (reference)" if c == "blurred_input_mse" else f"{c} (bin mean)"
        ax.plot([steps[b].mean() for b in bins], [values[b].mean() for b in bins], label=label, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if all(float(r["total"]) > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside the curves
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(plot_path, buffer.getvalue())


def _read_log(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class _CsvLog:
    """Append-only CSV (one row per step, flushed); the header grows never: terms fixed at the first row."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        self.fields: Optional[List[str]] = None
        rows = _read_log(path)
        if rows:
            kept = [r for r in rows if int(r["step"]) <= resume_step]
            self.fields = list(rows[0].keys())
            if len(kept) != len(rows):  # drop rows of steps that will be re-run
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(kept)
                atomic_write_bytes(path, buffer.getvalue().encode())
        self._fh = None

    def write(self, row: Mapping[str, Any]) -> None:
        if self.fields is None:
            self.fields = list(row.keys())
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields).writeheader()
        if self._fh is None:
            self._fh = open(self.path, "a", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=self.fields, extrasaction="ignore")
        self._writer.writerow({k: row.get(k, "") for k in self.fields})
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


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


# ==================================================================================================
# Checkpoints
# ==================================================================================================
def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint with ``torch.load(weights_only=True)``; check its layout."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} to resume from")
    obj = _torch_load(path)  # weights_only=True; a damaged or unsafe file: the toolkit's "refused to load"
    if obj.get("format") != "defocus-toolkit/1" or "training" not in obj:
        raise ValueError(f"{str(path)!r} is not a training checkpoint of learned.train (no 'training' entry)")
    if obj["training"].get("format") != TRAIN_FORMAT:
        raise ValueError(f"{str(path)!r}: training format {obj['training'].get('format')!r}, expected {TRAIN_FORMAT!r}")
    return obj


def _save_training_checkpoint(path: Path, step: int, config: TrainConfig, trainer: TrainingStep,
                              optimizer, scheduler, scaler) -> None:
    payload = {
        "format": "defocus-toolkit/1",
        "model": config.model,
        "config": _plain(dict(config.model_overrides)),
        "state_dict": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "training": {
            "format": TRAIN_FORMAT,
            "step": int(step),
            "train_config": config.to_dict(),
            "auxiliary": {k: v.detach().cpu() for k, v in trainer.auxiliary.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "rng": _rng_state(),
            "sampler": {"seed": int(config.seed), "next_step": int(step) + 1},
            "threads": int(torch.get_num_threads()),  # resuming bit-exactly needs the same count
        },
    }
    atomic_save(payload, path)


#: Config fields that may differ between a run and its resumption.
_RESUMABLE_CHANGES = {"steps", "device", "num_workers", "progress", "out", "checkpoint_every", "checkpoint_minutes",
                      "eval_images"}


def _check_resume_config(stored: TrainConfig, current: TrainConfig) -> None:
    a, b = stored.to_dict(), current.to_dict()
    a_recipe, b_recipe = a.pop("recipe"), b.pop("recipe")
    a_recipe.pop("steps"), b_recipe.pop("steps")
    diffs = [f"{k}: checkpoint {a[k]!r} vs now {b[k]!r}" for k in a if k not in _RESUMABLE_CHANGES and a[k] != b[k]]
    diffs += [f"recipe.{k}: checkpoint {a_recipe[k]!r} vs now {b_recipe[k]!r}" for k in a_recipe if a_recipe[k] != b_recipe[k]]
    if diffs:
        raise ValueError("cannot resume with a different configuration (only steps, device, num_workers, "
                         "checkpoint_every, checkpoint_minutes, eval_images may change): " + "; ".join(diffs))


# ==================================================================================================
# Evaluation
# ==================================================================================================
def _time_to_save(minutes: float, since: float, ctx, device: torch.device) -> bool:
    """True when ``minutes`` (> 0) have passed since ``since``; with several processes, when rank 0
    says so (every rank must save at the same step)."""
    if not minutes:
        return False
    due = time.perf_counter() - since >= 60.0 * minutes
    if ctx.enabled:
        flag = torch.tensor([float(due)], device=device)
        dist.broadcast(flag, src=0)
        due = bool(flag.item())
    return due


def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = float(torch.mean((x.double() - y.double()) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


@torch.no_grad()
def evaluate_psnr(model: nn.Module, model_name: str, dataset: Dataset, device: torch.device,
                  max_images: Optional[int] = None) -> dict:
    """Mean PSNR (dB, images in [0, 1]) of the blurred input and of the clipped output over a dataset.

    PSNR is computed per image and averaged (the papers' protocol); the network output is clipped
    to [0, 1] (as every paper's evaluation does). Returns ``{'images', 'input_psnr',
    'output_psnr', 'gain_db', 'per_image': [...]}``, plus ``'gain_db_by_source'`` (mean gain per
    scene kind, e.g. dead leaves and motorcycle) for the synthetic dataset.
    """
    was_training = model.training
    model.eval()
    dual = model_name in DUAL_PIXEL
    count = len(dataset) if max_images is None else min(len(dataset), max_images)
    if count < 1:
        raise ValueError("the evaluation dataset is empty")
    rows = []
    for i in range(count):
        sample = dataset[i]
        x = sample["input"].unsqueeze(0).to(device)
        y = sample["target"].unsqueeze(0).to(device)
        if model_name in PHYSICS_INPUT:
            if "physics" not in sample or "defocus" not in sample:
                raise ValueError(f"model {model_name!r} needs the physics estimate; evaluation sample {i} has none")
            out = model(*(sample[k].unsqueeze(0).to(device) for k in ("left", "right", "physics", "defocus")))
        elif dual:
            if "left" not in sample or "right" not in sample:
                raise ValueError(f"model {model_name!r} needs dual-pixel views; evaluation sample {i} has none")
            out = model(sample["left"].unsqueeze(0).to(device), sample["right"].unsqueeze(0).to(device), *(
                (x,) if model_name.startswith(("kpac", "ifan")) else ()))
        else:
            out = model(x)
        out = out.clamp(0.0, 1.0)
        row = {"name": str(sample.get("name", i)), "input_psnr": _psnr(x.clamp(0, 1), y), "output_psnr": _psnr(out, y)}
        if model_name in PHYSICS_INPUT:  # the estimate the model refines, for reference
            row["physics_psnr"] = _psnr(sample["physics"].unsqueeze(0).to(device).clamp(0, 1), y)
        if hasattr(dataset, "scene_source"):  # synthetic data: which kind of scene
            row["source"] = dataset.scene_source(i)
        rows.append(row)
    model.train(was_training)
    inp = float(np.mean([r["input_psnr"] for r in rows]))
    outp = float(np.mean([r["output_psnr"] for r in rows]))
    result = {"images": count, "input_psnr": inp, "output_psnr": outp, "gain_db": outp - inp, "per_image": rows}
    if rows and "physics_psnr" in rows[0]:
        result["physics_psnr"] = float(np.mean([r["physics_psnr"] for r in rows]))
    sources = sorted({r["source"] for r in rows if "source" in r})
    if sources:
        gains = {s: [r["output_psnr"] - r["input_psnr"] for r in rows if r.get("source") == s] for s in sources}
        result["gain_db_by_source"] = {s: float(np.mean(g)) for s, g in gains.items()}
    return result


# ==================================================================================================
# The loop
# ==================================================================================================
def _build_dataset(spec: str, split: str, *, crop: Optional[int], augment: Optional[AugmentConfig], seed: int) -> Dataset:
    """``learned.data.build_dataset`` with the recipe's augmentation (None: no augmentation)."""
    from .data import IFANAugmentation, build_dataset

    ifan = None
    if augment is not None and (augment.noise_prob > 0 or augment.grayscale_prob > 0 or augment.rescale_prob > 0):
        ifan = IFANAugmentation(noise_prob=augment.noise_prob, noise_sigma=tuple(augment.noise_sigma),
                                grayscale_prob=augment.grayscale_prob, rescale_prob=augment.rescale_prob,
                                rescale_range=tuple(augment.rescale_range))
    return build_dataset(spec, split, crop=crop, augment=bool(augment is not None and augment.flips_rot90),
                         seed=seed, ifan_augment=ifan)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during the training loop: which step was running and which checkpoint is kept."""

    def __init__(self, step: int, total: int, last_saved: Optional[int], checkpoint: Path) -> None:
        self.step, self.last_saved, self.checkpoint = step, last_saved, checkpoint
        kept = (f"last checkpoint {str(checkpoint)!r} (step {last_saved}) kept; continue with "
                f"python -m learned.train --out {str(checkpoint.parent)!r} --resume"
                if last_saved is not None else "no checkpoint had been written yet")
        super().__init__(f"interrupted after step {step} of {total}; {kept}")


@dataclass
class TrainResult:
    """What :func:`train` returns: final step, last logged losses, checkpoint paths, evaluation."""

    step: int
    losses: Dict[str, float]
    checkpoint: Path
    model_path: Path
    evaluation: Optional[dict] = None
    model: Optional[nn.Module] = None


def train(config: TrainConfig, *, resume: bool = False, train_dataset: Optional[Dataset] = None,
          eval_dataset: Optional[Dataset] = None) -> TrainResult:
    """Train ``config.model`` with ``config.recipe``; see the module docstring for outputs.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue from ``config.out/checkpoint.pt`` (its configuration must match, except the
        fields in ``_RESUMABLE_CHANGES``). Without it an existing checkpoint is an error.
    train_dataset, eval_dataset : Dataset, optional
        Use these instead of ``build_dataset(config.data, 'train' / 'test', ...)``. Samples are
        dicts with 'input' and 'target' (3, H, W) float tensors and optional 'left', 'right'.

    Returns
    -------
    TrainResult

    Raises
    ------
    FloatingPointError
        A non-finite loss; the message names the step, and the last good checkpoint is kept.
    """
    ctx = _init_distributed(config.device)
    try:
        return _train(config, ctx, resume, train_dataset, eval_dataset)
    finally:
        if ctx.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, ctx: _Distributed, resume: bool, train_dataset, eval_dataset) -> TrainResult:
    device = _resolve_device(config.device, ctx)
    recipe = config.recipe
    out = Path(config.out)
    ckpt_path, model_path, log_path, plot_path = (out / n for n in (CHECKPOINT_NAME, MODEL_NAME, LOG_NAME, PLOT_NAME))
    state = None
    if resume:
        state = load_training_checkpoint(ckpt_path)
        _check_resume_config(TrainConfig.from_dict(state["training"]["train_config"]), config)
    elif ckpt_path.exists():
        raise FileExistsError(f"{str(ckpt_path)!r} exists: pass --resume to continue it, or choose another --out")

    torch.manual_seed(config.seed)  # model initialisation (every rank identical)
    model = build_model(config.model, **dict(config.model_overrides))
    if recipe.identity_start:  # learned.warmstart: D_t ~ I (values only; resumed weights replace them)
        from .models.warmstart import identity_start_

        identity_start_(model, config.model)
    trainer = TrainingStep(model, config.model, recipe.loss).to(device)
    optimizer = build_optimizer(trainer.parameters(), recipe.optimizer)
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.steps)
    use_amp = bool(config.amp and recipe.amp and device.type == "cuda")
    amp_dtype = precision_amp_dtype(device) if use_amp else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_step = 0
    if state is not None:
        t = state["training"]
        load_state_dict_strict(trainer.model, state["state_dict"], f"checkpoint {ckpt_path.name!r}")
        load_state_dict_strict(trainer.auxiliary, t["auxiliary"], f"checkpoint {ckpt_path.name!r} (auxiliary)")
        optimizer.load_state_dict(t["optimizer"])
        scheduler.load_state_dict(t["scheduler"])
        if t["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(t["scaler"])
        _set_rng_state(t["rng"])
        start_step = int(t["step"])
        if start_step >= recipe.steps:
            raise ValueError(f"checkpoint is at step {start_step}; pass --steps > {start_step} to train further")
        planned = int(t["train_config"]["recipe"]["steps"])
        if planned != recipe.steps:
            lr = reschedule(scheduler, recipe.schedule, recipe.steps, start_step)
            if ctx.is_main:
                log.info("the LR schedule now runs over %d steps (the checkpoint's run planned %d): LR %.3g at step %d",
                         recipe.steps, planned, lr, start_step + 1)
        if ctx.is_main:
            log.info("resumed %s at step %d", ckpt_path, start_step)

    step_module: nn.Module = trainer
    if ctx.enabled:
        step_module = nn.parallel.DistributedDataParallel(
            trainer, device_ids=[device.index] if device.type == "cuda" else None)

    if train_dataset is None:
        train_dataset = _build_dataset(config.data, "train", crop=recipe.crop, augment=recipe.augment, seed=config.seed)
    sampler = StepBatchSampler(len(train_dataset), recipe.batch_size, config.seed, start_step, recipe.steps,
                               ctx.rank, ctx.world_size)
    loader = DataLoader(_SeededSamples(train_dataset), batch_sampler=sampler, collate_fn=_collate,
                        num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)

    csv_log = _CsvLog(log_path, start_step) if ctx.is_main else None
    progress = None
    if ctx.is_main and config.progress:
        progress = cli.progress_bar(total=recipe.steps, initial=start_step, desc=f"train {config.model}",
                                    unit="step", dynamic_ncols=True)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log.info("training %s (%s preset) on %s on %s (world size %d, AMP %s): %s",
                 config.model, config.preset, config.data, device, ctx.world_size,
                 str(amp_dtype).replace("torch.", "") if use_amp else "off", describe_recipe(recipe, ctx.world_size))
        log.debug("recipe source: %s", recipe.source)

    trainer.train()
    last: Dict[str, float] = {}
    last_saved = start_step if state is not None else None
    step = done = start_step
    t0 = last_save_time = time.perf_counter()
    try:
        for step, batch in zip(range(start_step + 1, recipe.steps + 1), loader):
            batch = _to_device(batch, device)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                terms = step_module(batch["input"], batch["target"], batch.get("left"), batch.get("right"),
                                    batch.get("physics"), batch.get("defocus"))
            total = terms["total"]
            with torch.no_grad():  # reference: the loss of returning the blurred input unchanged
                identity = torch.mean((batch["input"].float() - batch["target"].float()) ** 2)
            values = torch.stack([total.detach().float()] + [v.float() for k, v in terms.items() if k != "total"]
                                 + [identity])
            if ctx.enabled:
                dist.all_reduce(values)
                values /= ctx.world_size
            if not bool(torch.isfinite(values[0])):
                where = (f"last good checkpoint {str(ckpt_path)!r} (step {last_saved}) kept"
                         if last_saved is not None else "no checkpoint had been written yet")
                raise FloatingPointError(f"non-finite loss {float(values[0])} at step {step}; stopped; {where}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if recipe.optimizer.grad_clip_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(trainer.parameters(), recipe.optimizer.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            done = step
            names = ["total"] + [k for k in terms if k != "total"] + ["blurred_input_mse"]
            last = {k: float(v) for k, v in zip(names, values.tolist())}
            if ctx.is_main:
                csv_log.write({"step": step, "lr": lr, **last, "seconds": round(time.perf_counter() - t0, 4)})
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{last['total']:.4g}", refresh=False)
            if step % config.checkpoint_every == 0 or step == recipe.steps or _time_to_save(
                    config.checkpoint_minutes, last_save_time, ctx, device):
                last_save_time = time.perf_counter()
                # a finite loss with non-finite gradients poisons the weights: never save those
                bad = [n for n, p in trainer.named_parameters() if not bool(torch.isfinite(p).all())]
                if bad:
                    where = (f"last good checkpoint {str(ckpt_path)!r} (step {last_saved}) kept"
                             if last_saved is not None else "no checkpoint had been written yet")
                    raise FloatingPointError(f"non-finite weights after step {step} ({bad[:3]}); stopped; {where}")
                if ctx.is_main:
                    _save_training_checkpoint(ckpt_path, step, config, trainer, optimizer, scheduler, scaler)
                    last_saved = step  # before the plot: a Ctrl-C while plotting keeps this checkpoint
                    _write_plot(log_path, plot_path, f"{config.model} ({config.preset})")
                last_saved = step
                if ctx.enabled:
                    dist.barrier()
    except KeyboardInterrupt:
        raise TrainingInterrupted(done, recipe.steps, last_saved, ckpt_path) from None
    finally:
        if progress is not None:
            progress.close()
        if csv_log is not None:
            csv_log.close()
    if step != recipe.steps:
        raise RuntimeError(f"the data loader stopped at step {step} of {recipe.steps}")

    evaluation = None
    if ctx.is_main:
        save_checkpoint(trainer.model, config.model, model_path, _plain(dict(config.model_overrides)))
        if config.eval_images > 0:
            if eval_dataset is None:
                eval_dataset = _build_dataset(config.data, "test", crop=None, augment=None, seed=config.seed)
            evaluation = evaluate_psnr(trainer.model, config.model, eval_dataset, device, config.eval_images)
            evaluation.update(model=config.model, preset=config.preset, steps=recipe.steps,
                              seconds=round(time.perf_counter() - t0, 1))
            atomic_write_bytes(out / EVAL_NAME, json.dumps(evaluation, indent=2).encode())
            log.info("held-out PSNR over %d images: input %.2f dB, output %.2f dB (%+.2f dB)",
                     evaluation["images"], evaluation["input_psnr"], evaluation["output_psnr"], evaluation["gain_db"])
    if ctx.enabled:
        dist.barrier()
    return TrainResult(step=step, losses=last, checkpoint=ckpt_path, model_path=model_path, evaluation=evaluation,
                       model=trainer.model)


# ==================================================================================================
# Command line
# ==================================================================================================
def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        verbose_help="debug logging, and the full traceback of an error",
        prog="python -m learned.train",
        description="Train a defocus-deblurring model with its paper's recipe (see the module docstring). "
        "Multi-GPU: torchrun --standalone --nproc_per_node N -m learned.train ...",
    )
    p.add_argument("--model", choices=sorted(MODELS), help="model name (required unless --resume)")
    p.add_argument("--data", default=None, help="dataset spec (default 'synthetic'): synthetic, dpdd:PATH, "
                   "lfdof:PATH, realdof:PATH, rtf:PATH, pixeldp:PATH, folder:PATH")
    p.add_argument("--out", default=None, help="output folder (default runs/MODEL)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the recipe's)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=None, help="seed of initialisation, data order, augmentation (0)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="'paper' (default), 'cpu-smoke' or 'gpu-smoke' (learned.recipes)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size per process (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--crop", type=int, default=None, help="square training crop side (default: the recipe's, 256)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (1000)")
    p.add_argument("--checkpoint-minutes", type=float, default=None, metavar="M",
                   help="also save a checkpoint after M minutes without one (default 10; 0: by steps only)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (0)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--no-identity-start", action="store_true",
                   help="NRKNet, IFAN: start from the authors' initialisation even where the preset uses "
                   "the identity-preserving start (learned.warmstart)")
    p.add_argument("--eval-images", type=int, default=None, help="score N held-out test images at the end")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="model constructor override, VALUE a Python literal (repeatable), e.g. "
                   "--model-arg channels=16 or --model-arg 'widths=(8, 16, 32)'")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of torch (torch.set_num_threads); default 1 for a new run (the same results on "
                   "every machine, and fastest on one shared with other jobs: OpenMP threads spin-wait when a core "
                   "is busy), and the run's own count on --resume (bit-exact continuation)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    cli.add_overwrite_argument(p, "the outputs of an earlier run in --out (a new run, not --resume)")
    return p


def _parse_model_args(items: Sequence[str]) -> dict:
    """``["channels=16", "widths=(8, 16)"]`` -> ``{"channels": 16, "widths": (8, 16)}`` (literals only)."""
    import ast

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            cli.usage_error(f"argument --model-arg: expected KEY=VALUE with KEY an identifier; got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            cli.usage_error(f"argument --model-arg {key}: VALUE must be a Python literal (number, tuple, string in "
                            f"quotes, True/False); got {value!r}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    check_threads(args.threads)
    if args.checkpoint_minutes is not None and not args.checkpoint_minutes >= 0:
        parser.error(f"argument --checkpoint-minutes: expected >= 0; got {args.checkpoint_minutes}")
    if args.device != "auto":
        check_device(args.device)
    threads = args.threads or 1
    created = False
    if args.resume:
        if args.out is None:
            parser.error("argument --resume: expected --out DIR (the folder holding checkpoint.pt); got no --out")
        training = load_training_checkpoint(Path(args.out) / CHECKPOINT_NAME)["training"]
        stored = TrainConfig.from_dict(training["train_config"])
        done = int(training["step"])
        stored_threads = training.get("threads")
        if args.threads is None and stored_threads:
            threads = int(stored_threads)  # the same summation order: bit-exact continuation
        elif stored_threads and args.threads != stored_threads:
            cli.warn(f"--threads {args.threads} differs from the {stored_threads} thread(s) the run used so far: it "
                     "continues, but not bit-exactly as an uninterrupted run would (leave --threads out to reuse "
                     f"{stored_threads})")
        if (args.steps or stored.recipe.steps) <= done:
            asked = f"--steps {args.steps}" if args.steps else f"its {stored.recipe.steps} steps"
            raise ValueError(f"argument --resume: the run in {args.out!r} is finished (checkpoint at step {done}, "
                             f"{asked}); pass --steps N with N > {done} to train further")
        given = {"model": args.model, "data": args.data, "seed": args.seed, "preset": args.preset,
                 "batch_size": args.batch_size, "lr": args.lr, "crop": args.crop}
        current = {"model": stored.model, "data": stored.data, "seed": stored.seed, "preset": stored.preset,
                   "batch_size": stored.recipe.batch_size, "lr": stored.recipe.optimizer.lr, "crop": stored.recipe.crop}
        clash = [f"--{k.replace('_', '-')} {v!r} (checkpoint: {current[k]!r})" for k, v in given.items()
                 if v is not None and v != current[k]]
        model_args = _parse_model_args(args.model_arg)
        if model_args and model_args != dict(stored.model_overrides):
            clash.append(f"--model-arg {model_args!r} (checkpoint: {dict(stored.model_overrides)!r})")
        if clash:
            parser.error("cannot change these when resuming: " + ", ".join(clash))
        recipe = replace(stored.recipe, steps=args.steps or stored.recipe.steps)
        config = replace(stored, recipe=recipe, out=args.out, device=args.device, num_workers=args.num_workers,
                         progress=not args.no_progress,
                         checkpoint_every=args.checkpoint_every or stored.checkpoint_every,
                         checkpoint_minutes=(stored.checkpoint_minutes if args.checkpoint_minutes is None
                                             else args.checkpoint_minutes),
                         eval_images=stored.eval_images if args.eval_images is None else args.eval_images)
    else:
        if args.model is None:
            parser.error("argument --model: required unless --resume")
        config = _make_cli_config(args)
        if (Path(config.out) / CHECKPOINT_NAME).exists() and not args.overwrite:
            raise FileExistsError(f"--out {str(config.out)!r} holds a run ({CHECKPOINT_NAME}): pass --resume to continue "
                                  "it, --overwrite to start again (its files are replaced), or choose another --out")
        created = not Path(config.out).exists()
        cli.prepare_output_dir(config.out, overwrite=args.overwrite, what="--out", owned=_owned_by_train)
    torch.set_num_threads(threads)
    on_cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
    if on_cpu and config.preset == "paper" and config.recipe.steps >= _recipes.RECIPES[config.family].steps:
        cli.warn(f"the paper recipe of {config.model} ({config.recipe.steps} steps, batch {config.recipe.batch_size}, "
                 f"{config.recipe.crop} px crops) needs a GPU: on a CPU it takes hundreds of hours; on a CPU use "
                 "--preset cpu-smoke (reduced widths, minutes per model)")
    try:
        result = train(config, resume=args.resume)
    except TrainingInterrupted as stop:
        print(f"error: {stop}", file=sys.stderr, flush=True)
        return 130
    except cli.BAD_INPUT:  # refused before training began (e.g. --crop larger than the data): leave nothing behind
        if not args.resume:
            _remove_unused_out(Path(config.out), created)
        raise
    if result.evaluation is not None:
        e = result.evaluation
        print(f"{config.model}: held-out PSNR input {e['input_psnr']:.2f} dB -> output {e['output_psnr']:.2f} dB "
              f"({e['gain_db']:+.2f} dB over {e['images']} images)")
    if not args.resume:
        cli.record_outputs(config.out)
    written = [n for n in (MODEL_NAME, CHECKPOINT_NAME, LOG_NAME, PLOT_NAME, EVAL_NAME) if (Path(config.out) / n).exists()]
    print(f"results: {config.out} ({', '.join(written)})", file=sys.stderr)
    return 0


def _remove_unused_out(out: Path, created: bool) -> None:
    """Undo :func:`optics.cli.prepare_output_dir` for a run that wrote nothing: the record goes, and
    the folder too when this run created it."""
    if not out.is_dir() or [p.name for p in out.iterdir()] != [cli.OUTPUT_RECORD]:
        return  # the run wrote something: keep it (its record says it is incomplete)
    (out / cli.OUTPUT_RECORD).unlink()
    if created:
        out.rmdir()


def _owned_by_train(path: Path) -> bool:
    return path.name in (MODEL_NAME, CHECKPOINT_NAME, LOG_NAME, PLOT_NAME, EVAL_NAME)


def _make_cli_config(args: argparse.Namespace) -> TrainConfig:
    return make_config(
        args.model, preset=args.preset or "paper", data=args.data, out=args.out,
        seed=0 if args.seed is None else args.seed, steps=args.steps, batch_size=args.batch_size,
        crop=args.crop, lr=args.lr, device=args.device, model_overrides=_parse_model_args(args.model_arg),
        checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
        num_workers=args.num_workers, amp=not args.no_amp,
        eval_images=args.eval_images, progress=not args.no_progress,
        identity_start=False if args.no_identity_start else None,
    )


if __name__ == "__main__":
    sys.exit(cli.run(main))
