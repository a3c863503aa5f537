"""Identity-preserving starts: initial weights under which a network returns its input.

Used by the smoke presets (:mod:`learned.training.recipes`) for NRKNet and IFAN; the ``paper`` preset keeps
the authors' initialisation. Only initial values change, never the architecture or the state-dict
keys, so checkpoints stay compatible with the authors' code.

NRKNet with the authors' initialisation starts far from the identity: its blur operator
:math:`D_t` (a 1x1 convolution of the RKR atoms weighted by the coefficient maps) is a random
operator, so the Neumann series :math:`\\sum_k (I - D_t)^k Y_t` multiplies the input by a random
matrix several times. On the synthetic data its multi-scale MSE is 4.6 at step 1 against 0.0067
for the blurred input (measured on one H200, ``shared/reference/measured.md``), and a short run ends
below the input. :func:`nrknet_identity_start_` changes only initial *values*, never the
architecture or the state-dict keys (checkpoints stay compatible with the authors' code), so that
:math:`D_t \\approx I` at every scale: then every Neumann term :math:`(I - D_t)^k Y_t` is nearly 0
and the network starts as (almost) the identity, the blurred input, with gradients flowing into
every parameter.
"""

from __future__ import annotations

import math

import torch

__all__ = ["nrknet_identity_start_", "ifan_identity_start_", "IDENTITY_START_MODELS", "identity_start_"]

#: LSTM gate biases of the coefficient module's ConvLSTM (gates ordered i, f, o, g).
_GATE_BIAS = {"i": 1.0, "f": -6.0, "o": 1.0, "g": 1.0}


def nrknet_identity_start_(net: torch.nn.Module, scale: float = 0.01) -> torch.nn.Module:
    """Re-initialise ``net`` (a :class:`learned.models.nrknet.NRKNet`) in place so that ``D_t ~ I``.

    Parameters
    ----------
    net : NRKNet
        Freshly built (its other weights keep the authors' initialisation).
    scale : float
        Factor on the default weights of the three layers changed (small: nearly constant
        coefficients, a nearly pure identity atom), so that every parameter still receives a
        gradient from step 1.

    Returns
    -------
    NRKNet
        ``net`` itself.

    Notes
    -----
    The coefficient maps are :math:`\\Gamma = h_\\uparrow (1 + \\mathrm{ReLU}(\\mathrm{BN}(\\mathrm{conv}(f))))`
    with :math:`h` the ConvLSTM's hidden state. With the ConvLSTM weights scaled by ``scale``, gate
    biases :math:`(b_i, b_f, b_o, b_g) = (1, -6, 1, 1)` and the BatchNorm scale set to ``scale``,
    :math:`h \\approx h_0 = \\sigma(b_o) \\tanh(\\sigma(b_i) \\tanh(b_g)) = 0.370` everywhere (the
    forget gate :math:`\\sigma(-6) = 0.0025` nearly drops the previous scale's cell) and
    :math:`\\Gamma \\approx h_0`. The 1x1 summation convolution is set to ``scale`` x its default
    plus :math:`1 / h_0` from the identity atom of each colour to that colour, zero bias, so

    .. math:: D_t(y) = \\sum_j W_j \\Gamma_j (y \\otimes A_j) \\approx \\frac{1}{h_0} h_0\\, y = y.

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 10-11 (the Neumann series and the blur operator).
    """
    _check_scale(scale)
    lstm = net.APU.conv_atten.conv
    batchnorm = net.APU.conv.main[1]
    summation = net.SummationLayer.conv
    n_atoms = net.num_kernels + 1
    channels = summation.out_channels
    h0 = _sigmoid(_GATE_BIAS["o"]) * math.tanh(_sigmoid(_GATE_BIAS["i"]) * math.tanh(_GATE_BIAS["g"]))
    with torch.no_grad():
        lstm.weight.mul_(scale)
        for index, gate in enumerate("ifog"):
            lstm.bias[index * n_atoms : (index + 1) * n_atoms] = _GATE_BIAS[gate]
        batchnorm.weight.fill_(scale)
        batchnorm.bias.zero_()
        summation.weight.mul_(scale)
        summation.bias.zero_()
        for c in range(channels):  # atom 0 (the identity) of colour c -> colour c
            summation.weight[c, c, 0, 0] += 1.0 / h0
    return net


def ifan_identity_start_(net: torch.nn.Module, scale: float = 0.01) -> torch.nn.Module:
    """Re-initialise ``net`` (:class:`learned.models.ifan.IFAN` or ``IFANDual``) in place to start near the identity.

    Parameters
    ----------
    net : IFAN
        Freshly built (its other weights keep the authors' initialisation).
    scale : float
        Factor on the default weights of the output convolution (``out_res``); its bias is zeroed.

    Returns
    -------
    IFAN
        ``net`` itself.

    Notes
    -----
    IFAN returns :math:`\\hat X = Y + \\mathrm{LReLU}(\\mathrm{conv}_{out}(f))`, a global residual
    on the blurred input :math:`Y`. With the authors' initialisation the residual is a random image
    (the multi-scale features through a random 3x3 convolution), several dB below the input at step
    1, and a short run spends its first hundreds of steps unlearning it. Scaling
    :math:`\\mathrm{conv}_{out}` by ``scale`` (bias 0) makes the residual ``scale`` times smaller, so
    the network starts within about 1 % of the identity while every parameter still receives a
    gradient from step 1 (a zero weight would give the layers before it none). Only values change:
    the architecture and the checkpoint keys stay the authors'.

    References
    ----------
    .. [1] J. Lee, H. Son, J. Rim, S. Cho and S. Lee, "Iterative Filter Adaptive Network for Single
       Image Defocus Deblurring", CVPR 2021 (the global residual of the reconstructor).
    """
    _check_scale(scale)
    conv = net.out_res[0]
    with torch.no_grad():
        conv.weight.mul_(scale)
        conv.bias.zero_()
    return net


def _check_scale(scale: float) -> None:
    if not (0 < scale <= 1):
        raise ValueError(f"scale must lie in (0, 1]; got {scale!r}")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


#: Model-name prefixes with an identity-preserving start.
IDENTITY_START_MODELS = {"nrknet": nrknet_identity_start_, "ifan": ifan_identity_start_}


def identity_start_(model: torch.nn.Module, model_name: str) -> torch.nn.Module:
    """Apply the identity-preserving start of ``model_name``'s family (ValueError if it has none)."""
    for prefix, fn in IDENTITY_START_MODELS.items():
        if model_name.startswith(prefix):
            return fn(model)
    raise ValueError(f"no identity-preserving start for model {model_name!r}; available for {sorted(IDENTITY_START_MODELS)}")
