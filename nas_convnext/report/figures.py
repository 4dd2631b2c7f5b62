"""The report's figures: the Pareto fronts, the error EDFs, parameter importances, the roadmap.

Each figure is drawn on a bare matplotlib Figure (Agg), never through pyplot's global state,
and saved at figsize * DPI pixels without cropping. Axes name their units and the FLOP
convention; legends sit below the axes, where they cannot hide data; a caption is text in the
document, once, below the image (not drawn into the PNG).
"""
from __future__ import annotations

import io
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import analysis as A
from ..analysis.run import EDF_BINS as _EDF_BINS
from ..analysis.run import STUDY_NAME, Importances
from ..analysis.run import RunAnalysis as _Analysis
from ..userfile import as_number
from .document import FLOP_NOTE, REFERENCE_NAMES, _Fig, _num, _trials

#: Figures are saved at this resolution without cropping: a PNG is figsize * DPI pixels.
DPI = 100
FRONT_FIGSIZE = (8.0, 5.6)
EDF_FIGSIZE = (12.0, 5.2)
IMPORTANCE_FIGSIZE = (7.0, 4.6)
ROADMAP_FIGSIZE = (11.0, 6.2)


GFLOPS_AXIS = "GFLOPs (1 multiply-add = 1 FLOP, 224x224, 1000 classes)"
PARAMS_AXIS = "parameters (millions; full-size design, 1000 classes)"
TOP1_AXIS = "proxy top-1 (%)"
ERROR_AXIS = "proxy top-1 error (%)"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _mpl():
    """matplotlib on the Agg backend: select it unless pyplot already runs with another one
    (a notebook), and draw on bare Figure objects, so nothing touches pyplot's global state."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def _new_figure(size: tuple[float, float]):
    Figure, Canvas = _mpl()
    fig = Figure(figsize=size, dpi=DPI)
    Canvas(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no bbox cropping: size is figsize * DPI
    return buf.getvalue()


#: Pixels between an axis' tick labels and a legend below them, and below a legend.
_LEGEND_GAP_PX = 8.0
#: Axes are never squeezed below this share of the figure's height to make room for a legend.
_MIN_AXES_HEIGHT = 0.3


@dataclass(frozen=True)
class _LegendSpec:
    ax: Any                     # the axes whose x axis the legend goes under
    handles: tuple[Any, ...]
    labels: tuple[str, ...]
    fontsize: float = 8.0
    title: str | None = None


def _legends_below(fig, specs: Sequence[_LegendSpec], axes: Sequence[Any]) -> list[Any]:
    """Put each legend outside its axes, centred under the x axis' tick labels and label.

    Data can lie anywhere inside the axes (a one-design front at the top left, an EDF along the
    bottom right), so no spot inside them is safe for a legend; below the axes, a legend covers
    nothing. Each legend takes as many columns as its axes' width holds. The figure keeps its
    size: ``axes`` (all axes of the figure, which stay aligned) are shortened or lengthened from
    below, their tops fixed, until the lowest legend ends ``_LEGEND_GAP_PX`` above the bottom edge.
    Positions are measured on the renderer, so long tick labels (rotated roadmap names) count.
    """
    renderer = fig.canvas.get_renderer()
    specs = [spec for spec in specs if spec.labels]
    legends = []
    for spec in specs:
        room = spec.ax.get_window_extent(renderer).width
        for ncol in range(len(spec.labels), 0, -1):
            leg = fig.legend(list(spec.handles), list(spec.labels), loc="upper center",
                             ncols=ncol, fontsize=spec.fontsize, title=spec.title,
                             title_fontsize=spec.fontsize, framealpha=0.9)
            if ncol == 1 or leg.get_window_extent(renderer).width <= room:
                break
            leg.remove()
        legends.append(leg)
    height = fig.bbox.height
    for _ in range(6):
        # No draw needed: get_tightbbox lays out the x axis' ticks and label itself.
        lowest = math.inf
        anchors = []
        for spec, leg in zip(specs, legends):
            box = spec.ax.get_window_extent(renderer)
            xaxis = spec.ax.xaxis.get_tightbbox(renderer)
            top = min(box.y0, xaxis.y0 if xaxis is not None else box.y0) - _LEGEND_GAP_PX
            anchors.append(((box.x0 + box.x1) / 2 / fig.bbox.width, top / height))
            leg.set_bbox_to_anchor(anchors[-1], transform=fig.transFigure)
            lowest = min(lowest, leg.get_window_extent(renderer).y0)
        shift = (_LEGEND_GAP_PX - lowest) / height   # > 0: raise the axes' bottoms
        if abs(shift) * height < 0.5 or not legends:
            break
        # read every position before setting any: a twin (roadmap) moves with its sibling
        clamped = False
        for ax, pos in [(ax, ax.get_position()) for ax in axes]:
            new_height = max(_MIN_AXES_HEIGHT, pos.height - shift)
            clamped = clamped or new_height != pos.height - shift
            ax.set_position((pos.x0, pos.y1 - new_height, pos.width, new_height))
        if not clamped:
            # The tick labels and axis label under each axes moved up with its bottom, by
            # `shift`: so do the legends, and the layout is done without drawing it again.
            for (x, y), leg in zip(anchors, legends):
                leg.set_bbox_to_anchor((x, y + shift), transform=fig.transFigure)
            break
    return legends


def _front_caption(an: _Analysis, x: str) -> str:
    front = an.front if x == "flops" else an.front_params
    n_ex = len(an.excl)
    base = (f"{_trials(len(an.u))}; {len(front)} on the front (red step line). "
            f"{n_ex} excluded trial(s) (stopped early, diverged or errored) are not shown. ")
    if x == "flops":
        return base + (f"GFLOPs: {FLOP_NOTE}; top-1: proxy training, in %. Numbers at red "
                       f"points are the rows of the front table.")
    return base + (f"Parameters: full-size design, 1000 classes, in millions (FLOPs in this "
                   f"report: {FLOP_NOTE}); top-1: proxy training, in %.")


def _front_figure(an: _Analysis, x: str) -> bytes:
    return _png(_front_plot(an, x))


def _front_plot(an: _Analysis, x: str):
    fig = _new_figure(FRONT_FIGSIZE)
    ax = fig.add_axes((0.09, 0.2, 0.88, 0.72))
    scale = 1e9 if x == "flops" else 1e6
    xs = _num(an.u[x]) / scale
    ys = 100 * _num(an.u["top1"])
    ok = np.isfinite(xs) & np.isfinite(ys)
    ax.scatter(xs[ok], ys[ok], s=22, color="#7f98b3", alpha=0.75, lw=0, zorder=2,
               label=f"completed trials (n = {int(ok.sum())})")
    front = an.front if x == "flops" else an.front_params
    if len(front):
        fx = _num(front[x]) / scale
        fy = 100 * _num(front["top1"])
        xmax = float(np.nanmax(xs[ok])) if ok.any() else float(fx[-1])
        sx = np.append(fx, max(xmax, fx[-1]))
        sy = np.append(fy, fy[-1])
        ax.step(sx, sy, where="post", color="#d62728", lw=1.5, zorder=3,
                label=f"Pareto front ({len(front)} design{'s' if len(front) != 1 else ''})")
        ax.scatter(fx, fy, s=46, facecolors="none", edgecolors="#d62728", lw=1.3, zorder=4)
        if x == "flops":
            for i, (a, b) in enumerate(zip(fx, fy), 1):
                ax.annotate(str(i), (a, b), xytext=(4, -11), textcoords="offset points",
                            fontsize=7, color="#d62728")
    else:
        ax.text(0.5, 0.5, "no trial with a finite value on this axis", transform=ax.transAxes,
                ha="center", va="center", color="#888888")
    styles = {"convnext_t": ("*", 230, "#2ca02c"), "resnet50": ("s", 80, "#9467bd")}
    xlo, xhi = (float(np.nanmin(xs[ok])), float(np.nanmax(xs[ok]))) if ok.any() else (0.0, 1.0)
    ylo, yhi = (float(np.nanmin(ys[ok])), float(np.nanmax(ys[ok]))) if ok.any() else (0.0, 1.0)
    for tag, row in an.refs.items():
        px, py = as_number(row.get(x)) / scale, 100 * as_number(row.get("top1"))
        if not (math.isfinite(px) and math.isfinite(py)):
            continue
        marker, size, color = styles.get(tag, ("D", 60, "#333333"))
        label = REFERENCE_NAMES.get(tag, tag)
        if tag == A.CONVNEXT_TAG and x == "flops" and an.verdict.on_front is not None:
            label += " (on the front)" if an.verdict.on_front else " (dominated)"
        ax.scatter([px], [py], marker=marker, s=size, color=color, edgecolors="black", lw=0.7,
                   zorder=6, label=label)
        # Write the label towards the middle of the plot, so it stays inside the axes.
        right = xhi > xlo and (px - xlo) / (xhi - xlo) > 0.6
        high = yhi > ylo and (py - ylo) / (yhi - ylo) > 0.5
        ax.annotate(label, (px, py), xytext=(-14 if right else 14, -16 if high else 14),
                    textcoords="offset points", fontsize=9, fontweight="bold", color=color,
                    ha="right" if right else "left", va="top" if high else "bottom", zorder=7,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8),
                    arrowprops=dict(arrowstyle="-", lw=0.6, color=color))
    ax.set_xlabel(GFLOPS_AXIS if x == "flops" else PARAMS_AXIS)
    ax.set_ylabel(TOP1_AXIS)
    what = "GFLOPs" if x == "flops" else "parameters"
    ax.set_title(f"Proxy top-1 against {what}: Pareto front")
    ax.grid(alpha=0.3)
    ax.margins(x=0.06, y=0.12)
    handles, labels = ax.get_legend_handles_labels()
    _legends_below(fig, [_LegendSpec(ax, tuple(handles), tuple(labels))], [ax])
    return fig


def _edf_caption(an: _Analysis, dim: str) -> str:
    cx = an.verdict.dim(dim).convnext_choice
    thick = (f" Thick line: ConvNeXt-T's choice ({cx})." if cx is not None
             and any(c.choice == cx for c in an.edfs[dim][0].curves) else "")
    return (f"{_trials(len(an.u))}. Left: error EDF per choice of {dim}, F(e) = fraction of the "
            f"choice's trials with proxy top-1 error < e (%); legend 'choice n|min|mean' = trials, "
            f"lowest and mean error (%). Right: complexity-normalised: each of {_EDF_BINS} "
            f"log-spaced GFLOP bins ({FLOP_NOTE}) weighs the same, so a choice is not judged by "
            f"where in complexity it happened to be sampled.{thick}")


def _edf_figure(an: _Analysis, dim: str) -> bytes:
    return _png(_edf_plot(an, dim))


def _edf_plot(an: _Analysis, dim: str):
    plain, normed = an.edfs[dim]
    cx = an.verdict.dim(dim).convnext_choice
    fig = _new_figure(EDF_FIGSIZE)
    axes = [fig.add_axes((0.06, 0.2, 0.42, 0.69)), fig.add_axes((0.56, 0.2, 0.42, 0.69))]
    xs_all = [v for c in plain.curves for v in c.x]
    lo, hi = min(xs_all), max(xs_all)
    pad = max(0.5, 0.03 * (hi - lo))
    colors = [f"C{i}" for i in range(10)]
    titles = ("error EDF", f"complexity-normalised error EDF ({_EDF_BINS} GFLOP bins)")
    ylabels = ("fraction of trials with error < e", "weighted fraction (equal weight per bin)")
    for ax, edf, title, ylabel in zip(axes, (plain, normed), titles, ylabels):
        for i, c in enumerate(edf.curves):
            sx = [lo - pad, *c.x, hi + pad]
            sy = [0.0, *c.F, 1.0]
            mine = cx is not None and c.choice == cx
            ax.step(sx, sy, where="post", color=colors[i % 10], lw=2.6 if mine else 1.3,
                    label=f"{c.choice} {c.label}")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(ERROR_AXIS)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{dim}: error EDF per choice ({_trials(plain.n)})", fontsize=12, y=0.975)
    specs = []
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        specs.append(_LegendSpec(ax, tuple(handles), tuple(labels), fontsize=7,
                                 title="choice n|min|mean"))
    _legends_below(fig, specs, axes)
    return fig


def _importance_figure(imp: Importances) -> bytes:
    return _png(_importance_plot(imp))


def _importance_caption(imp: Importances) -> str:
    return (f"{_trials(imp.n, 'completed Optuna trials')} of study '{STUDY_NAME}' (feasible under "
            f"the budget); importance of each design field for proxy top-1, the first objective "
            f"({imp.evaluator}); GFLOPs ({FLOP_NOTE}) enter only through the budget.")


def _importance_plot(imp: Importances):
    fig = _new_figure(IMPORTANCE_FIGSIZE)
    ax = fig.add_axes((0.22, 0.13, 0.73, 0.77))
    names = [k for k, _ in imp.values][::-1]
    vals = [v for _, v in imp.values][::-1]
    ax.barh(names, vals, color="#4c72b0")
    ax.set_xlabel("importance for proxy top-1 (share, sums to 1)")
    ax.set_title(f"Optuna parameter importances ({imp.evaluator}; {_trials(imp.n, 'trials')})",
                 fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))


def _figures(an: _Analysis) -> dict[str, _Fig]:
    figs: dict[str, _Fig] = {}
    figs["front_flops.png"] = _Fig("front_flops.png", _front_figure(an, "flops"),
                                   "Pareto front: proxy top-1 against GFLOPs",
                                   _front_caption(an, "flops"))
    figs["front_params.png"] = _Fig("front_params.png", _front_figure(an, "params"),
                                    "Pareto front: proxy top-1 against parameters",
                                    _front_caption(an, "params"))
    for dim in an.varying:
        name = f"edf_{_safe(dim)}.png"
        figs[name] = _Fig(name, _edf_figure(an, dim), f"error EDF by {dim}",
                          _edf_caption(an, dim), dim=dim)
    if an.importances is not None:
        imp = an.importances
        figs["importances.png"] = _Fig(
            "importances.png", _importance_figure(imp), "Optuna parameter importances",
            _importance_caption(imp))
    return figs


def _roadmap_figure(r: pd.DataFrame, agreement: A.RankAgreement | None) -> bytes:
    return _png(_roadmap_plot(r, agreement))


def _roadmap_plot(r: pd.DataFrame, agreement: A.RankAgreement | None):
    fig = _new_figure(ROADMAP_FIGSIZE)
    ax = fig.add_axes((0.08, 0.25, 0.84, 0.68))
    ax2 = ax.twinx()
    steps = r["step"].to_numpy()
    ax.plot(steps, r["paper_top1_pct"], "o-", color="#1f77b4", label="paper: ImageNet-1K top-1 (%)")
    proxy = r["proxy_top1_pct"].where(r["usable"])
    ax2.plot(steps, proxy, "s--", color="#ff7f0e", label="proxy top-1 (%), completed steps")
    bad = r.loc[~r["usable"]]
    if len(bad):
        y = float(np.nanmin(r["paper_top1_pct"])) if np.isfinite(r["paper_top1_pct"]).any() else 0
        ax.scatter(bad["step"], [y] * len(bad), marker="x", color="#d62728", zorder=5,
                   label="step not completed")
    ax.set_ylabel("paper top-1 (%)", color="#1f77b4")
    ax2.set_ylabel("proxy top-1 (%)", color="#ff7f0e")
    ax.set_xticks(steps)
    names = [str(n).split("/", 1)[-1] for n in r["name"]]
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    ax.set_xlabel("roadmap step")
    ax.grid(alpha=0.3)
    title = "Roadmap: proxy replay beside the paper"
    if agreement is not None:
        title += f" (Kendall tau {agreement.tau:.2f}, Spearman rho {agreement.rho:.2f})"
    ax.set_title(title, fontsize=11)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    _legends_below(fig, [_LegendSpec(ax, tuple(h1 + h2), tuple(l1 + l2))], [ax, ax2])
    return fig
