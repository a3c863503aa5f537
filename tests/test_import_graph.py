"""The project's import graph: no circle between modules, no import up the floors.

The floors, lowest first: ``kernels`` <- ``optics`` <- ``learned`` <- ``validation``, ``benchmarks``.
A module may import its own package and the floors below it, never one above (``validation`` and
``benchmarks`` share the top floor). Imports are read from the source with :mod:`ast`, every one
of them: those inside functions (lazy imports) count, as an import cycle is a cycle whether it
runs at import time or at the first call.

Edges follow import-linter's convention: ``from pkg.mod import name`` is an edge to ``pkg.mod``,
``from pkg import sub`` to the submodule ``pkg.sub`` when there is one and to ``pkg`` (its
``__init__``) otherwise; the parent packages a submodule import runs are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterable, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Floor of each top-level package (a higher number is a higher floor).
FLOORS = {"kernels": 0, "optics": 1, "learned": 2, "validation": 3, "benchmarks": 3}


def module_files(root: Path, packages: Iterable[str]) -> Dict[str, Path]:
    """Dotted module name -> file for every ``.py`` file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, source: str, is_package: bool, known: Set[str]) -> Set[str]:
    """The modules of ``known`` that module ``name`` imports anywhere in ``source``."""

    def owner(dotted: str) -> str | None:  # the longest known module that ``dotted`` lies in
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(owner(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else owner(base))
    found.discard(None)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, packages: Iterable[str] = tuple(FLOORS)) -> Dict[str, Set[str]]:
    files = module_files(root, packages)
    known = set(files)
    return {
        name: imported_modules(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
        for name, path in files.items()
    }


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)


def upward_imports(graph: Dict[str, Set[str]], floors: Dict[str, int] = FLOORS) -> List[str]:
    """``'a.b -> c.d'`` for every import of a module on a higher floor."""
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if floors[target.split(".")[0]] > floors[name.split(".")[0]]
    )


# ------------------------------------------------------------------------------------------------
# The project
# ------------------------------------------------------------------------------------------------
def test_graph_covers_the_project():
    graph = import_graph()
    for package in FLOORS:
        assert package in graph, f"{package}/__init__.py not found under {ROOT}"
    assert len(graph) > 60
    assert "optics.psf.shapes" in graph["optics.dual_pixel.models"]  # a relative import at module level


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "modules that import each other (directly or round a loop):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


#: The rooms of ``optics`` and their floors (issue 27): a room imports only rooms on lower floors, and
#: its own modules. The shared plumbing at the top of the package is the ground floor.
OPTICS_ROOMS = {"plumbing": 0, "operators": 1, "psf": 1, "dual_pixel": 2, "render": 3}


def optics_room(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "optics" or len(parts) < 2 or parts[1] not in OPTICS_ROOMS:
        return "plumbing"
    return parts[1]


def test_optics_rooms_import_downwards_only():
    graph = import_graph()
    wrong = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("optics.") and optics_room(name) != "plumbing"
        for target in targets
        if target.startswith("optics") and target != "optics"
        and optics_room(target) != optics_room(name)
        and OPTICS_ROOMS[optics_room(target)] >= OPTICS_ROOMS[optics_room(name)]
    )
    assert not wrong, "imports across optics' rooms that do not go down a floor:\n" + "\n".join(wrong)
    plumbing_up = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("optics.") and optics_room(name) == "plumbing"
        for target in targets
        if target.startswith("optics.") and optics_room(target) != "plumbing"
    )
    assert not plumbing_up, "optics' plumbing imports a room above it:\n" + "\n".join(plumbing_up)


def test_optics_top_is_small_and_has_no_dual_pixel_modules():
    top = sorted(p.name for p in (ROOT / "optics").glob("*.py"))
    assert len(top) <= 12, f"optics/ holds {len(top)} .py files at its top (at most 12): {top}"
    stray = [name for name in top if name.startswith("dp_")]
    assert not stray, f"dual-pixel modules belong in optics/dual_pixel/, found at the top: {stray}"


