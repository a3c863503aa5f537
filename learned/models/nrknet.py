"""NRKNet: Neumann network with recursive kernels (Quan, Wu and Ji, CVPR 2023).

Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image Defocus
Deblurring", CVPR 2023. Official code: https://github.com/csZcWu/NRKNet (commit 90fad36, MIT).

This is a re-implementation exact to the official code (configuration ``num_res = 1``,
``num_kernels = 21``, ``in_ch = 3``): 6,094,107 parameters, and the authors' ``.pth`` state
dicts load with ``strict=True`` (submodule names below follow theirs on purpose; the
class names are ours). Its output matches the authors' network on the parity vectors in
``shared/parity/nrknet`` to about 1e-6 (see ``tests/learned/models/test_nrknet.py``).

Architecture (official attribute names in brackets)
---------------------------------------------------
* Feature U-Net [``feat_extract``, ``Encoder``, ``bottleneck``, ``Decoder``], weights shared
  across the three scales: MIMO-UNet style, base 64 channels, 3x3 convolutions with reflect
  padding and no bias + ReLU, stride-2 convolutions down, ``ConvTranspose2d(4, 2, 1)`` + ReLU up,
  one residual block (conv-ReLU-conv + identity) per level, additive skips.
* Coefficient module [``APU``]: ``Gamma = up(h) * ReLU(BN(conv3x3(feat))) + up(h)`` with ``h``
  the hidden state of a ConvLSTM cell (5x5 conv, 86 -> 88 channels, zero padding, bias; gates
  i, f, o, g) fed with the 2x2-average-pooled features; ``up`` is nearest x2. ``h`` and ``c``
  start at zero and are carried to the next scale with bilinear x2 upsampling. 22 coefficient
  maps, one per RKR atom, shared by the three colour channels.
* RKR [``GCM``]: a (63, 1, 1, 2) parameter = 21 recursion steps x 3 colour channels x 2 free
  taps, turned into symmetric positive l1-normalised taps ``softmax([p0, p1, p0])``
  (:func:`optics.operators.rkr.symmetric_softmax_taps`); the 22 filtered images (identity included) come
  from :func:`optics.operators.rkr.rkr_stack` with ``boundary='reflect'`` (the project's single
  implementation of Eq. 5). Row ``r`` of the parameter is step ``r // 3``, channel ``r % 3``.
* Blur operator (Eq. 11): ``D_t(y) = SummationLayer(stack(y) * repeat_interleave(Gamma, 3))``,
  the summation a 1x1 convolution 66 -> 3 with bias [``SummationLayer``].
* Truncated Neumann series with cross-scale fusion (Eq. 10): at scales 1/4, 1/2 and 1 the
  network applies ``I - D_t`` 3, 2 and 1 times to the input pyramid ``Y_t`` (legacy nearest
  downsampling ``F.interpolate(scale_factor=0.5)``, i.e. even rows and columns), and returns
  ``Y + t_1 + up2(t_2) + up4(t_3)`` (bilinear, ``align_corners=False``), not clipped.

Interface of this module (the differences from the authors' script)
-------------------------------------------------------------------
* Input and output are **RGB** ``(B, 3, H, W)`` float tensors in [0, 1]. The authors read
  images with OpenCV and never convert, so their weights expect **BGR**; the channel flip
  happens inside :meth:`NRKNet.forward` (pass ``bgr=True`` to feed BGR directly).
* Any size ``H, W >= 17`` works: the input is reflect-padded to the next multiple of 16,
  ``floor(d / 2)`` rows (columns) before and the rest after, as the authors' ``data_v3.TestDataset``
  does for an even difference ``d`` (for an odd ``d`` their padding does not reach a multiple of
  16; ours puts the extra row at the bottom / column at the right), and the output is cropped
  back to ``(H, W)``. Below 17 the padded size would be 16 and the deepest level 1x1, which
  reflect padding cannot handle.
* BatchNorm: by default (``batchnorm_stats='running'``) the network follows PyTorch semantics:
  running statistics in ``eval()``, batch statistics in ``train()``. The authors' ``test.py``
  never calls ``.eval()``, so their published numbers come from BatchNorm normalising with the
  statistics of each test image; ``batchnorm_stats='batch'`` reproduces that in ``eval()`` mode
  (without updating the running statistics). See :class:`NRKNet`.

References
----------
.. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
   Defocus Deblurring", CVPR 2023.
.. [2] S.-J. Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image Deblurring"
   (MIMO-UNet), ICCV 2021.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from optics.operators.rkr import rkr_stack, symmetric_softmax_taps

from ..inference._padding import check_input
from ..inference._speed import add_into, cpu_channels_last, needs_grad

__all__ = ["NRKNet", "RecursiveKernelStack", "MODELS", "MIN_SIZE", "SIZE_MULTIPLE", "PAPER_PARAMETERS"]

#: The network pads inputs to a multiple of this (three 2x downsamplings inside, times 2 for
#: the coarsest of the three scales).
SIZE_MULTIPLE = 16
#: Smallest accepted height and width (padded size 32: the deepest U-Net level at scale 1/4 is
#: then 2x2, the smallest size reflect padding by 1 accepts).
MIN_SIZE = 17
#: Parameter count of the official configuration (``num_res=1``, ``num_kernels=21``).
PAPER_PARAMETERS = 6_094_107

_BATCHNORM_STATS = ("running", "batch")


# ------------------------------------------------------------------------------------------
# building blocks (attribute names follow the official layers.py so state dicts load)
# ------------------------------------------------------------------------------------------
class _BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that can normalise with batch statistics in eval mode.

    With ``use_batch_stats_in_eval=True`` and the module in ``eval()``, it normalises with the
    statistics of the current batch, like ``train()`` mode, but leaves the running statistics
    untouched. Same state-dict entries as :class:`torch.nn.BatchNorm2d`.
    """

    use_batch_stats_in_eval: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.use_batch_stats_in_eval:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)


