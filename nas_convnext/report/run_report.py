"""Reports: a run's trials table -> figures, tables and a verdict on ConvNeXt, as files.

:func:`write_report` reads ``trials.parquet`` of a run folder, computes the analysis once (the
info objects of :mod:`nas_convnext.analysis`), then renders that one result as

* ``report.md`` and a self-contained ``report.html`` (figures embedded as base64 PNGs, tables
  with the ids ``front-table``, ``verdict-table``, ``effects-table``),
* PNG figures: the Pareto front against GFLOPs and against parameters, one error-EDF figure per
  varying dimension (plain and complexity-normalised panels), Optuna parameter importances,
* CSVs (``front.csv``, ``effects.csv``, ``verdict.csv``, ``excluded.csv``) and
  ``analysis.json`` for scripts.

Every figure names its units and the FLOP convention (one multiply-add = one FLOP, full-size
design at 224x224 input, 1000 classes) on its axes and every table the number of trials it rests
on. A figure's caption is text in the document, once, below the image (not drawn into the PNG);
legends sit below the axes, where they cannot hide data. In the HTML, wide tables scroll inside
their own box and images shrink to the page, so the page never scrolls sideways.
Trials that stopped early, diverged or errored are counted and listed apart, and never enter
the front, the EDFs or the effects (see :func:`nas_convnext.analysis.usable`).

:func:`roadmap_report` renders the proxy replay of the paper's roadmap beside the paper's
top-1, with the rank agreement of the two orderings.

Files are written atomically (a crash leaves the previous file, never half of one), and never
over the run's own ``trials.parquet``, ``trials.csv``, ``run.json`` or ``study.db``.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from . import analysis as A
from .results import (RUN_JSON, TABLE, TABLE_CSV, NotReplaceable, atomic_write_bytes,
                      atomic_write_text, read_run_json, read_table)

__all__ = [
    "FORMATS",
    "DPI",
    "FRONT_FIGSIZE",
    "EDF_FIGSIZE",
    "IMPORTANCE_FIGSIZE",
    "ROADMAP_FIGSIZE",
    "FLOP_NOTE",
    "Importances",
    "ReportInfo",
    "RoadmapInfo",
    "write_report",
    "summary_text",
    "print_summary",
    "roadmap_report",
]

#: What ``formats`` may name. PNGs are written whenever "md" or "html" is asked for.
FORMATS: tuple[str, ...] = ("md", "html", "csv", "json", "png")
#: Figures are saved at this resolution without cropping: a PNG is figsize * DPI pixels.
DPI = 100
FRONT_FIGSIZE = (8.0, 5.6)
EDF_FIGSIZE = (12.0, 5.2)
IMPORTANCE_FIGSIZE = (7.0, 4.6)
ROADMAP_FIGSIZE = (11.0, 6.2)

FLOP_NOTE = "1 multiply-add = 1 FLOP, full-size design at 224x224 input, 1000 classes"
GFLOPS_AXIS = "GFLOPs (1 multiply-add = 1 FLOP, 224x224, 1000 classes)"
PARAMS_AXIS = "parameters (millions; full-size design, 1000 classes)"
TOP1_AXIS = "proxy top-1 (%)"
ERROR_AXIS = "proxy top-1 error (%)"

#: The reference tags a search writes, and how the report names them.
REFERENCE_NAMES = {"convnext_t": "ConvNeXt-T", "resnet50": "ResNet-50"}
#: Fewest usable Optuna trials before parameter importances are computed.
MIN_IMPORTANCE_TRIALS = 5
STUDY_NAME = "search"
STUDY_FILE = "study.db"
#: Front rows printed on the terminal (the files hold all of them).
SUMMARY_FRONT_ROWS = 5

_PROTECTED = {TABLE, TABLE_CSV, RUN_JSON, STUDY_FILE}
_EDF_BINS = 10
_ERROR_CHARS = 160


# --------------------------------------------------------------------------------------------
# Info objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Importances:
    """Optuna parameter importances of the first objective (proxy top-1)."""

    n: int                                  # Optuna trials they rest on
    evaluator: str
    values: tuple[tuple[str, float], ...]   # (parameter, importance), descending, sum 1


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


@dataclass(frozen=True)
class RoadmapInfo:
    out_dir: Path
    files: tuple[Path, ...]
    n_steps: int
    n_completed: int
    agreement: A.RankAgreement | None
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Document model: one list of blocks, rendered to Markdown and to HTML
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    id: str
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class _Fig:
    name: str           # file name of the PNG
    png: bytes
    alt: str
    caption: str
    dim: str | None = None


# A block is (kind, payload): ("h1"|"h2"|"h3"|"p"|"pre", str), ("ul", list[str]),
# ("table", _Table), ("fig", _Fig).
_Block = tuple[str, Any]


def _md_cell(text: str) -> str:
    t = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    t = t.replace("|", "\\|").replace("\r", "")
    return "<br>".join(t.split("\n"))


def _md_text(text: str) -> str:
    """Plain text in Markdown: no raw HTML from user data, no accidental emphasis."""
    t = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", t)


def _render_md(blocks: list[_Block]) -> str:
    out: list[str] = []
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md_text(x))
        elif kind == "p":
            out.append(_md_text(x))
        elif kind == "pre":
            out.append("```\n" + str(x).replace("```", "'''") + "\n```")
        elif kind == "ul":
            out.append("\n".join("- " + _md_text(i) for i in x))
        elif kind == "table":
            t: _Table = x
            lines = [f"**Table ({t.id}).** {_md_text(t.caption)}", ""]
            lines.append("| " + " | ".join(_md_cell(h) for h in t.header) + " |")
            lines.append("|" + "|".join("---" for _ in t.header) + "|")
            for r in t.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            if not t.rows:
                lines.append("| " + " | ".join("" for _ in t.header) + " |")
            out.append("\n".join(lines))
        elif kind == "fig":
            f: _Fig = x
            alt = f.alt.replace("[", "(").replace("]", ")")
            out.append(f"![{alt}]({f.name})\n\n*Figure ({f.name}).* {_md_text(f.caption)}")
        else:  # pragma: no cover - programming error
            raise AssertionError(kind)
    return "\n\n".join(out) + "\n"


#: Nothing may be wider than the page: a table wider than the text scrolls inside its own
#: ``div.table-scroll`` (reachable by keyboard: tabindex 0), images shrink to the page's width,
#: long words (paths, trial ids) wrap in running text, code blocks scroll.
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45;overflow-wrap:break-word}
.table-scroll{overflow-x:auto;max-width:100%;margin:0 0 1.6em}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left;overflow-wrap:normal}
th{background:#f1f3f6}
p.table-caption{font-size:13px;color:#444;margin:.9em 0 4px}
figure{margin:1em 0 2em}
img{max-width:100%;height:auto;box-sizing:border-box}
figure img{border:1px solid #ddd}
figcaption{font-size:13px;color:#444;max-width:1000px}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto}
td.supported{background:#e3f4e1}td.not-supported{background:#fbe3e1}td.inconclusive{background:#f4f4f4}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(text: str) -> str:
    return "<br>".join(_h(line) for line in str(text).split("\n"))


def _render_html(title: str, blocks: list[_Block]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{_h(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_h(x)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_html_cell(x)}</p>")
        elif kind == "pre":
            out.append(f"<pre>{_h(x)}</pre>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_h(i)}</li>" for i in x) + "</ul>")
        elif kind == "table":
            t: _Table = x
            rows = []
            verdict_col = t.header.index("verdict") if "verdict" in t.header else -1
            for r in t.rows:
                cells = []
                for j, c in enumerate(r):
                    cls = ""
                    if j == verdict_col:
                        cls = f' class="{_h(str(c).replace(" ", "-"))}"'
                    cells.append(f"<td{cls}>{_html_cell(c)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            # The caption sits above the scrolling box, so it wraps to the page's width
            # however wide the table is; aria-labelledby keeps it the table's name.
            cap = f"{t.id}-caption"
            out.append(
                f'<p class="table-caption" id="{_h(cap)}">{_h(t.caption)}</p>'
                f'<div class="table-scroll" role="region" tabindex="0" '
                f'aria-labelledby="{_h(cap)}">'
                f'<table id="{_h(t.id)}" aria-labelledby="{_h(cap)}"><thead><tr>'
                + "".join(f"<th>{_html_cell(hd)}</th>" for hd in t.header)
                + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
            )
        elif kind == "fig":
            f: _Fig = x
            data = base64.b64encode(f.png).decode("ascii")
            dim = f' data-dim="{_h(f.dim)}"' if f.dim else ""
            fid = "fig-" + re.sub(r"[^A-Za-z0-9_-]", "-", f.name.rsplit(".", 1)[0])
            out.append(
                f'<figure id="{_h(fid)}"><img src="data:image/png;base64,{data}" '
                f'alt="{_h(f.alt)}" title="{_h(f.alt)}"{dim}>'
                f"<figcaption>{_h(f.caption)}</figcaption></figure>"
            )
        else:  # pragma: no cover
            raise AssertionError(kind)
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Small formatting helpers
# --------------------------------------------------------------------------------------------


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _f(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def _pct(v: Any, digits: int = 2) -> str:
    x = _f(v)
    return f"{100 * x:.{digits}f}" if math.isfinite(x) else "n/a"


def _pp(v: Any) -> str:
    x = _f(v)
    return f"{100 * x:+.2f}" if math.isfinite(x) else "n/a"


def _gf(v: Any) -> str:
    x = _f(v)
    return f"{x / 1e9:.3f}" if math.isfinite(x) else "n/a"


def _mp(v: Any) -> str:
    x = _f(v)
    return f"{x / 1e6:.2f}" if math.isfinite(x) else "n/a"


def _ci(iv: A.Interval) -> str:
    return f"{_pct(iv.estimate)} [{_pct(iv.lo)}, {_pct(iv.hi)}]"


def _trials(n: int, what: str = "completed trials") -> str:
    return f"n = {n} {what}" if n != 1 else f"n = 1 {what.replace('trials', 'trial')}"


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    try:
        if pd.isna(v):
            return True
    except (TypeError, ValueError):
        pass
    return str(v) == ""


def _trial_label(row: pd.Series) -> str:
    tid = row.get("trial_id") if hasattr(row, "get") else None
    return str(tid) if not _blank(tid) else f"row {row.name}"


def _ref_name(tag: Any) -> str:
    if _blank(tag):
        return ""
    return REFERENCE_NAMES.get(str(tag), str(tag))


def _plain(x: Any) -> Any:
    """JSON-safe values: numpy scalars as Python, NaN/inf as null, paths as strings."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _plain(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    if x is pd.NA or x is pd.NaT:
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _row_dict(row: pd.Series, dims: Sequence[str]) -> dict[str, Any]:
    d: dict[str, Any] = {"index": _plain(row.name), "trial_id": _plain(row.get("trial_id")),
                         "reference": "" if _blank(row.get("reference")) else str(row.get("reference")),
                         "top1": _f(row.get("top1")), "flops": _f(row.get("flops")),
                         "gflops": _f(row.get("flops")) / 1e9, "params": _f(row.get("params"))}
    for dim in dims:
        if dim in row.index:
            d[dim] = A.choice_label(row[dim])
    return d


