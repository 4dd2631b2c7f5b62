"""Rank agreement between FLOPs and measured time: which designs cost time beyond their
FLOPs (analysis of `training.speed`'s figures; a plain function of a table's rows)."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .stats import RankAgreement, rank_agreement


@dataclass(frozen=True)
class FlopsTimeAgreement:
    """How well FLOPs order designs by measured time on one device: Kendall tau-b and
    Spearman rho over n designs with their p-values (`agreement`), and paired
    percentile-bootstrap intervals (`tau_ci`, `rho_ci`) at `level` from `n_boot` resamples.
    time: the column compared ('latency_ms', or 'throughput' as ms per image)."""

    device: str
    time: str
    agreement: RankAgreement
    tau_ci: tuple[float, float]
    rho_ci: tuple[float, float]
    level: float
    n_boot: int


def rank_agreement_flops_time(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, *,
                              by: str = "latency", device: str | None = None,
                              n_boot: int = 2000, seed: int = 0,
                              level: float = 0.95) -> FlopsTimeAgreement:
    """Rank agreement between `flops` and measured time over rows (dicts or a DataFrame).

    by: 'latency' (time = `latency_ms`) or 'throughput' (time = 1000 / `throughput`, ms per
    image). device: the `speed_device` to use; rows from several devices need it, since a
    time is compared only with times measured on the same kind of machine. Rows without both
    figures are left out. n_boot, seed, level: the paired percentile bootstrap's resamples,
    seed and confidence level (intervals are NaN below 4 designs).
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    column = {"latency": "latency_ms", "throughput": "throughput"}.get(by)
    if column is None:
        raise ValueError(f"by {by!r} is not allowed: expected 'latency' or 'throughput'")
    missing = [c for c in ("flops", column) if c not in df.columns]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}: expected flops and {column}")
    flops = pd.to_numeric(df["flops"], errors="coerce").to_numpy(dtype=float)
    time_ms = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    if by == "throughput":
        with np.errstate(divide="ignore"):
            time_ms = 1000.0 / time_ms
    ok = np.isfinite(flops) & np.isfinite(time_ms) & (time_ms > 0)
    where = (df["speed_device"].fillna("").astype(str).to_numpy() if "speed_device" in df
             else np.full(len(df), "", dtype=object))
    devices = sorted(set(where[ok]))
    if device is not None:
        ok &= where == device
    elif len(devices) > 1:
        raise ValueError(f"rows were measured on {len(devices)} devices {devices}: times "
                         "compare only within one; pass device=")
    chosen = device if device is not None else (devices[0] if devices else "")
    point = rank_agreement(flops[ok], time_ms[ok])
    tau_ci, rho_ci = _bootstrap(flops[ok], time_ms[ok], n_boot, seed, level)
    return FlopsTimeAgreement(chosen, column, point, tau_ci, rho_ci, level, n_boot)


def _bootstrap(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int,
               level: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Paired percentile-bootstrap (low, high) of tau and of rho; NaN below 4 pairs."""
    if x.size < 4:
        return (math.nan, math.nan), (math.nan, math.nan)

    def both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([stats.kendalltau(a, b).statistic, stats.spearmanr(a, b).statistic])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples of one repeated design give NaN: see below
        res = stats.bootstrap((x, y), both, paired=True, vectorized=False,
                              n_resamples=n_boot, confidence_level=level,
                              method="percentile", rng=np.random.default_rng(seed))
        # scipy's interval turns NaN if any resample has no ordering (all FLOPs or all times
        # tied): take the percentiles over the resamples that have one.
        dist = res.bootstrap_distribution
        lo = np.nanquantile(dist, (1 - level) / 2, axis=1)
        hi = np.nanquantile(dist, (1 + level) / 2, axis=1)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))
