"""Training recipes, presets and typed configurations of :mod:`learned.train`.

Each paper's recipe (:data:`RECIPES`), the presets that change it (:data:`PRESETS`) and the typed
dataclass configurations a run is made of (:class:`TrainConfig`, :func:`make_config`). The loop
that runs them is :func:`learned.train.train`; every name here is also importable from
:mod:`learned.train`.

Recipes (:data:`RECIPES`, the default of each family; 256x256 crops, flips and rot90)
-----------------------------------------------------------------------------------------
=======  ==========================================================  ==============================
family   loss (:mod:`learned.training.losses`)                        optimiser, batch, schedule
=======  ==========================================================  ==============================
KPAC     MSE                                                          Adam 1e-4, batch 8
IFAN     MSE + disparity loss (right view warped by the 1/8           RAdam 1e-4, decoupled wd 0.01,
         disparity onto the left, ``grid_sample``) + reblurring       grad-norm clip 0.5, batch 8,
         loss through :class:`learned.models.IFANReblurNetwork`       600k steps, x0.5 at 500k, 550k;
         (weights 1, 1, 1)                                            noise/grayscale/rescale aug.
NRKNet   Eq. 12-14: scale weights 1/.75/.5/.25 on MSE + 0.1 FFT-L1,   Adam 1e-4, batch 4, x0.5 at 1/2
         + 0.1 x reblurring loss ``||D_t(X_t) - Y_t||^2``             and 3/4 of the run
K3DN     Eq. 18: MSE(I_hat, I) + 0.1 MSE(B_hat, (B_L + B_R) / 2)      AdamW 3e-4, batch 4
=======  ==========================================================  ==============================

Losses that need dual-pixel views (IFAN's disparity loss) are skipped with a logged message when
the data has none; models that take dual-pixel input (``kpac_dual``, ``ifan_dual``, ``k3dn_*``)
refuse such data. The ``source`` field of each recipe says where its numbers come from.

Presets (:data:`PRESETS`)
-------------------------
``paper`` (default): the recipe as above (the authors' initialisation; no identity start).

``cpu-smoke``, a smoke test whose target is a gain > 0 dB over the blurred input on the held-out
synthetic split, averaged over 3 seeds: reduced widths (KPAC base 16, IFAN base 8 with 4 IAC
iterations, NRKNet base 16, K3DN widths (8, 16, 32)), 64x64 crops (48 for NRKNet) of 128x128
training scenes, half of them photo-textured and half of them nearly in focus
(``synthetic:size=128,photo_fraction=0.5,in_focus_fraction=0.5``; 128 is the test scenes' size,
so leaf sizes relative to the blur match the test split), batch 4, LR 1e-3 with cosine decay to 0,
600-2000 steps, IFAN and NRKNet from their identity-preserving starts (:mod:`learned.models.warmstart`),
NRKNet's BatchNorm on each image's statistics at test time (``batchnorm_stats='batch'``, as the
authors' ``test.py`` runs it), scored on the 16 held-out synthetic test images at the end
(``eval.json``). ``python -m learned.train`` uses one torch thread unless ``--threads N`` (OpenMP
threads spin-wait for a busy core, so more threads on a machine shared with other jobs run far
slower). Measured per family and seed in ``docs/training.md`` (``python -m benchmarks.training``).

Why the in-focus scenes: the test split holds nearly sharp crops (input 33-37 dB) where any change
costs several dB, while the MSE of a batch is dominated by its most blurred crops; trained without
them, IFAN and NRKNet sharpened and darkened sharp images and lost on average (README).

``gpu-smoke``: paper widths, batch 16, 64x64 crops of the same scenes, LR 5e-4 with cosine decay,
IFAN and NRKNet started and NRKNet scored as in ``cpu-smoke``; target >= +1 dB for every family
within 5 minutes on one GPU (unmeasured: no GPU was lent when it was written).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from ..models import DUAL_PIXEL, MODELS, PHYSICS_INPUT

__all__ = [
    "OptimizerConfig",
    "ScheduleConfig",
    "LossConfig",
    "AugmentConfig",
    "Recipe",
    "TrainConfig",
    "RECIPES",
    "PRESETS",
    "OPTIMIZER_NAMES",
    "model_family",
    "make_config",
    "describe_recipe",
]

#: Optimiser names of :class:`OptimizerConfig` (``torch.optim`` Adam, RAdam, AdamW).
OPTIMIZER_NAMES = ("adam", "radam", "adamw")


# ==================================================================================================
# Configuration
# ==================================================================================================
@dataclass(frozen=True)
class OptimizerConfig:
    """Optimiser: ``name`` in {'adam', 'radam', 'adamw'} (``torch.optim``), learning rate, betas,
    weight decay, whether it is decoupled (``p -= lr * wd * p``, as AdamW and as the RAdam of
    ``torch_optimizer`` that IFAN's code uses) rather than an L2 term added to the gradient (torch's
    default for Adam and RAdam), and the gradient-norm clip (None: no clipping)."""

    name: str
    lr: float
    betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    grad_clip_norm: Optional[float] = None


@dataclass(frozen=True)
class ScheduleConfig:
    """LR schedule, stepped once per optimisation step.

    ``kind='multistep'`` (the papers'): step decay (``torch.optim.lr_scheduler.MultiStepLR``), the
    LR is multiplied by ``gamma`` at each milestone, given as a fraction of the total number of
    steps (empty: constant LR). ``kind='cosine'``: ``CosineAnnealingLR`` from the recipe's LR down
    to ``final_fraction`` x LR at the last step (``milestones`` and ``gamma`` unused).
    """

    milestones: Tuple[float, ...] = ()
    gamma: float = 0.5
    kind: str = "multistep"
    final_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("multistep", "cosine"):
            raise ValueError(f"schedule kind must be 'multistep' or 'cosine'; got {self.kind!r}")
        if not 0 <= self.final_fraction <= 1:
            raise ValueError(f"final_fraction must lie in [0, 1]; got {self.final_fraction!r}")


@dataclass(frozen=True)
class LossConfig:
    """Loss of a family; unused weights are ignored.

    ``kind``: 'mse' (KPAC), 'ifan' (MSE + ``disparity_weight`` x disparity loss +
    ``reblur_weight`` x reblurring loss), 'nrknet' (Eq. 12-14 with ``scale_weights``,
    ``fft_weight`` = beta, ``reblur_weight`` = alpha), 'k3dn' (Eq. 18, ``reblur_weight`` =
    lambda_1).
    """

    kind: str
    reblur_weight: float = 0.0
    disparity_weight: float = 0.0
    fft_weight: float = 0.0
    scale_weights: Tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation, done by the dataset (:func:`learned.data.build_dataset`): ``flips_rot90``
    is its ``augment`` flag (flips and rotations by 90 degrees; for dual-pixel data only those
    that keep the views horizontal), the other fields its ``ifan_augment``
    (:class:`learned.data.IFANAugmentation`: Gaussian noise with probability ``noise_prob`` and
    sigma ~ U(``noise_sigma``), grayscale with probability ``grayscale_prob``, rescaling by a
    factor ~ U(``rescale_range``) with probability ``rescale_prob``); all probabilities 0 means
    no IFAN augmentation.
    """

    flips_rot90: bool = True
    noise_prob: float = 0.0
    noise_sigma: Tuple[float, float] = (0.001, 0.0707)
    grayscale_prob: float = 0.0
    rescale_prob: float = 0.0
    rescale_range: Tuple[float, float] = (0.7, 1.0)


@dataclass(frozen=True)
class Recipe:
    """A family's training recipe: optimiser, LR schedule, loss, augmentation, batch size
    (per process), crop side, number of steps, whether AMP is allowed on CUDA, the size
    multiple crops must have (the network's padding multiple), where the numbers come from, and
    whether training starts from the identity-preserving initialisation of
    :mod:`learned.models.warmstart` (NRKNet; the architecture and checkpoint keys are unchanged)."""

    optimizer: OptimizerConfig
    loss: LossConfig
    schedule: ScheduleConfig = ScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    batch_size: int = 8
    crop: int = 256
    steps: int = 200_000
    amp: bool = True
    size_multiple: int = 16
    source: str = ""
    identity_start: bool = False


#: Each paper's recipe, the default of its model family.
RECIPES: Dict[str, Recipe] = {
    "kpac": Recipe(
        optimizer=OptimizerConfig("adam", 1e-4),
        loss=LossConfig("mse"),
        batch_size=8,
        steps=200_000,
        size_multiple=8,
        source="KPAC released config: Adam lr 1e-4, batch 8, MSE (no training code released; the "
        "step count is ours).",
    ),
    "ifan": Recipe(
        optimizer=OptimizerConfig("radam", 1e-4, (0.9, 0.999), weight_decay=0.01, decoupled_weight_decay=True,
                                  grad_clip_norm=0.5),
        loss=LossConfig("ifan", reblur_weight=1.0, disparity_weight=1.0),
        schedule=ScheduleConfig(milestones=(500 / 600, 550 / 600), gamma=0.5),
        augment=AugmentConfig(noise_prob=0.05, grayscale_prob=0.3, rescale_prob=0.5),
        batch_size=8,
        steps=600_000,
        size_multiple=8,
        source="IFAN released code: RAdam (torch_optimizer's, decoupled weight decay) 1e-4, wd 0.01, "
        "clip 0.5, 600k iterations, x0.5 at 500k and "
        "550k, batch 8, MSE + disparity + reblurring losses (weight 1 each).",
    ),
    "nrknet": Recipe(
        optimizer=OptimizerConfig("adam", 1e-4),
        loss=LossConfig("nrknet", reblur_weight=0.1, fft_weight=0.1),
        schedule=ScheduleConfig(milestones=(0.5, 0.75), gamma=0.5),
        batch_size=4,
        steps=350_000,
        size_multiple=16,
        source="NRKNet paper Sec. 4.1: Adam 1e-4 fixed for the first half, then x0.5 every quarter "
        "(4000 epochs of DPDD's 350 pairs at batch 4 = 350k steps), batch 4, Eq. 12-14 with "
        "alpha = beta = 0.1.",
    ),
    "k3dn": Recipe(
        optimizer=OptimizerConfig("adamw", 3e-4, weight_decay=0.01),
        loss=LossConfig("k3dn", reblur_weight=0.1),
        batch_size=4,
        steps=200_000,
        size_multiple=8,
        source="K3DN paper Sec. 4: AdamW 3e-4, batch 4; L_deb, L_reb and lambda_1 are in the "
        "unavailable supplementary: MSE, MSE, 0.1 here; weight decay 0.01 is torch's AdamW default; "
        "AMP allowed: its PSF block casts to float32 for the FFTs (learned.precision).",
    ),
    "dp_refine": Recipe(
        optimizer=OptimizerConfig("adam", 1e-3),
        loss=LossConfig("mse"),
        schedule=ScheduleConfig(kind="cosine"),
        batch_size=4,
        crop=128,
        steps=2000,
        size_multiple=4,
        source="The toolkit's own (not a paper's): Adam 1e-3 with cosine decay, batch 4, 128x128 crops, MSE, "
        "on synthetic:sensor=pixel4,physics=on (docs/pixel4_training.md).",
    ),
}


def model_family(name: str) -> str:
    """Family ('kpac', 'ifan', 'nrknet', 'k3dn') of a model name of :data:`learned.MODELS`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    for family in ("kpac", "ifan", "nrknet", "k3dn", "dp_refine"):
        if name.startswith(family):
            return family
    raise ValueError(f"model {name!r} belongs to no known family (kpac, ifan, nrknet, k3dn, dp_refine)")


# --------------------------------------------------------------------------------------------------
# Self-supervised real views (learned.training.real_views)
# --------------------------------------------------------------------------------------------------
#: Xin et al.'s scenes on which everything is tuned and trained (DEVELOPERS.md); 009-017 are held out.
TUNING_SCENES = tuple(f"{i:03d}" for i in range(1, 9))


@dataclass(frozen=True)
class RealViewsConfig:
    """Self-supervised real-view term of a training run (stored in the checkpoint).

    Attributes
    ----------
    data : str
        ``'pixeldp:DIR'``: Xin et al.'s ``DP_data_pixel_4`` folder (its calibration beside the views).
    scenes : tuple of str
        Scene numbers whose views are trained on (default 001-008, the tuning scenes).
    weight : float
        Weight of the reblur loss added to the supervised loss of the step (>= 0).
    batch_size : int
        Real crops per step.
    crop : int
        Side of the crop the loss scores; the network sees ``crop + 2 * border``.
    border : int
        Pixels at each side of the network's crop outside the loss (the blur reaches beyond a crop).
    penalty : {'charbonnier', 'l1'}
    monitor_every : int
        Every this many steps, score the central ``monitor_size`` window of each training scene
        against its ground truth (logged, never trained on); 0: never.
    monitor_size : int
    """

    data: str
    scenes: Tuple[str, ...] = TUNING_SCENES
    weight: float = 1.0
    batch_size: int = 2
    crop: int = 128
    border: int = 16
    penalty: str = "charbonnier"
    monitor_every: int = 0
    monitor_size: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data.lower().startswith("pixeldp:"):
            raise ValueError(f"real_views data must be 'pixeldp:DIR' (Xin et al.'s DP_data_pixel_4); got {self.data!r}")
        scenes = tuple(self.scenes)
        if not scenes or not all(isinstance(s, str) and len(s) == 3 and s.isdigit() for s in scenes):
            raise ValueError(f"real_views scenes must be three-digit scene numbers like '001'; got {self.scenes!r}")
        if len(set(scenes)) != len(scenes):
            raise ValueError(f"real_views scenes must not repeat; got {self.scenes!r}")
        object.__setattr__(self, "scenes", scenes)
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"real_views weight must be a finite number >= 0; got {self.weight!r}")
        for name, low in (("batch_size", 1), ("crop", 16), ("border", 0), ("monitor_every", 0), ("monitor_size", 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"real_views {name} must be an integer >= {low}; got {value!r}")
        if self.penalty not in ("charbonnier", "l1"):  # learned.training.reblur.PENALTIES
            raise ValueError(f"real_views penalty must be one of ('charbonnier', 'l1'); got {self.penalty!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RealViewsConfig":
        d = dict(data)
        d["scenes"] = tuple(d.get("scenes", TUNING_SCENES))
        return cls(**d)


#: ``learned.train``'s flag of each :class:`RealViewsConfig` field it sets.
CLI_FLAGS = {"scenes": "--real-scenes", "weight": "--real-weight", "batch_size": "--real-batch",
             "crop": "--real-crop", "monitor_every": "--real-monitor-every"}


def real_views_from_cli(data: Optional[str], **given: Any) -> Optional[RealViewsConfig]:
    """The :class:`RealViewsConfig` of ``learned.train``'s ``--real-views DATA`` and ``--real-*`` flags
    (``given``: field -> value, None where the flag is absent); None without ``--real-views``.
    Raises ValueError (one line, naming the flag) for a flag without ``--real-views`` or a bad value."""
    set_ = {k: v for k, v in given.items() if v is not None}
    if data is None:
        if set_:
            raise ValueError(f"argument {CLI_FLAGS[next(iter(set_))]}: expected --real-views pixeldp:DIR with it; "
                             "got no --real-views")
        return None
    if "scenes" in set_:
        set_["scenes"] = tuple(set_["scenes"])
    try:
        return RealViewsConfig(data=data, **set_)
    except ValueError as err:
        raise ValueError(f"argument --real-views: {err}") from None


def check_real_view_model(model_name: str) -> None:
    """Raise ValueError unless the reblur term can train ``model_name`` (module Notes)."""
    if not (model_name in PHYSICS_INPUT or (model_family(model_name) == "kpac" and model_name in DUAL_PIXEL)):
        raise ValueError(f"real_views trains dp_refine or a dual-pixel KPAC (the networks that read the views and "
                         f"whose output is the sharp image); got model {model_name!r}")



@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on (stored in the checkpoint).

    Attributes
    ----------
    model : str
        Name in :data:`learned.MODELS`.
    recipe : Recipe
        Optimiser, loss, schedule, augmentation, batch size, crop, steps.
    data : str
        Dataset spec for :func:`learned.data.build_dataset` ('synthetic', 'dpdd:PATH', ...).
    out : str
        Output folder.
    seed : int
        Seeds model initialisation, sample order, crops and augmentation.
    model_overrides : dict
        Constructor arguments of the model (e.g. a reduced width).
    preset : str
        Name of the preset the config was made from (informational).
    device : str
        'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', ...
    checkpoint_every : int
        Steps between checkpoints (the last step is always saved).
    checkpoint_minutes : float
        Also save a checkpoint when this many minutes have passed since the last one (a slow run
        on a CPU loses at most that much work; 0: by steps only).
    num_workers : int
        DataLoader worker processes (0: load in the main process).
    amp : bool
        Mixed precision (torch.autocast, bfloat16 where supported else float16 with a
        GradScaler); effective on CUDA only and only if the recipe allows it.
    eval_images : int
        Held-out images of the 'test' split scored at the end (0: no evaluation).
    progress : bool
        Show a tqdm progress bar.
    real_views : RealViewsConfig or None
        Also train on unlabelled real dual-pixel views with the self-supervised reblur loss
        (:mod:`learned.training.real_views`), added to the supervised loss with its ``weight``.
    init : str or None
        Start from these weights instead of the initialisation: a toolkit checkpoint (``model.pt``
        of ``learned.train``) or ``'pretrained:NAME'`` (:mod:`learned.pretrained`) of the same model.
    """

    model: str
    recipe: Recipe
    data: str = "synthetic"
    out: str = "runs/train"
    seed: int = 0
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    preset: str = "paper"
    device: str = "auto"
    checkpoint_every: int = 1000
    checkpoint_minutes: float = 10.0
    num_workers: int = 0
    amp: bool = True
    eval_images: int = 0
    progress: bool = True
    real_views: Optional[RealViewsConfig] = None
    init: Optional[str] = None

    def __post_init__(self) -> None:
        family = model_family(self.model)
        if isinstance(self.real_views, Mapping):
            object.__setattr__(self, "real_views", RealViewsConfig.from_dict(self.real_views))
        if self.real_views is not None:
            if not isinstance(self.real_views, RealViewsConfig):
                raise TypeError(f"real_views must be a RealViewsConfig or None; got {type(self.real_views).__name__}")
            check_real_view_model(self.model)
        if self.init is not None and (not isinstance(self.init, str) or not self.init.strip()):
            raise ValueError(f"init must be a checkpoint path or 'pretrained:NAME'; got {self.init!r}")
        for name in ("batch_size", "crop", "steps"):
            value = getattr(self.recipe, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        multiple = self.recipe.size_multiple
        minimum = 32 if family == "nrknet" else multiple
        if self.recipe.crop % multiple or self.recipe.crop < minimum:
            raise ValueError(
                f"crop must be a multiple of {multiple} and >= {minimum} for {self.model!r} (the network's "
                f"size multiple; nothing is padded or cropped in training); got {self.recipe.crop}"
            )
        if self.recipe.optimizer.name not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_NAMES)}; got {self.recipe.optimizer.name!r}")
        if not (self.recipe.optimizer.lr > 0 and math.isfinite(self.recipe.optimizer.lr)):
            raise ValueError(f"lr must be a positive finite number; got {self.recipe.optimizer.lr!r}")
        if self.recipe.identity_start:
            from ..models.warmstart import IDENTITY_START_MODELS

            if family not in IDENTITY_START_MODELS:
                raise ValueError(f"identity_start is available for {sorted(IDENTITY_START_MODELS)}; got model "
                                 f"{self.model!r}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1; got {self.checkpoint_every}")
        if not (math.isfinite(self.checkpoint_minutes) and self.checkpoint_minutes >= 0):
            raise ValueError(f"checkpoint_minutes must be >= 0; got {self.checkpoint_minutes!r}")
        if self.num_workers < 0 or self.eval_images < 0:
            raise ValueError(f"num_workers and eval_images must be >= 0; got {self.num_workers}, {self.eval_images}")

    @property
    def family(self) -> str:
        return model_family(self.model)

    def to_dict(self) -> dict:
        """Plain nested dict of built-in types (stored in the checkpoint, weights-only loadable)."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        d = dict(data)
        r = dict(d.pop("recipe"))
        recipe = Recipe(
            optimizer=OptimizerConfig(**_tuples(r.pop("optimizer"))),
            loss=LossConfig(**_tuples(r.pop("loss"))),
            schedule=ScheduleConfig(**_tuples(r.pop("schedule"))),
            augment=AugmentConfig(**_tuples(r.pop("augment"))),
            **r,
        )
        d["model_overrides"] = _tuples(d.get("model_overrides", {}))
        if d.get("real_views") is not None:
            d["real_views"] = RealViewsConfig.from_dict(d["real_views"])
        return cls(recipe=recipe, **d)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _tuples(d: Mapping[str, Any]) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _preset_paper(family: str) -> dict:
    return {}


#: cpu-smoke, a smoke test: its target is a gain > 0 dB over the blurred input on the held-out
#: synthetic split, averaged over 3 seeds. Reduced widths (stated per family below), 64x64 crops
#: (48 for NRKNet) of 128x128 training scenes (the size of the test scenes, so leaf sizes relative
#: to the blur match), half of them dead leaves textured with scikit-image photos (natural colours
#: and textures; without them the models learn the procedural leaves' colour statistics and darken
#: natural photos) and half of them nearly in focus (largest CoC 0.25-1 px: without them IFAN and
#: NRKNet learn to sharpen everything and lose several dB on the nearly sharp test crops), batch 4,
#: cosine LR decay to 0, IFAN and NRKNet from their identity-preserving starts
#: (:mod:`learned.models.warmstart`), evaluation on the 16 held-out synthetic test images at the end (the
#: test split does not depend on these options). Measured at 3-12 minutes per run with
#: ``--threads 1`` on a 2-core machine shared with other jobs (README, ``benchmarks.training``).
_SMOKE_DATA = "synthetic:size=128,photo_fraction=0.5,in_focus_fraction=0.5"
_SMOKE = {
    # KPAC: base width 16 instead of 48 (trunk 32); 3 levels, 2 KPAC blocks as in the paper.
    "kpac": dict(model_overrides=dict(channels=16), steps=2000, batch_size=4, crop=64, lr=1e-3),
    # IFAN: base width 8 instead of 32, 4 IAC iterations instead of 17.
    "ifan": dict(model_overrides=dict(channels=8, iterations=4), steps=2000, batch_size=4, crop=64, lr=1e-3),
    # NRKNet: U-Net base width 16 instead of 64; the 21 RKR atoms and 3 scales as in the paper.
    "nrknet": dict(model_overrides=dict(base_channels=16), steps=1200, batch_size=4, crop=48, lr=1e-3),
    # K3DN: widths (8, 16, 32) with 1/1/2 blocks, disparity width 8 / 16 channels, 32 kernels.
    "k3dn": dict(
        model_overrides=dict(widths=(8, 16, 32), encoder_blocks=(1, 1, 2), decoder_blocks=(1, 1, 2),
                             disparity_width=8, disparity_channels=16, num_kernels=32),
        steps=600, batch_size=4, crop=64, lr=1e-3,
    ),
}


#: pixel4: the real-capture study (docs/pixel4_training.md, ``python -m benchmarks.pixel4_training``):
#: the cpu-smoke widths, trained on sensor-matched raw Pixel 4 renders
#: (``synthetic:sensor=pixel4``, :mod:`optics.render.pixel4_raw`) of 336x336 scenes (two 168 px cells of
#: the calibrated frame, at random places in it), 128x128 crops (the real scenes' blur reaches a
#: 17 px radius), batch 4, Adam 1e-3 with cosine decay, the identity-preserving start where a
#: family has one; step counts sized to about 8 minutes a run with one thread on the 2-core
#: machine, two runs side by side (the issue's budget is 30 CPU-minutes a run). ``dp_refine``
#: also gets the physics estimate of every scene (``physics=on``; 192 scenes, as its
#: physics costs 0.8 s a scene).
PIXEL4_DATA = "synthetic:sensor=pixel4,size=336,count=384"
PIXEL4_REFINE_DATA = "synthetic:sensor=pixel4,size=336,count=192,physics=on"
_PIXEL4 = {
    "kpac": dict(model_overrides=dict(channels=16), steps=1500),
    "ifan": dict(model_overrides=dict(channels=8, iterations=4), steps=1500),
    "nrknet": dict(model_overrides=dict(base_channels=16), steps=600),
    "k3dn": dict(model_overrides=_SMOKE["k3dn"]["model_overrides"], steps=700),
    "dp_refine": dict(model_overrides=dict(channels=16, levels=3), steps=1500, data=PIXEL4_REFINE_DATA),
}


def _preset_pixel4(family: str) -> dict:
    changes = dict(_PIXEL4[family])
    changes.setdefault("data", PIXEL4_DATA)
    return _smoke_changes(family, batch_size=4, crop=128, lr=1e-3, checkpoint_every=500, **changes)


def _smoke_changes(family: str, **changes) -> dict:
    """What both smoke presets share, then ``changes``: the smoke data, cosine decay, scoring on 16
    held-out images, the identity-preserving start of every family that has one
    (:data:`learned.models.warmstart.IDENTITY_START_MODELS`), and NRKNet's BatchNorm on each image's
    statistics at test time, as the authors' ``test.py`` runs it (model overrides merged)."""
    from ..models.warmstart import IDENTITY_START_MODELS

    overrides = dict(batchnorm_stats="batch") if family == "nrknet" else {}
    overrides.update(changes.pop("model_overrides", {}))
    data = changes.pop("data", _SMOKE_DATA)
    return dict(data=data, eval_images=16 if data == _SMOKE_DATA else 8, schedule=ScheduleConfig(kind="cosine"),
                identity_start=family in IDENTITY_START_MODELS, model_overrides=overrides, **changes)


