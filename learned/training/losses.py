"""Training losses of the four model families (KPAC, IFAN, NRKNet, K3DN).

Every function takes (B, C, H, W) float tensors and returns a scalar tensor (mean reduction), so
the losses of different batch and crop sizes are comparable. They are plain functions of
tensors: the training step (:mod:`.step`) decides which network outputs feed them.

Contents
--------
- :func:`fft_l1_loss`: the frequency-domain reconstruction (FDR) term of NRKNet Eq. 13.
- :func:`nrknet_pyramid`, :func:`nrknet_loss`: the multi-scale loss of NRKNet Eq. 12-14.
- :func:`area_downsample`, :func:`warp_horizontal`, :func:`ifan_disparity_loss`,
  :func:`ifan_reblur_loss`: IFAN's dual-pixel disparity loss and reblurring loss.
- :func:`k3dn_loss`: K3DN Eq. 18.
- :func:`dp_reblur_loss` / :class:`DPReblurLoss`: the self-supervised dual-pixel reblur loss through
  calibrated PSFs (:mod:`.reblur`, the layered model that ``optics`` verifies; used on real views by
  :mod:`.real_views` and ``learned.train --real-views``).

References
----------
.. [1] Y. Quan, Z. Wu, H. Ji, "Neumann Network with Recursive Kernels for Single Image Defocus
   Deblurring", CVPR 2023, Sec. 3.4 (Eq. 12-14).
.. [2] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
   Image Defocus Deblurring", CVPR 2021, Sec. 3.2-3.3.
.. [3] Y. Yang, L. Pan, L. Liu, M. Liu, "K3DN: Disparity-aware Kernel Estimation for Dual-Pixel
   Defocus Deblurring", CVPR 2023, Eq. 18.
.. [4] S.-J. Cho, S.-W. Ji, J.-P. Hong, S.-W. Jung, S.-J. Ko, "Rethinking Coarse-to-Fine Approach
   in Single Image Deblurring" (MIMO-UNet), ICCV 2021 (the FDR loss).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from .reblur import DPReblurLoss
from .reblur import reblur_loss as dp_reblur_loss

__all__ = [
    "NRKNET_SCALE_WEIGHTS",
    "check_pair",
    "mse_loss",
    "fft_l1_loss",
    "nrknet_pyramid",
    "nrknet_loss",
    "area_downsample",
    "warp_horizontal",
    "ifan_disparity_loss",
    "ifan_reblur_loss",
    "k3dn_loss",
    "dp_reblur_loss",
    "DPReblurLoss",
]

#: NRKNet's scale weights [lambda_0, lambda_1, lambda_2, lambda_3] (Eq. 12): fused output, then
#: the full-, half- and quarter-resolution outputs.
NRKNET_SCALE_WEIGHTS = (1.0, 0.75, 0.5, 0.25)


def check_pair(prediction: torch.Tensor, target: torch.Tensor, names: Tuple[str, str] = ("prediction", "target")) -> None:
    """Raise TypeError/ValueError unless both are floating (B, C, H, W) tensors of one shape."""
    for name, x in zip(names, (prediction, target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
        if x.ndim != 4:
            raise ValueError(f"{name} must be 4-D (B, C, H, W); got shape {tuple(x.shape)}")
    if prediction.shape != target.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )


def _promoted(prediction: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both tensors in their common (wider) dtype, at least float32: a bfloat16 network output under
    autocast is compared with its target in float32 (losses never accumulate in 16 bits); float32
    and float64 pairs are left as they are."""
    dtype = torch.promote_types(torch.promote_types(prediction.dtype, target.dtype), torch.float32)
    return prediction.to(dtype), target.to(dtype)


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements of two (B, C, H, W) tensors (in their common dtype).

    Notes
    -----
    :math:`\\frac{1}{BCHW} \\sum (p - t)^2`, the squared l2 norm of the papers divided by the
    number of elements (as ``torch.nn.MSELoss`` in the authors' code).
    """
    check_pair(prediction, target)
    return F.mse_loss(*_promoted(prediction, target))


def fft_l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Frequency-domain reconstruction loss: mean absolute difference of the 2-D DFTs.

    Parameters
    ----------
    prediction, target : torch.Tensor, shape (B, C, H, W)
        Real images of the same shape and dtype.

    Returns
    -------
    torch.Tensor
        Scalar, in the common dtype of the inputs (float16/bfloat16 differences are transformed in
        float32: cuFFT has no bfloat16 transform).

    Notes
    -----
    With the unnormalised DFT :math:`\\mathcal{F}` over (H, W) of every channel,

    .. math:: L = \\frac{1}{2BCHW} \\sum \\left( |\\Re(\\mathcal{F}p - \\mathcal{F}t)| +
              |\\Im(\\mathcal{F}p - \\mathcal{F}t)| \\right),

    i.e. ``L1Loss`` on the real and imaginary parts stacked, as MIMO-UNet [4]_ (and NRKNet's
    released training script, built on it) compute the :math:`\\|\\mathcal{F}(Z) -
    \\mathcal{F}(X)\\|_1` term of NRKNet Eq. 13 [1]_.

    References
    ----------
    .. [1] Y. Quan, Z. Wu, H. Ji, CVPR 2023, Eq. 13.
    .. [4] S.-J. Cho et al., MIMO-UNet, ICCV 2021.
    """
    check_pair(prediction, target)
    prediction, target = _promoted(prediction, target)
    difference = prediction - target
    if difference.dtype in (torch.float16, torch.bfloat16):
        difference = difference.float()
    spectrum = torch.fft.fft2(difference, dim=(-2, -1))
    loss = 0.5 * (spectrum.real.abs().mean() + spectrum.imag.abs().mean())
    return loss.to(prediction.dtype)


def nrknet_pyramid(image: torch.Tensor, levels: int = 3) -> List[torch.Tensor]:
    """``[X_1, X_2, X_3]``: the image at full, half and quarter resolution (NRKNet's pyramid).

    Downsampling takes every other row and column (``F.interpolate(x, scale_factor=0.5)``,
    nearest), exactly as :class:`learned.models.nrknet.NRKNet` builds its input pyramid ``Y_t``, so the
    reblurring loss of Eq. 14 compares ``D_t(X_t)`` with the very ``Y_t`` the network saw.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W); got shape {tuple(image.shape)}")
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(F.interpolate(pyramid[-1], scale_factor=0.5))
    return pyramid


def nrknet_loss(
    deblurred: Sequence[torch.Tensor],
    reblurred: Sequence[torch.Tensor],
    blurred: torch.Tensor,
    sharp: torch.Tensor,
    *,
    scale_weights: Sequence[float] = NRKNET_SCALE_WEIGHTS,
    fft_weight: float = 0.1,
    reblur_weight: float = 0.1,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """NRKNet's training loss (Eq. 12-14).

    Parameters
    ----------
    deblurred : sequence of 4 tensors
        ``[Z_3, Z_2, Z_1, Z_0]`` as returned by :meth:`learned.models.nrknet.NRKNet.forward_multiscale`:
        quarter-, half- and full-resolution outputs, then the fused output, (B, 3, H/4, W/4),
        (B, 3, H/2, W/2), (B, 3, H, W), (B, 3, H, W).
    reblurred : sequence of 3 tensors, or empty
        ``[D_3(X_3), D_2(X_2), D_1(X_1)]`` (same method, called with ``sharp``); empty skips
        the reblurring term.
    blurred, sharp : torch.Tensor, shape (B, 3, H, W)
        The network input ``Y`` and the ground truth ``X``.
    scale_weights : sequence of 4 floats
        :math:`[\\lambda_0, \\lambda_1, \\lambda_2, \\lambda_3]`, default [1, 0.75, 0.5, 0.25].
    fft_weight : float
        :math:`\\beta` of Eq. 13 (0.1).
    reblur_weight : float
        :math:`\\alpha` of Eq. 12 (0.1).

    Returns
    -------
    total : torch.Tensor
        Scalar loss.
    parts : dict
        ``mse``, ``fft_l1`` (weighted sums over scales, before :math:`\\beta`) and ``reblur``
        (weighted sum over scales, before :math:`\\alpha`; absent when ``reblurred`` is empty).

    Notes
    -----
    .. math::

        L = \\sum_{t=0}^{3} \\lambda_t \\left( \\|Z_t - X_t\\|_2^2 + \\beta \\|\\mathcal{F} Z_t -
            \\mathcal{F} X_t\\|_1 \\right) + \\alpha \\sum_{t=1}^{3} \\lambda_t
            \\|D_t(X_t) - Y_t\\|_2^2,

    with :math:`X_0 = X_1 = X`, :math:`Y_0 = Y_1 = Y`, :math:`X_t, Y_t` downsampled by
    :math:`2^{t-1}` (:func:`nrknet_pyramid`), norms as means (:func:`mse_loss`,
    :func:`fft_l1_loss`). The released training script computes the reblurring term but does not
    add it; the paper (and this function, unless ``reblur_weight=0``) does.

    References
    ----------
    .. [1] Y. Quan, Z. Wu, H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 12-14.
    """
    if len(deblurred) != 4:
        raise ValueError(f"deblurred must hold 4 tensors [Z_3, Z_2, Z_1, Z_0]; got {len(deblurred)}")
    if len(reblurred) not in (0, 3):
        raise ValueError(f"reblurred must hold 3 tensors [D_3 X_3, D_2 X_2, D_1 X_1] or none; got {len(reblurred)}")
    if len(scale_weights) != 4:
        raise ValueError(f"scale_weights must hold 4 numbers [lambda_0..lambda_3]; got {list(scale_weights)}")
    check_pair(blurred, sharp, ("blurred", "sharp"))
    sharp_pyramid = nrknet_pyramid(sharp)  # X_1, X_2, X_3
    blurred_pyramid = nrknet_pyramid(blurred)  # Y_1, Y_2, Y_3
    z3, z2, z1, z0 = deblurred
    outputs = [z0, z1, z2, z3]  # Z_t for t = 0..3
    targets = [sharp_pyramid[0], sharp_pyramid[0], sharp_pyramid[1], sharp_pyramid[2]]  # X_t
    mse = sum(w * mse_loss(z, x) for w, z, x in zip(scale_weights, outputs, targets))
    fft = sum(w * fft_l1_loss(z, x) for w, z, x in zip(scale_weights, outputs, targets))
    total = mse + fft_weight * fft
    parts = {"mse": mse.detach(), "fft_l1": fft.detach()}
    if reblurred:
        d3, d2, d1 = reblurred
        reblur = sum(
            w * mse_loss(d, y) for w, d, y in zip(scale_weights[1:], (d1, d2, d3), blurred_pyramid)
        )
        total = total + reblur_weight * reblur
        parts["reblur"] = reblur.detach()
    return total, parts


def area_downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Average over non-overlapping ``factor x factor`` cells: (B, C, H, W) -> (B, C, H/f, W/f).

    ``H`` and ``W`` must be multiples of ``factor`` (nothing is cropped silently). Equal to
    ``F.interpolate(image, scale_factor=1/factor, mode='area')`` on such sizes.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W); got shape {tuple(image.shape)}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive int; got {factor!r}")
    h, w = image.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image height and width must be multiples of factor {factor}; got {h} x {w}")
    return F.avg_pool2d(image, factor) if factor > 1 else image


def warp_horizontal(image: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at horizontally shifted positions: ``out(y, x) = image(y, x + d(y, x))``.

    Parameters
    ----------
    image : torch.Tensor, shape (B, C, H, W)
    disparity : torch.Tensor, shape (B, 1, H, W)
        Horizontal displacement in pixels of ``image`` (positive samples to the right).

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
        Bilinear interpolation (``grid_sample``, ``align_corners=True``: pixel centres at
        integer coordinates), border padding (samples beyond the edge take the edge value).

    Notes
    -----
    This is the spatial-transformer warp of IFAN's disparity loss: the right view warped by the
    predicted disparity should reproduce the left view. Differentiable in both arguments.
    """
    if image.ndim != 4 or disparity.ndim != 4 or disparity.shape[1] != 1:
        raise ValueError(
            f"image must be (B, C, H, W) and disparity (B, 1, H, W); got {tuple(image.shape)} and {tuple(disparity.shape)}"
        )
    b, _, h, w = image.shape
    if disparity.shape[0] != b or disparity.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"disparity must be (B, 1, H, W) = ({b}, 1, {h}, {w}) to match image; got {tuple(disparity.shape)}"
        )
    disparity = disparity.to(image.dtype)
    xs = torch.arange(w, device=image.device, dtype=image.dtype).view(1, 1, w).expand(b, h, w)
    ys = torch.arange(h, device=image.device, dtype=image.dtype).view(1, h, 1).expand(b, h, w)
    x_sample = xs + disparity[:, 0]
    grid_x = 2.0 * x_sample / max(w - 1, 1) - 1.0
    grid_y = 2.0 * ys / max(h - 1, 1) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def ifan_disparity_loss(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """IFAN's dual-pixel disparity loss: MSE(warp(R at 1/s, d), L at 1/s).

    Parameters
    ----------
    left, right : torch.Tensor, shape (B, 3, H, W)
        Dual-pixel views.
    disparity : torch.Tensor, shape (B, 1, H/s, W/s)
        Predicted disparity map (DME output, :meth:`learned.models.ifan.IFAN.estimate_disparity`), in
        pixels of the 1/s grid (s = 8 for IFAN); H and W must be multiples of s.

    Returns
    -------
    torch.Tensor
        Scalar.

    Notes
    -----
    :math:`L_{disp} = \\| W(R_{\\downarrow s}, d) - L_{\\downarrow s} \\|_2^2` (mean), with area
    downsampling :math:`\\downarrow s` (:func:`area_downsample`) and the horizontal warp
    :func:`warp_horizontal`, as in the authors' training code (weight 1 in their total loss).

    References
    ----------
    .. [2] J. Lee et al., "Iterative Filter Adaptive Network for Single Image Defocus
       Deblurring", CVPR 2021, Sec. 3.2 (disparity map estimation).
    """
    check_pair(left, right, ("left", "right"))
    if disparity.ndim != 4 or disparity.shape[1] != 1:
        raise ValueError(f"disparity must be (B, 1, h, w); got shape {tuple(disparity.shape)}")
    h, w = left.shape[-2:]
    dh, dw = disparity.shape[-2:]
    if h % dh or w % dw or h // dh != w // dw:
        raise ValueError(
            f"the views ({h} x {w}) must be an integer multiple s of the disparity map ({dh} x {dw}), "
            "the same s along both axes (crop sizes must be multiples of 8 for IFAN)"
        )
    factor = h // dh
    left_small = area_downsample(left, factor)
    right_small = area_downsample(right, factor)
    return F.mse_loss(*_promoted(warp_horizontal(right_small, disparity), left_small))


def ifan_reblur_loss(reblurred: torch.Tensor, blurred: torch.Tensor) -> torch.Tensor:
    """IFAN's reblurring loss: MSE(RBN output, blurred input area-downsampled to its size).

    Parameters
    ----------
    reblurred : torch.Tensor, shape (B, 3, H/s, W/s)
        Output of :class:`learned.models.ifan.IFANReblurNetwork` on the sharp image.
    blurred : torch.Tensor, shape (B, 3, H, W)
        The network's (blurred) input; H, W multiples of s.

    References
    ----------
    .. [2] J. Lee et al., CVPR 2021, Sec. 3.3 (Eq. 5).
    """
    h, w = blurred.shape[-2:]
    rh, rw = reblurred.shape[-2:]
    if reblurred.ndim != 4 or h % rh or w % rw or h // rh != w // rw:
        raise ValueError(
            f"blurred ({h} x {w}) must be an integer multiple of reblurred ({tuple(reblurred.shape)}) along both axes"
        )
    target = area_downsample(blurred, h // rh)
    check_pair(reblurred, target, ("reblurred", "downsampled blurred"))
    return F.mse_loss(*_promoted(reblurred, target))


def k3dn_loss(
    deblurred: torch.Tensor,
    sharp: torch.Tensor,
    reblurred: torch.Tensor,
    blurred: torch.Tensor,
    *,
    reblur_weight: float = 0.1,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """K3DN's training loss (Eq. 18): ``L_deb(I, I_hat) + lambda_1 L_reb(B, B_hat)``.

    Parameters
    ----------
    deblurred, sharp : torch.Tensor, shape (B, 3, H, W)
        :math:`\\hat{I}` and the all-in-focus ground truth :math:`I`.
    reblurred, blurred : torch.Tensor, shape (B, 3, H, W)
        :math:`\\hat{B}` (:meth:`learned.models.k3dn.K3DN.forward_train`) and
        :math:`B = (B_L + B_R) / 2`.
    reblur_weight : float
        :math:`\\lambda_1`.

    Notes
    -----
    The definitions of :math:`L_{deb}`, :math:`L_{reb}` and the value of :math:`\\lambda_1` are
    in K3DN's supplementary material, which is not available; both terms are taken here as the
    mean squared error (as the other three papers' deblurring terms) and
    :math:`\\lambda_1 = 0.1` (NRKNet's weight for its reblurring term) is a documented choice.

    References
    ----------
    .. [3] Y. Yang, L. Pan, L. Liu, M. Liu, "K3DN: Disparity-aware Kernel Estimation for
       Dual-Pixel Defocus Deblurring", CVPR 2023, Eq. 17-18.
    """
    deblur = mse_loss(deblurred, sharp)
    reblur = mse_loss(reblurred, blurred)
    return deblur + reblur_weight * reblur, {"deblur": deblur.detach(), "reblur": reblur.detach()}
