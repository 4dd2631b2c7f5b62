"""Analysis of a search run's trials table: Pareto front, error EDFs, bootstrapped effects,
and a verdict on ConvNeXt's design choices.

Everything here is a plain function on a pandas DataFrame (one row per trial) that returns
either a DataFrame or a frozen "info object". Info objects are computed first and rendered
later by the report/plot code, so they carry every number a reader needs, including how many
trials each number rests on (``n``), and never hold mutable arrays.

Why the rules below:

* Only ``status == "completed"`` trials with finite top-1 and FLOPs count. A trial stopped early
  by the scheduler (ASHA, median stopping) was measured after fewer epochs, so its top-1 is not
  comparable with the others -- even when it happens to be higher -- and diverged or errored
  trials have no meaningful metric at all. They are listed apart by :func:`excluded`.
* Dimension values are treated as categories with string labels (``layer_scale`` NaN means "no
  layer scale" and gets the label ``"none"``), because a missing value is a design choice here,
  not missing data, and pandas would silently drop it from a groupby.
* Errors follow RegNet ("Designing Network Design Spaces", Radosavovic et al. 2020): the
  error EDF, complexity-normalised weights, and a bootstrap for the best value of a parameter.
  Errors are in percent (100 * (1 - top1)) wherever RegNet shows them to people.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "DIMENSIONS",
    "STATUSES",
    "CONVNEXT_TAG",
    "MIN_TRIALS",
    "LEVEL",
    "Interval",
    "BestValue",
    "EdfCurve",
    "EdfByChoice",
    "ChoiceStat",
    "Dominator",
    "DimVerdict",
    "Verdict",
    "RankAgreement",
    "verdict_rule",
    "choice_label",
    "choice_labels",
    "status_counts",
    "usable",
    "excluded",
    "pareto_front",
    "error_edf",
    "edf_at",
    "complexity_weights",
    "edf_by_choice",
    "bootstrap_mean_ci",
    "bootstrap_max_ci",
    "bootstrap_best",
    "choice_effects",
    "convnext_verdict",
    "summarize",
    "rank_agreement",
]

#: The design dimensions of the search space, in roadmap order. Every function takes ``dims=``
#: so a caller analysing a narrower or wider space can pass its own list.
DIMENSIONS: tuple[str, ...] = (
    "stem",
    "depths",
    "width",
    "expansion",
    "groups",
    "kernel",
    "spatial_conv",
    "act",
    "activations",
    "norm",
    "norms",
    "downsample",
    "layer_scale",
)

#: Trial statuses a run writes; only the first is usable.
from .results import STATUSES  # noqa: E402 - the table's statuses, defined once

#: The ``reference`` tag of the ConvNeXt-T row.
CONVNEXT_TAG = "convnext_t"

#: Fewest trials a choice needs before the verdict will judge it.
MIN_TRIALS = 3

#: Confidence level of every bootstrap interval.
LEVEL = 0.95

_NONE_LABEL = "none"
# Resampling is done in blocks of about this many drawn indices, so 10k resamples of a large
# table never need one giant index matrix, while the block split stays deterministic (same
# seed -> same numbers).
_BLOCK_ELEMS = 1 << 21


# --------------------------------------------------------------------------------------------
# Info objects
# --------------------------------------------------------------------------------------------


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
class BestValue:
    """RegNet's bootstrap estimate of the best value of one parameter.

    ``shares`` says how often each value was the best one across resamples (descending), which
    is the readable answer for categorical parameters. For numeric parameters ``estimate``,
    ``lo`` and ``hi`` are the median and the ``level`` interval of the best value; they are
    actual observed values (inverted-CDF quantiles), never an average of two choices.
    """

    n: int
    sample_size: int
    frac: float
    n_boot: int
    level: float
    numeric: bool
    estimate: float | None
    lo: float | None
    hi: float | None
    shares: tuple[tuple[str, float], ...]


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
class ChoiceStat:
    """Top-1 statistics of one choice of one dimension (top-1 as a fraction)."""

    choice: str
    n: int
    top1_mean: Interval
    top1_best: Interval
    gflops_mean: float
    front_count: int


@dataclass(frozen=True)
class Dominator:
    """A usable trial that is at least as good as ConvNeXt-T on both axes and better on one."""

    index: Any
    trial_id: Any
    top1: float
    flops: float
    top1_gap: float  # its top1 minus ConvNeXt-T's (>= 0)
    flop_ratio: float  # its FLOPs / ConvNeXt-T's (<= 1)


@dataclass(frozen=True)
class DimVerdict:
    dim: str
    n: int
    convnext_choice: str | None
    best_choice: str
    choices: tuple[ChoiceStat, ...]
    front_n: int
    front_share: float | None  # share of front designs that use ConvNeXt's choice
    verdict: str  # "supported" | "not supported" | "inconclusive"
    reason: str

    def choice(self, label: str) -> ChoiceStat:
        for c in self.choices:
            if c.choice == label:
                return c
        raise KeyError(f"{self.dim} has no choice {label!r}; choices: {[c.choice for c in self.choices]}")


@dataclass(frozen=True)
class Verdict:
    """Whether the search supports ConvNeXt-T's design, point by point and dimension by dimension.

    ``on_front`` is None when the ConvNeXt-T point could not be placed (no completed row, or
    reference given as choices only); ``message`` then says why. ``top1_gap`` is the largest
    top-1 gain (fraction) any dominating design offers and ``flop_ratio`` the smallest FLOP
    ratio any dominating design needs; both are None when nothing dominates ConvNeXt-T.
    """

    n: int
    reference: str
    reference_index: Any
    reference_status: str | None
    reference_top1: float | None
    reference_flops: float | None
    on_front: bool | None
    front_n: int
    dominated_by: tuple[Dominator, ...]
    top1_gap: float | None
    flop_ratio: float | None
    dims: tuple[DimVerdict, ...]
    rule: str
    min_trials: int
    level: float
    message: str

    def dim(self, name: str) -> DimVerdict:
        for d in self.dims:
            if d.dim == name:
                return d
        raise KeyError(f"no verdict for dimension {name!r}; dimensions: {[d.dim for d in self.dims]}")


@dataclass(frozen=True)
class RankAgreement:
    """Kendall tau-b and Spearman rho between two orderings of the same n items."""

    n: int
    tau: float
    tau_p: float
    rho: float
    rho_p: float


def verdict_rule(min_trials: int = MIN_TRIALS, level: float = LEVEL) -> str:
    """The rule :func:`convnext_verdict` applies, in words, so a report can print it verbatim."""
    pct = f"{level * 100:g}%"
    return (
        f"Per dimension, on the top-1 of completed trials, with {pct} percentile-bootstrap "
        f"intervals on each choice's mean top-1: "
        f"INCONCLUSIVE if the dimension takes a single value among usable trials, if ConvNeXt's "
        f"choice is unknown or was not tried, or if it has fewer than {min_trials} trials; "
        f"NOT SUPPORTED if some other choice with at least {min_trials} trials has its interval "
        f"entirely above ConvNeXt's (its lower bound > ConvNeXt's upper bound); "
        f"SUPPORTED if every other choice has at least {min_trials} trials and ConvNeXt's choice "
        f"has the highest mean with its interval entirely above every other choice's interval "
        f"(its lower bound > the others' upper bounds, so also above the runner-up's); "
        f"INCONCLUSIVE otherwise (overlapping or touching intervals, ties, or a competing choice "
        f"with fewer than {min_trials} trials)."
    )


# --------------------------------------------------------------------------------------------
# Labels, validation
# --------------------------------------------------------------------------------------------


def choice_label(value: Any) -> str:
    """One label per design choice, equal for equal choices whatever the column dtype.

    96, 96.0 and np.int64(96) all become "96", so a ConvNeXt row read as an object Series
    labels the same as the column it came from; NaN/None become "none" (no layer scale).
    """
    if value is None:
        return _NONE_LABEL
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return _NONE_LABEL
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    try:
        if pd.isna(value):
            return _NONE_LABEL
    except (TypeError, ValueError):
        pass
    return str(value)


def choice_labels(values: pd.Series | Sequence[Any]) -> pd.Series:
    s = values if isinstance(values, pd.Series) else pd.Series(list(values))
    return s.map(choice_label).astype(object)


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


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} needs a pandas DataFrame of trials; got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} needs column(s) {missing} in the trials table; columns present: {list(df.columns)}"
        )


def _dims_arg(dims: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(dims, str):
        return (dims,)
    dims = tuple(dims)
    if not dims:
        raise ValueError("dims is empty; expected at least one dimension name, e.g. DIMENSIONS")
    return dims


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


# --------------------------------------------------------------------------------------------
# 1. usable / excluded
# --------------------------------------------------------------------------------------------


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Trials per status, most frequent first (a missing status counts as "missing")."""
    _require_columns(df, ["status"], "status_counts")
    s = df["status"].astype(object).where(df["status"].notna(), "missing").astype(str)
    counts = s.value_counts(sort=False)
    return {k: int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def _usable_mask(df: pd.DataFrame) -> np.ndarray:
    status = df["status"].astype(object).to_numpy()
    completed = np.array([s == "completed" for s in status], dtype=bool)
    return completed & np.isfinite(_numeric(df["top1"])) & np.isfinite(_numeric(df["flops"]))


def _reasons(df: pd.DataFrame) -> pd.Series:
    top1 = np.isfinite(_numeric(df["top1"]))
    flops = np.isfinite(_numeric(df["flops"]))
    out = []
    for s, t, f in zip(df["status"].astype(object).to_numpy(), top1, flops):
        if s is None or (isinstance(s, float) and math.isnan(s)):
            out.append("missing status")
        elif s != "completed":
            out.append(str(s))
        elif not t and not f:
            out.append("completed but top1 and flops NaN")
        elif not t:
            out.append("completed but top1 NaN")
        elif not f:
            out.append("completed but flops NaN")
        else:
            out.append("")
    return pd.Series(out, index=df.index, dtype=object)


def _describe_counts(reasons: pd.Series) -> str:
    counts = reasons.value_counts(sort=False)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{int(v)} {k}" for k, v in items)


def usable(df: pd.DataFrame) -> pd.DataFrame:
    """The trials whose top-1 can be compared: completed, with finite top-1 and FLOPs.

    Raises ValueError when none is left, naming what the table held instead, because an
    analysis of zero trials would otherwise produce empty plots that look like results.
    """
    _require_columns(df, ["status", "top1", "flops"], "usable")
    if len(df) == 0:
        raise ValueError("the trials table is empty: no trials to analyse")
    mask = _usable_mask(df)
    if not mask.any():
        reasons = _reasons(df)
        raise ValueError(
            f"no completed trials with finite top1 and flops among {len(df)}: {_describe_counts(reasons)}"
        )
    out = df.loc[mask]
    top1 = _numeric(out["top1"])
    bad = (top1 < 0) | (top1 > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"top1 must be a fraction in [0, 1]; row {out.index[i]!r} has top1={top1[i]!r} "
            f"({int(bad.sum())} such rows; percent values?)"
        )
    return out


def excluded(df: pd.DataFrame) -> pd.DataFrame:
    """The trials :func:`usable` leaves out, with a ``reason`` column, so a report can list them.

    Never raises for an all-failed table: that is exactly when a person needs this list.
    Status counts of the whole table are in :func:`status_counts`.
    """
    _require_columns(df, ["status", "top1", "flops"], "excluded")
    mask = _usable_mask(df) if len(df) else np.zeros(0, dtype=bool)
    out = df.loc[~mask].copy()
    out["reason"] = _reasons(out) if len(out) else pd.Series([], dtype=object)
    return out


# --------------------------------------------------------------------------------------------
# 2. Pareto front
# --------------------------------------------------------------------------------------------


def _front_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-dominated points (minimise x, maximise y) in O(n log n).

    A point is dominated iff some point has strictly smaller x and y >= its y, or the same x and
    strictly larger y. So it is on the front iff its y is the maximum among points with the same
    x and strictly above the maximum y of all points with smaller x. Exact duplicates satisfy
    both tests together, so they stay on the front together.
    """
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    ux, inv = np.unique(x, return_inverse=True)
    gmax = np.full(len(ux), -np.inf)
    np.maximum.at(gmax, inv, y)
    prev = np.concatenate(([-np.inf], np.maximum.accumulate(gmax)[:-1]))
    return (y == gmax[inv]) & (y > prev[inv])


def pareto_front(df: pd.DataFrame, x: str = "flops", y: str = "top1") -> pd.DataFrame:
    """Usable trials no other usable trial beats on both cost ``x`` and accuracy ``y``.

    Sorted by ``x`` (ties keep table order). ``front.attrs["n"]`` is the number of usable trials
    the front was taken from.
    """
    u = usable(df)
    _require_columns(u, [x, y], "pareto_front")
    xv, yv = _numeric(u[x]), _numeric(u[y])
    ok = np.isfinite(xv) & np.isfinite(yv)
    xv, yv, u = xv[ok], yv[ok], u.loc[ok]
    mask = _front_mask(xv, yv)
    order = np.argsort(xv[mask], kind="stable")
    front = u.loc[mask].iloc[order].copy()
    front.attrs["n"] = int(len(u))
    return front


# --------------------------------------------------------------------------------------------
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


def edf_by_choice(
    df: pd.DataFrame,
    dim: str,
    normalize: bool = False,
    bins: int = 10,
) -> EdfByChoice:
    """One error EDF per choice of ``dim`` (errors in percent), for RegNet-style plots.

    With ``normalize=True`` each curve uses :func:`complexity_weights` over bins shared by all
    choices, so a choice is not flattered by being sampled at lower FLOPs. The label's min and
    mean stay unweighted: they describe the trials, not the reweighted population.
    """
    u = usable(df)
    _require_columns(u, [dim], "edf_by_choice")
    err = 100.0 * (1.0 - _numeric(u["top1"]))
    flops = _numeric(u["flops"])
    labels = choice_labels(u[dim]).to_numpy()
    rng = (float(flops.min()), float(flops.max())) if normalize else None
    curves = []
    for choice in _natural_order(set(labels)):
        m = labels == choice
        e = err[m]
        w = complexity_weights(flops[m], bins=bins, flop_range=rng) if normalize else None
        x, F = error_edf(e, w)
        n = int(m.sum())
        label = f"{n}|{e.min():.1f}|{e.mean():.1f}"
        curves.append(
            EdfCurve(
                choice=choice,
                n=n,
                min_error=float(e.min()),
                mean_error=float(e.mean()),
                label=label,
                x=tuple(float(v) for v in x),
                F=tuple(float(v) for v in F),
            )
        )
    return EdfByChoice(dim=dim, n=int(len(u)), normalized=bool(normalize), bins=int(bins) if normalize else None, curves=tuple(curves))


# --------------------------------------------------------------------------------------------
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


def _mean_max_intervals(x: np.ndarray, n_boot: int, rng: np.random.Generator, level: float) -> tuple[Interval, Interval]:
    means, maxes = _resample_stats(x, n_boot, rng)
    return (
        _interval(x.mean(), means, x.size, n_boot, level),
        _interval(x.max(), maxes, x.size, n_boot, level),
    )


def bootstrap_mean_ci(x: Any, n_boot: int = 10_000, seed: int | None = 0, level: float = LEVEL) -> Interval:
    """Percentile-bootstrap interval of the mean (e.g. a choice's mean top-1)."""
    _check_boot(n_boot, level)
    a = _finite_1d(x, "x")
    means, _ = _resample_stats(a, n_boot, _seed_rng(seed))
    return _interval(a.mean(), means, a.size, n_boot, level)


def bootstrap_max_ci(x: Any, n_boot: int = 10_000, seed: int | None = 0, level: float = LEVEL) -> Interval:
    """Percentile-bootstrap interval of the maximum (a choice's best top-1).

    The bootstrap of a maximum is biased low and its upper end is the observed maximum; read it
    as "how much the best result depends on a few lucky trials", not as coverage of the true best.
    """
    _check_boot(n_boot, level)
    a = _finite_1d(x, "x")
    _, maxes = _resample_stats(a, n_boot, _seed_rng(seed))
    return _interval(a.max(), maxes, a.size, n_boot, level)


def bootstrap_best(
    values: Any,
    errors: Any,
    frac: float = 0.25,
    n_boot: int = 10_000,
    seed: int | None = 0,
    level: float = LEVEL,
) -> BestValue:
    """RegNet's estimate of a parameter's best value: draw ``frac`` of the (value, error) pairs
    with replacement, keep the value of the lowest-error pair, repeat ``n_boot`` times.

    Lower error is better: pass ``1 - top1`` (or percent error). A tie for lowest error inside a
    resample goes to the pair drawn first, i.e. at random.
    """
    _check_boot(n_boot, level)
    if not (0 < frac <= 1):
        raise ValueError(f"frac must be in (0, 1], e.g. 0.25; got {frac!r}")
    e = _finite_1d(errors, "errors")
    vals = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object).reshape(-1)
    if vals.size != e.size:
        raise ValueError(f"values has {vals.size} entries and errors {e.size}; expected one value per error")
    n = e.size
    m = max(1, int(round(frac * n)))
    rng = _seed_rng(seed)
    rows = max(1, _BLOCK_ELEMS // m)
    winners = np.empty(n_boot, dtype=np.int64)
    for start in range(0, n_boot, rows):
        r = min(rows, n_boot - start)
        idx = rng.integers(0, n, size=(r, m))
        winners[start : start + r] = idx[np.arange(r), np.argmin(e[idx], axis=1)]
    labels = np.array([choice_label(v) for v in vals], dtype=object)
    won = pd.Series(labels[winners]).value_counts()
    shares = tuple(
        (str(k), float(v) / n_boot) for k, v in sorted(won.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    num = pd.to_numeric(pd.Series(vals), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    numeric = bool(np.isfinite(num).all())
    estimate = lo = hi = None
    if numeric:
        best = num[winners]
        a = (1.0 - level) / 2.0
        lo, estimate, hi = (float(q) for q in np.quantile(best, [a, 0.5, 1.0 - a], method="inverted_cdf"))
    return BestValue(
        n=n, sample_size=m, frac=float(frac), n_boot=int(n_boot), level=float(level), numeric=numeric,
        estimate=estimate, lo=lo, hi=hi, shares=shares,
    )


# --------------------------------------------------------------------------------------------
# 5. Choice effects
# --------------------------------------------------------------------------------------------


def _choice_stats(
    u: pd.DataFrame, dim: str, front_labels: np.ndarray, seed: int | None, n_boot: int, level: float
) -> list[ChoiceStat]:
    labels = choice_labels(u[dim]).to_numpy()
    top1 = _numeric(u["top1"])
    gflops = _numeric(u["flops"]) / 1e9
    out = []
    for choice in _natural_order(set(labels)):
        m = labels == choice
        mean_ci, max_ci = _mean_max_intervals(top1[m], n_boot, _seed_rng(seed, dim, choice), level)
        out.append(
            ChoiceStat(
                choice=choice,
                n=int(m.sum()),
                top1_mean=mean_ci,
                top1_best=max_ci,
                gflops_mean=float(gflops[m].mean()),
                front_count=int((front_labels == choice).sum()),
            )
        )
    return out


def _front_of(u: pd.DataFrame) -> pd.DataFrame:
    mask = _front_mask(_numeric(u["flops"]), _numeric(u["top1"]))
    return u.loc[mask]


def choice_effects(
    df: pd.DataFrame,
    dims: Sequence[str] | str = DIMENSIONS,
    seed: int | None = 0,
    n_boot: int = 10_000,
    level: float = LEVEL,
) -> pd.DataFrame:
    """One row per (dimension, choice): what the choice costs and what it buys.

    Columns: dim, choice, n (trials using the choice), n_dim (usable trials), top1_mean with
    ``_lo``/``_hi``, top1_best with ``_lo``/``_hi``, gflops_mean, effect (mean top-1 minus the
    mean over all usable trials), effect_vs_best_other (mean top-1 minus the best other choice's
    mean; NaN when the dimension has one value), front_count, front_n, front_share (share of
    front designs using the choice). Top-1 values are fractions.
    """
    _check_boot(n_boot, level)
    dims = _dims_arg(dims)
    u = usable(df)
    _require_columns(u, list(dims), "choice_effects")
    front = _front_of(u)
    overall = float(_numeric(u["top1"]).mean())
    rows = []
    for dim in dims:
        cs = _choice_stats(u, dim, choice_labels(front[dim]).to_numpy(), seed, n_boot, level)
        means = {c.choice: c.top1_mean.estimate for c in cs}
        for c in cs:
            others = [v for k, v in means.items() if k != c.choice]
            rows.append(
                {
                    "dim": dim,
                    "choice": c.choice,
                    "n": c.n,
                    "n_dim": int(len(u)),
                    "top1_mean": c.top1_mean.estimate,
                    "top1_mean_lo": c.top1_mean.lo,
                    "top1_mean_hi": c.top1_mean.hi,
                    "top1_best": c.top1_best.estimate,
                    "top1_best_lo": c.top1_best.lo,
                    "top1_best_hi": c.top1_best.hi,
                    "gflops_mean": c.gflops_mean,
                    "effect": c.top1_mean.estimate - overall,
                    "effect_vs_best_other": c.top1_mean.estimate - max(others) if others else np.nan,
                    "front_count": c.front_count,
                    "front_n": int(len(front)),
                    "front_share": c.front_count / len(front),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# 6. ConvNeXt verdict
# --------------------------------------------------------------------------------------------


def _trial_ids(u: pd.DataFrame) -> pd.Series | None:
    for col in ("trial_id", "trial"):
        if col in u.columns:
            return u[col]
    return None


def _dominators(u: pd.DataFrame, top1: float, flops: float, skip: Any = None, has_skip: bool = False) -> list[Dominator]:
    t, f = _numeric(u["top1"]), _numeric(u["flops"])
    dom = (f <= flops) & (t >= top1) & ((f < flops) | (t > top1))
    if has_skip:
        dom &= ~np.asarray(u.index == skip, dtype=bool)
    ids = _trial_ids(u)
    out = [
        Dominator(
            index=_py(u.index[i]),
            trial_id=None if ids is None else _py(ids.iloc[i]),
            top1=float(t[i]),
            flops=float(f[i]),
            top1_gap=float(t[i] - top1),
            flop_ratio=float(f[i] / flops) if flops else float("nan"),
        )
        for i in np.flatnonzero(dom)
    ]
    out.sort(key=lambda d: (-d.top1_gap, d.flop_ratio))
    return out


@dataclass(frozen=True)
class _RefPoint:
    description: str
    index: Any
    has_index: bool
    status: str | None
    choices: dict[str, Any] | None
    top1: float | None
    flops: float | None
    message: str


def _locate_reference(df: pd.DataFrame, reference: Any, dims: Sequence[str]) -> _RefPoint:
    """Find ConvNeXt-T's choices and, where it has a completed measurement, its point."""
    if isinstance(reference, str):
        _require_columns(df, ["reference"], "convnext_verdict")
        tags = df["reference"].astype(object).where(df["reference"].notna(), "").astype(str)
        rows = df.loc[(tags == reference).to_numpy()]
        if len(rows) == 0:
            return _RefPoint(
                reference, None, False, None, None, None, None,
                f"no row with reference == {reference!r} among {len(df)} trials: whether it is on the "
                "front is unknown and no dimension can be judged against its choices",
            )
        ok = rows.loc[_usable_mask(rows)]
        if len(ok) == 0:
            first = rows.iloc[0]
            status = str(first["status"])
            return _RefPoint(
                reference, _py(rows.index[0]), True, status, {d: first[d] for d in dims if d in rows.columns},
                None, None,
                f"the {reference!r} row (index {rows.index[0]!r}) is excluded (status {status!r}, "
                f"top1 {first['top1']!r}): whether it is on the front is unknown; its choices are still judged",
            )
        best = ok.iloc[int(np.argmax(_numeric(ok["top1"])))]
        msg = f"{reference!r} is row {best.name!r}"
        if len(ok) > 1:
            msg += f" (the best of {len(ok)} completed {reference!r} rows)"
        return _RefPoint(
            reference, _py(best.name), True, "completed", {d: best[d] for d in dims if d in ok.columns},
            float(best["top1"]), float(best["flops"]), msg,
        )
    if isinstance(reference, (pd.Series, Mapping)):
        get = reference.get
        choices = {d: get(d) for d in dims if d in reference}
        top1 = pd.to_numeric(pd.Series([get("top1")]), errors="coerce").iloc[0]
        flops = pd.to_numeric(pd.Series([get("flops")]), errors="coerce").iloc[0]
        name = reference.name if isinstance(reference, pd.Series) else None
        in_table = isinstance(reference, pd.Series) and name is not None and name in df.index
        if np.isfinite(top1) and np.isfinite(flops):
            status = get("status") if "status" in reference else None
            if status is not None and not isinstance(status, str) and pd.isna(status):
                status = None
            if status is not None and status != "completed":
                return _RefPoint(
                    "given reference", name, in_table, str(status), choices, None, None,
                    f"the given reference has status {status!r}: whether it is on the front is unknown",
                )
            return _RefPoint(
                "given reference", name, in_table, status, choices, float(top1), float(flops),
                "reference point given by the caller",
            )
        return _RefPoint(
            "given choices", name, in_table, None, choices, None, None,
            "reference given as choices only (no finite top1 and flops): whether it is on the front is unknown",
        )
    raise ValueError(
        "reference must be a reference tag such as 'convnext_t', a row (pandas Series) or a "
        f"mapping of dimension -> choice; got {type(reference).__name__}"
    )


def _judge(dim: str, cs: list[ChoiceStat], cx: str | None, k: int) -> tuple[str, str]:
    by = {c.choice: c for c in cs}
    if len(cs) == 1:
        return "inconclusive", f"dimension not varied: every usable trial uses {cs[0].choice!r}"
    if cx is None:
        return "inconclusive", "ConvNeXt's choice is unknown"
    if cx not in by:
        return "inconclusive", f"ConvNeXt's choice {cx!r} is not among the usable trials"
    c = by[cx]
    if c.n < k:
        return "inconclusive", f"ConvNeXt's choice {cx!r} has {c.n} trial(s), fewer than {k}"
    others = [o for o in cs if o.choice != cx]
    above = [o for o in others if o.n >= k and o.top1_mean.lo > c.top1_mean.hi]
    if above:
        o = max(above, key=lambda o: o.top1_mean.estimate)
        return "not supported", (
            f"{o.choice!r} (mean top1 {o.top1_mean.estimate:.4f}, CI [{o.top1_mean.lo:.4f}, "
            f"{o.top1_mean.hi:.4f}], n={o.n}) lies entirely above {cx!r} (mean "
            f"{c.top1_mean.estimate:.4f}, CI [{c.top1_mean.lo:.4f}, {c.top1_mean.hi:.4f}], n={c.n})"
        )
    thin = [o.choice for o in others if o.n < k]
    if thin:
        return "inconclusive", f"competing choice(s) {thin} have fewer than {k} trials"
    runner = max(others, key=lambda o: o.top1_mean.estimate)
    top_hi = max(o.top1_mean.hi for o in others)
    if c.top1_mean.estimate > runner.top1_mean.estimate and c.top1_mean.lo > top_hi:
        return "supported", (
            f"{cx!r} has the highest mean top1 ({c.top1_mean.estimate:.4f}, CI [{c.top1_mean.lo:.4f}, "
            f"{c.top1_mean.hi:.4f}]) and its interval lies above every other choice's "
            f"(runner-up {runner.choice!r}: {runner.top1_mean.estimate:.4f}, CI "
            f"[{runner.top1_mean.lo:.4f}, {runner.top1_mean.hi:.4f}])"
        )
    if c.top1_mean.estimate > runner.top1_mean.estimate:
        why = "has the highest mean but its interval overlaps another choice's"
    else:
        why = f"does not have the highest mean (best other: {runner.choice!r})"
    return "inconclusive", (
        f"{cx!r} {why}: {cx!r} mean {c.top1_mean.estimate:.4f} CI [{c.top1_mean.lo:.4f}, "
        f"{c.top1_mean.hi:.4f}] vs {runner.choice!r} mean {runner.top1_mean.estimate:.4f} "
        f"CI [{runner.top1_mean.lo:.4f}, {runner.top1_mean.hi:.4f}]"
    )


def convnext_verdict(
    df: pd.DataFrame,
    reference: str | Mapping[str, Any] | pd.Series = CONVNEXT_TAG,
    dims: Sequence[str] | str = DIMENSIONS,
    seed: int | None = 0,
    n_boot: int = 10_000,
    min_trials: int = MIN_TRIALS,
    level: float = LEVEL,
) -> Verdict:
    """Does the search back ConvNeXt-T's design? Two questions, answered separately:

    * the point: is ConvNeXt-T on the (FLOPs, top-1) front, and if not, which designs beat it
      and by how much;
    * the choices: per dimension, is ConvNeXt's choice better than the alternatives by the rule
      of :func:`verdict_rule` (also stored in ``Verdict.rule``).

    ``reference`` is a tag in the ``reference`` column (default "convnext_t"; the best completed
    row if there are several), a row, or a mapping of dimension -> choice (with optional
    ``top1``/``flops`` to place the point).
    """
    _check_boot(n_boot, level)
    if isinstance(min_trials, bool) or not isinstance(min_trials, (int, np.integer)) or min_trials < 1:
        raise ValueError(f"min_trials must be an int >= 1; got {min_trials!r}")
    dims = _dims_arg(dims)
    u = usable(df)
    _require_columns(u, list(dims), "convnext_verdict")
    ref = _locate_reference(df, reference, dims)
    front = _front_of(u)

    on_front: bool | None = None
    doms: list[Dominator] = []
    if ref.top1 is not None and ref.flops is not None:
        doms = _dominators(u, ref.top1, ref.flops, skip=ref.index, has_skip=ref.has_index)
        on_front = not doms

    dim_verdicts = []
    for dim in dims:
        front_labels = choice_labels(front[dim]).to_numpy()
        cs = _choice_stats(u, dim, front_labels, seed, n_boot, level)
        cx = None
        if ref.choices is not None and dim in ref.choices:
            cx = choice_label(ref.choices[dim])
        best = max(cs, key=lambda c: c.top1_mean.estimate)
        verdict, reason = _judge(dim, cs, cx, int(min_trials))
        dim_verdicts.append(
            DimVerdict(
                dim=dim,
                n=int(len(u)),
                convnext_choice=cx,
                best_choice=best.choice,
                choices=tuple(cs),
                front_n=int(len(front)),
                front_share=None if cx is None else float((front_labels == cx).sum() / len(front)),
                verdict=verdict,
                reason=reason,
            )
        )

    return Verdict(
        n=int(len(u)),
        reference=ref.description,
        reference_index=ref.index,
        reference_status=ref.status,
        reference_top1=ref.top1,
        reference_flops=ref.flops,
        on_front=on_front,
        front_n=int(len(front)),
        dominated_by=tuple(doms),
        top1_gap=max(d.top1_gap for d in doms) if doms else None,
        flop_ratio=min(d.flop_ratio for d in doms) if doms else None,
        dims=tuple(dim_verdicts),
        rule=verdict_rule(int(min_trials), level),
        min_trials=int(min_trials),
        level=float(level),
        message=ref.message,
    )


# --------------------------------------------------------------------------------------------
# 7. Summary
# --------------------------------------------------------------------------------------------


def summarize(df: pd.DataFrame, dims: Sequence[str] | str = DIMENSIONS, reference: str = CONVNEXT_TAG) -> dict[str, Any]:
    """A few numbers for the terminal. Does not raise on an all-failed run: the message says why
    nothing is usable, which is the thing a person watching the terminal needs to know."""
    _require_columns(df, ["status", "top1", "flops"], "summarize")
    dims = _dims_arg(dims)
    out: dict[str, Any] = {
        "n_trials": int(len(df)),
        "status_counts": status_counts(df),
        "n_usable": 0,
        "n_excluded": int(len(df)),
        "best": None,
        "front_size": 0,
        "convnext_on_front": None,
        "message": "",
    }
    try:
        u = usable(df)
    except ValueError as exc:
        out["message"] = str(exc)
        return out
    out["n_usable"] = int(len(u))
    out["n_excluded"] = int(len(df) - len(u))
    top1 = _numeric(u["top1"])
    b = u.iloc[int(np.argmax(top1))]
    best = {"index": _py(b.name), "top1": float(b["top1"]), "flops": float(b["flops"]), "gflops": float(b["flops"]) / 1e9}
    for col in ("reference", *dims):
        if col in u.columns:
            best[col] = choice_label(b[col]) if col in dims else b[col]
    out["best"] = best
    out["front_size"] = int(len(_front_of(u)))
    if "reference" in df.columns:
        ref = _locate_reference(df, reference, [d for d in dims if d in df.columns])
        if ref.top1 is not None and ref.flops is not None:
            out["convnext_on_front"] = not _dominators(u, ref.top1, ref.flops, skip=ref.index, has_skip=ref.has_index)
        out["message"] = ref.message
    else:
        out["message"] = "no reference column: ConvNeXt-T not placed"
    return out


# --------------------------------------------------------------------------------------------
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
