"""The ablation report from a hand-made trials table: every format, the forest plot, the
verdict table with the paper's direction beside it, the variants with their FLOPs and why."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from nas_convnext.analysis.ablation import analyse_ablation
from nas_convnext.report.ablation_report import (
    FOREST_FRAME,
    FOREST_ROW,
    FOREST_WIDTH,
    ablation_summary,
    write_ablation_report,
)
from nas_convnext.report.figures import DPI
from tests.analysis.test_ablation import SEEDS, record, small_plan, trials


@pytest.fixture(scope="module")
def analysis():
    plan = small_plan()
    df = trials(plan, {"kernel=3": -0.02, "norm=bn": [0.03, 0.05, 0.04],
                       "spatial_conv=middle": [0.01, -0.02, 0.005],
                       "depths=1,1,3,1": [-0.01, 0.02, -0.015]})
    return analyse_ablation(df, record(plan), minutes=7.25)


def test_every_format_is_written(analysis, tmp_path):
    info = write_ablation_report(analysis, tmp_path, run_dir=tmp_path)
    names = sorted(p.name for p in info.files)
    assert names == sorted(["ablation_forest.png", "ablation_variants.csv",
                            "ablation_verdicts.csv", "ablation.md", "ablation.html",
                            "ablation.json"])
    png = (tmp_path / "ablation_forest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # one row per variant: the figure grows with the variants (4 here)
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    assert (width, height) == (int(FOREST_WIDTH * DPI), int((FOREST_FRAME + 4 * FOREST_ROW) * DPI))


def test_the_csvs_hold_the_analysis(analysis, tmp_path):
    write_ablation_report(analysis, tmp_path, formats=["csv"])
    v = pd.read_csv(tmp_path / "ablation_variants.csv").set_index("variant")
    assert v.loc["kernel=3", "mean_diff"] == pytest.approx(-0.02)
    assert v.loc["kernel=3", "lo"] == pytest.approx(-0.02)
    assert v.loc["norm=bn", "mean_diff"] == pytest.approx(0.04)
    assert bool(v.loc["depths=1,1,3,1", "matched"]) is True
    d = pd.read_csv(tmp_path / "ablation_verdicts.csv").set_index("dimension")
    assert d.loc["kernel", "verdict"] == "better" and d.loc["norm", "verdict"] == "worse"
    assert d.loc["spatial_conv", "verdict"] == "undecided"
    # the base's norm is ln; the roadmap's step 14 -> 15 went bn -> ln and gained top-1
    assert d.loc["norm", "base_value"] == "ln" and d.loc["norm", "paper_direction"] == "better"
    assert "14-fewer-norms -> 15-layer-norm" in d.loc["norm", "paper_comparisons"]
    # the base's depths (2,2,6,2) were never a roadmap step: no paper direction
    assert pd.isna(d.loc["depths", "paper_direction"])


def test_the_markdown_and_html_show_verdicts_paper_and_why(analysis, tmp_path):
    write_ablation_report(analysis, tmp_path, formats=["md", "html"], run_dir=tmp_path)
    md = (tmp_path / "ablation.md").read_text()
    assert "![forest plot" in md and "(ablation_forest.png)" in md
    assert "2 of 4 dimensions decided" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| norm | ln | worse"))
    assert "| better |" in row                         # the paper's direction, beside it
    assert "training time: 7.2 minutes" in md or "training time: 7.3 minutes" in md
    assert "width 96 -> " in md   # depths' FLOP matching, and why
    html = (tmp_path / "ablation.html").read_text()
    assert 'id="ablation-verdicts"' in html and 'id="ablation-plan"' in html
    assert "data:image/png;base64," in html


def test_the_json_has_what_ablate_json_promises(analysis, tmp_path):
    write_ablation_report(analysis, tmp_path, formats=["json"])
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert data["seeds"] == list(SEEDS) and data["minutes"] == 7.25
    assert data["verdicts"] == {"depths": "undecided", "kernel": "better",
                                "spatial_conv": "undecided", "norm": "worse"}
    for v in data["variants"]:
        assert {"dimension", "value", "flops", "mean_diff", "ci"} <= set(v)
    assert data["paper"]["norm"]["direction"] == "better"


def test_the_summary_names_each_verdict_and_the_count(analysis):
    text = ablation_summary(analysis)
    assert "kernel" in text and "better" in text
    assert "decided 2 of 4 dimensions in 7.2 minutes" in text \
        or "decided 2 of 4 dimensions in 7.3 minutes" in text


# ----- the latest ablation beside a search's report -----


def _ablation_run(root, name, finished, proxy, shift):
    from nas_convnext.results import write_run_json, write_table
    from tests.report.test_report import row

    plan = small_plan()
    rows, order = [], 0
    for s in SEEDS:
        for v in plan.variants:
            top1 = {0: 0.40, 1: 0.46, 2: 0.43}[s] + shift.get(v.id, 0.0)
            rows.append(row(v.arch, top1, order=order, seed=s, trial_id=f"a{order:03d}"))
            order += 1
    run = root / name
    run.mkdir()
    write_table(run, rows)
    write_run_json(run, {"kind": "ablation", "config": {"dataset": "synthetic", "data_dir": None},
                         "proxy": proxy, "finished": finished, "ablation": record(plan)})
    return run


def test_a_search_report_shows_the_latest_ablation_of_the_same_proxy_and_data(tmp_path):
    from nas_convnext.report.run_report import summary_text, write_report
    from nas_convnext.results import write_run_json
    from tests.report.test_report import make_run, small_rows

    proxy = {"name": "cpu-tiny", "epochs": 1}
    search, _ = make_run(tmp_path, small_rows(), name="search")
    write_run_json(search, {"kind": "search", "config": {"dataset": "synthetic", "data_dir": None},
                            "proxy": proxy})
    # an older ablation (kernel worse), the latest (kernel better), one of another proxy
    _ablation_run(tmp_path, "old", "2026-01-01T10:00:00", proxy, {"kernel=3": +0.03})
    _ablation_run(tmp_path, "new", "2026-01-02T10:00:00", proxy, {"kernel=3": -0.03})
    _ablation_run(tmp_path, "other", "2026-01-03T10:00:00", {"name": "cpu", "epochs": 3},
                  {"norm=bn": +0.05})
    info = write_report(search, formats=["md", "json"], n_boot=1000)
    a = info.ablation
    assert a is not None and a["run_dir"].endswith("new")
    rows = {r["dimension"]: r for r in a["verdicts"]}
    assert rows["kernel"]["ablation_verdict"] == "better" and rows["norm"]["ablation_verdict"] == "undecided"
    # the search's own verdict on the same dimension stands beside it
    assert rows["kernel"]["search_verdict"] in ("supported", "not supported", "inconclusive")
    assert a["decided"] == 1 and a["dimensions"] == 4
    md = (search / "report.md").read_text()
    assert "Local evidence: the latest ablation of the same proxy and data" in md
    assert json.loads((search / "analysis.json").read_text())["ablation"]["decided"] == 1
    assert "latest ablation of the same proxy and data" in summary_text(info)


def test_no_ablation_of_the_same_data_shows_nothing(tmp_path):
    from nas_convnext.report.run_report import write_report
    from nas_convnext.results import write_run_json
    from tests.report.test_report import make_run, small_rows

    search, _ = make_run(tmp_path, small_rows(), name="search")
    write_run_json(search, {"kind": "search", "config": {"dataset": "idx", "data_dir": "/x"},
                            "proxy": {"name": "cpu"}})
    _ablation_run(tmp_path, "abl", "2026-01-02T10:00:00", {"name": "cpu"}, {})
    info = write_report(search, formats=["md"], n_boot=1000)
    assert info.ablation is None
    assert "Local evidence" not in (search / "report.md").read_text()


def test_analyze_of_an_ablation_writes_the_ablation_report(tmp_path, capsys):
    from nas_convnext.cli import main

    run = _ablation_run(tmp_path, "abl", "2026-01-02T10:00:00", {"name": "cpu"},
                        {"kernel=3": -0.03})
    assert main(["analyze", str(run), "--format", "md", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "decided 1 of 4 dimensions" in out
    assert (run / "ablation.md").is_file() and not (run / "report.md").exists()
    # as the search report: the proxy's calibration first, here that there is none
    md = (run / "ablation.md").read_text()
    assert "The proxy's calibration" in md and "uncalibrated" in md
    d = pd.read_csv(run / "ablation_verdicts.csv").set_index("dimension")
    assert d.loc["kernel", "verdict"] == "better"


def test_a_choice_the_roadmap_never_compared_shows_a_dash(analysis, tmp_path):
    write_ablation_report(analysis, tmp_path, formats=["md"])
    md = (tmp_path / "ablation.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| depths | 2,2,6,2 |"))
    assert "| - | not compared on the roadmap |" in row and "nan" not in row