#: The modules of the training-free dual-pixel deblurring (issue 32), lowest first: each imports only
#: those before it; ``deblur`` (the command line and the façade of the others) comes last.
DUAL_PIXEL_DEBLUR_MODULES = ("defaults", "psf_grid", "defocus_map", "pipeline", "psf_source", "deblur")


def test_dual_pixel_deblur_is_the_command_line_only():
    """Issue 32: optics/dual_pixel/deblur.py was 1,216 lines of six concerns; it is now the command line
    (and re-exports the names of the modules its pieces moved to), which no module of optics imports."""
    folder = ROOT / "optics" / "dual_pixel"
    missing = [m for m in DUAL_PIXEL_DEBLUR_MODULES if not (folder / f"{m}.py").is_file()]
    assert not missing, f"modules of optics/dual_pixel/ missing: {missing}"
    source = (folder / "deblur.py").read_text(encoding="utf-8")
    lines = source.count("\n")
    assert lines <= 250, f"optics/dual_pixel/deblur.py holds {lines} lines (at most 250: the command line only)"
    defined = sorted(node.name for node in ast.parse(source).body
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
    assert defined == ["_join_negative_values", "_parse_scales", "main"], (
        f"optics/dual_pixel/deblur.py defines {defined}; only the command line belongs there")
    graph = import_graph()
    importers = sorted(n for n, targets in graph.items() if n.startswith("optics") and "optics.dual_pixel.deblur" in targets)
    assert not importers, f"modules of optics import the command line optics.dual_pixel.deblur: {importers}"
    order = [f"optics.dual_pixel.{m}" for m in DUAL_PIXEL_DEBLUR_MODULES]
    upward = sorted(f"{a} -> {b}" for i, a in enumerate(order) for b in order[i + 1:] if b in graph[a])
    assert not upward, "the dual-pixel deblurring's modules import a later one:\n" + "\n".join(upward)


#: The rooms of ``learned`` and their floors (issue 34): a room imports only rooms on lower floors, and its own
#: modules. A room is a sub-package or one of the top-level modules named here; every other top-level module
#: (the commands: ``train``, ``evaluate``, ``deblur``, ...) and the package itself are the top floor.
LEARNED_ROOMS = {"_safe_pickle": 0, "_cli": 0, "inference": 0, "metrics": 1, "models": 1, "data": 2, "baseline": 2,
                 "training": 3}
LEARNED_TOP = ("commands", 4)


def learned_room(module: str) -> tuple:
    """(room, floor) of a module of ``learned``."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LEARNED_ROOMS:
        return parts[1], LEARNED_ROOMS[parts[1]]
    return LEARNED_TOP


def learned_arrows_up(graph: Dict[str, Set[str]]) -> List[str]:
    """``'a -> b'`` for every import inside ``learned`` from one room to another not on a lower floor."""
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.split(".")[0] == "learned"
        for target in targets
        if target.split(".")[0] == "learned"
        and learned_room(target)[0] != learned_room(name)[0]
        and learned_room(target)[1] >= learned_room(name)[1]
    )


def test_learned_rooms_import_downwards_only():
    """Issue 34: ``learned.data.protocols`` -> ``learned.metrics`` -> ``learned.training.checkpoints`` ran
    back up (the safe unpickler now lives in ``learned._safe_pickle``, below both of its users)."""
    wrong = learned_arrows_up(import_graph())
    assert not wrong, "imports across learned's rooms that do not go down a floor:\n" + "\n".join(wrong)


def test_no_upward_imports():
    upward = upward_imports(import_graph())
    assert not upward, (
        "imports up the floors kernels <- optics <- learned <- validation, benchmarks:\n" + "\n".join(upward)
    )


# ------------------------------------------------------------------------------------------------
# The checker itself, on made-up modules
# ------------------------------------------------------------------------------------------------
def _write(root: Path, files: Dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_reader_sees_relative_absolute_and_lazy_imports(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "import os\nfrom . import b\n\ndef f():\n    from pkg.sub.c import g\n    return g\n",
        "pkg/b.py": "from .sub import c\nimport pkg.sub\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import b\nfrom ..a import f\nfrom pkg import nothing_here\n",
    })
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b", "pkg.sub.c"},
        "pkg.b": {"pkg.sub.c", "pkg.sub"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.b", "pkg.a", "pkg"},
    }
    assert find_cycles(graph) == [["pkg", "pkg.a", "pkg.b", "pkg.sub.c"]]


def test_cycle_finder():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a", "d"}}) == [
        ["a", "b", "c"],
        ["d", "e"],
    ]
    assert find_cycles({"a": {"outside"}}) == []


def test_cycle_check_fails_on_a_lazy_circle(tmp_path):
    _write(tmp_path, {
        "kernels/__init__.py": "",
        "kernels/x.py": "def f():\n    from kernels import y\n",
        "kernels/y.py": "from .x import f\n",
    })
    assert find_cycles(import_graph(tmp_path, ["kernels"])) == [["kernels.x", "kernels.y"]]


@pytest.mark.parametrize(
    "importer, line, upward",
    [
        ("kernels/k.py", "def f():\n    from optics._backend import is_torch\n", True),
        ("optics/o.py", "import learned.m\n", True),
        ("learned/m.py", "from validation import v\n", True),
        ("learned/m2.py", "from benchmarks.b import run\n", True),
        ("benchmarks/b2.py", "from validation import v\n", False),  # same floor
        ("validation/v2.py", "from learned.m import x\nfrom optics import o\nimport kernels\n", False),
    ],
)
def test_upward_check(tmp_path, importer, line, upward):
    files = {f"{p}/__init__.py": "" for p in FLOORS}
    files.update({"learned/m.py": "", "optics/o.py": "", "validation/v.py": "", "benchmarks/b.py": ""})
    files[importer] = line
    _write(tmp_path, files)
    found = upward_imports(import_graph(tmp_path))
    assert bool(found) is upward, found


@pytest.mark.parametrize(
    "importer, line, wrong",
    [
        ("learned/metrics.py", "def f():\n    from .training.checkpoints import U\n", True),  # issue 34's arrow
        ("learned/metrics.py", "from ._safe_pickle import U\n", False),
        ("learned/training/checkpoints.py", "from .._safe_pickle import U\nfrom ..data.io import w\n", False),
        ("learned/data/protocols.py", "from .. import metrics\n", False),
        ("learned/data/io.py", "import learned.training.recipes\n", True),
        ("learned/models/kpac.py", "from ..metrics import psnr\n", True),  # another room on the same floor
        ("learned/training/sampling.py", "from .recipes import R\n", False),  # its own room
        ("learned/train.py", "from .evaluate import main\nfrom .training import step\n", False),  # the top floor
        ("learned/_cli.py", "from learned import evaluate\n", True),
        ("learned/inference/tiling.py", "from learned import build_model\n", True),  # the package is the top
    ],
)
def test_learned_rooms_check(tmp_path, importer, line, wrong):
    files = {f: "" for f in ("learned/__init__.py", "learned/_cli.py", "learned/_safe_pickle.py", "learned/metrics.py",
                             "learned/train.py", "learned/evaluate.py", "learned/data/__init__.py",
                             "learned/data/io.py", "learned/data/protocols.py", "learned/models/__init__.py",
                             "learned/models/kpac.py", "learned/inference/__init__.py", "learned/inference/tiling.py",
                             "learned/training/__init__.py", "learned/training/checkpoints.py",
                             "learned/training/recipes.py", "learned/training/sampling.py", "learned/training/step.py")}
    files[importer] = line
    _write(tmp_path, files)
    found = learned_arrows_up(import_graph(tmp_path, ["learned"]))
    assert bool(found) is wrong, found
