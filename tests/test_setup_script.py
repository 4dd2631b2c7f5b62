"""scripts/_setup.sh, the README commands' set-up: it makes and fills .venv, starts an unfinished
set-up of its own again from nothing, and never deletes a .venv it did not make.

Run on a copy of the script with a fake `python3` on PATH, so nothing is installed: the fake
makes a `.venv/bin/python` that records its arguments (and fails pip when told to)."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "_setup.sh"

FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls.log"
[ -f "$(dirname "$0")/../../pip-fails" ] && [ "$1" = "-m" ] && [ "$2" = "pip" ] && exit 1
exit 0
"""

FAKE_PYTHON3 = """#!/bin/sh
# python3 -m venv DIR: a venv whose python only records how it was called
[ "$1" = "-m" ] && [ "$2" = "venv" ] || exit 3
mkdir -p "$3/bin"
cp "$(dirname "$0")/fake-python" "$3/bin/python"
chmod +x "$3/bin/python"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "_setup.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    _executable(fake / "python3", FAKE_PYTHON3)
    _executable(fake / "fake-python", FAKE_PYTHON)
    return tmp_path


def _run(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{root / 'fakebin'}:/usr/bin:/bin"}
    return subprocess.run(["bash", "-c", f"source {root / 'scripts' / '_setup.sh'}"],
                          env=env, capture_output=True, text=True, timeout=60)


def _want(root: Path) -> str:
    return hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()


def _calls(root: Path) -> list[str]:
    log = root / ".venv" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_fresh_clone_gets_a_filled_venv_and_its_stamp(root):
    r = _run(root)
    assert r.returncode == 0, r.stderr
    calls = _calls(root)
    assert calls == ["-m pip install -q --upgrade pip", f"-m pip install -q -e {root}[dev]"]
    assert (root / ".venv" / ".nas-convnext-installed").read_text().strip() == _want(root)
    assert not (root / ".venv" / ".nas-convnext-setting-up").exists()
    # A second run with the stamp current installs nothing.
    assert _run(root).returncode == 0
    assert _calls(root) == calls


def test_a_venv_the_script_did_not_make_is_installed_into_and_kept(root):
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    _executable(venv / "bin" / "python", FAKE_PYTHON)
    (venv / "users-own-file").write_text("keep me")
    r = _run(root)
    assert r.returncode == 0, r.stderr
    assert (venv / "users-own-file").read_text() == "keep me"
    assert len(_calls(root)) == 2
    assert (venv / ".nas-convnext-installed").read_text().strip() == _want(root)


def test_a_users_venv_is_kept_even_when_its_install_fails(root):
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    _executable(venv / "bin" / "python", FAKE_PYTHON)
    (venv / "users-own-file").write_text("keep me")
    (root / "pip-fails").touch()
    assert _run(root).returncode != 0
    (root / "pip-fails").unlink()
    assert _run(root).returncode == 0
    assert (venv / "users-own-file").read_text() == "keep me"


def test_an_unfinished_setup_of_its_own_is_started_again_from_nothing(root):
    (root / "pip-fails").touch()
    r = _run(root)
    assert r.returncode != 0
    venv = root / ".venv"
    assert (venv / ".nas-convnext-setting-up").exists()
    assert not (venv / ".nas-convnext-installed").exists()
    (venv / "half-installed").touch()
    (root / "pip-fails").unlink()
    r = _run(root)
    assert r.returncode == 0, r.stderr
    assert not (venv / "half-installed").exists()
    assert not (venv / ".nas-convnext-setting-up").exists()
    assert len(_calls(root)) == 2   # the new venv's calls only


def test_a_changed_pyproject_reinstalls_into_the_same_venv(root):
    assert _run(root).returncode == 0
    (root / ".venv" / "kept").touch()
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert _run(root).returncode == 0
    assert (root / ".venv" / "kept").exists()
    assert len(_calls(root)) == 4
    assert (root / ".venv" / ".nas-convnext-installed").read_text().strip() == _want(root)
