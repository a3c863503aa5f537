"""KPAC: single-image defocus deblurring with Kernel-sharing Parallel Atrous Convolutions.

Reference: H. Son, J. Lee, S. Cho, S. Lee, "Single Image Defocus Deblurring Using Kernel-Sharing
Parallel Atrous Convolutions", ICCV 2021; architecture in Tables 1-2 of the supplementary
material (``../shared/papers/000_*.txt``); details the tables leave out (widths, activations,
padding, the dual-pixel variant) from the authors' TensorFlow code (``HyeongseokSon1/KPAC`` at
8603ec3, see ``../shared/reference/official-code-facts.md``).

Where the supplementary tables and the released code disagree, this module follows the code,
whose parameter counts it reproduces exactly: the shape-attention bottleneck has 12 channels
(Table 2 says 16) and the last 5x5 convolution has no activation (Table 1 says lrelu).

Networks
--------
- ``kpac``: 3 levels (the paper's model), 2,057,893 parameters.
- ``kpac_2level``: 2 levels, 1,578,277 parameters.
- ``kpac_dual``: 3 levels, input concat(L, R) (6 channels), residual added to the combined
  image C, 2,061,493 parameters (:class:`KPACDual`).

Weight layout
-------------
Modules are named after the TensorFlow layers (``c0``, ``c0_2``, ..., ``blocks.0.sca_dc1``,
``cm_1``, ``d2_2``) and registered in the TensorFlow creation order, so ``list(model.parameters())``
lines up one-to-one with the ``params`` list of the authors' ``.npz`` files (conv weights HWIO ->
OIHW, deconv weights [kh, kw, out, in] -> [in, out, kh, kw]; each shared atrous filter once).
Stride-2 convolutions reproduce TensorFlow's 'SAME' padding (0 top/left, 1 bottom/right on even
sizes), so those weights give the same results here. :func:`load_tensorflow_params` copies such
a list in strictly (count and every shape checked).

Differences from the released code
----------------------------------
- The authors' graph is built for one fixed size (1120 x 1680, a multiple of 8). Here any size
  works: the input is padded (replicate) at the bottom/right to a multiple of ``2 ** levels``
  and the output cropped back; the shape attention's global average then includes the padded
  border (on multiples of ``2 ** levels`` nothing is padded and the computation is theirs).
- Input/output in [0, 1] (the authors feed [-1, 1] and write ``clip((y + 1) * 127.5)``); the
  [-1, 1] mapping happens inside, and eval-mode outputs are clipped to [0, 1].
- No output parity against the TensorFlow code has been measured (no TensorFlow reference
  outputs are available offline); layer-by-layer equivalence rests on the parameter counts,
  the parameter order and the padding rules, which are tested.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inference._padding import check_dual_pixel_inputs, check_input, crop_to, pad_to_multiple

__all__ = [
    "KPAC",
    "KPACDual",
    "KPACBlock",
    "SharedAtrousConv2d",
    "TFSameConv2d",
    "load_tensorflow_params",
    "MODELS",
]

_NEGATIVE_SLOPE = 0.2  # tf.nn.leaky_relu default, used by every activation in the released code
_INIT_STD = 0.04  # tf.random_normal_initializer(stddev=0.04) in the released code


def _tf_same_padding(size: int, kernel: int, stride: int, dilation: int) -> Tuple[int, int]:
    """(before, after) padding of TensorFlow 'SAME' along one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' zero padding for any stride and input size.

    TensorFlow pads ``total = max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0)`` zeros per axis,
    ``total // 2`` before and the rest after: a stride-2 3x3 convolution on an even size pads
    0 at the top/left and 1 at the bottom/right, unlike PyTorch's symmetric ``padding=1``.
    Output size is ``ceil(n / s)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve (B, C, H, W) -> (B, C', ceil(H/s), ceil(W/s))."""
        top, bottom = _tf_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = _tf_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", padding=TensorFlow 'SAME'"


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> TFSameConv2d:
    return TFSameConv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _NEGATIVE_SLOPE)


