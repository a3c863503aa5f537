"""The networks, one per file (KPAC, IFAN with its IAC layer, NRKNet, K3DN), their registry and warm starts.

:data:`MODELS` maps a name to the class or factory that builds the deploy network; each module is
a pure ``nn.Module`` whose constructor arguments are its configuration. :mod:`.warmstart` holds
the identity-preserving initialisations used by the training recipes.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .dp_refine import DPRefine
from .ifan import IFAN, IFANDual, IFANReblurNetwork
from .k3dn import k3dn_large, k3dn_light, k3dn_tiny
from .kpac import KPAC, KPACDual
from .nrknet import NRKNet

__all__ = ["MODELS", "TRAINING_MODULES", "DUAL_PIXEL", "PHYSICS_INPUT", "build_model"]


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
    "dp_refine": DPRefine,
}

#: Training-only networks (not deblurring models themselves).
TRAINING_MODULES: dict[str, Callable[..., nn.Module]] = {"ifan_reblur": IFANReblurNetwork}

#: Models that take a dual-pixel pair ``(left, right)``.
DUAL_PIXEL = frozenset({"kpac_dual", "ifan_dual", "k3dn_tiny", "k3dn_light", "k3dn_large", "dp_refine"})

#: Models that refine the physics estimate: they also take ``physics`` and ``defocus``, the
#: output of :func:`optics.dual_pixel.deblur.dual_pixel_deblur` on the same views.
PHYSICS_INPUT = frozenset({"dp_refine"})


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
