"""calibrate's statistics on hand-made tables of proxy results over the paper's roadmap."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas_convnext.analysis.calibration import (
    Calibration,
    _rescaled_deviations,
    _rho,
    _tau_b,
    calibrate,
    can_tell_reason,
    proxy_can_tell,
    roadmap_reference,
)

REF = roadmap_reference()
PAPER = REF["paper_top1"].to_numpy()


def runs_from(top1_by_seed: dict[int, np.ndarray], steps=None) -> pd.DataFrame:
    steps = list(REF["step"]) if steps is None else steps
    return pd.DataFrame([{"step": st, "seed": s, "top1": float(v)}
                         for s, vals in top1_by_seed.items() for st, v in zip(steps, vals)])


def noisy(n_seeds: int, sd: float, noise_seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(noise_seed)
    return runs_from({s: PAPER / 100 - 0.3 + rng.normal(0, sd, PAPER.size) for s in range(n_seeds)})


def test_reference_is_the_papers_roadmap_in_order():
    assert list(REF["step"]) == list(range(17))
    assert REF["paper_top1"].iloc[0] == pytest.approx(76.13)
    assert REF["paper_top1"].iloc[-1] == pytest.approx(81.97)
    # steps 00 and 01 differ in recipe only: same design, same FLOPs
    assert REF["flops"].iloc[0] == REF["flops"].iloc[1]


def test_proxy_equal_to_paper_gives_one_even_with_the_papers_tie():
    # an affine map of the paper's figures, two seeds that agree exactly
    cal = calibrate(runs_from({0: PAPER / 200 + 0.1, 1: PAPER / 200 + 0.1}), REF, n_boot=500)
    # Table 10 has a tie (80.57 twice): tau-a would give 135/136, tau-b gives exactly 1
    assert cal.kendall_tau == pytest.approx(1.0)
    assert cal.spearman_rho == pytest.approx(1.0)
    assert cal.kendall_tau_ci == pytest.approx((1.0, 1.0))
    assert dict(cal.per_seed_kendall_tau) == pytest.approx({0: 1.0, 1: 1.0})
    assert cal.seed_kendall_tau == pytest.approx(1.0)
    assert cal.seed_pairs == 1
    # 16 consecutive steps, one of them (09 -> 10) unchanged in the paper and left out
    assert (cal.sign_agree, cal.sign_pairs) == (15, 15)
    assert cal.sign_share == 1.0
    assert any("equal paper top-1" in n for n in cal.notes)
    assert cal.n_steps == 17 and cal.n_seeds == 2 and cal.seeds == (0, 1)
    assert proxy_can_tell(cal)


def test_reversed_proxy_gives_minus_one():
    cal = calibrate(runs_from({0: 1 - PAPER / 100, 1: 1 - PAPER / 100}), REF, n_boot=500)
    assert cal.kendall_tau == pytest.approx(-1.0)
    assert cal.spearman_rho == pytest.approx(-1.0)
    assert dict(cal.per_seed_kendall_tau) == pytest.approx({0: -1.0, 1: -1.0})
    assert (cal.sign_agree, cal.sign_pairs) == (0, 15)
    assert not proxy_can_tell(cal)


def test_ties_in_proxy_top1_use_tau_b_and_average_ranks():
    ref = pd.DataFrame({"step": ["a", "b", "c", "d"], "paper_top1": [1.0, 2.0, 3.0, 4.0],
                        "flops": [4.0, 3.0, 2.0, 1.0]})
    runs = runs_from({0: np.array([0.1, 0.1, 0.3, 0.4])}, steps=list(ref["step"]))
    cal = calibrate(runs, ref, n_boot=100)
    # by hand: 5 of 6 pairs untied in the proxy, all concordant: tau-b = 5 / sqrt(5 * 6)
    assert cal.kendall_tau == pytest.approx(5 / math.sqrt(30))
    # average ranks (1.5, 1.5, 3, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5)
    assert cal.spearman_rho == pytest.approx(4.5 / math.sqrt(22.5))
    assert cal.flops_kendall_tau == pytest.approx(-1.0)
    # the proxy's tie is no change, the paper's change is up: one disagreement of three
    assert (cal.sign_agree, cal.sign_pairs) == (2, 3)


def test_rowwise_rank_statistics_match_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(40, 12)).astype(float)   # many ties
    y = rng.integers(0, 4, size=12).astype(float)
    taus, rhos = _tau_b(x, y), _rho(x, y)
    for row, t, r in zip(x, taus, rhos):
        assert t == pytest.approx(stats.kendalltau(row, y).statistic)
        assert r == pytest.approx(stats.spearmanr(row, y).statistic)
    assert math.isnan(_tau_b(np.ones((1, 5)), np.arange(5.0))[0])  # a constant row


def test_intervals_shrink_with_more_seeds_at_the_same_noise():
    # 17 evenly spaced steps and a noise of one gap: with 2 seeds neighbours swap often, with 8
    # seldom. (On the paper's own figures the width barely moves from 2 to 8 seeds: a cluster
    # of steps within 0.3 points stays shuffled by any noise of a point; the tau rises instead.)
    ref = pd.DataFrame({"step": range(17), "paper_top1": np.arange(17.0), "flops": np.ones(17)})
    for noise_seed in (0, 1, 2):
        rng = np.random.default_rng(noise_seed)
        noise = rng.normal(0, 0.01, (8, 17))
        runs = {s: np.arange(17) * 0.01 + 0.3 + noise[s] for s in range(8)}
        two = calibrate(runs_from({s: runs[s] for s in range(2)}), ref, n_boot=2000)
        eight = calibrate(runs_from(runs), ref, n_boot=2000)
        w2 = two.kendall_tau_ci[1] - two.kendall_tau_ci[0]
        w8 = eight.kendall_tau_ci[1] - eight.kendall_tau_ci[0]
        assert w8 < 0.7 * w2, (noise_seed, w2, w8)
        assert (eight.spearman_rho_ci[1] - eight.spearman_rho_ci[0]
                < 0.7 * (two.spearman_rho_ci[1] - two.spearman_rho_ci[0]))
        assert two.kendall_tau_ci[0] < two.kendall_tau_ci[1]


def test_resampled_means_vary_as_much_as_the_observed_mean():
    # the mean of n draws (with replacement) of centred values r has variance mean(r^2) / n;
    # it must equal the observed mean's s^2 / n, also for two seeds (unscaled: half of it)
    rng = np.random.default_rng(4)
    for n in (2, 3, 8):
        v = rng.normal(0.5, 0.01, n)
        r = _rescaled_deviations(v)
        assert r.mean() == pytest.approx(0.0, abs=1e-15)
        assert np.mean(r ** 2) / n == pytest.approx(np.var(v, ddof=1) / n)
    assert not _rescaled_deviations(np.array([0.4])).any()


def test_intervals_are_reproducible_and_seeded():
    runs = noisy(3, 0.01, 5)
    a, b = calibrate(runs, REF, seed=7), calibrate(runs, REF, seed=7)
    c = calibrate(runs, REF, seed=8)
    assert a.kendall_tau_ci == b.kendall_tau_ci
    assert a.kendall_tau_ci != c.kendall_tau_ci


def test_seed_to_seed_tau_near_one_when_seeds_agree_and_low_when_they_do_not():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.6, 17)          # far apart: a tiny noise cannot swap two steps
    agree = runs_from({s: base + rng.normal(0, 1e-6, 17) for s in range(3)})
    cal = calibrate(agree, REF, n_boot=200)
    assert cal.seed_kendall_tau == pytest.approx(1.0)
    assert cal.seed_pairs == 3
    disagree = runs_from({s: rng.uniform(0.3, 0.6, 17) for s in range(3)})
    assert calibrate(disagree, REF, n_boot=200).seed_kendall_tau < 0.6


def test_one_seed_has_no_interval_and_no_seed_ceiling_and_cannot_tell():
    cal = calibrate(runs_from({4: PAPER / 100}), REF, n_boot=200)
    assert cal.kendall_tau == pytest.approx(1.0)
    assert all(math.isnan(v) for v in cal.kendall_tau_ci)
    assert "one seed" in cal.interval_note
    assert math.isnan(cal.seed_kendall_tau) and "one seed" in cal.seed_note
    ok, why = can_tell_reason(cal)
    assert not ok and "no interval" in why
    assert cal.to_json()["kendall_tau_ci"] is None


def test_can_tell_rule_both_ways():
    good = calibrate(noisy(4, 0.002, 0), REF)
    assert good.kendall_tau_ci[0] > good.flops_kendall_tau
    assert proxy_can_tell(good)
    poor = calibrate(noisy(2, 0.05, 0), REF)     # noise swamps the paper's 0.1-2.7 pp steps
    assert poor.kendall_tau_ci[0] <= poor.flops_kendall_tau
    assert not proxy_can_tell(poor)
    # the rule on the JSON form, at the edge: touching the FLOPs-only tau is not enough
    edge = {"kendall_tau_ci": [0.3, 0.8], "flops_kendall_tau": 0.3}
    assert not proxy_can_tell(edge)
    assert proxy_can_tell({"kendall_tau_ci": [0.3001, 0.8], "flops_kendall_tau": 0.3})
    assert not proxy_can_tell({"kendall_tau_ci": None, "flops_kendall_tau": 0.3})


def test_failed_runs_and_missing_steps_are_left_out():
    top1 = PAPER / 100
    runs = runs_from({0: top1, 1: top1})
    runs.loc[(runs["step"] == 5) & (runs["seed"] == 1), "top1"] = np.nan   # one seed diverged
    runs = runs[runs["step"] != 7]                                         # never trained
    cal = calibrate(runs, REF, n_boot=200)
    assert cal.missing_steps == (7,)
    assert cal.n_steps == 16
    by_step = {s.step: s for s in cal.steps}
    assert by_step[5].n == 1 and math.isnan(by_step[5].sd)
    assert by_step[4].n == 2 and by_step[4].sd == pytest.approx(0.0)
    assert "5" in cal.interval_note and "too narrow" in cal.interval_note
    # 16 consecutive pairs, two touch step 7, one (09 -> 10) is a paper tie
    assert cal.sign_pairs == 13
    assert cal.kendall_tau == pytest.approx(1.0)


def test_spread_in_the_per_step_table():
    runs = runs_from({0: PAPER / 100, 1: PAPER / 100 + 0.02})
    t = calibrate(runs, REF, n_boot=100).table()
    assert list(t.columns) == ["step", "n", "mean", "sd", "paper_top1", "flops"]
    assert t["mean"].iloc[3] == pytest.approx(PAPER[3] / 100 + 0.01)
    assert t["sd"].iloc[3] == pytest.approx(0.02 / math.sqrt(2))
    assert (t["n"] == 2).all()


@pytest.mark.parametrize("mutate, words", [
    (lambda r: r.assign(top1=r["top1"] * 100), "fraction"),
    (lambda r: pd.concat([r, r.iloc[:1]]), "appears 2 times"),
    (lambda r: r.assign(step=r["step"].replace(3, 99)), "99"),
    (lambda r: r.drop(columns=["seed"]), "seed"),
    (lambda r: r[r["step"] < 2], "at least 3 steps"),
])
def test_bad_tables_are_refused_with_a_reason(mutate, words):
    runs = runs_from({0: PAPER / 100, 1: PAPER / 100})
    with pytest.raises(ValueError, match=words):
        calibrate(mutate(runs), REF, n_boot=100)


def test_json_round_trip_and_checked_reading():
    cal = calibrate(noisy(3, 0.01, 1), REF, n_boot=300)
    data = json.loads(json.dumps(cal.to_json(), allow_nan=False))
    for key in ("kendall_tau", "kendall_tau_ci", "spearman_rho", "seed_kendall_tau",
                "per_seed_kendall_tau", "flops_kendall_tau"):
        assert key in data
    assert data["per_seed_kendall_tau"] == {str(s): t for s, t in cal.per_seed_kendall_tau}
    assert Calibration.from_json({**data, "minutes": 6.5, "proxy": "cpu"}) == cal
    with pytest.raises(ValueError, match="kendall_tau_ci"):
        Calibration.from_json({**data, "kendall_tau_ci": "high"})
    with pytest.raises(ValueError, match="n_seeds"):
        Calibration.from_json({**data, "n_seeds": -1})
