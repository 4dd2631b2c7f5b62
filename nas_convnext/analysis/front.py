"""Which trials count, and the Pareto front they form.

Only `status == "completed"` trials with finite top-1 and FLOPs count. A trial stopped early
by the scheduler (ASHA) was measured after fewer epochs, so its top-1 is not comparable with
the others -- even when it happens to be higher -- and diverged or errored trials have no
meaningful metric at all. They are listed apart by `excluded`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .stats import _numeric, require_columns


def _require_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    require_columns(df, cols, f"{what}'s trials table")


def _dims_arg(dims: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(dims, str):
        return (dims,)
    dims = tuple(dims)
    if not dims:
        raise ValueError("dims is empty; expected at least one dimension name, e.g. DIMENSIONS")
    return dims


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
    return front_of(usable(df), x, y)


def front_of(u: pd.DataFrame, x: str = "flops", y: str = "top1") -> pd.DataFrame:
    """`pareto_front` of trials already known to be usable (see `usable`)."""
    _require_columns(u, [x, y], "pareto_front")
    xv, yv = _numeric(u[x]), _numeric(u[y])
    ok = np.isfinite(xv) & np.isfinite(yv)
    xv, yv, u = xv[ok], yv[ok], u.loc[ok]
    mask = _front_mask(xv, yv)
    order = np.argsort(xv[mask], kind="stable")
    front = u.loc[mask].iloc[order].copy()
    front.attrs["n"] = int(len(u))
    return front

