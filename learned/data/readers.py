r"""Real defocus-deblurring datasets read exactly as their authors distribute them.

``python -m learned.datasets check SPEC`` is what to run after a download: it counts every split
against the published counts, reports image sizes and bit depths, prints the first and last pairs,
says whether dual-pixel views are present, and when it is pointed at the wrong folder level it
says which folder to point at. It exits 1 on any problem. The readers below are used by
:func:`learned.data.build_dataset` for the specs ``dpdd:``, ``rtf:``, ``lfdof:``, ``realdof:``,
``cuhk:``, ``pixeldp:`` and ``list:``.

Layouts, as distributed (with the source of each fact)
------------------------------------------------------
The authors' repositories were read at the commits in brackets; their code is not copied here.

**DPDD** (Abuolaim & Brown, ECCV 2020), spec ``dpdd:PATH``, PATH = the unzipped folder
(``dd_dp_dataset_canon`` in DPDNet's README, ``dd_dp_dataset_png`` in NRKNet's lists, ``DPDD``
in IFAN's README)::

    PATH/{train,val,test}_c/source/1P0A0917.png   blurred centre image (sum of the two views)
    PATH/{train,val,test}_c/target/1P0A0916.png   all-in-focus image (a *different capture*)
    PATH/{train,val,test}_l/source/*.png          left dual-pixel view
    PATH/{train,val,test}_r/source/*.png          right dual-pixel view

- 350 / 74 / 76 scenes (train / val / test), 16-bit sRGB PNG, 1680x1120 (DPDNet ``config.py``
  ``img_w, img_h = 1680, 1120``; KPAC's test graph is fixed at 1120x1680): DPDNet's README and
  ``DPDNet/file_names/{train,val,test}_{src,trg}.npy`` (Abdullah-Abuolaim/defocus-deblurring-
  dual-pixel [7ebf77e]), NRKNet's ``Dataset_train_DPDD`` (350 lines) and ``Dataset_test_DPDD``
  (76 lines) (csZcWu/NRKNet [90fad36]); the folder tree is DPDNet's ``figures/dataset_structure.png``.
- Source and target of a scene are adjacent frames with different names: in the published lists
  the target's frame number is the source's +1 (228 train / 44 val / 49 test pairs) or -1
  (122 / 29 / 26), except ``1P0A2027 -> 1P0A2029`` (val) and ``1P0A1983 -> 1P0A1985`` (test),
  which are in both DPDNet's and NRKNet's lists (:data:`DPDD_KNOWN_GAPS`).
- The authors pair the files of each folder **by sorted order**: DPDNet ``data.py``
  (``os.listdir`` + ``sort`` per folder), IFAN ``data_loader/utils.py`` ``load_file_list``
  (``sorted`` per leaf folder), and NRKNet's lists are that same sorted pairing. This reader does
  the same, checks that the folders hold equally many images, and warns, naming the files, when
  a pair's frame numbers are not adjacent (a misplaced or missing file shifts every later pair).
  The names of the ``_l`` / ``_r`` files are in no published list; they are paired by sorted
  order too, and when their names carry the centre images' frame numbers, a warning names any
  view that does not.
- Bit depth: DPDNet trains and tests on the 16-bit files (``bit_depth=16``, ``cv2.imread(.., -1)``,
  ``/65535``); IFAN (``config.in_bit = 8``), NRKNet and KPAC read them with ``cv2.imread`` /
  ``scipy.misc.imread(mode='RGB')``, which keep the high byte of each 16-bit value (OpenCV's
  ``grfmt_png.cpp`` calls libpng's ``png_set_strip_16`` when a 16-bit PNG is read into 8 bits;
  Pillow does the same for 16-bit RGB; see :mod:`learned.data.protocols`).

**RTF** (D'Andres et al., TIP 2016), spec ``rtf:PATH``, PATH = ``RTFDataset`` (shared by the
authors on request, NRKNet's README)::

    PATH/image/0/image_01.png ... image_22.png    blurred inputs
    PATH/GT/sharp_01.png ... sharp_22.png         all-in-focus ground truth

22 pairs matched by the number ``NN`` (NRKNet ``Dataset_test_RTF``). Without ``GT/`` the images
of ``PATH/image/0``, ``PATH/image``, ``PATH/input`` or ``PATH`` are read as inputs only.

**LFDOF** (Ruan et al., TCI 2021), spec ``lfdof:PATH``, PATH = ``LFDOF``::

    PATH/{train,test}_data/input/IMG_1567/IMG_1567_ap1_00.png   renderings ap{1,2,3}_{00..04}
    PATH/{train,test}_data/ground_truth/IMG_1567.png

train 11,261 inputs of 790 scenes, test 725 inputs of 50 scenes (NRKNet ``Dataset_train_LFDOF``
/ ``Dataset_test_LFDOF``, whose paths use Windows separators inside ``input\``). Loose files
``input/IMG_1275_ap1_00.png`` are matched by the stem before ``_ap``.

**RealDOF** (Lee et al., CVPR 2021), spec ``realdof:PATH``, PATH = ``RealDOF``:
``PATH/source/01.png ... 50.png`` and ``PATH/target/01.png ... 50.png``, 50 pairs with equal
names (IFAN ``configs/config.py`` ``set_eval_path``; NRKNet ``Dataset_test_RealDOF``).

**CUHK** blur detection set (Shi et al., CVPR 2014), spec ``cuhk:PATH``, inputs only: images in
``PATH/image``, ``PATH/source`` or ``PATH`` (IFAN reads every leaf folder of ``CUHK/``; NRKNet's
``Dataset_test_random`` lists 21 ``random/source/out_of_focus*.jpg`` files with each image as
its own target). The original set has 704 defocus images ``out_of_focus0001.jpg ...`` and 296
motion-blurred ``motion*.jpg``, left out here with a warning that counts them.

**Pixel DP** sets, spec ``pixeldp:PATH``, both test only:

- Abuolaim & Brown's Pixel 4 test images (DPDNet README ``dd_dp_dataset_pixel.zip``; IFAN's
  ``PixelDP.zip``): ``PATH/test_c``, ``PATH/test_l``, ``PATH/test_r`` with the images directly
  inside or in ``source/`` (IFAN ``set_eval_path``: leaf folders of ``PixelDP/test_{c,l,r}``);
  no ground truth (the phone has a fixed aperture, DPDNet README). IFAN rotates them 90 degrees
  counter-clockwise before its network and back after (``eval.py``).
- Xin et al.'s Pixel 4 set (ICCV 2021, cmu-ci-lab/dual_pixel_defocus_estimation_deblurring
  [d6a9262], folder ``DP_data_pixel_4``): 17 scenes ``NNN_left.png`` / ``NNN_right.png``
  (2016x1512 single-channel 16-bit raw green channel (scene 001), 14 bit with black level 1024,
  normalised as ``max(v - 1024, 0) / (2**14 - 1)`` in ``code/util.py``),
  ``gt_all_in_focus_im/NNN_gt.png`` (1344x1008, 16-bit, ``im * 65535`` of the authors'
  result), ``gt_defocus_map/`` and ``calibration/``. The ground truth covers the central
  ``6 x 168`` by ``8 x 168`` pixels of the views (``_crop_image_central_fov``: offset
  ``(H - h) // 2``, ``(W - w) // 2``); the views are cropped the same way here, and the blurred
  input is their mean. The right view is vignetting-corrected from ``calibration/white_sheet_*.png``
  as the authors' code does (:func:`pixel4_vignetting_scale`).

**list:FILE[,root=DIR][,split=NAME]**: ``input,target`` per line, paths relative to ``DIR``
(default: the folder of FILE), as NRKNet's ``Dataset_*`` files (relative to its ``data_offset``;
Windows ``\`` separators are accepted; a line whose target equals its input is an input without
ground truth). Missing files are reported by line number. Sample names are the input paths
relative to the root, without suffix. A list is one split: ``split=``, else the one of train /
val / test its file name names (``Dataset_train_DPDD``), else test. Another split is read from
the sibling list named for it (``Dataset_test_DPDD`` beside ``Dataset_train_DPDD``, as NRKNet
ships them) and is an error when there is none, so a list never serves as another split's data.

Sample names are file stems (DPDD: the blurred image's stem), ``SCENE/STEM`` for LFDOF.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from optics.dual_pixel.pixel4 import (PIXEL4_BLACK_LEVEL, PIXEL4_VIGNETTING_WINDOW, PIXEL4_WHITE, crop_central,  # noqa: F401
                            pixel4_vignetting_gain, read_pixel4_raw)

__all__ = [
    "PUBLISHED_COUNTS",
    "DPDD_KNOWN_GAPS",
    "frame_number",
    "dpdd_records",
    "rtf_records",
    "lfdof_records",
    "realdof_records",
    "cuhk_records",
    "pixeldp_records",
    "read_pixel4_view",
    "pixel4_vignetting_scale",
    "PIXEL4_VIGNETTING_WINDOW",
    "list_records",
    "parse_list_spec",
    "list_split",
    "list_for_split",
    "suggest_level",
    "image_shape",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Published split sizes (pairs; LFDOF: input images), see the module docstring for the sources.
PUBLISHED_COUNTS: Dict[str, Dict[str, int]] = {
    "dpdd": {"train": 350, "val": 74, "test": 76},
    "lfdof": {"train": 11261, "test": 725},
    "realdof": {"test": 50},
    "rtf": {"test": 22},
    "pixel4": {"test": 17},
}
#: Lines of NRKNet's pairing lists (csZcWu/NRKNet [90fad36]), checked by ``check list:FILE``.
PUBLISHED_LIST_COUNTS: Dict[str, int] = {
    "Dataset_train_DPDD": 350, "Dataset_test_DPDD": 76, "Dataset_train_LFDOF": 11261,
    "Dataset_test_LFDOF": 725, "Dataset_test_RTF": 22, "Dataset_test_RealDOF": 50, "Dataset_test_random": 21,
}
#: DPDD (source, target) pairs two frames apart in the authors' own lists (DPDNet and NRKNet).
DPDD_KNOWN_GAPS = frozenset({("1P0A2027", "1P0A2029"), ("1P0A1983", "1P0A1985")})

_FRAME = re.compile(r"(\d+)$")


# ==================================================================================================
# Records and folder pairing
# ==================================================================================================
@dataclass(frozen=True)
class ImageRecord:
    """Files of one sample: blurred centre ``input``, optional ``target``, ``left``, ``right``."""

    name: str
    input: Path
    target: Optional[Path] = None
    left: Optional[Path] = None
    right: Optional[Path] = None


Reader = Callable[[Path], np.ndarray]


def _read_pixel4_raw(path: Path) -> np.ndarray:
    """Pixel 4 dual-pixel raw PNG to [0, 1] (:func:`optics.dual_pixel.pixel4.read_pixel4_raw`), replicated to 3 channels."""
    values = read_pixel4_raw(path)
    return np.repeat(values[:, :, None], 3, axis=2)


def _images_in(folder: Path, what: str) -> Dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = {}
    others = []
    for p in files:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in images:
                raise ValueError(f"{what}: two images with the stem {p.stem!r} in {str(folder)!r}: "
                                 f"{images[p.stem].name}, {p.name}")
            images[p.stem] = p
        elif p.name != "Thumbs.db":
            others.append(p.name)
    if not images:
        raise ValueError(f"{what}: no images ({', '.join(IMAGE_SUFFIXES)}) in folder {str(folder)!r}"
                         + (f"; found {others[:5]}" if others else " (it is empty)"))
    if others:
        raise ValueError(f"{what}: files that are not images in {str(folder)!r}: {others[:10]}")
    return images


def _match(groups: Mapping[str, Mapping[str, Path]], what: str) -> List[str]:
    """Names present in every group, or a ValueError listing the unmatched names per group."""
    all_names = set().union(*[set(g) for g in groups.values()])
    problems = []
    for label, g in groups.items():
        missing = sorted(all_names - set(g))
        if missing:
            problems.append(f"{len(missing)} missing in {label}: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if problems:
        raise ValueError(f"{what}: unmatched files; " + "; ".join(problems))
    return sorted(all_names)


def _first_existing(root: Path, names: Sequence[str]) -> Optional[Path]:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def _pair_records(root: Path, input_names: Sequence[str], target_names: Sequence[str], what: str) -> List[ImageRecord]:
    src = _first_existing(root, input_names)
    tgt = _first_existing(root, target_names)
    if src is None or tgt is None:
        missing = [f"{root}/{'|'.join(n)}" for n, d in ((input_names, src), (target_names, tgt)) if d is None]
        raise FileNotFoundError(f"{what}: missing folder(s) {missing}")
    groups = {src.name: _images_in(src, what), tgt.name: _images_in(tgt, what)}
    names = _match(groups, what)
    g = list(groups.values())
    return [ImageRecord(n, g[0][n], g[1][n]) for n in names]


def frame_number(stem: str) -> Optional[int]:
    """The trailing number of a file stem (``'1P0A0917'`` -> 917), or None."""
    m = _FRAME.search(stem)
    return int(m.group(1)) if m else None


# ==================================================================================================
# Folder-level hints
# ==================================================================================================
def _subdirs(folder: Path) -> List[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def suggest_level(root: Path, markers: Sequence[str], depth: int = 3) -> Optional[Path]:
    """The folder near ``root`` (below it up to ``depth`` levels, or above it) that holds a marker.

    ``markers`` are relative paths such as ``'test_c/source'``; returns None when none is found.
    """
    def holds(folder: Path) -> bool:
        return any((folder / m).exists() for m in markers)

    for parent in list(root.resolve().parents)[:4]:
        if holds(parent):
            return parent
    level = [root]
    for _ in range(depth):
        level = [c for d in level for c in _subdirs(d)][:500]
        for d in level:
            if holds(d):
                return d
    return None


def _wrong_level(kind: str, root: Path, markers: Sequence[str], what: str) -> FileNotFoundError:
    hint = suggest_level(root, markers)
    want = " or ".join(f"'{m}'" for m in markers[:3])
    if hint is not None:
        return FileNotFoundError(f"{what}: {str(root)!r} does not hold {want}; point {kind}: at the folder that "
                                 f"does: {kind}:{hint}")
    return FileNotFoundError(f"{what}: {str(root)!r} does not hold {want}, nor does any folder near it; "
                             f"see python -m learned.datasets --help for the {kind} layout")


# ==================================================================================================
# Readers (each returns ImageRecord lists; problems that do not stop loading are warnings)
# ==================================================================================================
def _sorted_images(folder: Path, what: str) -> List[Path]:
    images = _images_in(folder, what)
    return sorted(images.values(), key=lambda p: p.name)


def _has_partner(stem: str, others: Sequence[Path]) -> bool:
    """Whether ``others`` holds ``stem`` or a frame at most two numbers away from it."""
    m = _FRAME.search(stem)
    for p in others:
        n = _FRAME.search(p.stem)
        if p.stem == stem or (m is not None and n is not None and abs(int(m.group(1)) - int(n.group(1))) <= 2
                              and p.stem[: n.start()] == stem[: m.start()]):
            return True
    return False


def dpdd_records(root: Path, split: str, *, warn: bool = True) -> Tuple[list, List[str]]:
    """DPDD records of ``split`` paired by sorted order per folder, and the pairing warnings."""
    what = f"dpdd:{root} {split}"
    markers = [f"{s}_c/source" for s in ("test", "train", "val")]
    if not any((root / m).is_dir() for m in markers):
        raise _wrong_level("dpdd", root, markers, what)
    folders = {"source": root / f"{split}_c" / "source", "target": root / f"{split}_c" / "target"}
    for label, folder in folders.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"{what}: folder {str(folder)!r} does not exist (DPDD has "
                                    f"{split}_c/source and {split}_c/target)")
    left_dir, right_dir = root / f"{split}_l" / "source", root / f"{split}_r" / "source"
    if left_dir.is_dir() != right_dir.is_dir():
        missing = right_dir if left_dir.is_dir() else left_dir
        raise FileNotFoundError(f"{what}: dual-pixel views need both {split}_l and {split}_r; {str(missing)!r} is missing")
    if left_dir.is_dir():
        folders["left"], folders["right"] = left_dir, right_dir
    files = {k: _sorted_images(f, what) for k, f in folders.items()}
    counts = {f"{split}_{'c' if k in ('source', 'target') else k[0]}/{folders[k].name}": len(v) for k, v in files.items()}
    if len(set(counts.values())) != 1:
        orphans = [f"{label}/{p.name}" for (label, k) in zip(counts, files) for p in files[k]
                   if not _has_partner(p.stem, files["target" if k == "source" else "source"])]
        raise ValueError(f"{what}: the folders hold different numbers of images {counts}; DPDD pairs them by "
                         "sorted order, so every folder must hold one image per scene"
                         + (f"; files with no neighbouring frame in the other folder: {orphans[:10]}" if orphans else ""))
    notes: List[str] = []
    records = []
    unnumbered = 0
    for i, src in enumerate(files["source"]):
        tgt = files["target"][i]
        a, b = frame_number(src.stem), frame_number(tgt.stem)
        if src.stem == tgt.stem or (src.stem, tgt.stem) in DPDD_KNOWN_GAPS:
            pass
        elif a is None or b is None:
            unnumbered += 1
        elif abs(a - b) != 1:
            notes.append(f"pair {i + 1}: {split}_c/source/{src.name} <-> {split}_c/target/{tgt.name} are not adjacent frames")
        records.append(ImageRecord(src.stem, src, tgt, files["left"][i] if "left" in files else None,
                                   files["right"][i] if "right" in files else None))
    for k in ("left", "right"):
        if k not in files:
            continue
        # a view "carries" its centre image's frame when the centre's trailing digits are in its name
        carries = [(_FRAME.search(r.input.stem) is not None and _FRAME.search(r.input.stem).group(1) in v.stem)
                   for r, v in zip(records, files[k])]
        if any(carries):  # the names follow the centre's numbering: name the views that break it
            notes += [f"pair {i + 1}: {split}_{k[0]}/source/{v.name} does not carry the frame number of "
                      f"{split}_c/source/{r.input.name}"
                      for i, (r, v, ok) in enumerate(zip(records, files[k], carries)) if not ok]
    if unnumbered:
        notes.append(f"{unnumbered} source/target pairs have different names without frame numbers; their "
                     "sorted-order pairing cannot be verified")
    if notes and warn:
        warnings.warn(f"{what}: {len(notes)} suspicious pairs (is a file misplaced or missing? every later pair "
                      f"shifts): " + "; ".join(notes[:5]) + (" ..." if len(notes) > 5 else ""), stacklevel=3)
    return records, notes


_RTF_INPUT = re.compile(r"^image_(\d+)$")
_RTF_GT = re.compile(r"^sharp_(\d+)$")


def rtf_records(root: Path) -> list:
    """RTF records: ``image/0/image_NN`` with ``GT/sharp_NN`` (inputs only without ``GT/``)."""
    what = f"rtf:{root} test"
    gt_dir = root / "GT"
    if not gt_dir.is_dir():
        hint = suggest_level(root, ["GT/sharp_01.png"])
        if hint is not None:  # pointed into (or above) a tree with ground truth: do not drop it
            raise _wrong_level("rtf", root, ["GT/sharp_01.png"], what)
        if (root / "image").is_dir() or any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir() if p.is_file()):
            folder = _first_existing(root, ("image/0", "image", "input")) or root
            return [ImageRecord(n, p) for n, p in _images_in(folder, what).items()]
        raise _wrong_level("rtf", root, ["GT", "image/0"], what)
    in_dir = root / "image" / "0"
    if not in_dir.is_dir():
        raise FileNotFoundError(f"{what}: folder {str(in_dir)!r} (RTF's blurred inputs image_NN.png) does not exist")
    inputs, truths = _images_in(in_dir, what), _images_in(gt_dir, what)

    def numbered(images: Dict[str, Path], pattern: re.Pattern, label: str) -> Dict[int, Path]:
        out: Dict[int, Path] = {}
        odd = [n for n in images if not pattern.match(n)]
        if odd:
            raise ValueError(f"{what}: files in {label} not named as RTF's ({pattern.pattern}): {odd[:10]}")
        for n, p in images.items():
            out[int(pattern.match(n).group(1))] = p
        return out

    a, b = numbered(inputs, _RTF_INPUT, "image/0"), numbered(truths, _RTF_GT, "GT")
    names = _match({"image/0 (image_NN)": {f"{k:02d}": v for k, v in a.items()},
                      "GT (sharp_NN)": {f"{k:02d}": v for k, v in b.items()}}, what)
    return [ImageRecord(a[int(n)].stem, a[int(n)], b[int(n)]) for n in names]


def lfdof_records(root: Path, split: str) -> list:
    """LFDOF records of ``split`` (``train`` or ``test``)."""
    what = f"lfdof:{root} {split}"
    base = root / f"{split}_data"
    if not base.is_dir():
        markers = ["test_data/input", "train_data/input"]
        if not any((root / m).is_dir() for m in markers):
            raise _wrong_level("lfdof", root, markers, what)
        raise FileNotFoundError(f"{what}: folder {str(base)!r} does not exist")
    inputs_dir, gt_dir = base / "input", base / "ground_truth"
    if not inputs_dir.is_dir():
        raise FileNotFoundError(f"{what}: folder {str(inputs_dir)!r} does not exist")
    truths = _images_in(gt_dir, what)
    records: list = []
    unmatched: List[str] = []
    scene_dirs = _subdirs(inputs_dir)
    loose = sorted(p for p in inputs_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not scene_dirs and not loose:
        raise ValueError(f"{what}: folder {str(inputs_dir)!r} is empty")
    for sd in scene_dirs:
        for stem, path in _images_in(sd, what).items():
            if sd.name in truths:
                records.append(ImageRecord(f"{sd.name}/{stem}", path, truths[sd.name]))
            else:
                unmatched.append(f"{sd.name}/{path.name}")
    if loose:
        for stem, path in _images_in(inputs_dir, what).items():
            scene = stem.split("_ap")[0]
            if scene in truths:
                records.append(ImageRecord(stem, path, truths[scene]))
            else:
                unmatched.append(path.name)
    if unmatched:
        raise ValueError(f"{what}: {len(unmatched)} inputs have no ground_truth/SCENE image: {unmatched[:10]}")
    used = {r.target for r in records}
    unused = sorted(n for n, p in truths.items() if p not in used)
    if unused:
        raise ValueError(f"{what}: {len(unused)} ground-truth images have no input: {unused[:10]}")
    return records


def realdof_records(root: Path) -> list:
    """RealDOF records: ``source/NN.png`` with ``target/NN.png``."""
    what = f"realdof:{root} test"
    if not ((root / "source").is_dir() or (root / "target").is_dir()):
        raise _wrong_level("realdof", root, ["source", "target"], what)
    return _pair_records(root, ("source",), ("target",), what)


def cuhk_records(root: Path, *, warn: bool = True) -> Tuple[list, int]:
    """CUHK defocus images (inputs only) and the number of ``motion*`` images left out."""
    what = f"cuhk:{root} test"
    folder = _first_existing(root, ("image", "source")) or root
    images = _images_in(folder, what)
    motion = sorted(n for n in images if n.lower().startswith("motion"))
    if motion and warn:
        warnings.warn(f"{what}: left out {len(motion)} motion-blurred images (motion*); "
                      f"{len(images) - len(motion)} defocus images remain", stacklevel=3)
    records = [ImageRecord(n, p) for n, p in images.items() if n not in motion]
    if not records:
        raise ValueError(f"{what}: no defocus images (only motion* files)")
    return records, len(motion)


def png_shape(path: Path) -> Tuple[int, int, int, int]:
    """(height, width, channels, bit depth) of a PNG from its header (no pixel data read)."""
    import png

    try:
        reader = png.Reader(filename=str(path))
        reader.preamble()
    except (png.Error, OSError, ValueError) as err:
        raise ValueError(f"cannot read PNG {str(path)!r}: {err}") from err
    return reader.height, reader.width, reader.planes, reader.bitdepth


def image_shape(path: Path) -> Tuple[int, int, int, int]:
    """(height, width, channels, bit depth) from the file header (PNG via pypng, TIFF via tifffile,
    others via Pillow; Pillow opens a 16-bit RGB TIFF as 8-bit RGB)."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return png_shape(path)
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                if len(tif.pages) == 0:
                    raise ValueError("no image in the file (damaged TIFF?)")
                page = tif.pages[0]
                shape = page.shape
                channels = shape[2] if len(shape) == 3 else 1
                return shape[0], shape[1], channels, 8 * page.dtype.itemsize
        except (OSError, ValueError, RuntimeError) as err:
            raise ValueError(f"cannot read image {str(path)!r}: {err}") from err
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            return h, w, len(im.getbands()), 16 if im.mode.startswith("I;16") else 8
    except OSError as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from err


