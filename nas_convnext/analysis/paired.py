"""Paired one-change statistics: the numbers behind `nas-convnext ablate`.

The ablation trains a base design (ConvNeXt-T) and, for every dimension of a space and every
other value it allows, the base with that one field changed, all with the same seeds. Two runs
with the same seed share their data order, augmentation and initial randomness, so the
difference ``variant - base`` of one seed is far less noisy than either run alone: the
statistics here are computed on those per-seed differences (a paired design), never on the
two groups' separate means.

For each variant:

* the per-seed differences (only seeds where both the variant and the base have a finite
  top-1: a seed missing on either side is left out and listed in ``unpaired_seeds``),
* their mean, standard deviation and number ``n``,
* a ``level`` (95%) **Student t interval** of the mean difference, mean +- t(n-1) * sd /
  sqrt(n) (``scipy.stats.t``): with 3 to 10 seeds a bootstrap over seeds has too few values
  to be trusted, and a t interval is exact when the differences are normal,
* the smallest difference the run could have detected: the true mean difference at which a
  two-sided paired t test at ``1 - level`` with this ``n`` and the observed spread would
  reach ``power`` (80%), from the noncentral t distribution (``scipy.stats.nct``),
* the seeds needed to decide it: the fewest seeds at which, if the observed mean and spread
  were the truth, that test would reach ``power``.

Per dimension the base's choice is ``better`` when every alternative's interval lies below
zero, ``worse`` when some alternative's interval lies above zero, and ``undecided`` otherwise.
With one paired seed there is no spread and no interval: ValueError (or, with
``on_short="undecided"``, no interval and an undecided dimension).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..design.codec import text as choice_label
from .stats import require_columns

__all__ = [
    "LEVEL",
    "POWER",
    "MAX_SEEDS",
    "VERDICTS",
    "PairedDiff",
    "DimensionVerdict",
    "PairedAnalysis",
    "paired_analysis",
    "t_interval",
    "detectable_difference",
    "seeds_needed",
    "verdict_rule",
]

#: Confidence level of the intervals (and 1 - the test's two-sided alpha).
LEVEL = 0.95
#: Power at which a difference counts as detectable.
POWER = 0.8
#: Beyond this many seeds, "seeds needed" is reported as None (not decidable in practice).
MAX_SEEDS = 1000
#: The verdicts a dimension can get.
VERDICTS = ("better", "worse", "undecided")

_VARIANT_COLUMNS = ("variant", "dimension", "value", "seed", "top1")
_BASE_COLUMNS = ("seed", "top1")


@dataclass(frozen=True)
class PairedDiff:
    """One variant against the base, over the seeds both have (differences in top-1 as
    fractions, variant minus base; positive: the variant is better).

    ``lo`` and ``hi`` are NaN when there is no interval (fewer than two paired seeds, only
    with ``on_short="undecided"``). ``detectable`` is the smallest true mean difference this
    run would detect with ``power``; ``needed`` the seeds that would decide this variant at
    the observed mean and spread, None when no number up to MAX_SEEDS would (a mean of zero,
    for one); ``needed_note`` says why.
    """

    variant: str
    dimension: str
    value: str
    n: int
    seeds: tuple[Any, ...]
    diffs: tuple[float, ...]
    mean: float
    sd: float
    lo: float
    hi: float
    detectable: float
    needed: int | None
    needed_note: str
    unpaired_seeds: tuple[Any, ...]
    flops: float

    @property
    def ci(self) -> tuple[float, float]:
        return (self.lo, self.hi)

    @property
    def side(self) -> str:
        """"above" (interval above zero), "below", or "covers" (zero inside, touching it,
        or no interval)."""
        if self.lo > 0:
            return "above"
        if self.hi < 0:
            return "below"
        return "covers"


@dataclass(frozen=True)
class DimensionVerdict:
    """Whether the base's value of one dimension beats every alternative the space allows.

    ``detectable`` is the largest of the alternatives' detectable differences (the run could
    detect a difference of that size for every alternative). ``needed`` is, for an undecided
    dimension, the seeds that would likely decide it at the observed means and spreads: if
    some undecided alternative beats the base on average, the fewest any such alternative
    needs (to show ``worse``), else the most any undecided alternative needs (to show
    ``better``); None when one of those cannot be decided, or when the dimension is decided.
    """

    dimension: str
    base_value: str | None
    verdict: str
    variants: tuple[str, ...]
    detectable: float
    needed: int | None
    reason: str


@dataclass(frozen=True)
class PairedAnalysis:
    """Every variant's paired difference and every dimension's verdict."""

    diffs: tuple[PairedDiff, ...]
    verdicts: tuple[DimensionVerdict, ...]
    base_seeds: tuple[Any, ...]
    level: float
    power: float

    def verdict(self, dimension: str) -> DimensionVerdict:
        for v in self.verdicts:
            if v.dimension == dimension:
                return v
        raise KeyError(f"no verdict for dimension {dimension!r}; dimensions: "
                       f"{[v.dimension for v in self.verdicts]}")

    def diff(self, variant: str) -> PairedDiff:
        for d in self.diffs:
            if d.variant == variant:
                return d
        raise KeyError(f"no variant {variant!r}; variants: {[d.variant for d in self.diffs]}")

    @property
    def decided(self) -> int:
        """How many dimensions got ``better`` or ``worse``."""
        return sum(v.verdict != "undecided" for v in self.verdicts)

    def table(self) -> pd.DataFrame:
        """One row per variant: variant, dimension, value, flops, n, mean_diff, sd, lo, hi,
        detectable, seeds_needed (a fresh DataFrame, e.g. for the report's CSV)."""
        return pd.DataFrame([{"variant": d.variant, "dimension": d.dimension, "value": d.value,
                              "flops": d.flops, "n": d.n, "mean_diff": d.mean, "sd": d.sd,
                              "lo": d.lo, "hi": d.hi, "detectable": d.detectable,
                              "seeds_needed": d.needed} for d in self.diffs])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN as null); the caller adds ``base`` and ``minutes``.

        Keys: seeds (the base's), level, power, interval_method, rule, variants (each with
        variant, dimension, value, flops, n, seeds, unpaired_seeds, diffs, mean_diff, sd, ci
        ([lo, hi] or null), detectable, seeds_needed, seeds_needed_note), verdicts (dimension
        -> better / worse / undecided), verdict_details (one object per dimension) and
        decided (how many dimensions were decided).
        """
        return {
            "seeds": [_plain(s) for s in self.base_seeds],
            "level": self.level,
            "power": self.power,
            "interval_method": (f"Student t interval of the mean per-seed difference "
                                f"(scipy.stats.t, {self.level * 100:g}%)"),
            "rule": verdict_rule(self.level),
            "variants": [{
                "variant": d.variant, "dimension": d.dimension, "value": d.value,
                "flops": _num_or_none(d.flops), "n": d.n, "seeds": [_plain(s) for s in d.seeds],
                "unpaired_seeds": [_plain(s) for s in d.unpaired_seeds],
                "diffs": [_num_or_none(x) for x in d.diffs],
                "mean_diff": _num_or_none(d.mean), "sd": _num_or_none(d.sd),
                "ci": [d.lo, d.hi] if math.isfinite(d.lo) and math.isfinite(d.hi) else None,
                "detectable": _num_or_none(d.detectable), "seeds_needed": d.needed,
                "seeds_needed_note": d.needed_note,
            } for d in self.diffs],
            "verdicts": {v.dimension: v.verdict for v in self.verdicts},
            "verdict_details": [{
                "dimension": v.dimension, "base_value": v.base_value, "verdict": v.verdict,
                "variants": list(v.variants), "detectable": _num_or_none(v.detectable),
                "seeds_needed": v.needed, "reason": v.reason,
            } for v in self.verdicts],
            "decided": self.decided,
        }


def verdict_rule(level: float = LEVEL) -> str:
    """The rule :func:`paired_analysis` applies, in words, for a report to print verbatim."""
    pct = f"{level * 100:g}%"
    return (f"Per variant, the per-seed differences in top-1 (variant minus base, same seed) "
            f"and a {pct} Student t interval of their mean. Per dimension: the base's choice "
            f"is BETTER if every alternative's interval lies below zero, WORSE if some "
            f"alternative's interval lies above zero, and UNDECIDED otherwise (an interval "
            f"that contains or touches zero).")


# --------------------------------------------------------------------------------------------
# The statistics of one set of paired differences
# --------------------------------------------------------------------------------------------


def t_interval(diffs: Any, level: float = LEVEL) -> tuple[float, float, float, float]:
    """(mean, sd, lo, hi) of paired differences, with the ``level`` Student t interval
    mean +- t.ppf((1 + level) / 2, n - 1) * sd / sqrt(n). ValueError for fewer than 2 values
    (one difference has no spread, so no interval)."""
    d = _finite(diffs)
    _check_level(level)
    if d.size < 2:
        raise ValueError(f"a t interval needs at least 2 paired seeds; got {d.size}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, d.size - 1)) * sd / math.sqrt(d.size)
    return mean, sd, mean - half, mean + half


def _power(nc: float, n: int, alpha: float) -> float:
    """Power of a two-sided one-sample t test with n values at noncentrality nc."""
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    # the wrong-side tail is at most alpha / 2 and falls fast with nc; scipy returns NaN for
    # it where it is vanishingly small (df 1, nc >= 8), so NaN counts as 0
    wrong_side = float(stats.nct.cdf(-crit, df, abs(nc)))
    return float(stats.nct.sf(crit, df, abs(nc))) + (wrong_side if math.isfinite(wrong_side) else 0.0)


def detectable_difference(sd: float, n: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true mean difference that a two-sided paired t test at alpha = 1 - level
    with ``n`` seeds and spread ``sd`` detects with probability ``power`` (0 when sd is 0)."""
    _check_level(level)
    _check_power(power)
    if n < 2:
        raise ValueError(f"a detectable difference needs at least 2 paired seeds; got {n}")
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd must be a finite number >= 0; got {sd!r}")
    if sd == 0:
        return 0.0
    alpha = 1 - level
    hi = 1.0
    while _power(hi, n, alpha) < power:
        hi *= 2
    nc = optimize.brentq(lambda x: _power(x, n, alpha) - power, 0.0, hi, xtol=1e-10)
    return float(nc * sd / math.sqrt(n))


