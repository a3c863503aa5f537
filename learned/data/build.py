r"""Datasets for training and evaluation: ``build_dataset(spec, split, ...)``.

A *spec* names a dataset kind and, for datasets on disk, its root folder:

==================  ==========================================================================
spec                layout (``split`` in {'train', 'val', 'test'} unless said otherwise)
==================  ==========================================================================
``synthetic``       rendered on the fly by :func:`optics.render.synthesize.synthesize_scene`, dual-pixel
                    views included; options after a colon, e.g.
                    ``synthetic:size=64,count=128,test_count=16,max_coc=8`` (see
                    :class:`SyntheticDataset`). The val and test splits are fixed (they do not
                    depend on ``seed``) and drawn from other random streams than training.
                    ``synthetic:sensor=pixel4`` renders raw linear green Pixel 4 scenes (field,
                    vignetting, noise, 14 bit, real defocus range) as the ``pixeldp`` reader gives
                    the real ones; ``noise=off``, ``vignetting=off``, ``psf=butterworth`` ablate.
``dpdd:PATH``       DPDD (Abuolaim & Brown, ECCV 2020) and ``python -m optics.render.synthesize``'s
                    output: ``PATH/{split}_c/source`` (blurred centre view),
                    ``PATH/{split}_c/target`` (all-in-focus), ``PATH/{split}_l/source`` and
                    ``PATH/{split}_r/source`` (dual-pixel views; both or neither). Paired by
                    sorted order per folder, as the authors do (source and target of a DPDD
                    scene are different frames, ``1P0A0917`` <-> ``1P0A0916``).
``lfdof:PATH``      LFDOF (Ruan et al., TCI 2021): ``PATH/{train,test}_data/input/SCENE/*.png``
                    (several renderings per scene; files directly in ``input/`` are matched by
                    the part of their stem before ``_ap``, as ``IMG_1275_ap1_00.png``) and
                    ``PATH/{split}_data/ground_truth/SCENE.png``. Splits train and test.
``realdof:PATH``    RealDOF (Lee et al., CVPR 2021): ``PATH/source``, ``PATH/target``. Test only.
``rtf:PATH``        RTF (D'Andres et al., TIP 2016): ``PATH/image/0/image_NN.png`` with
                    ``PATH/GT/sharp_NN.png``; without ``GT/``, inputs only. Test only.
``cuhk:PATH``       CUHK blur detection set (Shi et al., CVPR 2014), inputs only: images in
                    ``PATH/image``, ``PATH/source`` or ``PATH``; the motion-blurred ``motion*``
                    files are left out with a warning that counts them. Test only.
``pixeldp:PATH``    Pixel 4 dual-pixel data. Xin et al. (ICCV 2021) layout:
                    ``PATH/NNN_left.png``, ``PATH/NNN_right.png`` (raw green channel, 14 bit,
                    black level 1024; cropped centrally to the ground truth's size) and
                    ``PATH/gt_all_in_focus_im/NNN_gt.png``; or Abuolaim & Brown's Pixel set as
                    read by IFAN: ``PATH/test_{c,l,r}`` (files directly there or in
                    ``source/``), inputs only. Test only.
``list:FILE``       ``input,target`` lines (NRKNet's ``Dataset_*`` files), paths relative to
                    ``root=DIR`` (``list:FILE,root=DIR``; default the list's folder). One split:
                    ``split=NAME``, else the one its file name names, else test; other splits
                    from the sibling list named for them (``Dataset_test_DPDD``).
``folder:PATH``     any input/target pairs: ``PATH/input`` (or ``source``) and ``PATH/target``
                    (or ``gt``); with split subfolders ``PATH/{split}/input`` when they exist.
==================  ==========================================================================

The real datasets' layouts, naming and sources are in :mod:`learned.datasets` (``python -m
learned.datasets check SPEC`` checks a download). ``folder:`` files are matched by stem (DPDD's by
sorted order, see above); a file without a partner, a missing folder, an empty folder, an
unreadable image, a 4-channel PNG or a pair of different sizes raises an error that names the
files: nothing is skipped silently. 8- and 16-bit PNG (read losslessly with pypng), JPEG, BMP
and TIFF are read by :func:`learned.data.io.read_image` and scaled to [0, 1] by their bit depth.

Samples are dicts of float32 tensors ``(3, H, W)`` in [0, 1]: ``'input'`` (blurred centre
image), ``'target'`` (absent for inputs-only sets), ``'left'``, ``'right'`` (dual-pixel views,
when the set has them) and ``'name'`` (str).

Randomness
----------
Crops and augmentations of ``dataset[i]`` come from ``np.random.default_rng([seed, 0, i])``, and
of ``dataset[(i, sample_seed)]`` from ``default_rng([seed, 1, sample_seed, i])``: a sample is a
pure function of its key (no global random state), identical in any worker process. Use the
second form to draw a new crop of the same image at every step. ``augment=True`` applies one
of the 8 flips/rotations by 90 degrees to all images of a sample; for a dual-pixel sample only the
4 that keep the views horizontal are drawn, and a horizontal flip swaps ``'left'`` and
``'right'`` (a mirrored left view is a right view). ``ifan_augment`` adds IFAN's noise /
grayscale / rescale augmentation (:class:`IFANAugmentation`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import read_image
from .readers import IMAGE_SUFFIXES, ImageRecord, Reader, _pair_records, parse_list_spec

__all__ = [
    "build_dataset",
    "parse_spec",
    "ImageRecord",
    "FileDataset",
    "SyntheticDataset",
    "IFANAugmentation",
    "SPEC_KINDS",
    "IMAGE_SUFFIXES",
    "area_resize",
    "ifan_grayscale",
]

SPEC_KINDS = ("synthetic", "dpdd", "lfdof", "realdof", "rtf", "cuhk", "pixeldp", "folder", "list")
SPLITS = ("train", "val", "test")

SampleKey = Union[int, Tuple[int, int]]


# ==================================================================================================
# Spec parsing
# ==================================================================================================
def parse_spec(spec: str) -> Tuple[str, Optional[Path], Dict[str, str]]:
    """Split ``'kind:PATH'`` / ``'synthetic[:k=v,...]'`` into ``(kind, path or None, options)``."""
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec must be a non-empty string such as 'synthetic' or 'dpdd:/data/dpdd'; got {spec!r}")
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in SPEC_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r} in spec {spec!r}; choose from {SPEC_KINDS}")
    if kind == "synthetic":
        options: Dict[str, str] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise ValueError(f"synthetic options must be key=value pairs separated by commas; got {item!r} in {spec!r}")
            options[key.strip()] = value.strip()
        return kind, None, options
    if not sep or not rest:
        raise ValueError(f"spec {spec!r} needs a folder: '{kind}:PATH'" if kind != "list" else
                         f"spec {spec!r} needs a list file: 'list:FILE[,root=DIR]'")
    if kind == "list":
        return (kind, *parse_list_spec(rest))
    return kind, Path(rest).expanduser(), {}


def _check_split(split: Any, allowed: Sequence[str], dataset: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if split not in allowed:
        raise ValueError(f"the {dataset} dataset has no {split!r} split (it has {tuple(allowed)})")
    return split


def _check_crop(crop: Any) -> Optional[int]:
    if crop is None:
        return None
    if isinstance(crop, bool) or not isinstance(crop, numbers.Integral) or crop < 1:
        raise ValueError(f"crop must be a positive integer side length or None; got {crop!r}")
    return int(crop)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    return int(seed)


# ==================================================================================================
# Augmentation
# ==================================================================================================
@dataclass(frozen=True)
class IFANAugmentation:
    """IFAN's photometric and scale augmentation, as in its released ``DP_datasets_lr_aug.py``.

    In this order, each with its own probability: Gaussian noise (one noise field, sigma drawn
    from ``noise_sigma``, added to *every* image of the sample, the target included, and clipped
    to [0, 1], as the released code does), grayscale (:func:`ifan_grayscale` on every image) and
    rescaling by a factor from ``rescale_range`` (pixel-area averaging, OpenCV's ``INTER_AREA``;
    see :func:`area_resize`). With a crop, rescaling takes a window of side ``ceil(crop / s)``
    and resizes it to ``crop`` (the same as cropping the rescaled image, without resizing the
    whole photo).

    Notes
    -----
    The released code draws a variance and then uses the maximum sigma (0.0707) whenever noise
    is added; ``noise_sigma`` follows the documented intent, sigma ~ U(0.001, 0.0707).

    References
    ----------
    J. Lee et al., "Iterative filter adaptive network for single image defocus deblurring",
    CVPR 2021 (released code ``data_loader/DP_datasets_lr_aug.py``).
    """

    noise_prob: float = 0.05
    noise_sigma: Tuple[float, float] = (0.001, 0.0707)
    grayscale_prob: float = 0.3
    rescale_prob: float = 0.5
    rescale_range: Tuple[float, float] = (0.7, 1.0)

    def __post_init__(self) -> None:
        for name in ("noise_prob", "grayscale_prob", "rescale_prob"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or not 0 <= v <= 1:
                raise ValueError(f"{name} must lie in [0, 1]; got {v!r}")
        lo, hi = self.rescale_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"rescale_range must satisfy 0 < low <= high <= 1; got {self.rescale_range!r}")
        lo, hi = self.noise_sigma
        if not 0 <= lo <= hi:
            raise ValueError(f"noise_sigma must satisfy 0 <= low <= high; got {self.noise_sigma!r}")


def ifan_grayscale(image: np.ndarray) -> np.ndarray:
    r"""IFAN's ``color_to_gray``: Rec. 709 luminance of the values, sRGB-encoded, on 3 channels.

    Notes
    -----
    .. math:: Y = 0.2126 R + 0.7152 G + 0.07228 B, \quad
              g = \begin{cases} 12.92 Y & Y \le 0.0031308 \\ 1.055 Y^{1/2.4} - 0.055 & \text{else} \end{cases}

    (the coefficients, including 0.07228, are those of the released code, which treats the
    stored values as linear).
    """
    y = 0.2126 * image[..., 0] + 0.7152 * image[..., 1] + 0.07228 * image[..., 2]
    g = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(np.maximum(y, 0.0), 1.0 / 2.4) - 0.055)
    return np.repeat(g[..., None], 3, axis=-1).astype(image.dtype, copy=False)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) pixel-area averaging weights for downscaling ``n_in`` samples to ``n_out``."""
    scale = n_in / n_out
    starts = np.arange(n_out)[:, None] * scale
    ends = starts + scale
    left = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(ends, left + 1) - np.maximum(starts, left), 0.0, None)
    return overlap / scale


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    r"""Downscale an (H, W, C) image by pixel-area averaging (OpenCV ``INTER_AREA`` for shrinking).

    Each output pixel is the mean of the input over its footprint, fractional pixels weighted by
    the covered area: ``out = A_h @ image @ A_w^T`` per channel with ``A[j, i] = |[j s, (j+1) s)
    \cap [i, i+1)| / s`` and ``s = n_in / n_out``.
    """
    H, W = image.shape[:2]
    if not (1 <= height <= H and 1 <= width <= W):
        raise ValueError(f"area_resize only shrinks: target ({height}, {width}) must lie within the image {(H, W)}")
    a_h = _area_matrix(H, height).astype(image.dtype)
    a_w = _area_matrix(W, width).astype(image.dtype)
    return np.einsum("jh,hwc,kw->jkc", a_h, image, a_w, optimize=True)


