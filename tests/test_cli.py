"""Issue 13: one error style for every CLI, and the shared overwrite / fail-before-the-work checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from optics import cli

REPO = Path(__file__).resolve().parents[1]


def _bad_inputs(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(module, argv, text the one error line must contain) for every command-line entry point."""
    folder = tmp / "photos"
    folder.mkdir(exist_ok=True)
    afile = tmp / "file.txt"
    afile.write_text("x")
    return [
        ("learned.deblur", [str(folder), str(tmp / "o.png"), "--model", "kpac", "--checkpoint", str(afile)],
         "is a folder"),
        ("learned.evaluate", ["--limit", "0", "--no-lpips"], "--limit"),
        ("learned.convert", ["--model", "ifan", "--official", str(tmp / "missing.pytorch"), "--out", str(tmp / "a.pt")],
         "does not exist"),
        ("learned.summary", ["--size", "abc"], "--size"),
        ("learned.train", ["--model", "kpac", "--steps", "many"], "--steps"),
        ("optics.render.synthesize", ["--out", str(tmp / "ds"), "--count", "0"], "count"),
        ("validation", ["--only", "no_such_validation"], "no_such_validation"),
        ("validation.kernel_upsampling", ["--out", str(afile)], "is a file"),
        ("validation.dual_pixel", ["--out", str(afile)], "is a file"),
        ("validation.recursive_kernels", ["--out", str(afile)], "is a file"),
        ("validation.iac_receptive_field", ["--out", str(afile)], "is a file"),
        ("benchmarks.optics", ["--markdown", str(tmp / "table.txt")], "--markdown"),
        ("benchmarks.render", ["--quick", "--frames", "3"], "--frames"),
        ("benchmarks.inference", ["--out", str(tmp / "t.md"), "--size", "8x8"], "--size"),
        ("benchmarks.training", ["--runs", str(tmp / "runs"), "--threads", "0"], "--threads"),
        ("benchmarks.precision", ["--size", "0"], "--size"),
        ("benchmarks.receptive_field", ["--margins", "500"], "--margins"),
        ("learned.datasets", ["check", "dpdd:" + str(tmp / "no_such_folder")], "no_such_folder"),
        ("validation.dual_pixel_calibration", ["--kernels", str(folder)], "photos"),
    ]


