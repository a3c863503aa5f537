"""Learned defocus-deblurring networks (KPAC, IFAN, NRKNet, K3DN) in PyTorch.

One network per file, each a pure ``nn.Module`` whose constructor arguments are its
configuration. :data:`MODELS` maps a name to the class or factory that builds the deploy network
(training-only heads such as IFAN's reblurring network are separate modules). Every model takes
RGB float tensors in [0, 1] of shape (B, 3, H, W) for any H, W at or above its minimum and
returns the same shape; dual-pixel models take ``(left, right)``. Outputs are **not clamped**
(training needs the gradient outside [0, 1], and the authors' networks do not clamp either): a
trained network stays close to [0, 1], an untrained one need not (e.g. NRKNet at its random
initialisation). ``learned.deblur`` and ``learned.evaluate`` clip to
[0, 1] before writing or scoring, as the papers' evaluations do.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .ifan import IFAN, IFANDual, IFANReblurNetwork
from .k3dn import k3dn_large, k3dn_light, k3dn_tiny
from .kpac import KPAC, KPACDual
from .nrknet import NRKNet

__all__ = ["MODELS", "build_model", "load_official_checkpoint", "load_checkpoint", "save_checkpoint"]


def _kpac_2level(**kwargs: Any) -> KPAC:
    return KPAC(levels=2, **kwargs)


#: name -> constructor. Explicit on purpose: no registry decorators, no directory scanning.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "kpac": KPAC,
    "kpac_2level": _kpac_2level,
    "kpac_dual": KPACDual,
    "ifan": IFAN,
    "ifan_dual": IFANDual,
    "nrknet": NRKNet,
    "k3dn_tiny": k3dn_tiny,
    "k3dn_light": k3dn_light,
    "k3dn_large": k3dn_large,
}

#: Training-only networks (not deblurring models themselves).
TRAINING_MODULES: dict[str, Callable[..., nn.Module]] = {"ifan_reblur": IFANReblurNetwork}

#: Models that take a dual-pixel pair ``(left, right)``.
DUAL_PIXEL = frozenset({"kpac_dual", "ifan_dual", "k3dn_tiny", "k3dn_light", "k3dn_large"})


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build model ``name`` from :data:`MODELS` with constructor ``overrides``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](**overrides)


from .checkpoints import load_checkpoint, load_official_checkpoint, save_checkpoint  # noqa: E402
