"""Load the authors' released checkpoints (IFAN ``.pytorch``, NRKNet ``.pth``, KPAC ``.npz``) and ours.

Every load is strict: a missing, unexpected or mis-shaped tensor raises ``ValueError`` naming it.
PyTorch files are read with ``torch.load(..., weights_only=True)``, so a pickle that tries to run
code is refused. KPAC's ``.npz`` holds a pickled object array; it is read by a restricted unpickler
that only rebuilds NumPy arrays (:func:`read_kpac_npz`).

A training run's checkpoint (:func:`save_training_checkpoint`, :func:`load_training_checkpoint`) is
one of ours plus a ``training`` entry: optimiser, scheduler, AMP scaler, training-only networks
(IFAN's reblurring network), RNG states, step and configuration, everything :mod:`learned.train`
needs to resume; its resumption may change only :data:`RESUMABLE_CHANGES` (:func:`check_resume_config`).
It is written atomically (temporary file + ``os.replace``); it is also a valid :func:`load_checkpoint`
file (format ``defocus-toolkit/1`` plus the ``training`` entry), and loads with
``torch.load(weights_only=True)``: every RNG state is stored as tensors and lists, nothing is
pickled as an object.

Bit-exact resumption on CPU needs the same number of CPU threads (the summation order of the
convolutions depends on it): the checkpoint stores it, ``learned.train --resume`` reuses it
(:func:`resumed_config`), and a different ``--threads`` is accepted with a warning. ``--resume
--steps N`` with a larger ``N`` continues on the LR schedule of an N-step run
(:func:`~learned.training.optim.reschedule`), which differs from an uninterrupted N-step run only in
the steps already taken.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from optics.cli import one_line

from .._safe_pickle import NumpyOnlyUnpickler as _NumpyOnlyUnpickler  # moved; the old name kept
from ..data.io import atomic_save
from .recipes import _plain
from .sampling import rng_state

if TYPE_CHECKING:
    from .recipes import TrainConfig
    from .step import TrainingStep

__all__ = [
    "init_weights_",
    "load_any_checkpoint",
    "OFFICIAL_FORMATS",
    "load_official_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "load_state_dict_strict",
    "read_kpac_npz",
    "kpac_params_from_model",
    "TRAIN_FORMAT",
    "load_training_checkpoint",
    "save_training_checkpoint",
    "RESUMABLE_CHANGES",
    "check_resume_config",
    "checkpoint_due",
    "restore_training_state",
    "kept_checkpoint",
    "check_finite_weights",
    "add_checkpoint_arguments",
    "resumed_config",
]

log = logging.getLogger(__name__)

#: Models with released weights, and the file format of each.
OFFICIAL_FORMATS = {
    "ifan": "IFAN .pytorch state dict (keys 'module.Network.*')",
    "ifan_dual": "IFAN .pytorch state dict (keys 'module.Network.*')",
    "nrknet": "NRKNet .pth state dict (no prefix)",
    "kpac": "KPAC .npz (params = list of arrays in creation order)",
    "kpac_2level": "KPAC .npz (params = list of arrays in creation order)",
    "kpac_dual": "KPAC .npz (params = list of arrays in creation order)",
}


def _torch_load(path: Path) -> dict:
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ValueError(f"cannot read {str(path)!r} as a PyTorch checkpoint: the file is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        noise = ("Weights only load failed", "Re-running", "Check the documentation", "Please file an issue", "In PyTorch 2.6")
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and not any(n in ln for n in noise)]
        detail = lines[0].replace("WeightsUnpickler error: ", "") if lines else type(err).__name__
        raise ValueError(
            f"refused to load {str(path)!r}: it is not a plain state dict of tensors (loaded with "
            f"weights_only=True, which never runs code from the file): {detail}"
        ) from err
    except (RuntimeError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"cannot read {str(path)!r} as a PyTorch checkpoint: "
                         f"{one_line(err) or type(err).__name__}") from err
    if not isinstance(obj, Mapping):
        raise ValueError(f"{str(path)!r} must hold a state dict (a mapping); got {type(obj).__name__}")
    return dict(obj)


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state`` into ``model``; raise ``ValueError`` naming every missing, unexpected or mis-shaped tensor."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if misshaped:
        problems.append(f"mis-shaped {len(misshaped)}: {misshaped[:8]}")
    if not_tensors:
        problems.append(f"not tensors: {not_tensors[:8]}")
    if problems:
        raise ValueError(f"{source} does not match {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def _strip_ifan_prefixes(state: dict) -> dict:
    """Drop DataParallel/DDP ``module.`` and ``Network.`` prefixes; ignore ``reblurNet.`` keys (logged)."""
    out, ignored = {}, []
    for key, value in state.items():
        k = key
        while k.startswith("module."):
            k = k[len("module.") :]
        if k.startswith("reblurNet."):
            ignored.append(key)
            continue
        if k.startswith("Network."):
            k = k[len("Network.") :]
        if k in out:
            raise ValueError(f"checkpoint has two tensors for {k!r} after removing prefixes (one is {key!r})")
        out[k] = value
    if ignored:
        log.info("ignored %d keys of the training-only reblurring network (reblurNet.*)", len(ignored))
    return out


def _is_torch_archive(path: Path) -> bool:
    """True for a ``torch.save`` zip archive (it holds ``<name>/data.pkl``; an ``.npz`` holds ``.npy`` files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/data.pkl") or n == "data.pkl" for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_official_checkpoint(model_name: str, path: str | Path) -> nn.Module:
    """Build ``model_name`` and load the authors' released weights from ``path``; return it in eval mode.

    Parameters
    ----------
    model_name : str
        One of :data:`OFFICIAL_FORMATS` ('ifan', 'ifan_dual', 'nrknet', 'kpac', 'kpac_2level',
        'kpac_dual').
    path : path-like
        IFAN ``.pytorch`` (keys with ``module.`` and/or ``Network.`` prefixes; ``reblurNet.`` keys
        of the training-only reblurring network are ignored with a logged note; the IAC
        bug-compatibility option is switched on), NRKNet ``.pth`` (no prefix; BGR handled inside)
        or KPAC ``.npz`` (TensorFlow layout, see :func:`learned.models.kpac.load_tensorflow_params`).

    Returns
    -------
    torch.nn.Module
        In eval mode, taking and returning RGB in [0, 1] like every model of the zoo.
    """
    from ..models import build_model

    if model_name not in OFFICIAL_FORMATS:
        raise ValueError(
            f"model_name must be one with released weights, {sorted(OFFICIAL_FORMATS)}; got {model_name!r}"
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if _is_torch_archive(path) and is_toolkit_checkpoint(state := _torch_load(path)):
        raise ValueError(f"checkpoint {str(path)!r} is one of this toolkit's checkpoints (model "
                         f"{state.get('model')!r}), not the authors' format: drop --official "
                         "(in Python: learned.load_checkpoint)")
    if model_name.startswith("kpac"):
        from ..models.kpac import load_tensorflow_params

        model = build_model(model_name)
        load_tensorflow_params(model, read_kpac_npz(path))
        return model.eval()
    state = _torch_load(path)
    if model_name.startswith("ifan"):
        model = build_model(model_name, reuse_vertical_kernel=True)
        state = _strip_ifan_prefixes(state)
    else:
        model = build_model(model_name)
        state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    load_state_dict_strict(model, state, f"checkpoint {path.name!r}")
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Our own format: {"model": name, "config": {...}, "state_dict": {...}}, weights-only loadable.
# --------------------------------------------------------------------------------------------------
def save_checkpoint(model: nn.Module, model_name: str, path: str | Path, config: Mapping | None = None) -> None:
    """Save ``model``'s weights with its name and constructor overrides, atomically, weights-only loadable."""
    payload = {"format": "defocus-toolkit/1", "model": model_name, "config": dict(config or {}),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    atomic_save(payload, path)


def is_toolkit_checkpoint(obj: Mapping) -> bool:
    return obj.get("format") == "defocus-toolkit/1" and "state_dict" in obj


def load_checkpoint(path: str | Path, model_name: str | None = None) -> nn.Module:
    """Load a checkpoint written by :func:`save_checkpoint` (or ``python -m learned.convert``)."""
    from ..models import build_model

    path = Path(path)
    obj = _torch_load(path)
    if not is_toolkit_checkpoint(obj):
        raise ValueError(
            f"{str(path)!r} is not a defocus-toolkit checkpoint; for the authors' files use "
            "load_official_checkpoint(model_name, path)"
        )
    name = obj["model"]
    if model_name is not None and model_name != name:
        raise ValueError(f"checkpoint {path.name!r} holds model {name!r}, not {model_name!r}")
    model = build_model(name, **obj["config"])
    load_state_dict_strict(model, obj["state_dict"], f"checkpoint {path.name!r}")
    return model.eval()


def init_weights_(model: nn.Module, model_name: str, path: str | Path, label: str | None = None) -> None:
    """Load the weights of the toolkit checkpoint ``path`` into ``model`` in place (a run's ``--init``).

    ``path`` is a ``model.pt`` of ``learned.train`` (or ``python -m learned.convert``'s output, or
    bundled weights); ``label`` names it in errors (default: the path). The checkpoint must hold
    ``model_name`` with the same constructor arguments: every tensor is loaded strictly.
    """
    label = str(path) if label is None else label
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init {label!r}: expected a model.pt of learned.train or 'pretrained:NAME'; "
                                "no such file")
    obj = _torch_load(path)
    if not is_toolkit_checkpoint(obj):
        raise ValueError(f"init {label!r}: not a defocus-toolkit checkpoint (a model.pt of learned.train)")
    if obj["model"] != model_name:
        raise ValueError(f"init {label!r}: holds model {obj['model']!r}, not {model_name!r}")
    load_state_dict_strict(model, obj["state_dict"], f"init {label!r}")


# --------------------------------------------------------------------------------------------------
# A training run's checkpoint: ours plus a "training" entry (learned.train saves and resumes it).
# --------------------------------------------------------------------------------------------------
TRAIN_FORMAT = "defocus-toolkit-train/1"


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


def save_training_checkpoint(path: Path, step: int, config: TrainConfig, trainer: TrainingStep,
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
            "rng": rng_state(),
            "sampler": {"seed": int(config.seed), "next_step": int(step) + 1},
            "threads": int(torch.get_num_threads()),  # resuming bit-exactly needs the same count
        },
    }
    atomic_save(payload, path)


#: Config fields that may differ between a run and its resumption.
RESUMABLE_CHANGES = {"steps", "device", "num_workers", "progress", "out", "checkpoint_every", "checkpoint_minutes",
                     "eval_images"}


def check_resume_config(stored: TrainConfig, current: TrainConfig) -> None:
    a, b = stored.to_dict(), current.to_dict()
    a_recipe, b_recipe = a.pop("recipe"), b.pop("recipe")
    a_recipe.pop("steps"), b_recipe.pop("steps")
    diffs = [f"{k}: checkpoint {a[k]!r} vs now {b[k]!r}" for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]]
    diffs += [f"recipe.{k}: checkpoint {a_recipe[k]!r} vs now {b_recipe[k]!r}" for k in a_recipe if a_recipe[k] != b_recipe[k]]
    if diffs:
        raise ValueError("cannot resume with a different configuration (only steps, device, num_workers, "
                         "checkpoint_every, checkpoint_minutes, eval_images may change): " + "; ".join(diffs))