def _no_refine(family: str, preset: str) -> None:
    if family == "dp_refine":
        raise ValueError(f"preset {preset!r} has no dp_refine entry (it trains on sRGB scenes without the physics "
                         "estimate); use --preset pixel4 or paper")


def _preset_cpu_smoke(family: str) -> dict:
    _no_refine(family, "cpu-smoke")
    return _smoke_changes(family, checkpoint_every=250, **_SMOKE[family])


#: gpu-smoke: the paper widths (no model overrides), batch 16, 64x64 crops of the cpu-smoke
#: training scenes, LR 5e-4 with cosine decay, IFAN and NRKNet from their identity-preserving
#: starts, NRKNet's BatchNorm on each image's statistics at test time, scored on the 16 held-out
#: synthetic test images. Target: >= +1 dB over the blurred input for every family
#: within 5 minutes on one GPU (AMP where the recipe allows it). The step counts come from the step
#: rates measured on one H200 (shared/reference/measured.md: KPAC 6000 steps in 167 s with AMP,
#: K3DN tiny about 2250 steps in 230 s in fp32, IFAN about 1200 and NRKNet about 540 steps in a
#: run of that length); this preset itself is unmeasured (no GPU was lent when it was written).
_GPU_SMOKE_STEPS = {"kpac": 9000, "ifan": 1200, "nrknet": 600, "k3dn": 2500}


