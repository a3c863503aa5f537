"""optics.image_io: the fast Pillow path of read_png equals pypng on every file it takes; pypng keeps the rest."""

from __future__ import annotations

import io

import numpy as np
import png
import pytest

from optics.image_io import _pillow_decodable, _read_png_pypng, npy_bytes, png_bytes, read_png


def _cases(rng):
    return {
        "grey8": rng.integers(0, 256, (37, 53), dtype=np.uint8),
        "grey16": rng.integers(0, 65536, (37, 53), dtype=np.uint16),
        "grey16_extremes": np.array([[0, 65535], [1024, 16383]], dtype=np.uint16),
        "rgb8": rng.integers(0, 256, (19, 23, 3), dtype=np.uint8),
        "rgba8": rng.integers(0, 256, (19, 23, 4), dtype=np.uint8),
        "rgb16": rng.integers(0, 65536, (19, 23, 3), dtype=np.uint16),
        "grey_alpha16": rng.integers(0, 65536, (11, 7, 2), dtype=np.uint16),
        "one_row16": rng.integers(0, 65536, (1, 9), dtype=np.uint16),
        "one_column8": rng.integers(0, 256, (9, 1, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("name", ["grey8", "grey16", "grey16_extremes", "rgb8", "rgba8", "rgb16", "grey_alpha16",
                                  "one_row16", "one_column8"])
def test_read_png_round_trips_and_matches_pypng(tmp_path, name):
    array = _cases(np.random.default_rng(0))[name]
    path = tmp_path / f"{name}.png"
    path.write_bytes(png_bytes(array))
    out = read_png(path)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    np.testing.assert_array_equal(out, _read_png_pypng(path))  # the naive twin
    # the fast path takes exactly the kinds Pillow decodes without loss
    assert _pillow_decodable(path) == (name in ("grey8", "grey16", "grey16_extremes", "rgb8", "rgba8", "one_row16",
                                                "one_column8"))


def test_png_bytes_refuses_an_empty_array():
    with pytest.raises(ValueError, match="at least one row"):
        png_bytes(np.zeros((0, 4), np.uint8))


def _write_with(path, array, **info):
    h, w = array.shape
    writer = png.Writer(width=w, height=h, greyscale=True, bitdepth=16, **info)
    with open(path, "wb") as f:
        writer.write(f, array.tolist())


def test_sbit_and_interlaced_files_go_through_pypng(tmp_path):
    array = np.arange(12, dtype=np.uint16).reshape(3, 4) * 4096
    for name, info in (("sbit", dict(planes=1)), ("interlaced", dict(interlace=True))):
        path = tmp_path / f"{name}.png"
        if name == "sbit":  # add an sBIT chunk by hand: pypng writes none for 16 bits
            buf = io.BytesIO()
            png.Writer(width=4, height=3, greyscale=True, bitdepth=16).write(buf, array.tolist())
            chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
            chunks.insert(1, (b"sBIT", bytes([12])))
            with open(path, "wb") as f:
                png.write_chunks(f, chunks)
        else:
            _write_with(path, array, interlace=True)
        assert not _pillow_decodable(path)
        np.testing.assert_array_equal(read_png(path), _read_png_pypng(path))


def test_bad_png_is_one_named_error(tmp_path):
    path = tmp_path / "broken.png"
    data = png_bytes(np.random.default_rng(1).integers(0, 65536, (64, 64), dtype=np.uint16))
    path.write_bytes(data[: len(data) // 2])  # cut inside the image data
    with pytest.raises(ValueError, match="broken.png"):
        read_png(path)
    path.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="cannot read PNG"):
        read_png(path)


def test_npy_bytes_round_trip():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(np.load(io.BytesIO(npy_bytes(a))), a)
