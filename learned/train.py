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
(:class:`TrainConfig`, :func:`make_config`) live in :mod:`learned.training.recipes`; they are
re-exported here.

Where the pieces live
---------------------
This module is the loop (:func:`train`) and the command line (:func:`main`). The rest is in
:mod:`learned.training`: :mod:`~learned.training.step` (the forward pass and its loss terms,
:class:`~learned.training.step.TrainingStep`), :mod:`~learned.training.losses`,
:mod:`~learned.training.sampling` (the dataset of a recipe, the seeded batch sampler, RNG state),
:mod:`~learned.training.optim` (optimiser, LR schedule, :func:`~learned.training.optim.reschedule`),
:mod:`~learned.training.distributed` (the DDP context and device),
:mod:`~learned.training.run_log` (``log.csv`` and ``loss.png``),
:mod:`~learned.training.checkpoints` (the training checkpoint: save, load, resume checks) and
:mod:`~learned.training.held_out` (``eval.json``'s PSNR).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import MODELS, build_model
from optics import cli

from ._cli import check_device, check_threads
from .data.io import atomic_write_bytes
from .inference.precision import amp_dtype as precision_amp_dtype
from .training import recipes as _recipes
from .training.checkpoints import (
    check_resume_config,
    checkpoint_due,
    init_weights_,
    load_state_dict_strict,
    load_training_checkpoint,
    save_checkpoint,
    save_training_checkpoint,
)
from .training.distributed import DistributedContext, init_distributed, resolve_device
from .training.held_out import evaluate_psnr
from .training.optim import build_optimizer, build_scheduler, reschedule
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
from .training.run_log import CsvLog, write_plot
from .training.sampling import (
    SeededSamples,
    StepBatchSampler,
    collate_samples,
    derive_seed,
    recipe_dataset,
    set_rng_state,
    to_device,
)
from .training.step import TrainingStep

__all__ = [
    *_recipes.__all__,  # re-exported
    "train",
    "TrainResult",
    "TrainingInterrupted",
    "main",
]

log = logging.getLogger("learned.train")

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "log.csv"
PLOT_NAME = "loss.png"
EVAL_NAME = "eval.json"


# ==================================================================================================
# The loop
# ==================================================================================================
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
        fields in :data:`~learned.training.checkpoints.RESUMABLE_CHANGES`). Without it an existing checkpoint is an error.
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
    ctx = init_distributed(config.device)
    try:
        return _train(config, ctx, resume, train_dataset, eval_dataset)
    finally:
        if ctx.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, ctx: DistributedContext, resume: bool, train_dataset, eval_dataset) -> TrainResult:
    device = resolve_device(config.device, ctx)
    recipe = config.recipe
    out = Path(config.out)
    ckpt_path, model_path, log_path, plot_path = (out / n for n in (CHECKPOINT_NAME, MODEL_NAME, LOG_NAME, PLOT_NAME))
    state = None
    if resume:
        state = load_training_checkpoint(ckpt_path)
        check_resume_config(TrainConfig.from_dict(state["training"]["train_config"]), config)
    elif ckpt_path.exists():
        raise FileExistsError(f"{str(ckpt_path)!r} exists: pass --resume to continue it, or choose another --out")

    torch.manual_seed(config.seed)  # model initialisation (every rank identical)
    model = build_model(config.model, **dict(config.model_overrides))
    if recipe.identity_start:  # learned.warmstart: D_t ~ I (values only; resumed weights replace them)
        from .models.warmstart import identity_start_

        identity_start_(model, config.model)
    if config.init is not None and state is None:  # resumed weights replace these too
        from .pretrained import checkpoint_path

        name = config.init.split(":", 1)[1] if config.init.startswith("pretrained:") else None
        init_weights_(model, config.model, checkpoint_path(config.model, name) if name else config.init, config.init)
        if ctx.is_main:
            log.info("initialised %s from %s", config.model, config.init)
    trainer = TrainingStep(model, config.model, recipe.loss).to(device)
    real = None
    if config.real_views is not None:
        from .baseline import dual_pixel_row
        from .data import build_dataset
        from .training.real_views import RealViewCrops

        data = config.real_views.data  # read and deblurred as learned.evaluate does
        real = RealViewCrops(config.real_views, build_dataset(data, "test", crop=None, augment=False), dual_pixel_row(data))
        trainer.real_psfs, trainer.real_config = real.psfs, config.real_views
        if ctx.is_main:
            log.info("real views: scenes %s of %s (physics %s, %.0f s), reblur weight %g, %d crops of %d px a step",
                     ", ".join(config.real_views.scenes), config.real_views.data, real.physics_label, real.seconds,
                     config.real_views.weight, config.real_views.batch_size, config.real_views.crop)
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
        set_rng_state(t["rng"])
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
        train_dataset = recipe_dataset(config.data, "train", crop=recipe.crop, augment=recipe.augment, seed=config.seed)
    sampler = StepBatchSampler(len(train_dataset), recipe.batch_size, config.seed, start_step, recipe.steps,
                               ctx.rank, ctx.world_size)
    loader = DataLoader(SeededSamples(train_dataset), batch_sampler=sampler, collate_fn=collate_samples,
                        num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)

    csv_log = CsvLog(log_path, start_step) if ctx.is_main else None
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
            batch = to_device(batch, device)
            crops = real.sample(derive_seed(config.seed, ctx.rank), step, device) if real is not None else None
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                terms = step_module(batch["input"], batch["target"], batch.get("left"), batch.get("right"),
                                    batch.get("physics"), batch.get("defocus"), crops)
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
                row = {"step": step, "lr": lr, **last}
                if real is not None and config.real_views.monitor_every:
                    due = step % config.real_views.monitor_every == 0 or step == recipe.steps
                    row.update(real.monitor(trainer.model, config.model) if due else {"real_gain_db": ""})
                csv_log.write({**row, "seconds": round(time.perf_counter() - t0, 4)})
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{last['total']:.4g}", refresh=False)
            if step % config.checkpoint_every == 0 or step == recipe.steps or checkpoint_due(
                    config.checkpoint_minutes, last_save_time, ctx, device):
                last_save_time = time.perf_counter()
                # a finite loss with non-finite gradients poisons the weights: never save those
                bad = [n for n, p in trainer.named_parameters() if not bool(torch.isfinite(p).all())]
                if bad:
                    where = (f"last good checkpoint {str(ckpt_path)!r} (step {last_saved}) kept"
                             if last_saved is not None else "no checkpoint had been written yet")
                    raise FloatingPointError(f"non-finite weights after step {step} ({bad[:3]}); stopped; {where}")
                if ctx.is_main:
                    save_training_checkpoint(ckpt_path, step, config, trainer, optimizer, scheduler, scaler)
                    last_saved = step  # before the plot: a Ctrl-C while plotting keeps this checkpoint
                    write_plot(log_path, plot_path, f"{config.model} ({config.preset})")
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
                eval_dataset = recipe_dataset(config.data, "test", crop=None, augment=None, seed=config.seed)
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
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from these weights: a model.pt of learned.train, or pretrained:NAME (learned.pretrained)")
    real = p.add_argument_group("self-supervised real views (dp_refine, kpac_dual; learned.training.real_views)")
    real.add_argument("--real-views", default=None, metavar="pixeldp:DIR",
                      help="also train on the views (never the ground truth) of Xin et al.'s real Pixel 4 scenes "
                      "with the dual-pixel reblur loss through the calibrated PSFs")
    real.add_argument("--real-scenes", nargs="+", default=None, metavar="NNN",
                      help="scenes whose views are trained on (default 001-008, the tuning scenes)")
    real.add_argument("--real-weight", type=float, default=None, help="weight of the reblur loss (default 1)")
    real.add_argument("--real-batch", type=int, default=None, help="real crops a step (default 2)")
    real.add_argument("--real-crop", type=int, default=None, help="side of the scored real crop, px (default 128)")
    real.add_argument("--real-monitor-every", type=int, default=None, metavar="N",
                      help="every N steps log the PSNR gain over the physics on the centres of the training scenes, "
                      "scored against their ground truth (never trained on); default 0, off")
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
    from .training.recipes import real_views_from_cli

    try:
        real_views = real_views_from_cli(args.real_views, scenes=args.real_scenes, weight=args.real_weight,
                                         batch_size=args.real_batch, crop=args.real_crop,
                                         monitor_every=args.real_monitor_every)
    except ValueError as err:
        cli.usage_error(str(err))
    return make_config(
        args.model, preset=args.preset or "paper", data=args.data, out=args.out,
        seed=0 if args.seed is None else args.seed, steps=args.steps, batch_size=args.batch_size,
        crop=args.crop, lr=args.lr, device=args.device, model_overrides=_parse_model_args(args.model_arg),
        checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
        num_workers=args.num_workers, amp=not args.no_amp,
        eval_images=args.eval_images, progress=not args.no_progress,
        identity_start=False if args.no_identity_start else None,
        real_views=real_views, init=args.init,
    )


if __name__ == "__main__":
    sys.exit(cli.run(main))