def _pixel4_gt_path(view: Path) -> Path:
    stem = view.stem.rsplit("_", 1)[0]
    return view.parent / "gt_all_in_focus_im" / f"{stem}_gt.png"


def pixel4_vignetting_scale(calibration: Path) -> np.ndarray:
    """The right view's vignetting gain from ``calibration/`` (:func:`optics.dual_pixel.pixel4.pixel4_vignetting_gain`)."""
    return pixel4_vignetting_gain(calibration)


def read_pixel4_view(path: Path):
    """Xin et al.'s raw view as their ``code/util.py`` loads it: normalised, vignetting-corrected, cropped.

    Read with its partner through :func:`optics.dual_pixel.capture.read_dual_pixel_capture`
    (``input_format='pixel4-raw'``, the white sheets of the ``calibration/`` folder beside it, which
    must exist: ``max(v - 1024, 0) / (2**14 - 1)``, a right view (``NNN_right.png``) multiplied by
    their gain), then cropped centrally to its ground truth's size when it has one (as
    ``_crop_image_central_fov``), else with the capture's default crop. Replicated to 3 channels.
    The last pair read is cached, so the two views of a sample are read once.
    """
    path = Path(path)
    side = "right" if path.name.endswith("_right.png") else "left"
    stem = path.name[: -len(f"_{side}.png")] if path.name.endswith(f"_{side}.png") else None
    if stem is None:
        view = _read_pixel4_raw(path)
        gt = _pixel4_gt_path(path)
        if gt.is_file():
            view = crop_central(view, png_shape(gt)[:2], f"view {str(path)!r}")
        return view
    left, right = path.parent / f"{stem}_left.png", path.parent / f"{stem}_right.png"
    gt = _pixel4_gt_path(path)
    crop = tuple(png_shape(gt)[:2]) if gt.is_file() else "auto"
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in (left, right)) + (crop,)
    if _LAST_CAPTURE.get("key") != key:
        from optics.dual_pixel.capture import read_dual_pixel_capture

        sheets = path.parent / "calibration"
        pixel4_vignetting_scale(sheets)  # required by the authors' preprocessing: a missing sheet is named (cached)
        capture = read_dual_pixel_capture(left, right, input_format="pixel4-raw", white_sheets=sheets, crop=crop)
        for note in capture.notes:
            if note.startswith("warning: "):
                warnings.warn(note[len("warning: "):], stacklevel=2)
        _LAST_CAPTURE.clear()
        _LAST_CAPTURE.update(key=key, capture=capture)
    view = getattr(_LAST_CAPTURE["capture"], side)
    return np.repeat(view[:, :, None], 3, axis=2)


