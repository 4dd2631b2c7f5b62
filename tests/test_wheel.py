"""The package installed the ordinary way (a wheel, no `-e`) works from any folder.

A wheel is built from the repository and installed with `--no-deps` into a fresh virtual
environment that reuses the project environment's installed dependencies (a `.pth` line naming
its site-packages: a venv made with `--system-site-packages` sees the base interpreter's
packages, not the project venv's). The editable install of the project is not visible there
(its finder is a `.pth` hook of the project venv, which Python does not run for a folder named
by a `.pth` line), so `nas_convnext` comes only from the wheel; the tests check that too.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools builds in the source tree, and a build/ folder left there
    # by an earlier build could carry modules that no longer exist into the wheel.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "results", "__pycache__", ".*cache"))
    dist = tmp / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", str(dist), str(source)], cwd=tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(dist.glob("nas_convnext-*.whl"))
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr[-3000:]
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                         "['purelib'])"], cwd=tmp).stdout.strip())
    (site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = tmp / "elsewhere"  # outside the repository: no source tree to fall back on
    elsewhere.mkdir()
    return {"wheel": wheel, "python": python, "bin": venv / "bin", "site": site,
            "cwd": elsewhere}


def test_the_wheel_carries_the_shipped_yaml_files(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for shipped in (ROOT / "search_spaces").glob("*.yaml"):
        assert f"nas_convnext/search_spaces/{shipped.name}" in names
    assert "nas_convnext/training/proxies.yaml" in names
    packages = {str(p.parent.relative_to(ROOT)).replace(os.sep, "/")
                for p in (ROOT / "nas_convnext").rglob("__init__.py")}
    assert packages <= {n.rsplit("/", 1)[0] for n in names}  # every folder of the package


def test_the_package_comes_from_the_wheel(installed):
    probe = _run([str(installed["python"]), "-I", "-c",
                  "import nas_convnext, nas_convnext.design.roadmap as r; "
                  "print(nas_convnext.__file__); print(r.spaces_dir())"], cwd=installed["cwd"])
    assert probe.returncode == 0, probe.stderr
    module, spaces = probe.stdout.split()
    assert Path(module).is_relative_to(installed["site"]), module
    assert Path(spaces).is_relative_to(installed["site"]), spaces
    assert not Path(module).is_relative_to(ROOT)


def test_presets_and_the_roadmap_run_from_the_wheel(installed):
    cli = str(installed["bin"] / "nas-convnext")
    presets = _run([cli, "presets"], cwd=installed["cwd"])
    assert presets.returncode == 0, presets.stderr
    assert "roadmap/16-separate-downsampling" in presets.stdout and "convnext_t" in presets.stdout
    roadmap = _run([cli, "roadmap", "--flops-only"], cwd=installed["cwd"])
    assert roadmap.returncode == 0, roadmap.stderr
    assert roadmap.stdout.count("\n") > 17 and "patchify" in roadmap.stdout


def test_a_search_runs_from_the_wheel(installed):
    cli = str(installed["bin"] / "nas-convnext")
    results = installed["cwd"] / "results"
    run = _run([cli, "search", "--space", "small", "--proxy", "cpu-tiny", "--budget",
                "4.5GFLOPs", "--trials", "1", "--concurrency", "2", "--name", "wheel",
                "--results-dir", str(results)], cwd=installed["cwd"], timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert (results / "wheel" / "trials.parquet").is_file()
    assert (results / "wheel" / "report.md").is_file()
    assert "trials: 3 completed" in run.stdout or "3 completed" in run.stdout, run.stdout