# --------------------------------------------------------------------------------------------
# Analysis, computed once
# --------------------------------------------------------------------------------------------


@dataclass
class _Analysis:
    df: pd.DataFrame
    u: pd.DataFrame
    excl: pd.DataFrame
    counts: dict[str, int]
    dims: tuple[str, ...]
    varying: tuple[str, ...]
    fixed: tuple[tuple[str, str], ...]
    front: pd.DataFrame
    front_params: pd.DataFrame
    verdict: A.Verdict
    effects: pd.DataFrame
    edfs: dict[str, tuple[A.EdfByChoice, A.EdfByChoice]]
    refs: dict[str, pd.Series]
    importances: Importances | None
    summary: dict[str, Any]
    run_meta: dict[str, Any] | None
    notes: list[str]
    seed: int
    n_boot: int


def _analyse(df: pd.DataFrame, run_dir: Path | None, seed: int, n_boot: int) -> _Analysis:
    notes: list[str] = []
    u = A.usable(df)  # raises a ValueError naming the counts when nothing is usable
    excl = A.excluded(df)
    counts = A.status_counts(df)
    dims = tuple(d for d in A.DIMENSIONS if d in df.columns)
    if not dims:
        raise ValueError(f"the trials table has none of the design columns {list(A.DIMENSIONS)}")
    labels = {d: A.choice_labels(u[d]) for d in dims}
    varying = tuple(d for d in dims if labels[d].nunique() > 1)
    fixed = tuple((d, str(labels[d].iloc[0])) for d in dims if d not in varying)
    front = A.pareto_front(df)
    if "params" in df.columns and np.isfinite(_num(u["params"])).any():
        front_params = A.pareto_front(df, x="params")
    else:
        front_params = u.iloc[0:0]
        notes.append("no parameter counts in the table: the front against parameters is empty")
    verdict = A.convnext_verdict(df, dims=dims, seed=seed, n_boot=n_boot)
    if varying:
        effects = A.choice_effects(df, dims=varying, seed=seed, n_boot=n_boot)
    else:
        effects = pd.DataFrame(columns=["dim", "choice", "n", "n_dim", "top1_mean", "top1_mean_lo",
                                        "top1_mean_hi", "top1_best", "top1_best_lo", "top1_best_hi",
                                        "gflops_mean", "effect", "effect_vs_best_other",
                                        "front_count", "front_n", "front_share"])
        notes.append("no design dimension varies among the completed trials: no EDFs and no "
                     "choice effects")
    if len(effects):
        effects["gflops_vs_all"] = effects["gflops_mean"] - float(np.nanmean(_num(u["flops"]))) / 1e9
    else:
        effects["gflops_vs_all"] = pd.Series(dtype=float)
    edfs = {d: (A.edf_by_choice(df, d), A.edf_by_choice(df, d, normalize=True, bins=_EDF_BINS))
            for d in varying}
    refs: dict[str, pd.Series] = {}
    if "reference" in u.columns:
        tags = u["reference"].astype(object).where(u["reference"].notna(), "").astype(str)
        for tag in REFERENCE_NAMES:
            rows = u.loc[(tags == tag).to_numpy()]
            if len(rows):
                refs[tag] = rows.iloc[int(np.argmax(_num(rows["top1"])))]
    if A.CONVNEXT_TAG in refs and verdict.reference_index is not None \
            and verdict.reference_index in u.index:
        refs[A.CONVNEXT_TAG] = u.loc[verdict.reference_index]
    summary = A.summarize(df, dims=dims)
    run_meta = None
    importances = None
    if run_dir is not None:
        try:
            run_meta = read_run_json(run_dir)
        except ValueError as exc:
            notes.append(f"run settings unknown: {exc}")
        importances, note = _importances(Path(run_dir), u, seed)
        if note:
            notes.append(note)
    else:
        notes.append("no run folder: Optuna parameter importances skipped")
    return _Analysis(df=df, u=u, excl=excl, counts=counts, dims=dims, varying=varying,
                     fixed=fixed, front=front, front_params=front_params, verdict=verdict,
                     effects=effects, edfs=edfs, refs=refs, importances=importances,
                     summary=summary, run_meta=run_meta, notes=notes, seed=seed, n_boot=n_boot)


