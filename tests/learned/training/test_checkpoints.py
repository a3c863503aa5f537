"""Loading the authors' checkpoints: parity, strictness, safety; convert and deblur CLIs; image I/O."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import learned
from learned import convert, deblur
from learned.training import checkpoints
from learned.data.io import read_image, write_image
from optics.image_io import png_bytes, read_png

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
PARITY = SHARED / "parity"
needs_parity = pytest.mark.skipif(not PARITY.is_dir(), reason=f"parity vectors not found at {PARITY}")


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def ifan_official():
    return learned.load_official_checkpoint("ifan", PARITY / "ifan" / "IFAN_parity.pytorch")


@pytest.fixture(scope="module")
def nrknet_official():
    return learned.load_official_checkpoint("nrknet", PARITY / "nrknet" / "NRKNet_parity.pth")


# ---------------------------------------------------------------- parity through load_official_checkpoint
@needs_parity
def test_ifan_parity(ifan_official):
    assert not ifan_official.training and ifan_official.reuse_vertical_kernel
    x = torch.from_numpy(np.load(PARITY / "ifan" / "input.npy"))
    with torch.no_grad():
        aux = ifan_official(x, return_aux=True)
    for key, ref in (("output", "output.npy"), ("output_unclipped", "output_unclipped.npy"), ("disparity", "disparity.npy")):
        diff = np.abs(aux[key].numpy() - np.load(PARITY / "ifan" / ref)).max()
        assert diff <= 1e-5, (key, diff)


@needs_parity
def test_nrknet_parity_both_batchnorm_modes(nrknet_official):
    x = torch.from_numpy(np.load(PARITY / "nrknet" / "input_rgb.npy"))
    with torch.no_grad():
        out = nrknet_official(x).numpy()
    assert np.abs(out - np.load(PARITY / "nrknet" / "output_rgb.npy")).max() <= 1e-5
    nrknet_official.batchnorm_stats = "batch"
    try:
        with torch.no_grad():
            out = nrknet_official(x).numpy()
    finally:
        nrknet_official.batchnorm_stats = "running"
    assert np.abs(out - np.load(PARITY / "nrknet" / "output_rgb_testpy_trainmodeBN.npy")).max() <= 1e-5


@needs_parity
def test_nrknet_padding_matches_authors_reflect_padding(nrknet_official):
    """At a size that is not a multiple of 16, our internal padding equals the authors' TestDataset
    procedure (centred reflect padding to a multiple of 16, run, crop), which the parity vectors
    verify at multiples of 16."""
    x = torch.from_numpy(np.load(PARITY / "nrknet" / "input_rgb.npy"))[:, :, :116, :178]
    dh, dw = 128 - 116, 192 - 178
    padded = torch.nn.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="reflect")
    with torch.no_grad():
        ours = nrknet_official(x)
        theirs = nrknet_official(padded)[:, :, dh // 2 : dh // 2 + 116, dw // 2 : dw // 2 + 178]
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)


@needs_parity
def test_ifan_authors_crop_protocol_reproduced_on_cropped_input(ifan_official):
    """The authors' evaluation crops to a multiple of 8 (top-left); on that crop our network is the parity one."""
    x = torch.from_numpy(np.load(PARITY / "ifan" / "input.npy"))
    with torch.no_grad():
        full = ifan_official(x)
        odd = ifan_official(x[:, :, :125, :190])  # padded inside, cropped back: no pixel dropped
    assert odd.shape == (1, 3, 125, 190)
    # away from the padded border the two runs agree closely (the receptive field reaches the padding)
    assert (odd[:, :, :96, :160] - full[:, :, :96, :160]).abs().mean() < 1e-3


# ---------------------------------------------------------------- strictness and safety
def _save(tmp_path, state, name="ckpt.pytorch"):
    path = tmp_path / name
    torch.save(state, path)
    return path


@needs_parity
def test_ifan_prefixes_and_reblur_keys(tmp_path, caplog):
    state = torch.load(PARITY / "ifan" / "IFAN_parity.pytorch", weights_only=True)
    variants = {
        "network_only": {k.replace("module.", "", 1): v for k, v in state.items()},
        "bare": {k.replace("module.Network.", "", 1): v for k, v in state.items()},
        "with_reblur": {**state, "module.reblurNet.RBF.0.weight": torch.zeros(3), "module.reblurNet.RBF.0.bias": torch.zeros(3)},
    }
    for name, variant in variants.items():
        with caplog.at_level(logging.INFO, logger="learned.training.checkpoints"):
            model = learned.load_official_checkpoint("ifan", _save(tmp_path, variant, f"{name}.pytorch"))
        assert isinstance(model, learned.IFAN)
    assert "ignored 2 keys of the training-only reblurring network" in caplog.text