_LAST_CAPTURE: dict = {}


def pixeldp_records(root: Path) -> Tuple[list, bool]:
    """Records and whether they are Xin et al.'s raw views (True) or Abuolaim & Brown's set (False)."""
    what = f"pixeldp:{root} test"
    if (root / "test_c").is_dir():
        groups = {}
        for view in ("c", "l", "r"):
            folder = root / f"test_{view}"
            if not folder.is_dir():
                raise FileNotFoundError(f"{what}: folder {str(folder)!r} does not exist")
            groups[f"test_{view}"] = _images_in(folder / "source" if (folder / "source").is_dir() else folder, what)
        names = _match(groups, what)
        g = list(groups.values())
        return [ImageRecord(n, g[0][n], None, g[1][n], g[2][n]) for n in names], False
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    lefts = {p.name[: -len("_left.png")]: p for p in files if p.name.endswith("_left.png")}
    rights = {p.name[: -len("_right.png")]: p for p in files if p.name.endswith("_right.png")}
    if not lefts and not rights:
        raise _wrong_level("pixeldp", root, ["test_c", "gt_all_in_focus_im"], what)
    gt_dir = root / "gt_all_in_focus_im"
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"{what}: folder {str(gt_dir)!r} (all-in-focus ground truth) does not exist")
    truths = {}
    for stem, p in _images_in(gt_dir, what).items():
        truths[stem[: -len("_gt")] if stem.endswith("_gt") else stem] = p
    names = _match({"*_left.png": lefts, "*_right.png": rights, "gt_all_in_focus_im": truths}, what)
    return [ImageRecord(n, lefts[n], truths[n], lefts[n], rights[n]) for n in names], True