def _importances(run_dir: Path, u: pd.DataFrame, seed: int) -> tuple[Importances | None, str]:
    """Optuna's parameter importances for top-1 over the study's measured, feasible trials.

    The study is read from a copy of study.db, so a search still writing it is not disturbed
    and the file is never modified. Only COMPLETE trials that satisfy the FLOP constraint and,
    when the table records Optuna trial numbers, belong to usable rows of the table count: the
    search tells Optuna [0, GFLOPs] for designs over budget and for diverged trials, which are
    not measurements.
    """
    path = run_dir / STUDY_FILE
    skip = "Optuna parameter importances skipped"
    if not path.is_file():
        return None, f"no {STUDY_FILE} in the run folder: {skip}"
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        return None, f"optuna is not installed: {skip}"
    numbers: set[int] | None = None
    if "optuna_number" in u.columns:
        nums = _num(u["optuna_number"])
        if np.isfinite(nums).any():
            numbers = {int(v) for v in nums[np.isfinite(nums)]}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "study created" lines on stderr
    try:
        loaded = _load_study_trials(optuna, path)
        if isinstance(loaded, str):
            return None, f"{loaded}: {skip}"
        trials, directions = loaded
        return _importances_of(optuna, trials, directions, numbers, seed)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _load_study_trials(optuna: Any, path: Path) -> tuple[list, list] | str:
    """The COMPLETE trials and directions of the study in a copy of ``path``, or why not."""
    from optuna.trial import TrialState

    with tempfile.TemporaryDirectory(prefix="nas-convnext-study.") as tmp:
        copy = Path(tmp) / STUDY_FILE
        shutil.copyfile(path, copy)
        storage = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                storage = optuna.storages.RDBStorage(f"sqlite:///{copy}")
                study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
                trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                return trials, list(study.directions)
        except KeyError:
            return f"{path} holds no study named {STUDY_NAME!r}"
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
            return f"{path} could not be read as an Optuna study ({type(exc).__name__})"
        finally:
            if storage is not None:
                try:
                    storage.engine.dispose()
                except Exception:  # noqa: BLE001
                    pass


