"""The search: budget as a hard constraint, references, the table, Optuna, faults, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from nas_convnext import complexity
from nas_convnext.design.arch import FIELD_NAMES, Arch
from nas_convnext.design.space import load_space
from nas_convnext.results import read_table
from nas_convnext.search import SearchConfig, run_search
from nas_convnext.search.outcome import TrialOutcome

ROOT = Path(__file__).resolve().parents[1]
SMALL_ARGS = dict(space="small", trials=4, proxy="cpu-tiny", budget=4.5e9, concurrency=2,
                  dataset="synthetic")


def _search(tmp_path, name, **kw):
    cfg = SearchConfig(**{**SMALL_ARGS, "results_dir": str(tmp_path), "name": name, **kw})
    return run_search(cfg)


@pytest.fixture(scope="module")
def small_run(ray_session, tmp_path_factory):
    return _search(tmp_path_factory.mktemp("runs"), "small")


def test_small_run_table(small_run):
    df = small_run.table
    assert len(df) == 6
    for col in [*FIELD_NAMES, "flops", "params", "fitted", "reference", "status", "epochs",
                "top1", "top5", "wall_s", "images_per_s", "node_id", "error"]:
        assert col in df.columns, col
    assert sorted(df["reference"]) == ["", "", "", "", "convnext_t", "resnet50"]
    assert set(df["status"]) <= {"completed", "stopped_early", "diverged", "error"}
    assert (df["status"] == "completed").all()
    assert df["top1"].between(0, 1).all() and (df["top5"] >= df["top1"]).all()
    assert (df["epochs"] == 1).all() and (df["node_id"].str.len() > 0).all()
    # The recorded complexity is the full-size design's, not the proxy's.
    for _, row in df.iterrows():
        arch = Arch.from_row(row.to_dict())
        assert complexity(arch).flops == row["flops"] <= 4.5e9
    searched = df[df["reference"] == ""]
    space = load_space("small")
    assert all(space.contains(Arch.from_row(r)) for r in searched.to_dict("records"))
    assert searched.apply(lambda r: Arch.from_row(r.to_dict()).key(), axis=1).is_unique
    csv = pd.read_csv(small_run.run_dir / "trials.csv")
    assert list(csv["trial_id"]) == list(df["trial_id"])
    assert read_table(small_run.run_dir)["top1"].tolist() == df["top1"].tolist()


def test_run_json_and_study(small_run):
    info = json.loads((small_run.run_dir / "run.json").read_text())
    for key in ("command", "config", "space", "budget_flops", "proxy", "seed", "versions",
                "machine", "started", "finished"):
        assert key in info, key
    assert info["config"]["space"] == "small" and info["proxy"]["name"] == "cpu-tiny"
    assert info["versions"]["torch"] and info["versions"]["optuna"]
    assert "environ" not in json.dumps(info).lower()
    study = optuna.load_study(study_name="search",
                              storage=f"sqlite:///{small_run.run_dir / 'study.db'}")
    assert len(study.directions) == 2
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
            and "invalid" not in t.user_attrs]
    assert len(done) >= 4
    for t in done:
        assert t.constraints["flops_over_budget"] <= 0


def test_budget_is_a_hard_constraint(ray_session, tmp_path):
    budget = 2.2e9  # about half of the small space fits; both references need narrowing
    out = _search(tmp_path, "tight", budget=budget, fit_width=False, trials=3)
    df = out.table
    assert (df["flops"] <= budget).all()
    refs = df[df["reference"] != ""].set_index("reference")
    assert refs.loc["convnext_t", "fitted"] and refs.loc["resnet50", "fitted"]
    assert refs.loc["convnext_t", "width"] < 96 and refs.loc["resnet50", "width"] < 64
    assert not df[df["reference"] == ""]["fitted"].any()  # --no-fit-width: never narrowed


def test_fit_width_narrows_designs_over_budget(ray_session, tmp_path):
    out = _search(tmp_path, "fit", budget=1.5e9, trials=3, sampler="random")
    df = out.table[out.table["reference"] == ""]
    assert (df["flops"] <= 1.5e9).all() and df["fitted"].any()
    assert (df[df["fitted"]]["width"] < 96).all()


def test_budget_below_the_space_is_refused_before_anything(tmp_path):
    cheapest = min(complexity(a).flops for a in load_space("small").enumerate())
    with pytest.raises(ValueError) as exc:
        _search(tmp_path, "nope", budget=1e6, fit_width=False)
    assert f"{cheapest / 1e9:.3f}" in str(exc.value)
    assert not (tmp_path / "nope").exists()


def test_grid_sampler_refuses_large_spaces(tmp_path):
    with pytest.raises(ValueError, match="grid needs a small space"):
        _search(tmp_path, "grid", space="convnext", sampler="grid")


def test_same_seed_proposes_same_designs(ray_session, tmp_path):
    a = _search(tmp_path, "a", concurrency=1, trials=2, sampler="tpe", seed=7).table
    b = _search(tmp_path, "b", concurrency=1, trials=2, sampler="tpe", seed=7).table
    assert len(a) == 4 and a["reference"].tolist().count("") == 2
    cols = [c for c in FIELD_NAMES]
    assert a[cols].astype(str).values.tolist() == b[cols].astype(str).values.tolist()
    assert a["top1"].tolist() == b["top1"].tolist()  # CPU training is deterministic too


def test_a_killed_trial_is_recorded_as_error(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_FAULT", "kill:2")
    df = _search(tmp_path, "killed", trials=2).table
    assert len(df) == 4 and df["trial_id"].is_unique
    assert df[df["order"] == 2]["status"].tolist() == ["error"]
    assert (df[df["order"] != 2]["status"] == "completed").all()


def test_trial_status_rules():
    def status(result, error, planned):
        return TrialOutcome.of(result, error, planned).status

    assert status({"epoch": 3, "top1": 0.5}, False, 3) == "completed"
    assert status({"epoch": 1}, False, 3) == "stopped_early"
    assert status({"epoch": 2, "status": "diverged"}, False, 3) == "diverged"
    assert status(None, True, 3) == "error"


def test_asha_stops_trials_that_stay_out_of_the_front(ray_session, tmp_path):
    out = _search(tmp_path, "asha", trials=6, epochs=3, concurrency=1, sampler="random",
                  scheduler="asha")
    df = out.table
    early = df[df["status"] == "stopped_early"]
    assert len(early) >= 1  # with 6 searched trials, ASHA (rate 3) stops some at epoch 1
    assert (early["epochs"] < 3).all() and (early["reference"] == "").all()
    assert (df[df["reference"] != ""]["status"] == "completed").all()
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out.run_dir / 'study.db'}")
    pruned = {t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED}
    assert set(early["optuna_number"].astype(int)) <= pruned


def _cli(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "nas_convnext.cli", *args], cwd=kw.get("cwd"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def test_all_trials_failing_exits_nonzero_with_a_summary(tmp_path):
    # --trials 0: the two reference points only, both failing (each failed trial costs a new
    # worker process, so fewer trials keep this test short)
    p = _cli("search", "--space", "small", "--trials", "0", "--proxy", "cpu-tiny", "--dataset", "synthetic",
             "--budget", "4.5G", "--name", "allbad", "--results-dir", str(tmp_path),
             env={"NAS_CONVNEXT_FAULT": "raise:all"})
    out, err = p.communicate(timeout=240)
    assert p.returncode == 1, err
    assert "every trial failed" in err and "injected failure" in err


@pytest.mark.slow  # 72 s; Ctrl-C then resume at an exact moment: tests/faults/test_interrupted_search.py
def test_ctrl_c_then_resume_finishes_without_retraining(tmp_path):
    args = ["search", "--space", "small", "--trials", "8", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget",
            "4.5G", "--name", "stop", "--results-dir", str(tmp_path), "--concurrency", "1",
            "--epochs", "2", "--scheduler", "none"]
    p = _cli(*args)
    table = tmp_path / "stop" / "trials.parquet"
    deadline = time.time() + 240
    while time.time() < deadline:
        if table.exists() and len(pd.read_parquet(table)) >= 3:
            break
        time.sleep(0.5)
    else:
        p.kill()
        pytest.fail("the run never wrote 3 trials")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert f"--resume {tmp_path / 'stop'}" in out
    before = pd.read_parquet(table)
    assert 3 <= len(before) < 10
    # A trial cut short by the stop is trained again; the finished ones are kept.
    before = before[~before["error"].str.startswith("cut short:")]
    assert not (tmp_path / "stop" / ".lock").exists()

    p = _cli("search", "--resume", str(tmp_path / "stop"))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    after = pd.read_parquet(table)
    assert len(after) == 10 and after["trial_id"].is_unique
    keys = after.apply(lambda r: Arch.from_row(r.to_dict()).key(), axis=1)
    assert keys[after["reference"] == ""].is_unique
    # Every trial finished before the interruption is kept as it was, not trained again.
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    assert kept["top1"].tolist() == before["top1"].tolist()
    assert kept["wall_s"].tolist() == before["wall_s"].tolist()
    info = json.loads((tmp_path / "stop" / "run.json").read_text())
    assert info["resumed"] == 1 and info["interrupted"] is False


def test_same_name_twice_is_refused(ray_session, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "trials.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match="already exists"):
        _search(tmp_path, "taken")
    assert (tmp_path / "taken" / "trials.parquet").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", ".hidden", "a..b"])
def test_run_names_cannot_leave_the_results_folder(tmp_path, name):
    with pytest.raises(ValueError, match="run name"):
        SearchConfig(budget=4.5e9, name=name)


def test_missing_data_dir_is_refused_before_the_run_folder(tmp_path):
    with pytest.raises(ValueError, match="data-dir"):
        _search(tmp_path, "nodata", dataset="idx")
    assert not (tmp_path / "nodata").exists()


def test_roadmap_train_is_a_calibration_with_one_seed(ray_session, tmp_path, capsys):
    from nas_convnext.cli import main
    from nas_convnext.design.roadmap import roadmap_steps

    code = main(["roadmap", "--train", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--name", "rm",
                 "--seed", "3", "--results-dir", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    cal = json.loads(out)
    steps = roadmap_steps()
    assert [s["step"] for s in cal["steps"]] == [s.index for s in steps]
    assert [s["paper_top1"] for s in cal["steps"]] == [s.paper_top1 for s in steps]
    # One seed: a tau, no interval, and so no claim that the proxy beats FLOPs.
    assert cal["n_seeds"] == 1 and cal["seeds"] == [3] and cal["kendall_tau_ci"] is None
    assert cal["can_tell"] is False
    df = read_table(tmp_path / "rm")
    assert sorted(df["reference"]) == sorted(s.name for s in steps)
    assert (df["status"] == "completed").all() and (df["seed"] == 3).all()
    # Step 0 trains with ResNet's original recipe, step 1 with the modern one: same design.
    from nas_convnext.search.run import roadmap_candidates

    cands = roadmap_candidates()
    assert cands[0].arch == cands[1].arch
    assert (cands[0].recipe, cands[1].recipe) == ("original", "modern")
    info = json.loads((tmp_path / "rm" / "run.json").read_text())
    assert info["kind"] == "calibration" and info["seeds"] == [3]
    assert (tmp_path / "rm" / "calibration.png").stat().st_size > 0
    assert (tmp_path / "rm" / "calibration.csv").exists()


def test_a_run_records_its_dataset_and_where_it_came_from(ray_session, tmp_path, monkeypatch):
    """The default is Fashion-MNIST, resolved once in the driver; run.json says from where."""
    import shutil

    from nas_convnext.training.data.named import EMBEDDED_DIR

    cache = tmp_path / "cache"
    shutil.copytree(EMBEDDED_DIR, cache / "fashion-mnist")
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(cache))
    kw = {k: v for k, v in SMALL_ARGS.items() if k != "dataset"}
    out = run_search(SearchConfig(**{**kw, "trials": 0, "results_dir": str(tmp_path / "r"),
                                     "name": "fm"}))
    meta = json.loads((out.run_dir / "run.json").read_text())
    assert meta["dataset"] == meta["config"]["dataset"] == "fashion-mnist"
    assert meta["dataset_source"] == f"cache {cache / 'fashion-mnist'}"
    assert (out.table["status"] == "completed").all() and len(out.table) == 2


@pytest.mark.parametrize("budget,named", [
    (1e6, "0.001 GFLOPs (1e+06 FLOPs)"),        # found by the bad-input sweep: named only as 0.001
    (2.5e5, "250000 FLOPs"),
    (1.2e9, "1.200 GFLOPs is below"),
])
def test_a_budget_below_every_design_is_named_as_given(budget, named):
    from nas_convnext.search.searcher import check_budget

    with pytest.raises(ValueError, match="below the smallest design") as err:
        check_budget(load_space("small"), budget, fit=False)
    assert named in str(err.value)
    assert ("a bare number counts FLOPs" in str(err.value)) == (budget < 1e6)
