"""Bundled weights: ``python -m learned.pretrained [--json]`` lists them; ``--pretrained NAME`` loads them.

The weights live inside the package (``learned/weights/``), described by ``manifest.json``: one
entry per file with its ``name`` (what ``--pretrained`` takes), the ``model`` it is for, the
file's SHA-256 (checked at every load: a changed file is refused), what it was trained on, the
one command that regenerates it and its measured scores on real captures (with the command that
measured them). Nothing is downloaded: everything is offline.

Usage
-----
::

    python -m learned.pretrained            # a table
    python -m learned.pretrained --json     # a list of objects (name, model, file, sha256, ...)
    python -m learned.evaluate --model dp_refine --pretrained pixel4 --data pixeldp:DIR --baseline dual_pixel
    python -m learned.deblur LEFT.png OUT.png --right RIGHT.png --model dp_refine --pretrained pixel4

Bundling (maintainers): ``python -m learned.pretrained --bundle RUN/model.pt --name NAME
--trained-on TEXT --command TEXT --scores FILE.json`` copies a checkpoint in and adds its entry;
an existing name is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from torch import nn

__all__ = ["WEIGHTS_DIR", "available", "find", "needs", "checkpoint_path", "load_pretrained", "bundle", "main"]

#: Folder of the bundled weights and their ``manifest.json``.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_REQUIRED = ("name", "model", "file", "sha256", "trained_on", "command")


def _manifest_path(root: Path) -> Path:
    return root / "manifest.json"


def available(root: Path = WEIGHTS_DIR) -> List[dict]:
    """Entries of the manifest (a list of dicts with at least ``name``, ``model``, ``file``, ``sha256``)."""
    path = _manifest_path(root)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"manifest {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"manifest {str(path)!r} must hold a list of objects")
    for e in entries:
        missing = [k for k in _REQUIRED if k not in e]
        if missing:
            raise ValueError(f"manifest {str(path)!r}: entry {e.get('name')!r} lacks {missing}")
    return entries


def find(model: str, name: str, root: Path = WEIGHTS_DIR) -> dict:
    """The manifest entry of weights ``name`` for ``model``; a one-line error lists what exists."""
    entries = available(root)
    for e in entries:
        if e["name"] == name and e["model"] == model:
            return e
    have = [f"{e['model']}:{e['name']}" for e in entries] or ["none"]
    raise ValueError(f"--pretrained {name!r}: no bundled weights for model {model!r}; bundled: {', '.join(have)} "
                     "(python -m learned.pretrained lists them)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_path(model: str, name: str, root: Path = WEIGHTS_DIR) -> Path:
    """Path of the bundled checkpoint, after checking its SHA-256 against the manifest."""
    entry = find(model, name, root)
    path = root / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"bundled weights {str(path)!r} are missing (the manifest lists them)")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"bundled weights {str(path)!r} have SHA-256 {digest}, the manifest says {entry['sha256']}; "
                         "the file was changed: reinstall the package")
    return path


def load_pretrained(model: str, name: str, root: Path = WEIGHTS_DIR) -> nn.Module:
    """The network ``model`` with the bundled weights ``name`` (eval mode; ``torch.load(weights_only=True)``)."""
    from .training.checkpoints import load_checkpoint

    return load_checkpoint(checkpoint_path(model, name, root), model)


def needs(entry: dict) -> str:
    """What input the weights of ``entry`` take: its manifest's ``input``, else what its model needs."""
    if entry.get("input"):
        return str(entry["input"])
    from .models import DUAL_PIXEL, PHYSICS_INPUT

    if entry["model"] in PHYSICS_INPUT:
        return "Pixel 4 DP views, 1008x1344 raw green (left + --right)"
    if entry["model"] in DUAL_PIXEL:
        return "DP views, RGB (left + --right)"
    return "one RGB photo"


def _headline(scores: dict) -> str:
    """The scores' short form for the table: PSNR and gain over the input on real data."""
    parts = []
    if "psnr_db" in scores:
        parts.append(f"{scores['psnr_db']} dB")
    if "gain_db_all" in scores:
        parts.append(f"{scores['gain_db_all']:+} dB over input")
    return ", ".join(parts) or "-"


