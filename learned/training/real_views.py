r"""Unlabelled real dual-pixel captures for self-supervised fine-tuning with the reblur loss.

The training signal of issue 26: a real capture's two views, with no ground truth. The physics
(:func:`optics.dual_pixel.deblur.dual_pixel_deblur`, through the same reading path and defaults as
``learned.evaluate --baseline dual_pixel``: :func:`learned.baseline.dual_pixel_row`) gives each
scene a sharp estimate :math:`P` and a signed defocus map :math:`D`. A network :math:`f` that
refines the estimate (``dp_refine``) or deblurs the views (``kpac_dual``) is asked that its output
:math:`\hat x` give back both views through the calibrated PSF grid of the physics:

.. math:: \mathcal{L}_\text{reblur} = \tfrac12 \sum_{v \in \{L, R\}}
          \rho\!\left(\sum_i K_{v,i} * (w_i(D + b)\, \hat x) - v\right),

the layered forward model of :mod:`learned.training.reblur` (layers summed, no occlusion: the
map is continuous), :math:`b` the deblur's ``scale_bias`` (the map the physics deconvolved with,
the least-loss point measured by ``benchmarks.reblur_map_check``), :math:`\rho` Charbonnier, the
outer ``border`` pixels of each crop left out (their blur reaches outside the crop).

The map is held from the physics, not learned: a learned map could drift to a shortcut (scale 0,
where a blurred estimate satisfies both views), and the reblur loss separates maps only 0.2 scale
units apart (``benchmarks.reblur_map_check``), so it cannot teach the map's fine structure.

Rules of the real data (DEVELOPERS.md): only the **views** of the listed scenes are read for
training (the records are stripped of their ground truth before anything is loaded); the ground
truth is read only by :meth:`RealViewCrops.monitor`, which scores and never trains.

References
----------
.. [1] Y. Yang, L. Pan, L. Liu, M. Liu, "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel
   Defocus Deblurring", CVPR 2023, Eq. 1-5 and the reblurring regularisation (``../shared/papers/002_*``).
.. [2] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single Image
   Defocus Deblurring", CVPR 2021, Sec. 3.3 (the reblurring loss; ``../shared/papers/003_*``).
.. [3] S. Xin, N. Wadhwa, T. Xue et al., "Defocus Map Estimation and Deblurring from a Single
   Dual-Pixel Image", ICCV 2021 (the data and the per-image optimisation this amortises).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..models import PHYSICS_INPUT
from .reblur import ReblurPSFs, reblur_loss
from .recipes import TUNING_SCENES, RealViewsConfig, check_real_view_model

__all__ = ["RealViewCrops", "real_view_output", "real_view_loss", "TUNING_SCENES", "RealViewsConfig",
           "add_real_view_arguments", "real_views_from_args", "start_real_views"]

log = logging.getLogger(__name__)

def _scene_number(name: str) -> str:
    return name[:3]


class RealViewCrops:
    """The views, physics estimate and defocus map of real training scenes, cut into random crops.

    Parameters
    ----------
    config : RealViewsConfig
    dataset : FileDataset
        The reader of ``config.data`` (``learned.data.build_dataset(config.data, 'test')``).
    physics : DualPixelBaseline
        The physics of every entry point (``learned.baseline.dual_pixel_row(config.data)``).

    The physics of each scene is computed once, here (about 7 s a scene on one core); the
    crops are drawn by :meth:`sample` from a generator seeded by the run's seed and the step,
    so a resumed run draws the same crops. Views are raw planes (the ``pixeldp`` reader
    replicates one plane over three channels); one plane is kept.
    """

    def __init__(self, config: RealViewsConfig, dataset: Any, physics: Any) -> None:
        from optics.dual_pixel.deblur import DEFAULT_SCALES, DEFAULTS, DualPixelPSFGrid

        self.config = config
        names = {_scene_number(dataset.sample_name(i)): i for i in range(len(dataset))}
        missing = [s for s in config.scenes if s not in names]
        if missing:
            raise ValueError(f"real_views data {config.data!r}: no scene {', '.join(missing)} (it has "
                             f"{', '.join(sorted(names)) or 'none'})")
        self._dataset = dataset  # read only by monitor(), for the ground truth
        self._truth: Dict[str, np.ndarray] = {}  # monitor()'s windows of it
        self._index = {s: names[s] for s in config.scenes}
        # the training reads views only: a copy of the reader whose records have no ground truth
        self._views = copy.copy(dataset)
        self._views.records = [dataclasses.replace(r, target=None) for r in dataset.records]
        row = physics
        self.physics_label = row.label()
        self.scenes: Dict[str, Dict[str, np.ndarray]] = {}
        grid = None
        start = time.perf_counter()
        for s in config.scenes:
            arrays = self._load_views(self._index[s])
            estimate = row(arrays)  # as learned.baseline.add_physics
            planes = {"left": arrays["left"][:, :, 0], "right": arrays["right"][:, :, 0], "physics": estimate[:, :, 0],
                      "defocus": row.last.defocus, "reblur_defocus": row.last.layers}  # the map it deconvolved with
            self.scenes[s] = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in planes.items()}
            placed = row.placed(arrays["left"].shape[:2])
            placed = getattr(placed, "grid", placed)  # a source placed in the sensor frame holds its grid
            if not isinstance(placed, DualPixelPSFGrid):
                raise ValueError(f"real_views data {config.data!r}: the reblur loss needs a calibrated PSF grid "
                                 f"(the calibration folder beside the views); the physics used {row.label()}")
            if grid is None:
                grid, self.shape = placed, arrays["left"].shape[:2]
            elif arrays["left"].shape[:2] != self.shape:
                raise ValueError(f"real_views scenes must share one frame size; got {self.shape} and "
                                 f"{arrays['left'].shape[:2]} (scene {s})")
            log.info("real views: scene %s, physics in %.1f s", s, row.seconds[-1])
        options = {**DEFAULTS, **dict(row.options)}
        self.scales = np.asarray(options.get("scales", DEFAULT_SCALES), dtype=np.float64)
        self.psfs = ReblurPSFs.from_grid(grid, self.scales)
        side = config.crop + 2 * config.border
        if side > min(self.shape):
            raise ValueError(f"real_views crop + 2 * border = {side} px exceeds the {self.shape[0]}x{self.shape[1]} views")
        self.seconds = time.perf_counter() - start

    def _load_views(self, index: int) -> Dict[str, np.ndarray]:
        arrays = self._views.load(index)
        if "target" in arrays:  # pragma: no cover - the records carry no ground truth
            raise RuntimeError("real_views: a training scene was read with its ground truth")
        return arrays

    def sample(self, seed: int, step: int, device: torch.device | str = "cpu") -> List[Dict[str, Any]]:
        """``batch_size`` random crops for ``step`` of a run seeded ``seed`` (deterministic).

        Each is a dict of (1, 3, S, S) ``left``, ``right``, ``physics``, (1, 1, S, S) ``defocus``
        (the physics' map) and ``reblur_defocus`` (the map the physics deconvolved with, ``res.layers``: its
        map moved by the source's ``scale_bias`` towards 0, never across it, inside the scales), and ``offset`` (row, col) in the frame, S = crop + 2 * border.
        """
        rng = np.random.default_rng([int(seed), int(step), 26])
        side = self.config.crop + 2 * self.config.border
        H, W = self.shape
        out = []
        for _ in range(self.config.batch_size):
            scene = self.config.scenes[int(rng.integers(len(self.config.scenes)))]
            y0, x0 = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
            win = (slice(y0, y0 + side), slice(x0, x0 + side))
            arrays = self.scenes[scene]
            t = {k: torch.from_numpy(np.ascontiguousarray(arrays[k][win]))[None, None].to(device)
                 for k in ("left", "right", "physics", "defocus", "reblur_defocus")}
            sample = {k: t[k].expand(1, 3, side, side) for k in ("left", "right", "physics")}
            sample["defocus"] = t["defocus"]
            sample["reblur_defocus"] = t["reblur_defocus"]
            sample["offset"] = (y0, x0)
            sample["scene"] = scene
            out.append(sample)
        return out

    def monitor(self, model: nn.Module, model_name: str) -> Dict[str, float]:
        """Mean PSNR gain (dB) over the physics of ``model`` on the central ``monitor_size`` window (or the
        whole frame where it is smaller) of each training scene, scored against its ground truth (read here only; logged, not trained on)."""
        n = self.config.monitor_size
        gains = []
        was_training = model.training
        model.eval()
        try:
            for s in self.config.scenes:
                a = self.scenes[s]
                H, W = a["left"].shape
                ny, nx = min(n, H), min(n, W)  # the centre, or the whole frame where it is smaller
                y0, x0 = (H - ny) // 2, (W - nx) // 2
                win = (slice(y0, y0 + ny), slice(x0, x0 + nx))
                if s not in self._truth:  # read once: the reader decodes and corrects the whole capture
                    self._truth[s] = self._dataset.load(self._index[s])["target"][win][:, :, 0].astype(np.float64)
                t = {k: torch.from_numpy(np.ascontiguousarray(a[k][win]))[None, None]
                     for k in ("left", "right", "physics", "defocus")}
                sample = {k: t[k].expand(1, 3, ny, nx) for k in ("left", "right", "physics")}
                sample["defocus"] = t["defocus"]
                dev = next(model.parameters()).device
                with torch.no_grad():
                    out = real_view_output(model, model_name, {k: v.to(dev) for k, v in sample.items()})
                x = out[0].float().mean(0).clamp(0, 1).cpu().numpy().astype(np.float64)
                ref = self._truth[s]
                psnr = lambda e: 10 * np.log10(1.0 / max(float(np.mean((e - ref) ** 2)), 1e-12))
                gains.append(psnr(x) - psnr(np.clip(a["physics"][win], 0, 1)))
        finally:
            model.train(was_training)
        return {"real_gain_db": float(np.mean(gains))}


def real_view_output(model: nn.Module, model_name: str, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The network's estimate (1, 3, S, S) for one real crop (``dp_refine``: views, physics, map;
    ``kpac_dual``: views and their mean)."""
    check_real_view_model(model_name)
    if model_name in PHYSICS_INPUT:
        return model(sample["left"], sample["right"], sample["physics"], sample["defocus"])
    return model(sample["left"], sample["right"], 0.5 * (sample["left"] + sample["right"]))


def real_view_loss(model: nn.Module, model_name: str, samples: Sequence[Mapping[str, Any]], psfs: ReblurPSFs,
                   config: RealViewsConfig) -> torch.Tensor:
    """Mean reblur loss (module Notes) of the network's estimates over ``samples`` (from :meth:`RealViewCrops.sample`)."""
    total = None
    for sample in samples:
        x = real_view_output(model, model_name, sample).mean(1, keepdim=True)  # one raw plane
        left, right = sample["left"][:, :1], sample["right"][:, :1]
        loss = reblur_loss(x, sample["reblur_defocus"].to(x.dtype), left.to(x.dtype), right.to(x.dtype), psfs,
                           occlusion=False, border=config.border, offset=tuple(sample["offset"]),
                           penalty=config.penalty)
        total = loss if total is None else total + loss
    return total / len(samples)


# ==================================================================================================
# learned.train: the real-view flags and the run's crops
# ==================================================================================================
def add_real_view_arguments(parser) -> None:
    """``learned.train``'s ``--real-views`` and ``--real-*`` flags (:data:`~learned.training.recipes.CLI_FLAGS`)."""
    real = parser.add_argument_group("self-supervised real views (dp_refine, kpac_dual; learned.training.real_views)")
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


def real_views_from_args(args) -> RealViewsConfig | None:
    """The :class:`RealViewsConfig` of parsed ``learned.train`` flags (None without ``--real-views``); a bad
    value is a usage error (one line naming the flag)."""
    from optics import cli

    from .recipes import real_views_from_cli

    try:
        return real_views_from_cli(args.real_views, scenes=args.real_scenes, weight=args.real_weight,
                                   batch_size=args.real_batch, crop=args.real_crop,
                                   monitor_every=args.real_monitor_every)
    except ValueError as err:
        cli.usage_error(str(err))


def start_real_views(config: RealViewsConfig, trainer: nn.Module, run_log: logging.Logger | None) -> RealViewCrops:
    """The crops of a training run, read and deblurred as ``learned.evaluate`` does; the trainer's reblur term
    gets their PSFs. ``run_log``: where the summary line goes (None: nowhere, e.g. on ranks > 0)."""
    from ..baseline import dual_pixel_row
    from ..data import build_dataset

    real = RealViewCrops(config, build_dataset(config.data, "test", crop=None, augment=False), dual_pixel_row(config.data))
    trainer.real_psfs, trainer.real_config = real.psfs, config
    if run_log is not None:
        run_log.info("real views: scenes %s of %s (physics %s, %.0f s), reblur weight %g, %d crops of %d px a step",
                     ", ".join(config.scenes), config.data, real.physics_label, real.seconds, config.weight,
                     config.batch_size, config.crop)
    return real
