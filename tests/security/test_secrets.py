"""No environment secrets in what a run writes: run.json, the tables, Ray's experiment folder."""
from __future__ import annotations

import json
import re

from .conftest import SECRETS


def _files(run_dir):
    return sorted(p for p in run_dir.rglob("*") if p.is_file())


def test_secrets_appear_in_no_file_of_the_run(search_run):
    assert search_run.returncode == 0, search_run.stderr[-3000:]
    run_dir = search_run.run_dir
    for name in ("run.json", "trials.csv", "trials.parquet", "study.db"):
        assert (run_dir / name).is_file(), name
    params = list((run_dir / "ray").rglob("params.json"))
    assert params, "Ray's experiment folder has no params.json"  # the check below is not vacuous
    leaks = []
    for path in _files(run_dir):
        blob = path.read_bytes()
        for var, value in SECRETS.items():
            if value.encode() in blob:
                leaks.append(f"{path.relative_to(run_dir)}: {var}")
    assert not leaks, leaks
    # Nor in what the command printed.
    for value in SECRETS.values():
        assert value not in search_run.stdout and value not in search_run.stderr


def _keys(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{prefix}{k}"
            yield from _keys(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v, prefix)


def test_run_json_has_no_environment(search_run):
    info = json.loads((search_run.run_dir / "run.json").read_text())
    suspicious = [k for k in _keys(info)
                  if re.search(r"environ|(^|[._])env($|[._])", k.lower())]
    assert not suspicious, suspicious
    params = [json.loads(p.read_text()) for p in (search_run.run_dir / "ray").rglob("params.json")]
    for p in params:
        assert not [k for k in _keys(p) if re.search(r"environ|(^|[._])env($|[._])", k.lower())]
