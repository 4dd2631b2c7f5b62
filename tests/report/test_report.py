"""Reports: files, figures of the saved size, parseable HTML whose tables hold what the analysis
computes, the CLI's one-line errors, and the roadmap replay's rank agreement."""
from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas_convnext import analysis as A
from nas_convnext import presets
from nas_convnext import report as R
from nas_convnext.analysis.roadmap import _roadmap_frame
from nas_convnext.analysis.run import analyse
from nas_convnext.cli import main
from nas_convnext.design.complexity import complexity
from nas_convnext.report import document as D
from nas_convnext.report import figures as F
from nas_convnext.results import COLUMNS, TABLE, write_table

NB = 1000  # bootstrap resamples in tests: the numbers are not under test here, the files are


# ------------------------------------------------------------------------------------------
# Hand-made tables
# ------------------------------------------------------------------------------------------


def row(arch, top1, status="completed", reference="", order=0, **extra):
    c = complexity(arch)
    r = {**arch.to_row(), "trial_id": f"t{order:03d}", "order": order, "reference": reference,
         "fitted": False, "flops": c.flops, "params": c.params, "status": status, "epochs": 3,
         "top1": top1, "top5": math.nan, "loss": math.nan, "wall_s": 10.0,
         "images_per_s": 100.0, "node_id": "n0", "optuna_number": None, "proxy_width": arch.width,
         "seed": 0, "error": ""}
    r.update(extra)
    assert set(r) == set(COLUMNS)
    return r


def small_rows():
    """ConvNeXt-T, ResNet-50 and variations of ConvNeXt in kernel and norm, plus failures."""
    cnx, r50 = presets()["convnext_t"], presets()["resnet50"]
    rows = [row(cnx, 0.60, reference="convnext_t", order=0),
            row(r50, 0.50, reference="resnet50", order=1)]
    rng = np.random.default_rng(0)
    k = 2
    for kernel in (3, 5, 7):
        for norm in ("bn", "ln"):
            for width in (64, 96):
                a = dataclasses.replace(cnx, kernel=kernel, norm=norm, width=width)
                top1 = 0.45 + 0.01 * kernel + (0.02 if norm == "ln" else 0) + 0.001 * width / 8
                rows.append(row(a, float(top1 + rng.normal(0, 0.005)), order=k))
                k += 1
    # excluded trials: one stopped early with the best top-1 of all, and failures
    rows.append(row(dataclasses.replace(cnx, kernel=5, width=64), 0.99, status="stopped_early",
                    order=k, epochs=1))
    rows.append(row(dataclasses.replace(cnx, kernel=3, width=64, norm="bn"), math.nan,
                    status="diverged", order=k + 1))
    rows.append(row(dataclasses.replace(cnx, kernel=7, width=64, norm="bn"), math.nan,
                    status="error", order=k + 2, error="RuntimeError: <boom> & | pipes"))
    return rows


def realistic_rows(n=30, seed=1):
    """A run-like table: random designs of the convnext space under 4.5 GFLOPs with a made-up
    but plausible accuracy model, the two references, and a few trials that did not complete."""
    from nas_convnext.design.space import load_space

    space = load_space("convnext")
    rng = np.random.default_rng(seed)
    cnx, r50 = presets()["convnext_t"], presets()["resnet50"]

    def acc(a, c):
        t = 0.40 + 0.05 * math.log(c.flops / 1e9)
        t += 0.03 * (a.stem == "patchify") + 0.02 * (a.norm == "ln") + 0.01 * (a.act == "gelu")
        t += 0.004 * (a.kernel - 3) + 0.015 * (a.groups == "depthwise") - 0.01 * (a.activations == "every")
        return float(t + rng.normal(0, 0.01))

    rows = [row(cnx, acc(cnx, complexity(cnx)), reference="convnext_t", order=0),
            row(r50, acc(r50, complexity(r50)), reference="resnet50", order=1)]
    order = 2
    while len(rows) < n:
        values = {k: v[rng.integers(len(v))] for k, v in space.dimensions.items()}
        try:
            a = space.make(values)
        except ValueError:
            continue
        c = complexity(a)
        if not 1.0e9 < c.flops <= 4.5e9:
            continue
        rows.append(row(a, acc(a, c), order=order, optuna_number=order - 2))
        order += 1
    for i, status in enumerate(("stopped_early", "stopped_early", "diverged", "error")):
        rows[-1 - i]["status"] = status
        rows[-1 - i]["top1"] = 0.95 if status == "stopped_early" else math.nan
        rows[-1 - i]["error"] = "CUDA out of memory" if status == "error" else ""
    return rows


