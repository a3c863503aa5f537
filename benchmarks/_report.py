"""Writing benchmark tables: printed, and saved to a new file that is never overwritten."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

__all__ = ["refuse_existing", "write_new", "emit"]


def refuse_existing(parser: argparse.ArgumentParser, path: Optional[Path]) -> None:
    """``parser.error`` (exit 2) if ``--out`` ``path`` exists: checked before any work is done."""
    if path is not None and path.exists():
        parser.error(f"--out {str(path)!r} exists; choose another path (results are never overwritten)")


def write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; an existing file is an error (never overwritten)."""
    from learned.data.io import atomic_write_bytes

    if path.exists():
        raise FileExistsError(f"--out {str(path)!r} exists; choose another path (results are never overwritten)")
    atomic_write_bytes(path, text.encode())


def emit(text: str, out: Optional[Path]) -> None:
    """Print the table and, with ``out``, write it to that new file."""
    print(text)
    if out is not None:
        write_new(out, text)
