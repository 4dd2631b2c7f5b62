"""The front when the cost is measured time rather than FLOPs, and which choices cost time
beyond their FLOPs.

A run whose trials measured their full-size design's speed (`--objective latency`,
`--latency-budget`, `--measure-speed`, ...) has `latency_ms` (batch-1, median) and perhaps
`throughput` (images/s at a batch) per trial, each with the device key of the machine that
measured it (`speed_device`). Times compare only within one device key, so every figure here
is taken over the usable trials of one key (the one with the most of them) and the rest are
counted out, in a note. For each cost the run measured (GFLOPs always; latency in ms; time
per image in ms at the throughput batch, 1000 / throughput) the analysis gives the
(cost, top-1) Pareto front, ConvNeXt-T's place on it (on the front, or which designs dominate
it and at what cost ratio) and, per dimension, the share of the front that uses ConvNeXt's
choice. Per choice, the median milliseconds per full-size GFLOP with a bootstrap interval
says which choices (depthwise, LayerNorm, large kernels, patchify) cost time beyond FLOPs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..design.codec import texts
from .front import front_of
from .stats import LEVEL, Interval, _numeric, bootstrap_mean_max

#: The costs the report can compare, in order: column, label, unit.
COSTS = (("flops", "GFLOPs", "GFLOPs"), ("latency_ms", "batch-1 latency", "ms"),
         ("ms_per_image", "time per image at the throughput batch", "ms"))
CONVNEXT_TAG = "convnext_t"


@dataclass(frozen=True)
class CostFront:
    """The (cost, top-1) front of one cost over n trials of one device, and ConvNeXt-T's place.

    convnext_on_front: None when ConvNeXt-T has no completed row with this cost. dominated_by:
    (trial_id, top-1 gain in points, cost ratio to ConvNeXt-T's) of each design that beats it.
    front_share: per dimension, the share of front designs with ConvNeXt's choice.
    """

    cost: str
    label: str
    unit: str
    n: int
    front: pd.DataFrame
    convnext_cost: float | None
    convnext_on_front: bool | None
    dominated_by: tuple[tuple[Any, float, float], ...]
    front_share: dict[str, float | None]


@dataclass(frozen=True)
class ChoiceTime:
    """A choice's milliseconds of batch-1 latency per full-size GFLOP over n trials (the
    mean, with its bootstrap interval), and that mean over the dimension's overall mean."""

    dim: str
    choice: str
    n: int
    ms_per_gflop: Interval
    ratio: float


@dataclass(frozen=True)
class TimeAnalysis:
    device: str
    devices: dict[str, int]           # usable trials with a measured latency, per device key
    n: int                            # usable trials measured on `device`
    throughput_batch: int | None
    fronts: tuple[CostFront, ...]     # FLOPs first, then each measured time
    choices: tuple[ChoiceTime, ...]
    colour_dim: str | None            # the dimension whose choices differ most in ms/GFLOP
    notes: tuple[str, ...]

    def front(self, cost: str) -> CostFront:
        for f in self.fronts:
            if f.cost == cost:
                return f
        raise KeyError(f"no front for cost {cost!r}; costs: {[f.cost for f in self.fronts]}")


