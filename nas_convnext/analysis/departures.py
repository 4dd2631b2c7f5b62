"""Where a proxy parts from the paper: each roadmap step's distance from the paper's line.

A calibration's tau says how well a proxy orders the roadmap, not which designs it misjudges.
A proxy may spread the steps wider or narrower than ImageNet does (the `cpu` proxy spreads them
about 1.3x as wide): that alone changes no ranking. So the proxy's mean top-1 per step is
fitted by least squares to a straight line in the paper's top-1, and each step's departure is
its distance from that line, in percentage points of proxy top-1. A step far above the line is
one the proxy favours (a design that learns fast in a short run), one far below it one the
proxy undervalues. These are the choices whose verdicts deserve the least trust.

Each departure comes with an interval for the noise of the step's mean over seeds (Student's
t with n - 1 degrees of freedom on the seeds' standard deviation). The line's own uncertainty
is left out (it rests on all the steps at once, far less uncertain than any one step), so the
interval is a little too narrow; and over 17 steps about one 95% interval in twenty leaves 0
by chance alone. With one seed there is no interval (NaN).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .calibration import LEVEL, Calibration

__all__ = ["departures", "largest_departures"]

_COLUMNS = ["step", "n", "departure_pp", "departure_lo", "departure_hi"]


def departures(cal: Calibration, level: float = LEVEL) -> pd.DataFrame:
    """Each step's departure from the least-squares line of proxy top-1 on the paper's.

    Parameters
    ----------
    cal:
        A :class:`~nas_convnext.analysis.calibration.Calibration` (its per-step table: proxy
        mean and sd as fractions, the paper's top-1 in percent).
    level:
        Confidence level of each departure's interval, in (0, 1).

    Returns a DataFrame, one row per step in the calibration's order, with columns step, n,
    departure_pp (proxy points above the line; NaN for a step without a finite mean) and
    departure_lo / departure_hi (its interval; NaN with fewer than two seeds). With fewer than
    three steps or no spread in the paper's top-1 there is no line, and every departure is NaN.
    Raises ValueError for a level outside (0, 1).
    """
    if not (isinstance(level, float) and 0 < level < 1):
        raise ValueError(f"level={level!r}: expected a number between 0 and 1")
    t = cal.table()
    mean = 100 * t["mean"].to_numpy(float)
    sd = 100 * t["sd"].to_numpy(float)
    paper = t["paper_top1"].to_numpy(float)
    n = t["n"].to_numpy(int)
    ok = np.isfinite(mean) & np.isfinite(paper)
    dep = np.full(len(t), math.nan)
    if ok.sum() >= 3 and np.ptp(paper[ok]) > 0:
        slope, icept = np.polyfit(paper[ok], mean[ok], 1)
        dep[ok] = mean[ok] - (icept + slope * paper[ok])
        # a proxy exactly on the line leaves rounding residue (1e-14 pp), not a departure
        dep[np.abs(dep) < 1e-9] = 0.0
    half = np.full(len(t), math.nan)
    many = (n >= 2) & np.isfinite(sd)
    if many.any():
        q = stats.t.ppf(0.5 + level / 2, n[many] - 1)
        half[many] = q * sd[many] / np.sqrt(n[many])
    return pd.DataFrame({"step": t["step"], "n": n, "departure_pp": dep,
                         "departure_lo": dep - half, "departure_hi": dep + half},
                        columns=_COLUMNS)


def largest_departures(table: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The `k` steps farthest from the line, largest first, among those whose interval leaves 0.

    `table` is :func:`departures`'s. A step whose interval includes 0 is not shown to depart
    at all, so it is left out; with no intervals (one seed) every step with a departure counts,
    since nothing tells noise from bias then (the caller says so).
    """
    if k < 1:
        raise ValueError(f"k={k!r}: expected a positive integer")
    d = table[np.isfinite(table["departure_pp"])]
    has_ci = np.isfinite(d["departure_lo"]) & np.isfinite(d["departure_hi"])
    if has_ci.any():
        d = d[has_ci & ((d["departure_lo"] > 0) | (d["departure_hi"] < 0))]
    order = d["departure_pp"].abs().sort_values(ascending=False, kind="stable").index
    return d.loc[order].head(k).reset_index(drop=True)
