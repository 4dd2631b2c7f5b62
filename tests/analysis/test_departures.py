"""Each roadmap step's departure from a straight line through the paper's top-1."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nas_convnext.analysis.calibration import calibrate, roadmap_reference
from nas_convnext.analysis.departures import departures, largest_departures
from nas_convnext.report.calibration_report import _steps_frame, departure_line

REF = roadmap_reference()
PAPER = REF["paper_top1"].to_numpy()


def runs_from(top1_by_seed: dict[int, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame([{"step": st, "seed": s, "top1": float(v)}
                         for s, vals in top1_by_seed.items() for st, v in zip(REF["step"], vals)])


def line(bump: dict[int, float] | None = None) -> np.ndarray:
    # a proxy 1.3x as spread as the paper (as the cpu proxy is), as fractions
    v = 0.8 + 1.3 * (PAPER - PAPER.mean()) / 100
    for step, pts in (bump or {}).items():
        v[step] += pts / 100
    return v


def test_a_proxy_on_a_line_through_the_paper_departs_nowhere():
    cal = calibrate(runs_from({0: line(), 1: line()}), REF, n_boot=100)
    d = departures(cal)
    assert list(d["step"]) == list(REF["step"])
    assert np.allclose(d["departure_pp"], 0, atol=1e-9)
    # two seeds that agree: no noise, a zero-width interval at 0, so nothing departs
    assert np.allclose(d["departure_hi"] - d["departure_lo"], 0, atol=1e-9)
    assert largest_departures(d).empty
    assert "No step departs" in departure_line(cal, _steps_frame(cal))


def test_a_favoured_step_is_found_with_its_size_and_named_first():
    rng = np.random.default_rng(3)
    seeds = {s: line({13: 3.0, 5: -1.5}) + rng.normal(0, 0.002, PAPER.size) for s in range(4)}
    cal = calibrate(runs_from(seeds), REF, n_boot=100)
    d = departures(cal).set_index("step")
    # the line is refitted with the bumps in it, so each departure is near its bump, not on it
    assert 2.5 < d.loc[13, "departure_pp"] < 3.5
    assert -2.0 < d.loc[5, "departure_pp"] < -1.0
    others = d.drop(index=[13, 5])["departure_pp"]
    assert others.abs().max() < 0.6
    assert d.loc[13, "departure_lo"] > 0 and d.loc[5, "departure_hi"] < 0
    top = largest_departures(departures(cal), k=2)
    assert list(top["step"]) == [13, 5]
    text = departure_line(cal, _steps_frame(cal))
    assert text.index("step 13 (roadmap/13-fewer-activations) +") < text.index("step 5 (")


def test_the_interval_is_students_t_on_the_seeds_and_narrows_with_more_seeds():
    def widths(n_seeds: int) -> np.ndarray:
        rng = np.random.default_rng(11)
        seeds = {s: line() + rng.normal(0, 0.008, PAPER.size) for s in range(n_seeds)}
        cal = calibrate(runs_from(seeds), REF, n_boot=100)
        d, t = departures(cal), cal.table()
        # the half-width is t(0.975, n - 1) * sd / sqrt(n), in points
        from scipy import stats
        half = stats.t.ppf(0.975, n_seeds - 1) * 100 * t["sd"] / math.sqrt(n_seeds)
        assert np.allclose((d["departure_hi"] - d["departure_lo"]) / 2, half)
        return (d["departure_hi"] - d["departure_lo"]).to_numpy()
    assert np.median(widths(8)) < np.median(widths(2)) / 3


def test_one_seed_has_departures_without_intervals_and_says_so():
    cal = calibrate(runs_from({0: line({12: 2.0})}), REF, n_boot=100)
    d = departures(cal)
    assert d["departure_lo"].isna().all() and d["departure_hi"].isna().all()
    assert largest_departures(d, k=1)["step"].tolist() == [12]
    assert "may be noise" in departure_line(cal, _steps_frame(cal))


def test_a_step_without_a_result_has_no_departure():
    runs = runs_from({0: line({13: 3.0}), 1: line({13: 3.0})})
    cal = calibrate(runs[runs["step"] != 7], REF, n_boot=100)
    d = departures(cal).set_index("step")
    # calibrate leaves the missing step out of its table, so the line is fitted on 16 steps
    assert 7 not in d.index and cal.missing_steps == (7,)
    assert np.isfinite(d["departure_pp"]).all()
    assert d.loc[13, "departure_pp"] > 2.5


@pytest.mark.parametrize("level", [0.0, 1.0, 95, "0.95"])
def test_a_level_outside_zero_to_one_is_refused(level):
    cal = calibrate(runs_from({0: line(), 1: line()}), REF, n_boot=100)
    with pytest.raises(ValueError, match="between 0 and 1"):
        departures(cal, level)
