"""Fidelity beside every verdict: the report opens with its proxy's calibration, warns when
there is none, and withholds supported / not supported where the proxy cannot tell apart."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from nas_convnext import report as R
from nas_convnext.analysis.calibration import calibrate, roadmap_reference
from nas_convnext.cli import main
from nas_convnext.report.calibration_report import EXPECTED_MINUTES
from nas_convnext.report.fidelity import CANNOT_TELL

from .test_report import NB, make_run, parse, small_rows, table_dicts


def _record(faithful: bool, proxy="cpu", dataset="fashion-mnist", when="2026-12-01T10:00:00",
            bump: dict[int, float] | None = None):
    """A calibration.json as `calibrate` writes it, from hand-made proxy results: `faithful`
    ranks the steps as the paper does (three seeds, small noise); otherwise the proxy's top-1
    is noise around one value (it sees nothing of the designs). `bump`: points of top-1 added
    to some steps (a proxy that favours or undervalues them)."""
    ref = roadmap_reference()
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(3):
        for step, paper in zip(ref["step"], ref["paper_top1"]):
            top1 = (paper / 100 - 0.5 + rng.normal(0, 0.0005) if faithful
                    else 0.3 + rng.normal(0, 0.02))
            rows.append({"step": step, "seed": seed, "top1": top1 + (bump or {}).get(step, 0) / 100})
    cal = calibrate(pd.DataFrame(rows), ref, n_boot=500)
    return {**cal.to_json(), "minutes": 12.5, "proxy": proxy, "dataset": dataset,
            "dataset_source": "embedded subset 12000/10000", "when": when,
            "machine": {"hostname": "lab-7", "cpus": 2, "cuda": False}, "run": "cal"}


def _results(tmp_path, meta=None):
    """A results folder with one search run (hand-made table, run.json of proxy cpu on
    fashion-mnist)."""
    results = tmp_path / "results"
    results.mkdir()
    run, _ = make_run(results, small_rows())
    (run / "run.json").write_text(json.dumps(meta or {
        "kind": "search", "config": {"proxy": "cpu", "dataset": "fashion-mnist"},
        "proxy": {"name": "cpu"}, "dataset": "fashion-mnist"}))
    return results, run


def _put(results, name, record):
    folder = results / name
    folder.mkdir()
    (folder / "calibration.json").write_text(json.dumps(record))
    return folder


def _claims(info):
    return {d.dim: d.verdict for d in info.verdict.dims if d.verdict in ("supported", "not supported")}


def test_without_a_calibration_the_report_warns_above_the_verdicts(tmp_path):
    _, run = _results(tmp_path)
    info = R.write_report(run, n_boot=NB)
    md = (run / "report.md").read_text().replace("\\", "")  # Markdown escapes [ ] _
    warning = md.index("uncalibrated on fashion-mnist")
    assert warning < md.index("Table (verdict-table)")
    # the command alone is code, its cost is prose after it
    assert "`nas-convnext calibrate --proxy cpu --dataset fashion-mnist --seeds 2` (about" in md
    least, most = EXPECTED_MINUTES["cpu"]
    assert f"about {least} to {most} minutes on 2 cores, depending on the CPU" in md
    # The verdicts themselves stand (there is nothing to withhold them on).
    claims = _claims(info)
    assert claims, "the hand-made table should give at least one claim"
    shown = {r["dimension"]: r["verdict"] for r in table_dicts(parse(run / "report.html"), "verdict-table")}
    assert all(shown[d] == v for d, v in claims.items())
    assert R.summary_text(info).startswith("proxy fidelity: Warning: proxy cpu is uncalibrated")
    assert json.loads((run / "analysis.json").read_text())["fidelity"]["calibrated"] is False


def test_a_faithful_calibration_opens_the_report_and_the_verdicts_stand(tmp_path):
    results, run = _results(tmp_path)
    record = _record(faithful=True)
    _put(results, "cal", record)
    info = R.write_report(run, n_boot=NB)
    assert info.fidelity.can_tell is True
    md = (run / "report.md").read_text().replace("\\", "")  # Markdown escapes [ ] _
    opening = md[:md.index("run folder:")]  # the fidelity block comes before anything else
    lo, hi = record["kendall_tau_ci"]
    assert f"Kendall tau {record['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]" in opening
    assert f"seed ceiling (tau between seeds): {record['seed_kendall_tau']:+.2f}" in opening
    assert f"FLOPs-only baseline: tau {record['flops_kendall_tau']:+.2f}" in opening
    assert "measured 2026-12-01T10:00:00 on lab-7 (2 CPUs), 12.5 minutes" in opening
    assert "uncalibrated" not in md and CANNOT_TELL not in md
    shown = {r["dimension"]: r["verdict"] for r in table_dicts(parse(run / "report.html"), "verdict-table")}
    assert all(shown[d] == v for d, v in _claims(info).items())


def test_the_fidelity_block_names_the_steps_its_proxy_misjudges_most(tmp_path):
    results, run = _results(tmp_path)
    _put(results, "cal", _record(faithful=True, bump={13: 3.0, 5: -2.0}))
    info = R.write_report(run, n_boot=NB)
    md = (run / "report.md").read_text().replace("\\", "")  # Markdown escapes [ ] _
    opening = md[:md.index("run folder:")]
    line = opening[opening.index("where it parts most from the paper"):]
    line = line[:line.index("\n")]
    # largest first: step 13's +3 before step 5's -2, each with its interval
    assert re.search(r"step 13 \(roadmap/13-fewer-activations\) \+[23]\.\d pp \[\+", line)
    assert re.search(r"step 5 \(roadmap/05-width-96\) -[12]\.\d pp \[-", line)
    assert line.index("step 13 (") < line.index("step 5 (")
    assert info.fidelity.can_tell is True  # a named bias does not withhold the verdicts


def test_a_proxy_that_cannot_tell_apart_gets_no_supported_or_not_supported(tmp_path):
    results, run = _results(tmp_path)
    record = _record(faithful=False)
    assert record["can_tell"] is False
    _put(results, "cal", record)
    info = R.write_report(run, n_boot=NB)
    claims = _claims(info)
    assert claims
    rows = table_dicts(parse(run / "report.html"), "verdict-table")
    shown = {r["dimension"]: r["verdict"] for r in rows}
    assert all(shown[d] == CANNOT_TELL for d in claims)
    assert not {"supported", "not supported"} & set(shown.values())
    md = (run / "report.md").read_text().replace("\\", "")  # Markdown escapes [ ] _
    assert md.index("The proxy cannot tell these choices apart") < md.index("Table (verdict-table)")
    csv = pd.read_csv(run / "verdict.csv")
    assert set(csv.loc[csv["dim"].isin(claims), "verdict_shown"]) == {CANNOT_TELL}
    assert list(csv["verdict"]) == [d.verdict for d in info.verdict.dims]  # the raw one is kept
    text = R.summary_text(info)
    assert "cannot tell these choices apart" in text
    for dim in claims:
        assert re.search(rf"^\s+{dim}\s+ConvNeXt .*: {CANNOT_TELL}$", text, re.M), dim


def test_the_newest_calibration_of_the_runs_own_proxy_and_dataset_is_used(tmp_path):
    results, run = _results(tmp_path)
    _put(results, "old", _record(True, when="2026-01-01T00:00:00"))
    _put(results, "new", {**_record(False, when="2026-06-01T00:00:00"), "run": "new"})
    _put(results, "other-data", _record(True, dataset="mnist", when="2026-12-31T00:00:00"))
    _put(results, "other-proxy", _record(True, proxy="gpu", when="2026-12-31T00:00:00"))
    (results / "damaged").mkdir()
    (results / "damaged" / "calibration.json").write_text("{not json")
    info = R.write_report(run, n_boot=NB)
    assert info.fidelity.record["when"] == "2026-06-01T00:00:00"
    assert info.fidelity.can_tell is False
    # Named with --calibration, another one wins, and a mismatch of dataset is said.
    info = R.write_report(run, n_boot=NB, calibration=results / "other-data")
    assert info.fidelity.can_tell is True
    assert "measured with proxy cpu on mnist, this run used proxy cpu on fashion-mnist" in \
        (run / "report.md").read_text()


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.mkdir(), "not a calibration run (no calibration.json"),
    (lambda p: (p.mkdir(), (p / "calibration.json").write_text('{"kendall_tau": "high"}')),
     "is not a calibration"),
    (lambda p: None, "no such calibration run folder"),
])
def test_a_calibration_that_is_not_one_exits_2_in_one_line(tmp_path, capsys, make, needle):
    _, run = _results(tmp_path)
    bad = tmp_path / "bad"
    make(bad)
    for argv in (["analyze", str(run), "--calibration", str(bad)],
                 ["search", "--budget", "4.5G", "--dataset", "synthetic", "--calibration", str(bad),
                  "--results-dir", str(tmp_path / "r")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