def _table(entries: Sequence[dict], root: Path = WEIGHTS_DIR) -> str:
    """A short table (one row per weights, a column saying the input each needs), then each entry's
    details, wrapped."""
    import textwrap

    if not entries:
        return "no bundled weights"
    lines = ["| name | model | input it needs | real-data PSNR | MB |", "|---|---|---|---|---|"]
    for e in entries:
        size = (root / e["file"]).stat().st_size / 1e6 if (root / e["file"]).is_file() else float("nan")
        lines.append(f"| {e['name']} | {e['model']} | {needs(e)} | {_headline(e.get('scores', {}))} | {size:.2f} |")
    wrap = lambda label, text: textwrap.wrap(text, 100, initial_indent=f"  {label}: ",  # noqa: E731
                                             subsequent_indent="    ")
    for e in entries:
        scores = e.get("scores", {})
        lines += ["", f"{e['model']}:{e['name']} ({e['file']})", f"  sha256: {e['sha256']}"]
        lines += wrap("input", needs(e) + (" (views of the capture's central crop, as the pixeldp reader gives "
                                           "them)" if "1008x1344" in needs(e) else ""))
        lines += wrap("trained on", e["trained_on"])
        lines += wrap("scores", "; ".join(f"{k} {v}" for k, v in scores.items() if k != "command") or "-")
        if "command" in scores:  # commands on one line each, to copy
            lines.append(f"  scores measured by: {scores['command']}")
        lines.append(f"  regenerate with: {e['command']}")
        if e.get("note"):
            lines += wrap("note", e["note"])
    return "\n".join(lines)


def bundle(checkpoint: str | Path, name: str, trained_on: str, command: str, scores: Optional[dict] = None, *,
           note: str = "", overwrite: bool = False, root: Path = WEIGHTS_DIR) -> dict:
    """Copy a toolkit checkpoint into ``root`` as weights ``name`` and add its manifest entry.

    The file must be a loadable toolkit checkpoint (``torch.load(weights_only=True)``) of at most
    10 MiB; an entry of the same name and model is refused unless ``overwrite``. Returns the entry.
    """
    import torch

    from .data.io import atomic_write_bytes
    from .training.checkpoints import load_checkpoint

    src = Path(checkpoint)
    if not src.is_file():
        raise FileNotFoundError(f"checkpoint {str(src)!r} does not exist")
    load_checkpoint(src)  # a valid toolkit checkpoint (raises a one-line error otherwise)
    model_name = torch.load(src, map_location="cpu", weights_only=True)["model"]
    data = src.read_bytes()
    if len(data) > 10 * 2**20:
        raise ValueError(f"checkpoint {str(src)!r} is {len(data) / 2**20:.1f} MiB; bundled weights must be <= 10 MiB")
    entries = available(root)
    clash = [e for e in entries if e["name"] == name and e["model"] == model_name]
    if clash and not overwrite:
        raise FileExistsError(f"weights {name!r} for {model_name!r} are bundled already; pass overwrite=True "
                              "(--overwrite) to replace them")
    file = f"{name}-{model_name}.pt"
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / file, data)
    entry = {"name": name, "model": model_name, "file": file, "sha256": hashlib.sha256(data).hexdigest(),
             "trained_on": trained_on, "command": command, "scores": dict(scores or {})}
    if note:
        entry["note"] = note
    entries = [e for e in entries if e not in clash] + [entry]
    atomic_write_bytes(_manifest_path(root), (json.dumps(entries, indent=1) + "\n").encode())
    return entry


def main(argv: Optional[Sequence[str]] = None) -> int:
    from optics import cli

    parser = cli.ArgumentParser(prog="python -m learned.pretrained", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the entries as a JSON list of objects")
    parser.add_argument("--bundle", help="(maintainers) a checkpoint to copy into the package")
    parser.add_argument("--name", help="with --bundle: the name --pretrained will take")
    parser.add_argument("--trained-on", help="with --bundle: what it was trained on")
    parser.add_argument("--command", help="with --bundle: the command that regenerates it")
    parser.add_argument("--scores", help="with --bundle: a JSON file of measured scores")
    parser.add_argument("--note", default="", help="with --bundle: what a user should know (shown in the listing)")
    parser.add_argument("--overwrite", action="store_true", help="with --bundle: replace an entry of that name")
    args = parser.parse_args(argv)
    if args.bundle is not None:
        missing = [f"--{k.replace('_', '-')}" for k in ("name", "trained_on", "command") if getattr(args, k) is None]
        if missing:
            parser.error(f"--bundle needs {', '.join(missing)}")
        scores = json.loads(Path(args.scores).read_text()) if args.scores else {}
        try:
            entry = bundle(args.bundle, args.name, args.trained_on, args.command, scores, note=args.note,
                           overwrite=args.overwrite)
        except (ValueError, FileNotFoundError, FileExistsError) as err:
            parser.error(str(err))
        print(f"results: bundled {WEIGHTS_DIR / entry['file']} as {entry['model']}:{entry['name']}", file=sys.stderr)
        return 0
    entries = available()
    print(json.dumps(entries, indent=1) if args.json else _table(entries))
    print(f"results: {len(entries)} bundled weights listed above, from {_manifest_path(WEIGHTS_DIR)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from optics import cli as _cli

    raise SystemExit(_cli.run(main))
