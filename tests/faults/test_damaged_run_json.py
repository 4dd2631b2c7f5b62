"""`--resume` of a run whose run.json or study.db is damaged: one line, exit 2, folder unchanged.

The damage is generated, not listed by hand: for every setting in run.json's `config` (read
from SearchConfig itself, so a setting added later is swept too) the field is dropped, set to
null, given a value of every other JSON type, and a string where a number belongs; the config
itself is null, empty, a list or text, or carries an unknown key; and the other fields a resume
reads (`kind`, `resumed`, `started`) get wrong values. A hypothesis sweep then puts random JSON
values into random fields. Each damage is either refused (one line naming run.json and the
field, exit 2, nothing in the folder changed, Ray never started) or, where the damaged value is
still a valid setting (null for an optional one), accepted and arrives in the configuration as
it is in the file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import tempfile
import typing
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nas_convnext.search.raytune as raytune_module
from nas_convnext.cli import main
from nas_convnext.search import SearchConfig
from nas_convnext.search.config import ADDED_LATER

SWEEP = settings(max_examples=int(os.environ.get("FAULT_SWEEP_EXAMPLES", "150")), deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])
HINTS = typing.get_type_hints(SearchConfig)
FIELDS = [f.name for f in dataclasses.fields(SearchConfig)]
MISSING = object()  # "drop the field"


class _Reached(Exception):
    """Ray's start was reached: everything in run.json was accepted."""


def _good_run_json(results: str) -> dict:
    cfg = SearchConfig(budget=4.5e9, space="small", proxy="cpu-tiny", trials=1, name="run",
                       results_dir=results)
    return {"kind": "search", "command": ["nas-convnext", "search"], "config": cfg.to_dict(),
            "resumed": 0, "started": "2026-01-01T00:00:00"}


def _allows_none(field: str) -> bool:
    # A null budget belongs to a roadmap replay only; these run.json files are a search's.
    return field != "budget" and type(None) in typing.get_args(HINTS[field])


def _wrong_values(field: str) -> list:
    """Values of the wrong type for a field, and a number written as a string."""
    hint = HINTS[field]
    kinds = set(typing.get_args(hint) or (hint,))
    out: list = [[1], {"a": 1}]
    if str not in kinds:
        out += ["x", "4"]            # text, and a string where a number belongs
    if not kinds & {int, float}:
        out.append(7)
    if bool not in kinds:
        out.append(True)
    if kinds & {int} and float not in kinds:
        out.append(2.5)
    return out


CASES = []
for _field in FIELDS:
    CASES.append((f"config.{_field}=missing", ("config", _field), MISSING, _field))
    CASES.append((f"config.{_field}=null", ("config", _field), None, _field))
    for _i, _v in enumerate(_wrong_values(_field)):
        CASES.append((f"config.{_field}={json.dumps(_v)}", ("config", _field), _v, _field))
CASES += [
    ("config=null", ("config",), None, "config"),
    ("config={}", ("config",), {}, "config"),
    ("config=[]", ("config",), [], "config"),
    ("config=text", ("config",), "4.5e9", "config"),
    ("config=number", ("config",), 3, "config"),
    ("config.extra-key", ("config", "colour"), "blue", "colour"),
    ("kind=other", ("kind",), "other", "kind"),
    ("resumed=text", ("resumed",), "1", "resumed"),
    ("resumed=negative", ("resumed",), -1, "resumed"),
    ("resumed=null", ("resumed",), None, "resumed"),
    ("started=number", ("started",), 5, "started"),
]


def _damage(data: dict, where: tuple, value) -> dict:
    data = json.loads(json.dumps(data))
    target = data
    for key in where[:-1]:
        target = target[key]
    if value is MISSING:
        del target[where[-1]]
    else:
        target[where[-1]] = value
    return data


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def stop_at_ray(monkeypatch):
    seen: list[SearchConfig] = []

    def reached(cfg):
        seen.append(cfg)
        raise _Reached

    monkeypatch.setattr(raytune_module, "init_ray", reached)
    return seen


def _resume(run_dir: Path, capsys) -> tuple[int | None, str]:
    try:
        code = main(["search", "--resume", str(run_dir)])
    except _Reached:
        code = None
    return code, capsys.readouterr().err


