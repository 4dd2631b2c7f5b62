"""Multi-objective ASHA: its decisions on hand-made rungs, beside Ray's ASHA, and in a Tuner."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from nas_convnext.search.mo_asha import (
    MOASHA,
    RungRecord,
    crowding_distances,
    front_ranks,
    measured_cost,
    mo_asha_scheduler,
    promotes,
    rung_milestones,
)

GF = 1e9
# (name, epoch-1 top-1, FLOPs): the first three reach the rung first.
ACCURATE = ("accurate", 0.90, 10 * GF)
MEDIUM = ("medium", 0.80, 5 * GF)
WORSE = ("worse", 0.70, 6 * GF)          # dominated by MEDIUM: less accurate and dearer
CHEAP = ("cheap", 0.50, 1.3 * GF)        # the least accurate, but the cheapest: non-dominated


def _trial(name, flops, reference=""):
    return SimpleNamespace(trial_id=name, config={"flops": flops, "reference": reference})


def _decide(scheduler, arrivals, epoch=1):
    """Feed each (name, top1, flops[, reference]) to the scheduler at `epoch`, in order;
    the decision for each name."""
    out = {}
    for name, top1, flops, *ref in arrivals:
        trial = _trial(name, flops, ref[0] if ref else "")
        if hasattr(scheduler, "on_trial_add") and epoch == 1:
            scheduler.on_trial_add(None, trial)
        out[name] = scheduler.on_trial_result(None, trial, {"epoch": epoch, "top1": top1})
    return out


def _ray_asha():
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", metric="top1", mode="max", max_t=4,
                         grace_period=1, reduction_factor=3)


def test_cheap_non_dominated_design_survives_where_asha_stops_it():
    arrivals = [ACCURATE, MEDIUM, WORSE, CHEAP]
    asha = _decide(_ray_asha(), arrivals)
    mo = _decide(mo_asha_scheduler(max_t=4), arrivals)
    assert asha["cheap"] == "STOP"          # top-1 alone: below the best third
    assert mo["cheap"] == "CONTINUE"        # the cheapest end of the front goes on
    assert mo["worse"] == "STOP"            # dominated by `medium`, with only 1 of 3 going on
    assert mo["accurate"] == mo["medium"] == "CONTINUE"


def test_dominated_design_stops_and_a_reference_never_does():
    sched = mo_asha_scheduler(max_t=9)
    ref = ("resnet50", 0.60, 6.5 * GF, "resnet50")   # dominated by `medium` and `worse`
    plain = ("dominated", 0.60, 6.5 * GF)
    first = _decide(sched, [ACCURATE, MEDIUM, WORSE, ref, plain])
    assert first["dominated"] == "STOP" and first["resnet50"] == "CONTINUE"
    # At the next rung (epoch 3) the reference is again the worst, and again goes on.
    later = _decide(sched, [ACCURATE, MEDIUM, ref], epoch=3)
    assert later["resnet50"] == "CONTINUE"
    assert sched.core.num_stopped == 2    # `worse` and `dominated`, never the reference


def test_a_time_objective_ranks_by_the_measured_time_each_trial_reports():
    """search --objective latency|throughput: the rung compares the reported time, not the
    config's FLOPs. Four designs of equal FLOPs: by FLOPs the least accurate is dominated and
    stops; by latency it is the fastest, the front's cheap end, and goes on."""
    # (name, top-1, latency ms, throughput images/s); throughput ranks as 1000 / it
    runs = [("a", 0.90, 40.0, 25.0), ("b", 0.80, 20.0, 50.0), ("c", 0.70, 30.0, 33.0),
            ("fast", 0.50, 5.0, 200.0)]

    def decide(scheduler):
        out = {}
        for name, top1, lat, thr in runs:
            trial = _trial(name, 4 * GF)
            out[name] = scheduler.on_trial_result(
                None, trial, {"epoch": 1, "top1": top1, "latency_ms": lat, "throughput": thr})
        return out

    assert decide(mo_asha_scheduler(max_t=4))["fast"] == "STOP"   # same FLOPs, less accurate
    by_latency = decide(mo_asha_scheduler(max_t=4, cost="latency"))
    assert by_latency == {"a": "CONTINUE", "b": "CONTINUE", "c": "STOP", "fast": "CONTINUE"}
    assert decide(mo_asha_scheduler(max_t=4, cost="throughput")) == by_latency
    assert measured_cost("throughput", {"throughput": 250.0}) == pytest.approx(4.0)
    assert math.isnan(measured_cost("latency", {}))              # none reported: last front
    with pytest.raises(ValueError, match="MO-ASHA cost 'params'"):
        mo_asha_scheduler(max_t=4, cost="params")


def test_fronts_and_crowding_of_hand_made_points():
    recs = [RungRecord("a", 0.9, 10), RungRecord("b", 0.8, 5), RungRecord("c", 0.7, 6),
            RungRecord("d", 0.5, 1), RungRecord("e", 0.6, 8), RungRecord("f", 0.85, 8)]
    ranks = front_ranks(recs)
    # front 0: a, f, b, d; c is dominated only by b; e by b, c and f
    assert ranks == [0, 0, 1, 0, 2, 0]
    crowd = crowding_distances(recs, ranks)
    assert crowd[0] == crowd[3] == math.inf                  # the front's two ends
    # f's neighbours on top-1 are a (0.9) and b (0.8), range 0.9-0.5; on GFLOPs b (5), a (10),
    # range 10-1: 0.1/0.4 + 5/9
    assert crowd[5] == pytest.approx(0.1 / 0.4 + 5 / 9)
    assert crowd[1] == pytest.approx((0.85 - 0.5) / 0.4 + (8 - 1) / 9)
    assert crowd[2] == crowd[4] == math.inf                  # fronts of one point