def parse_list_spec(rest: str) -> Tuple[Path, Dict[str, str]]:
    """``'FILE[,root=DIR][,split=NAME]'`` -> (FILE, options)."""
    parts = rest.split(",")
    options: Dict[str, str] = {}
    while len(parts) > 1 and re.match(r"^\s*(root|split)=", parts[-1]):
        key, _, value = parts.pop().partition("=")
        if not value.strip():
            raise ValueError(f"list spec 'list:{rest}': {key.strip()}= needs a value, as 'list:FILE,root=DIR,split=test'")
        options[key.strip()] = value.strip()
    file = ",".join(parts).strip()
    if not file:
        raise ValueError("a list spec needs a file: 'list:FILE[,root=DIR][,split=NAME]'")
    split = options.get("split")
    if split is not None and split not in ("train", "val", "test"):
        raise ValueError(f"list spec 'list:{rest}': split must be train, val or test; got {split!r}")
    return Path(file).expanduser(), options


def list_for_split(file: Path, options: Dict[str, str], split: str) -> Path:
    """The list file that holds ``split``: ``file`` itself, or its sibling named for that split.

    NRKNet ships its lists in pairs (``Dataset_train_DPDD`` / ``Dataset_test_DPDD``), so a
    ``list:`` spec naming the training list finds the test list beside it, and the other way
    round. Any other split is an error (never the training list as test data).
    """
    held = list_split(file, options)
    if split == held:
        return file
    if "split" not in options:
        m = re.search(rf"(?:^|(?<=[^a-z])){held}(?=[^a-z]|$)", file.name.lower())
        if m is not None:
            sibling = file.with_name(file.name[: m.start()] + split + file.name[m.end():])
            if sibling.is_file():
                return sibling
    raise ValueError(f"list:{file}: the list {file.name!r} holds the {held!r} split (from split= or its file name) "
                     f"and no list for the {split!r} split lies beside it; got split {split!r}")


