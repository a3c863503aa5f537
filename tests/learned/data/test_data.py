"""Tests of learned.data on small fixtures written in tmp_path in each dataset layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from learned.data import (
    FileDataset,
    IFANAugmentation,
    ImageRecord,
    SyntheticDataset,
    area_resize,
    build_dataset,
    ifan_grayscale,
    parse_spec,
)
from learned.data.build import _apply_dihedral
from optics.image_io import png_bytes

RNG = np.random.default_rng(11)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array))


def _random_uint(shape, bits):
    return RNG.integers(0, 2**bits, size=shape, dtype=np.uint16 if bits == 16 else np.uint8)


def _make_dpdd(root: Path, split="test", names=("a", "b"), bits=8, shape=(20, 24, 3), dual=True):
    stored = {}
    for n in names:
        for folder in [f"{split}_c/source", f"{split}_c/target"] + ([f"{split}_l/source", f"{split}_r/source"] if dual else []):
            arr = _random_uint(shape, bits)
            _write(root / folder / f"{n}.png", arr)
            stored[(folder, n)] = arr
    return stored


# --------------------------------------------------------------------------------------------------
# DPDD layout, 8 and 16 bit
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 16])
def test_dpdd_reads_every_view_losslessly(tmp_path, bits):
    stored = _make_dpdd(tmp_path, bits=bits)
    ds = build_dataset(f"dpdd:{tmp_path}", "test")
    assert len(ds) == 2 and ds.has_target and ds.has_dual_pixel
    sample = ds[1]
    assert sample["name"] == "b"
    scale = 255.0 if bits == 8 else 65535.0
    for key, folder in [("input", "test_c/source"), ("target", "test_c/target"), ("left", "test_l/source"),
                        ("right", "test_r/source")]:
        t = sample[key]
        assert t.dtype == torch.float32 and t.shape == (3, 20, 24)
        expected = stored[(folder, "b")].astype(np.float32) / np.float32(scale)
        np.testing.assert_array_equal(t.numpy().transpose(1, 2, 0), expected)


def test_dpdd_without_dual_pixel_views(tmp_path):
    _make_dpdd(tmp_path, dual=False)
    ds = build_dataset(f"dpdd:{tmp_path}", "test")
    assert not ds.has_dual_pixel and "left" not in ds[0]


def test_dpdd_one_view_folder_missing_is_named(tmp_path):
    _make_dpdd(tmp_path)
    for p in (tmp_path / "test_r/source").iterdir():
        p.unlink()
    (tmp_path / "test_r/source").rmdir()
    (tmp_path / "test_r").rmdir()
    with pytest.raises(FileNotFoundError, match="test_r"):
        build_dataset(f"dpdd:{tmp_path}", "test")


def test_unmatched_names_are_listed(tmp_path):
    _make_dpdd(tmp_path)
    _write(tmp_path / "test_c/source/zzz_extra.png", _random_uint((20, 24, 3), 8))
    with pytest.raises(ValueError, match=r"different numbers of images.*no neighbouring frame.*zzz_extra"):
        build_dataset(f"dpdd:{tmp_path}", "test")


def test_missing_split_folder_is_named(tmp_path):
    _make_dpdd(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="train_c"):
        build_dataset(f"dpdd:{tmp_path}", "train")


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    with pytest.raises(ValueError, match="it is empty"):
        build_dataset(f"folder:{tmp_path}", "test")


def test_non_image_files_are_reported(tmp_path):
    _write(tmp_path / "input/a.png", _random_uint((8, 8, 3), 8))
    _write(tmp_path / "target/a.png", _random_uint((8, 8, 3), 8))
    (tmp_path / "input/notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        build_dataset(f"folder:{tmp_path}", "test")


def test_unreadable_image_names_the_file(tmp_path):
    _write(tmp_path / "input/a.png", _random_uint((8, 8, 3), 8))
    (tmp_path / "target").mkdir()
    (tmp_path / "target/a.png").write_bytes(b"this is not a png")
    ds = build_dataset(f"folder:{tmp_path}", "test")
    with pytest.raises(ValueError, match=r"sample 'a' \(target\).*cannot read"):
        ds[0]


def test_four_channel_png_is_refused(tmp_path):
    _write(tmp_path / "input/a.png", _random_uint((8, 8, 4), 8))
    _write(tmp_path / "target/a.png", _random_uint((8, 8, 3), 8))
    ds = build_dataset(f"folder:{tmp_path}", "test")
    with pytest.raises(ValueError, match="4 channels"):
        ds[0]


def test_mismatched_pair_sizes_name_the_files(tmp_path):
    _write(tmp_path / "input/a.png", _random_uint((8, 8, 3), 8))
    _write(tmp_path / "target/a.png", _random_uint((8, 9, 3), 8))
    ds = build_dataset(f"folder:{tmp_path}", "test")
    with pytest.raises(ValueError, match=r"sizes differ.*target/a.png"):
        ds[0]


def test_grayscale_png_becomes_three_equal_channels(tmp_path):
    grey = _random_uint((8, 8), 16)
    _write(tmp_path / "source/a.png", grey)
    _write(tmp_path / "gt/a.png", grey)
    s = build_dataset(f"folder:{tmp_path}", "test")[0]
    np.testing.assert_array_equal(s["input"][0], s["input"][2])
    np.testing.assert_array_equal(s["input"][1].numpy(), grey.astype(np.float32) / np.float32(65535))


def test_folder_with_split_subfolders(tmp_path):
    for split in ("train", "test"):
        _write(tmp_path / split / "input" / f"{split}1.png", _random_uint((8, 8, 3), 8))
        _write(tmp_path / split / "target" / f"{split}1.png", _random_uint((8, 8, 3), 8))
    assert build_dataset(f"folder:{tmp_path}", "train")[0]["name"] == "train1"
    assert build_dataset(f"folder:{tmp_path}", "test")[0]["name"] == "test1"


# --------------------------------------------------------------------------------------------------
# Other layouts
# --------------------------------------------------------------------------------------------------
def test_lfdof_nested_scene_folders(tmp_path):
    gt = _random_uint((10, 12, 3), 8)
    _write(tmp_path / "train_data/ground_truth/IMG_1275.png", gt)
    for ap in ("ap1_00", "ap2_00"):
        _write(tmp_path / f"train_data/input/IMG_1275/IMG_1275_{ap}.png", _random_uint((10, 12, 3), 8))
    ds = build_dataset(f"lfdof:{tmp_path}", "train")
    assert [ds.sample_name(i) for i in range(len(ds))] == ["IMG_1275/IMG_1275_ap1_00", "IMG_1275/IMG_1275_ap2_00"]
    np.testing.assert_array_equal(ds[1]["target"].numpy().transpose(1, 2, 0), gt.astype(np.float32) / np.float32(255))
    with pytest.raises(ValueError, match="no 'val' split"):
        build_dataset(f"lfdof:{tmp_path}", "val")


def test_lfdof_loose_files_and_missing_ground_truth(tmp_path):
    _write(tmp_path / "test_data/ground_truth/IMG_1.png", _random_uint((10, 12, 3), 8))
    _write(tmp_path / "test_data/input/IMG_1_ap3_01.png", _random_uint((10, 12, 3), 8))
    assert len(build_dataset(f"lfdof:{tmp_path}", "test")) == 1
    _write(tmp_path / "test_data/input/IMG_2_ap3_01.png", _random_uint((10, 12, 3), 8))
    with pytest.raises(ValueError, match="IMG_2_ap3_01.png"):
        build_dataset(f"lfdof:{tmp_path}", "test")


def test_realdof_is_test_only(tmp_path):
    _write(tmp_path / "source/x.png", _random_uint((8, 8, 3), 8))
    _write(tmp_path / "target/x.png", _random_uint((8, 8, 3), 8))
    assert build_dataset(f"realdof:{tmp_path}", "test")[0]["name"] == "x"
    with pytest.raises(ValueError, match="RealDOF dataset has no 'train' split"):
        build_dataset(f"realdof:{tmp_path}", "train")


def test_rtf_inputs_only(tmp_path):
    _write(tmp_path / "image_01.png", _random_uint((8, 8, 3), 8))
    ds = build_dataset(f"rtf:{tmp_path}", "test")
    assert not ds.has_target and set(ds[0]) == {"input", "name"}


def test_cuhk_leaves_out_motion_images_with_a_warning(tmp_path):
    _write(tmp_path / "image/out_of_focus0001.png", _random_uint((8, 8, 3), 8))
    _write(tmp_path / "image/motion0001.png", _random_uint((8, 8, 3), 8))
    with pytest.warns(UserWarning, match="left out 1 motion-blurred"):
        ds = build_dataset(f"cuhk:{tmp_path}", "test")
    assert len(ds) == 1 and ds[0]["name"] == "out_of_focus0001"


def test_pixeldp_xin_layout_raw_normalisation(tmp_path):
    left = RNG.integers(900, 1024 + 2**14 - 1, size=(9, 10), dtype=np.uint16)
    right = RNG.integers(900, 1024 + 2**14 - 1, size=(9, 10), dtype=np.uint16)
    gt = _random_uint((9, 10), 16)
    _write(tmp_path / "001_left.png", left)
    _write(tmp_path / "001_right.png", right)
    _write(tmp_path / "gt_all_in_focus_im/001_gt.png", gt)
    white = np.full((9, 10), 1024 + 8000, np.uint16)
    _write(tmp_path / "calibration/white_sheet_left.png", white)
    _write(tmp_path / "calibration/white_sheet_right.png", white)
    s = build_dataset(f"pixeldp:{tmp_path}", "test")[0]
    expect_left = np.maximum(left.astype(np.float64) - 1024, 0) / (2**14 - 1)
    # equal white sheets: the gain is the 101 x 101 zero-padded box average of ones, here 90 / 101**2
    expect_right = np.maximum(right.astype(np.float64) - 1024, 0) / (2**14 - 1) * (90 / 101**2)
    np.testing.assert_allclose(s["left"][0].numpy(), expect_left, rtol=1e-6)
    np.testing.assert_allclose(s["right"][2].numpy(), expect_right, rtol=1e-6)
    np.testing.assert_allclose(s["input"][1].numpy(), (expect_left + expect_right) / 2, rtol=1e-6)
    np.testing.assert_allclose(s["target"][0].numpy(), gt / 65535.0, rtol=1e-6)


def test_pixeldp_ifan_layout_inputs_only(tmp_path):
    for view in "clr":
        _write(tmp_path / f"test_{view}" / "source" / "p1.png", _random_uint((8, 8, 3), 8))
    ds = build_dataset(f"pixeldp:{tmp_path}", "test")
    assert set(ds[0]) == {"input", "left", "right", "name"} and not ds.has_target


# --------------------------------------------------------------------------------------------------
# Crops, augmentation, determinism
# --------------------------------------------------------------------------------------------------
def test_crop_is_deterministic_per_key_and_varies_with_sample_seed(tmp_path):
    _make_dpdd(tmp_path, shape=(30, 40, 3))
    ds = build_dataset(f"dpdd:{tmp_path}", "test", crop=8, random_crop=True, seed=4)
    a, b = ds[0], ds[0]
    assert a["input"].shape == (3, 8, 8)
    assert torch.equal(a["input"], b["input"])
    crops = {tuple(ds[(0, s)]["input"].flatten()[:5].tolist()) for s in range(6)}
    assert len(crops) > 1
    # the same window in every view: compare against the full image
    full = ds.load(0)
    sample = build_dataset(f"dpdd:{tmp_path}", "test", crop=8, random_crop=True, seed=4)[(0, 3)]
    win = sample["input"].numpy().transpose(1, 2, 0)
    hits = [(i, j) for i in range(23) for j in range(33) if np.array_equal(full["input"][i : i + 8, j : j + 8], win)]
    assert len(hits) == 1
    i, j = hits[0]
    np.testing.assert_array_equal(sample["target"].numpy().transpose(1, 2, 0), full["target"][i : i + 8, j : j + 8])
    np.testing.assert_array_equal(sample["left"].numpy().transpose(1, 2, 0), full["left"][i : i + 8, j : j + 8])


def test_centred_crop_by_default_outside_training(tmp_path):
    _make_dpdd(tmp_path, shape=(30, 40, 3))
    s = build_dataset(f"dpdd:{tmp_path}", "test", crop=10)[0]
    full = build_dataset(f"dpdd:{tmp_path}", "test").load(0)
    np.testing.assert_array_equal(s["input"].numpy().transpose(1, 2, 0), full["input"][10:20, 15:25])


def test_crop_larger_than_image_is_an_error(tmp_path):
    _make_dpdd(tmp_path, shape=(20, 24, 3))
    ds = build_dataset(f"dpdd:{tmp_path}", "test", crop=32)
    with pytest.raises(ValueError, match=r"sample 'a' of size \(20, 24\) is smaller than the crop 32x32"):
        ds[0]


def test_augment_keeps_views_aligned_and_dual_pixel_horizontal(tmp_path):
    # single-image samples: some rotations by 90 degrees transpose the (H, W) shape
    arr = _random_uint((6, 10, 3), 8)
    _write(tmp_path / "single/input/a.png", arr)
    _write(tmp_path / "single/target/a.png", arr)
    ds = build_dataset(f"folder:{tmp_path / 'single'}", "train", augment=True, seed=1)
    shapes = set()
    for s in range(24):
        sample = ds[(0, s)]
        assert torch.equal(sample["input"], sample["target"])  # same transform on every view
        shapes.add(tuple(sample["input"].shape))
    assert shapes == {(3, 6, 10), (3, 10, 6)}
    # dual-pixel samples: never rotated by 90 degrees
    _make_dpdd(tmp_path / "dp", split="train", names=("a",), shape=(6, 10, 3))
    dp = build_dataset(f"dpdd:{tmp_path / 'dp'}", "train", augment=True, seed=1)
    assert {tuple(dp[(0, s)]["left"].shape) for s in range(24)} == {(3, 6, 10)}


def test_horizontal_mirror_swaps_left_and_right():
    left, right = RNG.random((4, 5, 3)), RNG.random((4, 5, 3))
    arrays = {"input": left + right, "left": left, "right": right}
    flipped = _apply_dihedral(arrays, 0, True)
    np.testing.assert_array_equal(flipped["left"], right[:, ::-1])
    np.testing.assert_array_equal(flipped["right"], left[:, ::-1])
    rot180 = _apply_dihedral(arrays, 2, False)
    np.testing.assert_array_equal(rot180["left"], right[::-1, ::-1])
    vflip = _apply_dihedral(arrays, 2, True)  # rot180 of a horizontal mirror = vertical flip
    np.testing.assert_array_equal(vflip["left"], left[::-1, :])


def test_dataloader_collates_names(tmp_path):
    _make_dpdd(tmp_path, names=("a", "b", "c"))
    batch = next(iter(DataLoader(build_dataset(f"dpdd:{tmp_path}", "test", crop=8), batch_size=3)))
    assert batch["input"].shape == (3, 3, 8, 8) and batch["name"] == ["a", "b", "c"]


# --------------------------------------------------------------------------------------------------
# IFAN augmentation helpers
# --------------------------------------------------------------------------------------------------
def test_area_resize_integer_factor_is_block_mean():
    img = RNG.random((8, 6, 3))
    expected = img.reshape(4, 2, 3, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(area_resize(img, 4, 3), expected, rtol=1e-12)


def test_area_resize_keeps_constants_and_mean():
    img = np.full((10, 7, 3), 0.3)
    np.testing.assert_allclose(area_resize(img, 7, 5), 0.3, rtol=1e-12)
    ramp = RNG.random((9, 9, 1))
    # 9 -> 3 per axis is exact block averaging: the mean is preserved
    assert area_resize(ramp, 3, 3).mean() == pytest.approx(ramp.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="only shrinks"):
        area_resize(img, 11, 7)


def test_ifan_grayscale_closed_form():
    img = np.array([[[0.2, 0.5, 0.9]]])
    y = 0.2126 * 0.2 + 0.7152 * 0.5 + 0.07228 * 0.9
    np.testing.assert_allclose(ifan_grayscale(img), np.full((1, 1, 3), 1.055 * y ** (1 / 2.4) - 0.055), rtol=1e-12)


def test_ifan_augmentation_applies_to_every_view(tmp_path):
    arr = _random_uint((40, 40, 3), 8)
    _write(tmp_path / "input/a.png", arr)
    _write(tmp_path / "target/a.png", arr)
    aug = IFANAugmentation(noise_prob=1.0, grayscale_prob=1.0, rescale_prob=1.0, rescale_range=(0.5, 0.5))
    s = build_dataset(f"folder:{tmp_path}", "train", crop=16, ifan_augment=aug, seed=2)[0]
    assert s["input"].shape == (3, 16, 16)
    assert torch.equal(s["input"], s["target"])  # same noise, same grey, same window
    assert torch.equal(s["input"][0], s["input"][1])
    with pytest.raises(ValueError, match="rescale_range"):
        IFANAugmentation(rescale_range=(0.5, 1.5))


# --------------------------------------------------------------------------------------------------
# Synthetic data and specs
# --------------------------------------------------------------------------------------------------
def test_synthetic_samples_and_fixed_test_split():
    test_a = build_dataset("synthetic:size=32,test_count=2", "test", seed=0)
    test_b = build_dataset("synthetic:size=32,test_count=2", "test", seed=9)
    assert len(test_a) == 2 and test_a.has_dual_pixel
    s = test_a[1]
    assert set(s) == {"input", "target", "left", "right", "name"} and s["input"].shape == (3, 32, 32)
    for key in ("input", "target", "left", "right"):
        assert float(s[key].min()) >= 0.0 and float(s[key].max()) <= 1.0
    assert torch.equal(s["target"], test_b[1]["target"])  # the held-out split ignores the seed
    train = build_dataset("synthetic:size=32,count=2", "train", seed=0)
    train_other = build_dataset("synthetic:size=32,count=2", "train", seed=1)
    assert not np.array_equal(train.load(0)["target"], train_other.load(0)["target"])  # the seed picks scenes
    assert not np.array_equal(train.load(1)["target"], test_a.load(1)["target"])
    assert not np.array_equal(s["input"].numpy(), s["target"].numpy())  # blurred


def test_synthetic_options_and_errors():
    assert parse_spec("synthetic:size=48, count=3") == ("synthetic", None, {"size": "48", "count": "3"})
    with pytest.raises(ValueError, match="unknown synthetic option 'sise'"):
        build_dataset("synthetic:sise=4", "train")
    with pytest.raises(ValueError, match="exceeds the synthetic scene size"):
        build_dataset("synthetic:size=32", "train", crop=64)
    ds = build_dataset("synthetic:count=3", "train", crop=40)
    # training scenes are rendered at the held-out scenes' size (128) and cropped, or at the crop
    assert isinstance(ds, SyntheticDataset) and ds.size == 128 and len(ds) == 3
    assert ds[(0, 0)]["input"].shape == (3, 40, 40)
    assert build_dataset("synthetic:count=3", "train", crop=160).size == 160
    assert build_dataset("synthetic", "test").size == 128


def test_synthetic_photo_fraction_spreads_photo_scenes_over_training_only():
    train = build_dataset("synthetic:size=32,count=8,photo_fraction=0.5", "train")
    sources = [train.scene_source(i) for i in range(8)]
    assert sources.count("photo_leaves") == 4 and sources.count("dead_leaves") == 4
    assert sources[:2] == ["dead_leaves", "photo_leaves"]  # evenly spread, not in a block
    all_photos = build_dataset("synthetic:size=32,count=3,photo_fraction=1", "train")
    assert [all_photos.scene_source(i) for i in range(3)] == ["photo_leaves"] * 3
    default = build_dataset("synthetic:size=32,count=3", "train")
    assert [default.scene_source(i) for i in range(3)] == ["dead_leaves"] * 3
    test = build_dataset("synthetic:size=32,test_count=8,photo_fraction=1", "test")  # the test split never changes
    assert [test.scene_source(i) for i in range(8)] == ["dead_leaves"] * 3 + ["motorcycle"] + ["dead_leaves"] * 3 + [
        "motorcycle"]
    with pytest.raises(ValueError, match="photo_fraction must be a number in"):
        build_dataset("synthetic:photo_fraction=1.5", "train")


def test_synthetic_in_focus_fraction_renders_nearly_sharp_training_scenes_only():
    from learned.data import IN_FOCUS_COC

    assert IN_FOCUS_COC == (0.25, 1.0)  # within a pixel: the depth of field
    spec = "synthetic:size=48,count=8,in_focus_fraction=0.25"
    train = build_dataset(spec, "train")
    assert [train.in_focus(i) for i in range(8)] == [False, False, False, True] * 2  # evenly spread
    plain = build_dataset("synthetic:size=48,count=8", "train")
    assert not any(plain.in_focus(i) for i in range(8))
    for i in (0, 1, 2):  # the other scenes are the very same draws
        np.testing.assert_array_equal(train.load(i)["input"], plain.load(i)["input"])

    def blur_mse(ds, i):
        arrays = ds.load(i)
        return float(np.mean((arrays["input"] - arrays["target"]) ** 2))

    # same content and focus draw, largest CoC at most 1 px instead of [1, 8] px: far less blur
    assert blur_mse(train, 3) < blur_mse(plain, 3) and blur_mse(train, 7) < blur_mse(plain, 7)
    everything = build_dataset("synthetic:size=48,count=3,in_focus_fraction=1", "train")
    assert all(everything.in_focus(i) for i in range(3))
    test = build_dataset("synthetic:size=32,test_count=4,in_focus_fraction=1", "test")  # never the test split
    reference = build_dataset("synthetic:size=32,test_count=4", "test")
    assert not any(test.in_focus(i) for i in range(4))
    np.testing.assert_array_equal(test.load(3)["input"], reference.load(3)["input"])
    with pytest.raises(ValueError, match="in_focus_fraction must be a number in"):
        build_dataset("synthetic:in_focus_fraction=-0.1", "train")


def test_spec_errors():
    with pytest.raises(ValueError, match="unknown dataset kind 'dpd'"):
        parse_spec("dpd:/x")
    with pytest.raises(ValueError, match="needs a folder"):
        parse_spec("dpdd")
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset("synthetic", "training")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset("realdof:/nonexistent/folder", "test")


def test_file_dataset_rejects_empty_and_duplicates(tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        FileDataset([])
    rec = ImageRecord("a", tmp_path / "a.png")
    with pytest.raises(ValueError, match="duplicate sample names"):
        FileDataset([rec, rec])
