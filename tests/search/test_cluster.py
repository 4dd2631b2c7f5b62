"""A real two-node Ray cluster on this machine: `search --address` spreads trials over both.

The cluster gets its own temp dir and ports, and the test stops exactly the processes it
started (never `ray stop`, which would end every Ray process here, the suite's own too).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    out = subprocess.run([RAY, "start", *args], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _stop_cluster(temp_dir: str, before: set[int]) -> None:
    """Kill the processes of this cluster: those naming its temp dir, and their children."""
    mine = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid not in before and temp_dir in " ".join(p.info["cmdline"] or []):
                mine.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    family = set()
    for p in mine:
        family.add(p)
        try:
            family.update(p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(family), timeout=20)


@pytest.mark.skipif(not Path(RAY).exists(), reason="the ray command is not installed")
def test_search_runs_on_a_two_node_cluster(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="ncx-", dir="/tmp")  # short: Ray's socket paths
    before = {p.pid for p in psutil.process_iter()}
    gcs, head_mgr, head_obj, w_mgr, w_obj, client, agent1, agent2, metrics1, metrics2, \
        rt1, rt2 = _free_ports(12)
    # Ray's token authentication, with a token of this cluster's own (not ~/.ray/auth_token).
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token)}
    common = ["--num-cpus=1", "--num-gpus=0", f"--temp-dir={temp_dir}",
              "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        _ray_start(["--head", f"--port={gcs}", "--include-dashboard=false",
                    f"--ray-client-server-port={client}", f"--node-manager-port={head_mgr}",
                    f"--object-manager-port={head_obj}", f"--dashboard-agent-listen-port={agent1}",
                    f"--metrics-export-port={metrics1}", f"--runtime-env-agent-port={rt1}",
                    *common], env)
        _ray_start([f"--address=127.0.0.1:{gcs}", f"--node-manager-port={w_mgr}",
                    f"--object-manager-port={w_obj}", f"--dashboard-agent-listen-port={agent2}",
                    f"--metrics-export-port={metrics2}", f"--runtime-env-agent-port={rt2}",
                    *common], env)
        out = subprocess.run(
            [sys.executable, "-m", "nas_convnext.cli", "search", "--space", "small",
             "--trials", "4", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--epochs", "2", "--budget", "4.5G",
             "--address", f"127.0.0.1:{gcs}", "--concurrency", "2", "--name", "cluster",
             "--results-dir", str(tmp_path), "--scheduler", "none"],
            capture_output=True, text=True, env=env, timeout=400)
        assert out.returncode == 0, out.stdout + out.stderr
        df = pd.read_parquet(tmp_path / "cluster" / "trials.parquet")
        assert len(df) == 6 and (df["status"] == "completed").all()
        assert df["node_id"].nunique() == 2, df["node_id"].tolist()
    finally:
        _stop_cluster(temp_dir, before)
        shutil.rmtree(temp_dir, ignore_errors=True)
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"])
            if temp_dir in " ".join(p.info["cmdline"] or [])]
    assert not left
