"""The roadmap report: the proxy replay of the paper's roadmap beside the paper's top-1.

The comparison itself (ranks, rank agreement, sign agreement of step-to-step changes) is
`analysis.roadmap`'s; this module renders it as roadmap.md / .html / .png / .csv / .json.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .. import analysis as A
from ..analysis.roadmap import _roadmap_frame
from ..results import plain, text_table
from ..userfile import as_number
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
from .figures import _roadmap_figure


@dataclass(frozen=True)
class RoadmapInfo:
    out_dir: Path
    files: tuple[Path, ...]
    n_steps: int
    n_completed: int
    agreement: A.RankAgreement | None
    notes: tuple[str, ...]


def roadmap_report(
    df_roadmap: pd.DataFrame,
    out_dir: str | Path,
    formats: Iterable[str] | str = ("md", "html", "csv", "png"),
) -> RoadmapInfo:
    """Render the proxy replay of the roadmap: a table of proxy top-1 beside the paper's per
    step, the rank agreement (Kendall tau-b, Spearman rho) over the completed steps, and a plot
    of both series, into roadmap.md / roadmap.html / roadmap.png / roadmap.csv in ``out_dir``.

    ``df_roadmap`` has columns step, name, paper_top1 (percent as in the paper's Table 10, or
    a fraction), top1 (proxy, a fraction) and status; other columns are kept in the CSV.
    """
    fm = _check_formats(formats)
    r, notes = _roadmap_frame(df_roadmap)
    out = _prepare_out(Path(out_dir))
    done = r.loc[r["usable"]]
    agreement = None
    if len(done) >= 2:
        agreement = A.rank_agreement(done["paper_top1_pct"].to_numpy(), done["proxy_top1_pct"].to_numpy())
    else:
        notes.append(f"only {len(done)} completed step(s): no rank agreement")
    n_text = f"n = {len(done)} completed steps of {len(r)}"
    if agreement is not None:
        agree = (f"Kendall tau-b = {agreement.tau:.3f} (p = {agreement.tau_p:.3g}), Spearman rho = "
                 f"{agreement.rho:.3f} (p = {agreement.rho_p:.3g}), {n_text}")
    else:
        agree = f"rank agreement not computed ({n_text})"
    caption = (f"{n_text}. Blue, left axis: the paper's ImageNet-1K top-1 (%), Table 10; orange, "
               f"right axis: proxy top-1 (%) of the same design after the proxy's short "
               f"training. {agree}. The designs' GFLOPs, where quoted, count {FLOP_NOTE}.")
    # step-to-step changes, in percentage points, and whether they agree in sign
    paper_d = r["paper_top1_pct"].diff()
    proxy_d = r["proxy_top1_pct"].where(r["usable"]).diff()
    both = paper_d.notna() & proxy_d.notna() & (paper_d != 0)
    same = int((np.sign(paper_d[both]) == np.sign(proxy_d[both])).sum())
    header = ["step", "name", "paper top-1 (%)", "proxy top-1 (%)", "status", "paper rank",
              "proxy rank", "paper change (pp)", "proxy change (pp)"]
    rows = []
    for i, row in r.iterrows():
        def rk(v: Any) -> str:
            return str(int(v)) if math.isfinite(as_number(v)) else "-"

        def ch(v: Any) -> str:
            return f"{as_number(v):+.2f}" if math.isfinite(as_number(v)) else "-"

        rows.append([str(row["step"]), str(row["name"]),
                     f"{row['paper_top1_pct']:.2f}" if math.isfinite(as_number(row["paper_top1_pct"])) else "n/a",
                     f"{row['proxy_top1_pct']:.2f}" if math.isfinite(as_number(row["proxy_top1_pct"])) else "n/a",
                     "" if _blank(row["status"]) else str(row["status"]), rk(row["paper_rank"]),
                     rk(row["proxy_rank"]), ch(paper_d.iloc[i]), ch(proxy_d.iloc[i])])
    table = _Table("roadmap-table", f"The roadmap, proxy top-1 beside the paper's; {n_text}; ranks "
                   f"over completed steps (1 = highest top-1).", header, rows)
    write = _Writer(out)
    blocks: list[_Block] = [("h1", "nas-convnext: the roadmap under the proxy")]
    blocks.append(("p", f"Rank agreement between the paper's ordering of the steps and the "
                        f"proxy's: {agree}. Step-to-step changes agree in sign on {same} of "
                        f"{int(both.sum())} steps."))
    if {"md", "html", "png"} & set(fm):
        png = _roadmap_figure(r, agreement)
        write("roadmap.png", png)
        blocks.append(("fig", _Fig("roadmap.png", png, "roadmap: proxy top-1 beside the paper's",
                                   caption)))
    blocks.append(("table", table))
    if notes:
        blocks.append(("ul", notes))
    if "csv" in fm:
        csv = r.drop(columns=["usable"]).copy()
        csv["used_in_agreement"] = r["usable"]
        write("roadmap.csv", csv.to_csv(index=False))
    if "md" in fm:
        write("roadmap.md", _render_md(blocks))
    if "html" in fm:
        write("roadmap.html", _render_html("nas-convnext roadmap", blocks))
    if "json" in fm:
        write("roadmap.json", json.dumps(plain({
            "n_steps": len(r), "n_completed": len(done), "agreement": agreement,
            "sign_agreement": {"same": same, "steps": int(both.sum())}, "notes": notes,
            "steps": r.drop(columns=["usable"]).to_dict("records")}), indent=2, allow_nan=False) + "\n")
    return RoadmapInfo(out_dir=out, files=tuple(write.files), n_steps=len(r),
                       n_completed=len(done), agreement=agreement, notes=tuple(notes))


def replay_lines(steps: pd.DataFrame, info: RoadmapInfo | None, run_dir: Path) -> list[str]:
    """What `roadmap --train` prints: proxy top-1 beside the paper's per step, the rank
    agreement, the notes and where the results are."""
    lines = [text_table([[r.step, r.name.split("/", 1)[1], f"{r.paper_top1:.2f}",
                          "-" if not math.isfinite(r.top1) else f"{100 * r.top1:.2f}", r.status]
                         for r in steps.itertuples()],
                        ["#", "step", "paper top-1", "proxy top-1", "status"])]
    if info is not None and info.agreement is not None:
        a = info.agreement
        lines.append(f"\nagreement with the paper's ranking over {a.n} completed steps: "
                     f"Kendall tau {a.tau:+.3f} (p={a.tau_p:.3f}), "
                     f"Spearman rho {a.rho:+.3f} (p={a.rho_p:.3f})")
    lines += [f"note: {note}" for note in (info.notes if info is not None else ())]
    lines.append(f"\nresults: {run_dir}/")
    return lines
