"""One tiny search in a subprocess, shared by the Ray and secrets tests.

It runs the real command (`python -m nas_convnext.cli search ...`) in a new session with
secrets in its environment, and, while it runs, samples the listening sockets of every
process in that session (the driver, GCS, raylet, agents, workers): Ray's processes stay in
the session of the command that started them, so the test session's own shared Ray instance
(another session) is never mistaken for ours.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-token-value"
RAY_TOKEN = "r4y-4uth-t0ken-" + "9f8e7d6c5b4a" * 4
SECRETS = {
    "NAS_CONVNEXT_TEST_SECRET": SECRET,
    "RAY_AUTH_TOKEN": RAY_TOKEN,                    # Ray uses it as this cluster's token
    "AWS_SECRET_ACCESS_KEY": "aws-" + SECRET,
}


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if addr.version == 6 and addr.ipv4_mapped is not None:  # ::ffff:127.0.0.1
        addr = addr.ipv4_mapped
    return addr.is_loopback


@dataclass
class Listener:
    ip: str
    port: int
    pid: int
    cmdline: str


@dataclass
class SearchRun:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path
    listeners: dict[tuple[str, int, int], Listener] = field(default_factory=dict)
    processes: dict[int, str] = field(default_factory=dict)   # pid -> cmdline, ever seen
    before: set[tuple[str, int]] = field(default_factory=set)  # listening before it started
    left: dict[int, str] = field(default_factory=dict)         # alive 15 s after it exited


def _listening() -> list:
    """TCP sockets in LISTEN, and UDP sockets bound but not connected (they take datagrams)."""
    return [c for c in psutil.net_connections(kind="inet") if c.laddr and (
        c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr))]


def _session(sid: int) -> dict[int, str]:
    out = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getsid(p.pid) == sid:
                out[p.pid] = " ".join(p.info["cmdline"] or []) or p.name()
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return out


@pytest.fixture(scope="session")
def search_run(tmp_path_factory) -> SearchRun:
    tmp = tmp_path_factory.mktemp("secure-run")
    results = tmp / "results"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(SECRETS)
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    before = {(c.laddr.ip, c.laddr.port) for c in _listening()}
    out_f, err_f = open(tmp / "stdout", "w+"), open(tmp / "stderr", "w+")
    cmd = [sys.executable, "-m", "nas_convnext.cli", "search", "--space", "small",
           "--trials", "1", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G", "--concurrency", "1",
           "--name", "x", "--results-dir", str(results)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out_f, stderr=err_f,
                            start_new_session=True)
    run = SearchRun(0, "", "", results / "x", before=before)
    deadline = time.time() + 400
    try:
        while proc.poll() is None:
            if time.time() > deadline:
                raise TimeoutError("the tiny search took more than 400 s")
            procs = _session(proc.pid)
            run.processes.update(procs)
            for c in _listening():
                if c.pid in procs:
                    run.listeners[(c.laddr.ip, c.laddr.port, c.pid)] = Listener(
                        c.laddr.ip, c.laddr.port, c.pid, procs[c.pid])
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own subprocess's group, nothing else
            proc.wait()
    # Ray's workers exit a moment after the driver; whatever of its session is still there
    # after 15 s is ended here (our own processes, by pid), so no test leaves Ray behind.
    end = time.time() + 15
    while (left := _session(proc.pid)) and time.time() < end:
        time.sleep(0.5)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out_f.seek(0), err_f.seek(0)
    run.returncode, run.stdout, run.stderr = proc.returncode, out_f.read(), err_f.read()
    out_f.close(), err_f.close()
    run.left = left
    return run