def _dual_pixel_safe(k: int, flip: bool) -> bool:
    # transforms that keep the dual-pixel baseline horizontal: rotations by 0 / 180 degrees
    return k % 2 == 0


def _apply_dihedral(arrays: Dict[str, np.ndarray], k: int, flip: bool) -> Dict[str, np.ndarray]:
    out = {}
    for key, a in arrays.items():
        if flip:
            a = a[:, ::-1]
        out[key] = np.rot90(a, k, axes=(0, 1))
    # a rotation by 180 degrees mirrors left-right as well: net horizontal mirror when flip != (k == 2)
    if "left" in out and "right" in out and (flip != (k % 4 == 2)):
        out["left"], out["right"] = out["right"], out["left"]
    return out


# ==================================================================================================
# Sample processing shared by every dataset
# ==================================================================================================
_VIEW_ORDER = ("input", "target", "left", "right")
#: Arrays a sample may carry besides the views: the physics estimate (H, W, 3) and its signed
#: defocus map (H, W, 1) of :func:`optics.dual_pixel.deblur.dual_pixel_deblur` (``synthetic:...,physics=on``).
_PHYSICS_ORDER = ("physics", "defocus")


class _Sampler:
    """Crop, augment and convert the full-size arrays of one sample."""

    def __init__(self, crop: Optional[int], augment: bool, random_crop: bool,
                 ifan_augment: Optional[IFANAugmentation]) -> None:
        self.crop = _check_crop(crop)
        self.augment = bool(augment)
        self.random_crop = bool(random_crop)
        if ifan_augment is True:
            ifan_augment = IFANAugmentation()
        if ifan_augment is not None and ifan_augment is not False and not isinstance(ifan_augment, IFANAugmentation):
            raise TypeError(f"ifan_augment must be an IFANAugmentation, True or None; got {type(ifan_augment).__name__}")
        self.ifan = ifan_augment or None

    def __call__(self, arrays: Dict[str, np.ndarray], name: str, rng: np.random.Generator) -> dict:
        shapes = {k: v.shape for k, v in arrays.items()}
        if len({v[:2] for v in shapes.values()}) != 1:
            raise ValueError(f"sample {name!r}: images must all have the same size; got {shapes}")
        H, W = arrays["input"].shape[:2]
        ifan = self.ifan
        if ifan is not None:
            if rng.random() < ifan.noise_prob:
                sigma = rng.uniform(*ifan.noise_sigma)
                noise = rng.normal(0.0, sigma, size=arrays["input"].shape).astype(np.float32)
                arrays = {k: np.clip(v + noise, 0.0, 1.0) for k, v in arrays.items()}
            if rng.random() < ifan.grayscale_prob:
                arrays = {k: ifan_grayscale(v) for k, v in arrays.items()}
            if rng.random() < ifan.rescale_prob:
                s = rng.uniform(*ifan.rescale_range)
                if self.crop is None:
                    h, w = max(1, int(H * s)), max(1, int(W * s))
                    arrays = {k: area_resize(v, h, w) for k, v in arrays.items()}
                else:
                    side = min(math.ceil(self.crop / s), H, W)
                    if side > self.crop:
                        top, left = self._corner(H, W, side, rng, name)
                        arrays = {k: area_resize(v[top : top + side, left : left + side], self.crop, self.crop)
                                  for k, v in arrays.items()}
                H, W = arrays["input"].shape[:2]
        if self.crop is not None:
            top, left = self._corner(H, W, self.crop, rng, name)
            arrays = {k: v[top : top + self.crop, left : left + self.crop] for k, v in arrays.items()}
        if self.augment:
            dual = "left" in arrays and "right" in arrays
            choices = [(k, f) for k in range(4) for f in (False, True) if not dual or _dual_pixel_safe(k, f)]
            k, flip = choices[int(rng.integers(len(choices)))]
            arrays = _apply_dihedral(arrays, k, flip)
        sample: dict = {k: torch.from_numpy(np.ascontiguousarray(arrays[k].transpose(2, 0, 1), dtype=np.float32))
                        for k in _VIEW_ORDER + _PHYSICS_ORDER if k in arrays}
        sample["name"] = name
        return sample

    def _corner(self, H: int, W: int, side: int, rng: np.random.Generator, name: str) -> Tuple[int, int]:
        if side > H or side > W:
            raise ValueError(
                f"sample {name!r} of size {(H, W)} is smaller than the crop {side}x{side}; "
                "use a smaller crop (nothing is resized or padded silently)"
            )
        if self.random_crop:
            return int(rng.integers(H - side + 1)), int(rng.integers(W - side + 1))
        return (H - side) // 2, (W - side) // 2