def _importances_of(optuna: Any, trials: list, directions: list, numbers: set[int] | None,
                    seed: int) -> tuple[Importances | None, str]:
    skip = "Optuna parameter importances skipped"

    def feasible(t: Any) -> bool:
        cons = [v for k, v in t.system_attrs.items() if str(k).startswith("constraints")]
        flat = []
        for v in cons:
            flat.extend(v if isinstance(v, (list, tuple)) else [v])
        return all(_f(v) <= 0 for v in flat)

    kept = [t for t in trials if t.values and math.isfinite(_f(t.values[0])) and feasible(t)]
    if numbers is not None:
        kept = [t for t in kept if t.number in numbers]
    else:
        kept = [t for t in kept if _f(t.values[0]) > 0]
    if len(kept) < MIN_IMPORTANCE_TRIALS:
        return None, (f"only {len(kept)} completed, measured Optuna trial(s) in {STUDY_FILE} (fewer "
                      f"than {MIN_IMPORTANCE_TRIALS}): {skip}")
    try:
        from optuna.importance import (FanovaImportanceEvaluator, PedAnovaImportanceEvaluator,
                                       get_param_importances)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub = optuna.create_study(directions=directions)
            sub.add_trials(kept)
            try:
                import sklearn  # noqa: F401 - fANOVA needs it

                evaluator, name = FanovaImportanceEvaluator(seed=seed), "fANOVA"
                values = get_param_importances(sub, evaluator=evaluator,
                                               target=lambda t: t.values[0])
            except ImportError:
                # PED-ANOVA ranks parameters by how they separate the best trials from the
                # rest, for low targets: pass -top1 so that "best" means highest top-1.
                evaluator, name = PedAnovaImportanceEvaluator(), "PED-ANOVA (scikit-learn absent)"
                values = get_param_importances(sub, evaluator=evaluator,
                                               target=lambda t: -t.values[0])
    except Exception as exc:  # noqa: BLE001 - too little variety, one value per parameter...
        return None, f"Optuna could not compute parameter importances ({_one_line(exc)}): {skip}"
    pairs = tuple(sorted(((str(k), float(v)) for k, v in values.items()),
                         key=lambda kv: (-kv[1], kv[0])))
    if not pairs:
        return None, f"the Optuna study has no parameters: {skip}"
    return Importances(n=len(kept), evaluator=name, values=pairs), ""


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


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
        fig.draw_without_rendering()  # places the axis labels below their tick labels
        lowest = math.inf
        for spec, leg in zip(specs, legends):
            box = spec.ax.get_window_extent(renderer)
            xaxis = spec.ax.xaxis.get_tightbbox(renderer)
            top = min(box.y0, xaxis.y0 if xaxis is not None else box.y0) - _LEGEND_GAP_PX
            leg.set_bbox_to_anchor(((box.x0 + box.x1) / 2 / fig.bbox.width, top / height),
                                   transform=fig.transFigure)
            lowest = min(lowest, leg.get_window_extent(renderer).y0)
        shift = (_LEGEND_GAP_PX - lowest) / height   # > 0: raise the axes' bottoms
        if abs(shift) * height < 0.5 or not legends:
            break
        # read every position before setting any: a twin (roadmap) moves with its sibling
        for ax, pos in [(ax, ax.get_position()) for ax in axes]:
            new_height = max(_MIN_AXES_HEIGHT, pos.height - shift)
            ax.set_position((pos.x0, pos.y1 - new_height, pos.width, new_height))
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
        px, py = _f(row.get(x)) / scale, 100 * _f(row.get("top1"))
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


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _design_cells(row: pd.Series, dims: Sequence[str]) -> list[str]:
    return [A.choice_label(row[d]) if d in row.index else "" for d in dims]


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


