"""Learned defocus-deblurring networks (KPAC, IFAN, NRKNet, K3DN) in PyTorch.

The package is in rooms of one concern each; the commands stay at the top:

:mod:`learned.models`
    One network per file, each a pure ``nn.Module`` whose constructor arguments are its
    configuration, the registry :data:`MODELS` and the identity-preserving warm starts.
:mod:`learned.data`
    The real datasets' readers, synthetic scenes, the papers' evaluation protocols, image I/O.
:mod:`learned.training`
    Recipes and presets, losses, checkpoints.
:mod:`learned.inference`
    Tiling, mixed precision, padding and the CPU fast paths.
Commands (``python -m learned.<name>``)
    ``train``, ``deblur``, ``evaluate``, ``summary``, ``convert``, ``datasets``; :mod:`learned.metrics`
    and :mod:`learned.baseline` score and compare their results.

:data:`MODELS` maps a name to the class or factory that builds the deploy network (training-only
heads such as IFAN's reblurring network are separate modules). Every model takes and returns RGB
float tensors in [0, 1] of shape (B, 3, H, W) for any H, W at or above its minimum; dual-pixel
models take ``(left, right)``.

The modules' former flat paths (``learned.kpac``, ``learned.io``, ``learned.recipes``, ...) name
the same module objects as their paths in the rooms, so code written against them keeps working.
"""

from __future__ import annotations

import sys as _sys

from .data import io, protocols
from .inference import _padding, _speed, precision, tiling
from .models import DUAL_PIXEL, MODELS, PHYSICS_INPUT, TRAINING_MODULES, build_model, iac, ifan, k3dn, kpac, nrknet, warmstart
from .models.dp_refine import DPRefine
from .models.ifan import IFAN, IFANDual, IFANReblurNetwork
from .models.k3dn import k3dn_large, k3dn_light, k3dn_tiny
from .models.kpac import KPAC, KPACDual
from .models.nrknet import NRKNet
from .training import checkpoints, losses, recipes
from .training.checkpoints import load_checkpoint, load_official_checkpoint, save_checkpoint

__all__ = ["MODELS", "build_model", "load_official_checkpoint", "load_checkpoint", "save_checkpoint"]

for _module in (io, protocols, _padding, _speed, precision, tiling, iac, ifan, k3dn, kpac, nrknet, warmstart,
                checkpoints, losses, recipes):
    _sys.modules.setdefault(f"{__name__}.{_module.__name__.rpartition('.')[2]}", _module)
del _module
