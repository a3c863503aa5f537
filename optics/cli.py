"""Command-line plumbing shared by every ``python -m`` entry point of the toolkit.

One error style, one overwrite policy:

* :class:`ArgumentParser` reports a bad argument as one line, ``error: <message>``, and exits 2
  (argparse's own messages already name the argument, e.g. ``argument --size: expected HEIGHTxWIDTH,
  e.g. 720x1280; got 'abc'``). It adds ``-v/--verbose``.
* :func:`run` wraps a ``main(argv)``: an exception becomes one line ``error: <message>``; exit 2 for
  bad input (``ValueError``, ``TypeError``, missing/existing/unwritable files), 1 for a failure at
  run time (anything else), 130 on Ctrl-C; the full traceback only with ``-v``.
* :func:`check_output_files` and :func:`prepare_output_dir` refuse, before any work, an output that
  would replace an input, an output that exists (unless ``overwrite``), two inputs mapping to one
  output, a wrong extension and an unwritable location.

A new CLI adopts all of it with::

    from optics import cli

    def main(argv=None) -> int:
        parser = cli.ArgumentParser(prog="python -m package.tool", description="...")
        cli.add_overwrite_argument(parser)
        args = parser.parse_args(argv)
        cli.check_output_files([(args.out, [args.input])], overwrite=args.overwrite, suffixes=(".png",))
        ...

    if __name__ == "__main__":
        raise SystemExit(cli.run(main))
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable, NoReturn, Sequence

__all__ = [
    "UsageError",
    "ArgumentParser",
    "usage_error",
    "run",
    "BAD_INPUT",
    "one_line",
    "warn",
    "progress_bar",
    "add_overwrite_argument",
    "check_input_file",
    "check_output_files",
    "check_writable_dir",
    "prepare_output_dir",
    "record_outputs",
    "OUTPUT_RECORD",
]

#: File a folder-writing command keeps in its output folder: ``{"complete": bool, "files": [...]}``,
#: the files (relative paths) it wrote. ``--overwrite`` replaces only those (:func:`prepare_output_dir`).
OUTPUT_RECORD = ".defocus-toolkit-outputs.json"

#: Exceptions that mean "the user gave something wrong": exit status 2. Anything else is a failure
#: at run time: exit status 1.
BAD_INPUT = (ValueError, TypeError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
             PermissionError)


class UsageError(SystemExit):
    """A bad command line, already reported on stderr; exit status 2 (``str(err)`` is the message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2
        self.message = message


def one_line(message: object) -> str:
    """``message`` as one line (line breaks joined with '; ')."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return "; ".join(lines) if lines else ""


def usage_error(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 2 (raises :class:`UsageError`)."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    raise UsageError(one_line(message))


def warn(message: str) -> None:
    """Print ``warning: <message>`` on one line of stderr."""
    print(f"warning: {one_line(message)}", file=sys.stderr, flush=True)


#: Seconds between progress lines when stderr is not a terminal (a log file, a pipe, a batch job).
PROGRESS_LINE_INTERVAL = 30.0


class _Lines:
    """A stream for tqdm that turns its carriage-return redraws into whole lines (for logs)."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("||", "|").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, *, interval: float | None = None, **kwargs):
    """A tqdm progress bar on stderr; when stderr is not a terminal, one plain line every ``interval``
    seconds (:data:`PROGRESS_LINE_INTERVAL`) instead of a redrawn bar, so a redirected long command
    still shows where it is (``tiles:  25%| 3/12 [00:40<02:00, 13.3s/tile]``)."""
    from tqdm import tqdm

    stream = kwargs.pop("file", None) or sys.stderr
    if not stream.isatty():
        kwargs.update(file=_Lines(stream), mininterval=PROGRESS_LINE_INTERVAL if interval is None else interval,
                      maxinterval=float("inf"), bar_format="{l_bar}{r_bar}", dynamic_ncols=False, ncols=None)
    else:
        kwargs["file"] = stream
    return tqdm(iterable, **kwargs)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolkit's error style (``error: <message>``, exit 2) and ``-v/--verbose``."""

    def __init__(self, *args, verbose_help: str = "print the full traceback of an error", **kwargs) -> None:
        kwargs.setdefault("conflict_handler", "resolve")  # a CLI may define its own -v/--verbose
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", help=verbose_help)

    def error(self, message: str) -> NoReturn:  # argparse's hook for every bad argument
        usage_error(f"{message} (see {self.prog} --help)")


def parse_size(text: str, minimum: int = 1, maximum: int | None = None) -> tuple[int, int]:
    """``'720x1280'`` -> ``(720, 1280)``: an argparse ``type`` for HEIGHTxWIDTH (rows x columns, as a
    NumPy shape), both >= ``minimum`` (and <= ``maximum`` when given)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 720x1280; got {text!r}") from None
    if height < minimum or width < minimum:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH with both >= {minimum}; got {text!r}")
    if maximum is not None and max(height, width) > maximum:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH with both <= {maximum}; got {text!r}")
    return height, width


def add_overwrite_argument(parser: argparse.ArgumentParser, what: str = "existing outputs") -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what} (never an input)")


def _describe(err: BaseException) -> str:
    text = one_line(err)
    if isinstance(err, BAD_INPUT) or not text:
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}"


def run(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` and turn what it raises into one ``error:`` line and an exit status.

    Returns ``main``'s status, 2 for bad input (:data:`BAD_INPUT`, :class:`UsageError`), 1 for any
    other exception, 130 on Ctrl-C. With ``-v``/``--verbose`` in ``argv`` the traceback is printed
    first. ``SystemExit`` raised inside ``main`` (``--help``) passes through.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in argv)
    try:
        status = main(argv)
    except UsageError:
        return 2  # already reported
    except KeyboardInterrupt:
        if verbose:
            traceback.print_exc()
        print("error: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that reports every failure
        if verbose:
            traceback.print_exc()
        status = 2 if isinstance(err, BAD_INPUT) else 1
        hint = "" if verbose or status == 2 else " (run with -v for the traceback)"
        print(f"error: {_describe(err)}{hint}", file=sys.stderr, flush=True)
        return status
    return 0 if status is None else int(status)


# --------------------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------------------
def check_input_file(path: str | os.PathLike, what: str = "input", suffixes: Sequence[str] | None = None) -> Path:
    """``path`` must be an existing regular file (a folder is named as such) with one of ``suffixes``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a folder; expected a file"
                                + (f" ({', '.join(suffixes)}), e.g. {str(path / ('*' + suffixes[0]))!r}"
                                   if suffixes else ""))
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a regular file")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {str(path)!r} must end in one of {', '.join(suffixes)}; got {path.suffix or 'no suffix'!r}")
    return path


