"""Issue 13: learned.deblur never loses a file, fails before the work, reads/writes TIFF, tiles exactly or refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import learned
from learned import deblur
from learned.data.io import READ_SUFFIXES, WRITE_SUFFIXES, read_image, write_image
from learned.inference.tiling import activation_bytes_per_pixel, plan_tiles
from optics import cli
from optics.image_io import png_bytes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "kpac.pt"
    learned.save_checkpoint(learned.build_model("kpac", channels=8), "kpac", path, {"channels": 8})
    return path


def _photo(path, depth=8, shape=(24, 28, 3), seed=0):
    dtype = np.uint8 if depth == 8 else np.uint16
    img = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(img))
    return img


def _run(argv, capsys):
    status = cli.run(deblur.main, argv)
    return status, capsys.readouterr().err


def test_output_replacing_the_input_is_refused(tmp_path, checkpoint, capsys):
    photo = tmp_path / "img" / "copy.png"
    _photo(photo)
    before = photo.read_bytes()
    for extra in ([], ["--overwrite"]):
        status, err = _run([str(photo), str(photo), "--model", "kpac", "--checkpoint", str(checkpoint), *extra], capsys)
        assert status == 2 and "is also an input" in err and err.count("\n") == 1
    # photos/*.png --out photos/
    other = tmp_path / "img" / "b.png"
    _photo(other, seed=1)
    status, err = _run([str(photo), str(other), "--out", str(tmp_path / "img"), "--model", "kpac",
                        "--checkpoint", str(checkpoint), "--overwrite"], capsys)
    assert status == 2 and "is also an input" in err
    assert photo.read_bytes() == before


def test_two_inputs_with_one_output_name_are_refused_before_loading(tmp_path, capsys):
    _photo(tmp_path / "a.png")
    (tmp_path / "a.jpg").write_bytes(b"not even decoded")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this checkpoint would fail to load")  # so the refusal must come first
    status, err = _run([str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "--out", str(tmp_path / "out"),
                        "--model", "kpac", "--checkpoint", str(broken)], capsys)
    assert status == 2
    assert "a.png' and '" in err and "a.jpg' would both be written" in err
    assert not (tmp_path / "out").exists()


def test_output_path_and_extension_checked_before_the_model_is_loaded(tmp_path, capsys):
    _photo(tmp_path / "a.png")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"garbage")
    status, err = _run([str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "--model", "kpac",
                        "--checkpoint", str(broken)], capsys)
    assert status == 2 and "must end in one of .png, .tif, .tiff; got '.jpg'" in err
    (tmp_path / "exists.png").write_bytes(b"keep me")
    status, err = _run([str(tmp_path / "a.png"), str(tmp_path / "exists.png"), "--model", "kpac",
                        "--checkpoint", str(broken)], capsys)
    assert status == 2 and "exists; pass --overwrite" in err
    assert (tmp_path / "exists.png").read_bytes() == b"keep me"
    status, err = _run([str(tmp_path), str(tmp_path / "o.png"), "--model", "kpac", "--checkpoint", str(broken)], capsys)
    assert status == 2 and "is a folder" in err and "does not exist" not in err


def test_deblur_writes_tiff_and_overwrites_only_when_asked(tmp_path, checkpoint, capsys):
    _photo(tmp_path / "a.png", depth=16)
    out = tmp_path / "a_sharp.tif"
    status, err = _run([str(tmp_path / "a.png"), str(out), "--model", "kpac", "--checkpoint", str(checkpoint)], capsys)
    assert status == 0, err
    assert err.strip().splitlines()[-1] == f"results: {out}"
    image, depth = read_image(out)
    assert depth == 16 and image.shape == (24, 28, 3)
    assert _run([str(tmp_path / "a.png"), str(out), "--model", "kpac", "--checkpoint", str(checkpoint)], capsys)[0] == 2
    assert _run([str(tmp_path / "a.png"), str(out), "--model", "kpac", "--checkpoint", str(checkpoint),
                 "--overwrite"], capsys)[0] == 0


# ------------------------------------------------------------------------------ image formats
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("suffix", WRITE_SUFFIXES)
def test_lossless_write_read_roundtrip(tmp_path, suffix, depth):
    dtype = np.uint8 if depth == 8 else np.uint16
    scale = np.iinfo(dtype).max
    ints = np.random.default_rng(depth).integers(0, scale, size=(13, 17, 3), dtype=dtype)
    path = tmp_path / f"x{suffix}"
    write_image(path, ints.astype(np.float64) / scale, depth)
    image, got_depth = read_image(path)
    assert got_depth == depth
    np.testing.assert_array_equal(np.round(image.astype(np.float64) * scale).astype(dtype), ints)


def test_every_documented_suffix_is_read(tmp_path):
    """Every suffix of learned.io.READ_SUFFIXES and of the dataset readers (learned.data.IMAGE_SUFFIXES)."""
    import imageio.v3 as iio
    import tifffile

    from learned.data import IMAGE_SUFFIXES

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:16, 0:20]
    img8 = np.stack([yy * 15, xx * 12, 120 + yy * 4 + xx * 3], axis=-1).astype(np.uint8)  # smooth: JPEG-friendly
    img16 = rng.integers(0, 65535, size=(16, 20, 3), dtype=np.uint16)
    for suffix in sorted(set(READ_SUFFIXES) | set(IMAGE_SUFFIXES)):
        for ext in (suffix, suffix.upper()):
            path = tmp_path / f"x{ext}"
            if suffix in (".tif", ".tiff"):
                tifffile.imwrite(path, img16)
                image, depth = read_image(path)
                assert depth == 16
                np.testing.assert_array_equal(np.round(image * 65535.0).astype(np.uint16), img16)
                continue
            if suffix == ".png":
                path.write_bytes(png_bytes(img8))
            else:
                iio.imwrite(path, img8, extension=suffix)
            image, depth = read_image(path)
            assert depth == 8 and image.shape == img8.shape
            if suffix in (".png", ".bmp"):  # lossless formats
                np.testing.assert_array_equal(np.round(image * 255.0).astype(np.uint8), img8)
            else:  # JPEG is lossy: close, not equal
                assert np.abs(image * 255.0 - img8).mean() < 6


def test_unsupported_and_unreadable_files_are_named(tmp_path):
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match=r"x\.gif' must end in one of"):
        read_image(tmp_path / "x.gif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.tif"):
        read_image(tmp_path / "bad.tif")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_image(tmp_path)


# ------------------------------------------------------------------------------ tiling
def _receptive_field_net():
    """Three 9x9 convolutions (receptive-field radius 12), zero padding: exact tiling needs overlap/4 >= 12."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 9, padding=4), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 8, 9, padding=4), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 3, 9, padding=4)).eval()