def _verdict_table(an: _Analysis) -> _Table:
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
                     d.best_choice, per, share, d.verdict, d.reason])
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
        g = _f(r["gflops_vs_all"])
        rows.append([str(r["dim"]), str(r["choice"]), str(int(r["n"])), mean, _pp(r["effect"]),
                     _pp(r["effect_vs_best_other"]), best, f"{_f(r['gflops_mean']):.3f}",
                     f"{g:+.3f}" if math.isfinite(g) else "n/a",
                     f"{_f(r['front_share']):.0%} ({int(r['front_count'])} of {int(r['front_n'])})"])
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
        ep = _f(r.get("epochs"))
        rows.append([_trial_label(r), "" if _blank(r.get("status")) else str(r.get("status")),
                     str(r["reason"]), str(int(ep)) if math.isfinite(ep) else "n/a",
                     _pct(r.get("top1")), _gf(r.get("flops")), _ref_name(r.get("reference")),
                     err, *_design_cells(r, dims)])
    return _Table("excluded-table",
                  f"Trials left out of the front, the EDFs and the effects: {len(rows)} of "
                  f"{len(an.df)} trials. A trial stopped early was measured after fewer epochs, "
                  f"so its top-1 is not comparable even when it is higher.", header, rows)


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
        budget = _f(m.get("budget_flops", cfg.get("budget")))
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


