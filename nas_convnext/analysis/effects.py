"""Per-choice statistics: what each value of a dimension costs and buys.

Dimension values are treated as categories with string labels (`layer_scale` NaN means "no
layer scale" and gets the label "none"), because a missing value is a design choice here, not
missing data, and pandas would silently drop it from a groupby.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..design.codec import DIMENSIONS, texts
from .front import _dims_arg, _require_columns, front_of, usable
from .stats import (
    LEVEL,
    EdfByChoice,
    EdfCurve,
    Interval,
    _check_boot,
    _natural_order,
    _numeric,
    bootstrap_mean_max,
    complexity_weights,
    error_edf,
)


@dataclass(frozen=True)
class ChoiceStat:
    """Top-1 statistics of one choice of one dimension (top-1 as a fraction)."""

    choice: str
    n: int
    top1_mean: Interval
    top1_best: Interval
    gflops_mean: float
    front_count: int


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
    return edf_of(usable(df), dim, normalize, bins)


def edf_of(u: pd.DataFrame, dim: str, normalize: bool = False, bins: int = 10) -> EdfByChoice:
    """`edf_by_choice` of trials already known to be usable (see `usable`)."""
    _require_columns(u, [dim], "edf_by_choice")
    err = 100.0 * (1.0 - _numeric(u["top1"]))
    flops = _numeric(u["flops"])
    labels = texts(u[dim]).to_numpy()
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


# 5. Choice effects
# --------------------------------------------------------------------------------------------


def _choice_stats(
    u: pd.DataFrame, dim: str, front_labels: np.ndarray, seed: int | None, n_boot: int, level: float
) -> list[ChoiceStat]:
    labels = texts(u[dim]).to_numpy()
    top1 = _numeric(u["top1"])
    gflops = _numeric(u["flops"]) / 1e9
    out = []
    for choice in _natural_order(set(labels)):
        m = labels == choice
        mean_ci, max_ci = bootstrap_mean_max(top1[m], n_boot, seed, level, keys=(dim, choice))
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
    front = front_of(u)
    return effects_table(u, front, choice_stats(u, dims, front, seed, n_boot, level), dims)


def choice_stats(u: pd.DataFrame, dims: Sequence[str], front: pd.DataFrame, seed: int | None,
                 n_boot: int, level: float) -> dict[str, tuple[ChoiceStat, ...]]:
    """Every choice's statistics, per dimension: the one bootstrap that both the verdict and
    the effects table read (each choice draws from its own seeded stream)."""
    return {dim: tuple(_choice_stats(u, dim, texts(front[dim]).to_numpy(), seed, n_boot, level))
            for dim in dims}


def effects_table(u: pd.DataFrame, front: pd.DataFrame,
                  stats: Mapping[str, Sequence[ChoiceStat]], dims: Sequence[str]) -> pd.DataFrame:
    """`choice_effects` from the usable trials, their front and the choices' statistics."""
    overall = float(_numeric(u["top1"]).mean())
    rows = []
    for dim in dims:
        cs = stats[dim]
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
