"""SIGKILL to a trial's worker from outside, mid-training: that trial is an error, the rest finish.

The trial tells the test which process it runs in, and that it is training, through the hook
NAS_CONVNEXT_FAULT=mark:K:PATH (its pid, written after its first epoch of 3); the test then
kills that process, so the kill lands mid-training on a machine of any speed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil


def test_sigkill_to_a_trial_worker_from_outside(tmp_path):
    mark = tmp_path / "worker.pid"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["NAS_CONVNEXT_FAULT"] = f"mark:2:{mark}"
    p = subprocess.Popen([sys.executable, "-m", "nas_convnext.cli", "search", "--space", "small",
                          "--trials", "1", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G",
                          "--epochs", "3", "--concurrency", "1", "--scheduler", "none",
                          "--name", "kill", "--results-dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 240
        while not mark.exists():
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.05)
        victim = psutil.Process(int(mark.read_text()))
        # Only this search's own trial worker: a descendant of its driver, not of the tests.
        assert victim.pid in {c.pid for c in psutil.Process(p.pid).children(recursive=True)}
        assert victim.pid not in {c.pid for c in psutil.Process().children()}
        victim.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    df = pd.read_parquet(tmp_path / "kill" / "trials.parquet")
    assert len(df) == 3  # the two reference points and one searched design
    assert df["trial_id"].is_unique and df["order"].is_unique
    assert sorted(df["order"]) == [1, 2, 3]
    bad = df[df["status"] == "error"]
    assert bad["order"].tolist() == [2]  # the killed one, nothing else
    assert bad["error"].iloc[0].strip() != ""
    assert (df[df["status"] != "error"]["status"] == "completed").all()
    assert (df[df["status"] == "completed"]["epochs"] == 3).all()
    assert not (tmp_path / "kill" / ".lock").exists()
