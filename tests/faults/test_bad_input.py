"""Random bad input to the command line and to space files: it works, or exits 2 in one line.

Nothing is trained here: each command is stopped where its real work would begin (a stub for
`run_search`, Ray's start, training or the report), so only the checks of the input are swept.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nas_convnext.search as search_module
from nas_convnext import space as space_module
from nas_convnext.arch import FIELD_NAMES
from nas_convnext.cli import build_parser, main

SWEEP = settings(max_examples=int(os.environ.get("FAULT_SWEEP_EXAMPLES", "150")), deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


class _Reached(Exception):
    """The stub run_search was called: every argument passed validation."""


@pytest.fixture
def stub_search(monkeypatch):
    seen = []

    def fake(cfg, resume_dir=None, **kw):
        seen.append(cfg)
        raise _Reached

    monkeypatch.setattr(search_module, "run_search", fake)
    return seen


def _numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-10**30, 10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["", " ", "0", "-0", "1e309", "nan", "inf", "-1", "0x10", "1_000",
                         "4.5G", "4.5GFLOPs", "4.5 parsecs", "1e-300", "½", "٣", "30m", "1h",
                         "2h30m", "0s", "-5m", "tpe", "asha", "cpu-tiny", "../x", "a/b"]),
    )


def _values() -> st.SearchStrategy[str]:
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=20)
    return st.one_of(_numbers(), text)


def _one_line_error(code: int, err: str, value: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    shown = " ".join(value.split())
    try:  # a number may be named as parsed: "1.0" as "budget 1 FLOPs"
        number = f"{float(value):g}"
    except (ValueError, OverflowError):
        number = None
    assert repr(value) in err or shown in lines[0] or repr(shown) in lines[0] \
        or ascii(value) in lines[0] or (number is not None and number in lines[0]), \
        (value, lines[0])


SEARCH_OPTIONS = ["--budget", "--trials", "--sampler", "--scheduler", "--proxy", "--epochs",
                  "--concurrency", "--cpus-per-trial", "--gpus-per-trial", "--time-budget",
                  "--name", "--seed"]


@SWEEP
@given(option=st.sampled_from(SEARCH_OPTIONS), value=_values())
def test_search_options(stub_search, capsys, option, value):
    with tempfile.TemporaryDirectory() as results:
        argv = ["search", "--budget", "4.5G", "--space", "small", "--name", "ok",
                "--results-dir", results, f"{option}={value}"]
        try:
            code = main(argv)
        except _Reached:
            code = None
        err = capsys.readouterr().err
        assert os.listdir(results) == []  # never a partial results folder
    if code is not None:
        _one_line_error(code, err, value)


@SWEEP
@given(key=st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)), value=_values())
def test_flops_overrides(capsys, key, value):
    item = f"{key}={value}"
    code = main(["flops", "convnext_t", item, "--json"])
    out, err = capsys.readouterr()
    if code == 0:
        assert '"flops"' in out
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    shown = " ".join(item.split())
    low = lines[0].lower()  # choice fields are named as normalised (stripped, lower case)
    assert any(s.lower() in low for s in (repr(value), repr(key), repr(item), repr(value.strip()),
                                          shown, repr(" ".join(value.split())),
                                          f"{key.strip()}=")), (item, lines[0])  # 0 for -0


@SWEEP
@given(value=_values())
def test_space_budget(capsys, value):
    code = main(["space", "small", f"--budget={value}"])
    err = capsys.readouterr().err
    if code != 0:
        _one_line_error(code, err, value)


# ----- space files -----
SMALL = yaml.safe_load((Path(__file__).resolve().parents[2] / "search_spaces" /
                        "small.yaml").read_text())

_garbage = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)


@st.composite
def _space(draw):
    data = {"name": "fuzz", "dimensions": dict(SMALL["dimensions"])}
    dims = data["dimensions"]
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["garbage", "empty", "duplicate", "unknown-dim", "unknown-top",
                                    "huge", "drop", "top-garbage"]))
        field = draw(st.sampled_from(FIELD_NAMES))
        if how == "garbage":
            dims[field] = draw(_garbage)
        elif how == "empty":
            dims[field] = []
        elif how == "duplicate":
            v = dims.get(field, 3)
            dims[field] = [v, v] if not isinstance(v, list) else v + v[:1]
        elif how == "unknown-dim":
            dims[draw(st.text(min_size=1, max_size=8))] = draw(_garbage)
        elif how == "unknown-top":
            data[draw(st.text(min_size=1, max_size=8))] = draw(_garbage)
        elif how == "huge":
            dims[field] = draw(st.sampled_from([10**7, 10**30, 1e308, [10**6, 10**7],
                                                [[10**6] * 4], -1, 0]))
        elif how == "drop":
            dims.pop(field, None)
        else:
            data = draw(st.one_of(_garbage, st.just({"dimensions": draw(_garbage)})))
            break
    return data


@SWEEP
@given(data=_space())
def test_space_files(capsys, monkeypatch, data):
    monkeypatch.setattr(space_module, "EXHAUSTIVE_LIMIT", 64)
    monkeypatch.setattr(space_module, "SAMPLE_ESTIMATE", 20)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        code = main(["space", str(path)])
    out, err = capsys.readouterr()
    if code == 0:
        assert "size:" in out
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] or "fuzz" in lines[0], lines[0]


# ----- every option of every command -----
def _value_options() -> list[tuple[str, str]]:
    """(command, option) for every option that takes a value, read from the parser itself, so
    an option added later is swept without editing this test."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for command, sp in sub.choices.items():
        for action in sp._actions:
            if action.option_strings and action.nargs != 0:
                out.append((command, action.option_strings[-1]))
    return out


