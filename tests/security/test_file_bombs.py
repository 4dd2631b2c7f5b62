"""YAML alias bombs in space and design files are refused quickly, in little memory.

A few hundred bytes of aliases (nine levels of ten) stand for a billion values: yaml.safe_load
shares them, but anything that prints the value (a name, a description, an error message)
expands it. Each command runs in a subprocess under an address-space limit of what the same
command needs on a harmless file plus 500 MB, and a timeout of that command's time plus 5 s:
it must end by itself with exit 2 and one line naming the file.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXTRA_MEMORY = 500 * 2**20
EXTRA_TIME = 5.0

# Runs the command and writes its peak address space and wall time to $PEAK_FILE.
WRAPPER = """
import os, sys, time
start = time.time()
from nas_convnext.cli import main
code = main(sys.argv[1:])
with open('/proc/self/status') as fh:
    peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith('VmPeak'))
with open(os.environ['PEAK_FILE'], 'w') as fh:
    fh.write(f'{peak} {time.time() - start}')
sys.exit(code)
"""


def bomb(levels: int = 9, fanout: int = 10) -> str:
    """A flow mapping of anchors a0..a{levels-1}: a0 is `fanout` strings, each next one
    `fanout` aliases of the one before, so the last stands for fanout**levels strings."""
    parts = [f"x0: &a0 [{', '.join(['lol'] * fanout)}]"]
    parts += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return "{" + ", ".join(parts) + "}"


def space_text(where: str, levels: int = 9) -> str:
    """small.yaml with the bomb as the value of `where` (a dimension, name or description)."""
    small = yaml.safe_load((ROOT / "search_spaces" / "small.yaml").read_text())
    value = {"name": "bomb", "description": "x"}
    lines = [f"{k}: {bomb(levels) if k == where else v}" for k, v in value.items()]
    lines.append("dimensions:")
    for field, v in small["dimensions"].items():
        lines.append(f"  {field}: {bomb(levels) if field == where else json.dumps(v)}")
    return "\n".join(lines) + "\n"


def design_text(where: str, levels: int = 9) -> str:
    lines = {"base": "convnext_t", where: bomb(levels)}
    return "".join(f"{k}: {v}\n" for k, v in lines.items())


def _run(argv: list[str], tmp_path: Path, limit: int | None = None,
         timeout: float | None = None) -> tuple[subprocess.CompletedProcess, int, float]:
    peak_file = tmp_path / "peak"
    peak_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEAK_FILE": str(peak_file)}

    def cap() -> None:  # in the child only
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-c", WRAPPER, *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=cap)
    peak, wall = (peak_file.read_text().split() if peak_file.exists() else (0, 0.0))
    return proc, int(peak), float(wall)


def _refused_within_bounds(harmless: list[str], evil: list[str], path: Path, tmp_path: Path):
    ok, peak, wall = _run(harmless, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert peak > 0
    try:
        proc, _, _ = _run(evil, tmp_path, limit=peak + EXTRA_MEMORY,
                          timeout=wall + EXTRA_TIME + 2.0)  # + the interpreter's start
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(evil)} ran more than {EXTRA_TIME} s longer than on a "
                    "harmless file")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and str(path) in lines[0], proc.stderr[-2000:]
    assert "alias" in lines[0] and len(lines[0]) < 400, lines[0]
    assert len(proc.stdout) < 10_000  # nothing expanded on stdout either


@pytest.mark.parametrize("where", ["stem", "depths", "kernel", "description", "name"])
def test_space_bomb_is_refused_fast_in_little_memory(tmp_path, where):
    path = tmp_path / "bomb.yaml"
    path.write_text(space_text(where))
    assert len(path.read_bytes()) < 2000
    harmless = tmp_path / "harmless.yaml"
    harmless.write_text((ROOT / "search_spaces" / "small.yaml").read_text())
    _refused_within_bounds(["space", str(harmless)], ["space", str(path)], path, tmp_path)


@pytest.mark.parametrize("where", ["kernel", "base", "stem", "notafield"])
def test_design_bomb_is_refused_fast_in_little_memory(tmp_path, where):
    path = tmp_path / "bomb.yaml"
    path.write_text(design_text(where))
    harmless = tmp_path / "harmless.json"
    harmless.write_text(json.dumps({"base": "convnext_t", "kernel": 5}))
    _refused_within_bounds(["flops", str(harmless)], ["flops", str(path)], path, tmp_path)


def test_search_refuses_a_bomb_before_anything_starts(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(space_text("kernel"))
    results = tmp_path / "results"
    harmless = ["search", "--space", "small", "--budget", "0.001G", "--results-dir",
                str(results)]  # refused for its budget, after the space is read
    ok, peak, wall = _run(harmless, tmp_path)
    assert ok.returncode == 2 and "budget" in ok.stderr, ok.stderr
    evil = ["search", "--space", str(path), "--budget", "4.5G", "--results-dir", str(results)]
    proc, _, _ = _run(evil, tmp_path, limit=peak + EXTRA_MEMORY,
                      timeout=wall + EXTRA_TIME + 2.0)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and str(path) in lines[0], proc.stderr
    assert not results.exists()


def test_the_bomb_is_real(tmp_path):
    # Without the loader's bound, the loaded value is a billion strings once expanded: the
    # tests above matter. Counted on the shared structure, without expanding it.
    data = yaml.safe_load(space_text("stem"))
    value = data["dimensions"]["stem"]["x8"]
    size = 1
    while isinstance(value, list):
        size *= len(value)
        value = value[0]
    assert size == 10**9
