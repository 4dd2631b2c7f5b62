"""The report of a run: its trials table rendered as documents, figures, CSVs and JSON.

`write_report` reads `trials.parquet` of a run folder, takes the analysis computed once
(`analysis.run.analyse`), then renders that one result as

* `report.md` and a self-contained `report.html` (figures embedded, tables with the ids
  `front-table`, `verdict-table`, `effects-table`),
* PNG figures: the Pareto front against GFLOPs and against parameters, one error-EDF figure per
  varying dimension (plain and complexity-normalised panels), Optuna parameter importances,
* CSVs (`front.csv`, `effects.csv`, `verdict.csv`, `excluded.csv`) and `analysis.json`.

Every figure names its units and the FLOP convention (one multiply-add = one FLOP, full-size
design at 224x224 input, 1000 classes) and every table the number of trials it rests on.
Trials that stopped early, diverged or errored are counted and listed apart, and never enter
the front, the EDFs or the effects (see `analysis.front.usable`). Files are written
atomically, and never over the run's own `trials.parquet`, `trials.csv`, `run.json` or
`study.db`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import analysis as A
from ..analysis.run import Importances
from ..analysis.run import RunAnalysis as _Analysis
from ..analysis.run import analyse as _analyse
from ..results import one_line, plain, read_table
from ..userfile import as_number
from .calibration_report import run_json_of
from .document import (
    FLOP_NOTE,
    _blank,
    _Block,
    _check_formats,
    _Fig,
    _gf,
    _num,
    _pct,
    _pp,
    _prepare_out,
    _ref_name,
    _render_html,
    _render_md,
    _row_dict,
    _Table,
    _trials,
    _Writer,
)
from .fidelity import Fidelity, fidelity_for
from .figures import _figures, _safe
from .tables import (
    _dominators_table,
    _effects_table,
    _excluded_table,
    _front_params_table,
    _front_table,
    _importances_table,
    _verdict_frame,
    _verdict_table,
)
from .time_report import _place_text as time_place_text
from .time_report import time_blocks, time_figures, time_json

#: Front rows printed on the terminal (the files hold all of them).
SUMMARY_FRONT_ROWS = 5


@dataclass(frozen=True)
class ReportInfo:
    """What :func:`write_report` computed and wrote; :func:`summary_text` prints it."""

    run_dir: Path
    out_dir: Path
    formats: tuple[str, ...]
    files: tuple[Path, ...]
    n_trials: int
    status_counts: tuple[tuple[str, int], ...]
    n_usable: int
    n_excluded: int
    varying: tuple[str, ...]                # dimensions with more than one value among usable
    fixed: tuple[tuple[str, str], ...]      # (dimension, its single value)
    front: tuple[dict[str, Any], ...]       # the (GFLOPs, top-1) front, cheapest first
    verdict: A.Verdict
    effects_n: int                          # rows of the effects table
    importances: Importances | None
    notes: tuple[str, ...]
    summary: dict[str, Any]                 # analysis.summarize()
    fidelity: Fidelity | None = None        # the proxy's calibration beside the verdicts
    ablation: dict[str, Any] | None = None  # the latest ablation beside it (`_local_evidence`)
    time_lines: tuple[str, ...] = ()        # ConvNeXt-T's place per measured time


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "none"


def _run_lines(an: _Analysis, run_dir: Path | None) -> list[str]:
    lines = []
    if run_dir is not None:
        lines.append(f"run folder: {run_dir}")
    m = an.run_meta
    if m:
        cfg = m.get("config") if isinstance(m.get("config"), dict) else {}
        space = m.get("space") if isinstance(m.get("space"), dict) else {}
        bits = []
        if space.get("name") or cfg.get("space"):
            bits.append(f"space {space.get('name') or cfg.get('space')}")
        budget = as_number(m.get("budget_flops", cfg.get("budget")))
        if math.isfinite(budget):
            bits.append(f"budget {budget / 1e9:.3f} GFLOPs")
        for key in ("sampler", "scheduler", "proxy", "dataset", "seed"):
            if key in cfg and not _blank(cfg.get(key)):
                bits.append(f"{key} {cfg[key]}")
        if bits:
            lines.append("settings: " + ", ".join(bits))
        when = [f"{k} {m[k]}" for k in ("started", "finished") if not _blank(m.get(k))]
        if when:
            lines.append(", ".join(when))
    lines.append(f"trials: {len(an.df)} ({_counts_text(an.counts)}); usable: {len(an.u)} "
                 f"completed with finite top-1 and GFLOPs; excluded: {len(an.excl)}")
    return lines


def _verdict_point_text(v: A.Verdict) -> str:
    if v.on_front is None:
        return f"ConvNeXt-T could not be placed: {v.message}."
    where = (f"ConvNeXt-T ({v.message}) has proxy top-1 {_pct(v.reference_top1)}% at "
             f"{_gf(v.reference_flops)} GFLOPs")
    if v.on_front:
        return (where + ": it is ON the Pareto front; no completed design reaches its top-1 with "
                "fewer GFLOPs or beats it at no more.")
    k = len(v.dominated_by)
    return (where + f": it is NOT on the front; {k} design{'s' if k != 1 else ''} dominate it. "
            f"The largest top-1 gain among them is {_pp(v.top1_gap)} pp and the cheapest needs "
            f"{v.flop_ratio:.3f}x ConvNeXt-T's GFLOPs.")


def _local_evidence(run_dir: Path | None) -> tuple[Path, Any] | None:
    """The latest ablation of the same proxy and data beside this run, analysed; None when
    there is none (or it cannot be analysed: it is then simply not shown)."""
    if run_dir is None:
        return None
    from ..analysis.ablation import analyse_ablation, latest_ablation

    found = latest_ablation(run_dir)
    if found is None:
        return None
    path, meta = found
    try:
        minutes = meta.get("elapsed_s")
        return path, analyse_ablation(read_table(path), meta["ablation"],
                                      minutes=float(minutes) / 60 if isinstance(
                                          minutes, (int, float)) else None)
    except (ValueError, OSError, KeyError):
        return None


def _local_rows(an: _Analysis, abl: Any) -> list[dict[str, Any]]:
    """Per dimension: the search's (global, sampled) verdict beside the ablation's (local,
    one change at a time) and the paper's direction."""
    search = {d.dim: d for d in an.verdict.dims}
    rows = []
    for v in abl.paired.verdicts:
        d = search.get(v.dimension)
        p = abl.paper.get(v.dimension)
        rows.append({"dimension": v.dimension,
                     "search_choice": d.convnext_choice if d is not None else None,
                     "search_verdict": d.verdict if d is not None else None,
                     "ablation_choice": v.base_value, "ablation_verdict": v.verdict,
                     "paper_direction": p.direction if p is not None else None})
    return rows


