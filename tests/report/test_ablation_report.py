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
    assert "width 96 -\\> " in md or "width 96 -&gt; " in md   # depths' FLOP matching, and why
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