class _Conv(nn.Module):
    """Conv (reflect padding, no bias) or ConvTranspose2d(k, 2, k/2 - 1), optional BN, optional ReLU.

    Official ``layers.BasicConv``; parameters live in ``main``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        *,
        relu: bool = True,
        batchnorm: bool = False,
        transpose: bool = False,
    ) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        if transpose:
            layers.append(
                nn.ConvTranspose2d(
                    in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2 - 1, bias=False
                )
            )
        else:
            layers.append(
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    kernel_size,
                    stride=stride,
                    padding=kernel_size // 2,
                    bias=False,
                    padding_mode="reflect",
                )
            )
        if batchnorm:
            layers.append(_BatchNorm2d(out_channels))
        if relu:
            layers.append(nn.ReLU(inplace=True))  # on a fresh conv/BN output: same values, no copy
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class _ResBlock(nn.Module):
    """``x + conv(ReLU(conv(x)))`` with 3x3 reflect-padded convolutions (official ``ResBlock``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            _Conv(channels, channels, 3, 1, relu=True),
            _Conv(channels, channels, 3, 1, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_into(self.main(x), x)  # the conv output is a fresh temporary autograd does not keep


class _ResStack(nn.Module):
    """``num_res`` residual blocks (official ``EBlock`` / ``DBlock``)."""

    def __init__(self, channels: int, num_res: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[_ResBlock(channels) for _ in range(num_res)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell, gates ordered (i, f, o, g) (official ``CLSTM_cell``)."""

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(
            input_channels + hidden_channels, 4 * hidden_channels, kernel_size, 1, (kernel_size - 1) // 2
        )

    def forward(
        self, x: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden, cell = state
        gates = self.conv(torch.cat((x, hidden), 1))
        gate_i, gate_f, gate_o, gate_g = torch.split(gates, self.hidden_channels, dim=1)
        cell = torch.sigmoid(gate_f) * cell + torch.sigmoid(gate_i) * torch.tanh(gate_g)
        hidden = torch.sigmoid(gate_o) * torch.tanh(cell)
        return hidden, cell

    def init_state(self, like: torch.Tensor, size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros((like.shape[0], self.hidden_channels, size[0], size[1]))
        return zeros, zeros.clone()


class _CoefficientModule(nn.Module):
    """Coefficient maps ``Gamma = up(h) * ReLU(BN(conv(f))) + up(h)`` (official ``SqueezeAttentionBlock``)."""

    def __init__(self, feature_channels: int, n_atoms: int) -> None:
        super().__init__()
        self.avg_pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.conv = _Conv(feature_channels, n_atoms, 3, 1, relu=True, batchnorm=True)
        self.conv_atten = _ConvLSTMCell(feature_channels, n_atoms, 5)

    def forward(
        self, features: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor]
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        local = self.conv(features)
        hidden, cell = self.conv_atten(self.avg_pool(features), state)
        up = F.interpolate(hidden, scale_factor=2, mode="nearest")
        return torch.addcmul(up, up, local), (hidden, cell)  # up * local + up


class RecursiveKernelStack(nn.Module):
    """The RKR atoms of NRKNet applied to an image: ``[y, y (x) A_2, ..., y (x) A_J]`` per channel.

    Parameters
    ----------
    n_steps : int, default 21
        Number of recursion steps ``J - 1`` (the official ``num_kernels``).
    channels : int, default 3
        Colour channels; every channel has its own taps.

    Attributes
    ----------
    kernels : torch.nn.Parameter, shape (n_steps * channels, 1, 1, 2)
        Free parameters ``(p0, p1)``; row ``r`` holds step ``r // channels``, channel
        ``r % channels`` (official ``FullRKR.kernels``, initialised ``U[0, 1)``).

    Notes
    -----
    Taps ``a = softmax([p0, p1, p0])`` (:func:`optics.operators.rkr.symmetric_softmax_taps`); the stack is
    :func:`optics.operators.rkr.rkr_stack` with ``boundary='reflect'`` (pad 1, 1x3 then 3x1 filtering per
    step, as the official ``FullRKR`` with ``dilation=1``).
    """

    def __init__(self, n_steps: int = 21, channels: int = 3) -> None:
        super().__init__()
        self.n_steps = n_steps
        self.channels = channels
        self.kernels = nn.Parameter(torch.rand(n_steps * channels, 1, 1, 2))

    def taps(self) -> torch.Tensor:
        """Step taps of shape (n_steps, channels, 3): positive, symmetric, summing to 1."""
        return symmetric_softmax_taps(self.kernels).reshape(self.n_steps, self.channels, 3)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, (n_steps + 1) * C, H, W), channel index ``atom * C + colour``."""
        stack = rkr_stack(y, self.taps(), boundary="reflect", check_taps=False)  # (J, B, C, H, W)
        batch, _, height, width = y.shape
        return stack.transpose(0, 1).reshape(batch, (self.n_steps + 1) * self.channels, height, width)


class _SummationLayer(nn.Module):
    """1x1 convolution (J * C) -> C with bias: the weighted sum of Eq. 11 (official ``SumLayer``)."""

    def __init__(self, n_atoms: int, channels: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_atoms * channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# ------------------------------------------------------------------------------------------
# the network
# ------------------------------------------------------------------------------------------
class NRKNet(nn.Module):
    """NRKNet single-image defocus deblurring network (Quan, Wu and Ji, CVPR 2023).

    Parameters
    ----------
    num_res : int, default 1
        Residual blocks per U-Net level (official ``config.net['num_res']``).
    num_kernels : int, default 21
        RKR recursion steps ``J - 1``; the network uses ``J = num_kernels + 1`` atoms including
        the identity (official ``config.net['num_kernels']``).
    base_channels : int, default 64
        U-Net width at full resolution (64 / 128 / 256 at the three levels).
    batchnorm_stats : {'running', 'batch'}, default 'running'
        How the coefficient module's BatchNorm normalises in ``eval()`` mode. ``'running'``:
        running statistics (PyTorch semantics; what the authors' training-time validation
        does). ``'batch'``: statistics of the current input, as the authors' ``test.py`` runs
        the network (it never calls ``.eval()``), without touching the running statistics.
        In ``train()`` mode BatchNorm always uses batch statistics and updates the running ones.
        Can be changed later through the attribute of the same name.

    Notes
    -----
    The output is the cross-scale fused truncated Neumann series (paper Eq. 10)

    .. math::

        Z_0 = Y_1 + (I - D_1) Y_1 + ((I - D_2)^2 Y_2)_{\\uparrow 2} + ((I - D_3)^3 Y_3)_{\\uparrow 4},
        \\qquad D_t(\\cdot) = \\sum_{j=1}^{J} \\Gamma_{j,t} \\odot (\\cdot \\otimes A_j)

    with the 1x1 summation convolution of the official code in place of the plain sum (Eq. 11),
    atoms ``A_j`` from :mod:`optics.operators.rkr` and ``Gamma_{j,t}`` from the coefficient module.
    See the module docstring for layer details and the official names of the submodules.

    Input ``(B, 3, H, W)`` RGB in [0, 1] with ``H, W >= 17``; output the same shape, RGB,
    **not clipped** (the authors clip only for metrics). float32 or float64 (the input dtype must
    match the parameters').

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 2, 4, 5, 10, 11.

    Examples
    --------
    >>> import torch
    >>> net = NRKNet().eval()
    >>> with torch.no_grad():
    ...     out = net(torch.rand(1, 3, 40, 50))
    >>> tuple(out.shape)
    (1, 3, 40, 50)
    """

    #: Neumann terms applied at scales 1/4, 1/2 and 1 (fixed by the official code).
    NEUMANN_TERMS = (3, 2, 1)
    #: Smallest input side (as the other models' ``min_size``).
    min_size = MIN_SIZE

    def __init__(
        self,
        num_res: int = 1,
        num_kernels: int = 21,
        base_channels: int = 64,
        batchnorm_stats: str = "running",
    ) -> None:
        super().__init__()
        for name, value in (("num_res", num_res), ("num_kernels", num_kernels), ("base_channels", base_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        in_channels = 3
        b = base_channels
        n_atoms = num_kernels + 1
        self.num_res = num_res
        self.num_kernels = num_kernels
        self.base_channels = base_channels

        # official names: SumLayer, FullRKR, SqueezeAttentionBlock -> SummationLayer, GCM, APU
        self.SummationLayer = _SummationLayer(n_atoms, in_channels)
        self.GCM = RecursiveKernelStack(num_kernels, in_channels)
        self.APU = _CoefficientModule(b, n_atoms)
        self.Encoder = nn.ModuleList([_ResStack(b, num_res), _ResStack(2 * b, num_res), _ResStack(4 * b, num_res)])
        self.Decoder = nn.ModuleList([_ResStack(4 * b, num_res), _ResStack(2 * b, num_res), _ResStack(b, num_res)])
        self.bottleneck = nn.Sequential(_Conv(4 * b, 4 * b, 3, 1), _ResStack(4 * b, num_res))
        self.feat_extract = nn.ModuleList(
            [
                _Conv(in_channels, b, 3, 1),
                _Conv(b, 2 * b, 3, 2),
                _Conv(2 * b, 4 * b, 3, 2),
                _Conv(4 * b, 2 * b, 4, 2, transpose=True),
                _Conv(2 * b, b, 4, 2, transpose=True),
            ]
        )
        self.batchnorm_stats = batchnorm_stats

    # -- BatchNorm behaviour ---------------------------------------------------------------
    @property
    def batchnorm_stats(self) -> str:
        """'running' or 'batch': what BatchNorm normalises with in ``eval()`` mode."""
        return self._batchnorm_stats

    @batchnorm_stats.setter
    def batchnorm_stats(self, value: str) -> None:
        if value not in _BATCHNORM_STATS:
            raise ValueError(f"batchnorm_stats must be one of {_BATCHNORM_STATS}; got {value!r}")
        self._batchnorm_stats = value
        for module in self.modules():
            if isinstance(module, _BatchNorm2d):
                module.use_batch_stats_in_eval = value == "batch"

    # -- pieces of the forward pass --------------------------------------------------------
    def _features(self, y: torch.Tensor) -> torch.Tensor:
        """Shared U-Net: (B, 3, h, w) -> (B, base, h, w)."""
        # On the CPU the U-Net runs channels-last (oneDNN's native layout), see learned.inference._speed.
        res1 = self.Encoder[0](self.feat_extract[0](cpu_channels_last(y)))
        res2 = self.Encoder[1](self.feat_extract[1](res1))
        res3 = self.Encoder[2](self.feat_extract[2](res2))
        # The up-sampling layers end in an in-place ReLU whose result autograd keeps: add the
        # skips in place only when no gradient is needed (the bottleneck output is always free).
        skip_add = torch.add if needs_grad(res3) else add_into
        z = self.feat_extract[3](self.Decoder[0](add_into(self.bottleneck(res3), res3)))
        z = self.feat_extract[4](self.Decoder[1](skip_add(z, res2)))
        return self.Decoder[2](skip_add(z, res1))

    def blur(self, y: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """RKR blur operator ``D_t(y)`` (Eq. 11): (B, 3, h, w) with (B, J, h, w) coefficients.

        The RKR recursion and the weighted sum of the atoms run in the parameters' dtype even under
        ``torch.autocast`` (16-bit inputs are cast at entry): the Neumann series subtracts
        ``D_t(y)`` from ``y``, nearly equal images, which 16-bit arithmetic would not resolve.
        """
        dtype = self.SummationLayer.conv.weight.dtype
        with torch.autocast(device_type=y.device.type, enabled=False):
            y, coefficients = y.to(dtype), coefficients.to(dtype)
            stack = self.GCM(y)
            b, c, h, w = y.shape
            conv = self.SummationLayer.conv
            if needs_grad(stack, coefficients, conv.weight, conv.bias):
                # stack[:, j C + c] * coefficients[:, j]: broadcasting instead of a repeat_interleave copy
                weighted = stack.reshape(b, -1, c, h, w) * coefficients.unsqueeze(2)
                return self.SummationLayer(weighted.reshape(b, -1, h, w))
            # Inference: weight the fresh stack in place and sum it with one matrix product on its
            # NCHW memory (a 1x1 convolution would reorder the (B, J C, h, w) stack for oneDNN:
            # 243 MB at 1280x720); same sums up to their order (issue 33).
            weighted = stack.view(b, -1, c, h, w).mul_(coefficients.unsqueeze(2)).view(b, -1, h * w)
            weight = conv.weight.view(1, conv.out_channels, -1).expand(b, -1, -1)
            out = torch.baddbmm(conv.bias.view(1, -1, 1), weight, weighted)
            return out.view(b, conv.out_channels, h, w)

    def _run(
        self, x_bgr: torch.Tensor, sharp_bgr: Optional[torch.Tensor] = None, all_scales: bool = False
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Official forward on padded BGR input. Returns (deblurred, reblurred) lists.

        ``deblurred`` is ``[fused]`` or, with ``all_scales``, ``[Z_3, Z_2, Z_1, fused]`` where
        ``Z_t = Y_t + sum_k (I - D_t)^k Y_t`` at scales 1/4, 1/2, 1 (the official 'train' path);
        ``reblurred`` is ``[D_t(X_t)]`` for the sharp pyramid when ``sharp_bgr`` is given.
        """
        x_2 = F.interpolate(x_bgr, scale_factor=0.5)  # legacy 'nearest': even rows and columns
        x_4 = F.interpolate(x_2, scale_factor=0.5)
        pyramid = [x_4, x_2, x_bgr]
        sharp_pyramid: List[torch.Tensor] = []
        if sharp_bgr is not None:
            s_2 = F.interpolate(sharp_bgr, scale_factor=0.5)
            sharp_pyramid = [F.interpolate(s_2, scale_factor=0.5), s_2, sharp_bgr]
        state = self.APU.conv_atten.init_state(x_4, (x_4.shape[-2] // 2, x_4.shape[-1] // 2))
        terms: List[torch.Tensor] = []
        per_scale: List[torch.Tensor] = []
        reblurred: List[torch.Tensor] = []
        for i, y in enumerate(pyramid):
            coefficients, state = self.APU(self._features(y), state)
            coefficients = coefficients.contiguous()  # NCHW like the RKR stack it multiplies
            term = y
            partial_sum = y
            for _ in range(self.NEUMANN_TERMS[i]):
                term = term - self.blur(term, coefficients)
                partial_sum = partial_sum + term
            terms.append(term)
            per_scale.append(partial_sum)
            if sharp_pyramid:
                reblurred.append(self.blur(sharp_pyramid[i], coefficients))
            if i < len(pyramid) - 1:
                hidden, cell = state
                state = (
                    F.interpolate(hidden, scale_factor=2, mode="bilinear"),
                    F.interpolate(cell, scale_factor=2, mode="bilinear"),
                )
        fused = (
            x_bgr
            + terms[2]
            + F.interpolate(terms[1], scale_factor=2, mode="bilinear")
            + F.interpolate(terms[0], scale_factor=4, mode="bilinear")
        )
        deblurred = per_scale + [fused] if all_scales else [fused]
        return deblurred, reblurred

    # -- input handling ----------------------------------------------------------------------
    def _check(self, x: torch.Tensor, name: str) -> None:
        check_input(x, name, channels=3, min_size=MIN_SIZE)
        dtype = self.SummationLayer.conv.weight.dtype
        if x.dtype != dtype:
            raise TypeError(
                f"{name} must have the dtype of the network's parameters ({dtype}); got {x.dtype}. "
                "Convert the input or the network (net.double() / net.float())."
            )

    @staticmethod
    def _padding(height: int, width: int) -> Tuple[int, int, int, int]:
        """(left, right, top, bottom) reflect padding to the next multiple of 16, centred."""
        dh, dw = (-height) % SIZE_MULTIPLE, (-width) % SIZE_MULTIPLE
        return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2

    def _pad(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int, int, int]]:
        pad = self._padding(int(x.shape[-2]), int(x.shape[-1]))
        if any(pad):
            x = F.pad(x, pad, mode="reflect")
        return x, pad

    @staticmethod
    def _crop(x: torch.Tensor, pad: Tuple[int, int, int, int]) -> torch.Tensor:
        left, right, top, bottom = pad
        return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]

    # -- public forward passes ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *, bgr: bool = False) -> torch.Tensor:
        """Deblur a batch.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 3, H, W)
            Defocused images, RGB in [0, 1] (BGR if ``bgr=True``), ``H, W >= 17``.
        bgr : bool, default False
            Input and output in BGR channel order (the authors' convention) instead of RGB.

        Returns
        -------
        torch.Tensor, shape (B, 3, H, W)
            Deblurred images in the channel order of the input, not clipped.

        Raises
        ------
        TypeError
            Not a float tensor, or dtype different from the parameters'.
        ValueError
            Not 4-D, not 3 channels, smaller than 17x17, NaN or inf.
        """
        self._check(x, "x")
        x_bgr = x if bgr else x.flip(1)
        padded, pad = self._pad(x_bgr)
        (out,), _ = self._run(padded)
        out = self._crop(out, pad)
        return out if bgr else out.flip(1)

    def forward_multiscale(
        self, x: torch.Tensor, sharp: Optional[torch.Tensor] = None, *, bgr: bool = False
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """All outputs the training loss (paper Eq. 12) needs; the official 'train' path.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 3, H, W)
            Defocused images (RGB, or BGR with ``bgr=True``), H and W multiples of 16 and
            >= 32 (training crops; no padding is applied here because the per-scale outputs
            would not crop back consistently).
        sharp : torch.Tensor, shape (B, 3, H, W), optional
            Ground truth; if given, its pyramid is re-blurred with each scale's operator.
        bgr : bool, default False
            Channel order of inputs and outputs.

        Returns
        -------
        deblurred : list of torch.Tensor
            ``[Z_3, Z_2, Z_1, Z_0]``: ``Z_t = Y_t + sum_{k<=n_t} (I - D_t)^k Y_t`` at scales
            1/4, 1/2, 1 (``n_t`` = 3, 2, 1) and the fused output ``Z_0`` (equal to
            :meth:`forward`).
        reblurred : list of torch.Tensor
            ``[D_3(X_3), D_2(X_2), D_1(X_1)]`` if ``sharp`` is given, else empty.
        """
        self._check(x, "x")
        for name, t in (("x", x),) + ((("sharp", sharp),) if sharp is not None else ()):
            if t.shape[-2] % SIZE_MULTIPLE or t.shape[-1] % SIZE_MULTIPLE or min(t.shape[-2:]) < 32:
                raise ValueError(
                    f"{name} must have H and W multiples of {SIZE_MULTIPLE} and >= 32 for "
                    f"forward_multiscale; got {tuple(t.shape[-2:])}"
                )
        if sharp is not None:
            self._check(sharp, "sharp")
            if sharp.shape != x.shape:
                raise ValueError(f"sharp must have the shape of x {tuple(x.shape)}; got {tuple(sharp.shape)}")
        flip = (lambda t: t) if bgr else (lambda t: t.flip(1))
        deblurred, reblurred = self._run(flip(x), None if sharp is None else flip(sharp), all_scales=True)
        return [flip(t) for t in deblurred], [flip(t) for t in reblurred]


MODELS = {"nrknet": NRKNet}