def _check(run_dir: Path, field: str, value, code, err: str, seen, before) -> None:
    if code is None:  # accepted: the value arrives as it is in the file
        assert field in FIELDS, f"run.json with damaged {field!r} was accepted"
        expected = ADDED_LATER[field] if value is MISSING else value
        assert getattr(seen[-1], field) == expected, (field, value, seen[-1])
        return
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1, err
    assert str(run_dir / "run.json") in lines[0], lines[0]
    assert field in lines[0], (field, lines[0])
    assert _snapshot(run_dir) == before  # nothing written, no lock left


@pytest.mark.parametrize("where,value,field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_run_json_field(tmp_path, capsys, stop_at_ray, where, value, field):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = _damage(_good_run_json(str(tmp_path)), where, value)
    (run_dir / "run.json").write_text(json.dumps(data))
    before = _snapshot(run_dir)
    code, err = _resume(run_dir, capsys)
    if value is None and field in FIELDS and _allows_none(field):
        assert code is None, err  # null is a valid value of an optional setting
    elif value is MISSING and where[0] == "config" and field in ADDED_LATER:
        assert code is None, err  # a run from before the setting existed: its default
    elif value is MISSING or where[0] != "config" or field not in FIELDS:
        assert code == 2, err
    _check(run_dir, field, value, code, err, stop_at_ray, before)


def test_the_sweep_covers_every_setting():
    swept = {c[3] for c in CASES}
    assert set(FIELDS) <= swept and len(FIELDS) >= 19
    # Every field gets at least a missing, a null and two wrong-type values.
    for field in FIELDS:
        assert sum(1 for c in CASES if c[3] == field) >= 4, field


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=5)


@SWEEP
@given(field=st.sampled_from(FIELDS), value=_json)
def test_random_values_in_run_json(capsys, stop_at_ray, field, value):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        data = _damage(_good_run_json(tmp), ("config", field), value)
        (run_dir / "run.json").write_text(json.dumps(data))
        before = _snapshot(run_dir)
        cwd = os.getcwd()
        os.chdir(tmp)  # relative paths among the values stay in the temporary folder
        try:
            code, err = _resume(run_dir, capsys)
        finally:
            os.chdir(cwd)
        _check(run_dir, field, value, code, err, stop_at_ray, before)


# ----- study.db -----
def _study_db(path: Path) -> None:
    study = optuna.create_study(study_name="search", storage=f"sqlite:///{path}",
                                directions=["maximize", "minimize"])
    for _ in range(3):
        t = study.ask()
        t.suggest_categorical("kernel", ["3", "7"])
        study.tell(t, [0.5, 1.0])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database " * 64)


def _truncated(path: Path) -> None:
    _study_db(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _another_study(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (text)")
    con.commit()
    con.close()


@pytest.mark.parametrize("damage,words", [
    (_garbage, "is damaged and cannot be read (file is not a database)"),
    (_truncated, "is damaged and cannot be read (database disk image is malformed)"),
    (_another_study, "holds no Optuna study named 'search'"),
])
def test_a_damaged_study_db_is_refused_before_ray_starts(tmp_path, capsys, stop_at_ray, damage,
                                                        words):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(_good_run_json(str(tmp_path))))
    damage(run_dir / "study.db")
    before = _snapshot(run_dir)
    code, err = _resume(run_dir, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"nas-convnext: error: {run_dir / 'study.db'} {words}"), lines[0]
    assert "restore it from a copy, or start a new run" in lines[0]
    assert stop_at_ray == [] and _snapshot(run_dir) == before


def test_a_whole_study_db_is_accepted(tmp_path, capsys, stop_at_ray):
    """The check refuses damage only: a good study goes on to Ray's start."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(_good_run_json(str(tmp_path))))
    _study_db(run_dir / "study.db")
    code, err = _resume(run_dir, capsys)
    assert code is None, err
    assert len(stop_at_ray) == 1 and stop_at_ray[0].space == "small"


def test_a_roadmap_replay_has_no_budget(tmp_path, capsys, stop_at_ray):
    """run.json of a roadmap replay holds a null budget: a resume accepts it as it is."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = _good_run_json(str(tmp_path))
    data["kind"], data["config"]["budget"], data["config"]["trials"] = "roadmap", None, 0
    (run_dir / "run.json").write_text(json.dumps(data))
    code, err = _resume(run_dir, capsys)
    assert code is None, err
    assert stop_at_ray[-1].budget is None and stop_at_ray[-1].trials == 0