def _local_blocks(an: _Analysis, local: tuple[Path, Any]) -> list[_Block]:
    path, abl = local
    rows = [[r["dimension"], r["search_choice"] or "-", r["search_verdict"] or "not varied",
             r["ablation_choice"] or "-", r["ablation_verdict"], r["paper_direction"] or "-"]
            for r in _local_rows(an, abl)]
    seeds = ", ".join(str(s) for s in abl.paired.base_seeds)
    return [("h2", "Local evidence: the latest ablation of the same proxy and data"),
            ("p", f"{path.name}: {abl.base_name} and its one-change variants, each trained "
                  f"with seeds {seeds}; {abl.paired.decided} of {len(abl.paired.verdicts)} "
                  f"dimensions decided by paired {abl.paired.level * 100:g}% t intervals "
                  f"(its report: {path / 'ablation.html'}). The search's verdicts rest on "
                  f"the designs it sampled (global evidence); the ablation's on one change at a "
                  f"time around its base (local evidence)."),
            ("table", _Table("local-evidence-table", f"Per dimension: the search's verdict on "
                             f"ConvNeXt-T's choice (n = {len(an.u)} completed trials) beside the "
                             f"ablation's on its base's choice, and the paper's direction.",
                             ["dimension", "ConvNeXt-T's choice", "search verdict",
                              "ablation base's choice", "ablation verdict", "paper"], rows))]


