"""A trial's outcome is decided once: the table's row and what Optuna is told agree."""
from __future__ import annotations

import math
import random

import optuna
import pytest

from nas_convnext.design.space import load_space
from nas_convnext.search.outcome import TrialOutcome, trial_row
from nas_convnext.search.searcher import (
    Candidate,
    Queued,
    StudySearcher,
    proposal_sampler,
)
from nas_convnext.training.proxy import get_proxy

RESULTS = {
    "completed": ({"epoch": 3, "top1": 0.5, "top5": 0.9, "loss": 1.2}, False),
    "stopped_early": ({"epoch": 1, "top1": 0.4}, False),
    "diverged": ({"epoch": 2, "top1": 0.3, "status": "diverged", "message": "loss became nan"},
                 False),
    "error": ({"epoch": 1, "top1": 0.4}, True),
    "nan top-1": ({"epoch": 3, "top1": math.nan}, False),
}


def test_the_rules():
    outcome = {k: TrialOutcome.of(r, e, 3, "boom" if e else "") for k, (r, e) in RESULTS.items()}
    assert {k: o.status for k, o in outcome.items()} == {
        "completed": "completed", "stopped_early": "stopped_early", "diverged": "diverged",
        "error": "error", "nan top-1": "error"}
    assert outcome["completed"].top1 == 0.5 and outcome["completed"].epochs == 3
    assert math.isnan(outcome["error"].top1) and outcome["error"].message == "boom"
    assert outcome["diverged"].top1 == 0.3 and outcome["diverged"].message == "loss became nan"
    assert "not a number" in outcome["nan top-1"].message
    # A trial that diverged before any epoch finished has no top-1.
    assert math.isnan(TrialOutcome.of({"status": "diverged"}, False, 3).top1)
    cut = outcome["completed"].cut_short("cut short: x")
    assert (cut.status, cut.top1, cut.message) == ("stopped_early", 0.5, "cut short: x")


@pytest.mark.parametrize("case", list(RESULTS))
def test_the_table_and_optuna_hear_the_same_status(case):
    """Drive the searcher as Tune would and write the row as the table writer does."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result, error = RESULTS[case]
    space = load_space("small")
    study = optuna.create_study(directions=["maximize", "minimize"])
    arch = space.sample(random.Random(0))
    flops = 1e9
    t = study.ask()
    searcher = StudySearcher(
        study, space, 4.5e9, True, 0, [Queued(Candidate(arch, int(flops), 1000, False), t.number,
                                              tell=True)], {},
        {"proxy": get_proxy("cpu-tiny").to_dict(), "seed": 0, "order_start": 0}, 3, 0,
        lambda n: proposal_sampler("random", 0, space, n))
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", result, error)
    row = trial_row(config, TrialOutcome.of(result, error, 3), 1.0, "t0")
    told = study.trials[0]
    expected = {"completed": "COMPLETE", "diverged": "COMPLETE", "stopped_early": "PRUNED",
                "error": "FAIL"}[row["status"]]
    assert told.state.name == expected, (case, row["status"])
    if row["status"] == "completed":
        assert told.values == [row["top1"], flops / 1e9]
