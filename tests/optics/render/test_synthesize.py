"""Synthetic DP dataset: CLI layout, 16-bit PNGs, determinism, disparity filling, API."""

from __future__ import annotations

import json

import struct
import zlib

import numpy as np
import pytest

from optics.image_io import read_png
from optics.render.synthesize import (
    dead_leaves_scene,
    fill_missing_disparity,
    main,
    motorcycle_scene,
    srgb_decode,
    srgb_encode,
    synthesize_scene,
)

ARGS = ["--count", "3", "--size", "24x32", "--max-coc", "4", "--motorcycle-fraction", "0.5",
        "--val-fraction", "0.34", "--test-fraction", "0.34", "--no-progress"]


def png_header(path):
    """(width, height, bit depth, colour type) from the IHDR chunk, checked against its CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR" and length == 13
    body = data[16:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF
    return struct.unpack(">IIBB", body[:10])


def read_png16(path):
    image = read_png(path)
    assert image.dtype == np.uint16
    return image


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    assert main(["--out", str(a), "--seed", "7", *ARGS]) == 0
    return a


def test_cli_writes_dpdd_layout(dataset):
    manifest = json.loads((dataset / "scenes.json").read_text())
    assert [m["split"] for m in manifest] == ["train", "val", "test"]
    for m in manifest:
        split, name = m["split"], m["name"]
        for rel in (f"{split}_c/source", f"{split}_l/source", f"{split}_r/source", f"{split}_c/target"):
            assert png_header(dataset / rel / f"{name}.png") == (32, 24, 16, 2)  # 16-bit RGB
        depth = np.load(dataset / f"{split}_c/depth/{name}.npy")
        coc = np.load(dataset / f"{split}_c/coc/{name}.npy")
        valid = np.load(dataset / f"{split}_c/depth_valid/{name}.npy")
        assert depth.dtype == coc.dtype == np.float32 and valid.dtype == bool
        assert depth.shape == coc.shape == (24, 32)
        assert np.abs(coc).max() <= 4 + 1e-4
        cam = m["camera"]
        c_inf = cam["focal_length_mm"] ** 2 / (
            2 * cam["f_number"] * (cam["focus_distance_m"] * 1e3 - cam["focal_length_mm"]) * cam["pixel_pitch_um"] * 1e-3
        )
        np.testing.assert_allclose(coc, c_inf * (1 - cam["focus_distance_m"] / depth.astype(np.float64)), rtol=1e-4, atol=1e-4)
    assert not list(dataset.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_cli_is_deterministic_for_a_seed(dataset, tmp_path):
    again = tmp_path / "again"
    main(["--out", str(again), "--seed", "7", *ARGS])
    assert tree(again) == tree(dataset)
    other = tmp_path / "other"
    main(["--out", str(other), "--seed", "8", *ARGS])
    assert tree(other) != tree(dataset)


def test_centre_png_is_mean_of_views_in_linear_light(dataset):
    m = json.loads((dataset / "scenes.json").read_text())[0]
    read = lambda rel: srgb_decode(read_png16(dataset / rel / f"{m['name']}.png") / 65535.0)  # noqa: E731
    c, l, r = read(f"{m['split']}_c/source"), read(f"{m['split']}_l/source"), read(f"{m['split']}_r/source")
    np.testing.assert_allclose(c, (l + r) / 2, atol=2e-4)  # K3DN Eq. 2 up to 16-bit quantisation


def test_cli_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--count", "0"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--count", "1", "--size", "600x800"])  # larger than the motorcycle
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--count", "1", "--size", "big"])


def test_fill_missing_disparity_takes_the_farther_neighbour():
    d = np.array([[5.0, np.inf, np.inf, 9.0], [np.inf, 3.0, np.inf, np.inf], [np.inf] * 4])
    filled, valid = fill_missing_disparity(d)
    np.testing.assert_array_equal(filled[0], [5.0, 5.0, 5.0, 9.0])  # min(5, 9): the background
    np.testing.assert_array_equal(filled[1], [3.0, 3.0, 3.0, 3.0])
    np.testing.assert_array_equal(filled[2], [3.0] * 4)  # empty row: the global minimum
    np.testing.assert_array_equal(valid, np.isfinite(d))
    with pytest.raises(ValueError, match="no finite"):
        fill_missing_disparity(np.full((2, 2), np.inf))


def test_motorcycle_depth_from_calibration():
    from skimage import data

    _, _, disparity = data.stereo_motorcycle()
    image, depth, valid = motorcycle_scene(np.random.default_rng(0))
    assert image.shape == (500, 741, 3) and depth.shape == valid.shape == (500, 741)
    assert np.all(np.isfinite(depth)) and (~valid).sum() == np.isinf(disparity).sum()
    # f B / (d + doffs): f = 994.978 px, B = 0.193001 m, doffs = 31.086 px
    flipped = not np.array_equal(valid, np.isfinite(disparity))
    disp = disparity[:, ::-1] if flipped else disparity
    ok = np.isfinite(disp)
    np.testing.assert_allclose(depth[ok], 994.978 * 0.193001 / (disp[ok] + 31.086), rtol=1e-6)


def test_dead_leaves_deterministic_and_in_range():
    a = dead_leaves_scene(np.random.default_rng(5), (40, 50), near_m=1.0, far_m=8.0)
    b = dead_leaves_scene(np.random.default_rng(5), (40, 50), near_m=1.0, far_m=8.0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].min() >= 1.0 and a[1].max() <= 8.0 and len(np.unique(a[1])) > 5
    assert a[0].min() >= 0 and a[0].max() <= 1


def test_photo_leaves_use_bundled_photos_deterministically():
    from skimage import data

    from optics.render.synthesize import TEXTURE_PHOTOS

    assert "stereo_motorcycle" not in TEXTURE_PHOTOS  # the held-out natural test photo
    a, depth = dead_leaves_scene(np.random.default_rng(3), (48, 40), textures="photos", radius_range=(4.0, 20.0))
    b, _ = dead_leaves_scene(np.random.default_rng(3), (48, 40), textures="photos", radius_range=(4.0, 20.0))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (48, 40, 3) and a.min() > 0 and a.max() <= 1 and len(np.unique(depth)) > 3
    # every pixel value comes from a photo (linearised sRGB, possibly a tinted grey one): natural
    # textures have many distinct values, unlike the procedural two-colour leaves
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 500
    photos = {name: srgb_decode(getattr(data, name)().astype(np.float64) / 255.0) for name in ("astronaut", "coffee")}
    assert all(p.min() >= 0 for p in photos.values())
    with pytest.raises(ValueError, match="textures must be 'procedural' or 'photos'"):
        dead_leaves_scene(np.random.default_rng(3), (48, 40), textures="kodak")


def test_photo_leaves_scene_renders():
    scene = synthesize_scene(np.random.default_rng(1), source="photo_leaves", shape=(40, 48), max_coc=4.0)
    assert scene.source == "photo_leaves" and scene.centre.shape == (40, 48, 3)
    np.testing.assert_allclose(scene.centre, (scene.left + scene.right) / 2, atol=1e-6)
    assert np.abs(scene.coc).max() <= 4.0 + 1e-4


def test_synthesize_scene_api():
    scene = synthesize_scene(np.random.default_rng(0), shape=(32, 40), max_coc=5.0, psf_model="butterworth")
    assert scene.centre.dtype == np.float32 and scene.centre.shape == (32, 40, 3)
    np.testing.assert_allclose(scene.centre, (scene.left + scene.right) / 2, atol=1e-7)
    assert np.abs(scene.coc).max() <= 5.0 + 1e-4
    assert scene.psf_model == "butterworth" and scene.psf_options["order"] in (3, 6, 9)
    with pytest.raises(TypeError, match="rng"):
        synthesize_scene(0)
    with pytest.raises(ValueError, match="source"):
        synthesize_scene(np.random.default_rng(0), source="kitti")


def test_srgb_roundtrip():
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=1e-12)


def test_cli_naive_records_clipping(tmp_path):
    main(["--out", str(tmp_path), "--count", "1", "--size", "48x64", "--naive", "--motorcycle-fraction", "0",
          "--seed", "3", "--no-progress"])
    (entry,) = json.loads((tmp_path / "scenes.json").read_text())
    assert entry["occlusion"] is False
    assert set(entry["values_clipped_above_1"]) == {"centre", "left", "right", "sharp"}
    assert entry["values_clipped_above_1"]["sharp"] == 0
