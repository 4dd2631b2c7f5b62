"""An ablation through run_search: interrupted, then resumed, it trains no (design, seed) twice.

The interrupted run is a real `nas-convnext ablate` process that receives SIGINT (the test
hook NAS_CONVNEXT_FAULT=interrupt:K) while trial K has reported the first of its two epochs;
the resumption is `nas-convnext ablate --resume`, in the suite's Ray. Small and fast: the
`small` space around ConvNeXt-T with the stage ratio it allows (4 variants), 2 seeds, the
`cpu-tiny` proxy on synthetic data, one trial at a time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nas_convnext.cli import main
from nas_convnext.design.arch import Arch
from nas_convnext.results import read_run_json, read_table

DESIGNS = 5          # the base and its 4 one-change variants in `small`
SEEDS = 2
MOMENT = 4           # the 4th trial is running when Ctrl-C comes
ARGS = ["convnext_t", "depths=2,2,6,2", "--space", "small", "--proxy", "cpu-tiny",
        "--epochs", "2", "--dataset", "synthetic", "--seeds", str(SEEDS), "--seed", "5",
        "--concurrency", "1"]


def _pairs(df) -> list[tuple[str, int]]:
    return [(Arch.from_row(r).key(), int(r["seed"])) for r in df.to_dict("records")]


@pytest.fixture(scope="module")
def resumed(ray_session, tmp_path_factory):
    results = tmp_path_factory.mktemp("runs")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "NAS_CONVNEXT_FAULT")}
    env["NAS_CONVNEXT_FAULT"] = f"interrupt:{MOMENT}"
    p = subprocess.run([sys.executable, "-m", "nas_convnext.cli", "ablate", *ARGS,
                        "--results-dir", str(results), "--name", "cut"],
                       capture_output=True, text=True, env=env, timeout=600, check=False)
    run_dir = results / "cut"
    assert p.returncode == 130, p.stderr
    assert f"--resume {run_dir}" in p.stdout
    before = read_table(run_dir)
    meta = read_run_json(run_dir)
    return run_dir, before, meta


def test_the_interrupted_run_kept_its_plan_and_finished_trials(resumed):
    _, before, meta = resumed
    assert meta["kind"] == "ablation"
    plan = meta["ablation"]
    assert plan["seeds"] == [5, 6] and plan["space"] == "small"
    assert plan["variants"][0]["id"] == "base" and len(plan["variants"]) == DESIGNS
    # one trial at a time: the trials before the 4th completed, the 4th was cut short
    cut = before["error"].str.startswith("cut short:")
    assert int((~cut).sum()) == MOMENT - 1 and (before.loc[~cut, "status"] == "completed").all()
    assert int(cut.sum()) == 1


def test_resume_trains_no_design_and_seed_twice(resumed, capsys):
    run_dir, before, _ = resumed
    rc = main(["ablate", "--resume", str(run_dir), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    after = read_table(run_dir)
    pairs = _pairs(after)
    assert len(pairs) == DESIGNS * SEEDS == len(set(pairs))
    assert (after["status"] == "completed").all()
    # the trials finished before the interruption are the same rows (same Tune trials), not
    # trained again; the cut-short one was trained again, once
    done = before[~before["error"].str.startswith("cut short:")]
    kept = after.set_index("trial_id")
    for r in done.to_dict("records"):
        assert r["trial_id"] in kept.index
        assert kept.loc[r["trial_id"], "top1"] == r["top1"]
    # every design with every seed, and the seeds are the plan's
    assert sorted(set(after["seed"])) == [5, 6]
    data = json.loads(out)
    assert data["seeds"] == [5, 6]
    assert set(data["verdicts"]) == {"depths", "kernel", "spatial_conv", "norm"}
    assert all(v["n"] == SEEDS for v in data["variants"])
    assert data["minutes"] is not None and data["minutes"] > 0
    assert (run_dir / "ablation.html").is_file() and (run_dir / "ablation_forest.png").is_file()


def test_a_second_resume_trains_nothing(resumed, capsys):
    run_dir, _, _ = resumed
    before = read_table(run_dir)
    assert main(["ablate", "--resume", str(run_dir)]) == 0
    capsys.readouterr()
    after = read_table(run_dir)
    assert sorted(after["trial_id"]) == sorted(before["trial_id"])