def make_run(tmp_path, rows, name="run"):
    run = tmp_path / name
    run.mkdir()
    df = write_table(run, rows)
    return run, df


class Doc(HTMLParser):
    """Ids, <img> attributes and the text of each table's cells."""

    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.tables = set(), [], {}
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a)
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Doc:
    d = Doc()
    d.feed(path.read_text())
    d.close()
    return d


def table_dicts(doc, tid):
    header, *body = doc.tables[tid]
    return [dict(zip(header, r)) for r in body]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    run, df = make_run(tmp, small_rows())
    info = R.write_report(run, n_boot=NB)
    return run, df, info


# ------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------


def test_every_file_is_written_and_the_table_is_untouched(small_report):
    run, df, info = small_report
    names = {p.name for p in info.files}
    assert {"report.md", "report.html", "front.csv", "effects.csv", "verdict.csv",
            "excluded.csv", "analysis.json", "front_flops.png", "front_params.png",
            *(f"edf_{d}.png" for d in A.DIMENSIONS)} <= names
    assert all(p.parent == run and p.is_file() and p.stat().st_size > 0 for p in info.files)
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporaries
    pd.testing.assert_frame_equal(pd.read_parquet(run / TABLE), df)
    assert info.varying == A.DIMENSIONS  # ResNet-50 differs from ConvNeXt-T in every field
    assert info.status_counts == (("completed", 14), ("diverged", 1), ("error", 1),
                                  ("stopped_early", 1))


def test_pngs_are_images_of_the_saved_size(small_report):
    import matplotlib.image as mpimg

    run, _, info = small_report
    sizes = {"front_flops.png": F.FRONT_FIGSIZE, "front_params.png": F.FRONT_FIGSIZE,
             "edf_kernel.png": F.EDF_FIGSIZE, "edf_norm.png": F.EDF_FIGSIZE}
    for name, (w, h) in sizes.items():
        img = mpimg.imread(run / name)
        assert img.shape[:2] == (round(h * F.DPI), round(w * F.DPI)), name
        assert img.std() > 0.01  # not a blank canvas


def test_html_has_the_tables_and_one_edf_per_varying_dimension(small_report):
    run, df, info = small_report
    doc = parse(run / "report.html")
    assert {"front-table", "verdict-table", "effects-table", "excluded-table"} <= doc.ids
    assert all(i["src"].startswith("data:image/png;base64,") for i in doc.imgs)
    for dim in A.DIMENSIONS:
        mine = [i for i in doc.imgs if re.search(rf"\b{dim}$", i.get("alt", ""))]
        assert len(mine) == 1, dim
        assert mine[0]["title"] == mine[0]["alt"] and mine[0]["data-dim"] == dim
    assert len([i for i in doc.imgs if i.get("data-dim")]) == len(A.DIMENSIONS)
    # the verdict table has one row per dimension and states the rule
    verdict = table_dicts(doc, "verdict-table")
    assert [r["dimension"] for r in verdict] == list(A.DIMENSIONS)
    assert {r["verdict"] for r in verdict} <= {"supported", "not supported", "inconclusive"}
    text = (run / "report.html").read_text()
    assert info.verdict.rule in html.unescape(text)
    # user text is escaped, never markup
    assert "&lt;boom&gt; &amp; | pipes" in text and "<boom>" not in text


