"""Statistics the analysis rests on: bootstrap intervals, error EDFs, rank agreement.

Plain functions of arrays (no trials tables): percentile-bootstrap intervals of a mean and a
maximum, RegNet's bootstrap of a parameter's best value, the error EDF and its
complexity-normalised weights ("Designing Network Design Spaces", Radosavovic et al. 2020),
and Kendall/Spearman agreement between two orderings. Every generator is seeded per
(seed, key), so a number does not move when other numbers are added to an analysis.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: Confidence level of every bootstrap interval.
LEVEL = 0.95


# Resampling is done in blocks of about this many drawn indices, so 10k resamples of a large
# table never need one giant index matrix, while the block split stays deterministic (same
# seed -> same numbers).
_BLOCK_ELEMS = 1 << 21



def require_columns(df: Any, cols: Sequence[str], what: str) -> None:
    """The one check that a table is a DataFrame holding `cols`: a ValueError naming `what`,
    the missing columns and those present."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame; got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; expected {list(cols)}, "
                         f"present: {list(df.columns)}")

@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap interval, and the sample size behind it."""

    estimate: float
    lo: float
    hi: float
    n: int
    level: float
    n_boot: int

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def overlaps(self, other: Interval) -> bool:
        """Closed intervals: touching counts as overlapping, so a tie is never a separation."""
        return not (self.lo > other.hi or other.lo > self.hi)


@dataclass(frozen=True)
class EdfCurve:
    """The error EDF of the trials using one choice, as a right-continuous step curve.

    ``F[k]`` is the (weighted) fraction of trials with error <= ``x[k]``, i.e. the value of
    RegNet's F(e) = (1/n) sum 1[e_i < e] on the interval (x[k], x[k+1]]; draw it with
    ``step(where="post")``. Errors are in percent. ``label`` is RegNet's legend text
    ``"n|min|mean"`` (unweighted min and mean error, one decimal).
    """

    choice: str
    n: int
    min_error: float
    mean_error: float
    label: str
    x: tuple[float, ...]
    F: tuple[float, ...]


@dataclass(frozen=True)
class EdfByChoice:
    dim: str
    n: int
    normalized: bool
    bins: int | None
    curves: tuple[EdfCurve, ...]


@dataclass(frozen=True)
class RankAgreement:
    """Kendall tau-b and Spearman rho between two orderings of the same n items."""

    n: int
    tau: float
    tau_p: float
    rho: float
    rho_p: float


def _natural_order(labels: Sequence[str]) -> list[str]:
    """Numeric choices in numeric order (kernel 3 < 7 < 11), the rest alphabetically."""
    labels = list(labels)

    def as_float(s: str) -> float | None:
        try:
            return float(s)
        except ValueError:
            return None

    nums = [as_float(s) for s in labels]
    if all(v is not None for v in nums):
        return [s for _, s in sorted(zip(nums, labels))]
    return sorted(labels)


def _numeric(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _py(v: Any) -> Any:
    """Numpy scalars as plain Python values, so info objects print and serialise cleanly."""
    return v.item() if isinstance(v, np.generic) else v


def _seed_rng(seed: int | None, *keys: str) -> np.random.Generator:
    """An independent, reproducible stream per (seed, key): a choice's interval does not move
    when other dimensions are added to or removed from the analysis."""
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (or None); got {seed!r}")
    return np.random.default_rng([int(seed), *(zlib.crc32(k.encode()) for k in keys)])


# 3. Error EDFs
# --------------------------------------------------------------------------------------------


def _finite_1d(values: Any, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be finite; position {i} is {a[i]!r} ({int(bad.sum())} non-finite); "
            "drop failed trials first (see usable())"
        )
    return a


def _norm_weights(weights: Any, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = _finite_1d(weights, "weights")
    if w.size != n:
        raise ValueError(f"weights has {w.size} values; expected one per error ({n})")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum; got sum {w.sum()!r}, min {w.min()!r}")
    return w / w.sum()


def error_edf(errors: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """RegNet's error EDF as a step curve: ``x`` the sorted distinct errors, ``F[k]`` the
    (weighted) fraction of errors <= x[k], i.e. F(e) = sum_i w_i 1[e_i < e] for e in
    (x[k], x[k+1]]. Weights default to 1/n; given weights are normalised to sum to 1.
    Use :func:`edf_at` to evaluate F at exact points.
    """
    e = _finite_1d(errors, "errors")
    w = _norm_weights(weights, e.size)
    order = np.argsort(e, kind="stable")
    es, ws = e[order], w[order]
    x, start = np.unique(es, return_index=True)
    cum = np.cumsum(ws)
    last = np.append(start[1:] - 1, es.size - 1)
    F = np.minimum(cum[last], 1.0)
    F[-1] = 1.0
    return x, F


def edf_at(errors: Any, points: Any, weights: Any = None) -> np.ndarray:
    """F(p) = sum_i w_i 1[e_i < p] at each point p, exactly as RegNet defines it (strict <)."""
    e = _finite_1d(errors, "errors")
    w = _norm_weights(weights, e.size)
    order = np.argsort(e, kind="stable")
    es = e[order]
    cum = np.concatenate(([0.0], np.cumsum(w[order])))
    p = np.asarray(points, dtype=float)
    return np.minimum(cum[np.searchsorted(es, p, side="left")], 1.0)


def complexity_weights(flops: Any, bins: int = 10, flop_range: tuple[float, float] | None = None) -> np.ndarray:
    """Weights that give every occupied complexity bin the same total mass.

    RegNet compares design spaces at equal complexity: a model in log-spaced FLOP bin j holding
    m_j models gets weight 1/(k m_j), k being the number of occupied bins, so the weights sum to
    1 and a space that happens to sample many cheap models is not judged by them alone.
    ``flop_range`` fixes the bin edges (e.g. the whole table's range) so that curves of
    different choices share bins. All-equal FLOPs (or a single design) form one bin.
    """
    f = _finite_1d(flops, "flops")
    if (f <= 0).any():
        raise ValueError(f"flops must be positive for log-spaced bins; got min {f.min()!r}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an int >= 1; got {bins!r}")
    lo, hi = (float(f.min()), float(f.max())) if flop_range is None else map(float, flop_range)
    if not (0 < lo <= hi):
        raise ValueError(f"flop_range must satisfy 0 < lo <= hi; got ({lo!r}, {hi!r})")
    if f.min() < lo or f.max() > hi:
        raise ValueError(f"flops span [{f.min():g}, {f.max():g}], outside flop_range [{lo:g}, {hi:g}]")
    if hi == lo:
        ids = np.zeros(f.size, dtype=int)
    else:
        t = (np.log(f) - math.log(lo)) / (math.log(hi) - math.log(lo))
        ids = np.clip(np.floor(t * bins).astype(int), 0, bins - 1)
    counts = np.bincount(ids, minlength=int(bins))
    k = int((counts > 0).sum())
    return 1.0 / (k * counts[ids])


# 4. Bootstrap
# --------------------------------------------------------------------------------------------


def _check_boot(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1; got {n_boot!r}")
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")


def _resample_stats(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max of ``n_boot`` resamples with replacement, drawn in deterministic blocks."""
    n = x.size
    rows = max(1, _BLOCK_ELEMS // n)
    means = np.empty(n_boot)
    maxes = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        r = min(rows, n_boot - start)
        s = x[rng.integers(0, n, size=(r, n))]
        means[start : start + r] = s.mean(axis=1)
        maxes[start : start + r] = s.max(axis=1)
    return means, maxes


def _interval(estimate: float, boot: np.ndarray, n: int, n_boot: int, level: float) -> Interval:
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [a, 1.0 - a])
    return Interval(float(estimate), float(lo), float(hi), int(n), float(level), int(n_boot))


def bootstrap_mean_max(x: Any, n_boot: int = 10_000, seed: int | None = 0, level: float = LEVEL,
                       keys: tuple[str, ...] = ()) -> tuple[Interval, Interval]:
    """Percentile-bootstrap intervals of the mean and of the maximum of `x` (a choice's mean and
    best top-1), from one set of `n_boot` resamples drawn by the stream of (`seed`, `keys`).

    The bootstrap of a maximum is biased low and its upper end is the observed maximum; read it
    as "how much the best result depends on a few lucky trials", not as coverage of the true best.
    """
    _check_boot(n_boot, level)
    a = _finite_1d(x, "x")
    means, maxes = _resample_stats(a, n_boot, _seed_rng(seed, *keys))
    return (_interval(a.mean(), means, a.size, n_boot, level),
            _interval(a.max(), maxes, a.size, n_boot, level))


# 8. Rank agreement
# --------------------------------------------------------------------------------------------


def rank_agreement(a: Any, b: Any) -> RankAgreement:
    """Kendall tau-b and Spearman rho between two scorings of the same items, e.g. proxy top-1
    and the paper's top-1 along the roadmap: a cheap proxy is only useful if it orders designs
    like full training does. Two Series are aligned on their index; pairs with a NaN are
    dropped. Constant input gives NaN coefficients (no ordering to compare)."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
        x, y = _numeric(both["a"]), _numeric(both["b"])
    else:
        x = np.asarray(pd.to_numeric(pd.Series(list(a)), errors="coerce"), dtype=float)
        y = np.asarray(pd.to_numeric(pd.Series(list(b)), errors="coerce"), dtype=float)
        if x.size != y.size:
            raise ValueError(f"a has {x.size} values and b {y.size}; expected two scorings of the same items")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2:
        raise ValueError(f"rank agreement needs at least 2 items scored in both; got {x.size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        tau = stats.kendalltau(x, y)
        rho = stats.spearmanr(x, y)
    return RankAgreement(
        n=int(x.size),
        tau=float(tau.statistic),
        tau_p=float(tau.pvalue),
        rho=float(rho.statistic),
        rho_p=float(rho.pvalue),
    )
