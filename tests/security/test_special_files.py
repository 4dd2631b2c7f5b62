"""Writing results over what is not a regular file, and the permissions of what is written.

Every result file is written to a temporary name and renamed over its target, and a rename
replaces whatever is there: a device (as root, `train --out /dev/null` would destroy it), a
FIFO, or a symbolic link. Only a regular file or a new name may be written; links are refused,
not followed. New files get the permissions the umask in effect gives; a replaced file keeps
its own. One helper does it for every writer: `train --out`, run.json, the trials table, the
report and the dataset cache.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nas_convnext import results
from nas_convnext.training import data
from nas_convnext.training.data import cache as data_cache
from nas_convnext.cli import main
from tests.report.test_report import make_run, small_rows

ROOT = Path(__file__).resolve().parents[2]


def _char_device(path: Path) -> Path:
    """A copy of /dev/null (character device 1:3), or skip where mknod is not permitted."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a character device here ({exc})")
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _link(path: Path) -> Path:
    target = path.with_name("target.json")
    target.write_text("the user's file\n")
    path.symlink_to(target)
    return path


SPECIAL = {"character device": (_char_device, stat.S_ISCHR),
           "FIFO": (_fifo, stat.S_ISFIFO),
           "symbolic link": (_link, stat.S_ISLNK)}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nas-convnext")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("kind", list(SPECIAL))
def test_train_out_refuses_what_is_not_a_regular_file(tmp_path, capsys, kind):
    make, is_kind = SPECIAL[kind]
    target = make(tmp_path / "metrics.json")
    code = main(["train", "resnet50", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--out", str(target)])
    line = _one_line(capsys)
    assert code == 2
    assert line.startswith(f"nas-convnext: error: --out {target}: it is a {kind}"), line
    assert is_kind(os.lstat(target).st_mode)  # still what it was, not a regular file
    if kind == "symbolic link":
        assert "(to " + str(tmp_path / "target.json") + ")" in line
        assert (tmp_path / "target.json").read_text() == "the user's file\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("kind", list(SPECIAL))
def test_the_one_helper_refuses_them_for_every_writer(tmp_path, kind):
    """run.json, the trials table and the cache go through the same check."""
    make, is_kind = SPECIAL[kind]
    run = tmp_path / "run"
    run.mkdir()
    writers = {results.RUN_JSON: lambda: results.write_run_json(run, {"config": {}}),
               results.TABLE: lambda: results.write_table(run, small_rows())}
    for name, write in writers.items():
        target = make(run / name)
        with pytest.raises(OSError) as exc:
            write()
        assert exc.value.filename == str(target) and f"it is a {kind}" in exc.value.strerror
        assert is_kind(os.lstat(target).st_mode)
        if kind == "symbolic link":
            assert (run / "target.json").read_text() == "the user's file\n"
            (run / "target.json").unlink()
        target.unlink()
    assert [p.name for p in run.iterdir()] == []  # no temporary file left behind


def test_the_dataset_cache_is_not_written_through_a_link(tmp_path):
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"keep me")
    cache = tmp_path / "cache" / "synthetic-x.pt"
    cache.parent.mkdir()
    cache.symlink_to(outside)
    ds = data.generate_synthetic(24, 12, seed=0, use_cache=False)
    with pytest.warns(UserWarning, match="symbolic link") as warned:
        data_cache._write_cache(cache, ds)
    assert str(cache) in str(warned[0].message)
    assert outside.read_bytes() == b"keep me" and cache.is_symlink()


def test_analyze_refuses_a_link_in_the_report_folder(tmp_path, capsys):
    run, _ = make_run(tmp_path, small_rows())
    out = tmp_path / "report"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("mine\n")
    (out / "front.csv").symlink_to(elsewhere)
    code = main(["analyze", str(run), "--format", "csv", "--out", str(out)])
    line = _one_line(capsys)
    assert code == 2 and line == (f"nas-convnext: error: cannot write {out / 'front.csv'}: it is a "
                                  f"symbolic link (to {elsewhere}); nas-convnext does not write "
                                  "through links: give the real path of the file"), line
    assert elsewhere.read_text() == "mine\n" and (out / "front.csv").is_symlink()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=oct)
def test_a_new_file_gets_the_umask_in_effect(tmp_path, umask):
    old = os.umask(umask)
    try:
        results.atomic_write_text(tmp_path / "new.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == 0o666 & ~umask


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old\n")
    path.chmod(0o640)
    results.atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_train_out_writes_a_regular_file_with_the_umask(tmp_path, monkeypatch):
    """The whole `train --out` path, with the training itself replaced (it is tested elsewhere)."""
    from nas_convnext.training import trial as train
    from nas_convnext.training.trial import TrialResult

    def fake_trial(arch, proxy, data, seed, report=None, threads=None):
        return TrialResult(status="completed", epochs=1, top1=0.5, top5=0.9, loss=1.0)

    def tiny_data(dataset, data_dir, proxy):
        return data.generate_synthetic(24, 12, seed=0, use_cache=False)

    monkeypatch.setattr(train, "train_trial", fake_trial)
    monkeypatch.setattr(train, "load_proxy_data", tiny_data)
    out = tmp_path / "metrics.json"
    old = os.umask(0o027)
    try:
        assert main(["train", "resnet50", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert json.loads(out.read_text())["top1"] == 0.5
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640


def test_importing_the_package_leaves_the_umask_alone():
    """No process-wide state changes at import: os.umask is never called, not even to read it."""
    code = ("import os, sys\n"
            "calls = []\n"
            "real = os.umask\n"
            "os.umask = lambda m: calls.append(m) or real(m)\n"
            "import nas_convnext.results, nas_convnext.report, nas_convnext.training.data, nas_convnext.cli\n"
            "sys.exit(len(calls))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"os.umask called {proc.returncode} time(s) at import\n{proc.stderr}"