def seeds_needed(mean: float, sd: float, level: float = LEVEL, power: float = POWER,
                 max_seeds: int = MAX_SEEDS) -> tuple[int | None, str]:
    """The fewest seeds (>= 2) at which a two-sided paired t test at alpha = 1 - level would
    detect a true mean difference ``mean`` with spread ``sd`` with probability ``power``;
    (None, why) when none up to ``max_seeds`` would."""
    _check_level(level)
    _check_power(power)
    if not (math.isfinite(mean) and math.isfinite(sd) and sd >= 0):
        return None, "no finite mean and spread"
    if mean == 0:
        return None, "a mean difference of zero: no number of seeds decides it"
    if sd == 0:
        return 2, "no spread: any two seeds decide it"
    alpha, effect = 1 - level, abs(mean) / sd

    def ok(n: int) -> bool:
        return _power(effect * math.sqrt(n), n, alpha) >= power

    if not ok(max_seeds):
        return None, f"more than {max_seeds} seeds at this mean and spread"
    lo, hi = 2, max_seeds          # power grows with n: bisect for the first n that is ok
    if ok(lo):
        return lo, f"{power * 100:g}% power at {lo} seeds"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi, f"{power * 100:g}% power at {hi} seeds"


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


# long: one pass over the variants builds their statistics and the verdict of each dimension
# together, in the order the report reads them; split, the rows would travel back and forth.
def paired_analysis(variants: pd.DataFrame, base: pd.DataFrame, *,
                    base_values: Mapping[str, Any] | None = None, level: float = LEVEL,
                    power: float = POWER, max_seeds: int = MAX_SEEDS,
                    on_short: str = "raise") -> PairedAnalysis:
    """Paired differences of every variant from the base, and a verdict per dimension.

    Parameters
    ----------
    variants:
        The long table of the variants' results, one row per (variant, seed): ``variant`` (an
        id), ``dimension`` (the field that changed), ``value`` (its value, as a label),
        ``seed`` and ``top1`` (a fraction; NaN for a failed run, left out). An optional
        ``flops`` column is carried into the results (one value per variant).
    base:
        The base design's results: ``seed`` and ``top1``, one row per seed.
    base_values:
        The base's value of each dimension (for the verdict table), e.g. ``{"kernel": 7}``.
    level:
        Confidence level of the t intervals; the test behind ``detectable`` and ``needed``
        is two-sided at alpha = 1 - level.
    power:
        The power at which a difference counts as detectable (0.8).
    max_seeds:
        The most seeds "seeds needed" looks at.
    on_short:
        What a variant with fewer than 2 paired seeds does: ``"raise"`` (ValueError naming
        it) or ``"undecided"`` (no interval; its dimension cannot be ``better``).

    Raises ValueError for missing columns, a (variant, seed) or base seed given twice, a
    variant with two dimensions or values, a top-1 outside [0, 1], or (by default) a variant
    with fewer than 2 paired seeds.
    """
    _check_level(level)
    _check_power(power)
    if on_short not in ("raise", "undecided"):
        raise ValueError(f"on_short must be 'raise' or 'undecided'; got {on_short!r}")
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or max_seeds < 2:
        raise ValueError(f"max_seeds must be an int >= 2; got {max_seeds!r}")
    v = _check_table(variants, _VARIANT_COLUMNS, "the variants table")
    b = _check_table(base, _BASE_COLUMNS, "the base table")
    _no_repeats(b, ["seed"], "the base table", "seed")
    _no_repeats(v, ["variant", "seed"], "the variants table", "variant and seed")
    base_top1 = {s: t for s, t in zip(b["seed"], b["top1"]) if math.isfinite(t)}
    base_seeds = tuple(sorted(base_top1, key=_sort_key))
    if not base_top1:
        raise ValueError("the base design has no finite top-1 for any seed: nothing to pair with")

    diffs: list[PairedDiff] = []
    for vid, g in v.groupby("variant", sort=False):
        dims, vals = g["dimension"].unique(), g["value"].unique()
        if len(dims) != 1 or len(vals) != 1:
            raise ValueError(f"variant {vid!r} has dimension(s) {list(dims)} and value(s) "
                             f"{list(vals)}; expected one of each")
        flops = math.nan
        if "flops" in g.columns:
            f = pd.to_numeric(g["flops"], errors="coerce").dropna().unique()
            if len(f) > 1:
                raise ValueError(f"variant {vid!r} has several FLOP counts {list(f)[:3]}; "
                                 "expected one")
            flops = float(f[0]) if len(f) else math.nan
        own = {s: t for s, t in zip(g["seed"], g["top1"]) if math.isfinite(t)}
        paired = sorted(set(own) & set(base_top1), key=_sort_key)
        unpaired = tuple(sorted((set(own) | set(base_top1)) - set(paired), key=_sort_key))
        d = np.array([own[s] - base_top1[s] for s in paired], dtype=float)
        if d.size < 2:
            if on_short == "raise":
                raise ValueError(f"variant {vid!r} has {d.size} seed(s) paired with the base "
                                 f"(seeds {list(map(_plain, paired))}); a paired interval needs at "
                                 "least 2: train 2 or more seeds")
            mean = float(d.mean()) if d.size else math.nan
            diffs.append(PairedDiff(str(vid), str(dims[0]), str(vals[0]), int(d.size),
                                    tuple(map(_plain, paired)), tuple(map(float, d)), mean,
                                    math.nan, math.nan, math.nan, math.nan, None,
                                    "fewer than 2 paired seeds", tuple(map(_plain, unpaired)),
                                    flops))
            continue
        mean, sd, lo, hi = t_interval(d, level)
        mdd = detectable_difference(sd, d.size, level, power)
        need, note = seeds_needed(mean, sd, level, power, max_seeds)
        diffs.append(PairedDiff(str(vid), str(dims[0]), str(vals[0]), int(d.size),
                                tuple(map(_plain, paired)), tuple(map(float, d)), mean, sd, lo,
                                hi, mdd, need, note, tuple(map(_plain, unpaired)), flops))

    verdicts = []
    for dim in dict.fromkeys(d.dimension for d in diffs):
        alts = [d for d in diffs if d.dimension == dim]
        base_value = None
        if base_values is not None and dim in base_values:
            base_value = choice_label(base_values[dim])
        verdicts.append(_judge(dim, base_value, alts))
    return PairedAnalysis(diffs=tuple(diffs), verdicts=tuple(verdicts), base_seeds=base_seeds,
                          level=float(level), power=float(power))