@needs_parity
def test_strict_errors_name_the_tensor(tmp_path):
    state = torch.load(PARITY / "nrknet" / "NRKNet_parity.pth", weights_only=True)
    missing = dict(state)
    del missing["GCM.kernels"]
    with pytest.raises(ValueError, match=r"missing 1: \['GCM.kernels'\]"):
        learned.load_official_checkpoint("nrknet", _save(tmp_path, missing))
    extra = {**state, "foo.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected 1: \['foo.weight'\]"):
        learned.load_official_checkpoint("nrknet", _save(tmp_path, extra))
    wrong = {**state, "SummationLayer.conv.bias": torch.zeros(4)}
    with pytest.raises(ValueError, match=r"mis-shaped 1: \['SummationLayer.conv.bias: checkpoint \(4,\) vs model \(3,\)'\]"):
        learned.load_official_checkpoint("nrknet", _save(tmp_path, wrong))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    torch.save({"x": _Exploit(marker)}, path)
    with pytest.raises(ValueError, match="refused to load"):
        learned.load_official_checkpoint("nrknet", path)
    assert not os.path.exists(marker)


def test_unknown_model_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="model_name must be one with released weights"):
        learned.load_official_checkpoint("k3dn_tiny", tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        learned.load_official_checkpoint("ifan", tmp_path / "nope.pytorch")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        learned.load_official_checkpoint("nrknet", tmp_path / "garbage.pth")


# ---------------------------------------------------------------- KPAC .npz
def _write_authors_npz(path, params):
    arr = np.empty(len(params), dtype=object)
    arr[:] = params
    np.savez(path, params=arr)  # what TF-era numpy wrote for a ragged list


@pytest.mark.parametrize("name", ["kpac", "kpac_2level"])
def test_kpac_npz_roundtrip(tmp_path, name):
    torch.manual_seed(0)
    source = learned.build_model(name).eval()
    params = checkpoints.kpac_params_from_model(source)
    assert params[0].shape == (5, 5, 3, 48)  # HWIO, as TensorFlow stores Conv1_1
    path = tmp_path / "kpac.npz"
    _write_authors_npz(path, params)
    loaded = learned.load_official_checkpoint(name, path)
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_kpac_npz_refuses_code_and_wrong_counts(tmp_path):
    evil = np.empty(1, dtype=object)
    evil[0] = _Exploit(str(tmp_path / "pwned"))
    np.savez(tmp_path / "evil.npz", params=evil)
    with pytest.raises(ValueError, match="refused to load"):
        learned.load_official_checkpoint("kpac", tmp_path / "evil.npz")
    assert not (tmp_path / "pwned").exists()
    _write_authors_npz(tmp_path / "short.npz", [np.zeros((5, 5, 3, 48), np.float32)])
    with pytest.raises(ValueError, match="one array per parameter"):
        learned.load_official_checkpoint("kpac", tmp_path / "short.npz")


# ---------------------------------------------------------------- convert and deblur CLIs
@needs_parity
def test_convert_roundtrip(tmp_path, ifan_official):
    out = tmp_path / "ifan.pt"
    assert convert.main(["--model", "ifan", "--official", str(PARITY / "ifan" / "IFAN_parity.pytorch"), "--out", str(out)]) == 0
    model = learned.load_checkpoint(out)
    x = torch.from_numpy(np.load(PARITY / "ifan" / "input.npy"))[:, :, :64, :64]
    with torch.no_grad():
        assert torch.equal(model(x), ifan_official(x))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


@needs_parity
@pytest.mark.parametrize("depth", [8, 16])
def test_deblur_cli_preserves_bit_depth(tmp_path, depth):
    rng = np.random.default_rng(0)
    dtype = np.uint8 if depth == 8 else np.uint16
    img = rng.integers(0, np.iinfo(dtype).max, size=(37, 45, 3), dtype=dtype)
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(img))
    dst = tmp_path / "out.png"
    ckpt = str(PARITY / "nrknet" / "NRKNet_parity.pth")
    assert deblur.main([str(src), str(dst), "--model", "nrknet", "--checkpoint", ckpt]) == 0
    out = read_png(dst)
    assert out.dtype == dtype and out.shape == img.shape


def test_image_io_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    img16 = rng.integers(0, 65535, size=(9, 11, 3), dtype=np.uint16)
    (tmp_path / "a.png").write_bytes(png_bytes(img16))
    x, depth = read_image(tmp_path / "a.png")
    assert depth == 16 and x.dtype == np.float32
    np.testing.assert_array_equal(np.round(x.astype(np.float64) * 65535).astype(np.uint16), img16)  # lossless
    write_image(tmp_path / "b.png", x, 16)
    np.testing.assert_array_equal(read_png(tmp_path / "b.png"), img16)
    (tmp_path / "rgba.png").write_bytes(png_bytes(np.zeros((4, 4, 4), np.uint8)))
    with pytest.raises(ValueError, match="got 4 channels .RGBA"):
        read_image(tmp_path / "rgba.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="cannot read PNG"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_image(tmp_path / "c.png", x * 2, 8)