def _assert_one_error_line(stderr: str, expected: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in stderr


def test_every_cli_reports_bad_input_on_one_line_with_status_2(tmp_path):
    """``python -m <cli> <bad input>`` for every CLI, as a user runs it (a subprocess each)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    for module, argv, expected in _bad_inputs(tmp_path):
        proc = subprocess.run([sys.executable, "-m", module, *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, (module, proc.returncode, proc.stderr[-2000:])
        _assert_one_error_line(proc.stderr, expected)


def test_runtime_failure_is_status_1_and_traceback_only_with_verbose(capsys):
    def main(argv):
        raise RuntimeError("the disk went away\nsecond line")

    assert cli.run(main, []) == 1
    err = capsys.readouterr().err
    _assert_one_error_line(err, "RuntimeError: the disk went away; second line")
    assert cli.run(main, ["-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: RuntimeError")

    def bad(argv):
        raise ValueError("argument --x: expected 1; got 2")

    assert cli.run(bad, []) == 2
    _assert_one_error_line(capsys.readouterr().err, "argument --x")

    def interrupted(argv):
        raise KeyboardInterrupt

    assert cli.run(interrupted, []) == 130
    _assert_one_error_line(capsys.readouterr().err, "interrupted")


def test_parser_errors_name_the_argument(capsys):
    parser = cli.ArgumentParser(prog="tool")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--n", "x"])
    assert exc.value.code == 2
    _assert_one_error_line(capsys.readouterr().err, "argument --n: invalid int value: 'x'")


# ------------------------------------------------------------------------------ outputs
def test_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path):
    photo = tmp_path / "copy.png"
    photo.write_bytes(b"precious")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="is also an input"):
            cli.check_output_files([(photo, [photo])], overwrite=overwrite)
    # the same file through another spelling of its path
    with pytest.raises(ValueError, match="is also an input"):
        cli.check_output_files([(tmp_path / "." / "copy.png", [photo])], overwrite=True)
    # an output folder holding the inputs, each output named like its input
    with pytest.raises(ValueError, match="is also an input"):
        cli.check_output_files([(tmp_path / photo.name, [photo])], overwrite=True)
    assert photo.read_bytes() == b"precious"


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        cli.check_output_files([(out, [tmp_path / "in.png"])])
    assert cli.check_output_files([(out, [tmp_path / "in.png"])], overwrite=True) == [out]


def test_two_inputs_mapping_to_one_output_are_both_named(tmp_path):
    jobs = [(tmp_path / "out" / "a.png", [tmp_path / "a.png"]), (tmp_path / "out" / "a.png", [tmp_path / "a.jpg"])]
    with pytest.raises(ValueError, match=r"a\.png' and '.*a\.jpg' would both be written"):
        cli.check_output_files(jobs, overwrite=True)


def test_extension_and_writability_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"must end in one of \.png, \.tif; got '\.jpg'"):
        cli.check_output_files([(tmp_path / "a.jpg", [])], suffixes=(".png", ".tif"))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(NotADirectoryError, match="is a file"):
        cli.check_output_files([(blocker / "sub" / "a.png", [])])
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match="not writable"):
                cli.check_output_files([(locked / "a.png", [])])
        finally:
            locked.chmod(0o700)


def test_prepare_output_dir(tmp_path):
    out = tmp_path / "out"
    assert cli.prepare_output_dir(out) == out  # missing: created, with an incomplete record
    assert [p.name for p in out.iterdir()] == [cli.OUTPUT_RECORD]
    cli.prepare_output_dir(out)  # a run that failed before writing anything: no --overwrite needed
    (out / "old.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not empty.*--overwrite"):
        cli.prepare_output_dir(out)
    (out / "mine.txt").write_text("a user's notes")

    def owned(p):
        return p.suffix == ".json"

    with pytest.raises(ValueError, match="did not write.*mine.txt"):
        cli.prepare_output_dir(out, overwrite=True, owned=owned)
    assert (out / "old.json").exists() and (out / "mine.txt").exists()  # nothing removed
    (out / "mine.txt").unlink()
    cli.prepare_output_dir(out, overwrite=True, owned=owned)  # an incomplete record: `owned` decides
    assert [p.name for p in out.iterdir()] == [cli.OUTPUT_RECORD]


def test_overwrite_replaces_only_what_the_previous_run_recorded(tmp_path):
    out = tmp_path / "report"

    def owned(p):  # as permissive as a validation's: any figure, JSON or markdown file
        return p.suffix in (".png", ".json", ".md")

    cli.prepare_output_dir(out)
    (out / "a.png").write_bytes(b"figure")
    (out / "report.md").write_text("report")
    cli.record_outputs(out)
    (out / "holiday.png").write_bytes(b"a user's photo, owned() by extension alone")
    with pytest.raises(ValueError, match="1 files its previous run did not write.*holiday.png"):
        cli.prepare_output_dir(out, overwrite=True, owned=owned)
    assert (out / "a.png").exists() and (out / "holiday.png").exists()  # nothing removed
    (out / "holiday.png").unlink()
    cli.prepare_output_dir(out, overwrite=True, owned=owned)
    assert [p.name for p in out.iterdir()] == [cli.OUTPUT_RECORD]
    # a folder of the user's own files with no record: never cleared, even if every name is "owned"
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "1.png").write_bytes(b"photo")
    with pytest.raises(ValueError, match="no record of the run that wrote it"):
        cli.prepare_output_dir(photos, overwrite=True, owned=owned)
    assert (photos / "1.png").read_bytes() == b"photo"