def _sample_rng(seed: int, key: SampleKey, length: int) -> Tuple[int, np.random.Generator]:
    if isinstance(key, tuple):
        if len(key) != 2:
            raise TypeError(f"a dataset key is an index or a pair (index, sample_seed); got {key!r}")
        index, sample_seed = key
        index, sample_seed = _check_index(index, length), _check_seed(sample_seed)
        return index, np.random.default_rng([seed, 1, sample_seed, index])
    index = _check_index(key, length)
    return index, np.random.default_rng([seed, 0, index])


def _check_index(index: Any, length: int) -> int:
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"dataset index must be an integer; got {type(index).__name__}")
    index = int(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} samples")
    return index


# ==================================================================================================
# Datasets on disk
# ==================================================================================================
def _read_rgb(path: Path) -> np.ndarray:
    image, _ = read_image(path)
    return image


class FileDataset(Dataset):
    """Samples read from :class:`ImageRecord` files, cropped and augmented on access.

    Parameters
    ----------
    records : sequence of ImageRecord
        Non-empty.
    crop : int or None
        Side of square crops (None: whole images).
    augment : bool
        Random flips / rotations by 90 degrees (see the module docstring).
    seed : int
        Seeds every random choice (see the module docstring).
    random_crop : bool
        Random crop positions (default) or centred crops.
    ifan_augment : IFANAugmentation, True or None
    readers : mapping, optional
        Per view ('input', 'target', 'left', 'right') a function ``Path -> (H, W, 3) float32``;
        default :func:`learned.data.io.read_image`.
    centre_from_views : bool
        The blurred input is ``(left + right) / 2`` (for sets that store only the two views).
    description : str
        Used in error messages (e.g. ``'dpdd:/data/dpdd test'``).
    """

    def __init__(self, records: Sequence[ImageRecord], *, crop: Optional[int] = None, augment: bool = False,
                 seed: int = 0, random_crop: bool = True, ifan_augment: Optional[IFANAugmentation] = None,
                 readers: Optional[Mapping[str, Reader]] = None, centre_from_views: bool = False,
                 description: str = "dataset") -> None:
        records = list(records)
        if not records:
            raise ValueError(f"{description}: no samples")
        for r in records:
            if not isinstance(r, ImageRecord):
                raise TypeError(f"records must be ImageRecord objects; got {type(r).__name__}")
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{description}: duplicate sample names {dup[:10]}")
        self.records = records
        self.seed = _check_seed(seed)
        self.description = description
        self.centre_from_views = bool(centre_from_views)
        self.readers: Dict[str, Reader] = {k: _read_rgb for k in _VIEW_ORDER}
        self.readers.update(dict(readers or {}))
        self._sampler = _Sampler(crop, augment, random_crop, ifan_augment)

    @property
    def has_target(self) -> bool:
        return all(r.target is not None for r in self.records)

    @property
    def has_dual_pixel(self) -> bool:
        return all(r.left is not None and r.right is not None for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def sample_name(self, index: int) -> str:
        """Name of sample ``index`` (the file stem)."""
        return self.records[_check_index(index, len(self))].name

    def load(self, index: int) -> Dict[str, np.ndarray]:
        """The full-size (H, W, 3) float32 arrays of sample ``index`` (no crop, no augmentation)."""
        record = self.records[_check_index(index, len(self))]
        arrays: Dict[str, np.ndarray] = {}
        for key in _VIEW_ORDER:
            path = getattr(record, key)
            if path is None:
                continue
            if key == "input" and self.centre_from_views:
                continue
            try:
                arrays[key] = self.readers[key](path)
            except (ValueError, FileNotFoundError, OSError) as err:
                raise type(err)(f"{self.description}, sample {record.name!r} ({key}): {err}") from err
        if self.centre_from_views:
            arrays["input"] = 0.5 * (arrays["left"] + arrays["right"])
        shapes = {k: v.shape[:2] for k, v in arrays.items()}
        if len(set(shapes.values())) != 1:
            files = {k: str(getattr(record, k)) for k in arrays if getattr(record, k) is not None}
            raise ValueError(f"{self.description}, sample {record.name!r}: image sizes differ {shapes} (files {files})")
        return arrays

    def __getitem__(self, key: SampleKey) -> dict:
        index, rng = _sample_rng(self.seed, key, len(self))
        return self._sampler(self.load(index), self.records[index].name, rng)


# ==================================================================================================
# Synthetic data
# ==================================================================================================
_SYNTHETIC_ENTROPY = 0x5EED_DEF0C05
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _srgb_image(linear: np.ndarray, what: str) -> np.ndarray:
    from optics.render.synthesize import srgb_encode

    lo, hi = float(linear.min()), float(linear.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{what}: rendered intensities must lie in [0, 1] up to FFT rounding; got [{lo}, {hi}]")
    # clip only the FFT rounding (|excess| <= 1e-3, checked above), as optics.render.synthesize does
    return srgb_encode(np.clip(linear.astype(np.float64), 0.0, 1.0)).astype(np.float32)


def _spread_evenly(index: int, fraction: float) -> bool:
    """Whether item ``index`` is one of a ``fraction`` of items spread evenly over the indices
    (true where ``floor(i f)`` steps up: every ``1/f``-th item)."""
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


#: Range of the largest |CoC| (px) of the nearly in-focus training scenes (``in_focus_fraction``).
IN_FOCUS_COC = (0.25, 1.0)


#: ``synthetic:sensor=...``: ``'none'`` (sRGB colour scenes) or ``'pixel4'`` (raw Pixel 4 scenes).
SENSORS = ("none", "pixel4")
#: PSF cell of the physics estimate on synthetic scenes (that of Xin et al.'s calibration grid).
PHYSICS_CELL = 168
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SyntheticDataset(Dataset):
    """Dual-pixel scenes rendered on the fly by :func:`optics.render.synthesize.synthesize_scene`.

    Parameters
    ----------
    split : {'train', 'val', 'test'}
    size : int
        Side of the rendered square scenes (default 128, the held-out scenes' size; for training
        ``max(128, crop)``: crops are drawn at random from the scenes).
    count : int
        Number of distinct scenes of the split (defaults: train 256, val 8, test 16).
    seed : int
        Selects the training scenes; val and test scenes do not depend on it (fixed held-out sets).
    crop, augment, random_crop, ifan_augment
        As :class:`FileDataset`.
    max_coc : float
        Largest |CoC| radius of a scene in pixels is drawn from [``min_coc``, ``max_coc``].
    psf : {'random', 'half_disc', 'butterworth', 'calibrated'}
        Dual-pixel PSF model (``psf_model`` of :func:`optics.render.synthesize.synthesize_scene`);
        ``'calibrated'`` renders with the field-varying PSF pairs fitted to the Pixel 4
        calibration (:func:`optics.dual_pixel.pixel4.pixel4_dual_pixel_field`).
    sensor : {'none', 'pixel4'}
        ``'pixel4'``: sensor-matched raw scenes (:func:`optics.render.pixel4_raw.synthesize_pixel4_raw`):
        the green plane of a dead-leaves scene, linear (no sRGB), replicated to 3 channels as the
        ``pixeldp`` reader does; the Pixel 4 field (``psf='calibrated'``, the default here, or
        ``'butterworth'`` for the ablation), defocus drawn from the real scenes' range (-0.9 to 1.6
        x the calibration CoC; ``max_coc``/``min_coc`` do not apply), the right view's vignetting
        and its correction by the reader, the measured Poisson-Gaussian noise and 14-bit
        quantisation; ``'input'`` is the mean of the corrected views, as the reader's. Val and
        test scenes are dead leaves too. Default ``'none'``: the sRGB colour scenes above.
    noise, vignetting : bool
        ``sensor='pixel4'`` only: leave out the noise or the vignetting (ablations); default on.
    depth : {'dead_leaves', 'smooth'}
        ``sensor='pixel4'`` only: one depth per dead leaf (default) or piecewise-smooth depth
        (:func:`optics.render.pixel4_raw.piecewise_smooth_depth`: few large regions, as real scenes).
    physics : bool
        ``sensor='pixel4'`` only: also run the training-free dual-pixel deblurring
        (:func:`optics.dual_pixel.deblur.dual_pixel_deblur`, its tuned defaults) on every scene with the
        fitted field's PSFs at the scene's place in the frame
        (:meth:`optics.dual_pixel.deblur.DualPixelPSFGrid.from_field` with ``origin``), and add its
        estimate ``'physics'`` (H, W, 3) and signed defocus map ``'defocus'`` (H, W, 1): the inputs
        of ``dp_refine``. ``size`` must then be a multiple of the 168 px cell. Default off.
    cache : bool
        Keep rendered scenes in memory (each DataLoader worker has its own cache).
    photo_fraction : float in [0, 1]
        Fraction of the *training* scenes that are dead leaves textured with scikit-image photos
        (``source='photo_leaves'`` of :func:`optics.render.synthesize.synthesize_scene`), spread evenly
        over the indices (:meth:`scene_source`); default 0. The val and test splits ignore it.
    in_focus_fraction : float in [0, 1]
        Fraction of the *training* scenes rendered nearly in focus: their largest |CoC| is drawn
        from [``IN_FOCUS_COC``] = [0.25, 1] px instead of [``min_coc``, ``max_coc``] (within a
        pixel: the depth of field), spread evenly over the indices (:meth:`in_focus`); default
        0. They teach a network to leave sharp content alone, as the in-focus regions of real
        photographs do (DPDD's images are sharp where the subject is); the val and test splits
        ignore it.

    Notes
    -----
    Scene ``i`` of split ``s`` is ``synthesize_scene(default_rng([E, id(s), seed', i]))`` with a
    fixed entropy ``E``, ``id`` = 0/1/2 for train/val/test and ``seed' = seed`` for training, 0
    otherwise, so training never draws a test scene's random stream. Training scenes are dead
    leaves (a ``photo_fraction`` of them photo-textured); every fourth val/test scene is a crop
    of scikit-image's Middlebury motorcycle (never seen in training). Images are rendered on
    linear intensities and sRGB-encoded like DPDD's (and like ``python -m optics.render.synthesize``'s
    PNGs).
    """

    DEFAULT_COUNTS = {"train": 256, "val": 8, "test": 16}

    def __init__(self, split: str = "train", *, size: Optional[int] = None, count: Optional[int] = None,
                 seed: int = 0, crop: Optional[int] = None, augment: bool = False, random_crop: bool = True,
                 ifan_augment: Optional[IFANAugmentation] = None, max_coc: float = 8.0, min_coc: float = 1.0,
                 psf: Optional[str] = None, cache: bool = True, photo_fraction: float = 0.0,
                 in_focus_fraction: float = 0.0, sensor: str = "none", noise: Optional[bool] = None,
                 vignetting: Optional[bool] = None, physics: bool = False, depth: Optional[str] = None) -> None:
        self.split = _check_split(split, SPLITS, "synthetic")
        self.seed = _check_seed(seed)
        crop = _check_crop(crop)
        if size is None:
            # training scenes at the test scenes' size (so leaf sizes relative to the blur match),
            # or larger when the crop needs it
            size = max(128, crop) if (crop is not None and split == "train") else 128
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 32:
            raise ValueError(f"synthetic size must be an integer >= 32; got {size!r}")
        if crop is not None and crop > size:
            raise ValueError(f"crop {crop} exceeds the synthetic scene size {size}; use 'synthetic:size={crop}'")
        count = self.DEFAULT_COUNTS[split] if count is None else count
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise ValueError(f"synthetic count must be a positive integer; got {count!r}")
        if not (isinstance(max_coc, numbers.Real) and isinstance(min_coc, numbers.Real) and 0 < min_coc <= max_coc):
            raise ValueError(f"need 0 < min_coc <= max_coc; got min_coc={min_coc!r}, max_coc={max_coc!r}")
        self.size, self.count = int(size), int(count)
        if not (isinstance(photo_fraction, numbers.Real) and 0 <= photo_fraction <= 1):
            raise ValueError(f"photo_fraction must be a number in [0, 1]; got {photo_fraction!r}")
        self.photo_fraction = float(photo_fraction)
        if not (isinstance(in_focus_fraction, numbers.Real) and 0 <= in_focus_fraction <= 1):
            raise ValueError(f"in_focus_fraction must be a number in [0, 1]; got {in_focus_fraction!r}")
        self.in_focus_fraction = float(in_focus_fraction)
        from optics.render.synthesize import PSF_CHOICES

        if sensor not in SENSORS:
            raise ValueError(f"synthetic sensor must be one of {SENSORS}; got {sensor!r}")
        self.sensor = str(sensor)
        if sensor == "pixel4":
            from optics.render.pixel4_raw import PIXEL4_PSF_MODELS

            psf = "calibrated" if psf is None else psf
            if psf not in PIXEL4_PSF_MODELS:
                raise ValueError(f"synthetic psf must be one of {PIXEL4_PSF_MODELS} with sensor=pixel4; got {psf!r}")
            if self.photo_fraction or self.in_focus_fraction:
                raise ValueError("synthetic photo_fraction and in_focus_fraction do not apply with sensor=pixel4")
            from optics.render.pixel4_raw import PIXEL4_DEPTH_MODELS

            depth = "dead_leaves" if depth is None else depth
            if depth not in PIXEL4_DEPTH_MODELS:
                raise ValueError(f"synthetic depth must be one of {PIXEL4_DEPTH_MODELS}; got {depth!r}")
            if physics and self.size % PHYSICS_CELL:
                raise ValueError(f"synthetic physics=on needs a size that is a multiple of {PHYSICS_CELL} (the "
                                 f"physics' PSF cell); got size={self.size}")
        else:
            if noise is not None or vignetting is not None or physics or depth is not None:
                raise ValueError("synthetic noise, vignetting, depth and physics need sensor=pixel4")
            psf = "random" if psf is None else psf
        self.noise = True if noise is None else bool(noise)
        self.vignetting = True if vignetting is None else bool(vignetting)
        self.physics = bool(physics)
        self.depth = depth
        if psf not in PSF_CHOICES:
            raise ValueError(f"synthetic psf must be one of {PSF_CHOICES}; got {psf!r}")
        self.max_coc, self.min_coc, self.psf = float(max_coc), float(min_coc), str(psf)
        self.cache = bool(cache)
        self._cache: Dict[int, Dict[str, np.ndarray]] = {}
        self._sampler = _Sampler(crop, augment, random_crop, ifan_augment)
        self.has_target = True
        self.has_dual_pixel = True

    def __len__(self) -> int:
        return self.count

    def scene_rng(self, index: int) -> np.random.Generator:
        """The generator that draws scene ``index``."""
        seed = self.seed if self.split == "train" else 0
        return np.random.default_rng([_SYNTHETIC_ENTROPY, _SPLIT_IDS[self.split], seed, index])

    def scene_source(self, index: int) -> str:
        """Source of scene ``index`` for :func:`optics.render.synthesize.synthesize_scene`."""
        index = _check_index(index, len(self))
        if self.sensor == "pixel4":
            return "dead_leaves"
        if self.split != "train":
            return "motorcycle" if index % 4 == 3 else "dead_leaves"
        return "photo_leaves" if _spread_evenly(index, self.photo_fraction) else "dead_leaves"

    def in_focus(self, index: int) -> bool:
        """Whether training scene ``index`` is rendered nearly in focus (``in_focus_fraction``)."""
        index = _check_index(index, len(self))
        if self.split != "train":
            return False
        return _spread_evenly(index, self.in_focus_fraction)

    def load(self, index: int) -> Dict[str, np.ndarray]:
        """Full-size sRGB (H, W, 3) float32 arrays 'input', 'target', 'left', 'right' of scene ``index``."""
        from optics.render.synthesize import synthesize_scene

        index = _check_index(index, len(self))
        if index in self._cache:
            return self._cache[index]
        if self.sensor == "pixel4":
            arrays = self._load_pixel4(index)
            if self.cache:
                self._cache[index] = arrays
            return arrays
        source = self.scene_source(index)
        min_coc, max_coc = IN_FOCUS_COC if self.in_focus(index) else (self.min_coc, self.max_coc)
        scene = synthesize_scene(self.scene_rng(index), source=source, shape=(self.size, self.size),
                                 max_coc=max_coc, min_coc=min_coc, psf_model=self.psf)
        what = f"synthetic {self.split} scene {index}"
        arrays = {"input": _srgb_image(scene.centre, what), "target": _srgb_image(scene.sharp, what),
                  "left": _srgb_image(scene.left, what), "right": _srgb_image(scene.right, what)}
        if self.cache:
            self._cache[index] = arrays
        return arrays

    def _load_pixel4(self, index: int) -> Dict[str, np.ndarray]:
        from optics.render.pixel4_raw import synthesize_pixel4_raw

        scene = synthesize_pixel4_raw(self.scene_rng(index), (self.size, self.size), psf_model=self.psf,
                                      noise=self.noise, vignetting=self.vignetting, depth_model=self.depth)
        grey = {"target": scene.sharp, "left": scene.left, "right": scene.right,
                "input": 0.5 * (scene.left + scene.right)}
        if self.physics:
            from optics.dual_pixel.deblur import DualPixelPSFGrid, dual_pixel_deblur
            from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field

            grid = DualPixelPSFGrid.from_field(pixel4_dual_pixel_field(), PHYSICS_CELL, shape=scene.left.shape,
                                               origin=scene.field_origin)
            result = dual_pixel_deblur(scene.left, scene.right, grid, workers=1)
            grey["physics"] = np.clip(result.image, 0, 1)
        arrays = {k: np.repeat(v[:, :, None], 3, axis=2).astype(np.float32) for k, v in grey.items()}
        if self.physics:
            arrays["defocus"] = result.defocus[:, :, None].astype(np.float32)
        return arrays

    def sample_name(self, index: int) -> str:
        """Name of scene ``index`` (``'test_00003'``)."""
        return f"{self.split}_{_check_index(index, len(self)):05d}"

    def __getitem__(self, key: SampleKey) -> dict:
        index, rng = _sample_rng(self.seed, key, len(self))
        return self._sampler(dict(self.load(index)), self.sample_name(index), rng)


def _synthetic_options(options: Mapping[str, str], split: str) -> dict:
    parsed: dict = {}
    for key, value in options.items():
        try:
            if key in ("size", "count", "val_count", "test_count"):
                parsed[key] = int(value)
            elif key in ("max_coc", "min_coc", "photo_fraction", "in_focus_fraction"):
                parsed[key] = float(value)
            elif key in ("psf", "sensor", "depth"):
                parsed[key] = value
            elif key == "cache":
                parsed[key] = value.lower() not in ("0", "false", "no", "off")
            elif key in ("noise", "vignetting", "physics"):
                flag = value.lower()
                if flag not in _ON + _OFF:
                    raise ValueError(f"must be one of {_ON + _OFF}")
                parsed[key] = flag in _ON
            else:
                raise KeyError(key)
        except KeyError:
            raise ValueError(f"unknown synthetic option {key!r}; known: size, count, val_count, test_count, "
                             "max_coc, min_coc, psf, cache, photo_fraction, in_focus_fraction, sensor, noise, "
                             "vignetting, depth, physics") from None
        except ValueError as err:
            raise ValueError(f"synthetic option {key}={value!r}: {err}") from None
    if parsed.get("sensor") == "pixel4":
        for key in ("max_coc", "min_coc"):
            if key in parsed:
                raise ValueError(f"synthetic option {key} does not apply with sensor=pixel4 (its defocus is drawn "
                                 "from the real scenes' range)")
    counts = {"train": parsed.pop("count", None), "val": parsed.pop("val_count", None),
              "test": parsed.pop("test_count", None)}
    parsed["count"] = counts[split]
    return parsed


# ==================================================================================================
# Entry point
# ==================================================================================================
def build_dataset(spec: str, split: str = "train", *, crop: Optional[int] = None, augment: bool = False,
                  seed: int = 0, rng: Optional[np.random.Generator] = None, random_crop: Optional[bool] = None,
                  ifan_augment: Optional[IFANAugmentation] = None) -> Dataset:
    """Build the dataset named by ``spec`` (see the module docstring for the specs and layouts).

    Parameters
    ----------
    spec : str
        ``'synthetic[:options]'``, ``'dpdd:PATH'``, ``'lfdof:PATH'``, ``'realdof:PATH'``,
        ``'rtf:PATH'``, ``'cuhk:PATH'``, ``'pixeldp:PATH'``, ``'folder:PATH'`` or
        ``'list:FILE[,root=DIR][,split=NAME]'``.
    split : {'train', 'val', 'test'}
    crop : int or None
        Square crop side (None: whole images). Images smaller than the crop raise ``ValueError``.
    augment : bool
        Random flips / rotations by 90 degrees.
    seed : int
        Seeds crops and augmentation (and the synthetic training scenes).
    rng : numpy.random.Generator, optional
        Alternative to ``seed``: one integer is drawn from it as the seed.
    random_crop : bool, optional
        Random (default for 'train') or centred (default otherwise) crop positions.
    ifan_augment : IFANAugmentation or True, optional
        IFAN's noise / grayscale / rescale augmentation.

    Returns
    -------
    torch.utils.data.Dataset
        :class:`FileDataset` or :class:`SyntheticDataset`; ``has_target`` and
        ``has_dual_pixel`` tell what its samples hold.
    """
    kind, root, options = parse_spec(spec)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
        seed = int(rng.integers(2**63))
    seed = _check_seed(seed)
    if random_crop is None:
        random_crop = split == "train"
    common = dict(crop=crop, augment=augment, seed=seed, random_crop=random_crop, ifan_augment=ifan_augment)
    if kind == "synthetic":
        return SyntheticDataset(split, **_synthetic_options(options, split), **common)
    assert root is not None
    what = f"{kind}:{root} {split}"
    if kind != "list" and not root.is_dir():
        raise FileNotFoundError(f"{what}: dataset folder {str(root)!r} does not exist")
    readers: Dict[str, Reader] = {}
    centre_from_views = False
    from . import readers as real

    if kind == "dpdd":
        records, _ = real.dpdd_records(root, _check_split(split, SPLITS, "DPDD"))
    elif kind == "lfdof":
        records = real.lfdof_records(root, _check_split(split, ("train", "test"), "LFDOF"))
    elif kind == "realdof":
        _check_split(split, ("test",), "RealDOF")
        records = real.realdof_records(root)
    elif kind == "folder":
        base = root / split if (root / split).is_dir() else root
        records = _pair_records(base, ("input", "source"), ("target", "gt"), what)
    elif kind == "rtf":
        _check_split(split, ("test",), "RTF")
        records = real.rtf_records(root)
    elif kind == "cuhk":
        _check_split(split, ("test",), "CUHK")
        records, _ = real.cuhk_records(root)
    elif kind == "pixeldp":
        _check_split(split, ("test",), "Pixel DP")
        records, raw = real.pixeldp_records(root)
        if raw:
            readers = {"left": real.read_pixel4_view, "right": real.read_pixel4_view}
            centre_from_views = True
    elif kind == "list":
        records = real.list_records(real.list_for_split(root, options, split),
                                    Path(options["root"]) if "root" in options else None)
    else:  # pragma: no cover - parse_spec rejects unknown kinds
        raise ValueError(kind)
    return FileDataset(records, readers=readers, centre_from_views=centre_from_views, description=what, **common)
