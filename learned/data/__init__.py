"""Data: the real datasets' readers, synthetic scenes, the papers' evaluation protocols, image I/O.

:mod:`.readers`
    The real datasets read exactly as their authors distribute them (DPDD, LFDOF, RealDOF, RTF,
    CUHK, Pixel 4 dual-pixel, NRKNet's pairing lists); ``python -m learned.datasets check`` runs them.
:mod:`.build`
    Dataset specs (``dpdd:PATH``, ``synthetic:...``), :func:`build_dataset`, the PyTorch datasets
    (:class:`FileDataset`, :class:`SyntheticDataset`) and their augmentation.
:mod:`.protocols`
    The papers' evaluation protocols (crops, bit depths, metrics settings).
:mod:`.io`
    Image files read and written as the networks expect them, and atomic writes.
"""

from .build import (
    IN_FOCUS_COC,
    SPEC_KINDS,
    SPLITS,
    FileDataset,
    IFANAugmentation,
    SyntheticDataset,
    area_resize,
    build_dataset,
    ifan_grayscale,
    parse_spec,
)
from .readers import IMAGE_SUFFIXES, PIXEL4_BLACK_LEVEL, PIXEL4_WHITE, ImageRecord, Reader

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