def test_front_table_is_exactly_pareto_front_and_excludes_stopped_trials(small_report):
    run, df, _ = small_report
    want = A.pareto_front(df)
    doc = parse(run / "report.html")
    front = table_dicts(doc, "front-table")
    assert [r["trial"] for r in front] == list(want["trial_id"])
    assert [r["proxy top-1 (%)"] for r in front] == [f"{100 * t:.2f}" for t in want["top1"]]
    stopped = df.loc[df["status"] == "stopped_early", "trial_id"].item()
    assert stopped not in {r["trial"] for r in front}
    assert "99.00" not in {r["proxy top-1 (%)"] for r in front}
    excluded = table_dicts(doc, "excluded-table")
    assert {r["trial"] for r in excluded} == set(df.loc[df["status"] != "completed", "trial_id"])
    csv = pd.read_csv(run / "front.csv")
    assert list(csv["trial_id"]) == list(want["trial_id"])
    md = (run / "report.md").read_text()
    for tid in want["trial_id"]:
        assert f"| {tid} |" in md


def test_captions_state_units_counts_and_flop_convention(small_report):
    run, df, info = small_report
    n = info.n_usable
    for name in ("report.md", "report.html"):
        text = (run / name).read_text()
        assert "multiply-add" in text and f"n = {n} completed trials" in text
        assert "224x224" in text and "proxy top-1 (%)" in text
    page = (run / "report.html").read_text()
    for tid in ("front-table", "verdict-table", "effects-table"):
        cap = re.search(rf'<p class="table-caption" id="{tid}-caption">(.*?)</p>', page).group(1)
        assert f"n = {n} completed trials" in cap, tid
    for cap in re.findall(r"<figcaption>(.*?)</figcaption>", page):
        assert "multiply-add" in cap and "n = " in cap


def test_analysis_json_and_csvs_agree_with_analysis(small_report):
    run, df, info = small_report
    data = json.loads((run / "analysis.json").read_text())
    v = A.convnext_verdict(df, n_boot=NB)
    assert data["verdict"]["on_front"] == v.on_front
    assert [d["verdict"] for d in data["verdict"]["dims"]] == [d.verdict for d in v.dims]
    assert data["n_usable"] == 14 and data["n_excluded"] == 3
    eff = pd.read_csv(run / "effects.csv")
    want = A.choice_effects(df, n_boot=NB)
    np.testing.assert_allclose(eff["top1_mean_lo"], want["top1_mean_lo"])
    ver = pd.read_csv(run / "verdict.csv")
    assert list(ver["verdict"]) == [d.verdict for d in v.dims]
    assert len(pd.read_csv(run / "excluded.csv")) == 3


def test_summary_text_names_front_convnext_and_verdicts(small_report):
    _, _, info = small_report
    text = R.summary_text(info)
    assert "14 completed" in text and "1 stopped_early" in text
    assert "ConvNeXt-T:" in text and "report:" in text
    for dim in info.varying:
        assert re.search(rf"^\s+{dim}\s+ConvNeXt", text, re.M)


def test_convnext_dominated_is_reported_with_its_dominators(tmp_path):
    rows = small_rows()
    rows[0]["top1"] = 0.40  # ConvNeXt-T now below every cheaper design
    run, df = make_run(tmp_path, rows)
    info = R.write_report(run, formats=("html",), n_boot=NB)
    assert info.verdict.on_front is False
    doc = parse(run / "report.html")
    doms = table_dicts(doc, "dominators-table")
    assert len(doms) == len(info.verdict.dominated_by) > 0
    assert {"front-table", "verdict-table"} <= doc.ids


def test_single_design_nan_metrics_and_ties_render(tmp_path):
    cnx = presets()["convnext_t"]
    one = [row(cnx, 0.6, reference="convnext_t", order=0)]
    run, _ = make_run(tmp_path, one, "one")
    info = R.write_report(run, n_boot=NB)
    assert info.varying == () and len(info.front) == 1
    doc = parse(run / "report.html")
    assert {"front-table", "verdict-table", "effects-table"} <= doc.ids
    assert len(table_dicts(doc, "front-table")) == 1 and not table_dicts(doc, "effects-table")
    assert not [i for i in doc.imgs if i.get("data-dim")]

    twin = dataclasses.replace(cnx, kernel=5)
    rows = [row(cnx, 0.6, reference="convnext_t", order=0), row(cnx, 0.6, order=1),
            row(twin, 0.6, order=2), row(twin, 0.6, order=3), row(twin, math.nan, order=4),
            row(cnx, 0.55, order=5, params=None)]
    run, df = make_run(tmp_path, rows, "ties")
    R.write_report(run, n_boot=NB)
    front = table_dicts(parse(run / "report.html"), "front-table")
    assert [r["trial"] for r in front] == list(A.pareto_front(df)["trial_id"])


