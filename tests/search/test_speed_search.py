"""Measured speed in the search: the second objective, a latency budget as a hard constraint
(designs over it measured, not trained, infeasible to Optuna), the table's speed columns.

The search runs for real (Ray, Optuna, the cpu-tiny proxy), but the speed of each full-size
design comes from the `speed` test fault's stand-in, 10 ms per GFLOP, so every design's
latency is known in advance and no full-size network is built.
"""
from __future__ import annotations

import json
import math

import optuna
import pandas as pd
import pytest

from nas_convnext import complexity
from nas_convnext.cli import main
from nas_convnext.design.arch import Arch, from_fields, presets
from nas_convnext.results import RUN_JSON, TABLE, read_table, rows_to_frame
from nas_convnext.search import SearchConfig, run_search
from nas_convnext.search.config import config_from_run_json
from nas_convnext.search.objective import Objective

MS_PER_GFLOP = 10.0
SMALL = dict(space="small", proxy="cpu-tiny", budget=4.5e9, concurrency=2)


def expected_ms(row) -> float:
    return MS_PER_GFLOP * complexity(Arch.from_row(row)).flops / 1e9


@pytest.fixture(scope="module")
def latency_run(ray_session, tmp_path_factory):
    """Objective latency under a 25 ms budget: the small space's 12-block designs (about
    16-17 ms) train; its 24-block ones (30-33 ms) and both references (41 and 45 ms) do not."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NAS_CONVNEXT_FAULT", f"speed:all:{MS_PER_GFLOP:g}")
    try:
        cfg = SearchConfig(**SMALL, trials=6, sampler="random", seed=3, objective="latency",
                           latency_budget_ms=25.0, results_dir=str(tmp_path_factory.mktemp("r")),
                           name="lat")
        return run_search(cfg)
    finally:
        mp.undo()


def test_designs_over_the_latency_budget_are_measured_but_not_trained(latency_run):
    df = latency_run.table
    assert len(df) == 8
    for row in df.to_dict("records"):
        lat = expected_ms(row)
        assert row["latency_ms"] == pytest.approx(lat)
        assert row["speed_device"].startswith("stand-in: cpu")
        if lat > 25.0:
            assert row["status"] == "infeasible", row
            assert row["epochs"] == 0 and math.isnan(row["top1"])
            assert f"latency {lat:.3g} ms is over the budget 25 ms" in row["error"]
        else:
            assert row["status"] == "completed" and 0 <= row["top1"] <= 1, row
    # Both kinds happened among the searched designs, and both references are too slow.
    searched = df[df["reference"] == ""]
    assert {"infeasible", "completed"} <= set(searched["status"])
    assert (df[df["reference"] != ""]["status"] == "infeasible").all()
    # The table on disk has the speed columns too.
    assert read_table(latency_run.run_dir)["latency_ms"].tolist() == df["latency_ms"].tolist()


def test_optuna_minimises_latency_and_counts_designs_over_the_budget_infeasible(latency_run):
    study = optuna.load_study(study_name="search",
                              storage=f"sqlite:///{latency_run.run_dir / 'study.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["top1", "latency_ms"]
    rows = {int(r["optuna_number"]): r for r in latency_run.table.to_dict("records")
            if r["reference"] == ""}
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    seen = set()
    for number, row in rows.items():
        t = trials[number]
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.values[1] == pytest.approx(row["latency_ms"])  # the second objective
        over = t.constraints["latency_over_budget"]
        assert over == pytest.approx(row["latency_ms"] - 25.0)
        infeasible = any(v > 0 for v in t.constraints.values())
        assert infeasible == (row["status"] == "infeasible")
        assert t.values[0] == (0.0 if infeasible else pytest.approx(row["top1"]))
        seen.add(infeasible)
    assert seen == {True, False}


def test_the_run_records_its_speed_settings_and_resumes_them(latency_run):
    meta = json.loads((latency_run.run_dir / RUN_JSON).read_text())
    assert meta["config"]["objective"] == "latency"
    assert meta["config"]["latency_budget_ms"] == 25.0
    cfg = config_from_run_json(latency_run.run_dir / RUN_JSON, meta["config"], {})
    assert cfg.speed_objective() == Objective("latency", 25.0, None, None, False)


def test_a_run_json_from_before_speed_resumes_with_flops(latency_run):
    meta = json.loads((latency_run.run_dir / RUN_JSON).read_text())["config"]
    old = {k: v for k, v in meta.items() if k not in (
        "objective", "latency_budget_ms", "throughput_min", "speed_batch", "measure_speed")}
    cfg = config_from_run_json(latency_run.run_dir / RUN_JSON, old, {})
    assert cfg.speed_objective() == Objective()
    assert not cfg.speed_objective().measures_speed


def test_a_table_from_before_speed_reads_with_nan_speed(latency_run, tmp_path):
    df = pd.read_parquet(latency_run.run_dir / TABLE)
    old = df.drop(columns=["latency_ms", "latency_ms_spread", "throughput",
                           "throughput_spread", "speed_device"])
    old.to_parquet(tmp_path / TABLE, index=False)
    back = read_table(tmp_path)
    assert back["latency_ms"].isna().all() and back["throughput"].isna().all()
    assert (back["speed_device"] == "").all()
    assert back["top1"].equals(df["top1"])
    # and a new table always has them, NaN where nothing was measured
    frame = rows_to_frame([{k: v for k, v in r.items() if k != "latency_ms"}
                           for r in df.to_dict("records")])
    assert frame["latency_ms"].isna().all() and frame["speed_device"].equals(df["speed_device"])


@pytest.mark.parametrize("words, value", [
    (dict(latency_budget="30ms"), 30.0), (dict(latency_budget="0.03s"), 30.0),
    (dict(latency_budget="500us"), 0.5), (dict(throughput_min="200/s"), 200.0)])
def test_limits_parse_with_their_units(words, value):
    o = Objective.parse("flops", **words)
    assert (o.latency_budget_ms or o.throughput_min) == pytest.approx(value)
    assert o.measures_speed


def test_the_speed_batch_follows_what_is_needed_and_where():
    assert Objective("latency").batch_for("cpu") is None          # latency only on a CPU
    assert Objective("throughput").batch_for("cpu") == 8
    assert Objective("flops", throughput_min=100.0).batch_for("cpu") == 8
    assert Objective("latency").batch_for("cuda") == 64
    assert Objective("latency", speed_batch=16).batch_for("cpu") == 16
    assert not Objective().measures_speed and Objective(measure=True).measures_speed


def test_refusal_and_constraints_name_the_broken_limit():
    o = Objective("throughput", latency_budget_ms=30.0, throughput_min=200.0)
    fast = {"latency_ms": 20.0, "throughput": 300.0, "speed_device": "cpu: X, 1 thread"}
    slow = {"latency_ms": 45.0, "throughput": 150.0, "speed_device": "cpu: X, 1 thread"}
    assert o.refusal(fast) == ""
    assert o.constraints(fast) == {"latency_over_budget": -10.0, "throughput_under_min": -100.0}
    why = o.refusal(slow)
    assert "latency 45 ms is over the budget 30 ms" in why
    assert "throughput 150 images/s is under the floor 200 images/s" in why
    assert "cpu: X, 1 thread" in why
    assert o.constraints(slow) == {"latency_over_budget": 15.0, "throughput_under_min": 50.0}
    assert o.second_value(slow) == 150.0 and o.directions() == ["maximize", "maximize"]
    assert math.isnan(Objective("latency").second_value({"flops": 1e9}))


@pytest.mark.parametrize("argv, needle", [
    (["--latency-budget", "fast"], "latency 'fast' is not allowed"),
    (["--latency-budget", "0ms"], "latency '0ms' is not allowed"),
    (["--throughput-min", "lots"], "throughput 'lots' is not allowed"),
    (["--objective", "time"], "invalid choice: 'time'"),
    (["--speed-batch", "-8"], "--speed-batch: '-8' must be positive"),
])
def test_bad_speed_options_exit_2_with_one_line(capsys, tmp_path, argv, needle):
    code = main(["search", "--budget", "4.5GFLOPs", "--results-dir", str(tmp_path), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # refused before any run folder


def test_a_limit_no_design_meets_exits_1_naming_the_fastest(ray_session, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setenv("NAS_CONVNEXT_FAULT", f"speed:all:{MS_PER_GFLOP:g}")
    code = main(["search", "--budget", "4.5GFLOPs", "--space", "small", "--proxy", "cpu-tiny",
                 "--trials", "1", "--latency-budget", "5ms", "--results-dir", str(tmp_path),
                 "--name", "tight"])
    err = capsys.readouterr().err
    df = read_table(tmp_path / "tight")
    assert (df["status"] == "infeasible").all() and len(df) == 3
    assert code == 1
    fastest = df["latency_ms"].min()
    assert f"every design broke the speed limit(s); the fastest design measured {fastest:.1f} ms" in err


def test_a_trial_measures_its_full_size_design_once_per_machine(tmp_path, monkeypatch):
    """The real path of a trial's measurement (no stand-in): a tiny full-size design at
    224x224 on the CPU, latency only (objective latency), cached."""
    import torch

    from nas_convnext.design.arch import from_fields, presets
    from nas_convnext.search.objective import measure_for_trial
    from nas_convnext.training import speed as sp

    if torch.cuda.is_available():
        pytest.skip("a worker with a GPU measures on it; this checks the CPU path")
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(tmp_path))
    tiny = from_fields({"depths": "1,1,1,1", "width": 8}, base=presets()["convnext_t"])
    row = measure_for_trial(tiny, Objective("latency"), threads=1)
    assert row["latency_ms"] > 0 and row["latency_ms_spread"] >= 0
    assert math.isnan(row["throughput"])                      # latency only on a CPU
    assert row["speed_device"] == sp.device_key("cpu", threads=1)
    assert len(list((tmp_path / "speed").glob("*.json"))) == 1
    again = measure_for_trial(tiny, Objective("latency"), threads=1)
    assert again == row                                       # read from the cache
    with_batch = measure_for_trial(tiny, Objective("throughput"), threads=1)
    assert with_batch["throughput"] > 0                       # batch 8 when throughput counts
    assert len(list((tmp_path / "speed").glob("*.json"))) == 2


def test_a_trial_told_by_number_gets_its_constraint_and_second_value():
    """A resumed run tells Optuna by trial number (its Trial object is gone): the constraint
    is set all the same, and a trial without a measured time cannot be placed (FAIL)."""
    from nas_convnext.search.searcher import tell_outcome

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    first, second = study.ask(), study.ask()
    objective = Objective("latency", latency_budget_ms=30.0)
    tell_outcome(study, first.number, {"status": "infeasible", "top1": math.nan, "flops": 4e9,
                                       "latency_ms": 40.0, "throughput": math.nan}, objective)
    tell_outcome(study, second.number, {"status": "completed", "top1": 0.5, "flops": 4e9,
                                        "latency_ms": math.nan, "throughput": math.nan},
                 objective)
    a, b = study.get_trials(deepcopy=False)
    assert a.constraints == {"latency_over_budget": 10.0} and a.values == [0.0, 40.0]
    assert b.state == optuna.trial.TrialState.FAIL and b.constraints == {}


def test_a_resumed_run_tells_a_trial_left_running_in_its_own_objective(tmp_path):
    """A trial whose row was written but whose Optuna trial stayed RUNNING (the run stopped
    between the two) is told from its row on resume: in the run's objective (its latency),
    with its speed constraint, not in GFLOPs."""
    from nas_convnext.search.resume import work_left
    from nas_convnext.search.searcher import open_study

    objective = Objective("latency", latency_budget_ms=30.0)
    study = open_study(tmp_path, optuna.samplers.RandomSampler(seed=0), objective)
    arch = from_fields({"depths": "2,2,4,2"}, base=presets()["convnext_t"])
    t = study.ask()
    t.set_user_attr("design", arch.to_row())
    row = {**arch.to_row(), "status": "completed", "top1": 0.4, "flops": 4e9,
           "reference": "", "seed": 0, "latency_ms": 22.0, "throughput": math.nan,
           "speed_device": "cpu: X, 1 thread"}
    pending, done, proposed = work_left(study, [row], [], 0, objective)
    told = study.get_trials(deepcopy=False)[0]
    assert pending == [] and proposed == 1
    assert told.state == optuna.trial.TrialState.COMPLETE
    assert told.values == [0.4, 22.0]                      # ms, not 4.0 GFLOPs
    assert told.constraints == {"latency_over_budget": -8.0}
