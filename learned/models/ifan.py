"""IFAN: Iterative Filter Adaptive Network for single-image (and dual-pixel) defocus deblurring.

Reference: J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
Image Defocus Deblurring", CVPR 2021 (``../shared/papers/003_*.txt``), with the details the paper
leaves out taken from the authors' released code (``codeslake/IFAN`` at 66bf136, see
``../shared/reference/official-code-facts.md``).

Submodule names follow the official state-dict keys exactly (``conv1_1.0.weight``, ...,
``F.3.bias``), so an official checkpoint loads with ``strict=True`` once the ``module.`` and
``Network.`` prefixes are stripped; the training-only reblurring network
(:class:`IFANReblurNetwork`) matches the ``reblurNet.`` keys the same way.

Networks
--------
- :class:`IFAN` (``ifan``): single image, 10,476,996 parameters with the default configuration.
- :class:`IFANDual` (``ifan_dual``): the filter encoder sees concat(R, L) (6 channels), the feature
  extractor and the residual use the combined image C; 10,477,860 parameters.
- :class:`IFANReblurNetwork`: the reblurring network used only for the training loss (RBN),
  19,139,685 parameters; not part of the deployed model.

Differences from the released code
----------------------------------
- Any input size: the input is padded (replicate) at the bottom/right to a multiple of 8 and the
  output cropped back. The authors' evaluation instead crops the image to a multiple of 8
  (top-left), dropping up to 7 rows/columns; on sizes that are multiples of 8 both agree.
- The IAC vertical-kernel-reuse bug is an option (``reuse_vertical_kernel``), off by default;
  switch it on for the official checkpoints (``../shared/parity/ifan`` is reproduced to
  < 1e-6 with it, and differs by 2e-3 without it).
- The training-time outputs of the released ``Network.forward(..., is_train=True)`` (the DPD
  warp of R by the disparity of R) are not computed here; ``forward(return_aux=True)`` returns
  the disparity map and filters, and :meth:`IFAN.estimate_disparity` runs the filter encoder
  and DME alone, which is what those losses need.
"""

from __future__ import annotations

from typing import Dict, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inference._padding import check_dual_pixel_inputs, check_input, crop_to, pad_to_multiple
from ..inference._speed import add_into, cpu_channels_last, needs_grad, pointwise_conv
from ..inference.precision import LOW_PRECISION
from .iac import iac_step, iterative_adaptive_convolution, split_filter_prediction

__all__ = ["IFAN", "IFANDual", "IFANReblurNetwork", "IFANResidualBlock", "MODELS"]

_NEGATIVE_SLOPE = 0.1  # every activation in IFAN is LeakyReLU(0.1)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Conv2d ('same' zero padding) + LeakyReLU(0.1); keys ``0.weight``, ``0.bias``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2),
        nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
    )


def _upconv(in_channels: int, out_channels: int) -> nn.Sequential:
    """ConvTranspose2d(4, stride 2, padding 1) + LeakyReLU(0.1): exact x2 upsampling."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
        nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
    )


class IFANResidualBlock(nn.Module):
    """Residual block of IFAN (``ResnetBlock`` of the released code).

    Parameters
    ----------
    channels : int
        Input = output channels.
    kernel_size : int
        Odd convolution size.
    res_num : int
        Number of conv-lrelu-conv stems.

    Notes
    -----
    With stems :math:`s_i` and :math:`\\phi` = LeakyReLU(0.1):
    :math:`x_i = \\phi(x_{i-1} + s_i(x_{i-1}))`, :math:`i = 1..R`, and the output is
    :math:`x_R + x_0` (outer skip, no activation) when :math:`R > 1`, else :math:`x_1`.
    """

    def __init__(self, channels: int, kernel_size: int = 3, res_num: int = 1) -> None:
        super().__init__()
        if res_num < 1:
            raise ValueError(f"res_num must be >= 1; got {res_num}")
        pad = (kernel_size - 1) // 2
        self.res_num = res_num
        self.stem = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(channels, channels, kernel_size, padding=pad),
                    nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
                    nn.Conv2d(channels, channels, kernel_size, padding=pad),
                )
                for _ in range(res_num)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to (B, C, H, W) features."""
        skip = x
        for stem in self.stem:
            # stem(x) is a fresh conv output that autograd does not keep: add and activate in place
            x = F.leaky_relu(add_into(stem(x), x), _NEGATIVE_SLOPE, inplace=True)
        if self.res_num > 1:
            x = add_into(x, skip) if not needs_grad(x, skip) else x + skip
        return x