def list_split(file: Path, options: Dict[str, str]) -> str:
    """The split a list holds: ``split=`` or the one of train / val / test its name says, else test."""
    if "split" in options:
        return options["split"]
    found = set(re.findall(r"(?:^|[^a-z])(train|val|test)(?=[^a-z]|$)", file.name.lower()))
    return found.pop() if len(found) == 1 else "test"


def list_records(file: Path, root: Optional[Path] = None) -> list:
    """Records from an ``input,target`` list (NRKNet's ``Dataset_*`` format)."""
    what = f"list:{file}"
    if not file.is_file():
        raise FileNotFoundError(f"{what}: list file {str(file)!r} does not exist")
    base = file.parent if root is None else root
    if not base.is_dir():
        raise FileNotFoundError(f"{what}: root folder {str(base)!r} does not exist")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (UnicodeDecodeError, OSError) as err:
        raise ValueError(f"{what}: cannot read the list as text: {err}") from err
    records, missing, names = [], [], Counter()
    parsed = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{what}, line {number}: expected 'input,target' (two paths separated by one comma); "
                             f"got {line!r}")
        inp, tgt = (Path(p.replace("\\", "/")) for p in parts)
        for label, rel in (("input", inp), ("target", tgt)):
            if rel.is_absolute():
                continue
            if not (base / rel).is_file():
                missing.append((number, label, rel))
        parsed.append((number, inp, tgt))
    if not parsed:
        raise ValueError(f"{what}: the list is empty")
    if missing:
        shown = "; ".join(f"line {n}: {label} {str(base / rel)!r}" for n, label, rel in missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        hint = ""
        if len(missing) == 2 * len(parsed):
            first = missing[0][2]
            found = suggest_level(base, [str(first)])
            hint = (f"; no listed file exists under {str(base)!r}: the paths are relative to root= (default: the "
                    "list's folder)" + (f"; use list:{file},root={found}" if found is not None else ""))
        raise FileNotFoundError(f"{what}: {len(missing)} listed files do not exist: {shown}{more}{hint}")
    for number, inp, tgt in parsed:
        name = str(inp.with_suffix("")) if not inp.is_absolute() else inp.stem
        names[name] += 1
        if names[name] > 1:
            raise ValueError(f"{what}, line {number}: input {str(inp)!r} is listed twice")
        target = None if inp == tgt else base / tgt
        records.append(ImageRecord(name, base / inp, target))
    return records