def _blocks(an: _Analysis, run_dir: Path | None, figs: dict[str, _Fig]) -> list[_Block]:
    v = an.verdict
    title = ("nas-convnext report: " + (run_dir.resolve().name or str(run_dir.resolve()))
             if run_dir is not None else "nas-convnext report")
    b: list[_Block] = [("h1", title)]
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
    b.append(("p", _verdict_point_text(v)))
    if v.dominated_by:
        b.append(("table", _dominators_table(an)))
    b.append(("table", _verdict_table(an)))
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

    b.append(("h2", "5. Excluded trials"))
    if len(an.excl):
        reasons = an.excl["reason"].value_counts()
        b.append(("p", f"{len(an.excl)} of {len(an.df)} trials are excluded: "
                       + ", ".join(f"{int(n)} {k}" for k, n in reasons.items()) + "."))
        b.append(("table", _excluded_table(an)))
    else:
        b.append(("p", f"None: all {len(an.df)} trials completed with finite top-1 and GFLOPs."))
    other = [n for n in an.notes if "importances" not in n]
    if other:
        b.append(("h2", "Notes"))
        b.append(("ul", other))
    return b


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


def _json(an: _Analysis, run_dir: Path | None, files: list[str]) -> str:
    data = {
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
        "excluded": [{**_row_dict(r, an.dims), "status": _plain(r.get("status")),
                      "reason": str(r["reason"])} for _, r in an.excl.iterrows()],
        "notes": an.notes,
        "files": files,
    }
    return json.dumps(_plain(data), indent=2, allow_nan=False) + "\n"