def test_too_small_budget_is_refused_with_the_smallest_that_works():
    net = _receptive_field_net()
    image = np.random.default_rng(0).random((200, 230, 3)).astype(np.float32)
    untiled = deblur.deblur_image(net, image, max_memory_gib=None)
    bpp = deblur.MEMORY_SAFETY * activation_bytes_per_pixel(net, [torch.rand(1, 3, 64, 64)])
    small = bpp * 96 * 96 / 2**30  # allows 96 px tiles; --overlap 64 needs 128 px
    with pytest.raises(ValueError, match=r"allows tiles of only 96 px.*at least 128 px: give --max-memory (\S+) or more"):
        deblur.deblur_image(net, image, max_memory_gib=small, overlap=64)
    try:
        deblur.deblur_image(net, image, max_memory_gib=small, overlap=64)
    except ValueError as err:
        smallest = float(str(err).split("give --max-memory ")[1].split(" ")[0])
    assert plan_tiles(200, 230, overlap=64, bytes_per_pixel=bpp, budget_bytes=smallest * 2**30).tile == 128
    exact = deblur.deblur_image(net, image, max_memory_gib=smallest, overlap=64)
    np.testing.assert_allclose(exact, untiled, atol=2e-6)  # the smallest budget named works, exactly


def test_inexact_tiles_only_when_allowed_with_a_warning_stating_the_error(capsys):
    net = _receptive_field_net()
    image = np.random.default_rng(1).random((200, 230, 3)).astype(np.float32)
    untiled = deblur.deblur_image(net, image, max_memory_gib=None)
    with pytest.raises(ValueError, match="--allow-inexact-tiles"):
        deblur.deblur_image(net, image, tile=64, overlap=64)
    inexact = deblur.deblur_image(net, image, tile=64, overlap=64, allow_inexact_tiles=True)
    err = capsys.readouterr().err
    assert err.startswith("warning: inexact tiles") and "/255 at most" in err and err.count("\n") == 1
    stated = float(err.split("of about ")[1].split("/255")[0]) / 255
    actual = float(np.abs(inexact - untiled).max())
    assert actual > 1e-4  # 32 px of overlap: overlap/4 = 8 < the radius 12, so not exact
    assert stated > 0 and stated > actual / 20  # the warning's estimate is of the right order
    with pytest.raises(ValueError, match="below 64 px"):
        deblur.deblur_image(net, image, tile=32, overlap=64, allow_inexact_tiles=True)