def test_format_csv_writes_only_csvs(tmp_path, capsys):
    run, _ = make_run(tmp_path, small_rows())
    before = {p.name for p in run.iterdir()}
    code, out, err = run_cli(capsys, "analyze", run, "--format", "csv", "--seed", "3")
    assert code == 0, err
    new = {p.name for p in run.iterdir()} - before
    assert new == {"front.csv", "effects.csv", "verdict.csv", "excluded.csv"}
    assert "Pareto front" in out and "ConvNeXt-T" in out


def test_format_repeatable_and_out_folder(tmp_path, capsys):
    run, _ = make_run(tmp_path, small_rows())
    out_dir = tmp_path / "elsewhere" / "rep"
    code, out, err = run_cli(capsys, "analyze", run, "--format", "json", "--format", "md",
                             "--out", out_dir)
    assert code == 0, err
    names = {p.name for p in out_dir.iterdir()}
    assert {"analysis.json", "report.md", "front_flops.png"} <= names
    assert not {"report.html", "front.csv"} & names
    assert str(out_dir) in out


def test_only_failed_trials_exit_2_with_the_counts(tmp_path, capsys):
    cnx = presets()["convnext_t"]
    rows = [row(cnx, math.nan, status="error", order=0, error="boom"),
            row(cnx, math.nan, status="diverged", order=1),
            row(cnx, 0.9, status="stopped_early", order=2)]
    run, _ = make_run(tmp_path, rows)
    code, out, err = run_cli(capsys, "analyze", run)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "1 error" in lines[0] and "1 diverged" in lines[0]
    assert "1 stopped_early" in lines[0] and "Traceback" not in err
    with pytest.raises(ValueError, match="no completed trials"):
        R.write_report(run)


def test_missing_and_truncated_tables_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "analyze", empty)
    assert code == 2 and TABLE in err and len(err.strip().splitlines()) == 1

    run, _ = make_run(tmp_path, small_rows())
    path = run / TABLE
    path.write_bytes(path.read_bytes()[:200])
    before = path.read_bytes()
    code, _, err = run_cli(capsys, "analyze", run)
    assert code == 2 and "damaged" in err and len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert not (run / "report.html").exists()


def test_bad_format_is_a_usage_error(tmp_path, capsys):
    run, _ = make_run(tmp_path, small_rows())
    code, _, err = run_cli(capsys, "analyze", run, "--format", "pdf")
    assert code == 2 and "pdf" in err
    with pytest.raises(ValueError, match="pdf"):
        R.write_report(run, formats=("pdf",))


def test_optuna_importances_from_study_db(tmp_path):
    import optuna

    rows = realistic_rows(18, seed=3)
    run, df = make_run(tmp_path, rows)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="search", storage=f"sqlite:///{run / 'study.db'}",
                                directions=["maximize", "minimize"])
    for _, r in df.iterrows():
        if pd.isna(r["optuna_number"]):
            continue
        t = study.ask()
        for d in ("kernel", "norm", "stem"):
            t.suggest_categorical(d, ["3", "5", "7", "9", "11"] if d == "kernel" else
                                  (["bn", "ln"] if d == "norm" else ["resnet", "patchify"]))
        t.set_constraint("flops_over_budget", -1.0)
        value = r["top1"] if r["status"] == "completed" and np.isfinite(r["top1"]) else 0.0
        study.tell(t, [float(value), r["flops"] / 1e9])
    before = (run / "study.db").read_bytes()
    info = R.write_report(run, formats=("html",), n_boot=NB)
    assert info.importances is not None and {k for k, _ in info.importances.values} == \
        {"kernel", "norm", "stem"}
    assert info.importances.n == int((df["status"] == "completed").sum()) - 2  # no references
    assert "importances-table" in parse(run / "report.html").ids
    assert (run / "study.db").read_bytes() == before

    # too few trials, or no study: a note, not a failure
    (run / "study.db").unlink()
    info = R.write_report(run, formats=("md",), n_boot=NB)
    assert info.importances is None and any("study.db" in n for n in info.notes)


