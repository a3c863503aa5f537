"""Bundled weights (learned.pretrained): the manifest, checksums, loading and the CLIs' --pretrained.

The checks of the bundled files recompute each SHA-256 with hashlib and load each file with
``torch.load(weights_only=True)``; the mechanics are tested on a temporary weights folder.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import learned
from learned import pretrained as P
from learned.models.dp_refine import DPRefine

REPO = Path(__file__).resolve().parents[2]


def _tiny_checkpoint(path: Path, seed: int = 0) -> DPRefine:
    torch.manual_seed(seed)
    model = DPRefine(channels=4, levels=2)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.05)
    learned.save_checkpoint(model, "dp_refine", path, config=dict(channels=4, levels=2))
    return model.eval()


# ---------------------------------------------------------------------------- the bundled weights
@pytest.mark.parametrize("entry", P.available(), ids=lambda e: f"{e['model']}:{e['name']}")
def test_bundled_weights_match_their_checksum_and_load(entry):
    path = P.WEIGHTS_DIR / entry["file"]
    assert path.stat().st_size <= 10 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert torch.load(path, map_location="cpu", weights_only=True)["model"] == entry["model"]
    model = P.load_pretrained(entry["model"], entry["name"])
    assert isinstance(model, torch.nn.Module) and not model.training
    for key in ("trained_on", "command", "scores"):
        assert entry[key], key


def test_cli_lists_the_bundled_weights_as_json():
    proc = subprocess.run([sys.executable, "-m", "learned.pretrained", "--json"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert listed == P.available()
    assert all({"name", "model"} <= set(e) for e in listed)


# ---------------------------------------------------------------------------- mechanics
def test_bundle_load_and_refuse_a_changed_file(tmp_path):
    root = tmp_path / "weights"
    model = _tiny_checkpoint(tmp_path / "run.pt")
    entry = P.bundle(tmp_path / "run.pt", "demo", "a test", "python -m learned.train ...", {"psnr": 1.0}, root=root)
    assert entry["sha256"] == hashlib.sha256((tmp_path / "run.pt").read_bytes()).hexdigest()
    assert P.available(root) == [entry]
    loaded = P.load_pretrained("dp_refine", "demo", root)
    x = [torch.rand(1, 3, 8, 8) for _ in range(3)] + [torch.rand(1, 1, 8, 8)]
    with torch.no_grad():
        assert torch.equal(loaded(*x), model(*x))
    # the same name again: refused unless overwrite
    with pytest.raises(FileExistsError, match="bundled already"):
        P.bundle(tmp_path / "run.pt", "demo", "a test", "cmd", root=root)
    _tiny_checkpoint(tmp_path / "run2.pt", seed=1)
    P.bundle(tmp_path / "run2.pt", "demo", "a test", "cmd", root=root, overwrite=True)
    assert len(P.available(root)) == 1
    # one changed byte: refused with both checksums named
    path = root / P.available(root)[0]["file"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256") as info:
        P.checkpoint_path("dp_refine", "demo", root)
    assert "\n" not in str(info.value)


def test_unknown_weights_error_lists_what_is_bundled(tmp_path):
    root = tmp_path / "weights"
    _tiny_checkpoint(tmp_path / "run.pt")
    P.bundle(tmp_path / "run.pt", "demo", "a test", "cmd", root=root)
    with pytest.raises(ValueError, match=r"no bundled weights for model 'kpac_dual'; bundled: dp_refine:demo"):
        P.find("kpac_dual", "demo", root)
    with pytest.raises(ValueError, match="no bundled weights"):
        P.find("dp_refine", "other", root)


def test_bundle_refuses_what_is_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        P.bundle(tmp_path / "x.pt", "demo", "t", "c", root=tmp_path / "w")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        P.bundle(tmp_path / "missing.pt", "demo", "t", "c", root=tmp_path / "w")
    assert not (tmp_path / "w" / "manifest.json").exists()


def test_bad_manifest_one_line_error(tmp_path):
    (tmp_path / "manifest.json").write_text('[{"name": "x"}]')
    with pytest.raises(ValueError, match="lacks") as info:
        P.available(tmp_path)
    assert "\n" not in str(info.value)


def _write_views(tmp_path: Path, shape=(40, 48)):
    from learned.data.io import write_image

    rng = np.random.default_rng(0)
    plane = (0.1 + 0.2 * rng.random(shape)).astype(np.float32)
    for side in ("left", "right"):
        write_image(tmp_path / f"{side}.png", np.repeat(plane[..., None], 3, axis=2), 16)
    return tmp_path / "left.png", tmp_path / "right.png"


def _deblur(*args):
    return subprocess.run([sys.executable, "-m", "learned.deblur", *map(str, args), "--threads", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.skipif(not any(e["name"] == "pixel4" and e["model"] == "dp_refine" for e in P.available()),
                    reason="no dp_refine:pixel4 weights bundled")
def test_deblur_cli_with_the_bundled_weights_runs_offline(tmp_path):
    """The whole path on a frame of the Pixel 4 crop's size: physics estimate, then the network."""
    left, right = _write_views(tmp_path, (1008, 1344))
    out = tmp_path / "out.png"
    proc = _deblur(left, out, "--right", right, "--model", "dp_refine", "--pretrained", "pixel4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from learned.data.io import read_image

    image, depth = read_image(out)
    assert image.shape[:2] == (1008, 1344) and depth == 16


def test_cli_pretrained_and_frame_errors_are_one_line(tmp_path):
    left, right = _write_views(tmp_path)
    _tiny_checkpoint(tmp_path / "tiny.pt")
    cases = [(["--model", "kpac_dual", "--pretrained", "nonexistent"], "no bundled weights"),
             (["--model", "dp_refine", "--pretrained", "pixel4", "--checkpoint", str(left)], "not allowed with"),
             (["--model", "dp_refine", "--checkpoint", str(tmp_path / "tiny.pt")], "views 40x48 are smaller than "
              "the 336x336"),
             (["--model", "kpac_dual", "--checkpoint", str(tmp_path / "tiny.pt"), "--dual-pixel-psf", "pixel4"],
              "only for"),
             (["--model", "kpac_dual", "--checkpoint", str(tmp_path / "tiny.pt"), "--psf", "pixel4"], "only for")]
    for args, match in cases:
        proc = _deblur(left, tmp_path / "o.png", "--right", right, *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
        assert len(lines) == 1 and match in lines[0], proc.stderr
    assert not (tmp_path / "o.png").exists()


def _pixel4_layout(root: Path) -> None:
    """One scene in Xin et al.'s layout (raw 2016x1512 views with black level 1024, equal white
    sheets, 1344x1008 ground truth): enough for the pixeldp reader and the dual_pixel row."""
    from scipy import ndimage

    from optics.image_io import png_bytes

    def write(path: Path, array: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(array))

    rng = np.random.default_rng(3)
    sharp = ndimage.gaussian_filter(rng.random((1512, 2016)), 2.0)
    sharp = 0.05 + 0.3 * (sharp - sharp.min()) / np.ptp(sharp)
    k = np.zeros((9, 9))
    k[4, 2:5] = 1 / 3
    for side, kernel in (("left", k), ("right", k[:, ::-1])):
        write(root / f"001_{side}.png", np.round(1024 + ndimage.convolve(sharp, kernel, mode="mirror") * 16383)
              .astype(np.uint16))
        write(root / f"calibration/white_sheet_{side}.png", np.full((1512, 2016), 1024 + 9000, np.uint16))
        np.save(root / f"calibration/blur_kernels_{side}.npy", np.broadcast_to(kernel, (48, 9, 9)).astype(np.float32))
    write(root / "gt_all_in_focus_im/001_gt.png",
          np.round(sharp[252:252 + 1008, 336:336 + 1344] * 65535).astype(np.uint16))


def test_evaluate_refinement_on_real_layout_matches_the_physics_row_when_untrained(tmp_path):
    """learned.evaluate --model dp_refine on a pixeldp folder: the physics estimate comes from the
    folder's calibration; an untrained dp_refine (zero head) scores exactly the dual_pixel row."""
    root = tmp_path / "DP_data_pixel_4"
    _pixel4_layout(root)
    torch.manual_seed(0)
    learned.save_checkpoint(DPRefine(channels=4, levels=2), "dp_refine", tmp_path / "untrained.pt",
                            config=dict(channels=4, levels=2))
    proc = subprocess.run([sys.executable, "-m", "learned.evaluate", "--model", "dp_refine", "--checkpoint",
                           str(tmp_path / "untrained.pt"), "--data", f"pixeldp:{root}", "--baseline", "dual_pixel",
                           "--no-lpips", "--threads", "1", "--protocol", "registered", "--out", str(tmp_path / "ev")],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r.split(",")[1]: r.split(",")[2] for r in (tmp_path / "ev" / "metrics.csv").read_text().splitlines()[1:]
            if r.startswith("001")}
    assert rows["dp_refine"] == rows["dual_pixel"] != rows["input"]
    # a known 3 px blur, its own kernels; registered scoring, as this fixture's ground truth is the full-aperture
    # image while Xin et al.'s layout registers the output near the left view (PIXEL4_REFERENCE): a global shift
    assert float(rows["dual_pixel"]) > float(rows["input"]) + 3, rows


def test_cli_table_is_readable_says_each_input_and_where_results_are():
    """Issue 28: a short row per weights with the input it needs, details wrapped below, a results: line."""
    proc = subprocess.run([sys.executable, "-m", "learned.pretrained"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "| name | model | input it needs | real-data PSNR | MB |"
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| name")]
    assert len(rows) == len(P.available()) and all(len(ln) <= 120 for ln in rows), rows
    for entry in P.available():
        assert P.needs(entry) in next(ln for ln in rows if ln.startswith(f"| {entry['name']} | {entry['model']} |"))
    assert all(len(ln) <= 104 or ln in rows or "regenerate with" in ln or "measured by" in ln for ln in lines), lines
    assert proc.stderr.strip().splitlines()[-1].startswith("results: ")
    assert "1008x1344 raw green" in P.needs({"model": "dp_refine"})
    assert P.needs({"model": "kpac", "input": "one photo"}) == "one photo"


@pytest.mark.skipif(not any(e["name"] == "pixel4" and e["model"] == "dp_refine" for e in P.available()),
                    reason="no dp_refine:pixel4 weights bundled")
def test_an_in_focus_srgb_pair_stays_sharp_and_comes_back_srgb(tmp_path):
    """Issue 32: an 8-bit sRGB pair of one sharp photo through dp_refine. Before: written as linear values
    (dark, posterised), and the network's residual took the in-focus pair from 52.0 to 28.8 dB; now the
    output keeps what the physics kept as in focus and is sRGB (measured 52.0 -> 52.0 dB at 16 bits)."""
    from optics.display import linear_to_srgb
    from optics.image_io import png_bytes, read_png
    from optics.render.synthesize import dead_leaves_scene

    rng = np.random.default_rng(0)
    image, _ = dead_leaves_scene(rng, (336, 336))
    truth = linear_to_srgb(image)
    for side in ("left", "right"):
        noisy = np.clip(np.round(truth * 255) + rng.integers(-1, 2, truth.shape), 0, 255).astype(np.uint8)
        (tmp_path / f"{side}.png").write_bytes(png_bytes(noisy))
    args = ("--right", tmp_path / "right.png", "--model", "dp_refine", "--pretrained", "pixel4", "--psf", "disc",
            "--psf-radius", "6")
    proc = _deblur(tmp_path / "left.png", tmp_path / "out16.png", *args, "--bit-depth", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sRGB, as the input" in proc.stderr
    views = [read_png(tmp_path / f"{side}.png") / 255.0 for side in ("left", "right")]
    psnr = lambda a: -10 * np.log10(np.mean((a - truth) ** 2))  # noqa: E731
    assert psnr(read_png(tmp_path / "out16.png") / 65535.0) >= psnr((views[0] + views[1]) / 2) - 0.1
    proc = _deblur(tmp_path / "left.png", tmp_path / "out8.png", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out8 = read_png(tmp_path / "out8.png")
    assert out8.dtype == np.uint8 and abs(out8.mean() - 255 * (views[0] + views[1]).mean() / 2) < 1.0
