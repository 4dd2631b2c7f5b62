"""A search stopped before its work is done: by its time budget, by SIGTERM, at any moment.

Whatever stops it, every trial that reported an epoch is in the table (a trial still training
is `stopped_early`, its `error` saying it was cut short, with its last epoch's metrics), run.json
says what stopped the run, and `--resume` finishes it (training the cut trials again). A stop
before run.json exists leaves no run folder at all, so a new run with that name works. The
moments are exact (test hooks in nas_convnext/faults.py), not sleeps.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import optuna
import pytest

import nas_convnext.search.raytune as raytune_module
from nas_convnext.cli import main
from nas_convnext.results import is_cut_short, read_table
from nas_convnext.search import SearchConfig, run_search
from nas_convnext.search.raytune import TuneEnd

ARGS = ["--space", "small", "--trials", "1", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--epochs", "2",
        "--scheduler", "none", "--concurrency", "1", "--budget", "4.5G"]
CUT = "cut short: the run stopped ({reason}) after epoch 1 of 2; a resume trains it again"


def _run_json(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _cli_process(tmp_path, name: str, fault: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "NAS_CONVNEXT_FAULT")}
    env["NAS_CONVNEXT_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "nas_convnext.cli", "search", *ARGS,
                           "--results-dir", str(tmp_path), "--name", name],
                          capture_output=True, text=True, env=env, timeout=400)


def _resume_completes(run_dir, capsys) -> None:
    """`--resume` trains what is missing (the cut trials again) and the run ends whole."""
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir)]) == 0, capsys.readouterr().err
    df = read_table(run_dir)
    assert len(df) == 3 and df["trial_id"].is_unique
    assert (df["status"] == "completed").all() and (df["epochs"] == 2).all()
    assert sorted(df["reference"]) == ["", "convnext_t", "resnet50"]
    info = _run_json(run_dir)
    assert info["stopped_by"] is None and info["resumed"] == 1
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


@pytest.fixture
def fault(monkeypatch):
    def set_fault(value: str) -> None:
        monkeypatch.setenv("NAS_CONVNEXT_FAULT", value)
    yield set_fault


def test_time_budget_keeps_the_trial_in_flight(ray_session, tmp_path, capsys, fault,
                                               monkeypatch):
    """The budget runs out (exactly) when the first trial has reported epoch 1 of 2."""
    run_dir = tmp_path / "budget"
    fault("expire:1")
    code = main(["search", *ARGS, "--time-budget", "1h", "--results-dir", str(tmp_path),
                 "--name", "budget"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (f"time budget reached; 1 trial(s) in flight kept as stopped_early with their last "
            f"epoch's metrics; to finish the run: nas-convnext search --resume {run_dir}") in out
    assert "trials: 1 stopped_early" in out
    df = read_table(run_dir)
    assert len(df) == 1
    row = df.iloc[0].to_dict()
    assert row["reference"] == "convnext_t" and row["status"] == "stopped_early"
    assert row["epochs"] == 1 and 0 <= row["top1"] <= 1 and math.isfinite(row["top5"])
    assert row["error"] == CUT.format(reason="time budget") and is_cut_short(row)
    info = _run_json(run_dir)
    assert info["stopped_by"] == "time budget" and info["interrupted"] is False
    assert info["cut_short"] == 1
    monkeypatch.delenv("NAS_CONVNEXT_FAULT")
    _resume_completes(run_dir, capsys)


def test_a_time_budget_spent_before_any_epoch(ray_session, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "instant"
    code = main(["search", *ARGS, "--time-budget", "0.001s", "--results-dir", str(tmp_path),
                 "--name", "instant"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "trials: none" in out
    assert f"time budget reached; to finish the run: nas-convnext search --resume {run_dir}" in out
    info = _run_json(run_dir)
    assert info["stopped_by"] == "time budget" and info["cut_short"] == 0
    _resume_reaches_training(run_dir, monkeypatch)


def _resume_reaches_training(run_dir, monkeypatch, kept: tuple[str, ...] = ()) -> None:
    """A resume accepts the folder, keeps the finished rows (the references in `kept`) and
    would train the rest: the other references and the searched design, the cut-short trials
    among them (training itself is stubbed out: the time-budget test trains)."""
    seen = {}

    def tune_stub(cfg, proxy, space, study, data, run_dir, rows, pending, done, proposed,
                  fault, signals=None):
        seen.update(kept=sorted(r["reference"] for r in rows),
                    todo=len(pending) + max(0, cfg.trials - proposed),
                    refs=sorted(q.cand.reference for q in pending if q.cand.reference))
        return TuneEnd()

    monkeypatch.setattr(raytune_module, "run_trials", tune_stub)
    out = run_search(SearchConfig(budget=4.5e9), resume_dir=run_dir)
    assert out.stopped_by is None
    refs = sorted({"convnext_t", "resnet50"} - set(kept))
    assert seen == {"kept": sorted(kept), "todo": 3 - len(kept), "refs": refs}
    assert not any(is_cut_short(r) for r in read_table(run_dir).to_dict("records"))


def test_sigterm_mid_run_stops_cleanly_and_resumes(ray_session, tmp_path, monkeypatch):
    """SIGTERM while trial 2 runs (it has reported epoch 1 of 2): a clean stop, exit 143."""
    run_dir = tmp_path / "term"
    p = _cli_process(tmp_path, "term", "term:2")
    assert p.returncode == 143, p.stderr
    for bad in ("Traceback", "Aborted", "*** SIG", "Check failed"):
        assert bad not in p.stderr, p.stderr
    assert (f"stopped (SIGTERM); 1 trial(s) in flight kept as stopped_early with their last "
            f"epoch's metrics; to finish the run: nas-convnext search --resume {run_dir}"
            ) in p.stdout
    df = read_table(run_dir)
    assert df["status"].tolist() == ["completed", "stopped_early"]
    assert df["epochs"].tolist() == [2, 1]
    assert df["error"].tolist() == ["", CUT.format(reason="SIGTERM")]
    info = _run_json(run_dir)
    assert info["stopped_by"] == "SIGTERM" and info["interrupted"] is True
    assert not (run_dir / ".lock").exists()
    # The resume keeps convnext_t and trains resnet50 (cut short) and the searched design.
    _resume_reaches_training(run_dir, monkeypatch, kept=("convnext_t",))


def test_sigterm_while_ray_starts_leaves_nothing(tmp_path):
    p = _cli_process(tmp_path, "early", "term:ray-init")
    assert p.returncode == 143, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "nas-convnext: terminated (SIGTERM); no run was saved, start it again" in p.stderr
    # No folder: a new run with that name starts as if nothing had happened.
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("moment", ["run-folder", "study"])
def test_sigterm_while_the_run_folder_is_made(ray_session, tmp_path, capsys, fault, moment,
                                              monkeypatch):
    """Before the fix, a signal here left study.db without run.json: a new run refused the
    name and --resume refused the folder. Now run.json comes first, with the folder."""
    run_dir = tmp_path / "made"
    fault(f"term:{moment}")
    code = main(["search", *ARGS, "--results-dir", str(tmp_path), "--name", "made"])
    out, err = capsys.readouterr()
    assert code == 143, err
    assert f"stopped (SIGTERM); to finish the run: nas-convnext search --resume {run_dir}" in out
    assert _run_json(run_dir)["stopped_by"] == "SIGTERM"
    assert not (run_dir / ".lock").exists()
    monkeypatch.delenv("NAS_CONVNEXT_FAULT")
    _resume_reaches_training(run_dir, monkeypatch)


def test_run_folder_replaced_mid_run_is_one_line(ray_session, tmp_path, capsys, fault):
    run_dir = tmp_path / "gone"
    fault("replace:2")
    code = main(["search", *ARGS, "--results-dir", str(tmp_path), "--name", "gone"])
    err = capsys.readouterr().err
    # Besides the progress lines of the trials that finished, one line: the error.
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("[")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "ERROR" not in err, err
    assert lines[0].startswith(f"nas-convnext: error: could not write {run_dir}/"), lines[0]
    assert f"{run_dir} is no longer a folder" in lines[0]
    assert run_dir.read_text() == "not a run folder\n"  # what replaced it is left alone