# ------------------------------------------------------------------------------------------
# What a reader sees: legends that hide nothing, captions once, pages that fit
# ------------------------------------------------------------------------------------------


def _data_points_px(fig):
    """Display coordinates of every data point drawn in the figure's axes: scatter offsets,
    and points every pixel or so along each line as drawn (steps included)."""
    pts = []
    for ax in fig.axes:
        box = ax.get_window_extent()
        found = []
        for coll in ax.collections:
            off = np.asarray(coll.get_offsets(), dtype=float)
            if len(off):
                found.append(coll.get_offset_transform().transform(off))
        for line in ax.lines:
            xy = np.column_stack([np.asarray(line.get_xdata(), dtype=float),
                                  np.asarray(line.get_ydata(), dtype=float)])
            style = line.get_drawstyle()
            assert style in ("default", "steps-post"), style
            if style == "steps-post" and len(xy) > 1:
                corners = np.column_stack([xy[1:, 0], xy[:-1, 1]])
                xy = np.insert(xy, np.arange(1, len(xy)), corners, axis=0)
            px = line.get_transform().transform(xy)
            for a, b in zip(px[:-1], px[1:]):
                if np.isfinite(a).all() and np.isfinite(b).all():
                    n = int(max(2, np.hypot(*(b - a))))
                    found.append(a + np.linspace(0, 1, n)[:, None] * (b - a))
            found.append(px[np.isfinite(px).all(axis=1)])
        if found:
            p = np.concatenate(found)
            inside = ((p[:, 0] >= box.x0 - 1) & (p[:, 0] <= box.x1 + 1)
                      & (p[:, 1] >= box.y0 - 1) & (p[:, 1] <= box.y1 + 1))
            pts.append(p[inside])  # what the axes clip away is not drawn
    return np.concatenate(pts)


def _covered(fig, legends):
    """For each legend, how many data points lie under it (its box, 2 px wider each way)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pts = _data_points_px(fig)
    counts = []
    for leg in legends:
        b = leg.get_window_extent(renderer).padded(2)
        counts.append(int(((pts[:, 0] >= b.x0) & (pts[:, 0] <= b.x1)
                           & (pts[:, 1] >= b.y0) & (pts[:, 1] <= b.y1)).sum()))
    return counts


def _one_design_front_rows():
    """The issue's run: a front of one design, the cheapest and most accurate (top left)."""
    rows = realistic_rows(16, seed=4)
    done = [r for r in rows if r["status"] == "completed"]
    best = min(done, key=lambda r: r["flops"])
    best["top1"] = max(r["top1"] for r in done) + 0.05
    return rows


def _worst_kernel_rows():
    """Kernel 3 far worse than 5 and 7: its error EDF runs along the bottom right."""
    cnx = presets()["convnext_t"]
    rows, k = [row(cnx, 0.58, reference="convnext_t", order=0)], 1
    for kernel in (3, 5, 7):
        for width in (64, 80, 96):
            for norm in ("bn", "ln"):
                top1 = (0.30 if kernel == 3 else 0.50 + 0.01 * kernel) + 0.0003 * width \
                    + 0.004 * (norm == "ln")
                rows.append(row(dataclasses.replace(cnx, kernel=kernel, width=width, norm=norm),
                                top1, order=k))
                k += 1
    return rows


def _legend_cases(tmp_path, case):
    """(figure, the legends it holds, axes to put main's legend in, main's location)."""
    if case == "roadmap":
        df = roadmap_frame()
        df["top1"] = [0.40 - 0.008 * i for i in range(len(df))]  # falling: the lower right
        df["status"] = "completed"
        r, _ = _roadmap_frame(df)
        fig = F._roadmap_plot(r, None)
        ax, ax2 = fig.axes
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        return fig, ax2, (h1 + h2, l1 + l2), "lower right"
    rows = _worst_kernel_rows() if case == "edf" else _one_design_front_rows()
    run, df = make_run(tmp_path, rows)
    an = analyse(df, None, 0, NB)
    if case == "edf":
        assert "kernel" in an.varying
        fig = F._edf_plot(an, "kernel")
        return fig, fig.axes[0], fig.axes[0].get_legend_handles_labels(), "lower right"
    assert len(an.front) == 1  # one design on the front, in the upper left corner
    fig = F._front_plot(an, "flops")
    return fig, fig.axes[0], fig.axes[0].get_legend_handles_labels(), "upper left"


