"""Tests for nas_convnext.analysis on hand-made trials tables whose answers are known by
construction (comments give the reason for each expected value)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas_convnext import analysis as A

G = 1_000_000_000
NB = 2000  # resamples in verdict/effects tests: plenty for separated data, keeps the file fast

DEFAULTS = dict(
    stem="patchify",
    depths="3,3,9,3",
    width=96,
    expansion=4.0,
    groups="depthwise",
    kernel=7,
    spatial_conv="inverted",
    act="gelu",
    activations="single",
    norm="ln",
    norms="single",
    downsample="separate",
    layer_scale=1e-6,
    flops=4 * G,
    params=28_000_000,
    fitted=True,
    reference="",
    status="completed",
    epochs=10,
    top1=0.7,
    top5=0.9,
    wall_s=100.0,
    images_per_s=1000.0,
    node_id="n0",
    error="",
)


def trials(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**DEFAULTS, **r} for r in rows])


# ------------------------------------------------------------------------------------------
# usable / excluded
# ------------------------------------------------------------------------------------------


def test_usable_keeps_only_completed_finite_rows_and_excluded_gives_reasons():
    df = trials(
        dict(top1=0.70),  # 0 usable
        dict(top1=0.95, status="stopped_early"),  # 1
        dict(top1=np.nan, status="diverged"),  # 2
        dict(top1=np.nan, status="error", error="CUDA OOM"),  # 3
        dict(top1=np.nan),  # 4 completed, NaN metric
        dict(top1=0.71, flops=np.nan),  # 5 completed, NaN flops
        dict(top1=0.72),  # 6 usable
    )
    assert list(A.usable(df).index) == [0, 6]
    ex = A.excluded(df)
    assert list(ex.index) == [1, 2, 3, 4, 5]
    assert list(ex["reason"]) == [
        "stopped_early",
        "diverged",
        "error",
        "completed but top1 NaN",
        "completed but flops NaN",
    ]
    assert A.status_counts(df) == {"completed": 4, "diverged": 1, "error": 1, "stopped_early": 1}


def test_only_failed_trials_raise_with_the_counts():
    df = trials(
        dict(status="error", top1=np.nan),
        dict(status="error", top1=np.nan),
        dict(status="error", top1=np.nan),
        dict(status="diverged", top1=np.nan),
    )
    with pytest.raises(ValueError, match=r"no completed trials.*3 error, 1 diverged"):
        A.usable(df)
    with pytest.raises(ValueError, match="3 error"):
        A.pareto_front(df)
    # The excluded list must still be available exactly when nothing is usable.
    assert len(A.excluded(df)) == 4
    s = A.summarize(df)
    assert s["n_usable"] == 0 and s["best"] is None and "3 error" in s["message"]


def test_completed_rows_with_nan_metrics_only_raise_naming_that():
    df = trials(dict(top1=np.nan), dict(top1=np.nan), dict(status="error", top1=np.nan))
    with pytest.raises(ValueError, match="2 completed but top1 NaN, 1 error"):
        A.usable(df)


def test_bad_inputs_raise_for_people():
    with pytest.raises(ValueError, match="empty"):
        A.usable(trials(dict()).iloc[0:0])
    with pytest.raises(ValueError, match="top1"):
        A.usable(trials(dict(top1=0.7)).drop(columns=["top1"]))
    with pytest.raises(ValueError, match="fraction"):
        A.usable(trials(dict(top1=78.2)))
    with pytest.raises(ValueError, match="no_such_dim"):
        A.choice_effects(trials(dict(top1=0.7)), dims=["no_such_dim"], n_boot=10)


# ------------------------------------------------------------------------------------------
# Pareto front
# ------------------------------------------------------------------------------------------


def dominated_table() -> pd.DataFrame:
    # A (4G, .80) and B (5G, .82) are the front. ConvNeXt C (4.5G, .79) is beaten by A (fewer
    # FLOPs, +1.0 point) and by E (same FLOPs, +0.5 point). E is itself beaten by A, D by B.
    # The stopped-early row would dominate everything if it were (wrongly) admitted.
    return trials(
        dict(flops=4 * G, top1=0.80, kernel=3),  # 0 A
        dict(flops=5 * G, top1=0.82, kernel=3),  # 1 B
        dict(flops=4.5 * G, top1=0.79, kernel=7, reference="convnext_t"),  # 2 C
        dict(flops=6 * G, top1=0.81, kernel=7),  # 3 D
        dict(flops=4.5 * G, top1=0.795, kernel=3),  # 4 E
        dict(flops=1 * G, top1=0.99, kernel=3, status="stopped_early"),  # 5 not usable
    )


def test_front_of_dominated_table_excludes_stopped_early_and_is_sorted():
    front = A.pareto_front(dominated_table())
    assert list(front.index) == [0, 1]
    assert list(front["flops"]) == sorted(front["flops"])
    assert front.attrs["n"] == 5


def test_front_ties_and_duplicates():
    df = trials(
        dict(flops=2 * G, top1=0.70),  # 0 same FLOPs as 1 but worse -> dominated
        dict(flops=2 * G, top1=0.75),  # 1 front
        dict(flops=3 * G, top1=0.75),  # 2 same top1 as 1, more FLOPs -> dominated
        dict(flops=4 * G, top1=0.80),  # 3 front
        dict(flops=4 * G, top1=0.80),  # 4 exact duplicate of 3 -> stays
        dict(flops=1 * G, top1=0.60),  # 5 cheapest -> front
    )
    assert list(A.pareto_front(df).index) == [5, 1, 3, 4]


def test_front_single_design():
    df = trials(dict(flops=3 * G, top1=0.7), dict(status="error", top1=np.nan))
    assert list(A.pareto_front(df).index) == [0]


def _brute_front(x: np.ndarray, y: np.ndarray) -> set[int]:
    out = set()
    for i in range(len(x)):
        dominated = any(
            x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i]) for j in range(len(x)) if j != i
        )
        if not dominated:
            out.add(i)
    return out


row_strategy = st.tuples(
    st.integers(1, 6),  # FLOPs in G, few values -> many ties
    st.one_of(st.sampled_from([0.5, 0.6, 0.7, 0.8]), st.floats(0, 1), st.just(float("nan"))),
    st.sampled_from(["completed", "completed", "completed", "stopped_early", "diverged", "error"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, min_size=1, max_size=25))
def test_front_matches_brute_force(rows):
    df = pd.DataFrame(
        {
            "flops": [r[0] * G for r in rows],
            "top1": [r[1] for r in rows],
            "status": [r[2] for r in rows],
        }
    )
    ok = [i for i, r in enumerate(rows) if r[2] == "completed" and not math.isnan(r[1])]
    if not ok:
        with pytest.raises(ValueError):
            A.pareto_front(df)
        return
    x = np.array([rows[i][0] for i in ok], dtype=float)
    y = np.array([rows[i][1] for i in ok])
    expected = {ok[i] for i in _brute_front(x, y)}
    front = A.pareto_front(df)
    assert set(front.index) == expected
    assert len(front) == len(expected)  # no row twice
    assert np.all(np.diff(front["flops"].to_numpy()) >= 0)


# ------------------------------------------------------------------------------------------
# EDFs and complexity weights
# ------------------------------------------------------------------------------------------


def test_edf_values_at_known_points():
    e = [1.0, 2.0, 2.0, 3.0]
    # F(p) = share of errors strictly below p.
    assert A.edf_at(e, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]).tolist() == [0, 0, 0.25, 0.25, 0.75, 0.75, 1.0]
    x, F = A.error_edf(e)
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert F.tolist() == [0.25, 0.75, 1.0]  # value on (x[k], x[k+1]]
    # Weights are normalised: 3:1 on errors 1 and 2 -> F(1.5) = 3/4.
    assert A.edf_at([1.0, 2.0], [1.5], weights=[3, 1])[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="finite"):
        A.error_edf([1.0, np.nan])


def test_complexity_weights_sum_to_one_and_equalise_bins():
    # log10 range 0..2 with 2 bins: three models at 1 in bin 0, one at 100 in bin 1.
    w = A.complexity_weights([1, 1, 1, 100], bins=2)
    assert w.tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    # An empty middle bin carries no mass: the two occupied bins share it.
    w = A.complexity_weights([1, 1, 100], bins=3)
    assert w.tolist() == pytest.approx([0.25, 0.25, 0.5])
    rng = np.random.default_rng(0)
    flops = np.exp(rng.uniform(np.log(1e9), np.log(1e10), 200))
    w = A.complexity_weights(flops, bins=5)
    assert w.sum() == pytest.approx(1.0)
    ids = np.clip(np.floor((np.log(flops) - np.log(1e9)) / np.log(10) * 5), 0, 4).astype(int)
    totals = np.bincount(ids, weights=w)
    assert totals[totals > 0] == pytest.approx(np.full((totals > 0).sum(), 1 / (totals > 0).sum()))
    # A single design / all-equal FLOPs: one bin, uniform weights.
    assert A.complexity_weights([5e9]).tolist() == [1.0]
    assert A.complexity_weights([5e9] * 4, bins=3).tolist() == [0.25] * 4
    with pytest.raises(ValueError, match="positive"):
        A.complexity_weights([0, 1e9])
    with pytest.raises(ValueError, match="bins"):
        A.complexity_weights([1e9, 2e9], bins=0)


def test_edf_by_choice_labels_and_normalised_curves():
    df = trials(
        dict(layer_scale=1e-6, top1=0.80, flops=1 * G),
        dict(layer_scale=1e-6, top1=0.70, flops=1 * G),
        dict(layer_scale=np.nan, top1=0.75, flops=1 * G),
        dict(layer_scale=np.nan, top1=0.90, flops=1 * G, status="stopped_early"),
    )
    info = A.edf_by_choice(df, "layer_scale")
    assert info.n == 3
    by = {c.choice: c for c in info.curves}
    assert set(by) == {"1e-06", "none"}  # NaN layer scale is a choice, labelled "none"
    assert by["1e-06"].label == "2|20.0|25.0"  # errors 20 % and 30 %
    assert by["none"].label == "1|25.0|25.0"
    assert by["1e-06"].x == pytest.approx((20.0, 30.0)) and by["1e-06"].F == pytest.approx((0.5, 1.0))

    # Three cheap designs (errors 10, 20, 30) and one costly (error 40): normalised, the
    # costly bin weighs as much as the three cheap ones together.
    df = trials(
        dict(top1=0.9, flops=1 * G),
        dict(top1=0.8, flops=1 * G),
        dict(top1=0.7, flops=1 * G),
        dict(top1=0.6, flops=100 * G),
    )
    curve = A.edf_by_choice(df, "kernel", normalize=True, bins=2).curves[0]
    assert curve.x == pytest.approx((10, 20, 30, 40))
    assert curve.F == pytest.approx((1 / 6, 2 / 6, 3 / 6, 1.0))
    plain = A.edf_by_choice(df, "kernel").curves[0]
    assert plain.F == pytest.approx((0.25, 0.5, 0.75, 1.0))


# ------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_reproducible():
    x = np.random.default_rng(1).normal(0.7, 0.05, 50)
    a, b = A.bootstrap_mean_max(x, 2000, seed=3), A.bootstrap_mean_max(x, 2000, seed=3)
    assert a == b
    assert A.bootstrap_mean_max(x, 2000, seed=4)[0] != a[0]
    # Each key (a dimension and a choice) draws its own stream.
    assert A.bootstrap_mean_max(x, 2000, seed=3, keys=("kernel", "7"))[0] != a[0]


def test_mean_interval_shrinks_with_n_like_the_standard_error():
    rng = np.random.default_rng(0)
    small = A.bootstrap_mean_max(rng.normal(0, 1, 10), 10_000, seed=0)[0]
    large = A.bootstrap_mean_max(rng.normal(0, 1, 1000), 10_000, seed=0)[0]
    assert small.n == 10 and large.n == 1000
    assert large.width < small.width / 3
    # CLT: a 95 % interval of a mean of 1000 unit normals is about 2 * 1.96 / sqrt(1000) wide.
    assert large.width == pytest.approx(2 * 1.96 / math.sqrt(1000), rel=0.15)


def test_max_interval_ends_at_the_sample_max():
    x = np.random.default_rng(2).normal(0.7, 0.05, 40)
    ci = A.bootstrap_mean_max(x, 5000, seed=0)[1]
    # A resample holds the sample max with probability 1 - (39/40)^40 ~ 0.64 > 0.025, so the
    # upper percentile is the sample max itself.
    assert ci.estimate == x.max() and ci.hi == x.max()
    assert x.min() <= ci.lo < ci.hi
    one = A.bootstrap_mean_max([0.5], 100, seed=0)[1]
    assert (one.lo, one.estimate, one.hi, one.n) == (0.5, 0.5, 0.5, 1)


# ------------------------------------------------------------------------------------------
# Choice effects
# ------------------------------------------------------------------------------------------


def test_choice_effects_by_construction():
    df = trials(
        dict(kernel=3, top1=0.70, flops=1 * G),  # dominated by row 1
        dict(kernel=3, top1=0.72, flops=1 * G),  # front
        dict(kernel=7, top1=0.80, flops=3 * G),  # dominated by row 4 (same FLOPs)
        dict(kernel=7, top1=0.82, flops=3 * G),  # front
        dict(kernel=7, top1=0.75, flops=2 * G),  # front
        dict(kernel=7, top1=0.99, flops=2 * G, status="stopped_early"),
    )
    eff = A.choice_effects(df, dims=["kernel"], n_boot=NB).set_index("choice")
    assert list(eff.index) == ["3", "7"]
    assert eff.loc["3", "n"] == 2 and eff.loc["7", "n"] == 3
    assert set(eff["n_dim"]) == {5}
    assert eff.loc["3", "top1_mean"] == pytest.approx(0.71)
    assert eff.loc["7", "top1_mean"] == pytest.approx(0.79)
    assert eff.loc["7", "top1_best"] == pytest.approx(0.82)
    assert eff.loc["3", "gflops_mean"] == pytest.approx(1.0)
    assert eff.loc["7", "gflops_mean"] == pytest.approx(8 / 3)
    overall = (0.70 + 0.72 + 0.80 + 0.82 + 0.75) / 5
    assert eff.loc["3", "effect"] == pytest.approx(0.71 - overall)
    assert eff.loc["7", "effect_vs_best_other"] == pytest.approx(0.08)
    assert eff.loc["3", "effect_vs_best_other"] == pytest.approx(-0.08)
    assert eff.loc["3", "front_share"] == pytest.approx(1 / 3)
    assert eff.loc["7", "front_share"] == pytest.approx(2 / 3)
    assert set(eff["front_n"]) == {3}
    for c in ("3", "7"):  # a bootstrap interval of a mean lies within the sample's range
        assert eff.loc[c, "top1_mean_lo"] <= eff.loc[c, "top1_mean"] <= eff.loc[c, "top1_mean_hi"]
    assert eff.loc["7", "top1_mean_lo"] >= 0.75 and eff.loc["7", "top1_mean_hi"] <= 0.82
    assert eff.loc["7", "top1_best_hi"] == pytest.approx(0.82)


# ------------------------------------------------------------------------------------------
# Verdict
# ------------------------------------------------------------------------------------------


def test_verdict_dominated_point_names_dominators_and_gap():
    v = A.convnext_verdict(dominated_table(), dims=["kernel"], n_boot=NB)
    assert v.n == 5 and v.reference_index == 2
    assert v.on_front is False
    assert [d.index for d in v.dominated_by] == [0, 4]  # sorted by top-1 gain
    a, e = v.dominated_by
    assert a.top1_gap == pytest.approx(0.01) and a.flop_ratio == pytest.approx(4 / 4.5)
    assert e.top1_gap == pytest.approx(0.005) and e.flop_ratio == pytest.approx(1.0)
    assert v.top1_gap == pytest.approx(0.01)
    assert v.flop_ratio == pytest.approx(4 / 4.5)
    assert v.front_n == 2
    k = v.dim("kernel")
    assert k.convnext_choice == "7"
    assert k.front_share == 0.0  # both front designs use kernel 3
    assert v.rule == A.verdict_rule(A.MIN_TRIALS, A.LEVEL) and "fewer than 3" in v.rule


def test_verdict_on_front_and_duplicate_does_not_dominate():
    df = trials(
        dict(flops=4 * G, top1=0.82, reference="convnext_t"),  # 0
        dict(flops=4 * G, top1=0.82),  # 1 exact duplicate: does not dominate
        dict(flops=3 * G, top1=0.78),  # 2 cheaper, worse: on the front too
        dict(flops=5 * G, top1=0.80),  # 3 dominated
    )
    v = A.convnext_verdict(df, dims=["kernel"], n_boot=NB)
    assert v.on_front is True and v.dominated_by == () and v.top1_gap is None and v.flop_ratio is None
    assert set(A.pareto_front(df).index) == {0, 1, 2}
    assert A.summarize(df)["convnext_on_front"] is True


def _verdict_table(cx_values, other_values, third_values=()):
    rows = [dict(kernel=7, top1=t, reference="convnext_t" if i == 0 else "") for i, t in enumerate(cx_values)]
    rows += [dict(kernel=3, top1=t) for t in other_values]
    rows += [dict(kernel=5, top1=t) for t in third_values]
    return trials(*rows)


def test_verdict_supported():
    # Kernel 7 within [0.79, 0.81], kernel 3 within [0.69, 0.71]: a bootstrap interval of a mean
    # stays inside its sample's range, so the intervals cannot overlap.
    df = _verdict_table([0.79, 0.80, 0.81, 0.80, 0.795], [0.69, 0.70, 0.71, 0.70, 0.705])
    d = A.convnext_verdict(df, dims=["kernel"], n_boot=NB).dim("kernel")
    assert d.verdict == "supported", d.reason
    assert d.best_choice == "7" and d.convnext_choice == "7" and d.n == 10


def test_verdict_not_supported_even_if_a_third_choice_is_thin():
    df = _verdict_table([0.69, 0.70, 0.71, 0.70], [0.79, 0.80, 0.81, 0.80], third_values=[0.75])
    d = A.convnext_verdict(df, dims=["kernel"], n_boot=NB).dim("kernel")
    assert d.verdict == "not supported", d.reason
    assert d.best_choice == "3" and "'3'" in d.reason


def test_verdict_inconclusive_cases():
    # Overlapping samples (interleaved values, means 0.75 and 0.748).
    df = _verdict_table([0.70, 0.80, 0.75, 0.72, 0.78], [0.71, 0.79, 0.74, 0.73, 0.77])
    assert A.convnext_verdict(df, dims=["kernel"], n_boot=NB).dim("kernel").verdict == "inconclusive"
    # Same samples swapped: another choice has the (slightly) higher mean, but a higher mean
    # alone is not evidence against ConvNeXt's choice while the intervals overlap.
    df = _verdict_table([0.71, 0.79, 0.74, 0.73, 0.77], [0.70, 0.80, 0.75, 0.72, 0.78])
    d = A.convnext_verdict(df, dims=["kernel"], n_boot=NB).dim("kernel")
    assert d.verdict == "inconclusive" and d.best_choice == "3", d.reason
    # Clearly better but only 2 trials (< MIN_TRIALS = 3).
    df = _verdict_table([0.80, 0.81], [0.69, 0.70, 0.71, 0.70])
    d = A.convnext_verdict(df, dims=["kernel"], n_boot=NB).dim("kernel")
    assert d.verdict == "inconclusive" and "fewer than 3" in d.reason
    # Clearly better than kernel 3, but kernel 5 has a single trial: not all alternatives judged.
    df = _verdict_table([0.79, 0.80, 0.81], [0.69, 0.70, 0.71], third_values=[0.70])
    d = A.convnext_verdict(df, dims=["kernel"], n_boot=NB).dim("kernel")
    assert d.verdict == "inconclusive" and "'5'" in d.reason
    # ...which a smaller min_trials turns into support (the rule text follows min_trials).
    v = A.convnext_verdict(df, dims=["kernel"], n_boot=NB, min_trials=1)
    assert v.dim("kernel").verdict == "supported" and "fewer than 1" in v.rule
    # A dimension with one value cannot be judged.
    d = A.convnext_verdict(df, dims=["stem"], n_boot=NB).dim("stem")
    assert d.verdict == "inconclusive" and "not varied" in d.reason


def test_verdict_without_reference_row():
    df = _verdict_table([0.79, 0.80, 0.81], [0.69, 0.70, 0.71])
    df["reference"] = ""
    v = A.convnext_verdict(df, dims=["kernel"], n_boot=NB)
    assert v.on_front is None and v.reference_index is None and "convnext_t" in v.message
    d = v.dim("kernel")
    assert d.convnext_choice is None and d.verdict == "inconclusive" and d.best_choice == "7"
    assert d.front_share is None
    # Choices can be given directly instead.
    v = A.convnext_verdict(df, {"kernel": 7}, dims=["kernel"], n_boot=NB)
    assert v.on_front is None and v.dim("kernel").verdict == "supported"


def test_verdict_with_failed_reference_row_still_judges_its_choices():
    df = _verdict_table([0.79, 0.80, 0.81, 0.80], [0.69, 0.70, 0.71])
    df.loc[0, ["status", "top1"]] = ["diverged", np.nan]
    v = A.convnext_verdict(df, dims=["kernel"], n_boot=NB)
    assert v.on_front is None and "diverged" in v.message and v.n == 6
    assert v.dim("kernel").convnext_choice == "7" and v.dim("kernel").verdict == "supported"


def test_verdict_reference_given_as_a_row_or_an_outside_point():
    df = dominated_table()
    df["reference"] = ""
    # A row of the table: it must not count as dominating itself.
    v = A.convnext_verdict(df, df.loc[2], dims=["kernel"], n_boot=NB)
    assert v.reference_index == 2 and [d.index for d in v.dominated_by] == [0, 4]
    # A point from outside the table (e.g. the paper's ConvNeXt-T) at 4G FLOPs and top1 0.80
    # ties row 0 exactly (no domination) and is beaten by nothing else at <= 4G.
    v = A.convnext_verdict(df, {"kernel": 7, "flops": 4 * G, "top1": 0.80}, dims=["kernel"], n_boot=NB)
    assert v.on_front is True and v.dim("kernel").convnext_choice == "7"


def test_verdict_single_usable_design():
    df = trials(dict(reference="convnext_t", top1=0.8), dict(status="error", top1=np.nan))
    v = A.convnext_verdict(df, n_boot=NB)
    assert v.n == 1 and v.on_front is True and v.front_n == 1
    assert len(v.dims) == len(A.DIMENSIONS)
    assert all(d.verdict == "inconclusive" for d in v.dims)
    assert v.dim("layer_scale").convnext_choice == "1e-06" and v.dim("layer_scale").front_share == 1.0


# ------------------------------------------------------------------------------------------
# Summary and rank agreement
# ------------------------------------------------------------------------------------------


def test_summarize():
    s = A.summarize(dominated_table())
    assert s["n_trials"] == 6 and s["n_usable"] == 5 and s["n_excluded"] == 1
    assert s["status_counts"] == {"completed": 5, "stopped_early": 1}
    assert s["best"]["index"] == 1 and s["best"]["top1"] == pytest.approx(0.82)  # not the stopped row
    assert s["front_size"] == 2 and s["convnext_on_front"] is False


def test_rank_agreement():
    a = [0.70, 0.75, 0.78, 0.80, 0.82]
    same = A.rank_agreement(a, [1, 2, 3, 4, 5])
    assert same.tau == pytest.approx(1.0) and same.rho == pytest.approx(1.0) and same.n == 5
    rev = A.rank_agreement(a, [5, 4, 3, 2, 1])
    assert rev.tau == pytest.approx(-1.0) and rev.rho == pytest.approx(-1.0)
    # Series align on the index, not on position; a NaN pair is dropped.
    sa = pd.Series([0.70, 0.75, 0.80, np.nan], index=["resnet", "stage", "patchify", "x"])
    sb = pd.Series([82.1, 78.8, 79.4], index=["patchify", "resnet", "stage"])
    r = A.rank_agreement(sa, sb)
    assert r.n == 3 and r.tau == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same items"):
        A.rank_agreement([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        A.rank_agreement([1.0], [2.0])
