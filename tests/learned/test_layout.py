"""learned/ in rooms of one concern: the commands at the top, and the public names where they were."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import learned

PACKAGE = Path(learned.__file__).parent

#: Former flat module path -> its room.
MOVED = {
    "kpac": "models.kpac", "ifan": "models.ifan", "iac": "models.iac", "nrknet": "models.nrknet",
    "k3dn": "models.k3dn", "warmstart": "models.warmstart",
    "io": "data.io", "protocols": "data.protocols",
    "recipes": "training.recipes", "losses": "training.losses", "checkpoints": "training.checkpoints",
    "tiling": "inference.tiling", "precision": "inference.precision", "_padding": "inference._padding",
    "_speed": "inference._speed",
}
COMMANDS = ("train", "deblur", "evaluate", "summary", "convert", "datasets")


def test_rooms_and_commands():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
    assert set(COMMANDS) <= set(top)
    for room in ("models", "data", "training", "inference"):
        assert (PACKAGE / room / "__init__.py").is_file()
    for new in MOVED.values():
        assert (PACKAGE / (new.replace(".", "/") + ".py")).is_file(), new
        assert not (PACKAGE / (new.rpartition(".")[2] + ".py")).exists(), new


@pytest.mark.parametrize("old", sorted(MOVED))
def test_former_paths_name_the_moved_modules(old):
    module = importlib.import_module(f"learned.{MOVED[old]}")
    assert importlib.import_module(f"learned.{old}") is module
    assert getattr(learned, old) is module


def test_public_names():
    from learned.data import build_dataset
    from learned.datasets import check_dataset, dpdd_records, image_shape, main

    assert learned.MODELS is learned.models.MODELS and learned.build_model is learned.models.build_model
    assert learned.save_checkpoint is learned.training.checkpoints.save_checkpoint
    assert learned.load_checkpoint is learned.training.checkpoints.load_checkpoint
    assert learned.load_official_checkpoint is learned.training.checkpoints.load_official_checkpoint
    assert dpdd_records is learned.data.readers.dpdd_records and image_shape is learned.data.readers.image_shape
    assert build_dataset is learned.data.build.build_dataset and callable(check_dataset) and callable(main)
    assert type(learned.build_model("kpac_2level")).__name__ == "KPAC"



def test_train_is_the_loop_and_the_command_line():
    """Issue 27: learned/train.py holds the loop and the CLI; the pieces it runs live in learned/training/."""
    import ast

    for module in ("recipes", "step", "losses", "sampling", "optim", "distributed", "run_log", "checkpoints",
                   "held_out"):
        assert (PACKAGE / "training" / f"{module}.py").is_file(), module
    assert not (PACKAGE / "training" / "logging.py").exists()  # it would shadow the standard library's
    tree = ast.parse((PACKAGE / "train.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert defined == {"TrainingInterrupted", "TrainResult", "train", "_train", "_parser", "_parse_model_args",
                       "main", "_owned_by_train", "_make_cli_config", "_remove_unused_out"}, defined