def _blocks(an: _Analysis, run_dir: Path | None, figs: dict[str, _Fig],
            fid: Fidelity | None = None, local: tuple[Path, Any] | None = None) -> list[_Block]:
    v = an.verdict
    title = ("nas-convnext report: " + (run_dir.resolve().name or str(run_dir.resolve()))
             if run_dir is not None else "nas-convnext report")
    b: list[_Block] = [("h1", title)]
    if fid is not None:  # the report opens with how far its proxy can be trusted
        b.append(("h2", "Proxy fidelity"))
        b.append(("ul", fid.lines()))
    b.append(("ul", _run_lines(an, run_dir)))
    b.append(("p", f"FLOPs everywhere in this report are those of the full-size design: {FLOP_NOTE} "
                   f"(fvcore's convention). Top-1 is the proxy's (short training of a narrowed "
                   f"model on the run's dataset), not ImageNet's."))
    if an.fixed:
        b.append(("p", "Fixed in every usable trial: "
                  + ", ".join(f"{d}={val}" for d, val in an.fixed) + "."))

    b.append(("h2", "1. Pareto front"))
    b.append(("p", f"{_trials(len(an.u))}. A design is on the front when no other completed "
                   f"design has at least its proxy top-1 at no more GFLOPs (and is better in one)."))
    for name in ("front_flops.png", "front_params.png"):
        if name in figs:
            b.append(("fig", figs[name]))
    b.append(("table", _front_table(an)))
    b.append(("table", _front_params_table(an)))

    b.append(("h2", "2. Is ConvNeXt-T on the front, and do its choices pay off?"))
    if fid is not None and fid.warning():
        b.append(("p", fid.warning()))
    b.append(("p", _verdict_point_text(v)))
    if v.dominated_by:
        b.append(("table", _dominators_table(an)))
    b.append(("table", _verdict_table(an, fid.shown if fid is not None else None)))
    b.append(("p", "Rule: " + v.rule))

    b.append(("h2", "3. Error EDFs per dimension"))
    if an.varying:
        b.append(("p", f"RegNet-style error EDFs ({_trials(len(an.u))}); a curve further up and "
                       f"to the left means more good designs with that choice."))
        for dim in an.varying:
            b.append(("fig", figs[f"edf_{_safe(dim)}.png"]))
    else:
        b.append(("p", "No dimension varies among the completed trials: nothing to compare."))

    b.append(("h2", "4. Trade-offs"))
    if not len(an.effects):
        b.append(("p", "No choice effects: no dimension varies among the completed trials."))
    b.append(("table", _effects_table(an)))
    b.append(("h3", "Optuna parameter importances"))
    if an.importances is not None:
        b.append(("fig", figs["importances.png"]))
        b.append(("table", _importances_table(an.importances)))
    else:
        note = next((n for n in an.notes if "importances" in n), "importances skipped")
        b.append(("p", f"Not available: {note}."))

    if local is not None:
        b.extend(_local_blocks(an, local))
    b.append(("h2", "5. Excluded trials"))
    if len(an.excl):
        reasons = an.excl["reason"].value_counts()
        b.append(("p", f"{len(an.excl)} of {len(an.df)} trials are excluded: "
                       + ", ".join(f"{int(n)} {k}" for k, n in reasons.items()) + "."))
        b.append(("table", _excluded_table(an)))
    else:
        b.append(("p", f"None: all {len(an.df)} trials completed with finite top-1 and GFLOPs."))
    b.extend(time_blocks(an, figs))
    other = [n for n in an.notes if "importances" not in n]
    if other:
        b.append(("h2", "Notes"))
        b.append(("ul", other))
    return b


def _json(an: _Analysis, run_dir: Path | None, files: list[str],
          fid: Fidelity | None = None, local: tuple[Path, Any] | None = None) -> str:
    data = {
        "fidelity": fid.to_json() if fid is not None else None,
        "run_dir": run_dir,
        "flop_convention": FLOP_NOTE,
        "top1": "proxy top-1 as a fraction",
        "seed": an.seed,
        "n_boot": an.n_boot,
        "n_trials": len(an.df),
        "status_counts": an.counts,
        "n_usable": len(an.u),
        "n_excluded": len(an.excl),
        "varying_dims": list(an.varying),
        "fixed_dims": dict(an.fixed),
        "summary": an.summary,
        "front": [_row_dict(r, an.dims) for _, r in an.front.iterrows()],
        "verdict": dataclasses.asdict(an.verdict),
        "importances": dataclasses.asdict(an.importances) if an.importances else None,
        "excluded": [{**_row_dict(r, an.dims), "status": plain(r.get("status")),
                      "reason": str(r["reason"])} for _, r in an.excl.iterrows()],
        "notes": an.notes,
        "time": time_json(an.time),
        "files": files,
        "ablation": _local_json(an, local),
    }
    return json.dumps(plain(data), indent=2, allow_nan=False) + "\n"


