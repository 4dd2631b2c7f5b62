"""Rank statistics of many bootstrap resamples at once: Kendall's tau-b and Spearman's rho of
every row of a (B x n) array against one ranking, and the percentile interval of the results
(used by `calibration`, where thousands of resamples would otherwise cost thousands of scipy
calls)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of every row of ``x`` (B x n) against ``y`` (n), NaN for a constant row.

    tau-b = sum over pairs of sign(dx) sign(dy) / sqrt(pairs untied in x * pairs untied in y),
    which is scipy.stats.kendalltau's default; done row-wise so thousands of resamples cost
    one array operation.
    """
    i, j = np.triu_indices(x.shape[1], k=1)
    sx = np.sign(x[:, j] - x[:, i])
    sy = np.sign(y[j] - y[i])
    num = (sx * sy).sum(axis=1)
    den = np.sqrt(np.count_nonzero(sx, axis=1) * float(np.count_nonzero(sy)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho (average ranks for ties) of every row of ``x`` against ``y``."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean()
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def _rescaled_deviations(v: np.ndarray) -> np.ndarray:
    """A step's seed deviations from its mean, scaled by sqrt(n / (n - 1)) so that the mean of
    n of them drawn with replacement has the variance of the observed mean (s^2 / n); drawn
    unscaled, two seeds would give half of it. One seed: zeros (no noise to draw)."""
    if v.size < 2:
        return np.zeros_like(v)
    return (v - v.mean()) * math.sqrt(v.size / (v.size - 1))


def _percentile(boot: np.ndarray, level: float) -> tuple[float, float]:
    ok = boot[np.isfinite(boot)]
    if ok.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(ok, [a, 1.0 - a])
    return (float(lo), float(hi))