@pytest.mark.parametrize("case", ["front", "edf", "roadmap"])
def test_legends_cover_no_data_point(tmp_path, case):
    fig, ax, (handles, labels), main_loc = _legend_cases(tmp_path, case)
    legends = list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend()]
    assert len(legends) == (2 if case == "edf" else 1)
    assert _covered(fig, legends) == [0] * len(legends)
    renderer = fig.canvas.get_renderer()
    boxes = [leg.get_window_extent(renderer) for leg in legends]
    for box in boxes:
        # inside the figure, outside every axes, clear of tick labels and axis labels
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0 and box.y1 <= fig.bbox.height
        for a in fig.axes:
            assert not box.overlaps(a.get_window_extent(renderer))
            for axis in (a.xaxis, a.yaxis):
                ticks = axis.get_tightbbox(renderer)  # None for a twin's hidden axis
                assert ticks is None or not box.overlaps(ticks)
    if len(boxes) == 2:
        assert not boxes[0].overlaps(boxes[1])
    # The table is one that hides data under a legend inside the axes where main put it: the
    # check above would have caught it.
    inside = ax.legend(handles, labels, loc=main_loc, fontsize=8)
    assert _covered(fig, [inside])[0] > 0


def test_front_against_parameters_keeps_its_legend_off_the_data(tmp_path):
    run, df = make_run(tmp_path, _one_design_front_rows())
    fig = F._front_plot(analyse(df, None, 0, NB), "params")
    legends = list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend()]
    assert len(legends) == 1 and _covered(fig, legends) == [0]


class _Tree(HTMLParser):
    """Each table's and figure's ancestors, and the text of captions."""

    def __init__(self):
        super().__init__()
        self.stack, self.tables, self.figcaptions, self.captions = [], [], [], {}
        self._text = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append((a, [dict(x[1]) for x in self.stack]))
        if tag == "figcaption" or (tag == "p" and a.get("class") == "table-caption"):
            self._text = (tag, a.get("id"), [])
        if tag not in ("img", "br", "meta"):
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        if self._text is not None and tag == self._text[0]:
            kind, cid, parts = self._text
            text = html.unescape("".join(parts))
            if kind == "figcaption":
                self.figcaptions.append(text)
            else:
                self.captions[cid] = text
            self._text = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._text is not None:
            self._text[2].append(data)


def test_each_caption_once_and_every_table_in_a_scrolling_box(small_report):
    import matplotlib.text

    run, df, info = small_report
    page = (run / "report.html").read_text()
    text = html.unescape(page)
    tree = _Tree()
    tree.feed(page)
    assert len(tree.tables) >= 5 and len(tree.figcaptions) == 2 + len(info.varying)
    for attrs, ancestors in tree.tables:
        assert any("table-scroll" in (a.get("class") or "").split() for a in ancestors), attrs
        cap = tree.captions[attrs["aria-labelledby"]]
        assert cap and text.count(cap) == 1, attrs["id"]
    for cap in tree.figcaptions:
        assert text.count(cap) == 1
    assert re.search(r"\.table-scroll\{overflow-x:auto", page)
    assert re.search(r"(^|\})img\{max-width:100%", page, re.M)
    md = (run / "report.md").read_text()
    assert all(md.count(D._md_text(c)) == 1 for c in tree.figcaptions)
    # ... and not drawn into the PNGs as well: no text of any figure holds its caption
    an = analyse(df, run, 0, NB)
    figures = [(F._front_plot(an, "flops"), F._front_caption(an, "flops")),
               (F._front_plot(an, "params"), F._front_caption(an, "params")),
               (F._edf_plot(an, "kernel"), F._edf_caption(an, "kernel"))]
    for fig, caption in figures:
        assert caption in tree.figcaptions
        drawn = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
        sentences = [x for x in caption.split(". ") if len(x) > 30]
        assert sentences and not [t for t in drawn if len(t) > 150
                                  or any(x in t for x in sentences)], drawn