def _judge(dim: str, base_value: str | None, alts: list[PairedDiff]) -> DimensionVerdict:
    ids = tuple(a.variant for a in alts)
    finite = [a.detectable for a in alts if math.isfinite(a.detectable)]
    mdd = max(finite) if len(finite) == len(alts) else math.nan
    above = [a for a in alts if a.side == "above"]
    if above:
        best = max(above, key=lambda a: a.mean)
        return DimensionVerdict(dim, base_value, "worse", ids, mdd, None,
                                f"{best.value} beats the base by {best.mean * 100:+.2f} points, "
                                f"interval [{best.lo * 100:+.2f}, {best.hi * 100:+.2f}] above zero")
    if all(a.side == "below" for a in alts):
        worst_hi = max(a.hi for a in alts)
        return DimensionVerdict(dim, base_value, "better", ids, mdd, None,
                                f"every alternative's interval lies below zero (the highest "
                                f"upper end: {worst_hi * 100:+.2f} points)")
    open_ = [a for a in alts if a.side == "covers"]
    ahead = [a for a in open_ if math.isfinite(a.mean) and a.mean > 0]
    if ahead:
        needs = [a.needed for a in ahead if a.needed is not None]
        need = min(needs) if needs else None
        goal = "to show an alternative better (worse)"
    else:
        needs = [a.needed for a in open_]
        need = None if any(n is None for n in needs) else max(needs)
        goal = "to show every alternative worse (better)"
    names = ", ".join(a.value for a in open_)
    seeds_text = f"about {need} seeds {goal}" if need is not None else f"no feasible number of seeds {goal}"
    return DimensionVerdict(dim, base_value, "undecided", ids, mdd, need,
                            f"the interval of {names} contains zero; at the observed means and "
                            f"spreads: {seeds_text}")