def checkpoint_due(minutes: float, since: float, ctx, device: torch.device) -> bool:
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


def kept_checkpoint(checkpoint: Path, last_saved: int | None) -> str:
    """What a stopped run keeps: the last good checkpoint and its step, or that none was written yet."""
    return (f"last good checkpoint {str(checkpoint)!r} (step {last_saved}) kept" if last_saved is not None
            else "no checkpoint had been written yet")


def check_finite_weights(model: nn.Module, step: int, checkpoint: Path, last_saved: int | None) -> None:
    """Raise FloatingPointError before a save if a weight is not finite (a finite loss with non-finite gradients
    poisons the weights: never save those)."""
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise FloatingPointError(f"non-finite weights after step {step} ({bad[:3]}); stopped; "
                                 f"{kept_checkpoint(checkpoint, last_saved)}")


def restore_training_state(state: dict, trainer: TrainingStep, optimizer, scheduler, scaler, steps: int,
                           schedule, source: Path, run_log: logging.Logger | None) -> int:
    """Load a training checkpoint's ``state`` (:func:`load_training_checkpoint`) into a run: weights, training-only
    networks, optimiser, LR scheduler (re-planned over ``steps`` when the run planned others,
    :func:`~learned.training.optim.reschedule`), AMP scaler and RNG states. Returns the step it is at.
    ``run_log``: where the messages go (None: nowhere, e.g. on ranks > 0)."""
    from .optim import reschedule
    from .sampling import set_rng_state

    t = state["training"]
    load_state_dict_strict(trainer.model, state["state_dict"], f"checkpoint {source.name!r}")
    load_state_dict_strict(trainer.auxiliary, t["auxiliary"], f"checkpoint {source.name!r} (auxiliary)")
    optimizer.load_state_dict(t["optimizer"])
    scheduler.load_state_dict(t["scheduler"])
    if t["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(t["scaler"])
    set_rng_state(t["rng"])
    start_step = int(t["step"])
    if start_step >= steps:
        raise ValueError(f"checkpoint is at step {start_step}; pass --steps > {start_step} to train further")
    planned = int(t["train_config"]["recipe"]["steps"])
    if planned != steps:
        lr = reschedule(scheduler, schedule, steps, start_step)
        if run_log is not None:
            run_log.info("the LR schedule now runs over %d steps (the checkpoint's run planned %d): LR %.3g at step %d",
                         steps, planned, lr, start_step + 1)
    if run_log is not None:
        run_log.info("resumed %s at step %d", source, start_step)
    return start_step


# --------------------------------------------------------------------------------------------------
# learned.train's checkpoint flags: --resume, --checkpoint-every, --checkpoint-minutes
# --------------------------------------------------------------------------------------------------
def add_checkpoint_arguments(parser) -> None:
    """``learned.train``'s flags of checkpoints and resuming."""
    g = parser.add_argument_group("checkpoints and resuming (learned.training.checkpoints)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    g.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (1000)")
    g.add_argument("--checkpoint-minutes", type=_minutes, default=None, metavar="M",
                   help="also save a checkpoint after M minutes without one (default 10; 0: by steps only)")


def _minutes(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes >= 0; got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected >= 0; got {value}")
    return value


def resumed_config(args, checkpoint: Path, error) -> tuple:
    """``learned.train --resume``: the stored run's :class:`~learned.training.recipes.TrainConfig` with what may
    change (:data:`RESUMABLE_CHANGES`) taken from the flags, and the CPU thread count to run with (the run's own
    unless ``--threads`` says otherwise: the same summation order continues bit-exactly). ``error``: the parser's
    error (one line, exit 2) for a flag that may not change."""
    from dataclasses import replace

    from optics import cli

    from .recipes import TrainConfig, parse_model_args

    training = load_training_checkpoint(checkpoint)["training"]
    stored = TrainConfig.from_dict(training["train_config"])
    done = int(training["step"])
    stored_threads = training.get("threads")
    threads = args.threads or 1
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
    model_args = parse_model_args(args.model_arg)
    if model_args and model_args != dict(stored.model_overrides):
        clash.append(f"--model-arg {model_args!r} (checkpoint: {dict(stored.model_overrides)!r})")
    if clash:
        error("cannot change these when resuming: " + ", ".join(clash))
    recipe = replace(stored.recipe, steps=args.steps or stored.recipe.steps)
    config = replace(stored, recipe=recipe, out=args.out, device=args.device, num_workers=args.num_workers,
                     progress=not args.no_progress,
                     checkpoint_every=args.checkpoint_every or stored.checkpoint_every,
                     checkpoint_minutes=(stored.checkpoint_minutes if args.checkpoint_minutes is None
                                         else args.checkpoint_minutes),
                     eval_images=stored.eval_images if args.eval_images is None else args.eval_images)
    return config, threads


# --------------------------------------------------------------------------------------------------
# KPAC .npz (TensorFlow 1.x): np.savez(params=[...]) of arrays of different shapes = object array.
# --------------------------------------------------------------------------------------------------
def read_kpac_npz(path: str | Path) -> list[np.ndarray]:
    """Read the ``params`` list of a KPAC ``.npz`` without executing arbitrary pickled code."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{str(path)!r} is not an .npz archive: {err}") from err
    with archive:
        names = archive.namelist()
        if "params.npy" not in names:
            raise ValueError(f"{str(path)!r} must hold an array 'params' (KPAC layout); found {names}")
        raw = archive.read("params.npy")
    buffer = io.BytesIO(raw)
    version = np.lib.format.read_magic(buffer)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"{str(path)!r}: unsupported .npy format version {version}")
    shape, fortran, dtype = readers[version](buffer)
    if dtype.hasobject:
        try:
            arr = _NumpyOnlyUnpickler(buffer, encoding="latin1").load()
        except pickle.UnpicklingError as err:
            raise ValueError(f"refused to load {str(path)!r}: {err}") from err
        params = list(np.asarray(arr, dtype=object).ravel())
    else:  # all parameters had the same shape: a plain numeric array (K, ...)
        buffer.seek(0)
        params = list(np.lib.format.read_array(buffer, allow_pickle=False))
    bad = [i for i, p in enumerate(params) if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating)]
    if bad:
        raise ValueError(f"{str(path)!r}: params entries {bad[:8]} are not float arrays")
    return params


def kpac_params_from_model(model: nn.Module) -> list[np.ndarray]:
    """Our KPAC weights as the authors' TensorFlow ``params`` list (inverse of ``load_tensorflow_params``).

    Conv weights OIHW -> HWIO and transposed-conv weights [in, out, kh, kw] -> [kh, kw, out, in]
    (the same axis permutation), biases unchanged, in creation order (shared filters once).
    """
    return [
        p.detach().cpu().numpy().transpose(2, 3, 1, 0) if p.ndim == 4 else p.detach().cpu().numpy()
        for _, p in model.named_parameters()
    ]


def load_any_checkpoint(model_name: str, path: Path, official: bool = False) -> nn.Module:
    """Load ``path`` for ``model_name``, detecting whether it is ours or the authors'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if official or path.suffix.lower() == ".npz":
        return load_official_checkpoint(model_name, path)
    if is_toolkit_checkpoint(_torch_load(path)):
        return load_checkpoint(path, model_name)
    return load_official_checkpoint(model_name, path)