def _check_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    fm = tuple(dict.fromkeys(str(f).lower() for f in formats))
    bad = [f for f in fm if f not in FORMATS]
    if bad or not fm:
        raise ValueError(f"report format(s) {bad or '(none)'} not understood: expected some of "
                         f"{', '.join(FORMATS)}")
    return fm


def _prepare_out(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the report folder {out_dir}: {exc.strerror or exc}") from None
    return out_dir


class _Writer:
    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.files: list[Path] = []

    def __call__(self, name: str, data: bytes | str) -> None:
        if name in _PROTECTED:  # pragma: no cover - our names never collide; belt and braces
            raise AssertionError(f"refusing to overwrite {name}")
        path = self.out_dir / name
        try:
            if isinstance(data, str):
                atomic_write_text(path, data)
            else:
                atomic_write_bytes(path, data)
        except NotReplaceable as exc:  # a link or a device where a report file goes
            raise ValueError(f"cannot write {path}: {exc.strerror}") from None
        except OSError as exc:
            raise ValueError(f"cannot write {path}: {exc.strerror or exc}; make the folder "
                             f"writable, or write the report elsewhere with --out DIR") from None
        self.files.append(path)


def write_report(
    run_dir: str | Path,
    formats: Iterable[str] | str = ("md", "html", "csv", "json", "png"),
    out_dir: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 10_000,
) -> ReportInfo:
    """Analyse ``run_dir/trials.parquet`` once and write the report files.

    ``formats`` picks among md, html, csv, json and png (PNGs are also written whenever md or
    html is). Files go to ``out_dir`` (default: the run folder). Raises ValueError, with one
    readable message, for a missing or damaged table, a table without a usable trial (naming
    the counts by status), or an unknown format.
    """
    fm = _check_formats(formats)
    run_dir = Path(run_dir)
    if isinstance(out_dir, str) and not out_dir.strip():  # Path("") is the current folder
        raise ValueError(f"--out {out_dir!r} is empty: give the folder to write the report in")
    out = Path(out_dir) if out_dir is not None else run_dir
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    df = read_table(run_dir)
    an = _analyse(df, run_dir, seed, n_boot)  # everything that can fail on the data fails here
    return _write(an, run_dir, _prepare_out(out), fm)


def _write(an: _Analysis, run_dir: Path | None, out: Path, fm: tuple[str, ...]) -> ReportInfo:
    want_png = bool({"md", "html", "png"} & set(fm))
    figs = _figures(an) if want_png else {}
    blocks = _blocks(an, run_dir, figs) if {"md", "html"} & set(fm) else []
    write = _Writer(out)
    for f in figs.values():
        write(f.name, f.png)
    if "csv" in fm:
        front = an.front.copy()
        front.insert(0, "front_rank", np.arange(1, len(front) + 1))
        front["gflops"] = _num(front["flops"]) / 1e9
        write("front.csv", front.to_csv(index=True, index_label="row"))
        write("effects.csv", an.effects.to_csv(index=False))
        write("verdict.csv", _verdict_frame(an.verdict).to_csv(index=False))
        write("excluded.csv", an.excl.to_csv(index=True, index_label="row"))
    if "md" in fm:
        write("report.md", _render_md(blocks))
    if "html" in fm:
        write("report.html", _render_html(str(blocks[0][1]), blocks))
    if "json" in fm:
        names = [p.name for p in write.files] + ["analysis.json"]
        write("analysis.json", _json(an, run_dir, names))
    front_rows = tuple(_row_dict(r, an.varying) for _, r in an.front.iterrows())
    return ReportInfo(
        run_dir=run_dir if run_dir is not None else out, out_dir=out, formats=fm,
        files=tuple(write.files), n_trials=len(an.df), status_counts=tuple(an.counts.items()),
        n_usable=len(an.u), n_excluded=len(an.excl), varying=an.varying, fixed=an.fixed,
        front=front_rows, verdict=an.verdict, effects_n=len(an.effects),
        importances=an.importances, notes=tuple(an.notes), summary=an.summary,
    )


def summary_text(info: ReportInfo, front_rows: int = SUMMARY_FRONT_ROWS) -> str:
    """A few lines for the terminal: trials by status, the front's first rows, ConvNeXt-T on the
    front or not, one line per dimension's verdict, and where the files are."""
    counts = ", ".join(f"{n} {k}" for k, n in info.status_counts) or "none"
    lines = [f"trials: {info.n_trials} ({counts}); {info.n_usable} usable, {info.n_excluded} excluded"]
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
        lines.append(f"ConvNeXt-T: not placed ({_one_line(v.message)})")
    elif v.on_front:
        lines.append(f"ConvNeXt-T: ON the front (top-1 {_pct(v.reference_top1)}% at "
                     f"{_gf(v.reference_flops)} GFLOPs)")
    else:
        lines.append(f"ConvNeXt-T: NOT on the front (top-1 {_pct(v.reference_top1)}% at "
                     f"{_gf(v.reference_flops)} GFLOPs); dominated by {len(v.dominated_by)} "
                     f"design(s), up to {_pp(v.top1_gap)} pp top-1, down to {v.flop_ratio:.3f}x "
                     f"its GFLOPs")
    judged = [d for d in v.dims if d.dim in info.varying]
    if judged:
        lines.append(f"verdicts per dimension ({v.level:.0%} bootstrap intervals, at least "
                     f"{v.min_trials} trials per choice):")
        w = max(len(d.dim) for d in judged)
        for d in judged:
            cx = d.convnext_choice if d.convnext_choice is not None else "unknown"
            lines.append(f"  {d.dim:<{w}}  ConvNeXt {cx}, best {d.best_choice}: {d.verdict}")
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


def print_summary(info: ReportInfo, file: Any = None) -> None:
    print(summary_text(info), file=file if file is not None else sys.stdout)


# --------------------------------------------------------------------------------------------
# Roadmap replay
# --------------------------------------------------------------------------------------------

_ROADMAP_COLUMNS = ("step", "name", "paper_top1", "top1", "status")


def _roadmap_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"roadmap_report needs a pandas DataFrame; got {type(df).__name__}")
    missing = [c for c in _ROADMAP_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"the roadmap table lacks column(s) {missing}; expected "
                         f"{list(_ROADMAP_COLUMNS)}, columns present: {list(df.columns)}")
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
            return str(int(v)) if math.isfinite(_f(v)) else "-"

        def ch(v: Any) -> str:
            return f"{_f(v):+.2f}" if math.isfinite(_f(v)) else "-"

        rows.append([str(row["step"]), str(row["name"]),
                     f"{row['paper_top1_pct']:.2f}" if math.isfinite(_f(row["paper_top1_pct"])) else "n/a",
                     f"{row['proxy_top1_pct']:.2f}" if math.isfinite(_f(row["proxy_top1_pct"])) else "n/a",
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
        write("roadmap.json", json.dumps(_plain({
            "n_steps": len(r), "n_completed": len(done), "agreement": agreement,
            "sign_agreement": {"same": same, "steps": int(both.sum())}, "notes": notes,
            "steps": r.drop(columns=["usable"]).to_dict("records")}), indent=2, allow_nan=False) + "\n")
    return RoadmapInfo(out_dir=out, files=tuple(write.files), n_steps=len(r),
                       n_completed=len(done), agreement=agreement, notes=tuple(notes))