def _preset_gpu_smoke(family: str) -> dict:
    _no_refine(family, "gpu-smoke")
    return _smoke_changes(family, steps=_GPU_SMOKE_STEPS[family], batch_size=16, crop=64, lr=5e-4,
                          checkpoint_every=500)


#: Presets: name -> function(family) -> changes (keys of :func:`make_config`).
PRESETS = {"paper": _preset_paper, "cpu-smoke": _preset_cpu_smoke, "gpu-smoke": _preset_gpu_smoke,
           "pixel4": _preset_pixel4}


def make_config(
    model: str,
    *,
    preset: str = "paper",
    data: Optional[str] = None,
    out: Optional[str] = None,
    seed: int = 0,
    steps: Optional[int] = None,
    batch_size: Optional[int] = None,
    crop: Optional[int] = None,
    lr: Optional[float] = None,
    device: str = "auto",
    model_overrides: Optional[Mapping[str, Any]] = None,
    checkpoint_every: Optional[int] = None,
    checkpoint_minutes: Optional[float] = None,
    num_workers: int = 0,
    amp: bool = True,
    eval_images: Optional[int] = None,
    progress: bool = True,
    identity_start: Optional[bool] = None,
    real_views: Optional[RealViewsConfig] = None,
    init: Optional[str] = None,
) -> TrainConfig:
    """Build a :class:`TrainConfig`: the family's :data:`RECIPES` entry, then the preset, then
    the explicit arguments (None keeps the preset's / recipe's value)."""
    family = model_family(model)
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {preset!r}")
    changes = dict(PRESETS[preset](family))
    explicit = dict(steps=steps, batch_size=batch_size, crop=crop, lr=lr, checkpoint_every=checkpoint_every,
                    checkpoint_minutes=checkpoint_minutes, eval_images=eval_images, identity_start=identity_start)
    changes.update({k: v for k, v in explicit.items() if v is not None})
    overrides = dict(changes.pop("model_overrides", {}))
    overrides.update(model_overrides or {})
    recipe = RECIPES[family]
    recipe_changes = {k: changes.pop(k) for k in ("steps", "batch_size", "crop", "schedule", "identity_start")
                      if k in changes}
    if "lr" in changes:
        recipe_changes["optimizer"] = replace(recipe.optimizer, lr=float(changes.pop("lr")))
    recipe = replace(recipe, **recipe_changes)
    preset_data = changes.pop("data", PIXEL4_REFINE_DATA if family == "dp_refine" else "synthetic")
    return TrainConfig(
        model=model, recipe=recipe, data=preset_data if data is None else data, out=out or f"runs/{model}", seed=seed,
        model_overrides=overrides, preset=preset, device=device, num_workers=num_workers, amp=amp,
        progress=progress, real_views=real_views, init=init, **changes,
    )


