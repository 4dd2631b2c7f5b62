"""`search --replay TABLE`: whole searches on recorded trials (Optuna, Ray Tune, MO-ASHA,
the table), deterministic for a seed, and the refusals of a table that cannot answer."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from nas_convnext.cli import main
from nas_convnext.design.arch import REFERENCES, presets
from nas_convnext.design.space import load_space
from nas_convnext.search import SearchConfig, run_search

EPOCHS = 4


def _curve(arch):
    """A made-up curve per design: LN and kernel 7 learn faster, deeper designs cost more,
    and the first-epoch order differs from the last one's (so early stopping matters)."""
    base = 0.3 + 0.1 * (arch.norm == "ln") + 0.05 * (arch.kernel == 7) \
        - 0.04 * (sum(arch.depths) > 8)
    slope = 0.05 + 0.04 * (sum(arch.depths) > 8)
    per_epoch = 2.0 * sum(arch.depths) + (3.0 if arch.spatial_conv == "first" else 0.0)
    return [(e, round(base + slope * e, 4), per_epoch * e) for e in range(1, EPOCHS + 1)]


def _write_table(path, archs):
    rows = [{**a.to_row(), "epoch": e, "top1": t, "seconds": s}
            for a in archs for e, t, s in _curve(a)]
    df = pd.DataFrame(rows)
    for col in ("width", "kernel"):   # trials.parquet's encoding
        df[col] = df[col].astype("Int64")
    df.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_designs():
    return list(load_space("small").enumerate())


@pytest.fixture(scope="module")
def full_table(small_designs, tmp_path_factory):
    refs = [presets()[n] for n in REFERENCES]
    return _write_table(tmp_path_factory.mktemp("replay") / "full.parquet", small_designs + refs)


def _replayed(tmp_path, table, name, **kw):
    cfg = SearchConfig(**{**dict(space="small", trials=8, proxy="cpu-tiny", epochs=EPOCHS,
                                 budget=4.5e9, concurrency=1, fit_width=False, seed=3,
                                 replay=str(table), results_dir=str(tmp_path), name=name),
                          **kw})
    return run_search(cfg)


def test_replay_gives_the_same_table_for_the_same_seed(ray_session, tmp_path, full_table):
    a = _replayed(tmp_path, full_table, "a").table
    b = _replayed(tmp_path, full_table, "b").table
    cols = ["order", "reference", "depths", "kernel", "spatial_conv", "norm", "status",
            "epochs", "top1", "wall_s"]
    assert len(a) == 10                                   # 8 searched + 2 references
    pd.testing.assert_frame_equal(a[cols].sort_values("order").reset_index(drop=True),
                                  b[cols].sort_values("order").reset_index(drop=True))
    # every trial's top-1 and seconds are the table's at the epoch it reached
    small = {d.key(): d for d in load_space("small").enumerate()}
    refs = {presets()[n].key(): presets()[n] for n in REFERENCES}
    from nas_convnext.design.arch import Arch
    for row in a.to_dict("records"):
        arch = Arch.from_row(row)
        assert arch.key() in small or arch.key() in refs
        epoch, top1, secs = _curve(arch)[int(row["epochs"]) - 1]
        assert row["top1"] == pytest.approx(top1) and row["wall_s"] == pytest.approx(secs)
    # references are never stopped; MO-ASHA (the default) stopped some searched trial
    assert (a[a["reference"] != ""]["status"] == "completed").all()
    assert (a["status"] == "stopped_early").any()
    assert set(a["status"]) <= {"completed", "stopped_early"}
    import optuna
    study = optuna.load_study(study_name="search",
                              storage=f"sqlite:///{tmp_path / 'a' / 'study.db'}")
    pruned = {t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED}
    early = a[a["status"] == "stopped_early"]
    assert set(early["optuna_number"].astype(int)) <= pruned and pruned
    # the run's duration on the simulated clock: one worker, so the sum of the trials' seconds
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["simulated_s"] == pytest.approx(a["wall_s"].sum())


def _cli(capsys, *args):
    """The CLI in this process: every refusal below comes before Ray or training starts, so a
    subprocess (6 s of imports each) would check nothing more."""
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_table_lacking_a_design_is_refused_in_one_line(tmp_path, small_designs, capsys):
    refs = [presets()[n] for n in REFERENCES]
    table = _write_table(tmp_path / "lacking.parquet", small_designs[1:] + refs)
    rc, out, err = _cli(capsys, "search", "--space", "small", "--budget", "4.5GFLOPs", "--proxy",
                        "cpu-tiny", "--epochs", str(EPOCHS), "--replay", str(table),
                        "--name", "x", "--results-dir", str(tmp_path / "runs"))
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    missing = small_designs[0]
    assert "is not in replay table" in err and f"depths={missing.to_row()['depths']}" in err
    assert f"kernel={missing.kernel}" in err and f"norm={missing.norm}" in err
    assert not (tmp_path / "runs" / "x").exists()


def test_replay_refuses_fit_width_and_a_missing_reference(tmp_path, small_designs, capsys):
    table = _write_table(tmp_path / "norefs.parquet", small_designs + [presets()["convnext_t"]])
    common = ("search", "--space", "small", "--budget", "4.5GFLOPs", "--proxy", "cpu-tiny",
              "--epochs", str(EPOCHS), "--results-dir", str(tmp_path / "runs"))
    rc, _, err = _cli(capsys, *common, "--replay", str(table), "--fit-width")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--fit-width" in err
    # a replay table records no measured speed: a time objective or limit is refused
    for speed in (("--objective", "latency"), ("--latency-budget", "30ms")):
        rc, _, err = _cli(capsys, *common, "--replay", str(table), *speed)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert "records no measured speed" in err and "Traceback" not in err
    rc, _, err = _cli(capsys, *common, "--replay", str(table))
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "is not in replay table" in err and "depths=3,4,6,3" in err   # resnet50
