"""The report's section on measured time: the front in time, ConvNeXt-T's place on it, time
against FLOPs coloured by a dimension's choice, and the verdict for each cost the run measured.

Rendered from `analysis.timecost.TimeAnalysis` (computed once, in `analysis.run.analyse`);
the section appears only when the run's trials measured their speed.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..analysis.run import RunAnalysis as _Analysis
from ..analysis.timecost import CostFront, TimeAnalysis
from ..userfile import as_number
from .document import (
    FLOP_NOTE,
    _Block,
    _Fig,
    _num,
    _pct,
    _ref_name,
    _Table,
    _trial_label,
    _trials,
)
from .figures import GFLOPS_AXIS, TOP1_AXIS, _legends_below, _LegendSpec, _new_figure, _png
from .tables import _design_cells

TIME_FIGSIZE = (8.0, 5.6)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def _cost_text(f: CostFront, v: Any) -> str:
    x = as_number(v)
    if not math.isfinite(x):
        return "n/a"
    return f"{x / 1e9:.3f}" if f.cost == "flops" else f"{x:.1f}"


def _place_text(f: CostFront) -> str:
    if f.convnext_on_front is None:
        return "ConvNeXt-T has no completed trial with this cost: it cannot be placed."
    if f.convnext_on_front:
        return f"ConvNeXt-T is on the front in {f.label} ({_cost_text(f, f.convnext_cost)} {f.unit})."
    gain = max(d[1] for d in f.dominated_by)
    ratio = min(d[2] for d in f.dominated_by)
    return (f"ConvNeXt-T ({_cost_text(f, f.convnext_cost)} {f.unit}) is dominated in "
            f"{f.label} by {len(f.dominated_by)} design(s): up to {gain:+.2f} points of proxy "
            f"top-1, and down to {ratio:.2f}x its {f.label}.")


def time_front_table(an: _Analysis, t: TimeAnalysis) -> _Table:
    f = t.front("latency_ms")
    dims = list(an.varying)
    rows = [[str(i), _trial_label(r), _ref_name(r.get("reference")),
             f"{as_number(r['latency_ms']):.1f}", f"{as_number(r.get('latency_ms_spread')):.1f}",
             f"{as_number(r['flops']) / 1e9:.3f}", _pct(r["top1"]), *_design_cells(r, dims)]
            for i, (_, r) in enumerate(f.front.iterrows(), 1)]
    return _Table("time-front-table",
                  f"Pareto front, proxy top-1 against measured batch-1 latency on {t.device}: "
                  f"{len(f.front)} design(s), fastest first; {_trials(f.n)} measured there. "
                  f"Latency: median ms of the full-size design (224x224), with its "
                  f"interquartile range.",
                  ["#", "trial", "reference", "latency ms", "IQR ms", "GFLOPs",
                   "proxy top-1 (%)", *dims], rows)


def time_verdict_table(an: _Analysis, t: TimeAnalysis) -> _Table:
    dims = list(an.varying)
    rows = []
    for f in t.fronts:
        place = ("n/a" if f.convnext_on_front is None else
                 "on the front" if f.convnext_on_front else
                 f"dominated by {len(f.dominated_by)}")
        best = (f"{max(d[1] for d in f.dominated_by):+.2f} pts at "
                f"{min(d[2] for d in f.dominated_by):.2f}x" if f.dominated_by else "")
        shares = ["n/a" if f.front_share.get(d) is None else f"{100 * f.front_share[d]:.0f}%"
                  for d in dims]
        rows.append([f"{f.label} ({f.unit})", str(f.n), str(len(f.front)),
                     _cost_text(f, f.convnext_cost), place, best, *shares])
    return _Table("time-verdict-table",
                  "The verdict for each cost the run measured: ConvNeXt-T's place on the "
                  "(cost, proxy top-1) front, the best that dominating designs offer (top-1 "
                  "gain, smallest cost ratio to ConvNeXt-T), and per dimension the share of "
                  "the front that uses ConvNeXt's choice. GFLOPs: every completed trial "
                  f"({FLOP_NOTE}); times: the trials measured on {t.device}.",
                  ["cost", "n", "front", "ConvNeXt-T", "ConvNeXt-T's place",
                   "best dominator", *[f"{d}: ConvNeXt's share" for d in dims]], rows)


def time_choices_table(t: TimeAnalysis) -> _Table:
    rows = [[c.dim, c.choice, str(c.n),
             f"{c.ms_per_gflop.estimate:.1f} [{c.ms_per_gflop.lo:.1f}, {c.ms_per_gflop.hi:.1f}]",
             f"{c.ratio:.2f}"] for c in t.choices]
    level = t.choices[0].ms_per_gflop.level if t.choices else 0.95
    return _Table("time-choices-table",
                  f"Time beyond FLOPs: each choice's mean milliseconds of batch-1 latency per "
                  f"full-size GFLOP on {t.device}, with its {level:.0%} bootstrap interval, and "
                  f"that mean over the dimension's overall mean (above 1: the choice costs "
                  f"more time than its FLOPs say); {_trials(t.n, 'measured trials')}.",
                  ["dimension", "choice", "n", "ms per GFLOP", "ratio"], rows)


def _measured(an: _Analysis, t: TimeAnalysis):
    """The usable trials measured on the analysed device, with a finite latency: the points
    of both time figures."""
    d = an.u.loc[an.u["speed_device"].astype(str) == t.device] if "speed_device" in an.u \
        else an.u
    return d.loc[np.isfinite(_num(d["latency_ms"]))]


def time_figure(an: _Analysis, t: TimeAnalysis) -> _Fig:
    """Latency against GFLOPs, coloured by the choice of `t.colour_dim`, the latency front's
    designs ringed and ConvNeXt-T starred."""
    fig = _new_figure(TIME_FIGSIZE)
    ax = fig.add_axes((0.09, 0.2, 0.88, 0.72))
    f = t.front("latency_ms")
    d = _measured(an, t)
    xs, ys = _num(d["flops"]) / 1e9, _num(d["latency_ms"])
    dim = t.colour_dim
    if dim is not None:
        from ..design.codec import texts

        labels = texts(d[dim]).to_numpy()
        for i, choice in enumerate(sorted(set(labels))):
            sel = labels == choice
            ax.scatter(xs[sel], ys[sel], s=26, color=PALETTE[i % len(PALETTE)], alpha=0.85,
                       lw=0, zorder=3, label=f"{dim}={choice} (n = {int(sel.sum())})")
    else:
        ax.scatter(xs, ys, s=26, color="#7f98b3", lw=0, zorder=3,
                   label=f"measured trials (n = {len(d)})")
    if len(f.front):
        ax.scatter(_num(f.front["flops"]) / 1e9, _num(f.front["latency_ms"]), s=70,
                   facecolors="none", edgecolors="#d62728", lw=1.3, zorder=4,
                   label=f"on the latency front ({len(f.front)})")
    ref = d.loc[d["reference"].astype(str) == "convnext_t"] if "reference" in d else d.iloc[0:0]
    if len(ref):
        r = ref.iloc[0]
        ax.scatter([as_number(r["flops"]) / 1e9], [as_number(r["latency_ms"])], marker="*", s=230,
                   color="#2ca02c", edgecolors="black", lw=0.7, zorder=6,
                   label="ConvNeXt-T" + ("" if f.convnext_on_front is None else
                                         " (on the latency front)" if f.convnext_on_front
                                         else " (dominated in latency)"))
    ax.set_xlabel(GFLOPS_AXIS)
    ax.set_ylabel(f"batch-1 latency (ms, median; {t.device})")
    ax.set_title("Measured latency against GFLOPs" + (f", by {dim}" if dim else ""))
    ax.grid(alpha=0.3)
    ax.margins(x=0.06, y=0.12)
    handles, labels = ax.get_legend_handles_labels()
    _legends_below(fig, [_LegendSpec(ax, tuple(handles), tuple(labels))], [ax])
    why = (f" Coloured by {dim}, the dimension whose choices differ most in milliseconds per "
           f"GFLOP (time-choices table)." if dim else "")
    caption = (f"{_trials(len(d), 'measured trials')} on {t.device}; each point a completed "
               f"trial's full-size design: GFLOPs ({FLOP_NOTE}) against its median batch-1 "
               f"latency. A point above the others at the same GFLOPs costs time beyond its "
               f"FLOPs.{why}")
    return _Fig("time_vs_flops.png", _png(fig), "measured latency against GFLOPs", caption)


def time_front_figure(an: _Analysis, t: TimeAnalysis) -> _Fig:
    """Proxy top-1 against latency with the latency front as a step line."""
    fig = _new_figure(TIME_FIGSIZE)
    ax = fig.add_axes((0.09, 0.2, 0.88, 0.72))
    f = t.front("latency_ms")
    d = _measured(an, t)
    ax.scatter(_num(d["latency_ms"]), 100 * _num(d["top1"]), s=22, color="#7f98b3", lw=0,
               alpha=0.75, zorder=2, label=f"measured trials (n = {len(d)})")
    if len(f.front):
        fx, fy = _num(f.front["latency_ms"]), 100 * _num(f.front["top1"])
        xmax = float(np.nanmax(_num(d["latency_ms"])))
        ax.step(np.append(fx, max(xmax, fx[-1])), np.append(fy, fy[-1]), where="post",
                color="#d62728", lw=1.5, zorder=3, label=f"latency front ({len(f.front)})")
    ref = d.loc[d["reference"].astype(str) == "convnext_t"] if "reference" in d else d.iloc[0:0]
    if len(ref):
        r = ref.iloc[0]
        ax.scatter([as_number(r["latency_ms"])], [100 * as_number(r["top1"])], marker="*", s=230,
                   color="#2ca02c", edgecolors="black", lw=0.7, zorder=6, label="ConvNeXt-T")
    ax.set_xlabel(f"batch-1 latency (ms, median; {t.device})")
    ax.set_ylabel(TOP1_AXIS)
    ax.set_title("Proxy top-1 against measured latency: Pareto front")
    ax.grid(alpha=0.3)
    ax.margins(x=0.06, y=0.12)
    handles, labels = ax.get_legend_handles_labels()
    _legends_below(fig, [_LegendSpec(ax, tuple(handles), tuple(labels))], [ax])
    return _Fig("front_latency.png", _png(fig), "Pareto front: proxy top-1 against latency",
                f"{_trials(len(d), 'measured trials')} on {t.device}; the red step line is "
                f"the front in measured batch-1 latency. {_place_text(f)}")


def time_figures(an: _Analysis) -> dict[str, _Fig]:
    t = an.time
    if t is None:
        return {}
    return {fig.name: fig for fig in (time_front_figure(an, t), time_figure(an, t))}


def time_blocks(an: _Analysis, figs: dict[str, _Fig]) -> list[_Block]:
    t = an.time
    if t is None:
        return []
    b: list[_Block] = [("h2", "6. The cost in measured time")]
    b.append(("p", f"Every completed trial that measured its full-size design's speed "
                   f"({_trials(t.n, 'trials')} on {t.device}) is placed here by measured time "
                   f"instead of FLOPs. Times compare only among trials measured on the same "
                   f"kind of machine (device key)"
                   + (": " + "; ".join(t.notes) if t.notes else
                      f"; every measured trial ran on {t.device}.")))
    b.append(("p", _place_text(t.front("latency_ms"))))
    for name in ("front_latency.png", "time_vs_flops.png"):
        if name in figs:
            b.append(("fig", figs[name]))
    b.append(("table", time_front_table(an, t)))
    b.append(("table", time_verdict_table(an, t)))
    b.append(("table", time_choices_table(t)))
    return b


def time_json(t: TimeAnalysis | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "device": t.device, "devices": t.devices, "n": t.n,
        "fronts": [{"cost": f.cost, "unit": f.unit, "n": f.n,
                    "front_trials": [str(_trial_label(r)) for _, r in f.front.iterrows()],
                    "convnext_cost": f.convnext_cost, "convnext_on_front": f.convnext_on_front,
                    "dominated_by": [{"trial": str(i), "top1_gain_points": g, "cost_ratio": c}
                                     for i, g, c in f.dominated_by],
                    "front_share": f.front_share} for f in t.fronts],
        "choices": [{"dim": c.dim, "choice": c.choice, "n": c.n,
                     "ms_per_gflop": c.ms_per_gflop.estimate, "lo": c.ms_per_gflop.lo,
                     "hi": c.ms_per_gflop.hi, "ratio": c.ratio} for c in t.choices],
        "colour_dim": t.colour_dim, "notes": list(t.notes)}
