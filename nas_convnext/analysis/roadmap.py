"""The roadmap replay compared with the paper: ranks, rank agreement, signs of the changes.

The proxy is judged by how it orders the paper's 17 steps: Kendall's tau and Spearman's rho
between the proxy's top-1 and the paper's Table 10 over the completed steps.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..design.complexity import complexity
from ..design.roadmap import roadmap_rows, roadmap_steps
from .stats import _numeric as _num
from .stats import require_columns


def replay_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The roadmap's steps (`design.roadmap.roadmap_rows`) with the proxy's top-1 and status
    of each, from a roadmap replay's trials table (a step's row is the one whose `reference`
    is the step's name; a step without one is "missing")."""
    trained = table.set_index("reference") if len(table) else None
    steps = pd.DataFrame(roadmap_rows())
    steps["top1"] = [trained["top1"].get(n, np.nan) if trained is not None else np.nan
                     for n in steps["name"]]
    steps["status"] = [trained["status"].get(n, "missing") if trained is not None else "missing"
                       for n in steps["name"]]
    return steps


_ROADMAP_COLUMNS = ("step", "name", "paper_top1", "top1", "status")


def _roadmap_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    require_columns(df, _ROADMAP_COLUMNS, "the roadmap table")
    if len(df) == 0:
        raise ValueError("the roadmap table is empty: no steps to report")
    notes = []
    r = df.copy()
    step = pd.to_numeric(r["step"], errors="coerce")
    if step.isna().any():
        raise ValueError(f"the roadmap table has non-numeric step value(s): "
                         f"{list(r.loc[step.isna(), 'step'])[:5]}")
    r["step"] = step.astype(int)
    r = r.sort_values("step", kind="stable").reset_index(drop=True)
    paper = _num(r["paper_top1"])
    if np.isfinite(paper).any() and np.nanmax(paper) <= 1.0:
        paper = paper * 100  # given as fractions
    r["paper_top1_pct"] = paper
    top1 = _num(r["top1"])
    fin = top1[np.isfinite(top1)]
    if fin.size and ((fin < 0) | (fin > 1)).any():
        raise ValueError(f"proxy top1 must be a fraction in [0, 1]; got values up to "
                         f"{fin.max():g} (percent values?)")
    r["proxy_top1_pct"] = 100 * top1
    status = r["status"].astype(object).where(r["status"].notna(), "").astype(str)
    r["usable"] = (status == "completed").to_numpy() & np.isfinite(top1) & np.isfinite(paper)
    skipped = int((~r["usable"]).sum())
    if skipped:
        notes.append(f"{skipped} step(s) not completed (or without a finite top-1) are left out "
                     f"of the rank agreement")
    done = r.loc[r["usable"]]
    r["paper_rank"] = done["paper_top1_pct"].rank(ascending=False, method="min").reindex(r.index)
    r["proxy_rank"] = done["proxy_top1_pct"].rank(ascending=False, method="min").reindex(r.index)
    return r, notes


def calibration_runs(table: pd.DataFrame) -> pd.DataFrame:
    """A calibration run's trials table as :func:`calibrate`'s ``runs``: one row per (step,
    seed) with ``step`` (the roadmap index, found from the row's ``reference``, the step's
    name), ``seed`` and ``top1`` (NaN unless the trial completed: a trial stopped early or
    diverged has no finished result to rank). Rows of other designs are left out."""
    index = {s.name: s.index for s in roadmap_steps()}
    require_columns(table, ("reference", "seed", "status", "top1"), "the trials table")
    rows = []
    for r in table.to_dict("records"):
        if r["reference"] not in index:
            continue
        top1 = float(r["top1"]) if r["status"] == "completed" else math.nan
        rows.append({"step": index[r["reference"]], "seed": int(r["seed"]), "top1": top1})
    return pd.DataFrame(rows, columns=["step", "seed", "top1"])


def roadmap_reference(resolution: int = 224, num_classes: int = 1000) -> pd.DataFrame:
    """The paper's roadmap as :func:`calibrate`'s reference: one row per step in order, with
    ``step`` (its index 0..16), ``name``, ``paper_top1`` (Table 10, percent) and ``flops``
    (our count of the full-size design at ``resolution`` with ``num_classes`` classes, the
    count every other part of the tool uses; steps 00 and 01 differ only in recipe, so they
    tie on FLOPs)."""
    rows = [{"step": s.index, "name": s.name, "paper_top1": s.paper_top1,
             "flops": complexity(s.arch, resolution, num_classes).flops}
            for s in roadmap_steps()]
    return pd.DataFrame(rows, columns=["step", "name", "paper_top1", "flops"])