def _local_json(an: _Analysis, local: tuple[Path, Any] | None) -> dict[str, Any] | None:
    if local is None:
        return None
    path, abl = local
    return {"run_dir": str(path), "base": abl.base_name,
            "seeds": list(abl.paired.base_seeds), "decided": abl.paired.decided,
            "dimensions": len(abl.paired.verdicts), "minutes": abl.minutes,
            "verdicts": _local_rows(an, abl)}


def write_report(
    run_dir: str | Path,
    formats: Iterable[str] | str = ("md", "html", "csv", "json", "png"),
    out_dir: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 10_000,
    calibration: str | Path | None = None,
) -> ReportInfo:
    """Analyse ``run_dir/trials.parquet`` once and write the report files.

    ``formats`` picks among md, html, csv, json and png (PNGs are also written whenever md or
    html is). Files go to ``out_dir`` (default: the run folder). ``calibration``: the
    calibration run (folder or calibration.json) whose figures go beside the verdicts
    (default: the newest in the run's results folder with the run's proxy and dataset; none:
    the report warns that the proxy is uncalibrated). Raises ValueError, with one readable
    message, for a missing or damaged table, a table without a usable trial (naming the
    counts by status), an unknown format, or a ``calibration`` that is not one.
    """
    fm = _check_formats(formats)
    run_dir = Path(run_dir)
    if isinstance(out_dir, str) and not out_dir.strip():  # Path("") is the current folder
        raise ValueError(f"--out {out_dir!r} is empty: give the folder to write the report in")
    out = Path(out_dir) if out_dir is not None else run_dir
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    fid = fidelity_for(run_json_of(run_dir), run_dir.resolve().parent, calibration)
    df = read_table(run_dir)
    an = _analyse(df, run_dir, seed, n_boot)  # everything that can fail on the data fails here
    return _write(an, run_dir, _prepare_out(out), fm, fid)


def _write(an: _Analysis, run_dir: Path | None, out: Path, fm: tuple[str, ...],
           fid: Fidelity | None = None) -> ReportInfo:
    want_png = bool({"md", "html", "png"} & set(fm))
    figs = {**_figures(an), **time_figures(an)} if want_png else {}
    local = _local_evidence(run_dir) if an.run_meta and an.run_meta.get("kind", "search") == "search" \
        else None
    blocks = _blocks(an, run_dir, figs, fid, local) if {"md", "html"} & set(fm) else []
    write = _Writer(out)
    for f in figs.values():
        write(f.name, f.png)
    if "csv" in fm:
        front = an.front.copy()
        front.insert(0, "front_rank", np.arange(1, len(front) + 1))
        front["gflops"] = _num(front["flops"]) / 1e9
        write("front.csv", front.to_csv(index=True, index_label="row"))
        write("effects.csv", an.effects.to_csv(index=False))
        verdicts = _verdict_frame(an.verdict)
        if fid is not None and len(verdicts):
            verdicts["verdict_shown"] = [fid.shown(x) for x in verdicts["verdict"]]
        write("verdict.csv", verdicts.to_csv(index=False))
        write("excluded.csv", an.excl.to_csv(index=True, index_label="row"))
        if an.time is not None:
            front = an.time.front("latency_ms").front
            write("time_front.csv", front.to_csv(index=True, index_label="row"))
    if "md" in fm:
        write("report.md", _render_md(blocks))
    if "html" in fm:
        write("report.html", _render_html(str(blocks[0][1]), blocks))
    if "json" in fm:
        names = [p.name for p in write.files] + ["analysis.json"]
        write("analysis.json", _json(an, run_dir, names, fid, local))
    front_rows = tuple(_row_dict(r, an.varying) for _, r in an.front.iterrows())
    return ReportInfo(
        run_dir=run_dir if run_dir is not None else out, out_dir=out, formats=fm,
        files=tuple(write.files), n_trials=len(an.df), status_counts=tuple(an.counts.items()),
        n_usable=len(an.u), n_excluded=len(an.excl), varying=an.varying, fixed=an.fixed,
        front=front_rows, verdict=an.verdict, effects_n=len(an.effects),
        importances=an.importances, notes=tuple(an.notes), summary=an.summary, fidelity=fid,
        ablation=_local_json(an, local),
        time_lines=() if an.time is None else tuple(
            f"in {f.label} on {an.time.device} (n = {f.n}): {time_place_text(f)}"
            for f in an.time.fronts if f.cost != "flops"),
    )


