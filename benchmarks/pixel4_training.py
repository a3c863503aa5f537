"""Study: networks trained only on sensor-matched synthetic Pixel 4 renders, scored on Xin et al.'s 17 real scenes.

``python -m benchmarks.pixel4_training --data DIR --out STUDY [--jobs 2] [--seeds 0 1 2] [--only NAME ...]``

``DIR`` is ``DP_data_pixel_4`` of github.com/cmu-ci-lab/dual_pixel_defocus_estimation_deblurring
(not included: no licence). ``STUDY`` is a folder of the study's own; a run already finished there
is kept and not redone (the study resumes after an interruption), nothing else is overwritten.

What it does:

1. **References** (``STUDY/reference.json``): the corrected input ``(L + R) / 2`` and the
   training-free ``dual_pixel`` row (:func:`optics.dual_pixel.deblur.dual_pixel_deblur` with Xin et al.'s
   calibrated kernels, its defaults tuned on scenes 001-008), per scene; the physics estimate
   and its defocus map are cached in ``STUDY/physics/`` for ``dp_refine``.
2. **Runs** (:func:`configs` x seeds, seed-major, ``--jobs`` at a time with one thread each):
   ``python -m learned.train --preset pixel4`` (:mod:`learned.training.recipes`: reduced widths,
   ``synthetic:sensor=pixel4`` renders, about 8 CPU-minutes a run), then every real scene scored
   raw and under the ``registered`` protocol (``STUDY/runs/NAME/real.json``).
3. **Report** (``STUDY/report.md``, printed): per configuration and seed the mean PSNR / SSIM
   over all 17 scenes, the tuning scenes 001-008 and the held-out scenes 009-017, raw and
   registered, beside the ``input`` and ``dual_pixel`` rows; the per-scene table; the targets of
   the issue (the best configuration chosen on 001-008 only).

``python -m benchmarks.pixel4_training --report-only --out STUDY`` re-writes nothing and prints
the report of what is there. Figures are measurements of one machine and one run, never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from optics import cli

TUNING = tuple(f"{i:03d}" for i in range(1, 9))
SCENES = tuple(f"{i:03d}" for i in range(1, 18))


@dataclass(frozen=True)
class StudyConfig:
    """One configuration of the study: a model and its training data (``None``: the preset's)."""

    name: str
    model: str
    data: Optional[str] = None
    note: str = ""
    #: further ``learned.train`` arguments; ``{data}``, ``{study}`` and ``{seed}`` are filled in
    args: Tuple[str, ...] = ()
    #: the configuration whose run of the same seed must exist first (its model.pt is the ``--init``)
    needs: Optional[str] = None


def configs() -> List[StudyConfig]:
    """The study's configurations, in the order they run (per seed)."""
    from learned.training.recipes import PIXEL4_DATA, PIXEL4_REFINE_DATA

    return [
        StudyConfig("kpac_dual", "kpac_dual", note="KPAC dual, width 16; calibrated field, noise, vignetting"),
        StudyConfig("k3dn_tiny", "k3dn_tiny", note="K3DN tiny at smoke widths; calibrated field, noise, vignetting"),
        StudyConfig("dp_refine", "dp_refine", note="physics refinement (L, R, physics estimate, defocus map)"),
        StudyConfig("kpac_dual-butterworth", "kpac_dual", PIXEL4_DATA + ",psf=butterworth",
                    note="ablation: symmetric Butterworth PSFs instead of the calibrated field"),
        StudyConfig("kpac_dual-noise_off", "kpac_dual", PIXEL4_DATA + ",noise=off", note="ablation: no sensor noise"),
        StudyConfig("kpac_dual-vignetting_off", "kpac_dual", PIXEL4_DATA + ",vignetting=off",
                    note="ablation: no vignetting"),
        # after the diagnosis (docs/pixel4_training.md): piecewise-smooth depth, as real scenes have
        StudyConfig("dp_refine-smooth_depth", "dp_refine", PIXEL4_REFINE_DATA + ",depth=smooth",
                    note="dp_refine on scenes of piecewise-smooth depth (few depth edges)"),
        StudyConfig("kpac_dual-smooth_depth", "kpac_dual", PIXEL4_DATA + ",depth=smooth",
                    note="kpac_dual on scenes of piecewise-smooth depth (few depth edges)"),
        # issue 26: fine-tuning with the self-supervised reblur loss on the views of 001-008, paired by seed
        # with the same fine-tuning without it (the supervised share alone)
        StudyConfig("dp_refine-ft_real", "dp_refine", FINETUNE_REFINE_DATA, args=FINETUNE + ("--init", "pretrained:pixel4") + REAL,
                    note="bundled pixel4 dp_refine fine-tuned: reblur loss on the views of 001-008 + supervised share"),
        StudyConfig("dp_refine-ft_synthetic", "dp_refine", FINETUNE_REFINE_DATA,
                    args=FINETUNE + ("--init", "pretrained:pixel4"),
                    note="ablation: the same fine-tuning without the reblur loss (supervised share only)"),
        StudyConfig("kpac_dual-ft_real", "kpac_dual", FINETUNE_DATA, needs="kpac_dual",
                    args=FINETUNE + ("--init", "{study}/runs/kpac_dual-s{seed}/model.pt") + REAL,
                    note="kpac_dual (views only) fine-tuned: reblur loss on the views of 001-008 + supervised share"),
        StudyConfig("kpac_dual-ft_synthetic", "kpac_dual", FINETUNE_DATA, needs="kpac_dual",
                    args=FINETUNE + ("--init", "{study}/runs/kpac_dual-s{seed}/model.pt"),
                    note="ablation: the same fine-tuning without the reblur loss"),
    ]


#: Issue 26's fine-tuning: 600 steps from a supervised start at a lower LR (cosine decay), the
#: supervised share on piecewise-smooth depth (real scenes have few depth edges: the diagnosis of
#: docs/pixel4_training.md), 96 scenes (their physics costs 1.1 s a scene).
FINETUNE = ("--steps", "600", "--lr", "3e-4")
FINETUNE_REFINE_DATA = "synthetic:sensor=pixel4,size=336,count=96,physics=on,depth=smooth"
FINETUNE_DATA = "synthetic:sensor=pixel4,size=336,count=192,depth=smooth"
#: the reblur term: 2 crops of 128 px (+16 px border) a step, weight 0.1 (its Charbonnier gradient is
#: about ten times the supervised MSE's), the gain on the centres of 001-008 logged every 100 steps
REAL = ("--real-views", "pixeldp:{data}", "--real-weight", "0.1", "--real-monitor-every", "100")


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------
def _metrics(image: np.ndarray, target: np.ndarray) -> Dict[str, float]:
    from learned.evaluate import apply_protocol_crop, score

    raw = score(image, target, protocol="none")
    reg_arrays = apply_protocol_crop({"input": image, "target": target}, "registered")
    reg = score(reg_arrays["input"], reg_arrays["target"], protocol="registered", original_size=target.shape[:2])
    return {"psnr": raw["psnr"], "ssim": raw["ssim"], "psnr_reg": reg["psnr"], "ssim_reg": reg["ssim"]}


def _dataset(data: Path):
    from learned.data import build_dataset

    return build_dataset(f"pixeldp:{data}", "test", crop=None, augment=False)


def references(data: Path, study: Path, workers: int) -> dict:
    """Input and ``dual_pixel`` rows per scene; caches the physics estimate for ``dp_refine``."""
    from learned.baseline import add_physics, dual_pixel_row
    from learned.data.io import atomic_write_bytes
    from optics.image_io import npy_bytes

    path = study / "reference.json"
    if path.is_file():
        return json.loads(path.read_text())
    dataset = _dataset(data)
    # the physics of every entry point (learned.evaluate --baseline dual_pixel, the real-view fine-tuning)
    physics = dual_pixel_row(f"pixeldp:{data}", workers=workers)
    (study / "physics").mkdir(parents=True, exist_ok=True)
    rows = {}
    for i in range(len(dataset)):
        arrays, name = dataset.load(i), _scene(dataset.sample_name(i))
        with_physics, estimate = add_physics(arrays, physics)
        atomic_write_bytes(study / "physics" / f"{name}_image.npy", npy_bytes(estimate[:, :, 0].astype(np.float32)))
        atomic_write_bytes(study / "physics" / f"{name}_defocus.npy", npy_bytes(with_physics["defocus"][:, :, 0]))
        rows[name] = {"input": _metrics(arrays["input"], arrays["target"]),
                      "dual_pixel": {**_metrics(estimate, arrays["target"]), "seconds": physics.seconds[-1]}}
        print(f"reference {name}: input {rows[name]['input']['psnr']:.2f} dB, dual_pixel "
              f"{rows[name]['dual_pixel']['psnr']:.2f} dB", file=sys.stderr, flush=True)
    result = {"psf": physics.label(), "scenes": rows}
    atomic_write_bytes(path, json.dumps(result, indent=1).encode())
    return result


def _scene(sample_name: str) -> str:
    return sample_name[:3]


def _load_cached(dataset, index: int, study: Path) -> Dict[str, np.ndarray]:
    """Scene ``index`` as the reader gives it, cached in ``STUDY/scenes/`` (the reader's 16-bit PNG
    decoding and vignetting correction take seconds a scene; every run reads the same arrays)."""
    from learned.data.io import atomic_write_bytes
    from optics.image_io import npy_bytes

    folder = study / "scenes"
    name = _scene(dataset.sample_name(index))
    keys = ("left", "right", "target")
    paths = {k: folder / f"{name}_{k}.npy" for k in keys}
    if all(p.is_file() for p in paths.values()):
        arrays = {k: np.load(p) for k, p in paths.items()}
    else:
        arrays = {k: np.asarray(v) for k, v in dataset.load(index).items() if k in keys}
        folder.mkdir(parents=True, exist_ok=True)
        for k in keys:
            atomic_write_bytes(paths[k], npy_bytes(arrays[k]))
    arrays["input"] = 0.5 * (arrays["left"] + arrays["right"])
    return arrays


def _synthetic_physics_psnr(count: int, spec: Optional[str] = None) -> float:
    """Mean PSNR of the physics estimate over the first ``count`` held-out synthetic scenes of
    ``spec`` (default the pixel4 preset's dp_refine data) that ``learned.train`` scores dp_refine on
    (the test split does not depend on the seed)."""
    from learned.data import build_dataset
    from learned.training.recipes import PIXEL4_REFINE_DATA

    dataset = build_dataset(spec or PIXEL4_REFINE_DATA, "test")
    values = []
    for i in range(count):
        a = dataset.load(i)
        mse = float(np.mean((np.clip(a["physics"], 0, 1).astype(np.float64) - a["target"]) ** 2))
        values.append(10 * np.log10(1 / mse))
    return float(np.mean(values))


def score_run(run_dir: Path, model_name: str, data: Path, study: Path, train_data: Optional[str] = None) -> dict:
    """Score ``run_dir/model.pt`` on every real scene, raw and registered; writes ``real.json``."""
    from learned.data.io import atomic_write_bytes
    from learned.deblur import load_any_checkpoint
    from learned.evaluate import run_model
    from learned.models import PHYSICS_INPUT

    model = load_any_checkpoint(model_name, run_dir / "model.pt").eval()
    dataset = _dataset(data)
    scenes = {}
    start = time.perf_counter()
    for i in range(len(dataset)):
        arrays, name = _load_cached(dataset, i, study), _scene(dataset.sample_name(i))
        if model_name in PHYSICS_INPUT:
            image = np.load(study / "physics" / f"{name}_image.npy")
            arrays["physics"] = np.repeat(image[:, :, None], arrays["left"].shape[2], axis=2)
            arrays["defocus"] = np.load(study / "physics" / f"{name}_defocus.npy")[:, :, None]
        out = run_model(model, model_name, arrays)
        scenes[name] = _metrics(out, arrays["target"])
    result = {"model": model_name, "seconds": time.perf_counter() - start, "scenes": scenes}
    eval_path = run_dir / "eval.json"
    if eval_path.is_file():
        train = json.loads(eval_path.read_text())
        result["synthetic"] = {k: train[k] for k in ("input_psnr", "output_psnr", "gain_db", "seconds", "physics_psnr")
                               if k in train}
        if model_name in PHYSICS_INPUT and "physics_psnr" not in train:  # runs trained before eval.json had it
            result["synthetic"]["physics_psnr"] = _synthetic_physics_psnr(train["images"], train_data)
    atomic_write_bytes(run_dir / "real.json", json.dumps(result, indent=1).encode())
    return result


#: Distance (px) from a depth edge beyond which the diagnosis scores "far from edges".
EDGE_DISTANCE = 24


def synthetic_physics_diagnosis(count: int = 8, size: int = 336) -> List[dict]:
    """The physics on the held-out synthetic scenes, with its estimated map and with the true one.

    Scene ``i`` is the ``i``-th test scene of :data:`learned.training.recipes.PIXEL4_REFINE_DATA`
    (rendered again here by :func:`optics.render.pixel4_raw.synthesize_pixel4_raw` from the same generator,
    which gives its true signed CoC). Per scene: PSNR of the input, of the physics estimate with
    its own defocus map, and with the true map (``coc / calibration_coc``, no scale bias): where
    the second is far above the first, the map is what fails. The last two columns score input and
    physics (own map) only on the pixels at least ``EDGE_DISTANCE`` px from a depth edge (a jump of
    the CoC map) and 48 px from the border, where the layered model is inverted (the
    two-layer test of ``tests/optics/dual_pixel/test_deblur.py``: recovery holds from 24 px off an edge).
    """
    from scipy import ndimage

    from learned.data import build_dataset
    from learned.training.recipes import PIXEL4_REFINE_DATA
    from optics.dual_pixel.deblur import DualPixelPSFGrid, dual_pixel_deblur
    from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field
    from optics.render.pixel4_raw import synthesize_pixel4_raw

    def psnr(a, b, mask=None):
        err = (np.clip(a, 0, 1).astype(np.float64) - b) ** 2
        return float(10 * np.log10(1 / (np.mean(err) if mask is None else np.mean(err[mask]))))

    dataset = build_dataset(PIXEL4_REFINE_DATA.replace("physics=on", "physics=off"), "test")
    field = pixel4_dual_pixel_field()
    rows = []
    for i in range(count):
        scene = synthesize_pixel4_raw(dataset.scene_rng(i), (size, size))
        grid = DualPixelPSFGrid.from_field(field, 168, shape=(size, size), origin=scene.field_origin)
        est = dual_pixel_deblur(scene.left, scene.right, grid, workers=1)
        true_map = (scene.coc / field.calibration_coc).astype(np.float32)
        oracle = dual_pixel_deblur(scene.left, scene.right, grid, defocus=true_map, scale_bias=0.0, workers=1)
        jumps = (np.abs(np.diff(scene.coc, axis=0, prepend=scene.coc[:1])) > 0.5) | (
            np.abs(np.diff(scene.coc, axis=1, prepend=scene.coc[:, :1])) > 0.5)
        far = ndimage.distance_transform_edt(~jumps) >= EDGE_DISTANCE
        far[:48], far[-48:], far[:, :48], far[:, -48:] = False, False, False, False
        centre = 0.5 * (scene.left + scene.right)
        rows.append({"scene": i, "scales": scene.scales, "input": psnr(centre, scene.sharp),
                     "physics": psnr(est.image, scene.sharp), "physics_true_map": psnr(oracle.image, scene.sharp),
                     "map_error": float(np.median(np.abs(est.defocus - true_map))),
                     "far_fraction": float(far.mean()),
                     "input_far": psnr(centre, scene.sharp, far) if far.any() else float("nan"),
                     "physics_far": psnr(est.image, scene.sharp, far) if far.any() else float("nan")})
    return rows


def format_diagnosis(rows: List[dict]) -> str:
    lines = ["| synthetic test scene | scales (near, far) | input | physics | physics, true map | median map error "
             f"| share >= {EDGE_DISTANCE} px from depth edges and border | input there | physics there |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['scales'][0]:+.2f}, {r['scales'][1]:+.2f} | {r['input']:.2f} | "
                     f"{r['physics']:.2f} | {r['physics_true_map']:.2f} | {r['map_error']:.2f} | "
                     f"{100 * r['far_fraction']:.0f} % | {r['input_far']:.2f} | {r['physics_far']:.2f} |")
    keys = ("input", "physics", "physics_true_map", "map_error", "far_fraction", "input_far", "physics_far")
    m = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    lines.append(f"| mean | | {m['input']:.2f} | {m['physics']:.2f} | {m['physics_true_map']:.2f} | "
                 f"{m['map_error']:.2f} | {100 * m['far_fraction']:.0f} % | {m['input_far']:.2f} | {m['physics_far']:.2f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------------
def run_name(config: StudyConfig, seed: int) -> str:
    return f"{config.name}-s{seed}"


def _train_and_score(config: StudyConfig, seed: int, data: Path, study: Path) -> str:
    run_dir = study / "runs" / run_name(config, seed)
    if (run_dir / "real.json").is_file():
        return f"{run_dir.name}: done before"
    log = study / "runs" / f"{run_dir.name}.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if config.needs is not None:
        first = study / "runs" / f"{config.needs}-s{seed}" / "model.pt"
        if not first.is_file():
            return f"{run_dir.name}: needs {first} (run --only {config.needs} first)"
    if not (run_dir / "model.pt").is_file():
        cmd = [sys.executable, "-m", "learned.train", "--model", config.model, "--preset", "pixel4", "--seed",
               str(seed), "--out", str(run_dir), "--threads", "1", "--no-progress"]
        if config.data is not None:
            cmd += ["--data", config.data]
        cmd += [a.format(data=data, study=study, seed=seed) for a in config.args]
        if (run_dir / "checkpoint.pt").is_file():
            cmd = [sys.executable, "-m", "learned.train", "--out", str(run_dir), "--resume", "--no-progress"]
        with open(log, "a") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        if code != 0:
            return f"{run_dir.name}: training failed (exit {code}); see {log}"
    cmd = [sys.executable, "-m", "benchmarks.pixel4_training", "--score-run", str(run_dir), "--model", config.model,
           "--data", str(data), "--out", str(study)] + (["--train-data", config.data] if config.data else [])
    with open(log, "a") as fh:
        code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    return f"{run_dir.name}: {'scored' if code == 0 else f'scoring failed (exit {code}); see {log}'}"


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def _mean(rows: Dict[str, dict], key: str, scenes: Sequence[str]) -> float:
    return float(np.mean([rows[s][key] for s in scenes]))


def _subsets(scenes: Sequence[str]) -> Dict[str, List[str]]:
    return {"all": list(scenes), "tuning": [s for s in scenes if s in TUNING],
            "held-out": [s for s in scenes if s not in TUNING]}


def collect(study: Path) -> dict:
    """Reference rows and every scored run of ``study``."""
    ref = json.loads((study / "reference.json").read_text())
    runs = {}
    for path in sorted((study / "runs").glob("*/real.json")):
        runs[path.parent.name] = json.loads(path.read_text())
    return {"reference": ref, "runs": runs}


def _paired(runs: Dict[str, dict], base: str, other: str, inp: Dict[str, dict], sub: Dict[str, List[str]]):
    """Mean (and spread) over the seeds both configurations have of base minus other, per subset."""
    seeds = sorted({n.rsplit("-s", 1)[1] for n in runs if n.rsplit("-s", 1)[0] == base}
                   & {n.rsplit("-s", 1)[1] for n in runs if n.rsplit("-s", 1)[0] == other}, key=int)
    if not seeds:
        return None
    out = {"seeds": "seeds " + ", ".join(seeds)}
    for k, scenes in sub.items():
        d = [float(np.mean([runs[f"{base}-s{sd}"]["scenes"][s]["psnr"] - runs[f"{other}-s{sd}"]["scenes"][s]["psnr"]
                            for s in scenes])) for sd in seeds]
        out[k] = f"{np.mean(d):+.2f}" + (f" ± {statistics.stdev(d):.2f}" if len(d) > 1 else "")
    return out


def format_report(study: Path) -> str:
    data = collect(study)
    ref = data["reference"]["scenes"]
    scenes = sorted(ref)
    sub = _subsets(scenes)
    inp = {s: ref[s]["input"] for s in scenes}
    dp = {s: ref[s]["dual_pixel"] for s in scenes}
    lines = [f"# Learned models on Xin et al.'s {len(scenes)} real Pixel 4 scenes (study {study})", "",
             f"dual_pixel: {data['reference']['psf']}. Raw: PSNR of the whole 1008 x 1344 frame; registered: one "
             "global sub-pixel shift, 8 px border (learned.protocols 'registered'). Gains are over the corrected "
             "input (L + R) / 2.", "",
             "## Means per run", "",
             "| run | PSNR all | gain all | gain 001-008 | gain 009-017 | least gain (scene) | registered gain | "
             "SSIM | synthetic gain |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, rows: Dict[str, dict], synthetic: str = "") -> str:
        gains = {s: rows[s]["psnr"] - inp[s]["psnr"] for s in scenes}
        worst = min(gains, key=gains.get)
        g = {k: float(np.mean([gains[s] for s in v])) for k, v in sub.items()}
        reg = _mean(rows, "psnr_reg", scenes) - _mean(inp, "psnr_reg", scenes)
        return (f"| {name} | {_mean(rows, 'psnr', scenes):.2f} | {g['all']:+.2f} | {g['tuning']:+.2f} | "
                f"{g['held-out']:+.2f} | {gains[worst]:+.2f} ({worst}) | {reg:+.2f} | {_mean(rows, 'ssim', scenes):.4f} "
                f"| {synthetic} |")

    lines.append(row("input", inp))
    lines.append(row("dual_pixel (physics)", dp))
    for name, run in data["runs"].items():
        syn = run.get("synthetic", {})
        text = f"{syn['gain_db']:+.2f}" if "gain_db" in syn else ""
        if "physics_psnr" in syn:
            text += f" (physics {syn['physics_psnr'] - syn['input_psnr']:+.2f})"
        lines.append(row(name, run["scenes"], text))
    # per configuration over seeds
    groups: Dict[str, List[str]] = {}
    for name in data["runs"]:
        groups.setdefault(name.rsplit("-s", 1)[0], []).append(name)
    lines += ["", "## Per configuration: mean over seeds (spread = sample standard deviation of the seeds' means)", "",
              "| configuration | seeds | gain all | gain 001-008 | gain 009-017 | registered gain | every seed > input |",
              "|---|---|---|---|---|---|---|"]
    summary = {}
    for config, names in groups.items():
        per_seed = {k: [float(np.mean([data["runs"][n]["scenes"][s]["psnr"] - inp[s]["psnr"] for s in v]))
                        for n in names] for k, v in sub.items()}
        reg = [_mean(data["runs"][n]["scenes"], "psnr_reg", scenes) - _mean(inp, "psnr_reg", scenes) for n in names]

        def ms(values):
            return f"{np.mean(values):+.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")

        summary[config] = {k: float(np.mean(v)) for k, v in per_seed.items()}
        summary[config]["every_seed"] = all(v > 0 for v in per_seed["all"])
        summary[config]["seeds"] = len(names)
        lines.append(f"| {config} | {len(names)} | {ms(per_seed['all'])} | {ms(per_seed['tuning'])} | "
                     f"{ms(per_seed['held-out'])} | {ms(reg)} | {'yes' if summary[config]['every_seed'] else 'no'} |")
    # per scene
    names = list(data["runs"])
    lines += ["", "## Per scene: raw PSNR (dB)", "",
              "| scene | input | dual_pixel | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for s in scenes:
        lines.append(f"| {s} | {inp[s]['psnr']:.2f} | {dp[s]['psnr']:.2f} | "
                     + " | ".join(f"{data['runs'][n]['scenes'][s]['psnr']:.2f}" for n in names) + " |")
    # targets
    dp_gain = float(np.mean([dp[s]["psnr"] - inp[s]["psnr"] for s in scenes]))
    if summary:
        best = max(summary, key=lambda c: summary[c]["tuning"])
        b = summary[best]
        seeds = groups[best]
        tuning_gain = {n: float(np.mean([data["runs"][n]["scenes"][s]["psnr"] - inp[s]["psnr"] for s in sub["tuning"]]))
                       for n in seeds}
        best_run = max(tuning_gain, key=tuning_gain.get)
        lines += ["", "## Targets", "",
                  f"Best configuration chosen on the tuning scenes 001-008 only: **{best}** "
                  f"({b['seeds']} seeds; tuning gain {b['tuning']:+.2f} dB); its best run there, the one to "
                  f"bundle: **{best_run}** (tuning gain {tuning_gain[best_run]:+.2f} dB).", "",
                  f"- beats the corrected input on every seed (mean over 17 scenes): "
                  f"**{'met' if b['every_seed'] else 'missed'}** (mean gain {b['all']:+.2f} dB, held out "
                  f"{b['held-out']:+.2f} dB)",
                  f"- moonshot >= dual_pixel + 0.5 dB = {dp_gain + 0.5:+.2f} dB: "
                  f"**{'met' if b['all'] >= dp_gain + 0.5 else 'missed'}** ({b['all']:+.2f} dB)"]
        for abl, what in (("butterworth", "calibration ablation (kpac_dual, calibrated field minus Butterworth)"),
                          ("noise_off", "noise ablation (kpac_dual, with noise minus without)"),
                          ("vignetting_off", "vignetting ablation (kpac_dual, with vignetting minus without)")):
            paired = _paired(data["runs"], "kpac_dual", f"kpac_dual-{abl}", inp, sub)
            if paired:
                lines.append(f"- {what}, paired by seed ({paired['seeds']}): {paired['all']} dB "
                             f"(tuning {paired['tuning']}, held out {paired['held-out']})")
        lines += _issue26_targets(data, summary, groups, inp, dp, sub)
    return "\n".join(lines) + "\n"


def _issue26_targets(data: dict, summary: dict, groups: Dict[str, List[str]], inp: Dict[str, dict],
                     dp: Dict[str, dict], sub: Dict[str, List[str]]) -> List[str]:
    """Issue 26's targets for the fine-tuned configurations (``*-ft_*``), the choice made on 001-008,
    and the reblur loss's effect paired by seed (``*-ft_real`` minus ``*-ft_synthetic``)."""
    tuned = {c: v for c, v in summary.items() if "-ft_" in c}
    if not tuned:
        return []
    scenes = sub["all"]
    phys = {k: float(np.mean([dp[s]["psnr"] - inp[s]["psnr"] for s in v])) for k, v in sub.items()}
    phys_reg = _mean(dp, "psnr_reg", scenes) - _mean(inp, "psnr_reg", scenes)
    best = max(tuned, key=lambda c: tuned[c]["tuning"])
    b = tuned[best]
    runs = [data["runs"][n]["scenes"] for n in groups[best]]
    reg = float(np.mean([_mean(r, "psnr_reg", scenes) for r in runs])) - _mean(inp, "psnr_reg", scenes)
    below = sorted({s for r in runs for s in scenes if r[s]["psnr"] < inp[s]["psnr"]})
    met = lambda ok: "met" if ok else "missed"  # noqa: E731
    out = ["", "## Issue 26: fine-tuning on the real views (targets)", "",
           f"Best fine-tuned configuration on 001-008 only: **{best}** ({b['seeds']} seeds; tuning gain "
           f"{b['tuning']:+.2f} dB against the physics' {phys['tuning']:+.2f}).", "",
           f"- >= physics + 0.3 dB on all 17 scenes ({phys['all'] + 0.3:+.2f}): **{met(b['all'] >= phys['all'] + 0.3)}** "
           f"({b['all']:+.2f}; physics {phys['all']:+.2f})",
           f"- >= physics + 0.3 dB on 009-017 ({phys['held-out'] + 0.3:+.2f}): "
           f"**{met(b['held-out'] >= phys['held-out'] + 0.3)}** ({b['held-out']:+.2f}; physics {phys['held-out']:+.2f})",
           f"- registered above the physics ({phys_reg:+.2f}): **{met(reg > phys_reg)}** ({reg:+.2f})",
           f"- no scene below its input, every seed: **{met(not below)}**"
           + (f" (below: {', '.join(below)})" if below else ""),
           f"- moonshot physics + 0.5 dB ({phys['all'] + 0.5:+.2f}): **{met(b['all'] >= phys['all'] + 0.5)}**"]
    for model in sorted({c.split("-ft_")[0] for c in tuned}):
        paired = _paired(data["runs"], f"{model}-ft_real", f"{model}-ft_synthetic", inp, sub)
        if paired:
            out.append(f"- the reblur loss's effect on {model} (ft_real minus ft_synthetic), paired by seed "
                       f"({paired['seeds']}): {paired['all']} dB (tuning {paired['tuning']}, held out "
                       f"{paired['held-out']})")
    return out


def run_scores(study: Path, run: str) -> dict:
    """The real-data scores of one run, as the bundled weights' manifest records them."""
    data = collect(study)
    if run not in data["runs"]:
        raise ValueError(f"--run-scores: no scored run {run!r} in {str(study)!r}; scored: {sorted(data['runs'])}")
    ref, rows = data["reference"]["scenes"], data["runs"][run]["scenes"]
    scenes = sorted(ref)
    sub = _subsets(scenes)

    def gain(table: Dict[str, dict], key: str, which: str) -> float:
        return round(float(np.mean([table[s][key] - ref[s]["input"][key] for s in sub[which]])), 2)

    physics = {s: ref[s]["dual_pixel"] for s in scenes}
    return {"data": f"Xin et al.'s {len(scenes)} Pixel 4 scenes (DP_data_pixel_4); corrected input "
                    f"{_mean({s: ref[s]['input'] for s in scenes}, 'psnr', scenes):.2f} dB",
            "psnr_db": round(_mean(rows, "psnr", scenes), 2),
            "gain_db_all": gain(rows, "psnr", "all"), "gain_db_tuning_001_008": gain(rows, "psnr", "tuning"),
            "gain_db_held_out_009_017": gain(rows, "psnr", "held-out"),
            "gain_db_registered": gain(rows, "psnr_reg", "all"),
            "least_scene_gain_db": round(float(min(rows[s]["psnr"] - ref[s]["input"]["psnr"] for s in scenes)), 2),
            "physics_dual_pixel_gain_db": gain(physics, "psnr", "all"),
            "command": f"python -m benchmarks.pixel4_training --data DIR --out STUDY --run-scores {run}"}


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.pixel4_training", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="DP_data_pixel_4 folder of Xin et al.'s repository")
    parser.add_argument("--out", type=Path, required=True, help="the study's folder (created; runs there are kept)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="configurations to run (default all): "
                        + ", ".join(c.name for c in configs()))
    parser.add_argument("--report-only", action="store_true", help="print the report of --out; run nothing")
    parser.add_argument("--run-scores", metavar="RUN", help="print one scored run's real-data scores as JSON (what "
                        "learned.pretrained's manifest records); run nothing")
    parser.add_argument("--diagnose-synthetic", type=int, metavar="N",
                        help="print the physics on N held-out synthetic scenes, with its map and the true map; "
                             "run nothing else (no --data needed)")
    parser.add_argument("--score-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--train-data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.diagnose_synthetic is not None:
        if args.diagnose_synthetic < 1:
            parser.error(f"--diagnose-synthetic must be >= 1; got {args.diagnose_synthetic}")
        print(format_diagnosis(synthetic_physics_diagnosis(args.diagnose_synthetic)))
        return 0
    if args.report_only or args.run_scores:
        if not (args.out / "reference.json").is_file():
            parser.error(f"--out {str(args.out)!r} has no reference.json; run the study first")
        if args.run_scores:
            try:
                print(json.dumps(run_scores(args.out, args.run_scores), indent=1))
            except ValueError as err:
                parser.error(str(err))
            return 0
        print(format_report(args.out))
        return 0
    if args.data is None:
        parser.error("--data is required (the DP_data_pixel_4 folder)")
    if not (args.data / "calibration").is_dir():
        parser.error(f"--data {str(args.data)!r} is not Xin et al.'s DP_data_pixel_4 folder (no calibration/ in it)")
    if args.score_run is not None:
        score_run(args.score_run, args.model, args.data, args.out, args.train_data)
        return 0
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1; got {args.jobs}")
    known = {c.name: c for c in configs()}
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        parser.error(f"--only: unknown configuration(s) {unknown}; choose from {sorted(known)}")
    chosen = [known[n] for n in args.only] if args.only else configs()
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    references(args.data, args.out, workers=args.jobs)
    jobs = [(c, s) for s in args.seeds for c in chosen]
    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(lambda job: _train_and_score(job[0], job[1], args.data, args.out), jobs):
            print(message, file=sys.stderr, flush=True)
    report = format_report(args.out)
    from learned.data.io import atomic_write_bytes

    atomic_write_bytes(args.out / "report.md", report.encode())
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main))
