r"""The papers' evaluation protocols, each as its authors' released code computes it.

A :class:`Protocol` fixes every step between the files on disk and the number in a table: the
bit depth the images are read at, the crop or pad applied to every image, the quantisation of
the output, the SSIM variant and the LPIPS input. :func:`prepare` applies the first two to the
arrays of a sample (input, target, dual-pixel views alike), :func:`score` the rest. The input
row of a table is the blurred input scored under the same protocol
(``python -m learned.evaluate --data SPEC --protocol NAME`` without ``--model``).

Protocols
---------
``none``
    Images as stored (8- or 16-bit, scaled by their bit depth), whole; PSNR, scikit-image SSIM,
    MAE, RMSE_rel, LPIPS on the clipped float output. This toolkit's own convention.
``ifan``
    IFAN's ``eval.py`` (codeslake/IFAN [66bf136]) with ``configs/config.py`` (``in_bit = 8``):
    images read by ``cv2.imread(path, cv2.IMREAD_COLOR)``, which keeps the *high byte* of a
    16-bit PNG (libpng ``png_set_strip_16``), divided by 255; every image cropped at the
    top-left to a multiple of 8 (``refine_image(.., 8)``); output clipped to [0, 1] by the
    network (``torch.clip`` in ``IFAN.py``), not quantised; PSNR ``10 log10(1 / MSE)``, SSIM
    ``structural_similarity(.., data_range=1, multichannel=True)`` (7x7 uniform window), MAE
    the mean of the per-channel ``mean_absolute_error``, LPIPS ``PerceptualLoss('net-lin',
    'alex')`` (v0.1) on ``x * 2 - 1``, RGB. Reproduces IFAN Table 2 (DPDD; the input row
    23.89 dB / 0.725 / MAE 0.0471 / LPIPS 0.349) and Table 3 (RealDOF, input 22.33 / 0.633 /
    0.0513 / 0.524); the DPDD and RealDOF input rows of NRKNet's Table 1 and K3DN's Table 1 are
    the same numbers.
``nrknet``
    NRKNet's ``test.py`` with ``data_v3.TestDataset`` (csZcWu/NRKNet [90fad36]): images read
    by ``cv2.imread(path)`` (high byte of 16-bit files, **BGR** order, never converted) and
    divided by 255; every image (input and target) reflect-padded on all four sides to the next
    multiple of 16 with ``pad = (ceil(n / 16) 16 - n) // 2`` per side (torchvision
    ``F.pad(.., [pad_w, pad_h], padding_mode='reflect')``; an odd difference leaves the size one
    short of the multiple), and the metrics computed **on the padded images**; output
    ``round(255 x)`` clamped to [0, 255]; PSNR on those 8-bit values (peak 255), SSIM
    ``pytorch_msssim.ssim(.., data_range=255)`` (11x11 Gaussian window, sigma 1.5, valid
    region); LPIPS ``lpips.LPIPS(net='alex')`` (v0.1) on ``round(255 x) / 255 * 2 - 1`` and
    the target ``* 2 - 1``, in BGR channel order. NRKNet Table 1 (DPDD, RealDOF) and Table 2
    (LFDOF). NRKNet's ``test.py`` never calls ``.eval()``, so its BatchNorm normalises with
    each test image's statistics: a model with ``batchnorm_stats`` (NRKNet) is run that way
    under this protocol (see ``learned.models.nrknet``).
``nrknet_rtf``
    ``nrknet`` for RTF: ``test.py`` crops ``[4:364, 4:364]`` before every metric, which removes
    exactly the padding of a 360x360 image (4 pixels a side up to 368; the crop implies RTF's
    images are 360x360, which we could not check without the data); here the padding is
    removed for any size.
    NRKNet Tables 1 and 2, RTF columns (input 24.200 / 0.717 / 0.248).
``kpac``
    KPAC's ``main_eval_3level.py`` (HyeongseokSon1/KPAC [8603ec3]): ``test_c/source`` images
    read by ``scipy.misc.imread(.., mode='RGB')`` (Pillow: high byte of 16-bit files), whole
    1680x1120 images, network input ``x / 127.5 - 1``, output saved as 8-bit PNG by
    ``scipy.misc.toimage(clip((y + 1) 127.5, 0, 255), cmin=0, cmax=255)``, i.e. rounded half
    up: ``floor(255 x + 0.5)``. The released code computes no metric; the 8-bit outputs are
    scored here with IFAN's metric definitions (an assumption of this toolkit, not a fact of
    the released code: KPAC's paper comes from IFAN's group; only its supplementary material,
    which gives no metric code, is in ``shared/papers``).
``dpdnet``
    DPDNet's ``main.py`` / ``data.py`` / ``metrics.py`` (Abdullah-Abuolaim/defocus-deblurring-
    dual-pixel [7ebf77e], ``config.py``: ``bit_depth = 16``, ``color_flag = -1``): the 16-bit
    files read as stored and divided by 65535; portrait images rotated 90 degrees counter-
    clockwise and every image resized to 1680x1120 (``cv2.resize``), which leaves DPDD's
    1680x1120 images unchanged, so other sizes are refused rather than resampled (rotation
    changes no metric); output not quantised; PSNR ``10 log10(1 / MSE)``, SSIM
    ``measure.compare_ssim(.., data_range=1, multichannel=True)`` (7x7 uniform window), MAE as
    IFAN's. LPIPS is not in DPDNet's code (its README points to richzhang's
    PerceptualSimilarity); it is computed as IFAN's. DPDNet (ECCV 2020) Table 1.

``registered``
    ``none`` after one global sub-pixel translation of each prediction onto its target (scoring
    side only, never the method's input): the shift is found by phase correlation of the
    channel means (``skimage.registration.phase_cross_correlation``, 1/20 px), applied with
    cubic interpolation (``scipy.ndimage.shift``), and every image (prediction and target) loses
    a border of ``REGISTER_BORDER`` = 8 px before scoring, whatever its shift, so rows of one
    table cover the same pixels. A shift beyond the border is an error. This toolkit's protocol
    for data whose ground truth is not aligned with the capture (Xin et al.'s Pixel 4 set: the
    all-in-focus image is offset from the views by about -0.9..+1.0 px in rows and -0.6..-3.3 px
    in columns); it rewards sharpness, not a particular alignment.

Channel order matters only for LPIPS (PSNR, SSIM and MAE are means over channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .. import metrics as M

__all__ = ["Protocol", "PROTOCOLS", "NAMES", "get_protocol", "read_as_8bit", "prepare", "quantise", "score",
           "reflect_pad_centred", "register_to", "REGISTER_BORDER"]


@dataclass(frozen=True)
class Protocol:
    """One paper's evaluation (see the module docstring for each field's source).

    Attributes
    ----------
    name : str
    read_8bit : bool
        Reduce every image to 8 bits as OpenCV / Pillow do for 16-bit files (high byte).
    crop_multiple : int or None
        Crop every image at the top-left to this multiple (IFAN: 8).
    pad_multiple : int or None
        Reflect-pad every image on all sides towards this multiple, NRKNet's way.
    unpad : bool
        Remove that padding again before scoring (NRKNet on RTF).
    quantise : {'none', 'round', 'round_half_up'}
        Output to 8 bits before scoring: ``round`` = ``torch.round`` (half to even),
        ``round_half_up`` = ``floor(255 x + 0.5)`` (scipy ``toimage``).
    ssim_gaussian : bool
        11x11 Gaussian SSIM (pytorch_msssim) instead of scikit-image's 7x7 uniform window.
    lpips_bgr : bool
        Feed LPIPS the channels in BGR order (NRKNet never converts OpenCV's order).
    size : (int, int) or None
        Required (H, W) up to a 90-degree rotation (DPDNet's fixed 1120x1680 resize).
    batch_statistics : bool
        Run a network that has BatchNorm (NRKNet's coefficient module) on the statistics of
        each test image, as a script that never calls ``.eval()`` does (NRKNet's ``test.py``);
        its published numbers come from that mode (``batchnorm_stats='batch'`` of
        :class:`learned.models.nrknet.NRKNet`).
    register : bool
        Translate the prediction onto the target by one global sub-pixel shift and drop a
        ``REGISTER_BORDER`` px border before scoring (:func:`register_to`).
    """

    name: str
    read_8bit: bool = False
    crop_multiple: Optional[int] = None
    pad_multiple: Optional[int] = None
    unpad: bool = False
    quantise: str = "none"
    ssim_gaussian: bool = False
    lpips_bgr: bool = False
    size: Optional[Tuple[int, int]] = None
    batch_statistics: bool = False
    register: bool = False

    def __post_init__(self) -> None:
        if self.quantise not in ("none", "round", "round_half_up"):
            raise ValueError(f"quantise must be 'none', 'round' or 'round_half_up'; got {self.quantise!r}")


PROTOCOLS: Dict[str, Protocol] = {
    "none": Protocol("none"),
    "ifan": Protocol("ifan", read_8bit=True, crop_multiple=8),
    "nrknet": Protocol("nrknet", read_8bit=True, pad_multiple=16, quantise="round", ssim_gaussian=True, lpips_bgr=True,
                       batch_statistics=True),
    "nrknet_rtf": Protocol("nrknet_rtf", read_8bit=True, pad_multiple=16, unpad=True, quantise="round",
                           ssim_gaussian=True, lpips_bgr=True, batch_statistics=True),
    "kpac": Protocol("kpac", read_8bit=True, quantise="round_half_up"),
    "dpdnet": Protocol("dpdnet", size=(1120, 1680)),
    "registered": Protocol("registered", register=True),
}
NAMES = tuple(PROTOCOLS)


def get_protocol(protocol) -> Protocol:
    """A :class:`Protocol` from its name (or the protocol itself)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {NAMES}; got {protocol!r}")
    return PROTOCOLS[protocol]


def read_as_8bit(image: np.ndarray) -> np.ndarray:
    r"""The 8-bit image OpenCV / Pillow read from the file behind ``image``, over 255.

    ``image`` holds ``v / 65535`` of a 16-bit file or ``k / 255`` of an 8-bit one. For 16 bit
    the readers keep the high byte, ``floor(v / 256)``; the same formula returns ``k`` for an
    8-bit file, since ``k / 255 * 65535 = 257 k`` and ``floor(257 k / 256) = k`` for k < 256:

    .. math:: x_8 = \lfloor \mathrm{round}(65535 x) / 256 \rfloor / 255
    """
    v = np.round(image.astype(np.float64) * 65535.0)
    return (np.floor(v / 256.0) / 255.0).astype(image.dtype)


def _centred_pads(n: int, multiple: int) -> int:
    return (math.ceil(n / multiple) * multiple - n) // 2


def reflect_pad_centred(image: np.ndarray, multiple: int) -> np.ndarray:
    """NRKNet's test padding: ``(ceil(n/m) m - n) // 2`` reflected pixels on each side of H and W."""
    ph, pw = _centred_pads(image.shape[0], multiple), _centred_pads(image.shape[1], multiple)
    if ph >= image.shape[0] or pw >= image.shape[1]:
        raise ValueError(f"image {image.shape[:2]} is too small to reflect-pad by {(ph, pw)}")
    return np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode="reflect")


def prepare(arrays: Dict[str, np.ndarray], protocol) -> Dict[str, np.ndarray]:
    """Bit depth, crop and pad of ``protocol`` applied alike to every (H, W, 3) image of a sample."""
    p = get_protocol(protocol)
    H, W = arrays["input"].shape[:2]
    if p.size is not None and (H, W) not in (p.size, p.size[::-1]):
        raise ValueError(f"the {p.name} protocol resizes every image to {p.size[0]}x{p.size[1]} (DPDD's size), which "
                         f"changes only images of another size; got {H}x{W}: use --protocol none for this dataset")
    out = arrays
    if p.read_8bit:
        out = {k: read_as_8bit(v) for k, v in out.items()}
    if p.crop_multiple:
        m = p.crop_multiple
        h, w = H - H % m, W - W % m
        if h == 0 or w == 0:
            raise ValueError(f"image {(H, W)} is smaller than {m} pixels; the {p.name} protocol crops to a multiple of {m}")
        out = {k: v[:h, :w] for k, v in out.items()}
    if p.pad_multiple:
        out = {k: reflect_pad_centred(v, p.pad_multiple) for k, v in out.items()}
    return out


def unpad(image: np.ndarray, original: Tuple[int, int], multiple: int) -> np.ndarray:
    """Undo :func:`reflect_pad_centred` for an image of ``original`` (H, W)."""
    ph, pw = _centred_pads(original[0], multiple), _centred_pads(original[1], multiple)
    return image[ph : ph + original[0], pw : pw + original[1]]


def quantise(image: np.ndarray, mode: str) -> np.ndarray:
    """8-bit quantisation of a [0, 1] image: ``round`` (half to even) or ``round_half_up``."""
    if mode == "none":
        return image
    x = image.astype(np.float64) * 255.0
    q = np.round(x) if mode == "round" else np.floor(x + 0.5)
    return (np.clip(q, 0.0, 255.0) / 255.0).astype(image.dtype)


#: Border (pixels) every image loses under the ``registered`` protocol; also the largest shift allowed.
REGISTER_BORDER = 8


def register_to(prediction: np.ndarray, target: np.ndarray, border: int = REGISTER_BORDER):
    """(prediction shifted onto target, target), both without a ``border`` px frame, and the shift (dy, dx).

    One global translation found by phase correlation of the channel means to 1/20 px
    (``skimage.registration.phase_cross_correlation``), applied to every channel with cubic
    interpolation (``scipy.ndimage.shift``, edge values beyond the border).
    """
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    a = prediction.mean(axis=2) if prediction.ndim == 3 else prediction
    b = target.mean(axis=2) if target.ndim == 3 else target
    if min(a.shape) <= 2 * border + 8:
        raise ValueError(f"images of {a.shape[0]}x{a.shape[1]} are too small to register with a {border} px border")
    # zero-mean images: the mean's large, flat correlation would pull the peak towards no shift
    shift, _, _ = phase_cross_correlation(b - b.mean(dtype=np.float64), a - a.mean(dtype=np.float64), upsample_factor=20,
                                          normalization=None)
    if np.max(np.abs(shift)) > border:
        raise ValueError(f"registration found a shift of {tuple(np.round(shift, 2))} px, beyond the {border} px border; "
                         "is this the right ground truth?")
    if prediction.ndim == 3:
        moved = np.stack([ndimage.shift(prediction[..., c].astype(np.float64), shift, order=3, mode="nearest")
                          for c in range(prediction.shape[2])], axis=2)
    else:
        moved = ndimage.shift(prediction.astype(np.float64), shift, order=3, mode="nearest")
    inner = (slice(border, -border), slice(border, -border))
    return np.clip(moved[inner], 0, 1).astype(prediction.dtype), target[inner], (float(shift[0]), float(shift[1]))


def score(prediction: np.ndarray, target: np.ndarray, protocol="none", *,
          lpips_metric: Optional[Callable[[np.ndarray, np.ndarray], float]] = None,
          original_size: Optional[Tuple[int, int]] = None) -> Dict[str, float]:
    """PSNR, SSIM, MAE, RMSE_rel and LPIPS of one prepared image under ``protocol``.

    ``original_size`` is the (H, W) before padding, needed by protocols that remove it
    (``nrknet_rtf``).
    """
    p = get_protocol(protocol)
    if p.unpad:
        if original_size is None:
            raise ValueError(f"the {p.name} protocol needs the image size before padding (original_size)")
        prediction = unpad(prediction, original_size, p.pad_multiple)
        target = unpad(target, original_size, p.pad_multiple)
    if p.register:
        prediction, target, _ = register_to(np.clip(prediction, 0, 1), target)
    prediction = quantise(prediction, p.quantise)
    if p.quantise == "round":
        target = quantise(target, "round")  # NRKNet rounds the target too (a no-op on 8-bit files)
    order = (slice(None), slice(None), slice(None, None, -1)) if p.lpips_bgr else Ellipsis
    return {
        "psnr": M.psnr(prediction, target),
        "ssim": M.ssim(prediction, target, gaussian=p.ssim_gaussian),
        "mae": M.mae(prediction, target),
        "rmse_rel": M.rmse_rel(prediction, target),
        "lpips": lpips_metric(prediction[order], target[order]) if lpips_metric is not None else math.nan,
    }