class SharedAtrousConv2d(nn.Module):
    """One bias-free k x k filter applied at several dilation rates (kernel sharing).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of each dilated output (96 -> 48 in KPAC).
    kernel_size : int
        Odd filter size (5).
    dilations : sequence of int
        Dilation rates, one output group each (1, 2, 3, 4, 5).

    Notes
    -----
    Output group :math:`j` is :math:`\\phi(w_{\\uparrow r_j} * x)` with the same weight :math:`w`
    for all :math:`j`, where :math:`w_{\\uparrow r}` is :math:`w` dilated by inserting
    :math:`r - 1` zeros between taps and :math:`\\phi` is LeakyReLU(0.2); groups are concatenated
    along channels (``len(dilations) * out_channels`` channels).

    This is the dilated-inverse-kernel idea of the paper (Sec. 4.1 of the main paper; claim 3
    and Fig. 3 of the supplementary): for smooth (defocused) regions, deconvolving with a
    dilated inverse kernel :math:`k^\\dagger_{\\uparrow s}` behaves like deconvolving with the
    inverse of the rescaled blur, so one filter serves every blur scale. The claim is checked
    numerically in ``validation.kernel_upsampling``.

    References
    ----------
    .. [1] H. Son, J. Lee, S. Cho, S. Lee, "Single Image Defocus Deblurring Using Kernel-Sharing
       Parallel Atrous Convolutions", ICCV 2021, Sec. 4.1; supplementary Sec. 2-3, Fig. 3.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2, 3, 4, 5)) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd; got {kernel_size}")
        self.dilations = tuple(int(d) for d in dilations)
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"dilations must be a non-empty sequence of positive ints; got {dilations!r}")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.normal_(self.weight, std=_INIT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, len(dilations) * C_out, H, W)."""
        half = (self.weight.shape[-1] - 1) // 2
        return torch.cat(
            [_lrelu(F.conv2d(x, self.weight, None, 1, half * d, d)) for d in self.dilations], dim=1
        )


