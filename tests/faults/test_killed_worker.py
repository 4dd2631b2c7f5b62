"""SIGKILL to a trial's worker from outside, mid-epoch: that trial is an error, the rest finish."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil

TRIAL_ACTOR = "ray::ImplicitFunc"  # Ray 2.60's process title for a function trainable's actor


def _trial_workers(driver: psutil.Process, born_after: float) -> list[psutil.Process]:
    """Trial actors of this search only: descendants of its driver (its own local Ray)."""
    out = []
    try:
        kids = driver.children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for p in kids:
        try:
            title = " ".join(p.cmdline()) or p.name()
            if TRIAL_ACTOR in title and p.create_time() >= born_after:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def test_sigkill_to_a_trial_worker_from_outside(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",
                                                               "NAS_CONVNEXT_FAULT")}
    started = time.time() - 1
    p = subprocess.Popen([sys.executable, "-m", "nas_convnext.cli", "search", "--space", "small",
                          "--trials", "2", "--proxy", "cpu-tiny", "--budget", "4.5G",
                          "--epochs", "3", "--concurrency", "1", "--scheduler", "none",
                          "--name", "kill", "--results-dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    driver = psutil.Process(p.pid)
    victim = None
    deadline = time.time() + 120
    try:
        while victim is None and time.time() < deadline and p.poll() is None:
            workers = _trial_workers(driver, started)
            if workers:
                victim = workers[0]
            time.sleep(0.2)
        assert victim is not None, "no trial worker appeared"
        # Into its training: the actor imports torch, gets the data and builds the model
        # first (about 2 s here); a trial of 3 epochs then trains for several seconds.
        time.sleep(4.0)
        assert victim.is_running(), "the trial worker ended before it could be killed"
        assert victim.pid != os.getpid() and victim.pid not in {c.pid for c in
                                                                psutil.Process().children()}
        victim.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    df = pd.read_parquet(tmp_path / "kill" / "trials.parquet")
    assert len(df) == 4
    assert df["trial_id"].is_unique and df["order"].is_unique
    assert sorted(df["order"]) == [1, 2, 3, 4]
    bad = df[df["status"] == "error"]
    assert len(bad) == 1 and bad["error"].iloc[0].strip() != ""
    assert (df[df["status"] != "error"]["status"] == "completed").all()
    assert not (tmp_path / "kill" / ".lock").exists()
