"""Fixed lists of (design, seed) trials: a calibration's steps x seeds, identity, resume."""
from __future__ import annotations

import dataclasses
import json
import math
import random

import optuna
import pytest

import nas_convnext.search.run as run_module
from nas_convnext.design.space import load_space
from nas_convnext.results import read_table, write_table
from nas_convnext.search import SearchConfig, run_search
from nas_convnext.search.outcome import TrialOutcome, trial_row
from nas_convnext.search.resume import work_left
from nas_convnext.search.run import (
    calibration_candidates,
    calibration_seeds,
    roadmap_candidates,
)
from nas_convnext.search.searcher import (
    Candidate,
    Queued,
    StudySearcher,
    proposal_sampler,
)
from nas_convnext.training.proxy import get_proxy

BASE = {"proxy": get_proxy("cpu-tiny").to_dict(), "seed": 7, "order_start": 0}


def _searcher(study, pending, done=None, trials=0):
    space = load_space("small")
    return StudySearcher(study, space, 4.5e9, True, trials, pending, done or {}, dict(BASE), 1, 0,
                         lambda n: proposal_sampler("random", 7, space, n))


def _study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=["maximize", "minimize"])


def test_a_calibration_is_every_step_under_every_seed_seed_by_seed():
    steps = roadmap_candidates()
    cands = calibration_candidates(calibration_seeds(3, 2))
    assert len(steps) == 17 and len(cands) == 34
    assert [c.seed for c in cands] == [3] * 17 + [4] * 17
    assert [c.reference for c in cands] == [s.reference for s in steps] * 2
    assert [c.recipe for c in cands[17:]] == [s.recipe for s in steps]
    with pytest.raises(ValueError, match="--seeds 0: expected a positive integer"):
        calibration_seeds(0, 0)


def test_the_trainable_gets_each_trials_own_seed_and_the_same_design_twice():
    """Two trials of one design under two seeds are two trials: both are trained, each with
    its seed; a candidate without a seed gets the run's."""
    arch = roadmap_candidates()[-1].arch
    a = Candidate(arch, 1, 1, False, "step", seed=0)
    b = dataclasses.replace(a, seed=1)
    c = dataclasses.replace(a, reference="other", seed=None)
    s = _searcher(_study(), [Queued(a), Queued(b), Queued(c)])
    configs = [s.suggest(f"t{i}") for i in range(3)]
    assert [cfg["seed"] for cfg in configs] == [0, 1, 7]
    assert s.in_flight == {(arch.key(), 0), (arch.key(), 1), (arch.key(), 7)}
    assert s.suggest("t3") is None
    s.on_trial_complete("t1", {"epoch": 1, "top1": 0.5}, False)
    assert s.in_flight == {(arch.key(), 0), (arch.key(), 7)}
    assert list(s.done) == [(arch.key(), 1)]
    told = s.done[(arch.key(), 1)]
    assert {k: told[k] for k in ("status", "top1", "flops")} == \
        {"status": "completed", "top1": 0.5, "flops": 1}
    assert math.isnan(told["latency_ms"]) and told["speed_device"] == ""  # nothing measured


def _row(cand: Candidate, seed: int, top1: float = 0.5) -> dict:
    cfg = {"arch": cand.arch.to_dict(), "order": 1, "reference": cand.reference, "fitted": False,
           "flops": cand.flops, "params": cand.params, "optuna_number": None,
           "proxy": BASE["proxy"], "seed": seed}
    return trial_row(cfg, TrialOutcome.of({"epoch": 1, "top1": top1}, False, 1), 1.0, "x")


def test_work_left_knows_a_trial_by_its_step_and_seed():
    cands = calibration_candidates((0, 1))
    # Steps 0 and 1 are one design (ResNet-50) under two recipes: known by name, not design.
    assert cands[0].arch.key() == cands[1].arch.key()
    rows = [_row(cands[0], 0), _row(cands[18], 1)]          # step 0 seed 0, step 1 seed 1
    pending, done, proposed = work_left(_study(), rows, cands, seed=0)
    left = [(q.cand.reference, q.cand.seed) for q in pending]
    assert len(left) == 32 and proposed == 0
    assert (cands[0].reference, 0) not in left and (cands[18].reference, 1) not in left
    assert (cands[1].reference, 0) in left and (cands[17].reference, 1) in left
    assert set(done) == {(cands[0].arch.key(), 0), (cands[18].arch.key(), 1)}


