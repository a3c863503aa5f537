"""Held-out evaluation at the end of a training run: mean PSNR of the blurred input and the output."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..models import DUAL_PIXEL, PHYSICS_INPUT

__all__ = ["evaluate_psnr", "write_held_out"]


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


def write_held_out(model: nn.Module, config, dataset: Dataset, device: torch.device, seconds: float, path,
                   run_log) -> dict:
    """``eval.json`` of a training run (``config``: its :class:`~learned.training.recipes.TrainConfig`): the
    held-out PSNR of :func:`evaluate_psnr` over ``config.eval_images`` images, with the run's model, preset,
    steps and ``seconds``; written atomically to ``path``, logged to ``run_log``. Returns it."""
    import json

    from ..data.io import atomic_write_bytes

    evaluation = evaluate_psnr(model, config.model, dataset, device, config.eval_images)
    evaluation.update(model=config.model, preset=config.preset, steps=config.recipe.steps, seconds=round(seconds, 1))
    atomic_write_bytes(path, json.dumps(evaluation, indent=2).encode())
    run_log.info("held-out PSNR over %d images: input %.2f dB, output %.2f dB (%+.2f dB)",
                 evaluation["images"], evaluation["input_psnr"], evaluation["output_psnr"], evaluation["gain_db"])
    return evaluation
