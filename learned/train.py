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
    Everything needed to resume (:mod:`learned.training.checkpoints`), written atomically every
    ``--checkpoint-every`` steps and at the end; a crash or a NaN never leaves a half-written or
    poisoned file.
``model.pt``
    The deploy weights alone (:func:`learned.save_checkpoint`), written at the end.
``log.csv``
    One row per step (:mod:`learned.training.run_log`): step, lr, total loss, each loss term,
    ``blurred_input_mse`` (the loss of doing nothing, for reference), seconds.
``loss.png``
    The loss curve (matplotlib Agg), re-drawn at every checkpoint.
``eval.json``
    Held-out PSNR of the blurred input and of the output (``--eval-images N`` > 0).

Reproducibility
---------------
Batch ``s`` is a pure function of ``(seed, s)`` (:mod:`learned.training.sampling`), so batches do
not depend on worker processes or on where a run was interrupted. On CPU a run interrupted at step
k and resumed ends with exactly the weights of an uninterrupted run (tested with ``torch.equal``)
when it uses the same number of CPU threads, which the checkpoint stores and ``--resume`` reuses
(:mod:`learned.training.checkpoints`); on GPU, cuDNN / atomics make runs reproducible only up to
floating-point non-determinism. ``--resume --steps N`` with a larger ``N`` continues on the LR
schedule of an N-step run (:func:`~learned.training.optim.reschedule`).

Where the pieces live
---------------------
This module is the loop (:func:`train`) and the command line (:func:`main`); the rest is in
:mod:`learned.training`, one concern a module (listed there), and each group of flags is added by
the module of its concern: the recipe's (:func:`~learned.training.recipes.add_recipe_arguments`;
the recipes, presets and typed configurations are re-exported here), the checkpoints' and
``--resume`` (:mod:`~learned.training.checkpoints`) and the real views'
(:mod:`~learned.training.real_views`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from . import MODELS, build_model
from optics import cli

from ._cli import check_device, check_threads
from .inference.precision import amp_dtype as precision_amp_dtype
from .training import recipes as _recipes
from .training.checkpoints import (add_checkpoint_arguments, check_finite_weights, check_resume_config, checkpoint_due,
                                   init_weights_, kept_checkpoint, load_training_checkpoint, restore_training_state,
                                   resumed_config, save_checkpoint, save_training_checkpoint)
from .training.distributed import DistributedContext, init_distributed, resolve_device
from .training.held_out import write_held_out
from .training.optim import build_optimizer, build_scheduler, optimizer_step
from .training.real_views import add_real_view_arguments, real_views_from_args, start_real_views
from .training.recipes import (  # re-exported: the recipes, presets and configs live in learned.training.recipes
    OPTIMIZER_NAMES, PRESETS, RECIPES, AugmentConfig, LossConfig, OptimizerConfig, Recipe, ScheduleConfig, TrainConfig,
    _plain, add_recipe_arguments, config_from_args, describe_recipe, make_config, model_family, warn_paper_recipe_on_cpu)
from .training.run_log import CsvLog, write_plot
from .training.sampling import derive_seed, recipe_dataset, step_loader, to_device
from .training.step import TrainingStep, logged_values

__all__ = [*_recipes.__all__, "train", "TrainResult", "TrainingInterrupted", "main"]  # the recipes' names re-exported

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
        real = start_real_views(config.real_views, trainer, log if ctx.is_main else None)
    optimizer = build_optimizer(trainer.parameters(), recipe.optimizer)
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.steps)
    use_amp = bool(config.amp and recipe.amp and device.type == "cuda")
    amp_dtype = precision_amp_dtype(device) if use_amp else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_step = 0
    if state is not None:
        start_step = restore_training_state(state, trainer, optimizer, scheduler, scaler, recipe.steps, recipe.schedule,
                                            ckpt_path, log if ctx.is_main else None)

    step_module: nn.Module = trainer
    if ctx.enabled:
        step_module = nn.parallel.DistributedDataParallel(
            trainer, device_ids=[device.index] if device.type == "cuda" else None)

    if train_dataset is None:
        train_dataset = recipe_dataset(config.data, "train", crop=recipe.crop, augment=recipe.augment, seed=config.seed)
    loader = step_loader(train_dataset, recipe.batch_size, config.seed, start_step, recipe.steps, ctx,
                         config.num_workers, pin_memory=device.type == "cuda")

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
            names, values = logged_values(terms, batch, ctx)
            if not bool(torch.isfinite(values[0])):
                raise FloatingPointError(f"non-finite loss {float(values[0])} at step {step}; stopped; "
                                         f"{kept_checkpoint(ckpt_path, last_saved)}")
            lr = optimizer_step(terms["total"], optimizer, scheduler, scaler, trainer.parameters(),
                                recipe.optimizer.grad_clip_norm)
            done = step
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
                check_finite_weights(trainer, step, ckpt_path, last_saved)
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
            evaluation = write_held_out(trainer.model, config, eval_dataset, device, time.perf_counter() - t0,
                                        out / EVAL_NAME, log)
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
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (0)")
    p.add_argument("--eval-images", type=int, default=None, help="score N held-out test images at the end")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of torch (torch.set_num_threads); default 1 for a new run (the same results on "
                   "every machine, and fastest on one shared with other jobs: OpenMP threads spin-wait when a core "
                   "is busy), and the run's own count on --resume (bit-exact continuation)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from these weights: a model.pt of learned.train, or pretrained:NAME (learned.pretrained)")
    add_recipe_arguments(p)
    add_checkpoint_arguments(p)
    add_real_view_arguments(p)
    cli.add_overwrite_argument(p, "the outputs of an earlier run in --out (a new run, not --resume)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    check_threads(args.threads)
    if args.device != "auto":
        check_device(args.device)
    threads = args.threads or 1
    created = False
    if args.resume:
        if args.out is None:
            parser.error("argument --resume: expected --out DIR (the folder holding checkpoint.pt); got no --out")
        config, threads = resumed_config(args, Path(args.out) / CHECKPOINT_NAME, parser.error)
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
    warn_paper_recipe_on_cpu(config)
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
    return config_from_args(args, real_views_from_args(args))


if __name__ == "__main__":
    sys.exit(cli.run(main))
