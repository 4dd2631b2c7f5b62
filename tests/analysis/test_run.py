"""A run's analysis is computed once: one filter, one front, one bootstrap per choice, and the
report only renders it."""
from __future__ import annotations

import pytest

from nas_convnext import analysis as A
from nas_convnext.analysis import effects, front, run
from nas_convnext.design.codec import texts
from tests.report.test_report import NB, make_run, realistic_rows


@pytest.fixture
def table(tmp_path):
    _, df = make_run(tmp_path, realistic_rows(n=30, seed=2))
    return df


def _count(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_filter_front_and_bootstrap_happen_once(table, monkeypatch):
    usable = _count(monkeypatch, run, "usable")
    fronts = _count(monkeypatch, run, "front_of")
    masks = _count(monkeypatch, front, "_front_mask")
    draws = _count(monkeypatch, effects, "bootstrap_mean_max")
    an = run.analyse(table, None, seed=0, n_boot=NB)
    assert len(usable) == 1
    # against GFLOPs, then parameters
    assert [{**dict(zip(("u", "x"), a)), **k}.get("x", "flops") for a, k in fronts] == [
        "flops", "params"]
    assert len(masks) == 2
    pairs = sum(texts(an.u[d]).nunique() for d in an.dims)
    assert len(draws) == pairs  # one bootstrap per (dimension, choice), not one per reader


def test_once_gives_what_each_function_gives_alone(table):
    """The parts RunAnalysis shares are the numbers the public functions compute on their own."""
    an = run.analyse(table, None, seed=0, n_boot=NB)
    assert an.verdict == A.convnext_verdict(table, dims=an.dims, seed=0, n_boot=NB)
    alone = A.choice_effects(table, dims=an.varying, seed=0, n_boot=NB)
    assert an.effects.drop(columns="gflops_vs_all").equals(alone)
    assert an.front.index.tolist() == A.pareto_front(table).index.tolist()
    assert an.summary == A.summarize(table, dims=an.dims)
    for d in an.varying:
        assert an.edfs[d] == (A.edf_by_choice(table, d),
                              A.edf_by_choice(table, d, normalize=True, bins=run.EDF_BINS))
