"""The ablation report: one change at a time around a base design, with paired intervals.

Renders an `analysis.ablation.AblationAnalysis` (computed once) as ablation.md and a
self-contained ablation.html, a forest plot (ablation_forest.png) of every variant's mean
per-seed difference from the base with its interval, grouped by dimension (as the paper's
ablation tables group them), the verdict table with the paper's own direction beside each
of the base's choices, the list of variants with the FLOPs each is compared at and why, and
CSVs (ablation_variants.csv, ablation_verdicts.csv) and ablation.json. The numbers are the
analysis'; nothing here computes a statistic.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis.ablation import AblationAnalysis
from ..analysis.paired import verdict_rule
from ..results import plain
from .document import (
    FLOP_NOTE,
    _blank,
    _Block,
    _check_formats,
    _Fig,
    _prepare_out,
    _render_html,
    _render_md,
    _Table,
    _Writer,
)
from .figures import _legends_below, _LegendSpec, _new_figure, _png

FOREST_WIDTH = 9.0
#: Height of the forest plot per variant row (inches), and of its frame.
FOREST_ROW = 0.32
FOREST_FRAME = 2.2

#: The files an ablation report may write.
FILES = ("ablation.md", "ablation.html", "ablation_forest.png", "ablation_variants.csv",
         "ablation_verdicts.csv", "ablation.json")


@dataclass(frozen=True)
class AblationReportInfo:
    out_dir: Path
    files: tuple[Path, ...]


def _pp(v: float, digits: int = 2) -> str:
    return f"{100 * v:+.{digits}f}" if v is not None and math.isfinite(v) else "n/a"


def _gf(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return f"{x / 1e9:.3f}" if math.isfinite(x) else "n/a"


def _ci(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    return f"[{_pp(lo)}, {_pp(hi)}]"


# --------------------------------------------------------------------------------------------
# The forest plot
# --------------------------------------------------------------------------------------------


_SIDE_COLOURS = {"above": "#2ca02c", "below": "#d62728", "covers": "#7f7f7f"}
_SIDE_LABELS = {"above": "interval above zero (the alternative is better)",
                "below": "interval below zero (the base's choice is better)",
                "covers": "interval contains zero (undecided)"}


def forest_figure(an: AblationAnalysis) -> bytes:
    """The forest plot as PNG bytes (see `_forest_plot`)."""
    return _png(_forest_plot(an))


def _forest_plot(an: AblationAnalysis):
    diffs = list(an.paired.diffs)
    n = max(1, len(diffs))
    height = FOREST_FRAME + FOREST_ROW * n
    fig = _new_figure((FOREST_WIDTH, height))
    # margins in inches, so the two-line title and the legend fit at any number of rows
    top, bottom = 1 - 0.6 / height, 1.3 / height
    ax = fig.add_axes((0.32, bottom, 0.64, top - bottom))
    labels, ys = [], []
    y = 0.0
    last_dim = None
    seen_sides: dict[str, Any] = {}
    for d in diffs:
        if last_dim is not None and d.dimension != last_dim:
            ax.axhline(y + 0.5, color="#cccccc", lw=0.8)
            y += 0.5
        last_dim = d.dimension
        side = d.side
        colour = _SIDE_COLOURS[side]
        if math.isfinite(d.lo) and math.isfinite(d.hi):
            ax.plot([100 * d.lo, 100 * d.hi], [y, y], color=colour, lw=2)
        if math.isfinite(d.mean):
            h = ax.plot([100 * d.mean], [y], "o", color=colour, ms=6,
                        mfc=colour if math.isfinite(d.lo) else "white")[0]
            seen_sides.setdefault(side, h)
        matched = "" if _matched(an, d.variant) else " *"
        labels.append(f"{d.dimension} = {d.value}{matched} (n={d.n})")
        ys.append(y)
        y += 1.0
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(y - 0.5, -0.5) if diffs else ax.set_ylim(0.5, -0.5)
    ax.set_xlabel("proxy top-1: variant minus base, same seed (percentage points)")
    ax.grid(axis="x", alpha=0.3)
    level = f"{an.paired.level * 100:g}%"
    ax.set_title(f"One change at a time around {an.base_name}\nmean per-seed difference and "
                 f"its {level} t interval", fontsize=10)
    order = [s for s in ("below", "covers", "above") if s in seen_sides]
    _legends_below(fig, [_LegendSpec(ax, tuple(seen_sides[s] for s in order),
                                     tuple(_SIDE_LABELS[s] for s in order))], [ax])
    return fig


def _matched(an: AblationAnalysis, variant: str) -> bool:
    for v in an.variants:
        if v["id"] == variant:
            return bool(v.get("matched"))
    return False


def _forest_caption(an: AblationAnalysis) -> str:
    seeds = ", ".join(str(s) for s in an.record.get("seeds", []))
    return (f"Each row is one variant: the base ({an.base_name}) with the one field named "
            f"changed, trained with the same seeds ({seeds}) as the base. Dot: the mean over "
            f"seeds of (variant top-1 minus base top-1) of the same seed, in percentage points; "
            f"bar: its {an.paired.level * 100:g}% Student t interval (n = paired seeds, in "
            f"parentheses). A hollow dot has no interval (fewer than 2 paired seeds). Rows marked "
            f"* are compared at their own FLOPs (width variants, or no width matches the "
            f"base's FLOPs); the others are FLOP-matched by their width. FLOPs count {FLOP_NOTE}.")


# --------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------


def _variants_table(an: AblationAnalysis) -> _Table:
    rows = []
    for d in an.paired.diffs:
        needed = str(d.needed) if d.needed is not None else "-"
        rows.append([d.dimension, d.value, _gf(d.flops), str(d.n), _pp(d.mean),
                     _pp(d.sd) .lstrip("+") if math.isfinite(d.sd) else "n/a",
                     _ci(d.lo, d.hi), _pp(d.detectable).lstrip("+"), needed])
    level = f"{an.paired.level * 100:g}%"
    return _Table("ablation-variants", f"Every variant against the base, per-seed differences "
                  f"(variant minus base) in top-1 percentage points: mean, sd, {level} t "
                  f"interval; 'detectable' is the smallest true difference this run detects "
                  f"with {an.paired.power * 100:g}% power, 'seeds needed' the seeds that would "
                  f"decide it at the observed mean and spread. n = paired seeds.",
                  ["dimension", "value", "GFLOPs", "n", "mean (pp)", "sd (pp)",
                   f"{level} interval (pp)", "detectable (pp)", "seeds needed"], rows)


def _verdicts_frame(an: AblationAnalysis) -> pd.DataFrame:
    rows = []
    for v in an.paired.verdicts:
        p = an.paper.get(v.dimension)
        rows.append({"dimension": v.dimension, "base_value": v.base_value,
                     "verdict": v.verdict, "detectable": v.detectable,
                     "seeds_needed": v.needed, "reason": v.reason,
                     "paper_direction": p.direction if p is not None else None,
                     "paper_comparisons": p.text() if p is not None else ""})
    return pd.DataFrame(rows, columns=["dimension", "base_value", "verdict", "detectable",
                                       "seeds_needed", "reason", "paper_direction",
                                       "paper_comparisons"])


def _verdicts_table(an: AblationAnalysis) -> _Table:
    rows = []
    for r in _verdicts_frame(an).to_dict("records"):
        rows.append([r["dimension"], "?" if _blank(r["base_value"]) else r["base_value"],
                     r["verdict"],
                     _pp(r["detectable"]).lstrip("+"),
                     str(int(r["seeds_needed"])) if r["seeds_needed"] is not None
                     and not pd.isna(r["seeds_needed"]) else "-",
                     r["reason"], "-" if _blank(r["paper_direction"]) else r["paper_direction"],
                     r["paper_comparisons"]])
    return _Table("ablation-verdicts", f"Per dimension: is the base's choice better than every "
                  f"alternative the space allows? {an.paired.decided} of "
                  f"{len(an.paired.verdicts)} dimensions decided. Beside it, the paper's own "
                  f"direction for the same choice where a roadmap step made that change "
                  f"(ImageNet-1K top-1 of the step minus the step it starts from, Table 10; the "
                  f"paper's comparisons are at the steps' own FLOPs, not FLOP-matched).",
                  ["dimension", "base's choice", "verdict", "detectable (pp)", "seeds needed",
                   "why", "paper", "paper's comparisons"], rows)


def _plan_table(an: AblationAnalysis) -> _Table:
    rows = [[v["id"], _gf(v.get("flops")), "yes" if v.get("matched") else "no", v.get("why", "")]
            for v in an.variants]
    return _Table("ablation-plan", f"The designs trained ({len(rows)}: the base and its "
                  f"one-change variants), the FLOPs each is compared at, whether its width was "
                  f"refitted to the base's FLOPs, and why. FLOPs count {FLOP_NOTE}.",
                  ["variant", "GFLOPs", "FLOP-matched", "why"], rows)


def _settings(an: AblationAnalysis, run_dir: Path | None) -> list[str]:
    r = an.record
    lines = []
    if run_dir is not None:
        lines.append(f"run folder: {run_dir}")
    budget = r.get("budget")
    lines.append(f"base: {an.base_name}; space: {r.get('space')}; budget: "
                 + (f"{float(budget) / 1e9:.3f} GFLOPs" if budget is not None else "none"))
    lines.append(f"seeds: {', '.join(str(s) for s in r.get('seeds', []))} (every design is "
                 f"trained with each)")
    counts = ", ".join(f"{n} {k}" for k, n in an.counts.items()) or "none"
    lines.append(f"trials: {sum(an.counts.values())} ({counts})")
    if an.minutes is not None:
        lines.append(f"training time: {an.minutes:.1f} minutes")
    return lines


def _blocks(an: AblationAnalysis, run_dir: Path | None, fig: _Fig | None,
            extra: list[_Block], fid: Any = None) -> list[_Block]:
    b: list[_Block] = [("h1", f"nas-convnext ablation around {an.base_name}")]
    b.append(("ul", _settings(an, run_dir)))
    if fid is not None:  # as the search report: how far this proxy can be trusted, first
        b.append(("h2", "The proxy's calibration"))
        b.append(("ul", fid.lines()))
        if fid.record is not None and fid.warning():
            b.append(("p", fid.warning() + (" The paired verdicts below say what the proxy "
                                            "measured; whether full training would agree is "
                                            "what the calibration doubts.")))
    b.append(("p", "Top-1 is the proxy's (short training of a narrowed model on the run's "
                   "data), not ImageNet's. Each variant changes one field of the base; the "
                   "same seed gives both the same data order, augmentation and initial "
                   "randomness, so the per-seed difference is compared, not the two means."))
    b.append(("h2", "1. Differences from the base"))
    if fig is not None:
        b.append(("fig", fig))
    b.append(("table", _variants_table(an)))
    b.append(("h2", "2. Verdicts, beside the paper's"))
    b.append(("table", _verdicts_table(an)))
    b.append(("p", "Rule: " + verdict_rule(an.paired.level)))
    b.append(("h2", "3. The variants, their FLOPs and why"))
    b.append(("table", _plan_table(an)))
    if an.skipped:
        b.append(("p", "Changes the space allows that give no design to train:"))
        b.append(("ul", [f"{s['dimension']}={s['value']}: {s['why']}" for s in an.skipped]))
    b.extend(extra)
    if an.notes:
        b.append(("h2", "Notes"))
        b.append(("ul", list(an.notes)))
    return b


def write_ablation_report(an: AblationAnalysis, out_dir: str | Path,
                          formats: Iterable[str] | str = ("md", "html", "csv", "json", "png"),
                          run_dir: str | Path | None = None,
                          extra: list[_Block] | None = None,
                          fidelity: Any = None) -> AblationReportInfo:
    """Write the ablation report of ``an`` into ``out_dir`` (see the module doc).

    ``formats`` picks among md, html, csv, json and png (the PNG is written whenever md or
    html is); ``run_dir`` is named in the report; ``extra`` blocks go after the variants
    list; ``fidelity`` (`report.fidelity.Fidelity`) puts the proxy's calibration on its
    dataset at the top, as in the search report. Returns the folder and the files written.
    """
    fm = _check_formats(formats)
    out = _prepare_out(Path(out_dir))
    write = _Writer(out)
    fig = None
    if {"md", "html", "png"} & set(fm):
        fig = _Fig("ablation_forest.png", forest_figure(an),
                   f"forest plot of the differences from {an.base_name}", _forest_caption(an))
        write(fig.name, fig.png)
    rd = Path(run_dir) if run_dir is not None else None
    blocks = _blocks(an, rd, fig, list(extra or []), fidelity)
    if "csv" in fm:
        table = an.paired.table()
        plan = {v["id"]: v for v in an.variants}
        table["matched"] = [plan.get(v, {}).get("matched") for v in table["variant"]]
        table["why"] = [plan.get(v, {}).get("why") for v in table["variant"]]
        write("ablation_variants.csv", table.to_csv(index=False))
        write("ablation_verdicts.csv", _verdicts_frame(an).to_csv(index=False))
    if "md" in fm:
        write("ablation.md", _render_md(blocks))
    if "html" in fm:
        write("ablation.html", _render_html(str(blocks[0][1]), blocks))
    if "json" in fm:
        data = {**an.to_json(),
                "fidelity": fidelity.to_json() if fidelity is not None else None}
        write("ablation.json", json.dumps(plain(data), indent=2, allow_nan=False) + "\n")
    return AblationReportInfo(out_dir=out, files=tuple(write.files))


def ablation_summary(an: AblationAnalysis) -> str:
    """A few lines for the terminal: one per dimension with its verdict and the paper's
    direction, then how many dimensions were decided, and the time."""
    lines = []
    verdicts = list(an.paired.verdicts)
    if verdicts:
        w = max(len(v.dimension) for v in verdicts)
        lines.append(f"verdicts ({an.paired.level * 100:g}% paired t intervals over seeds "
                     f"{', '.join(str(s) for s in an.paired.base_seeds)}):")
        for v in verdicts:
            p = an.paper.get(v.dimension)
            paper = p.direction if p is not None and p.direction else "-"
            extra = ""
            if v.verdict == "undecided":
                need = f"about {v.needed} seeds to decide" if v.needed is not None else \
                    "no feasible number of seeds decides it"
                extra = f"; detectable {_pp(v.detectable).lstrip('+')} pp, {need}"
            lines.append(f"  {v.dimension:<{w}}  base {v.base_value}: {v.verdict:<9}  "
                         f"(paper: {paper}{extra})")
    time = f" in {an.minutes:.1f} minutes" if an.minutes is not None else ""
    lines.append(f"decided {an.paired.decided} of {len(verdicts)} dimensions{time}")
    return "\n".join(lines)
