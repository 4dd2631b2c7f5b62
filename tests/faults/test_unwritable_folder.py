"""A full disk, or a folder that cannot be written, when a search or a report writes."""
from __future__ import annotations

import errno
import os
import shutil
import types

import pandas as pd
import pytest

from nas_convnext import results
from nas_convnext.cli import main
from nas_convnext.search import run_search

from .conftest import small_config


class _FullDisk(types.SimpleNamespace):
    """`os` for nas_convnext.results, whose fsync fails with ENOSPC from its n-th call on.

    The real atomic_write_bytes runs (temporary file, fsync, rename), so its clean-up is what
    is tested, not a stand-in's.
    """

    def __init__(self, fail_from: int):
        super().__init__(calls=0, fail_from=fail_from)

    def __getattr__(self, name):
        return getattr(os, name)

    def fsync(self, fd):
        self.calls += 1
        if self.calls >= self.fail_from:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.fsync(fd)


# fsync calls: 1 run.json, 2-3 the table after the first trial, 4 the table after the second.
FAIL_FROM = 4


def _check_folder(run):
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert not (run / ".lock").exists()
    df = results.read_table(run)  # the last good table, whole and readable
    assert len(df) == 1 and df["status"].tolist() == ["completed"]
    assert len(pd.read_csv(run / "trials.csv")) == 1


def test_full_disk_keeps_the_last_good_table(ray_session, tmp_path, monkeypatch):
    disk = _FullDisk(FAIL_FROM)
    monkeypatch.setattr(results, "os", disk)
    with pytest.raises(ValueError) as exc:
        run_search(small_config(tmp_path, "full", trials=1, concurrency=1))
    msg = str(exc.value)
    run = tmp_path / "full"
    assert f"could not write {run / 'trials.parquet'}" in msg, msg
    assert "No space left on device" in msg and "last good table is kept" in msg
    assert f"--resume {run}" in msg
    monkeypatch.setattr(results, "os", os)
    _check_folder(run)


def test_full_disk_through_the_cli_is_one_line(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(results, "os", _FullDisk(FAIL_FROM))
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G",
                 "--trials", "1", "--concurrency", "1", "--name", "full",
                 "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    monkeypatch.setattr(results, "os", os)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nas-convnext")]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and "No space left on device" in lines[0]
    assert str(tmp_path / "full" / "trials.parquet") in lines[0]
    _check_folder(tmp_path / "full")


class _ReadOnly(types.SimpleNamespace):
    """`os` for nas_convnext.results, refusing to create files from the n-th try.

    A folder that turns read-only fails exactly there: creating the temporary file of an
    atomic write (`open` with O_CREAT | O_EXCL; these are counted) or, with `locks`, the lock
    file (`open` with O_CREAT); reading still works.
    """

    def __init__(self, real, fail_from: int = 1, locks: bool = True):
        super().__init__(real=real, calls=0, fail_from=fail_from, locks=locks)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def open(self, path, flags, *args):
        if flags & os.O_CREAT and flags & os.O_EXCL:
            self.calls += 1
            if self.calls >= self.fail_from:
                raise OSError(errno.EROFS, "Read-only file system", str(path))
        elif flags & os.O_CREAT and self.locks:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return self.real.open(path, flags, *args)


def _digest(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_folder_turning_read_only_mid_run_keeps_the_last_good_table(ray_session, tmp_path,
                                                                      monkeypatch):
    # Temporary files: 1 run.json, 2-3 the table after the first trial, 4 the table after the
    # second.
    monkeypatch.setattr(results, "os", _ReadOnly(os, fail_from=4, locks=False))
    with pytest.raises(ValueError) as exc:
        run_search(small_config(tmp_path, "ro", trials=1, concurrency=1))
    monkeypatch.setattr(results, "os", os)
    run = tmp_path / "ro"
    msg = str(exc.value)
    assert f"could not write {run / 'trials.parquet'}: Read-only file system" in msg, msg
    assert "last good table is kept" in msg and f"--resume {run}" in msg
    _check_folder(run)


def test_resuming_a_read_only_run_is_one_line_and_changes_nothing(finished_run, tmp_path,
                                                                  monkeypatch, capsys):
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    before = _digest(run)
    monkeypatch.setattr(results, "os", _ReadOnly(os))
    code = main(["search", "--resume", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nas-convnext")]
    assert lines == [f"nas-convnext: error: cannot write in {run}: Read-only file system; make "
                     f"it writable, or copy the run somewhere writable and resume the copy"]
    assert _digest(run) == before


def test_analyzing_a_read_only_run_is_one_line(finished_run, tmp_path, monkeypatch, capsys):
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    for p in run.iterdir():  # a run whose report was never written
        if p.suffix in (".png", ".html", ".md") or p.name in ("analysis.json", "front.csv"):
            p.unlink()
    before = _digest(run)
    monkeypatch.setattr(results, "os", _ReadOnly(os, locks=False))
    code = main(["analyze", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nas-convnext")]
    assert len(lines) == 1 and f"cannot write {run}" in lines[0], err
    assert "Read-only file system" in lines[0] and "--out DIR" in lines[0]
    assert _digest(run) == before