def test_a_row_of_an_older_table_without_a_seed_has_the_runs_seed():
    cand = roadmap_candidates()[5]
    row = {k: v for k, v in _row(cand, 4).items() if k != "seed"}
    pending, done, _ = work_left(_study(), [row], [dataclasses.replace(cand, seed=None)], seed=4)
    assert pending == [] and set(done) == {(cand.arch.key(), 4)}


def test_a_proposal_of_a_design_trained_under_another_seed_is_trained():
    """Searched designs train under the run's seed: a row of the same design under another
    seed (a calibration's) is not the same trial."""
    space = load_space("small")
    arch = space.sample(random.Random(1))
    other = {(arch.key(), 99): {"status": "completed", "top1": 0.9, "flops": 1}}
    s = _searcher(_study(), [], other, trials=1)
    s.space = type("One", (), {"suggest": lambda self, t: arch})()
    cfg = s.suggest("t0")
    assert cfg is not None and cfg["seed"] == 7 and cfg["arch"] == arch.to_dict()


@pytest.fixture
def two_steps(monkeypatch):
    """A calibration of the roadmap's last two steps (ConvNeXt-T's neighbours), to keep it quick."""
    steps = roadmap_candidates()[-2:]
    monkeypatch.setattr(run_module, "roadmap_candidates", lambda: list(steps))
    return steps


def test_a_calibration_run_records_its_seeds_and_resumes_without_training_twice(
        ray_session, tmp_path, two_steps):
    cfg = SearchConfig(budget=None, trials=0, scheduler="none", proxy="cpu-tiny",
                       dataset="synthetic", concurrency=2, seed=5, name="cal",
                       results_dir=str(tmp_path))
    out = run_search(cfg, kind="calibration", seeds=2)
    assert out.kind == "calibration" and out.seeds == (5, 6)
    meta = json.loads((out.run_dir / "run.json").read_text())
    assert meta["kind"] == "calibration" and meta["seeds"] == [5, 6]
    assert meta["references"] == [s.reference for s in two_steps]
    df = out.table
    assert (df["status"] == "completed").all()
    assert sorted(zip(df["reference"], df["seed"])) == sorted(
        (s.reference, seed) for s in two_steps for seed in (5, 6))
    # Same design, same data, two seeds: two different trainings.
    first = df[df["reference"] == two_steps[0].reference].sort_values("seed")
    assert first["loss"].iloc[0] != first["loss"].iloc[1]

    # Lose one row (as a crash between two trials would), resume: only that trial is trained.
    kept = df[~((df["reference"] == two_steps[1].reference) & (df["seed"] == 6))]
    write_table(out.run_dir, kept.to_dict("records"))
    again = run_search(SearchConfig(budget=None), resume_dir=out.run_dir)
    assert again.kind == "calibration" and again.seeds == (5, 6)
    table = read_table(out.run_dir)
    assert len(table) == 4 and table["trial_id"].is_unique
    assert sorted(zip(table["reference"], table["seed"])) == sorted(
        zip(df["reference"], df["seed"]))
    new = set(table["trial_id"]) - set(kept["trial_id"])
    assert len(new) == 1
    assert table[table["trial_id"].isin(new)][["reference", "seed"]].values.tolist() == [
        [two_steps[1].reference, 6]]

    # A resume with nothing left trains nothing.
    before = read_table(out.run_dir)["trial_id"].tolist()
    run_search(SearchConfig(budget=None), resume_dir=out.run_dir)
    assert read_table(out.run_dir)["trial_id"].tolist() == before


def test_a_calibration_with_damaged_seeds_in_run_json_is_refused(tmp_path, two_steps):
    run_dir = tmp_path / "cal"
    run_dir.mkdir()
    cfg = SearchConfig(budget=None, trials=0, scheduler="none", proxy="cpu-tiny",
                       dataset="synthetic", name="cal", results_dir=str(tmp_path))
    (run_dir / "run.json").write_text(json.dumps(
        {"kind": "calibration", "config": cfg.to_dict(), "seeds": [1, 1], "resumed": 0}))
    with pytest.raises(ValueError, match=r"field 'seeds' is \[1, 1\], expected a list of distinct"):
        run_search(SearchConfig(budget=None), resume_dir=run_dir)


def test_seeds_belong_to_a_calibration(tmp_path):
    with pytest.raises(ValueError, match="seeds are a calibration's, not a search's"):
        run_search(SearchConfig(budget=4.5e9, dataset="synthetic"), seeds=2)
