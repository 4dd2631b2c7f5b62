"""A verdict on ConvNeXt-T's design: is it on the front, and do its choices pay off?

Two questions, answered separately: the point (is ConvNeXt-T on the (FLOPs, top-1) front, and
if not, which designs beat it and by how much) and the choices (per dimension, is ConvNeXt's
choice better than the alternatives, by the rule `verdict_rule` states in words).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..design.codec import DIMENSIONS, text, texts
from .effects import ChoiceStat, choice_stats
from .front import (
    _dims_arg,
    _require_columns,
    _usable_mask,
    front_of,
    status_counts,
    usable,
)
from .stats import LEVEL, _check_boot, _numeric, _py

#: The ``reference`` tag of the ConvNeXt-T row.
CONVNEXT_TAG = "convnext_t"

#: Fewest trials a choice needs before the verdict will judge it.
MIN_TRIALS = 3


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
class RefPoint:
    description: str
    index: Any
    has_index: bool
    status: str | None
    choices: dict[str, Any] | None
    top1: float | None
    flops: float | None
    message: str


def locate_reference(df: pd.DataFrame, reference: Any, dims: Sequence[str]) -> RefPoint:
    """Find ConvNeXt-T's choices and, where it has a completed measurement, its point."""
    if isinstance(reference, str):
        _require_columns(df, ["reference"], "convnext_verdict")
        tags = df["reference"].astype(object).where(df["reference"].notna(), "").astype(str)
        rows = df.loc[(tags == reference).to_numpy()]
        if len(rows) == 0:
            return RefPoint(
                reference, None, False, None, None, None, None,
                f"no row with reference == {reference!r} among {len(df)} trials: whether it is on the "
                "front is unknown and no dimension can be judged against its choices",
            )
        ok = rows.loc[_usable_mask(rows)]
        if len(ok) == 0:
            first = rows.iloc[0]
            status = str(first["status"])
            return RefPoint(
                reference, _py(rows.index[0]), True, status, {d: first[d] for d in dims if d in rows.columns},
                None, None,
                f"the {reference!r} row (index {rows.index[0]!r}) is excluded (status {status!r}, "
                f"top1 {first['top1']!r}): whether it is on the front is unknown; its choices are still judged",
            )
        best = ok.iloc[int(np.argmax(_numeric(ok["top1"])))]
        msg = f"{reference!r} is row {best.name!r}"
        if len(ok) > 1:
            msg += f" (the best of {len(ok)} completed {reference!r} rows)"
        return RefPoint(
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
                return RefPoint(
                    "given reference", name, in_table, str(status), choices, None, None,
                    f"the given reference has status {status!r}: whether it is on the front is unknown",
                )
            return RefPoint(
                "given reference", name, in_table, status, choices, float(top1), float(flops),
                "reference point given by the caller",
            )
        return RefPoint(
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
    ref = locate_reference(df, reference, dims)
    front = front_of(u)
    stats = choice_stats(u, dims, front, seed, n_boot, level)
    return verdict_of(u, front, ref, stats, dims, int(min_trials), level)


def verdict_of(u: pd.DataFrame, front: pd.DataFrame, ref: RefPoint,
               stats: Mapping[str, Sequence[ChoiceStat]], dims: Sequence[str], min_trials: int,
               level: float) -> Verdict:
    """`convnext_verdict` from its parts: the usable trials, their front, the reference point
    (`locate_reference`) and every dimension's choice statistics (`effects.choice_stats`)."""
    on_front: bool | None = None
    doms: list[Dominator] = []
    if ref.top1 is not None and ref.flops is not None:
        doms = _dominators(u, ref.top1, ref.flops, skip=ref.index, has_skip=ref.has_index)
        on_front = not doms

    dim_verdicts = []
    for dim in dims:
        front_labels = texts(front[dim]).to_numpy()
        cs = list(stats[dim])
        cx = None
        if ref.choices is not None and dim in ref.choices:
            cx = text(ref.choices[dim])
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
    try:
        u = usable(df)
    except ValueError as exc:
        return {"n_trials": int(len(df)), "status_counts": status_counts(df), "n_usable": 0,
                "n_excluded": int(len(df)), "best": None, "front_size": 0,
                "convnext_on_front": None, "message": str(exc)}
    ref = None
    if "reference" in df.columns:
        ref = locate_reference(df, reference, [d for d in dims if d in df.columns])
    return summary_of(df, u, front_of(u), ref, dims)


def summary_of(df: pd.DataFrame, u: pd.DataFrame, front: pd.DataFrame, ref: RefPoint | None,
               dims: Sequence[str], on_front: bool | None = None) -> dict[str, Any]:
    """`summarize` from its parts (`on_front`, when the verdict knows it already)."""
    out: dict[str, Any] = {
        "n_trials": int(len(df)), "status_counts": status_counts(df), "n_usable": int(len(u)),
        "n_excluded": int(len(df) - len(u)), "best": None, "front_size": int(len(front)),
        "convnext_on_front": None, "message": ""}
    top1 = _numeric(u["top1"])
    b = u.iloc[int(np.argmax(top1))]
    best = {"index": _py(b.name), "top1": float(b["top1"]), "flops": float(b["flops"]), "gflops": float(b["flops"]) / 1e9}
    for col in ("reference", *dims):
        if col in u.columns:
            best[col] = text(b[col]) if col in dims else b[col]
    out["best"] = best
    if ref is None:
        out["message"] = "no reference column: ConvNeXt-T not placed"
        return out
    if ref.top1 is not None and ref.flops is not None:
        if on_front is None:
            on_front = not _dominators(u, ref.top1, ref.flops, skip=ref.index,
                                       has_skip=ref.has_index)
        out["convnext_on_front"] = on_front
    out["message"] = ref.message
    return out
