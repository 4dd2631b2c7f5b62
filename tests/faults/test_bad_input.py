"""Random bad input to the command line and to space files: it works, or exits 2 in one line.

Nothing is trained here: each command is stopped where its real work would begin (a stub for
`run_search`, Ray's start, training or the report), so only the checks of the input are swept.
A value that is accepted must arrive as given: the stub records what reached it (the
SearchConfig, the proxy, the seed, ...) and the test compares it with the value, parsed by the
test's own reading of the documented forms. Generated bad space and design files (aliases,
nesting, wrong types, duplicate keys, bytes, huge numbers, special files) are swept in
test_bad_files.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import nas_convnext.search.raytune as raytune_module
import nas_convnext.search.run as search_module
from nas_convnext.cli import build_parser, main
from nas_convnext.design import space as space_module
from nas_convnext.design.arch import FIELD_NAMES

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


# ----- what an accepted value must arrive as: the test's own reading of the documented forms
def _budget(text: str) -> float:
    """'4.5GFLOPs', '4.5 G', '4500MFLOPs', '4.5e9': a decimal number, a unit, FLOPs."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*"
                     r"(?:[fF][lL][oO][pP][sS]?|[fF])?\s*", text)
    assert m, f"accepted budget {text!r} is none of the documented forms"
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
    return float(m.group(1)) * scale


def _duration(text: str) -> float | None:
    """'30m', '90s', '1.5h', '2h30m' or plain seconds; an empty value sets no limit."""
    s = text.strip().lower()
    if not s:
        return None
    if re.fullmatch(r"[0-9]*\.?[0-9]+", s):
        return float(s)
    parts = re.findall(r"([0-9]*\.?[0-9]+)\s*([hms])", s)
    assert parts, f"accepted duration {text!r} is none of the documented forms"
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _text(text: str) -> str:
    return text


_DECIMAL = r"((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"


def _latency_ms(text: str) -> float:
    """'30ms', '0.03s', '500us' or a bare number of milliseconds."""
    m = re.fullmatch(rf"\s*{_DECIMAL}\s*(ms|s|us|µs)?\s*", text)
    assert m, f"accepted latency {text!r} is none of the documented forms"
    return float(m.group(1)) * {None: 1, "ms": 1, "s": 1e3, "us": 1e-3, "µs": 1e-3}[m.group(2)]


def _rate(text: str) -> float:
    """'200', '200/s', '200img/s' or '200images/s': images per second."""
    m = re.fullmatch(rf"\s*{_DECIMAL}\s*(/s|img/s|images/s)?\s*", text)
    assert m, f"accepted throughput {text!r} is none of the documented forms"
    return float(m.group(1))


def _batch(text: str) -> int | None:
    """A throughput batch, or none (latency only)."""
    return None if text.strip().lower() == "none" else int(text)


SEARCH_FIELDS = {  # option: (SearchConfig field, what the accepted value must arrive as)
    "--budget": ("budget", _budget), "--trials": ("trials", int),
    "--sampler": ("sampler", _text), "--scheduler": ("scheduler", _text),
    "--proxy": ("proxy", _text), "--epochs": ("epochs", int),
    "--concurrency": ("concurrency", int), "--cpus-per-trial": ("cpus_per_trial", float),
    "--gpus-per-trial": ("gpus_per_trial", float), "--time-budget": ("time_budget_s", _duration),
    "--name": ("name", _text), "--seed": ("seed", int), "--dataset": ("dataset", _text),
    "--data-dir": ("data_dir", _text), "--address": ("address", _text),
    "--storage-path": ("storage_path", _text), "--results-dir": ("results_dir", _text),
    "--space": ("space", _text), "--replay": ("replay", _text),
    "--objective": ("objective", _text), "--latency-budget": ("latency_budget_ms", _latency_ms),
    "--throughput-min": ("throughput_min", _rate), "--speed-batch": ("speed_batch", int),
}
SEARCH_OPTIONS = ["--budget", "--trials", "--sampler", "--scheduler", "--proxy", "--epochs",
                  "--concurrency", "--cpus-per-trial", "--gpus-per-trial", "--time-budget",
                  "--name", "--seed"]


@st.composite
def _search_values(draw) -> tuple[str, str]:
    option = draw(st.sampled_from(SEARCH_OPTIONS))
    return option, draw(st.one_of(_values(), _plausible(("search", option))))


@SWEEP
@given(case=_search_values())
def test_search_options(stub_search, capsys, case):
    option, value = case
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
        return
    field, expected = SEARCH_FIELDS[option]
    assert getattr(stub_search[-1], field) == expected(value), (option, value)


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
    assert len(lines[0]) < 400, lines[0][:1000]  # values are named shortened, never whole


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