def check_writable_dir(folder: str | os.PathLike, what: str = "output folder") -> None:
    """``folder`` (created later if missing) must be creatable and writable: its nearest existing
    ancestor is a folder we may write to."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(f"{what} {str(folder)!r} cannot be created: {str(probe)!r} is a file")
    target = probe if probe.exists() else Path.cwd()
    if not os.access(target, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {str(folder)!r} is not writable ({str(target)!r} does not allow writing)")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_files(
    jobs: Iterable[tuple[str | os.PathLike, Sequence[str | os.PathLike]]],
    *,
    overwrite: bool = False,
    suffixes: Sequence[str] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    what: str = "output",
) -> list[Path]:
    """Check every output file before any work is done; return the outputs as paths.

    Parameters
    ----------
    jobs : iterable of (output, inputs)
        Each output and the input file(s) it is computed from.
    overwrite : bool
        Allow replacing outputs that exist (never an input).
    suffixes : sequence of str, optional
        Allowed extensions (lower case, with the dot).
    inputs : sequence of paths
        Further input files no output may replace (e.g. a checkpoint).
    what : str
        How the outputs are named in messages.

    Raises
    ------
    ValueError
        A wrong extension; an output that is also an input; two inputs mapping to one output
        (both named).
    FileExistsError
        An existing output without ``overwrite``.
    IsADirectoryError, NotADirectoryError, PermissionError
        An output that is a folder, or in a folder that cannot be created or written.
    """
    jobs = [(Path(out), [Path(p) for p in srcs]) for out, srcs in jobs]
    all_inputs = [p for _, srcs in jobs for p in srcs] + [Path(p) for p in inputs]
    seen: dict[Path, Path] = {}
    for out, srcs in jobs:
        if suffixes is not None and out.suffix.lower() not in suffixes:
            raise ValueError(f"{what} {str(out)!r} must end in one of {', '.join(suffixes)}; "
                             f"got {out.suffix or 'no suffix'!r}")
        key = out.resolve()
        if key in seen:
            first = seen[key]
            raise ValueError(f"inputs {str(first)!r} and {str(srcs[0]) if srcs else '?'!r} would both be written to "
                             f"{str(out)!r}; give them different names (or one at a time)")
        seen[key] = srcs[0] if srcs else out
        clash = next((p for p in all_inputs if _same(out, p)), None)
        if clash is not None:
            raise ValueError(f"{what} {str(out)!r} is also an input ({str(clash)!r}); refusing to replace an "
                             "input: choose another output path")
        if out.is_dir():
            raise IsADirectoryError(f"{what} {str(out)!r} is a folder; expected a file path")
        if out.exists() and not overwrite:
            raise FileExistsError(f"{what} {str(out)!r} exists; pass --overwrite to replace it")
        check_writable_dir(out.parent, f"folder of {what} {str(out)!r}")
    return [out for out, _ in jobs]


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")  # optics.atomic's leftovers


def _files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative POSIX paths), the record and temporaries left out."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if not p.is_dir() and p.name != OUTPUT_RECORD and not _is_temporary(p.name))


def _read_record(folder: Path) -> dict | None:
    import json

    try:
        record = json.loads((folder / OUTPUT_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("files"), list):
        return None
    return record


def _write_record(folder: Path, files: list[str] | None) -> None:
    import json

    from .atomic import atomic_write_bytes

    record = {"complete": files is not None, "files": files or []}
    atomic_write_bytes(folder / OUTPUT_RECORD, json.dumps(record, indent=1).encode())


def record_outputs(folder: str | os.PathLike) -> None:
    """Record, when a command has finished, every file now below its output ``folder`` as its own.

    :func:`prepare_output_dir` emptied (or created) the folder and marked the run as incomplete,
    so everything below it now is this run's output; a later ``--overwrite`` replaces exactly
    these files and refuses if anything else has appeared since.
    """
    folder = Path(folder)
    _write_record(folder, _files_under(folder))


def prepare_output_dir(
    folder: str | os.PathLike,
    *,
    overwrite: bool = False,
    owned: Callable[[Path], bool] | None = None,
    what: str = "--out",
    clear: bool = True,
) -> Path:
    """Check an output folder before any work; with ``overwrite``, remove what a previous run left.

    A folder that does not exist, is empty or holds only a record (a run that wrote nothing) is
    fine. A non-empty folder is refused unless
    ``overwrite``; then every entry must be ``owned`` (something this command writes, so that a
    mistyped ``--out ~`` never deletes a user's files) and, when the previous run left a complete
    :data:`OUTPUT_RECORD` (:func:`record_outputs`), every file below the folder must be one that
    run wrote: a file the user added later is named and nothing is removed. A folder with no
    record at all is refused too: only a folder this toolkit wrote is ever cleared. With
    ``clear``, the previous outputs are removed, so old and new results never mix.

    The folder is then created (if missing) and holds an incomplete record, which the command
    completes with :func:`record_outputs` when it finishes (a run that stops half-way leaves it
    incomplete; ``overwrite`` then falls back to ``owned``).

    Raises
    ------
    FileExistsError
        A non-empty folder without ``overwrite``.
    ValueError
        ``overwrite`` on a folder holding entries this command does not own, files its previous
        run did not write, or no record of a previous run (named).
    NotADirectoryError, PermissionError
        A file in the way, or a folder that cannot be written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{what} {str(folder)!r} is a file; expected a folder")
    check_writable_dir(folder, f"{what} {str(folder)!r}")
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if entries and [p.name for p in entries] != [OUTPUT_RECORD]:  # a record alone: a run that wrote nothing
        _check_replaceable(folder, entries, overwrite, owned, what)
        if clear:
            for p in entries:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    _write_record(folder, None)
    return folder


def _check_replaceable(folder: Path, entries: list[Path], overwrite: bool, owned, what: str) -> None:
    def listed(items) -> str:
        items = list(items)
        return ", ".join(repr(x) for x in items[:4]) + (" ..." if len(items) > 4 else "")

    if not overwrite:
        raise FileExistsError(f"{what} {str(folder)!r} is not empty ({len(entries)} entries: "
                              f"{listed(p.name for p in entries)}); pass --overwrite to replace its contents, or "
                              "choose a new folder")
    foreign = [p.name for p in entries
               if p.name != OUTPUT_RECORD and not _is_temporary(p.name) and not (owned is not None and owned(p))]
    if foreign:
        raise ValueError(f"{what} {str(folder)!r} holds {len(foreign)} entries this command did not write "
                         f"({listed(foreign)}); --overwrite only replaces its own outputs: choose another folder")
    record = _read_record(folder)
    if record is None:
        raise ValueError(f"{what} {str(folder)!r} has no record of the run that wrote it ({OUTPUT_RECORD}); "
                         "--overwrite only replaces a folder this toolkit wrote: choose another folder, or empty "
                         "this one yourself")
    if record.get("complete"):
        added = sorted(set(_files_under(folder)) - {str(f) for f in record["files"]})
        if added:
            raise ValueError(f"{what} {str(folder)!r} holds {len(added)} files its previous run did not write "
                             f"({listed(added)}); --overwrite only replaces that run's outputs: move them, or "
                             "choose another folder")


def check_threads(threads: int | None, what: str = "--threads") -> int:
    """``threads`` within 1..os.cpu_count() (-1 when None: every core); else ValueError naming ``what``."""
    if threads is None:
        return -1
    cores = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1 or threads > cores:
        raise ValueError(f"{what}: expected 1..{cores} (this machine's cores); got {threads!r}")
    return threads
