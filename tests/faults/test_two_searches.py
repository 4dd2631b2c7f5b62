"""Two searches on one results folder at once: the second is refused, the first is undisturbed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nas_convnext.cli import main
from nas_convnext.results import RunLock, read_table

ARGS = ["search", "--space", "small", "--trials", "2", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--epochs", "2",
        "--scheduler", "none", "--concurrency", "1", "--budget", "4.5G", "--name", "shared"]
ROWS = 4  # two reference points and two searched designs


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "NAS_CONVNEXT_FAULT")}


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas_convnext.cli", *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("nas-convnext: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _check_whole(run_dir, command_has: str = "--name") -> None:
    df = read_table(run_dir)
    assert len(df) == ROWS and df["trial_id"].is_unique
    assert (df["status"] == "completed").all()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["resumed"] == 0 and info["interrupted"] is False and "finished" in info
    assert command_has in info["command"] and "--resume" not in info["command"]
    assert not (run_dir / ".lock").exists()


def test_new_search_and_resume_on_a_running_folder_are_refused(ray_session, tmp_path, capsys):
    run_dir = tmp_path / "shared"
    first = _spawn([*ARGS, "--results-dir", str(tmp_path)])
    try:
        deadline = time.time() + 120
        while not (run_dir / "run.json").exists():  # written once the folder is locked
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        assert first.poll() is None, "the first search ended before the others could start"
        # The same new run name: refused before anything is written.
        assert main([*ARGS, "--results-dir", str(tmp_path)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"{run_dir} already exists" in line and "--name" in line
        # A resume of the running search: refused by the lock, naming its owner.
        assert main(["search", "--resume", str(run_dir)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"{run_dir} is in use by another search (process {first.pid})" in line
        assert first.poll() is None, "the first search should still be running"
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    _check_whole(run_dir)


@pytest.mark.slow  # 37 s; the lock it races for is checked by the refused-resume test above
def test_two_searches_started_together(tmp_path):
    procs = [_spawn([*ARGS, "--results-dir", str(tmp_path)]) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    line = _one_error_line(loser[1])
    assert "is in use by another search" in line or "already exists" in line, line
    _check_whole(tmp_path / "shared")


def test_the_lock_ends_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from nas_convnext.results import RunLock; "
                               f"RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"in use by another search \(process {holder.pid}\)"):
            RunLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)  # no clean-up: the file stays, the lock does not
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert (tmp_path / ".lock").exists()
    lock = RunLock(tmp_path).acquire()
    assert lock.held and (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / ".lock").exists()
