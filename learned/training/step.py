"""One training step's forward pass: the model, its training-only networks and its loss.

:class:`TrainingStep` is one module whose ``forward`` returns the loss terms of a batch, so DDP can
wrap it and every family's custom forward path (IFAN's reblurring network, NRKNet's multi-scale
outputs, K3DN's reblurred views) syncs gradients. The losses themselves are :mod:`.losses`; the
loop that calls this step is :mod:`learned.train`.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional

import torch
from torch import nn

from ..models import DUAL_PIXEL
from .real_views import real_view_loss
from .losses import ifan_disparity_loss, ifan_reblur_loss, k3dn_loss, mse_loss, nrknet_loss
from .recipes import LossConfig, model_family

__all__ = ["TrainingStep", "logged_values"]

log = logging.getLogger(__name__)


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
            from ..models.ifan import IFANReblurNetwork

            self.auxiliary["ifan_reblur"] = IFANReblurNetwork(
                filter_channels=model.filter_dim, channels=model.iac_channels, iterations=model.iterations,
                filter_taps=model.filter_taps, downsample_factor=model.multiple,
                reuse_vertical_kernel=model.reuse_vertical_kernel,
            )
        self._warned: set = set()
        self.real_psfs = None  # set with real_config by the trainer when real views are trained on
        self.real_config = None

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
        real: Optional[list] = None,
    ) -> Dict[str, torch.Tensor]:
        """Loss terms of one batch: ``{'total': scalar, term: detached scalar, ...}``.

        ``blurred`` (B, 3, H, W) is the network input (the combined image C for dual-pixel data),
        ``sharp`` the ground truth, ``left``/``right`` the dual-pixel views or None,
        ``physics``/``defocus`` the physics estimate and its defocus map (``dp_refine``) or None.
        ``real``: crops of unlabelled real captures (:meth:`.real_views.RealViewCrops.sample`) whose
        self-supervised reblur loss is added with ``real_config.weight`` (term ``reblur_real``).
        """
        terms = self._supervised(blurred, sharp, left, right, physics, defocus)
        if real:
            if self.real_psfs is None or self.real_config is None:
                raise ValueError("real crops were given but the training step has no real_psfs/real_config")
            reblur = real_view_loss(self.model, self.model_name, real, self.real_psfs, self.real_config)
            terms["total"] = terms["total"] + self.real_config.weight * reblur
            terms["reblur_real"] = reblur.detach()
        return terms

    def _supervised(self, blurred, sharp, left, right, physics, defocus) -> Dict[str, torch.Tensor]:
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


def logged_values(terms: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor], ctx) -> tuple:
    """The names and values of a step's ``log.csv`` columns: the total loss, each term, and
    ``blurred_input_mse`` (the loss of returning the blurred input unchanged, for reference), averaged
    over the processes of a DDP run (``ctx``: :class:`~learned.training.distributed.DistributedContext`)."""
    with torch.no_grad():
        identity = torch.mean((batch["input"].float() - batch["target"].float()) ** 2)
    values = torch.stack([terms["total"].detach().float()] + [v.float() for k, v in terms.items() if k != "total"]
                         + [identity])
    if ctx.enabled:
        torch.distributed.all_reduce(values)
        values /= ctx.world_size
    return ["total"] + [k for k in terms if k != "total"] + ["blurred_input_mse"], values
