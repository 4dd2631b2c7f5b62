"""Paired one-change statistics on hand-made tables of variant and base results."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas_convnext.analysis.paired import (
    detectable_difference,
    paired_analysis,
    seeds_needed,
    t_interval,
)

BASE = np.array([0.50, 0.52, 0.51, 0.49, 0.53])


def base_table(top1=BASE, seeds=None) -> pd.DataFrame:
    seeds = range(len(top1)) if seeds is None else seeds
    return pd.DataFrame({"seed": list(seeds), "top1": list(top1)})


def variants_table(spec: dict[tuple[str, str], np.ndarray], seeds=None) -> pd.DataFrame:
    rows = []
    for (dim, value), top1 in spec.items():
        for s, t in zip(range(len(top1)) if seeds is None else seeds, top1):
            rows.append({"variant": f"{dim}={value}", "dimension": dim, "value": value,
                         "seed": s, "top1": t, "flops": 4.0e9})
    return pd.DataFrame(rows)


def test_a_constant_shift_gives_a_zero_width_interval():
    a = paired_analysis(variants_table({("kernel", "3"): BASE - 0.02}), base_table())
    d = a.diff("kernel=3")
    assert d.mean == pytest.approx(-0.02)
    assert d.sd == pytest.approx(0.0, abs=1e-12)
    assert d.hi - d.lo == pytest.approx(0.0, abs=1e-12)
    assert d.lo == pytest.approx(-0.02)
    assert d.detectable == pytest.approx(0.0, abs=1e-10)
    assert d.n == 5 and d.seeds == (0, 1, 2, 3, 4)
    assert a.verdict("kernel").verdict == "better"


def test_the_interval_is_students_t():
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.01, 0.004, 6)
    mean, sd, lo, hi = t_interval(diffs)
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert mean == pytest.approx(diffs.mean()) and sd == pytest.approx(diffs.std(ddof=1))
    # a normal interval would be narrower: t(5) = 2.57 against 1.96
    assert hi - lo > 2 * 1.96 * sd / math.sqrt(6) * 1.25
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([0.01])


def test_flipping_the_sign_of_the_mean_flips_the_verdict():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.002, (2, 5))
    worse_alts = {("norm", "bn"): BASE - 0.015 + noise[0], ("norm", "rms"): BASE - 0.01 + noise[1]}
    a = paired_analysis(variants_table(worse_alts), base_table(), base_values={"norm": "ln"})
    assert a.verdict("norm").verdict == "better"
    assert a.verdict("norm").base_value == "ln"
    assert all(d.hi < 0 for d in a.diffs)
    mirrored = {k: 2 * BASE - v for k, v in worse_alts.items()}   # variant - base negated
    b = paired_analysis(variants_table(mirrored), base_table())
    assert b.verdict("norm").verdict == "worse"
    assert [d.mean for d in b.diffs] == pytest.approx([-d.mean for d in a.diffs])
    assert "beats the base" in b.verdict("norm").reason
    # one alternative above zero is enough for "worse", even if the other is below
    mixed = {("norm", "bn"): worse_alts[("norm", "bn")], ("norm", "rms"): mirrored[("norm", "rms")]}
    assert paired_analysis(variants_table(mixed), base_table()).verdict("norm").verdict == "worse"


def test_an_interval_across_zero_is_undecided_with_the_seeds_it_would_take():
    diffs = np.array([0.004, -0.006, 0.005, -0.002, 0.003])      # mean +0.0008, sd ~0.0046
    ahead = BASE + diffs
    behind = BASE - 0.004 + np.array([0.003, -0.003, 0.002, -0.002, 0.0])
    a = paired_analysis(variants_table({("act", "relu"): ahead, ("act", "silu"): behind}),
                        base_table())
    v = a.verdict("act")
    assert v.verdict == "undecided"
    relu, silu = a.diff("act=relu"), a.diff("act=silu")
    assert relu.lo < 0 < relu.hi
    # relu beats the base on average: deciding the dimension means showing that (worse)
    assert v.needed == relu.needed and relu.needed > 5
    assert v.detectable == max(relu.detectable, silu.detectable)
    # with only alternatives behind the base, it takes the most any of them needs (better)
    b = paired_analysis(variants_table({("act", "silu"): behind,
                                        ("act", "relu"): BASE - 0.001 + diffs}), base_table())
    needs = [d.needed for d in b.diffs if d.lo <= 0 <= d.hi]
    assert b.verdict("act").verdict == "undecided"
    assert b.verdict("act").needed == max(needs)


def test_detectable_difference_and_seeds_needed_fall_as_the_spread_falls():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, 5)
    noise = (noise - noise.mean()) / noise.std(ddof=1)
    wide = paired_analysis(variants_table({("kernel", "5"): BASE - 0.004 + 0.006 * noise}),
                           base_table()).diff("kernel=5")
    narrow = paired_analysis(variants_table({("kernel", "5"): BASE - 0.004 + 0.002 * noise}),
                             base_table()).diff("kernel=5")
    assert wide.mean == pytest.approx(narrow.mean)
    assert wide.sd == pytest.approx(3 * narrow.sd)
    assert narrow.detectable == pytest.approx(wide.detectable / 3)   # proportional to the spread
    assert narrow.needed < wide.needed


def test_detectable_difference_has_the_stated_power():
    # simulate paired t tests at the detectable difference: about 80% must reject
    rng = np.random.default_rng(3)
    for n in (3, 6):
        delta = detectable_difference(1.0, n)
        x = rng.normal(delta, 1.0, (40_000, n))
        p = stats.ttest_1samp(x, 0.0, axis=1).pvalue
        assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.012)
        # a normal approximation would claim far less: (1.96 + 0.84) / sqrt(n)
        assert delta > (1.96 + 0.8416) / math.sqrt(n)


def test_seeds_needed_is_the_first_count_with_the_power():
    rng = np.random.default_rng(4)
    # a true difference of 1.6 spreads: 80% power falls between two seed counts by a margin
    # (0.75 and 0.83) that 40,000 simulated runs tell apart
    n, note = seeds_needed(0.008, 0.005)
    assert "80%" in note
    for m, want_above in ((n, True), (n - 1, False)):
        x = rng.normal(0.008, 0.005, (40_000, m))
        power = np.mean(stats.ttest_1samp(x, 0.0, axis=1).pvalue < 0.05)
        assert (power >= 0.8 - 0.012) == want_above, (m, power)
    # more seeds for a smaller difference at the same spread
    assert seeds_needed(0.004, 0.005)[0] > n
    assert seeds_needed(0.0, 0.005)[0] is None
    assert seeds_needed(1e-6, 0.1, max_seeds=50)[0] is None
    assert seeds_needed(0.01, 0.0)[0] == 2


def test_unpaired_seeds_are_ignored():
    base = base_table(BASE[:4], seeds=[0, 1, 2, 3])
    top1 = np.array([BASE[0] - 0.01, BASE[1] - 0.01, BASE[2] - 0.01, 0.99, np.nan])
    variants = variants_table({("stem", "resnet"): top1}, seeds=[0, 1, 2, 5, 3])
    d = paired_analysis(variants, base).diff("stem=resnet")
    # seed 5 has no base run, seed 3 failed for the variant: neither counts
    assert d.seeds == (0, 1, 2)
    assert d.unpaired_seeds == (3, 5)
    assert d.mean == pytest.approx(-0.01)
    assert d.n == 3


def test_one_paired_seed_cannot_give_an_interval():
    variants = variants_table({("kernel", "3"): BASE[:1] - 0.01, ("kernel", "5"): BASE - 0.01})
    with pytest.raises(ValueError, match="kernel=3.*1 seed"):
        paired_analysis(variants, base_table())
    a = paired_analysis(variants, base_table(), on_short="undecided")
    assert math.isnan(a.diff("kernel=3").lo)
    assert a.verdict("kernel").verdict == "undecided"   # kernel=5 alone is below zero
    assert a.to_json()["variants"][0]["ci"] is None


def test_json_has_what_the_report_needs():
    a = paired_analysis(variants_table({("kernel", "3"): BASE - 0.02, ("act", "relu"): BASE + 0.01}),
                        base_table(), base_values={"kernel": 7, "act": "gelu"})
    j = a.to_json()
    assert j["seeds"] == [0, 1, 2, 3, 4]
    assert j["verdicts"] == {"kernel": "better", "act": "worse"}
    assert j["decided"] == 2
    first = j["variants"][0]
    assert {"dimension", "value", "flops", "mean_diff", "ci"} <= set(first)
    assert first["flops"] == 4.0e9 and first["ci"] == pytest.approx([-0.02, -0.02])
    assert "Student t" in j["interval_method"]
    assert j["verdict_details"][0]["base_value"] == "7"


@pytest.mark.parametrize("mutate, words", [
    (lambda v, b: (v.assign(top1=v["top1"] * 100), b), "fraction"),
    (lambda v, b: (v, pd.concat([b, b.iloc[:1]])), "more than once"),
    (lambda v, b: (pd.concat([v, v.iloc[:1]]), b), "more than once"),
    (lambda v, b: (v.assign(dimension=["kernel"] * 4 + ["act"]), b), "one of each"),
    (lambda v, b: (v.drop(columns=["value"]), b), "value"),
    (lambda v, b: (v, b.assign(top1=np.nan)), "no finite top-1"),
])
def test_bad_tables_are_refused_with_a_reason(mutate, words):
    v, b = mutate(variants_table({("kernel", "3"): BASE - 0.01}), base_table())
    with pytest.raises(ValueError, match=words):
        paired_analysis(v, b)