# --------------------------------------------------------------------------------------------
# Input checks and plain values
# --------------------------------------------------------------------------------------------


def _check_level(level: float) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")


def _check_power(power: float) -> None:
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), e.g. 0.8; got {power!r}")


def _finite(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=float).reshape(-1)
    if not np.isfinite(a).all():
        raise ValueError("differences must be finite numbers")
    return a


def _check_table(df: Any, cols: tuple[str, ...], what: str) -> pd.DataFrame:
    require_columns(df, cols, what)
    keep = list(cols) + (["flops"] if "flops" in df.columns and "flops" not in cols else [])
    out = df.loc[:, keep].copy()
    out["seed"] = out["seed"].map(_plain)
    if out["seed"].isna().any():
        raise ValueError(f"{what} has rows without a seed")
    for col in ("dimension", "value", "variant"):
        if col in out.columns:
            out[col] = out[col].map(choice_label)
    top1 = pd.to_numeric(out["top1"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    fin = top1[np.isfinite(top1)]
    if fin.size and ((fin < 0) | (fin > 1)).any():
        raise ValueError(f"{what}: top1 must be a fraction in [0, 1]; got values from "
                         f"{fin.min():g} to {fin.max():g} (percent values?)")
    out["top1"] = top1
    return out


def _no_repeats(df: pd.DataFrame, key: list[str], what: str, words: str) -> None:
    dup = df[df.duplicated(key, keep=False)]
    if len(dup):
        first = {k: _plain(dup.iloc[0][k]) for k in key}
        raise ValueError(f"{what} has {first} more than once; expected one row per {words}")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


def _num_or_none(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None