def test_promotes_counts_the_records_strictly_ahead():
    others = [RungRecord("a", 0.9, 10), RungRecord("b", 0.8, 5), RungRecord("c", 0.7, 6)]
    # n = 4, ceil(4/3) = 2: the interior point b ranks behind the two ends, c behind all.
    assert promotes(RungRecord("d", 0.5, 1), others, 3)             # an end: nobody ahead
    assert not promotes(RungRecord("d", 0.65, 7), others, 3)        # front 1, behind a, b
    # a front's interior point, behind its two ends: stops when 2 of 4 go on (eta 2), goes
    # on when 3 of 4 do (eta 1.5)
    assert not promotes(RungRecord("d", 0.85, 8), others, 2)
    assert promotes(RungRecord("d", 0.85, 8), others, 1.5)
    # a NaN top-1 ranks last even when the design is the cheapest
    assert not promotes(RungRecord("d", math.nan, 0.5), others, 3)
    assert promotes(RungRecord("first", 0.1, 99), [], 3)           # first at a rung goes on
    with pytest.raises(ValueError, match="reduction_factor=1"):
        promotes(RungRecord("d", 0.5, 1), others, 1)


def test_rungs_like_asha():
    assert rung_milestones(4, 1, 3) == [1, 3]
    assert rung_milestones(9, 1, 3) == [1, 3]
    assert rung_milestones(10, 1, 3) == [1, 3, 9]
    assert rung_milestones(10, 2, 2) == [2, 4, 8]
    core = MOASHA(max_t=4)
    assert core.goes_on("x", 2, 0.1, 1.0)           # between rungs: nothing to judge
    assert not core.goes_on("x", 4, 0.99, 1.0)      # max_t reached: done, as ASHA


def test_save_and_restore_keep_the_rungs(tmp_path):
    sched = mo_asha_scheduler(max_t=4)
    _decide(sched, [ACCURATE, MEDIUM, WORSE])
    path = tmp_path / "state.json"
    sched.save(str(path))
    resumed = mo_asha_scheduler(max_t=4)
    resumed.restore(str(path))
    assert resumed.core.rungs == sched.core.rungs
    # the resumed scheduler decides as the first would: `worse` again behind two of four
    assert _decide(resumed, [("late", 0.69, 6.1 * GF)])["late"] == "STOP"
    assert _decide(mo_asha_scheduler(max_t=4), [("late", 0.69, 6.1 * GF)])["late"] == "CONTINUE"
    other = mo_asha_scheduler(max_t=10)
    with pytest.raises(ValueError, match=r"rungs at epochs \[1, 3\]"):
        other.restore(str(path))
    path.write_text("\x80not json")
    with pytest.raises(ValueError, match="not a saved MO-ASHA state"):
        resumed.restore(str(path))


def test_tuner_runs_mo_asha_end_to_end(ray_session, tmp_path):
    from ray import tune

    designs = [ACCURATE, MEDIUM, WORSE, CHEAP, ("resnet50", 0.60, 7 * GF, "resnet50")]

    by_name = {d[0]: d for d in designs}

    def trainable(config):
        top1 = by_name[config["name"]][1]
        for epoch in range(1, 5):
            tune.report({"epoch": epoch, "top1": top1 + 0.01 * epoch})

    # flops and reference must sit in the trial's config, as the search puts them there
    param_space = {"name": tune.grid_search(list(by_name)),
                   "flops": tune.sample_from(lambda spec: by_name[spec.config.name][2]),
                   "reference": tune.sample_from(
                       lambda spec: (by_name[spec.config.name][3:] or [""])[0])}
    tuner = tune.Tuner(trainable, param_space=param_space,
                       tune_config=tune.TuneConfig(scheduler=mo_asha_scheduler(max_t=4),
                                                   max_concurrent_trials=1, reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    results = tuner.fit()
    epochs = {r.config["name"]: r.metrics["epoch"] for r in results}
    assert epochs == {"accurate": 4, "medium": 4, "worse": 1, "cheap": 4, "resnet50": 4}


def test_fast_front_ranks_equal_peeling_on_random_rungs():
    """The one-pass sort gives the fronts of repeated peeling, ties and NaNs included (coarse
    values make ties and identical points frequent)."""
    import random

    from nas_convnext.search.mo_asha import _front_ranks_by_peeling

    rng = random.Random(7)
    for n in (1, 2, 5, 30, 120):
        for _ in range(20):
            recs = [RungRecord(f"t{i}", rng.choice([0.1, 0.2, 0.3, 0.4, float("nan")]),
                               rng.choice([1.0, 2.0, 3.0, 4.0])) for i in range(n)]
            assert front_ranks(recs) == _front_ranks_by_peeling(recs)