def _actions() -> dict[tuple[str, str], argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {(c, a.option_strings[-1]): a for c, sp in sub.choices.items()
            for a in sp._actions if a.option_strings and a.nargs != 0}


ACTIONS = _actions()
_NAME = st.text("abcxyz0123456789._-", min_size=1, max_size=12).filter(
    lambda v: v[0].isalnum())


def _plausible(target: tuple[str, str]) -> st.SearchStrategy[str]:
    """Values the option may well accept, so that the check on arrival is exercised often."""
    from nas_convnext import cli as cli_module

    action = ACTIONS[target]
    kind = getattr(action.type, "__name__", "")
    if action.choices:
        return st.sampled_from(sorted(action.choices))
    if action.type in (cli_module._positive_int, cli_module._nonneg_int, cli_module._seed):
        return st.integers(0, 10**6).map(str) | st.integers(1, 99).map(lambda n: f" {n} ")
    if "float" in kind:
        return st.floats(0.001, 64).map(repr) | st.integers(1, 8).map(str)
    if target[1] == "--budget":
        return st.sampled_from(["4.5G", "4.5 GFLOPs", "4500MFLOPs", "4.5e9", "1t", " 9g "])
    if target[1] == "--time-budget":
        return st.sampled_from(["30m", "90s", "1.5h", "2h30m", "45", "1h 5m"])
    if target[1] in ("--proxy",):
        return st.sampled_from(["cpu-tiny", "cpu", "gpu"])
    if target[1] == "--latency-budget":
        return st.sampled_from(["30ms", "0.03s", "500us", "45", " 2.5 ms "])
    if target[1] == "--throughput-min":
        return st.sampled_from(["200/s", "200", "12.5img/s", "3images/s"])
    if target[1] == "--batch":
        return st.sampled_from(["8", "64", "none", "None", " 4 "])
    return _NAME


@st.composite
def _option_values(draw) -> tuple[tuple[str, str], str]:
    target = draw(st.sampled_from(VALUE_OPTIONS))
    return target, draw(st.one_of(_values(), _plausible(target)))


def _base_argv(command: str, results: str, run: str) -> list[str]:
    return {"flops": ["flops", "convnext_t", "--json"],
            "space": ["space", "small", "--json"],
            "train": ["train", "convnext_t", "--proxy", "cpu-tiny", "--dataset", "synthetic"],
            "roadmap": ["roadmap", "--train", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--results-dir", results],
            "calibrate": ["calibrate", "--proxy", "cpu-tiny", "--dataset", "synthetic",
                          "--results-dir", results],
            "search": ["search", "--budget", "4.5G", "--space", "small", "--proxy", "cpu-tiny", "--dataset", "synthetic",
                       "--name", "ok", "--results-dir", results],
            "ablate": ["ablate", "convnext_t", "depths=2,2,6,2", "--space", "small", "--proxy",
                       "cpu-tiny", "--dataset", "synthetic", "--results-dir", results],
            "speed": ["speed", "convnext_t", "--json"],
            "analyze": ["analyze", run]}[command]


@pytest.fixture
def stop_before_work(monkeypatch):
    """Stop each command where its real work would begin, after every check of its input:
    Ray's start (search, roadmap --train), training (train), the report (analyze), the
    measurement (speed); and
    record what reached there, to compare with the value given."""
    import nas_convnext.report.run_report as report_module
    import nas_convnext.training.speed_table as speed_table_module
    import nas_convnext.training.trial as train_module
    from nas_convnext.design.space import DesignSpace
    from nas_convnext.training.trial import DataSource

    seen: dict[str, object] = {}

    def reached(*args, **kwargs):
        seen["call"] = (args, kwargs)
        raise _Reached

    load_data = train_module.load_proxy_data

    def loading(dataset, data_dir, proxy):  # the CLI resolves the data once (a DataSource)
        seen["data"] = ((dataset.dataset, dataset.path) if isinstance(dataset, DataSource)
                        else (dataset, data_dir))
        return load_data(dataset, data_dir, proxy)

    describe = DesignSpace.describe

    def describing(self, budget=None, seed=0, resolution=224):
        seen["describe"] = {"budget": budget, "seed": seed}
        return describe(self, budget, seed, resolution)

    monkeypatch.setattr(raytune_module, "init_ray", reached)
    monkeypatch.setattr(train_module, "train_trial", reached)
    monkeypatch.setattr(train_module, "load_proxy_data", loading)
    monkeypatch.setattr(report_module, "write_report", reached)
    monkeypatch.setattr(speed_table_module, "cached_speed", reached)
    monkeypatch.setattr(DesignSpace, "describe", describing)
    return seen


def _config(seen):
    return seen["call"][0][0]  # init_ray(cfg)


def _train(seen, name):
    args, kwargs = seen["call"]  # train_trial(arch, proxy, data, seed, report=, threads=)
    return {"proxy": args[1], "seed": args[3], "threads": kwargs.get("threads")}[name]


def _measured(seen, name):
    return seen["call"][1][name]  # cached_speed(arch, batch=, resolution=, device=, ...)


def _report(seen, name):
    return seen["call"][1][name]  # write_report(run_dir, formats=, out_dir=, seed=)


def _arrivals() -> dict[tuple[str, str], tuple]:
    """(command, option): (what reached the stub or the output, what it must equal)."""
    out: dict[tuple[str, str], tuple] = {}
    commands = ("search", "roadmap", "calibrate", "ablate")
    options = {c: {o for c_, o in VALUE_OPTIONS if c_ == c} for c in commands}
    for command in commands:
        for option, (field, expected) in SEARCH_FIELDS.items():
            if option in options[command]:
                out[(command, option)] = (
                    lambda seen, printed, f=field: getattr(_config(seen), f), expected)
    out.update({
        ("flops", "--resolution"): (lambda seen, o: o["resolution"], int),
        ("flops", "--num-classes"): (lambda seen, o: o["num_classes"], int),
        ("space", "--budget"): (lambda seen, o: o["budget"], _budget),
        ("space", "--seed"): (lambda seen, o: seen["describe"]["seed"], int),
        ("train", "--proxy"): (lambda seen, o: _train(seen, "proxy").name, _text),
        ("train", "--epochs"): (lambda seen, o: _train(seen, "proxy").epochs, int),
        ("train", "--seed"): (lambda seen, o: _train(seen, "seed"), int),
        ("train", "--threads"): (lambda seen, o: _train(seen, "threads"), int),
        ("train", "--dataset"): (lambda seen, o: seen["data"][0], _text),
        # synthetic data is generated: no data folder reaches its loader (a note says so)
        ("train", "--data-dir"): (lambda seen, o: seen["data"][1] or None, lambda v: None),
        ("speed", "--batch"): (lambda seen, o: _measured(seen, "batch"), _batch),
        ("speed", "--threads"): (lambda seen, o: _measured(seen, "threads"), int),
        ("speed", "--resolution"): (lambda seen, o: _measured(seen, "resolution"), int),
        ("speed", "--device"): (lambda seen, o: _measured(seen, "device"), _text),
        ("speed", "--seconds"): (lambda seen, o: _measured(seen, "budget_s"), float),
        ("analyze", "--format"): (lambda seen, o: _report(seen, "formats"), lambda v: (v,)),
        ("analyze", "--out"): (lambda seen, o: _report(seen, "out_dir"), _text),
        ("analyze", "--seed"): (lambda seen, o: _report(seen, "seed"), int),
    })
    return out


ARRIVALS = _arrivals()
# Options whose accepted value does not reach the stub the sweep stops at, and why.
NOT_AT_THE_STUB = {
    ("train", "--out"): "used after training, which the sweep stops before",
    ("search", "--resume"): "needs a real run folder; tests/faults/test_interrupted_search.py",
    ("calibrate", "--resume"): "needs a real run folder; tests/search/test_calibrate_cli.py",
    ("calibrate", "--seeds"): "not a setting of the search (run.json's seeds); "
                              "tests/search/test_fixed_trials.py and test_calibrate_cli.py",
    ("ablate", "--resume"): "needs a real run folder; tests/search/test_ablation_run.py",
    ("ablate", "--seeds"): "not a setting of the search (run.json's ablation.seeds); "
                           "tests/search/test_ablate_input.py and test_ablation_run.py",
    ("search", "--calibration"): "must name a calibration run; tests/report/test_fidelity.py",
    ("analyze", "--calibration"): "must name a calibration run; tests/report/test_fidelity.py",
}


def test_every_value_option_is_checked_on_arrival():
    # An option added later must say what its accepted value arrives as.
    assert set(VALUE_OPTIONS) == set(ARRIVALS) | set(NOT_AT_THE_STUB), \
        set(VALUE_OPTIONS) ^ (set(ARRIVALS) | set(NOT_AT_THE_STUB))


def test_every_value_option_is_swept():
    assert {c for c, _ in VALUE_OPTIONS} == {"flops", "space", "train", "roadmap", "search",
                                             "analyze", "calibrate", "ablate", "speed"}
    assert len(VALUE_OPTIONS) >= 40 and ("search", "--address") in VALUE_OPTIONS


@SWEEP
@given(case=_option_values())
@example(case=(("roadmap", "--name"), ""))  # was replaced by a generated name
def test_every_option_of_every_command(stop_before_work, capsys, monkeypatch, case):
    target, value = case
    command, option = target
    with tempfile.TemporaryDirectory() as cwd:
        monkeypatch.chdir(cwd)  # relative paths among the values land here
        os.mkdir("results")
        os.mkdir("run")
        argv = [*_base_argv(command, os.path.abspath("results"), os.path.abspath("run")),
                f"{option}={value}"]
        stop_before_work.clear()
        try:
            code = main(argv)
        except _Reached:
            code = None
        out, err = capsys.readouterr()
        # Never a partial results folder, nor any file the command was not asked for.
        assert os.listdir("results") == [] and os.listdir("run") == []
        assert sorted(os.listdir(".")) == ["results", "run"], os.listdir(".")
        monkeypatch.chdir(os.path.dirname(cwd))
    if code is not None and code != 0:
        _one_line_error(code, err, value)
        return
    if target in NOT_AT_THE_STUB:
        return
    # Accepted: the value must arrive as given, not dropped, clamped or replaced by a default.
    got, expected = ARRIVALS[target]
    printed = json.loads(out) if command in ("flops", "space") else None
    want = expected(value)
    have = got(stop_before_work, printed)
    assert have == want or (isinstance(want, float) and math.isclose(have, want)), \
        (command, option, value, have, want)