def summary_text(info: ReportInfo, front_rows: int = SUMMARY_FRONT_ROWS) -> str:
    """A few lines for the terminal: trials by status, the front's first rows, ConvNeXt-T on the
    front or not, one line per dimension's verdict, and where the files are."""
    counts = ", ".join(f"{n} {k}" for k, n in info.status_counts) or "none"
    fid = info.fidelity
    lines = [f"proxy fidelity: {line}" for line in (fid.lines() if fid is not None else [])]
    lines.append(f"trials: {info.n_trials} ({counts}); {info.n_usable} usable, "
                 f"{info.n_excluded} excluded")
    k = len(info.front)
    lines.append(f"Pareto front (proxy top-1 vs GFLOPs, {FLOP_NOTE}): {k} design"
                 f"{'s' if k != 1 else ''} from {info.n_usable} completed trials")
    for i, r in enumerate(info.front[:front_rows], 1):
        ref = f" [{_ref_name(r.get('reference'))}]" if r.get("reference") else ""
        design = " ".join(f"{d}={r[d]}" for d in info.varying if d in r)
        tid = r.get("trial_id")
        name = str(tid) if not _blank(tid) else f"row {r.get('index')}"
        lines.append(f"  {i:>2}. {_gf(r['flops']):>7} GFLOPs  top-1 {_pct(r['top1']):>6}%  "
                     f"{name}{ref}  {design}".rstrip())
    if k > front_rows:
        lines.append(f"      ... {k - front_rows} more (front.csv / report)")
    v = info.verdict
    if v.on_front is None:
        lines.append(f"ConvNeXt-T: not placed ({one_line(v.message, 300)})")
    elif v.on_front:
        lines.append(f"ConvNeXt-T: ON the front (top-1 {_pct(v.reference_top1)}% at "
                     f"{_gf(v.reference_flops)} GFLOPs)")
    else:
        lines.append(f"ConvNeXt-T: NOT on the front (top-1 {_pct(v.reference_top1)}% at "
                     f"{_gf(v.reference_flops)} GFLOPs); dominated by {len(v.dominated_by)} "
                     f"design(s), up to {_pp(v.top1_gap)} pp top-1, down to {v.flop_ratio:.3f}x "
                     f"its GFLOPs")
    lines.extend(info.time_lines)
    judged = [d for d in v.dims if d.dim in info.varying]
    if judged and fid is not None and fid.warning() and fid.record is not None:
        lines.append(fid.warning())
    if judged:
        lines.append(f"verdicts per dimension ({v.level:.0%} bootstrap intervals, at least "
                     f"{v.min_trials} trials per choice):")
        w = max(len(d.dim) for d in judged)
        for d in judged:
            cx = d.convnext_choice if d.convnext_choice is not None else "unknown"
            shown = fid.shown(d.verdict) if fid is not None else d.verdict
            lines.append(f"  {d.dim:<{w}}  ConvNeXt {cx}, best {d.best_choice}: {shown}")
    if info.ablation is not None:
        a = info.ablation
        lines.append(f"latest ablation of the same proxy and data ({a['run_dir']}): decided "
                     f"{a['decided']} of {a['dimensions']} dimensions: "
                     + ", ".join(f"{r['dimension']} {r['ablation_verdict']}"
                                 for r in a["verdicts"]))
    if info.fixed:
        lines.append("not varied (inconclusive): " + ", ".join(f"{d}={val}" for d, val in info.fixed))
    if info.files:
        main = sorted((p for p in info.files if p.suffix in (".html", ".md")),
                      key=lambda p: p.suffix != ".html")
        shown = main[0] if main else info.files[0]
        lines.append(f"report: {shown} ({len(info.files)} files in {info.out_dir})")
    else:  # pragma: no cover - a format always writes something
        lines.append("report: no files written")
    return "\n".join(lines)
