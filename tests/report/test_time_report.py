"""The report's section on measured time, on a hand-made table whose answers are known.

The table: ConvNeXt-T, ResNet-50 and dense/depthwise x BN/LN variants of ConvNeXt. Latency
is set by hand to 100 ms per GFLOP for dense designs and 300 for depthwise ones (depthwise
convolutions cost time beyond their FLOPs), so ConvNeXt-T, on the FLOPs front, is dominated
in latency by a dense design, by an amount worked out here.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from nas_convnext import presets
from nas_convnext.analysis.run import analyse
from nas_convnext.design.complexity import complexity
from nas_convnext.report.run_report import summary_text, write_report
from nas_convnext.results import read_table, write_table

NB = 500
DEV = "cpu: Test CPU, 1 thread"
MS_PER_GFLOP = {"depthwise": 300.0, 1: 100.0}


def row(arch, top1, order, reference="", device=DEV, status="completed", latency=None):
    c = complexity(arch)
    lat = MS_PER_GFLOP[arch.groups] * c.flops / 1e9 if latency is None else latency
    return {**arch.to_row(), "trial_id": f"t{order:02d}", "order": order,
            "reference": reference, "fitted": False, "flops": c.flops, "params": c.params,
            "status": status, "epochs": 3 if status == "completed" else 0, "top1": top1,
            "top5": math.nan, "loss": math.nan, "wall_s": 1.0, "images_per_s": 1.0,
            "node_id": "n", "optuna_number": None, "proxy_width": arch.width, "seed": 0,
            "error": "", "latency_ms": lat, "latency_ms_spread": lat / 50,
            "throughput": math.nan, "throughput_spread": math.nan, "speed_device": device}


def table():
    cnx, r50 = presets()["convnext_t"], presets()["resnet50"]
    rows = [row(cnx, 0.70, 0, reference="convnext_t"), row(r50, 0.55, 1, reference="resnet50")]
    k = 2
    for groups in ("depthwise", 1):
        for norm in ("ln", "bn"):
            for width in (48, 64):
                a = dataclasses.replace(cnx, groups=groups, norm=norm, width=width)
                top1 = 0.50 + (0.05 if norm == "ln" else 0) + width / 1000
                rows.append(row(a, top1, k))
                k += 1
    # A dense design a little more accurate than ConvNeXt-T: more FLOPs, but less time.
    strong = dataclasses.replace(cnx, groups=1, width=48, depths=(2, 2, 6, 2))
    rows.append(row(strong, 0.72, k))
    # Measured on another kind of machine: fast, accurate, and never compared with the rest
    # in time (in FLOPs it has more than ConvNeXt-T, so it dominates nothing there).
    rows.append(row(dataclasses.replace(cnx, width=128), 0.99, k + 1, device="cuda: Other GPU",
                    latency=0.5))
    # Over a latency budget: measured, not trained.
    rows.append(row(dataclasses.replace(cnx, width=112), math.nan, k + 2, status="infeasible"))
    return rows, strong


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    rows, strong = table()
    write_table(d, rows)
    return d, rows, strong


def test_time_front_and_convnext_place(run):
    d, rows, strong = run
    an = analyse(read_table(d), None, seed=0, n_boot=NB)
    t = an.time
    assert t is not None and t.device == DEV
    assert t.devices == {DEV: 11, "cuda: Other GPU": 1}  # usable trials with a latency
    assert t.n == 11
    assert any("leave out 1 measured elsewhere" in n for n in t.notes)
    flops_front, lat = t.front("flops"), t.front("latency_ms")
    # In FLOPs the strong dense design costs more than ConvNeXt-T: ConvNeXt-T stays on the front.
    cnx_flops = complexity(presets()["convnext_t"]).flops
    assert complexity(strong).flops > cnx_flops
    assert flops_front.convnext_on_front is True
    # In latency it is dominated by exactly the strong design (the only dense one above 0.70).
    assert lat.convnext_on_front is False
    assert [x[0] for x in lat.dominated_by] == [f"t{len(rows) - 3:02d}"]
    (_, gain, ratio), = lat.dominated_by
    cnx_ms = 300.0 * cnx_flops / 1e9
    strong_ms = 100.0 * complexity(strong).flops / 1e9
    assert gain == pytest.approx(2.0) and ratio == pytest.approx(strong_ms / cnx_ms)
    assert lat.convnext_cost == pytest.approx(cnx_ms)
    # The GPU row (0.99 top-1 at 0.5 ms) would dominate everything: it is not on this front.
    assert "cuda: Other GPU" not in set(lat.front["speed_device"])
    # The infeasible design is not a completed trial: on no front.
    assert (lat.front["status"] == "completed").all()


def test_time_beyond_flops_per_choice_and_the_colouring_dimension(run):
    d, rows, _ = run
    t = analyse(read_table(d), None, seed=0, n_boot=NB).time
    by = {(c.dim, c.choice): c for c in t.choices}
    assert by[("groups", "depthwise")].ms_per_gflop.estimate == pytest.approx(300.0)
    assert by[("groups", "1")].ms_per_gflop.estimate == pytest.approx(100.0)
    n_dw, n_dense = by[("groups", "depthwise")].n, by[("groups", "1")].n
    mean = (300.0 * n_dw + 100.0 * n_dense) / (n_dw + n_dense)
    assert by[("groups", "depthwise")].ratio == pytest.approx(300.0 / mean)
    assert t.colour_dim == "groups"   # the only dimension whose choices differ in ms/GFLOP


def test_report_files_show_the_time_section(run, tmp_path):
    d, _, _ = run
    info = write_report(d, out_dir=tmp_path, n_boot=NB)
    md = (tmp_path / "report.md").read_text()
    assert "## 6. The cost in measured time" in md
    for table_id in ("time-front-table", "time-verdict-table", "time-choices-table"):
        assert f"Table ({table_id})" in md
    assert "is dominated in batch-1 latency by 1 design(s)" in md
    assert (tmp_path / "time_vs_flops.png").stat().st_size > 10_000
    assert (tmp_path / "front_latency.png").is_file()
    data = json.loads((tmp_path / "analysis.json").read_text())
    lat = [f for f in data["time"]["fronts"] if f["cost"] == "latency_ms"][0]
    assert lat["convnext_on_front"] is False and len(lat["dominated_by"]) == 1
    assert data["time"]["colour_dim"] == "groups"
    text = summary_text(info)
    assert f"in batch-1 latency on {DEV} (n = 11): ConvNeXt-T" in text and "dominated" in text


def test_a_table_without_speed_has_no_time_section(run, tmp_path):
    d, rows, _ = run
    bare = tmp_path / "bare"
    bare.mkdir()
    write_table(bare, [{k: v for k, v in r.items() if k not in ("latency_ms", "speed_device")}
                       for r in rows])
    info = write_report(bare, n_boot=NB)
    assert "measured time" not in (bare / "report.md").read_text()
    assert info.time_lines == ()
    assert json.loads((bare / "analysis.json").read_text())["time"] is None