def _xavier_init(module: nn.Module, gain: float) -> None:
    """Xavier-uniform weights and zero biases for every (transposed) convolution, in module order."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _check_config(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")


class IFAN(nn.Module):
    """Iterative Filter Adaptive Network (single image), Lee et al., CVPR 2021.

    Parameters
    ----------
    channels : int
        Base width ``ch``; the levels use ``ch, 2 ch, 4 ch, 4 ch`` channels (32 in the paper).
    kernel_size : int
        Odd size of the ordinary convolutions (3).
    res_num : int
        Stems per residual block in the filter encoder, DME and filter predictor (2).
    iterations : int
        IAC iterations ``N`` (17; the paper also reports 8 and 26).
    filter_taps : int
        Odd IAC filter size ``k`` (3).
    reuse_vertical_kernel : bool
        Reproduce the released code's IAC bug (horizontal pass reuses the vertical kernel).
        Required to reproduce the official checkpoints; keep False for new training.
    pad_mode : str
        How the input is padded to a multiple of 8 before the network ('replicate'); the output
        is cropped back. The authors' evaluation crops the image instead (top-left, to a
        multiple of 8), which this module does not do: no pixel is dropped.
    init_gain, filter_init_gain : float
        Xavier-uniform gains of the authors' initialisation (``wi`` = 1.0, ``wiF`` = 1.5), see
        :meth:`reset_parameters`.

    Notes
    -----
    Structure (Fig. 3 of the paper): a feature extractor (``conv1_* .. conv4_*``, features at
    1, 1/2, 1/4, 1/8), a filter encoder (``kconv*``) feeding the disparity map estimator
    ``DME`` (one channel at 1/8, no activation) and, through ``conv_DME`` and ``conv4_4``, the
    filter predictor ``F`` whose 1x1 head predicts :math:`N (2 C k + C)` = 15232 channels at
    1/8 resolution. IAC (:func:`learned.models.iac.iterative_adaptive_convolution`) filters the 1/8
    features, and a reconstructor with additive skips returns

    .. math:: \\hat S = \\phi(\\mathrm{conv}(f)) + C,

    where :math:`\\phi` is LeakyReLU(0.1) (the released code activates the output layer too).
    In eval mode the output is clipped to [0, 1] as in the authors' evaluation; in training mode
    it is not (see ``clip`` in :meth:`forward`).

    References
    ----------
    .. [1] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
       Image Defocus Deblurring", CVPR 2021.
    """

    #: Input height and width must be padded to a multiple of this (three stride-2 levels).
    multiple = 8
    #: Smallest accepted input side (one full cell of the coarsest level).
    min_size = 8
    #: Channels of the filter-encoder input.
    filter_input_channels = 3

    def __init__(
        self,
        channels: int = 32,
        kernel_size: int = 3,
        res_num: int = 2,
        iterations: int = 17,
        filter_taps: int = 3,
        reuse_vertical_kernel: bool = False,
        pad_mode: str = "replicate",
        init_gain: float = 1.0,
        filter_init_gain: float = 1.5,
    ) -> None:
        super().__init__()
        _check_config(channels=channels, kernel_size=kernel_size, res_num=res_num,
                      iterations=iterations, filter_taps=filter_taps)
        if kernel_size % 2 == 0 or filter_taps % 2 == 0:
            raise ValueError(f"kernel_size and filter_taps must be odd; got {kernel_size} and {filter_taps}")
        if pad_mode not in ("replicate", "reflect", "constant", "circular"):
            raise ValueError(f"pad_mode must be 'replicate', 'reflect', 'constant' or 'circular'; got {pad_mode!r}")
        self.channels = channels
        self.iterations = iterations
        self.filter_taps = filter_taps
        self.reuse_vertical_kernel = bool(reuse_vertical_kernel)
        self.pad_mode = pad_mode
        ks = kernel_size
        ch1, ch2, ch3, ch4 = channels, 2 * channels, 4 * channels, 4 * channels
        self.iac_channels = ch4
        self.filter_dim = iterations * (ch4 * filter_taps * 2) + iterations * ch4

        # Registration order follows the released code, so parameters() matches its order.
        # feature extractor
        self.conv1_1 = _conv(3, ch1, ks)
        self.conv1_2 = _conv(ch1, ch1, ks)
        self.conv1_3 = _conv(ch1, ch1, ks)
        self.conv2_1 = _conv(ch1, ch2, ks, stride=2)
        self.conv2_2 = _conv(ch2, ch2, ks)
        self.conv2_3 = _conv(ch2, ch2, ks)
        self.conv3_1 = _conv(ch2, ch3, ks, stride=2)
        self.conv3_2 = _conv(ch3, ch3, ks)
        self.conv3_3 = _conv(ch3, ch3, ks)
        self.conv4_1 = _conv(ch3, ch4, ks, stride=2)
        self.conv4_2 = _conv(ch4, ch4, ks)
        self.conv4_3 = _conv(ch4, ch4, ks)
        self.conv4_4 = nn.Sequential(
            _conv(2 * ch4, ch4, ks),
            IFANResidualBlock(ch4, ks, res_num),
            IFANResidualBlock(ch4, ks, res_num),
            _conv(ch4, ch4, ks),
        )
        # reconstructor
        self.conv_res = nn.Sequential(
            _conv(ch4, ch4, ks),
            IFANResidualBlock(ch4, ks, res_num=3),
            _conv(ch4, ch4, ks),
        )
        self.upconv3_u = _upconv(ch4, ch3)
        self.upconv3_1 = IFANResidualBlock(ch3, ks, 1)
        self.upconv3_2 = IFANResidualBlock(ch3, ks, 1)
        self.upconv2_u = _upconv(ch3, ch2)
        self.upconv2_1 = IFANResidualBlock(ch2, ks, 1)
        self.upconv2_2 = IFANResidualBlock(ch2, ks, 1)
        self.upconv1_u = _upconv(ch2, ch1)
        self.upconv1_1 = IFANResidualBlock(ch1, ks, 1)
        self.upconv1_2 = IFANResidualBlock(ch1, ks, 1)
        self.out_res = _conv(ch1, 3, ks)
        # filter encoder
        self.kconv1_1 = _conv(self.filter_input_channels, ch1, ks)
        self.kconv1_2 = _conv(ch1, ch1, ks)
        self.kconv1_3 = _conv(ch1, ch1, ks)
        self.kconv2_1 = _conv(ch1, ch2, ks, stride=2)
        self.kconv2_2 = _conv(ch2, ch2, ks)
        self.kconv2_3 = _conv(ch2, ch2, ks)
        self.kconv3_1 = _conv(ch2, ch3, ks, stride=2)
        self.kconv3_2 = _conv(ch3, ch3, ks)
        self.kconv3_3 = _conv(ch3, ch3, ks)
        self.kconv4_1 = _conv(ch3, ch4, ks, stride=2)
        self.kconv4_2 = _conv(ch4, ch4, ks)
        self.kconv4_3 = _conv(ch4, ch4, ks)
        # disparity map estimator (last conv: 3x3 to one channel, no activation)
        self.DME = nn.Sequential(
            _conv(ch4, ch4, ks),
            IFANResidualBlock(ch4, ks, res_num),
            IFANResidualBlock(ch4, ks, res_num),
            nn.Conv2d(ch4, 1, 3, padding=1),
        )
        # filter predictor
        self.conv_DME = _conv(1, ch4, 3)
        self.F = nn.Sequential(
            _conv(ch4, ch4, ks),
            IFANResidualBlock(ch4, ks, res_num),
            IFANResidualBlock(ch4, ks, res_num),
            nn.Conv2d(ch4, self.filter_dim, 1),
        )
        self.init_gain = float(init_gain)
        self.filter_init_gain = float(filter_init_gain)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation (uses torch's global RNG, like every torch initialiser).

        Xavier-uniform weights with gain ``init_gain`` (``wi`` = 1.0) for every (transposed)
        convolution, then gain ``filter_init_gain`` (``wiF`` = 1.5) for every convolution of the
        filter predictor ``F``; all biases 0. Modules are visited in the released code's order,
        so ``torch.manual_seed(s); IFAN()`` draws the same weights as the authors'
        ``torch.manual_seed(s); DeblurNet(cfg); net.init()`` at test time.
        """
        _xavier_init(self, self.init_gain)
        _xavier_init(self.F, self.filter_init_gain)

    # ------------------------------------------------------------------ building blocks
    def _encode_filter_features(self, filter_input: torch.Tensor) -> torch.Tensor:
        f = self.kconv1_3(self.kconv1_2(self.kconv1_1(filter_input)))
        f = self.kconv2_3(self.kconv2_2(self.kconv2_1(f)))
        f = self.kconv3_3(self.kconv3_2(self.kconv3_1(f)))
        return self.kconv4_3(self.kconv4_2(self.kconv4_1(f)))

    def _streamed_iac(self, f: torch.Tensor, features: torch.Tensor) -> Optional[torch.Tensor]:
        """IAC of ``features`` with the filter head ``F[3]`` evaluated one iteration at a time.

        Same values as ``pointwise_conv(self.F[3], f)`` split by :func:`split_filter_prediction`
        and fed to :func:`iterative_adaptive_convolution`, but the (B, N (2 C k + C), H, W)
        prediction (877 MB at 1280x720) is never formed: iteration ``n``'s 2 C k + C rows of the
        1x1 head are one ``baddbmm`` into a single reused (B, 2 C k + C, H W) buffer (51 MB),
        read by that iteration's filtering before the next overwrites it. The full prediction
        is a fresh mapping whose every page faults on first touch (~0.25 s of a 4.6 s one-thread
        pass, issue 14). Returns None (caller takes the plain path) unless this is a no-grad CPU
        pass whose ``f`` is channels-last in the head's dtype and ``features`` has that dtype.

        Under CPU autocast (``f`` and ``features`` in autocast's 16-bit dtype, the head in
        float32) it computes what the plain path does there: the head's product in the 16-bit
        dtype (as autocast's 1x1 convolution: 16-bit operands, one rounding of the result), the
        filtering in float32 (:func:`learned.models.iac.iterative_adaptive_convolution` upcasts
        its inputs) and a 16-bit result; only the head's summation order differs (issue 33).
        """
        head = self.F[3]
        weight = head.weight
        low = f.dtype != weight.dtype
        if low and not (f.dtype in LOW_PRECISION and torch.is_autocast_enabled("cpu")
                        and torch.get_autocast_dtype("cpu") == f.dtype):
            return None
        if not (f.device.type == "cpu" and f.ndim == 4 and f.is_contiguous(memory_format=torch.channels_last)
                and f.dtype == features.dtype and head.bias is not None
                and not needs_grad(f, features, weight, head.bias)):
            return None
        with torch.autocast("cpu", enabled=False):
            out = self._streamed_iac_loop(f, features.float() if low else features, low)
        return out.to(f.dtype) if low else out

    def _streamed_iac_loop(self, f: torch.Tensor, features: torch.Tensor, low: bool) -> torch.Tensor:
        """The loop of :meth:`_streamed_iac`; ``low``: the head in ``f``'s 16-bit dtype, IAC in float32."""
        head = self.F[3]
        n, c, k = self.iterations, self.iac_channels, self.filter_taps
        b, cin, h, w = f.shape
        taps = 2 * c * k
        # rows of iteration i: its [vertical | horizontal] taps, then its bias block
        w2 = head.weight.reshape(-1, cin)
        w_iter = torch.cat([w2[: n * taps].reshape(n, taps, cin), w2[n * taps :].reshape(n, c, cin)], 1)
        b_iter = torch.cat([head.bias[: n * taps].reshape(n, taps), head.bias[n * taps :].reshape(n, c)], 1)
        w_iter, b_iter = w_iter.to(f.dtype), b_iter.to(f.dtype)
        rows_t = f.permute(0, 2, 3, 1).reshape(b, h * w, cin).transpose(1, 2)  # views
        head_out = f.new_empty(b, taps + c, h * w)
        buffer = torch.empty_like(head_out, dtype=features.dtype) if low else head_out
        planes = buffer.view(b, taps + c, h, w)
        kernels_v = planes[:, : c * k].view(b, c, k, h, w)
        kernels_h = planes[:, c * k : taps].view(b, c, k, h, w)
        bias = planes[:, taps:]
        # the filtered features ping-pong between ``features`` (our own copy) and one buffer,
        # the vertical pass always goes to a second one: no fresh pages per iteration
        vertical, spare = torch.empty_like(features), torch.empty_like(features)
        out = features
        for i in range(n):
            torch.baddbmm(b_iter[i].view(1, -1, 1), w_iter[i].expand(b, -1, -1), rows_t, out=head_out)
            if low:
                buffer.copy_(head_out)
            result = iac_step(
                out, kernels_v, kernels_h, bias, negative_slope=_NEGATIVE_SLOPE, activate=True,
                reuse_vertical_kernel=self.reuse_vertical_kernel, buffers=(vertical, spare),
            )
            out, spare = result, out
        return out

    def _run(
        self, image: torch.Tensor, filter_input: torch.Tensor, keep_filters: bool = True
    ) -> Dict[str, torch.Tensor]:
        """Network on inputs already padded to a multiple of 8; returns every intermediate.

        With ``keep_filters`` False the result has no ``filters`` entry and the filter
        prediction may be streamed through IAC (:meth:`_streamed_iac`)."""
        # On the CPU the whole network runs channels-last (oneDNN's native layout: no reorder
        # copies around each convolution); same values, see learned.inference._speed.
        same = filter_input is image
        image = cpu_channels_last(image)
        filter_input = image if same else cpu_channels_last(filter_input)
        f1 = self.conv1_3(self.conv1_2(self.conv1_1(image)))
        f2 = self.conv2_3(self.conv2_2(self.conv2_1(f1)))
        f3 = self.conv3_3(self.conv3_2(self.conv3_1(f2)))
        f_c = self.conv4_3(self.conv4_2(self.conv4_1(f3)))

        f = self._encode_filter_features(filter_input)
        disparity = self.DME(f)
        f = self.conv4_4(torch.cat([f, self.conv_DME(disparity)], 1))
        f = self.F[2](self.F[1](self.F[0](f)))

        # IAC reads per-channel planes: it runs in NCHW (the filters already are), the
        # reconstructor again channels-last (both copies are 1/64 of the image size).
        # (f_c is not read after IAC: the streamed IAC may overwrite its NCHW copy)
        iac_output = None if keep_filters else self._streamed_iac(f, f_c.contiguous())
        filters = None
        if iac_output is None:
            filters = pointwise_conv(self.F[3], f)
            kernels_v, kernels_h, bias = split_filter_prediction(
                filters, self.iterations, self.iac_channels, self.filter_taps
            )
            iac_output = iterative_adaptive_convolution(
                f_c.contiguous(), kernels_v, kernels_h, bias,
                negative_slope=_NEGATIVE_SLOPE, activate_last=True,
                reuse_vertical_kernel=self.reuse_vertical_kernel,
            )

        f = self.conv_res(cpu_channels_last(iac_output))
        # The upsampling and output layers end in an in-place LeakyReLU whose result autograd
        # keeps: add the skips in place only when no gradient is needed.
        inplace = not needs_grad(f, image)
        skip_add = add_into if inplace else torch.add
        f = self.upconv3_2(self.upconv3_1(skip_add(self.upconv3_u(f), f3)))
        f = self.upconv2_2(self.upconv2_1(skip_add(self.upconv2_u(f), f2)))
        f = self.upconv1_2(self.upconv1_1(skip_add(self.upconv1_u(f), f1)))
        output = skip_add(self.out_res(f), image)
        results = {"output": output, "disparity": disparity, "iac_output": iac_output}
        if filters is not None:
            results["filters"] = filters
        return results

    def _check_dtype(self, x: torch.Tensor, name: str) -> None:
        weight = self.conv1_1[0].weight
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the network's parameters are {weight.dtype}; "
                f"convert one of them (e.g. model.to({x.dtype}))"
            )

    def _finish(
        self,
        results: Dict[str, torch.Tensor],
        size: tuple,
        clip: Optional[bool],
        return_aux: bool,
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        h, w = size
        unclipped = crop_to(results["output"], (h, w)).contiguous()
        do_clip = (not self.training) if clip is None else bool(clip)
        output = torch.clamp(unclipped, 0.0, 1.0) if do_clip else unclipped
        if not return_aux:
            return output
        h8, w8 = -(-h // self.multiple), -(-w // self.multiple)
        return {
            "output": output,
            "output_unclipped": unclipped,
            "disparity": crop_to(results["disparity"], (h8, w8)),
            "filters": crop_to(results["filters"], (h8, w8)),
            "iac_output": crop_to(results["iac_output"], (h8, w8)),
        }

    # ------------------------------------------------------------------ public API
    def forward(
        self, image: torch.Tensor, *, clip: Optional[bool] = None, return_aux: bool = False
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """Deblur a batch of RGB images.

        Parameters
        ----------
        image : torch.Tensor
            Defocused RGB images, shape (B, 3, H, W), values in [0, 1], H, W >= 8.
        clip : bool or None
            Clip the output to [0, 1]. None (default) clips in eval mode and not in training mode,
            as the authors' code does.
        return_aux : bool
            Return a dict with the intermediate results the training losses need.

        Returns
        -------
        torch.Tensor or dict
            The deblurred images (B, 3, H, W); with ``return_aux`` a dict with ``output``,
            ``output_unclipped`` (B, 3, H, W), ``disparity`` (B, 1, ceil(H/8), ceil(W/8)) (DME
            output, no activation), ``filters`` (B, 15232, ceil(H/8), ceil(W/8)) (filter
            predictor output, input of :class:`IFANReblurNetwork`) and ``iac_output``
            (B, 128, ceil(H/8), ceil(W/8)).
        """
        check_input(image, "image", 3, self.min_size)
        self._check_dtype(image, "image")
        padded, size = pad_to_multiple(image, self.multiple, self.pad_mode)
        return self._finish(self._run(padded, padded, keep_filters=return_aux), size, clip, return_aux)

    def estimate_disparity(self, filter_input: torch.Tensor) -> torch.Tensor:
        """Disparity map of the filter encoder + DME alone (used for the DPD training loss).

        Parameters
        ----------
        filter_input : torch.Tensor
            (B, 3, H, W) image for :class:`IFAN` (the authors pass the right view R in training),
            or concat(R, L) (B, 6, H, W) for :class:`IFANDual`.

        Returns
        -------
        torch.Tensor
            (B, 1, ceil(H/8), ceil(W/8)) disparity map (DME output, no activation).
        """
        check_input(filter_input, "filter_input", self.filter_input_channels, self.min_size)
        self._check_dtype(filter_input, "filter_input")
        padded, (h, w) = pad_to_multiple(filter_input, self.multiple, self.pad_mode)
        disparity = self.DME(self._encode_filter_features(padded))
        return crop_to(disparity, (-(-h // self.multiple), -(-w // self.multiple)))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, iterations={self.iterations}, filter_taps={self.filter_taps}, "
            f"reuse_vertical_kernel={self.reuse_vertical_kernel}, pad_mode={self.pad_mode!r}"
        )


class IFANDual(IFAN):
    """IFAN for dual-pixel input (``IFAN_dual`` of the released code).

    Same parameters as :class:`IFAN`. The filter encoder (hence DME and filter predictor) sees
    concat(R, L) (6 channels, right view first, as in the released code); the feature extractor
    and the output residual use the combined image C.

    References
    ----------
    .. [1] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
       Image Defocus Deblurring", CVPR 2021; supplementary material, "Dual-pixel images" and
       its Table 2 (Ours_D: the filter encoder is fed the two views concatenated).
    """

    filter_input_channels = 6

    def forward(  # type: ignore[override]
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        center: Optional[torch.Tensor] = None,
        *,
        clip: Optional[bool] = None,
        return_aux: bool = False,
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """Deblur from the two dual-pixel views and the combined image.

        Parameters
        ----------
        left, right : torch.Tensor
            Left and right dual-pixel views, (B, 3, H, W) RGB in [0, 1].
        center : torch.Tensor, optional
            The combined image C of the same shot, (B, 3, H, W) (DPDD's ``*_c`` images). When
            omitted, ``(left + right) / 2``: the dual-pixel image formation (K3DN Eq. 1-2), under
            which the full-aperture image is the mean of the two half-aperture views.
        clip, return_aux
            As in :meth:`IFAN.forward`.

        Returns
        -------
        torch.Tensor or dict
            As in :meth:`IFAN.forward`.
        """
        center = check_dual_pixel_inputs(left, right, center, self.min_size)
        for x, name in ((left, "left"), (right, "right"), (center, "center")):
            self._check_dtype(x, name)
        padded_c, size = pad_to_multiple(center, self.multiple, self.pad_mode)
        padded_rl, _ = pad_to_multiple(torch.cat([right, left], 1), self.multiple, self.pad_mode)
        return self._finish(self._run(padded_c, padded_rl, keep_filters=return_aux), size, clip, return_aux)


class IFANReblurNetwork(nn.Module):
    """Reblurring network (RBN) of IFAN, used only for the training loss.

    Predicts, from the deblurring network's filter prediction, per-pixel IAC filters that
    reblur the downsampled sharp image into the downsampled blurred input; the loss
    MSE(RBN(S, F), C at 1/8) forces the predicted filters to carry the defocus blur.

    Parameters
    ----------
    filter_channels : int
        Channels of the deblurring filter prediction it reads (15232 for the default IFAN).
    channels : int
        Hidden width (``4 ch`` = 128).
    kernel_size : int
        Odd convolution size (3).
    res_num : int
        Stems per residual block (2).
    iterations : int
        IAC iterations for reblurring (``RBF_num`` = 17).
    filter_taps : int
        IAC taps (``RBFs`` = 3).
    downsample_factor : int
        Resolution ratio between the sharp image and the filter prediction (8).
    reuse_vertical_kernel : bool
        Reproduce the released IAC bug (to match official training checkpoints).
    init_gain : float
        Xavier-uniform gain of the authors' initialisation (``wi`` = ``wiRF`` = 1.0; biases 0).

    Notes
    -----
    With :math:`S_\\downarrow` the sharp image subsampled by nearest neighbour (the released code
    calls ``interpolate(S, scale_factor=1/8)``, i.e. it takes every 8th pixel, whereas the loss
    target uses area downsampling), the output is
    :math:`\\mathrm{IAC}(S_\\downarrow; \\mathrm{RBF}(F)) + S_\\downarrow` with no activation after
    the last IAC iteration. Its head is a 3x3 conv to :math:`N (2 \\cdot 3 k + 3)` = 357 channels.

    References
    ----------
    .. [1] J. Lee, H. Son, J. Rim, S. Cho, S. Lee, "Iterative Filter Adaptive Network for Single
       Image Defocus Deblurring", CVPR 2021, Sec. 3.3 (reblurring network).
    """

    def __init__(
        self,
        filter_channels: int = 15232,
        channels: int = 128,
        kernel_size: int = 3,
        res_num: int = 2,
        iterations: int = 17,
        filter_taps: int = 3,
        downsample_factor: int = 8,
        reuse_vertical_kernel: bool = False,
        init_gain: float = 1.0,
    ) -> None:
        super().__init__()
        _check_config(filter_channels=filter_channels, channels=channels, kernel_size=kernel_size,
                      res_num=res_num, iterations=iterations, filter_taps=filter_taps,
                      downsample_factor=downsample_factor)
        if kernel_size % 2 == 0 or filter_taps % 2 == 0:
            raise ValueError(f"kernel_size and filter_taps must be odd; got {kernel_size} and {filter_taps}")
        self.filter_channels = filter_channels
        self.iterations = iterations
        self.filter_taps = filter_taps
        self.downsample_factor = downsample_factor
        self.reuse_vertical_kernel = bool(reuse_vertical_kernel)
        out_dim = iterations * (3 * filter_taps * 2) + iterations * 3
        self.RBF = nn.Sequential(
            _conv(filter_channels, channels, kernel_size),
            IFANResidualBlock(channels, kernel_size, res_num),
            IFANResidualBlock(channels, kernel_size, res_num),
            nn.Conv2d(channels, out_dim, 3, padding=1),
        )
        self.init_gain = float(init_gain)
        _xavier_init(self, self.init_gain)

    def forward(self, sharp: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        """Reblur the sharp image at the filters' resolution.

        Parameters
        ----------
        sharp : torch.Tensor
            Sharp RGB images (B, 3, H, W), H and W = ``downsample_factor`` x the filters' size.
        filters : torch.Tensor
            Filter prediction of the deblurring network, (B, filter_channels, H/8, W/8)
            (``IFAN(...)(x, return_aux=True)['filters']``).

        Returns
        -------
        torch.Tensor
            Reblurred images (B, 3, H/8, W/8).
        """
        check_input(sharp, "sharp", 3, self.downsample_factor)
        check_input(filters, "filters", self.filter_channels, 1)
        s = self.downsample_factor
        expected = (filters.shape[0], 3, filters.shape[2] * s, filters.shape[3] * s)
        if tuple(sharp.shape) != expected:
            raise ValueError(
                f"sharp must have shape {expected} (batch of filters, 3 channels, {s} x the filters' "
                f"spatial size); got {tuple(sharp.shape)}"
            )
        small = F.interpolate(sharp, scale_factor=1 / s, mode="nearest")
        kernels_v, kernels_h, bias = split_filter_prediction(self.RBF(filters), self.iterations, 3, self.filter_taps)
        reblurred = iterative_adaptive_convolution(
            small, kernels_v, kernels_h, bias,
            negative_slope=_NEGATIVE_SLOPE, activate_last=False,
            reuse_vertical_kernel=self.reuse_vertical_kernel,
        )
        return reblurred + small


MODELS = {
    "ifan": IFAN,
    "ifan_dual": IFANDual,
}
