"""`nas-convnext calibrate`: a calibration run through the search machinery, its figures, errors."""
from __future__ import annotations

import json

import pytest

import nas_convnext.search.run as run_module
from nas_convnext.analysis.calibration import calibrate, calibration_runs, roadmap_reference
from nas_convnext.cli import main
from nas_convnext.results import read_table
from nas_convnext.search.run import roadmap_candidates

KEYS = {"kendall_tau", "kendall_tau_ci", "spearman_rho", "seed_kendall_tau",
        "per_seed_kendall_tau", "flops_kendall_tau", "minutes", "proxy", "dataset"}


@pytest.fixture
def three_steps(monkeypatch):
    """Three roadmap steps (the fewest a calibration ranks) keep the run short."""
    steps = roadmap_candidates()[-3:]
    monkeypatch.setattr(run_module, "roadmap_candidates", lambda: list(steps))
    return steps


def test_calibrate_writes_calibration_json_and_prints_it(ray_session, tmp_path, capsys,
                                                         three_steps):
    code = main(["calibrate", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--seeds", "2",
                 "--seed", "4", "--concurrency", "2", "--name", "cal",
                 "--results-dir", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    printed = json.loads(out)
    run_dir = tmp_path / "cal"
    saved = json.loads((run_dir / "calibration.json").read_text())
    assert printed == saved and KEYS <= set(saved)
    assert saved["proxy"] == "cpu-tiny" and saved["dataset"] == "synthetic"
    assert saved["n_seeds"] == 2 and saved["seeds"] == [4, 5] and saved["n_steps"] == 3
    assert set(saved["per_seed_kendall_tau"]) == {"4", "5"}
    assert saved["minutes"] > 0 and "generated" in saved["dataset_source"]
    assert len(saved["missing_steps"]) == 14
    # The figures are those of the statistics on the run's own table.
    table = read_table(run_dir)
    assert sorted(table["seed"]) == [4, 4, 4, 5, 5, 5]
    cal = calibrate(calibration_runs(table), roadmap_reference())
    assert saved["kendall_tau"] == pytest.approx(cal.kendall_tau)
    assert saved["flops_kendall_tau"] == pytest.approx(cal.flops_kendall_tau)
    assert saved["kendall_tau_ci"] == pytest.approx(list(cal.kendall_tau_ci))
    for name in ("calibration.md", "calibration.html", "calibration.csv", "calibration.png"):
        assert (run_dir / name).stat().st_size > 0, name
    md = (run_dir / "calibration.md").read_text()
    assert "FLOPs-only baseline" in md and "seed ceiling" in md
    # A resume of a finished calibration trains nothing and writes the same figures.
    ids = table["trial_id"].tolist()
    assert main(["calibrate", "--resume", str(run_dir), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert read_table(run_dir)["trial_id"].tolist() == ids
    assert again["kendall_tau"] == saved["kendall_tau"]


def _one_line_exit_2(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_calibrate_refuses_bad_input_in_one_line(tmp_path, capsys):
    results = ["--results-dir", str(tmp_path / "r")]
    _one_line_exit_2(capsys, ["calibrate", "--seeds", "0", *results], "--seeds: '0' must be positive")
    # A count found by the bad-input sweep: 4,000,000 seeds planned 68 million trials (and
    # checked each one's resolution) before anything else; the count is bounded like ablate's.
    _one_line_exit_2(capsys, ["calibrate", "--seeds", "4000000", *results],
                     "--seeds: '4000000' must be at most 1000")
    _one_line_exit_2(capsys, ["calibrate", "--dataset", "svhn", *results],
                     "--dataset 'svhn': expected one of fashion-mnist")
    (tmp_path / "empty").mkdir()
    _one_line_exit_2(capsys, ["calibrate", "--dataset", "mnist", "--data-dir",
                              str(tmp_path / "empty"), *results],
                     "does not hold dataset 'mnist': missing")
    assert not (tmp_path / "r").exists()
    search = tmp_path / "search"
    search.mkdir()
    (search / "run.json").write_text(json.dumps({"kind": "search", "config": {"x": 1}}))
    _one_line_exit_2(capsys, ["calibrate", "--resume", str(search)], "not a calibration run")
