"""The report's tables: the fronts, the dominators, the verdict, the effects, the exclusions.

Each table says how many trials it rests on in its caption; design values are shown with the
codec's labels, so a table and a CSV agree on every value.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .. import analysis as A
from ..analysis.run import Importances
from ..analysis.run import RunAnalysis as _Analysis
from ..design.codec import text
from ..userfile import as_number
from .document import (
    FLOP_NOTE,
    _blank,
    _ci,
    _gf,
    _mp,
    _num,
    _pct,
    _pp,
    _ref_name,
    _Table,
    _trial_label,
    _trials,
)

_ERROR_CHARS = 160


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _design_cells(row: pd.Series, dims: Sequence[str]) -> list[str]:
    return [text(row[d]) if d in row.index else "" for d in dims]


def _front_table(an: _Analysis) -> _Table:
    dims = list(an.varying)
    header = ["#", "trial", "reference", "GFLOPs", "params (M)", "proxy top-1 (%)", *dims]
    rows = []
    for i, (_, r) in enumerate(an.front.iterrows(), 1):
        rows.append([str(i), _trial_label(r), _ref_name(r.get("reference")), _gf(r["flops"]),
                     _mp(r.get("params")), _pct(r["top1"]), *_design_cells(r, dims)])
    return _Table("front-table",
                  f"Pareto front, proxy top-1 against GFLOPs ({FLOP_NOTE}): {len(an.front)} "
                  f"design(s), cheapest first; {_trials(len(an.u))}.", header, rows)


def _front_params_table(an: _Analysis) -> _Table:
    header = ["#", "trial", "reference", "params (M)", "GFLOPs", "proxy top-1 (%)"]
    rows = [[str(i), _trial_label(r), _ref_name(r.get("reference")), _mp(r["params"]),
             _gf(r["flops"]), _pct(r["top1"])]
            for i, (_, r) in enumerate(an.front_params.iterrows(), 1)]
    n = int(np.isfinite(_num(an.u["params"])).sum()) if "params" in an.u.columns else 0
    return _Table("front-params-table",
                  f"Pareto front, proxy top-1 against parameters: {len(an.front_params)} design(s), "
                  f"smallest first; {_trials(n)} with a parameter count.", header, rows)


def _dominators_table(an: _Analysis) -> _Table:
    dims = list(an.varying)
    header = ["trial", "reference", "GFLOPs", "proxy top-1 (%)", "top-1 gain (pp)",
              "FLOP ratio", *dims]
    rows = []
    for d in an.verdict.dominated_by:
        r = an.u.loc[d.index] if d.index in an.u.index else None
        cells = _design_cells(r, dims) if r is not None else ["" for _ in dims]
        label = _trial_label(r) if r is not None else str(d.trial_id)
        rows.append([label, _ref_name(r.get("reference")) if r is not None else "",
                     _gf(d.flops), _pct(d.top1), _pp(d.top1_gap), f"{d.flop_ratio:.3f}", *cells])
    return _Table("dominators-table",
                  f"Designs that dominate ConvNeXt-T (at least its top-1 at no more GFLOPs, better "
                  f"in one): {len(rows)}; gain = their top-1 minus ConvNeXt-T's, ratio = their "
                  f"GFLOPs / ConvNeXt-T's ({FLOP_NOTE}); {_trials(an.verdict.n)}.", header, rows)


def _verdict_table(an: _Analysis, shown=None) -> _Table:
    """The verdict per dimension; `shown` maps a verdict to what the table says (the proxy's
    fidelity may withhold a claim, see `report.fidelity`)."""
    v = an.verdict
    header = ["dimension", "ConvNeXt's choice", "best choice (highest mean)",
              "top-1 per choice (%): mean [95% CI]; best [95% CI] (n)",
              "share of front using ConvNeXt's choice", "verdict", "why"]
    rows = []
    for d in v.dims:
        per = "\n".join(f"{c.choice}: mean {_ci(c.top1_mean)}; best {_ci(c.top1_best)} (n={c.n})"
                        for c in d.choices)
        if d.front_share is None:
            share = "n/a"
        else:
            k = round(d.front_share * d.front_n)
            share = f"{d.front_share:.0%} ({k} of {d.front_n})"
        rows.append([d.dim, d.convnext_choice if d.convnext_choice is not None else "unknown",
                     d.best_choice, per, share,
                     shown(d.verdict) if shown is not None else d.verdict, d.reason])
    n_boot = v.dims[0].choices[0].top1_mean.n_boot if v.dims and v.dims[0].choices else an.n_boot
    return _Table("verdict-table",
                  f"ConvNeXt-T's choice per dimension; {_trials(v.n)}, front of {v.front_n}; "
                  f"{v.level:.0%} percentile-bootstrap intervals ({n_boot} resamples), at least "
                  f"{v.min_trials} trials per choice to judge.", header, rows)


def _effects_table(an: _Analysis) -> _Table:
    header = ["dimension", "choice", "n", "mean top-1 (%) [95% CI]", "effect vs all (pp)",
              "vs best other choice (pp)", "best top-1 (%) [95% CI]", "mean GFLOPs",
              "GFLOPs vs all", "front share"]
    rows = []
    for _, r in an.effects.iterrows():
        mean = f"{_pct(r['top1_mean'])} [{_pct(r['top1_mean_lo'])}, {_pct(r['top1_mean_hi'])}]"
        best = f"{_pct(r['top1_best'])} [{_pct(r['top1_best_lo'])}, {_pct(r['top1_best_hi'])}]"
        g = as_number(r["gflops_vs_all"])
        rows.append([str(r["dim"]), str(r["choice"]), str(int(r["n"])), mean, _pp(r["effect"]),
                     _pp(r["effect_vs_best_other"]), best, f"{as_number(r['gflops_mean']):.3f}",
                     f"{g:+.3f}" if math.isfinite(g) else "n/a",
                     f"{as_number(r['front_share']):.0%} ({int(r['front_count'])} of {int(r['front_n'])})"])
    return _Table("effects-table",
                  f"What each choice costs and buys; {_trials(len(an.u))}. Effect: the choice's "
                  f"mean top-1 minus the mean of all {len(an.u)} (percentage points); GFLOPs "
                  f"({FLOP_NOTE}): mean full-size cost of the trials using the choice, and its "
                  f"difference from the mean of all. Designs over a FLOP budget may have been "
                  f"narrowed to fit, which lowers a costly choice's mean GFLOPs.", header, rows)


def _importances_table(imp: Importances) -> _Table:
    return _Table("importances-table",
                  f"Optuna parameter importances for proxy top-1 ({imp.evaluator}); "
                  f"{_trials(imp.n, 'completed Optuna trials')}.",
                  ["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in imp.values])


def _excluded_table(an: _Analysis) -> _Table:
    dims = list(an.varying)
    header = ["trial", "status", "reason", "epochs", "recorded top-1 (%)", "GFLOPs", "reference",
              "error", *dims]
    rows = []
    for _, r in an.excl.iterrows():
        err = "" if _blank(r.get("error")) else " ".join(str(r.get("error")).split())
        if len(err) > _ERROR_CHARS:
            err = err[: _ERROR_CHARS - 3] + "..."
        ep = as_number(r.get("epochs"))
        rows.append([_trial_label(r), "" if _blank(r.get("status")) else str(r.get("status")),
                     str(r["reason"]), str(int(ep)) if math.isfinite(ep) else "n/a",
                     _pct(r.get("top1")), _gf(r.get("flops")), _ref_name(r.get("reference")),
                     err, *_design_cells(r, dims)])
    return _Table("excluded-table",
                  f"Trials left out of the front, the EDFs and the effects: {len(rows)} of "
                  f"{len(an.df)} trials. A trial stopped early was measured after fewer epochs, "
                  f"so its top-1 is not comparable even when it is higher.", header, rows)


def _verdict_frame(v: A.Verdict) -> pd.DataFrame:
    rows = []
    for d in v.dims:
        cx = next((c for c in d.choices if c.choice == d.convnext_choice), None)
        best = next(c for c in d.choices if c.choice == d.best_choice)
        rows.append({
            "dim": d.dim, "n": d.n, "convnext_choice": d.convnext_choice,
            "best_choice": d.best_choice, "n_choices": len(d.choices),
            "convnext_n": cx.n if cx else None,
            "convnext_top1_mean": cx.top1_mean.estimate if cx else None,
            "convnext_top1_mean_lo": cx.top1_mean.lo if cx else None,
            "convnext_top1_mean_hi": cx.top1_mean.hi if cx else None,
            "convnext_top1_best": cx.top1_best.estimate if cx else None,
            "best_n": best.n, "best_top1_mean": best.top1_mean.estimate,
            "best_top1_mean_lo": best.top1_mean.lo, "best_top1_mean_hi": best.top1_mean.hi,
            "best_top1_best": best.top1_best.estimate,
            "front_n": d.front_n, "front_share": d.front_share, "verdict": d.verdict,
            "reason": d.reason,
        })
    return pd.DataFrame(rows)
