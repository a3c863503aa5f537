"""Tests of learned.training.recipes (recipes, presets, typed configs) and the start-of-training log line.

The log line must show the settings a run really uses, after the preset and the flags are applied
(it once printed the paper recipe's source text whatever a preset or flag changed).
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset

import learned.training.recipes as lr_mod
import learned.train as lt
from learned.training.recipes import RECIPES, describe_recipe, make_config


def test_train_re_exports_every_recipe_name():
    for name in lr_mod.__all__:
        assert getattr(lt, name) is getattr(lr_mod, name), name


def test_describe_recipe_shows_the_resolved_settings():
    paper = describe_recipe(make_config("ifan").recipe)
    # IFAN: 600k steps, x0.5 at 500k and 550k (fractions 5/6 and 11/12 of the run)
    assert paper == ("radam lr 0.0001 betas (0.9, 0.999) wd 0.01 (decoupled) clip 0.5, batch 8 (global 8), crop 256, "
                     "600000 steps, multistep x0.5 at steps [500000, 550000]")
    smoke = make_config("kpac", preset="cpu-smoke", lr=5e-4, batch_size=2, crop=48, steps=100)
    text = describe_recipe(smoke.recipe, world_size=3)
    assert text == "adam lr 0.0005 betas (0.9, 0.999), batch 2 (global 6), crop 48, 100 steps, cosine decay to 0 x lr"
    assert "constant lr" in describe_recipe(RECIPES["kpac"])
    nrk = describe_recipe(make_config("nrknet", preset="cpu-smoke").recipe)
    assert nrk.endswith("cosine decay to 0 x lr, identity-preserving start")
    assert "adamw lr 0.0003 betas (0.9, 0.999) wd 0.01 (decoupled)" in describe_recipe(RECIPES["k3dn"])


class _Pairs(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        t = torch.rand(3, 32, 32, generator=g)
        return {"input": 0.5 * t + 0.25, "target": t}


def test_start_of_training_log_line_has_the_resolved_settings(tmp_path, caplog):
    torch.set_num_threads(1)
    cfg = make_config("kpac", preset="cpu-smoke", steps=1, crop=32, batch_size=1, lr=2e-3, eval_images=0,
                      out=str(tmp_path / "run"), model_overrides=dict(channels=8), progress=False, device="cpu")
    with caplog.at_level(logging.INFO, logger="learned.train"):
        lt.train(cfg, train_dataset=_Pairs())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training kpac")]
    assert len(lines) == 1, caplog.text
    assert lines[0].endswith("adam lr 0.002 betas (0.9, 0.999), batch 1 (global 1), crop 32, 1 steps, "
                             "cosine decay to 0 x lr"), lines[0]
    assert "cpu-smoke preset" in lines[0] and "AMP off" in lines[0]