def time_analysis(u: pd.DataFrame, dims: Sequence[str], convnext_choices: dict[str, str] | None,
                  seed: int = 0, n_boot: int = 10_000, level: float = LEVEL,
                  throughput_batch: int | None = None) -> TimeAnalysis | None:
    """The time fronts of the usable trials `u` (see `analysis.front.usable`), None when no
    usable trial measured its latency. dims: the design dimensions to judge; convnext_choices:
    ConvNeXt-T's choice per dimension (labels), for the front shares."""
    if "latency_ms" not in u.columns:
        return None
    lat = _numeric(u["latency_ms"])
    measured = u.loc[np.isfinite(lat) & (lat > 0)]
    if not len(measured):
        return None
    keys = measured["speed_device"].fillna("").astype(str) if "speed_device" in measured \
        else pd.Series("", index=measured.index)
    devices = {str(k): int(v) for k, v in keys.value_counts().items()}
    device = max(devices, key=lambda k: (devices[k], k))
    m = measured.loc[keys == device].copy()
    notes = []
    if len(devices) > 1:
        left = len(measured) - len(m)
        notes.append(f"speed was measured on {len(devices)} kinds of machine; times compare "
                     f"only within one, so the time fronts rest on the {len(m)} trial(s) "
                     f"measured on {device!r} and leave out {left} measured elsewhere "
                     f"({', '.join(f'{k!r}: {v}' for k, v in devices.items() if k != device)})")
    m["gflops"] = _numeric(m["flops"]) / 1e9
    thr = _numeric(m["throughput"]) if "throughput" in m.columns else np.full(len(m), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        m["ms_per_image"] = np.where(thr > 0, 1000.0 / thr, np.nan)
    fronts = [_cost_front(u, "flops", convnext_choices, dims)]
    fronts.append(_cost_front(m, "latency_ms", convnext_choices, dims))
    if np.isfinite(m["ms_per_image"]).any():
        fronts.append(_cost_front(m, "ms_per_image", convnext_choices, dims))
    choices = _choice_times(m, dims, seed, n_boot, level)
    spread = {}
    for c in choices:
        spread.setdefault(c.dim, []).append(c.ratio)
    varied = {d: max(r) - min(r) for d, r in spread.items() if len(r) > 1}
    colour = max(varied, key=lambda d: (varied[d], d)) if varied else None
    return TimeAnalysis(device, devices, len(m), throughput_batch, tuple(fronts),
                        tuple(choices), colour, tuple(notes))


def _cost_front(df: pd.DataFrame, cost: str, cx: dict[str, str] | None,
                dims: Sequence[str]) -> CostFront:
    label, unit = {c: (lab, un) for c, lab, un in COSTS}[cost]
    x = _numeric(df[cost])
    d = df.loc[np.isfinite(x)]
    front = front_of(d, x=cost)
    ref = d.loc[d["reference"].astype(str) == CONVNEXT_TAG] if "reference" in d else d.iloc[0:0]
    on, doms, ref_cost = None, [], None
    if len(ref):
        r = ref.sort_values("top1", ascending=False).iloc[0]
        ref_cost, ref_top1 = float(r[cost]), float(r["top1"])
        c, t = _numeric(d[cost]), _numeric(d["top1"])
        beat = (c <= ref_cost) & (t >= ref_top1) & ((c < ref_cost) | (t > ref_top1))
        ids = d["trial_id"] if "trial_id" in d else pd.Series(d.index, index=d.index)
        doms = sorted(((ids.iloc[i], float(100 * (t[i] - ref_top1)), float(c[i] / ref_cost))
                       for i in np.flatnonzero(beat)), key=lambda z: (-z[1], z[2]))
        on = not doms
    share: dict[str, float | None] = {}
    for dim in dims:
        if cx is None or dim not in cx or not len(front) or dim not in front:
            share[dim] = None
        else:
            share[dim] = float((texts(front[dim]).to_numpy() == cx[dim]).mean())
    return CostFront(cost, label, unit, int(len(d)), front, ref_cost, on, tuple(doms), share)


def _choice_times(m: pd.DataFrame, dims: Sequence[str], seed: int, n_boot: int,
                  level: float) -> list[ChoiceTime]:
    per = _numeric(m["latency_ms"]) / _numeric(m["gflops"])
    out = []
    for dim in dims:
        if dim not in m.columns:
            continue
        labels = texts(m[dim]).to_numpy()
        overall = float(np.mean(per))
        for choice in sorted(set(labels)):
            x = per[labels == choice]
            ci, _ = bootstrap_mean_max(x, n_boot=n_boot, seed=seed, level=level,
                                       keys=("time", dim, str(choice)))
            out.append(ChoiceTime(dim, str(choice), int(len(x)), ci,
                                  float(ci.estimate / overall) if overall else math.nan))
    return out
