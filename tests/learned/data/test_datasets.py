"""The real datasets' layouts (learned.datasets) on fixtures that copy their names and nesting.

File names and nesting are those of the authors' releases (see learned/data/readers.py for the
sources): the DPDD, RTF, LFDOF and RealDOF names below are lines of NRKNet's Dataset_* lists,
the Pixel 4 names those of Xin et al.'s DP_data_pixel_4 folder. Images are tiny; 16-bit PNG
where the real files are 16-bit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from learned.data import build_dataset, parse_spec
from learned.datasets import check_dataset, frame_number, main
from optics.image_io import png_bytes

RNG = np.random.default_rng(10)

# four lines of NRKNet's Dataset_test_DPDD (csZcWu/NRKNet), including the pair two frames apart
DPDD_TEST_LINES = [
    "dd_dp_dataset_png/test_c/source/1P0A0917.png,dd_dp_dataset_png/test_c/target/1P0A0916.png",
    "dd_dp_dataset_png/test_c/source/1P0A0933.png,dd_dp_dataset_png/test_c/target/1P0A0932.png",
    "dd_dp_dataset_png/test_c/source/1P0A0984.png,dd_dp_dataset_png/test_c/target/1P0A0985.png",
    "dd_dp_dataset_png/test_c/source/1P0A1983.png,dd_dp_dataset_png/test_c/target/1P0A1985.png",
]
# two lines of Dataset_test_LFDOF, with its Windows separators
LFDOF_TEST_LINES = [
    "LFDOF/test_data/input\\IMG_1567\\IMG_1567_ap1_00.png,LFDOF/test_data/ground_truth/IMG_1567.png",
    "LFDOF/test_data/input\\IMG_1567\\IMG_1567_ap1_01.png,LFDOF/test_data/ground_truth/IMG_1567.png",
]


def _write(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array))
    return array


def _rgb16(shape=(12, 18)):
    return RNG.integers(0, 2**16, size=(*shape, 3), dtype=np.uint16)


def _make_dpdd(base: Path, lines=DPDD_TEST_LINES, views=True):
    """The test split of DPDD under base/dd_dp_dataset_png; returns {relative path: stored array}."""
    stored = {}
    for line in lines:
        src, tgt = line.split(",")
        stored[src] = _write(base / src, _rgb16())
        stored[tgt] = _write(base / tgt, _rgb16())
        if views:  # the _l/_r file names are in no published list; the centre's names are assumed
            for v in ("l", "r"):
                rel = src.replace("test_c/", f"test_{v}/")
                stored[rel] = _write(base / rel, _rgb16())
    return stored


def _as_float(a):
    return a.astype(np.float32) / np.float32(65535 if a.dtype == np.uint16 else 255)


# --------------------------------------------------------------------------------------------------
# DPDD
# --------------------------------------------------------------------------------------------------
def test_dpdd_pairs_by_sorted_order_as_the_published_list(tmp_path):
    stored = _make_dpdd(tmp_path)
    root = tmp_path / "dd_dp_dataset_png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the published pairs, 1P0A1983 -> 1P0A1985 included, raise no warning
        ds = build_dataset(f"dpdd:{root}", "test")
    assert len(ds) == 4 and ds.has_dual_pixel
    for i, line in enumerate(DPDD_TEST_LINES):
        src, tgt = line.split(",")
        arrays = ds.load(i)
        assert ds.sample_name(i) == Path(src).stem
        np.testing.assert_array_equal(arrays["input"], _as_float(stored[src]))
        np.testing.assert_array_equal(arrays["target"], _as_float(stored[tgt]))
        np.testing.assert_array_equal(arrays["left"], _as_float(stored[src.replace("test_c/", "test_l/")]))


def test_list_spec_reproduces_the_published_dpdd_pairing(tmp_path):
    _make_dpdd(tmp_path, views=False)
    listing = tmp_path / "lists" / "Dataset_test_DPDD"
    listing.parent.mkdir()
    listing.write_text("\n".join(DPDD_TEST_LINES))  # NRKNet's files have no final newline
    from_list = build_dataset(f"list:{listing},root={tmp_path}", "test")
    from_tree = build_dataset(f"dpdd:{tmp_path / 'dd_dp_dataset_png'}", "test")
    assert len(from_list) == len(from_tree) == 4
    for i in range(4):
        a, b = from_list.load(i), from_tree.load(i)
        np.testing.assert_array_equal(a["input"], b["input"])
        np.testing.assert_array_equal(a["target"], b["target"])
    assert from_list.sample_name(0) == "dd_dp_dataset_png/test_c/source/1P0A0917"


def test_dpdd_misplaced_target_warns_and_names_the_files(tmp_path):
    _make_dpdd(tmp_path, views=False)
    root = tmp_path / "dd_dp_dataset_png"
    (root / "test_c/target/1P0A0932.png").unlink()  # a scene's target lost, another frame in its place:
    _write(root / "test_c/target/1P0A0990.png", _rgb16())  # the counts agree, later pairs shift
    with pytest.warns(UserWarning, match=r"1P0A0933.png <-> test_c/target/1P0A0985.png are not adjacent"):
        build_dataset(f"dpdd:{root}", "test")


def test_dpdd_count_mismatch_names_the_orphan(tmp_path):
    _make_dpdd(tmp_path)
    root = tmp_path / "dd_dp_dataset_png"
    _write(root / "test_c/source/1P0A2400.png", _rgb16())
    with pytest.raises(ValueError, match=r"'test_c/source': 5, 'test_c/target': 4.*test_c/source/1P0A2400.png"):
        build_dataset(f"dpdd:{root}", "test")


def test_dpdd_wrong_folder_level_says_where_to_point(tmp_path):
    _make_dpdd(tmp_path, views=False)
    root = tmp_path / "dd_dp_dataset_png"
    for wrong in (root / "test_c", root / "test_c" / "source", tmp_path):
        with pytest.raises(FileNotFoundError, match=f"point dpdd: at the folder that does: dpdd:{root}$"):
            build_dataset(f"dpdd:{wrong}", "test")


def test_frame_number():
    assert frame_number("1P0A0917") == 917 and frame_number("image_01") == 1 and frame_number("abc") is None


# --------------------------------------------------------------------------------------------------
# RTF, LFDOF, RealDOF, CUHK, Pixel 4
# --------------------------------------------------------------------------------------------------
def test_rtf_pairs_images_with_their_sharp_ground_truth(tmp_path):
    root = tmp_path / "RTFDataset"
    stored = {}
    for n in ("01", "02", "10"):
        stored[n] = (_write(root / f"image/0/image_{n}.png", RNG.integers(0, 256, (9, 9, 3), dtype=np.uint8)),
                     _write(root / f"GT/sharp_{n}.png", RNG.integers(0, 256, (9, 9, 3), dtype=np.uint8)))
    ds = build_dataset(f"rtf:{root}", "test")
    assert ds.has_target and [ds.sample_name(i) for i in range(3)] == ["image_01", "image_02", "image_10"]
    for wrong in (root / "image" / "0", tmp_path):  # never inputs only when the ground truth is near
        with pytest.raises(FileNotFoundError, match=f"point rtf: at the folder that does: rtf:{root}$"):
            build_dataset(f"rtf:{wrong}", "test")
    np.testing.assert_array_equal(ds.load(2)["target"], _as_float(stored["10"][1]))
    np.testing.assert_array_equal(ds.load(2)["input"], _as_float(stored["10"][0]))
    (root / "GT/sharp_10.png").unlink()
    with pytest.raises(ValueError, match=r"unmatched files.*missing in GT \(sharp_NN\): \['10'\]"):
        build_dataset(f"rtf:{root}", "test")
    _write(root / "GT/sharp_10.png", stored["10"][1])
    _write(root / "GT/notes.png", stored["10"][1])
    with pytest.raises(ValueError, match=r"not named as RTF's.*notes"):
        build_dataset(f"rtf:{root}", "test")


def test_lfdof_real_nesting_and_the_published_list_with_windows_separators(tmp_path):
    gt = _write(tmp_path / "LFDOF/test_data/ground_truth/IMG_1567.png", RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8))
    inputs = [_write(tmp_path / f"LFDOF/test_data/input/IMG_1567/IMG_1567_ap1_0{k}.png",
                     RNG.integers(0, 256, (8, 10, 3), dtype=np.uint8)) for k in range(2)]
    ds = build_dataset(f"lfdof:{tmp_path / 'LFDOF'}", "test")
    assert [ds.sample_name(i) for i in range(2)] == ["IMG_1567/IMG_1567_ap1_00", "IMG_1567/IMG_1567_ap1_01"]
    listing = tmp_path / "Dataset_test_LFDOF"
    listing.write_text("\r\n".join(LFDOF_TEST_LINES) + "\r\n")
    from_list = build_dataset(f"list:{listing}", "test")
    for i in range(2):
        np.testing.assert_array_equal(from_list.load(i)["input"], _as_float(inputs[i]))
        np.testing.assert_array_equal(from_list.load(i)["target"], _as_float(gt))
    with pytest.raises(FileNotFoundError, match="point lfdof: at the folder that does"):
        build_dataset(f"lfdof:{tmp_path}", "test")


def test_list_reports_missing_files_by_line_number(tmp_path):
    listing = tmp_path / "pairs.txt"
    _write(tmp_path / "a/x.png", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    listing.write_text("a/x.png,a/x.png\n\na\\y.png,a/x.png\nbad line\n")
    with pytest.raises(ValueError, match=r"line 4: expected 'input,target'"):
        build_dataset(f"list:{listing}", "test")
    listing.write_text("a/x.png,a/x.png\n\na\\y.png,a/x.png\n")
    with pytest.raises(FileNotFoundError, match=r"1 listed files do not exist: line 3: input .*a/y.png"):
        build_dataset(f"list:{listing}", "test")
    listing.write_text("a/x.png,a/x.png\n")
    ds = build_dataset(f"list:{listing}", "test")
    assert not ds.has_target  # a line whose target is its input (NRKNet's Dataset_test_random) has no ground truth


def test_list_with_the_wrong_root_suggests_the_right_one(tmp_path):
    _make_dpdd(tmp_path / "datasets", views=False)
    listing = tmp_path / "NRKNet" / "Dataset_test_DPDD"
    listing.parent.mkdir()
    listing.write_text("\n".join(DPDD_TEST_LINES))
    with pytest.raises(FileNotFoundError, match=f"use list:{listing},root={tmp_path / 'datasets'}$"):
        build_dataset(f"list:{listing},root={tmp_path}", "test")
    assert parse_spec(f"list:{listing},root=/x")[2] == {"root": "/x"}


def test_realdof_wrong_level(tmp_path):
    for n in ("01", "02"):
        _write(tmp_path / f"RealDOF/source/{n}.png", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        _write(tmp_path / f"RealDOF/target/{n}.png", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert len(build_dataset(f"realdof:{tmp_path / 'RealDOF'}", "test")) == 2
    with pytest.raises(FileNotFoundError, match=f"realdof:{tmp_path / 'RealDOF'}$"):
        build_dataset(f"realdof:{tmp_path}", "test")


def test_cuhk_images_in_source_folder(tmp_path):
    _write(tmp_path / "CUHK/source/out_of_focus0006.png", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds = build_dataset(f"cuhk:{tmp_path / 'CUHK'}", "test")
    assert ds.sample_name(0) == "out_of_focus0006" and not ds.has_target


def test_pixel4_views_are_cropped_to_the_central_ground_truth_window(tmp_path):
    root = tmp_path / "DP_data_pixel_4"
    left = _write(root / "001_left.png", RNG.integers(900, 1024 + 2**14 - 1, (10, 14), dtype=np.uint16))
    right = _write(root / "001_right.png", RNG.integers(900, 1024 + 2**14 - 1, (10, 14), dtype=np.uint16))
    gt = _write(root / "gt_all_in_focus_im/001_gt.png", RNG.integers(0, 2**16, (4, 6), dtype=np.uint16))
    white_left = _write(root / "calibration/white_sheet_left.png", RNG.integers(5000, 9000, (10, 14), dtype=np.uint16))
    white_right = _write(root / "calibration/white_sheet_right.png", RNG.integers(5000, 9000, (10, 14), dtype=np.uint16))
    arrays = build_dataset(f"pixeldp:{root}", "test").load(0)
    # the authors' vignetting gain (code/util.py): ratio of the normalised white sheets, averaged over a
    # 101 x 101 window with zero padding and divided by 101**2 (flax.nn.avg_pool, 'SAME'): naive sum here
    ratio = (white_left.astype(np.float64) - 1024) / (white_right.astype(np.float64) - 1024)
    gain = np.array([[ratio[max(0, i - 50):i + 51, max(0, j - 50):j + 51].sum() / 101**2 for j in range(14)]
                     for i in range(10)])
    # the authors' _crop_image_central_fov: offsets ((10 - 4) // 2, (14 - 6) // 2) = (3, 4)
    expect_left = np.maximum(left[3:7, 4:10].astype(np.float64) - 1024, 0) / (2**14 - 1)
    expect_right = (np.maximum(right.astype(np.float64) - 1024, 0) / (2**14 - 1) * gain)[3:7, 4:10]
    np.testing.assert_allclose(arrays["left"][..., 0], expect_left, rtol=1e-6)
    np.testing.assert_allclose(arrays["input"][..., 2], (expect_left + expect_right) / 2, rtol=1e-6)
    np.testing.assert_allclose(arrays["target"][..., 1], gt / 65535.0, rtol=1e-6)
    np.testing.assert_allclose(arrays["right"][..., 1], expect_right, rtol=1e-5)


def test_pixel4_right_view_without_white_sheets_names_the_missing_file(tmp_path):
    root = tmp_path / "DP_data_pixel_4"
    for side in ("left", "right"):
        _write(root / f"001_{side}.png", RNG.integers(900, 1024 + 2**14 - 1, (10, 14), dtype=np.uint16))
    _write(root / "gt_all_in_focus_im/001_gt.png", RNG.integers(0, 2**16, (4, 6), dtype=np.uint16))
    with pytest.raises(FileNotFoundError, match=r"white_sheet_left\.png"):
        build_dataset(f"pixeldp:{root}", "test").load(0)


# --------------------------------------------------------------------------------------------------
# python -m learned.datasets check
# --------------------------------------------------------------------------------------------------
def test_check_passes_a_complete_realdof(tmp_path, capsys):
    root = tmp_path / "RealDOF"
    for k in range(1, 51):
        _write(root / f"source/{k:02d}.png", RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8))
        _write(root / f"target/{k:02d}.png", RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    assert main(["check", f"realdof:{root}"]) == 0
    out = capsys.readouterr().out
    assert "test: 50 samples (published: 50)" in out and "sizes (HxW): 4x6 (50)" in out
    assert "first: 01: source/01.png -> target/01.png" in out and "last:  50: source/50.png -> target/50.png" in out
    assert "bit depths: 8-bit (100 files)" in out and "dual-pixel views: no" in out


def test_check_reports_counts_bit_depth_and_missing_splits(tmp_path, capsys):
    _make_dpdd(tmp_path)
    root = tmp_path / "dd_dp_dataset_png"
    _write(root / "test_c/target/1P0A0985.png", _rgb16((12, 17)))  # a pair of different sizes
    assert main(["check", f"dpdd:{root}"]) == 1
    out = capsys.readouterr().out
    assert "test: 4 samples (published: 76)" in out and "bit depths: 16-bit (16 files)" in out
    assert "dual-pixel views: yes" in out
    assert "first: 1P0A0917: test_c/source/1P0A0917.png -> test_c/target/1P0A0916.png" in out
    assert "the published dpdd test split has 76" in out and "train_c/source" in out
    assert "1P0A0984: image sizes differ input 12x18, target 12x17" in out
    reports, problems = check_dataset(f"dpdd:{root}")
    assert [r.split for r in reports] == ["train", "val", "test"] and len(problems) == 4


def test_check_at_the_wrong_level_and_bad_specs(tmp_path, capsys):
    _make_dpdd(tmp_path, views=False)
    assert main(["check", f"dpdd:{tmp_path}"]) == 1
    assert f"point dpdd: at the folder that does: dpdd:{tmp_path / 'dd_dp_dataset_png'}" in capsys.readouterr().out
    assert main(["check", "nonsense:/x"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown dataset kind")
    assert main(["check", "synthetic"]) == 2
    capsys.readouterr()
    assert main(["check", f"dpdd:{tmp_path / 'missing'}"]) == 2
    assert capsys.readouterr().err == f"error: dataset folder '{tmp_path / 'missing'}' does not exist\n"


def test_a_list_is_one_split(tmp_path, capsys):
    _make_dpdd(tmp_path, views=False)
    listing = tmp_path / "Dataset_train_DPDD"  # a training list (its name says so)
    listing.write_text("\n".join(DPDD_TEST_LINES))
    assert len(build_dataset(f"list:{listing}", "train")) == 4
    with pytest.raises(ValueError, match=r"holds the 'train' split.*got split 'test'"):
        build_dataset(f"list:{listing}", "test")  # never evaluated on by accident
    assert len(build_dataset(f"list:{listing},split=test", "test")) == 4
    with pytest.raises(ValueError, match="split must be train, val or test"):
        parse_spec(f"list:{listing},split=all")
    assert main(["check", f"list:{listing}"]) == 1  # 4 lines, NRKNet's Dataset_train_DPDD has 350
    out = capsys.readouterr().out
    assert "train: 4 samples (published: 350)" in out
    assert "first: dd_dp_dataset_png/test_c/source/1P0A0917: dd_dp_dataset_png/test_c/source/1P0A0917.png" in out


def test_dpdd_view_names_are_checked_only_when_they_carry_frame_numbers(tmp_path):
    _make_dpdd(tmp_path, views=False)
    root = tmp_path / "dd_dp_dataset_png"
    for v in ("l", "r"):  # views named after the centre image's frame, one of them misplaced
        for stem in ("1P0A0917", "1P0A0933", "1P0A0984", "1P0A1990"):
            _write(root / f"test_{v}/source/{stem}_{v.upper()}.png", _rgb16())
    with pytest.warns(UserWarning, match=r"test_l/source/1P0A1990_L.png does not carry the frame number of "
                                         r"test_c/source/1P0A1983.png"):
        build_dataset(f"dpdd:{root}", "test")
    for v in ("l", "r"):  # views numbered their own way: nothing to verify, no warning
        for p in (root / f"test_{v}/source").iterdir():
            p.unlink()
        for k in range(4):
            _write(root / f"test_{v}/source/view_{v}_{k}.png", _rgb16())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_dataset(f"dpdd:{root}", "test").has_dual_pixel


def test_check_counts_each_lfdof_ground_truth_once(tmp_path, capsys):
    root = tmp_path / "LFDOF"
    for split in ("train", "test"):
        _write(root / f"{split}_data/ground_truth/IMG_1275.png", RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        for k in range(3):
            _write(root / f"{split}_data/input/IMG_1275/IMG_1275_ap2_0{k}.png",
                   RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    assert main(["check", f"lfdof:{root}"]) == 1  # 3 inputs, LFDOF has 11261 / 725
    out = capsys.readouterr().out
    assert out.count("bit depths: 8-bit (4 files)") == 2 and "test: 3 samples (published: 725)" in out


def test_a_list_finds_its_sibling_for_the_other_split(tmp_path, capsys):
    _make_dpdd(tmp_path, views=False)
    train, test = tmp_path / "Dataset_train_DPDD", tmp_path / "Dataset_test_DPDD"
    train.write_text("\n".join(DPDD_TEST_LINES[:3]))
    test.write_text("\n".join(DPDD_TEST_LINES[3:]))  # NRKNet ships its lists in such pairs
    assert len(build_dataset(f"list:{train}", "train")) == 3
    assert build_dataset(f"list:{train}", "test").sample_name(0) == "dd_dp_dataset_png/test_c/source/1P0A1983"
    with pytest.raises(ValueError, match="no list for the 'val' split"):
        build_dataset(f"list:{train}", "val")
    assert main(["check", f"list:{train}"]) == 1
    out = capsys.readouterr().out
    assert "train: 3 samples (published: 350)" in out and "test: 1 samples (published: 76)" in out


def test_image_shape_reads_the_bit_depth_of_16_bit_rgb_tiffs(tmp_path):
    import tifffile
    from PIL import Image

    from learned.datasets import image_shape

    rgb16 = np.arange(5 * 7 * 3, dtype=np.uint16).reshape(5, 7, 3) * 600
    tifffile.imwrite(tmp_path / "a.tif", rgb16, photometric="rgb")
    with Image.open(tmp_path / "a.tif") as im:  # the reason for reading the header with tifffile:
        assert im.mode == "RGB"  # Pillow reduces 16-bit RGB to 8 bits, so its mode says 8
    assert image_shape(tmp_path / "a.tif") == (5, 7, 3, 16)
    tifffile.imwrite(tmp_path / "b.tiff", rgb16[..., 0].astype(np.uint8))
    assert image_shape(tmp_path / "b.tiff") == (5, 7, 1, 8)
    (tmp_path / "c.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="cannot read image"):
        image_shape(tmp_path / "c.tif")


def test_check_ends_with_a_results_line(tmp_path, capsys):
    """Issue 28: learned.datasets check ends, like every command, with a results: line."""
    root = tmp_path / "RealDOF"
    _write(root / "source/01.png", RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    _write(root / "target/01.png", RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    assert main(["check", f"realdof:{root}"]) == 1  # 1 of the published 50
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("results: the report above on stdout") and "problem(s)" in err[-1]