class KPACBlock(nn.Module):
    """KPAC block: shared atrous convolutions weighted by scale and shape attention, then fusion.

    Parameters
    ----------
    channels : int
        Trunk channels (96).
    atrous_channels : int
        Channels of each dilated output (48).
    kernel_size : int
        Size of the shared atrous filter (5).
    dilations : sequence of int
        Dilation rates (1..5).

    Notes
    -----
    With :math:`A_j` the atrous outputs (:class:`SharedAtrousConv2d`), per-pixel scale attention
    :math:`\\alpha_j(x) \\in (0, 1)` (four 5x5 rate-2 atrous convs 96-32-32-16-16, then 5x5 conv to
    one map per rate, sigmoid) and global shape attention :math:`\\beta \\in (0, 1)^{48}` (global
    average pool, 1x1 conv 96->12, lrelu, 1x1 conv 12->48, sigmoid), the block returns

    .. math:: y = \\phi\\big(\\mathrm{conv}_{3\\times3}([\\alpha_1 \\beta A_1, \\dots, \\alpha_5 \\beta A_5])\\big).

    Each :math:`\\alpha_j` multiplies its own group of 48 channels; :math:`\\beta` is tiled over
    the groups. The average pool runs over the whole (padded) feature map.
    """

    def __init__(self, channels: int = 96, atrous_channels: int = 48, kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2, 3, 4, 5)) -> None:
        super().__init__()
        self.atrous_channels = atrous_channels
        n_rates = len(tuple(dilations))
        # Registration order = TensorFlow creation order (dc1, sca_dc1..4, sca_c2, sha_c1, sha_c2, cf).
        self.dc1 = SharedAtrousConv2d(channels, atrous_channels, kernel_size, dilations)
        self.sca_dc1 = _conv(channels, 32, 5, dilation=2)
        self.sca_dc2 = _conv(32, 32, 5, dilation=2)
        self.sca_dc3 = _conv(32, 16, 5, dilation=2)
        self.sca_dc4 = _conv(16, 16, 5, dilation=2)
        self.sca_c2 = _conv(16, n_rates, 5)
        self.sha_c1 = _conv(channels, atrous_channels // 4, 1)
        self.sha_c2 = _conv(atrous_channels // 4, atrous_channels, 1)
        self.cf = _conv(n_rates * atrous_channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, channels, H, W) -> (B, channels, H, W)."""
        atrous = self.dc1(x)
        scale = _lrelu(self.sca_dc1(x))
        scale = _lrelu(self.sca_dc2(scale))
        scale = _lrelu(self.sca_dc3(scale))
        scale = _lrelu(self.sca_dc4(scale))
        scale = torch.sigmoid(self.sca_c2(scale))
        scale = torch.repeat_interleave(scale, self.atrous_channels, dim=1)
        shape = x.mean(dim=(2, 3), keepdim=True)
        shape = torch.sigmoid(self.sha_c2(_lrelu(self.sha_c1(shape))))
        shape = shape.repeat(1, scale.shape[1] // self.atrous_channels, 1, 1)
        return _lrelu(self.cf(atrous * scale * shape))


class KPAC(nn.Module):
    """KPAC deblurring network (Son et al., ICCV 2021), single-image input.

    Parameters
    ----------
    levels : {3, 2}
        Encoder levels (3 = the paper's model, features down to 1/8; 2 = down to 1/4).
    channels : int
        Base width (48); the trunk has ``2 * channels``.
    num_blocks : int
        Chained KPAC blocks (2).
    kernel_size : int
        Size of the shared atrous filter (5).
    dilations : sequence of int
        Atrous rates of the shared filter (1, 2, 3, 4, 5).
    pad_mode : str
        How the input is padded to a multiple of ``2 ** levels`` (then cropped back). The
        authors ran fixed 1120 x 1680 inputs and never padded.

    Notes
    -----
    Input and output are RGB in [0, 1]; internally the network works on :math:`x' = 2x - 1` as
    the authors' code does, predicts a residual :math:`r` and returns
    :math:`\\hat S = (x' + r + 1) / 2`, clipped to [0, 1] in eval mode (the authors clip when
    writing 8-bit images) unless ``clip`` says otherwise.

    Encoder (supplementary Table 1): 5x5 conv 3->48, 3x3 48->48 (skip f1); stride-2 3x3 48->48,
    3x3 (f2); stride-2 48->96, 3x3 (f3); 3 levels: stride-2 96->96, 3x3. Then ``num_blocks``
    chained :class:`KPACBlock` s; the trunk and every block output are concatenated (dense
    stack, 288 channels) and decoded by 3x3 convs and 4x4 stride-2 deconvs with concatenated
    skips; a 5x5 conv to 3 channels (no activation) gives the residual. LeakyReLU(0.2)
    everywhere else.

    References
    ----------
    .. [1] H. Son, J. Lee, S. Cho, S. Lee, "Single Image Defocus Deblurring Using Kernel-Sharing
       Parallel Atrous Convolutions", ICCV 2021; supplementary Tables 1-2.
    """

    #: Input channels of the first convolution.
    input_channels = 3

    def __init__(
        self,
        levels: int = 3,
        channels: int = 48,
        num_blocks: int = 2,
        kernel_size: int = 5,
        dilations: Sequence[int] = (1, 2, 3, 4, 5),
        pad_mode: str = "replicate",
    ) -> None:
        super().__init__()
        if levels not in (2, 3):
            raise ValueError(f"levels must be 2 or 3 (the released variants); got {levels!r}")
        for value, name in ((channels, "channels"), (num_blocks, "num_blocks"), (kernel_size, "kernel_size")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if channels % 4:
            raise ValueError(f"channels must be a multiple of 4 (shape attention uses channels / 4); got {channels}")
        if pad_mode not in ("replicate", "reflect", "constant", "circular"):
            raise ValueError(f"pad_mode must be 'replicate', 'reflect', 'constant' or 'circular'; got {pad_mode!r}")
        self.levels = levels
        self.channels = channels
        self.num_blocks = num_blocks
        self.pad_mode = pad_mode
        self.multiple = 2 ** levels
        self.min_size = self.multiple
        ch, ch2 = channels, 2 * channels

        # Encoder (registration order = TensorFlow creation order).
        self.c0 = _conv(self.input_channels, ch, 5)
        self.c0_2 = _conv(ch, ch, 3)
        self.c2 = _conv(ch, ch, 3, stride=2)
        self.c2_2 = _conv(ch, ch, 3)
        self.c3 = _conv(ch, ch2, 3, stride=2)
        self.c3_2 = _conv(ch2, ch2, 3)
        if levels == 3:
            self.c4 = _conv(ch2, ch2, 3, stride=2)
            self.c4_2 = _conv(ch2, ch2, 3)
        self.blocks = nn.ModuleList(
            [KPACBlock(ch2, ch, kernel_size, dilations) for _ in range(num_blocks)]
        )
        # Decoder.
        self.cm_1 = _conv(ch2 * (num_blocks + 1), ch2, 3)
        self.cm_2 = _conv(ch2, ch2, 3)
        if levels == 3:
            self.d0 = nn.ConvTranspose2d(ch2, ch2, 4, stride=2, padding=1)
            self.d0_2 = _conv(2 * ch2, ch2, 3)
            self.d1 = nn.ConvTranspose2d(ch2, ch, 4, stride=2, padding=1)
        else:
            self.d1 = nn.ConvTranspose2d(ch2, ch, 4, stride=2, padding=1)
        self.d1_2 = _conv(2 * ch, ch, 3)
        self.d2 = nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1)
        self.d2_2 = _conv(2 * ch, 3, 5)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation: weights ~ N(0, 0.04^2), biases 0 (uses torch's global RNG)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, std=_INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, SharedAtrousConv2d):
                nn.init.normal_(module.weight, std=_INIT_STD)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        """Network body on (B, C_in, H, W) in [-1, 1], H and W multiples of 2**levels."""
        f1 = _lrelu(self.c0_2(_lrelu(self.c0(x))))
        f2 = _lrelu(self.c2_2(_lrelu(self.c2(f1))))
        n = f3 = _lrelu(self.c3_2(_lrelu(self.c3(f2))))
        if self.levels == 3:
            n = _lrelu(self.c4_2(_lrelu(self.c4(f3))))
        stack = [n]
        for block in self.blocks:
            n = block(n)
            stack.append(n)
        n = _lrelu(self.cm_2(_lrelu(self.cm_1(torch.cat(stack, 1)))))
        if self.levels == 3:
            n = _lrelu(self.d0_2(torch.cat([_lrelu(self.d0(n)), f3], 1)))
        n = _lrelu(self.d1_2(torch.cat([_lrelu(self.d1(n)), f2], 1)))
        n = torch.cat([_lrelu(self.d2(n)), f1], 1)
        return self.d2_2(n)

    def _check_dtype(self, x: torch.Tensor, name: str) -> None:
        weight = self.c0.weight
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the network's parameters are {weight.dtype}; "
                f"convert one of them (e.g. model.to({x.dtype}))"
            )

    def _finish(self, out_signed: torch.Tensor, size: Tuple[int, int], clip: Optional[bool]) -> torch.Tensor:
        out = crop_to((out_signed + 1.0) * 0.5, size)
        do_clip = (not self.training) if clip is None else bool(clip)
        return torch.clamp(out, 0.0, 1.0) if do_clip else out

    def forward(self, image: torch.Tensor, *, clip: Optional[bool] = None) -> torch.Tensor:
        """Deblur a batch of RGB images.

        Parameters
        ----------
        image : torch.Tensor
            (B, 3, H, W) RGB in [0, 1], H, W >= 2**levels.
        clip : bool or None
            Clip the output to [0, 1]; None clips in eval mode only.

        Returns
        -------
        torch.Tensor
            (B, 3, H, W) deblurred images.
        """
        check_input(image, "image", 3, self.min_size)
        self._check_dtype(image, "image")
        padded, size = pad_to_multiple(image, self.multiple, self.pad_mode)
        signed = padded * 2.0 - 1.0
        return self._finish(self._residual(signed) + signed, size, clip)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, channels={self.channels}, num_blocks={self.num_blocks}, "
            f"pad_mode={self.pad_mode!r}"
        )


class KPACDual(KPAC):
    """KPAC for dual-pixel input (``Defocus_Deblur_Net6_ds_dual`` of the released code).

    Same parameters as :class:`KPAC` (3 levels by default). The first convolution sees
    concat(L, R) (6 channels, left view first); the predicted residual is added to the combined
    image C.
    """

    input_channels = 6

    def forward(  # type: ignore[override]
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        center: Optional[torch.Tensor] = None,
        *,
        clip: Optional[bool] = None,
    ) -> torch.Tensor:
        """Deblur from the dual-pixel views and the combined image.

        Parameters
        ----------
        left, right : torch.Tensor
            Left and right dual-pixel views, (B, 3, H, W) RGB in [0, 1].
        center : torch.Tensor, optional
            The combined image C of the same shot (B, 3, H, W) (DPDD's ``*_c`` images). When
            omitted, ``(left + right) / 2``: the dual-pixel image formation (K3DN Eq. 1-2), under
            which the full-aperture image is the mean of the two half-aperture views.
        clip : bool or None
            As in :meth:`KPAC.forward`.

        Returns
        -------
        torch.Tensor
            (B, 3, H, W) deblurred images.
        """
        center = check_dual_pixel_inputs(left, right, center, self.min_size)
        for x, name in ((left, "left"), (right, "right"), (center, "center")):
            self._check_dtype(x, name)
        views, size = pad_to_multiple(torch.cat([left, right], 1), self.multiple, self.pad_mode)
        center_padded, _ = pad_to_multiple(center, self.multiple, self.pad_mode)
        return self._finish(self._residual(views * 2.0 - 1.0) + (center_padded * 2.0 - 1.0), size, clip)


def load_tensorflow_params(model: KPAC, params: Sequence[Any]) -> None:
    """Copy the authors' TensorFlow parameter list into ``model`` (in place, strict).

    Parameters
    ----------
    model : KPAC or KPACDual
        Target network with the configuration the weights were trained with.
    params : sequence of array-like
        The ``params`` list of the authors' ``.npz`` files (``np.load(path)['params']``, with
        ``allow_pickle=False`` when it is a plain array stack), in TensorFlow creation order:
        conv weights HWIO, deconv weights [kh, kw, out, in], biases (C,), each shared atrous
        filter once.

    Raises
    ------
    ValueError
        If the number of arrays differs from the number of parameters, or an array's shape
        does not match (the message names its index and the parameter).

    Notes
    -----
    Both 4-D layouts map to PyTorch's by the same axis permutation (3, 2, 0, 1):
    HWIO -> OIHW for ``Conv2d`` and [kh, kw, out, in] -> [in, out, kh, kw] for
    ``ConvTranspose2d``. No kernel flip is needed: TensorFlow's ``conv2d_transpose`` and
    PyTorch's ``ConvTranspose2d`` are both the adjoint of a correlation.
    """
    named = list(model.named_parameters())
    if len(params) != len(named):
        raise ValueError(f"params must hold one array per parameter: expected {len(named)} arrays, got {len(params)}")
    converted = []
    for index, ((name, target), array) in enumerate(zip(named, params)):
        value = torch.as_tensor(np.asarray(array))
        if value.ndim == 4:
            value = value.permute(3, 2, 0, 1)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"array {index} (for parameter {name!r}) has shape {tuple(np.shape(array))}, which maps "
                f"to {tuple(value.shape)}; expected {tuple(target.shape)}"
            )
        converted.append(value)
    with torch.no_grad():
        for (_, target), value in zip(named, converted):
            target.copy_(value.to(dtype=target.dtype, device=target.device))


MODELS = {
    "kpac": KPAC,
    "kpac_2level": partial(KPAC, levels=2),
    "kpac_dual": KPACDual,
}