VALUE_OPTIONS = _value_options()


def _base_argv(command: str, results: str, run: str) -> list[str]:
    return {"flops": ["flops", "convnext_t"],
            "space": ["space", "small"],
            "train": ["train", "convnext_t", "--proxy", "cpu-tiny"],
            "roadmap": ["roadmap", "--train", "--proxy", "cpu-tiny", "--results-dir", results],
            "search": ["search", "--budget", "4.5G", "--space", "small", "--proxy", "cpu-tiny",
                       "--name", "ok", "--results-dir", results],
            "analyze": ["analyze", run]}[command]


@pytest.fixture
def stop_before_work(monkeypatch):
    """Stop each command where its real work would begin, after every check of its input:
    Ray's start (search, roadmap --train), training (train), the report (analyze)."""
    import nas_convnext.report as report_module
    import nas_convnext.train as train_module

    def reached(*args, **kwargs):
        raise _Reached

    monkeypatch.setattr(search_module, "_init_ray", reached)
    monkeypatch.setattr(train_module, "train_trial", reached)
    monkeypatch.setattr(report_module, "write_report", reached)


def test_every_value_option_is_swept():
    assert {c for c, _ in VALUE_OPTIONS} == {"flops", "space", "train", "roadmap", "search",
                                             "analyze"}
    assert len(VALUE_OPTIONS) >= 40 and ("search", "--address") in VALUE_OPTIONS


@SWEEP
@given(target=st.sampled_from(VALUE_OPTIONS), value=_values())
def test_every_option_of_every_command(stop_before_work, capsys, monkeypatch, target, value):
    command, option = target
    with tempfile.TemporaryDirectory() as cwd:
        monkeypatch.chdir(cwd)  # relative paths among the values land here
        os.mkdir("results")
        os.mkdir("run")
        argv = [*_base_argv(command, os.path.abspath("results"), os.path.abspath("run")),
                f"{option}={value}"]
        try:
            code = main(argv)
        except _Reached:
            code = None
        err = capsys.readouterr().err
        # Never a partial results folder, nor any file the command was not asked for.
        assert os.listdir("results") == [] and os.listdir("run") == []
        assert sorted(os.listdir(".")) == ["results", "run"], os.listdir(".")
        monkeypatch.chdir(os.path.dirname(cwd))
    if code is not None and code != 0:
        _one_line_error(code, err, value)