def test_report_fits_the_page_in_chromium(small_report):
    from bench.report_render import find_chromium, layout_check, problems

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    run, _, info = small_report
    res = layout_check(run / "report.html", width=760)
    assert problems(res) == []
    assert res["pageScrollWidth"] <= res["viewport"] < 760
    assert res["tables"] >= 5 and not res["tablesOutsideScroll"]
    # the 19-column front table is wider than the page: it scrolls inside its own box
    assert "front-table" in res["tablesScrolled"]
    assert res["images"] == 2 + len(info.varying) and not res["imagesWiderThanPage"]


# ------------------------------------------------------------------------------------------
# Roadmap replay
# ------------------------------------------------------------------------------------------


def roadmap_frame():
    from nas_convnext.design.roadmap import roadmap_steps

    rng = np.random.default_rng(7)
    steps = roadmap_steps()
    top1 = [0.30 + 0.004 * (s.paper_top1 - 76) + rng.normal(0, 0.01) for s in steps]
    status = ["completed"] * len(steps)
    status[4], status[9] = "diverged", "stopped_early"
    top1[4] = math.nan
    return pd.DataFrame({"step": [s.index for s in steps], "name": [s.name for s in steps],
                         "paper_top1": [s.paper_top1 for s in steps], "top1": top1,
                         "status": status})


def test_roadmap_report_files_and_kendall_tau(tmp_path):
    df = roadmap_frame()
    assert len(df) == 17
    info = R.roadmap_report(df, tmp_path / "roadmap")
    names = {p.name for p in info.files}
    assert names == {"roadmap.md", "roadmap.html", "roadmap.png", "roadmap.csv"}
    done = df[(df["status"] == "completed") & df["top1"].notna()]
    want = stats.kendalltau(done["paper_top1"], done["top1"])
    assert info.n_completed == len(done) == 15
    assert info.agreement.tau == pytest.approx(want.statistic)
    assert info.agreement.tau_p == pytest.approx(want.pvalue)
    assert info.agreement.rho == pytest.approx(stats.spearmanr(done["paper_top1"], done["top1"]).statistic)
    doc = parse(tmp_path / "roadmap" / "roadmap.html")
    rows = table_dicts(doc, "roadmap-table")
    assert len(rows) == 17 and rows[16]["paper top-1 (%)"] == "81.97"
    import matplotlib.image as mpimg

    img = mpimg.imread(tmp_path / "roadmap" / "roadmap.png")
    w, h = F.ROADMAP_FIGSIZE
    assert img.shape[:2] == (round(h * F.DPI), round(w * F.DPI))
    assert f"{info.agreement.tau:.3f}" in (tmp_path / "roadmap" / "roadmap.md").read_text()


def test_roadmap_report_rejects_a_bad_table(tmp_path):
    with pytest.raises(ValueError, match="paper_top1"):
        R.roadmap_report(pd.DataFrame({"step": [0], "name": ["x"], "top1": [0.5],
                                       "status": ["completed"]}), tmp_path)
    df = roadmap_frame()
    df["top1"] = df["top1"] * 100
    with pytest.raises(ValueError, match="fraction"):
        R.roadmap_report(df, tmp_path)


def test_markdown_escapes_what_opens_markup_and_keeps_arrows_readable():
    # a cell or paragraph from user data cannot open a tag, an entity or a quote...
    assert D._md_cell("<b>x</b> & y | z") == "&lt;b>x&lt;/b> &amp; y \\| z"
    assert D._md_text("> quoted\n  > again").startswith("&gt; quoted\n  &gt; again")
    # ...and an arrow inside the text stays an arrow in the raw file
    assert D._md_cell("01-modern-recipe -> 02-stage-ratio") == "01-modern-recipe -> 02-stage-ratio"
    assert D._md_text("a -> b") == "a -> b"