# ==================================================================================================
# Command line: learned.train's recipe flags
# ==================================================================================================
def add_recipe_arguments(parser) -> None:
    """``learned.train``'s flags that choose and change the recipe (:func:`make_config`'s arguments)."""
    g = parser.add_argument_group("recipe (learned.training.recipes; default: the paper's)")
    g.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the recipe's)")
    g.add_argument("--seed", type=int, default=None, help="seed of initialisation, data order, augmentation (0)")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="'paper' (default), 'cpu-smoke' or 'gpu-smoke' (learned.recipes)")
    g.add_argument("--batch-size", type=int, default=None, help="batch size per process (default: the recipe's)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    g.add_argument("--crop", type=int, default=None, help="square training crop side (default: the recipe's, 256)")
    g.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    g.add_argument("--no-identity-start", action="store_true",
                   help="NRKNet, IFAN: start from the authors' initialisation even where the preset uses "
                   "the identity-preserving start (learned.warmstart)")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="model constructor override, VALUE a Python literal (repeatable), e.g. "
                   "--model-arg channels=16 or --model-arg 'widths=(8, 16, 32)'")


def warn_paper_recipe_on_cpu(config: TrainConfig) -> None:
    """Warn (stderr) when the paper's full recipe is about to run on a CPU (hundreds of hours)."""
    import torch

    from optics import cli

    on_cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
    if on_cpu and config.preset == "paper" and config.recipe.steps >= RECIPES[config.family].steps:
        cli.warn(f"the paper recipe of {config.model} ({config.recipe.steps} steps, batch {config.recipe.batch_size}, "
                 f"{config.recipe.crop} px crops) needs a GPU: on a CPU it takes hundreds of hours; on a CPU use "
                 "--preset cpu-smoke (reduced widths, minutes per model)")


def config_from_args(args, real_views: Optional[RealViewsConfig]) -> TrainConfig:
    """The :class:`TrainConfig` of a new run from ``learned.train``'s parsed flags (:func:`make_config`)."""
    return make_config(
        args.model, preset=args.preset or "paper", data=args.data, out=args.out,
        seed=0 if args.seed is None else args.seed, steps=args.steps, batch_size=args.batch_size,
        crop=args.crop, lr=args.lr, device=args.device, model_overrides=parse_model_args(args.model_arg),
        checkpoint_every=args.checkpoint_every, checkpoint_minutes=args.checkpoint_minutes,
        num_workers=args.num_workers, amp=not args.no_amp,
        eval_images=args.eval_images, progress=not args.no_progress,
        identity_start=False if args.no_identity_start else None,
        real_views=real_views, init=args.init,
    )


def parse_model_args(items) -> dict:
    """``["channels=16", "widths=(8, 16)"]`` -> ``{"channels": 16, "widths": (8, 16)}`` (literals only);
    a bad item is a usage error naming ``--model-arg``."""
    import ast

    from optics import cli

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


def describe_recipe(recipe: Recipe, world_size: int = 1) -> str:
    """One line with the resolved training settings of ``recipe`` (after presets and flags).

    Optimiser, LR, betas, weight decay, gradient clip, batch size (per process and global), crop,
    steps, the LR schedule with its milestones in steps (as :func:`learned.training.optim.build_scheduler`
    places them) and whether training starts from the identity-preserving initialisation, e.g.
    ``"radam lr 0.0001 betas (0.9, 0.999) wd 0.01 (decoupled) clip 0.5, batch 8 (global 8), crop
    256, 600000 steps, multistep x0.5 at steps [500000, 550000]"``.
    """
    opt = recipe.optimizer
    text = f"{opt.name} lr {opt.lr:g} betas {tuple(opt.betas)}"
    if opt.weight_decay:
        text += f" wd {opt.weight_decay:g}" + (" (decoupled)" if opt.decoupled_weight_decay or opt.name == "adamw" else "")
    if opt.grad_clip_norm is not None:
        text += f" clip {opt.grad_clip_norm:g}"
    text += (f", batch {recipe.batch_size} (global {recipe.batch_size * world_size}), crop {recipe.crop}, "
             f"{recipe.steps} steps, ")
    sched = recipe.schedule
    if sched.kind == "cosine":
        text += f"cosine decay to {sched.final_fraction:g} x lr"
    elif sched.milestones:
        milestones = sorted({max(1, round(f * recipe.steps)) for f in sched.milestones})
        text += f"multistep x{sched.gamma:g} at steps {milestones}"
    else:
        text += "constant lr"
    if recipe.identity_start:
        text += ", identity-preserving start"
    return text
