"""Replay tables: loading and refusing, lookup, replayed trials and the simulated clocks."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from nas_convnext.design.arch import Arch, presets
from nas_convnext.design.space import load_space
from nas_convnext.search.mo_asha import MOASHA
from nas_convnext.search.replay import (
    ReplayTable,
    SimulatedClock,
    compute_used,
    replay_trial,
    simulate_run,
)

EPOCHS = 4


def _curve(arch: Arch) -> list[tuple[int, float, float]]:
    """A made-up learning curve: LN and kernel 7 learn faster; deeper designs cost more."""
    base = 0.3 + 0.1 * (arch.norm == "ln") + 0.05 * (arch.kernel == 7)
    per_epoch = 2.0 * sum(arch.depths) + (3.0 if arch.spatial_conv == "first" else 0.0)
    return [(e, round(base + 0.1 * e, 4), per_epoch * e) for e in range(1, EPOCHS + 1)]


def _frame(archs, drop_last_epoch_of=None, diverged=None) -> pd.DataFrame:
    rows = []
    for arch in archs:
        curve = _curve(arch)
        if drop_last_epoch_of is not None and arch == drop_last_epoch_of:
            curve = curve[:-1]
        status = "diverged" if diverged is not None and arch == diverged else "completed"
        for epoch, top1, secs in curve:
            rows.append({**arch.to_row(), "epoch": epoch, "top1": top1, "seconds": secs,
                         "status": status})
    df = pd.DataFrame(rows)
    for col in ("width", "kernel"):   # trials.parquet's encoding (results.rows_to_frame)
        df[col] = df[col].astype("Int64")
    return df


@pytest.fixture(scope="module")
def small_designs():
    return list(load_space("small").enumerate())


@pytest.fixture(scope="module")
def table_file(small_designs, tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "table.parquet"
    archs = small_designs[1:] + [presets()["convnext_t"]]   # the first design left out
    _frame(archs, diverged=small_designs[3]).to_parquet(path, index=False, compression="zstd")
    return path


def test_lookup_gives_the_recorded_curve(table_file, small_designs):
    table = ReplayTable.load(table_file)
    assert len(table) == 16                                   # 15 of small + convnext_t
    for arch in (small_designs[5], presets()["convnext_t"]):
        assert arch in table
        assert table.lookup(arch) == _curve(arch)
    # the same design given another way (from its table cells) finds the same curve
    again = Arch.from_row(small_designs[5].to_row())
    assert table.lookup(again) == _curve(small_designs[5])


def test_a_design_the_table_lacks_is_refused_in_one_line(table_file, small_designs):
    table = ReplayTable.load(table_file)
    missing = small_designs[0]
    with pytest.raises(ValueError) as info:
        table.lookup(missing)
    text = str(info.value)
    assert "\n" not in text and str(table_file) in text
    assert f"depths={missing.to_row()['depths']}" in text and f"kernel={missing.kernel}" in text
    with pytest.raises(ValueError, match="is not in replay table"):
        table.check(small_designs)
    with pytest.raises(ValueError, match="is not in replay table"):
        replay_trial(missing, table)


@pytest.mark.parametrize("damage, message", [
    (lambda df: df.drop(columns=["seconds"]), r"lacks column\(s\) \['seconds'\]"),
    (lambda df: df.assign(top1=df["top1"] * 10), r"top1=.* must be a fraction"),
    (lambda df: df[df["epoch"] != 2], r"has epochs \[1, 3, 4\]"),
    (lambda df: df.assign(seconds=df["seconds"][::-1].to_numpy()), "seconds fall"),
    (lambda df: df.assign(kernel=4), r"invalid kernel=4"),
    (lambda df: df.assign(epoch="x"), r"epoch='x' is not a number"),
])
def test_damaged_tables_are_refused_in_one_line(tmp_path, small_designs, damage, message):
    path = tmp_path / "bad.parquet"
    damage(_frame(small_designs[:3])).to_parquet(path, index=False)
    with pytest.raises(ValueError, match=message) as info:
        ReplayTable.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    path = tmp_path / "table.parquet"
    path.write_text("epoch,top1\n1,0.5\n")
    with pytest.raises(ValueError, match="not a parquet file"):
        ReplayTable.load(path)
    with pytest.raises(ValueError, match="cannot be read"):
        ReplayTable.load(tmp_path / "absent.parquet")


def test_replay_trial_reports_each_epoch_like_training(table_file, small_designs):
    table = ReplayTable.load(table_file)
    arch = small_designs[7]
    seen = []
    result = replay_trial(arch, table, report=seen.append, epochs=3)
    assert [(m["epoch"], m["top1"], m["elapsed_s"]) for m in seen] == _curve(arch)[:3]
    assert result.status == "completed" and result.epochs == 3
    assert result.top1 == _curve(arch)[2][1] and result.compute_s == _curve(arch)[2][2]

    class Stop(Exception):
        pass

    def stop_after_two(metrics):
        if metrics["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):            # as Ray Tune stops a trial: the exception propagates
        replay_trial(arch, table, report=stop_after_two)
    with pytest.raises(ValueError, match="has 4 epoch"):
        replay_trial(arch, table, epochs=5)


def test_a_recorded_divergence_replays_as_one(tmp_path, small_designs):
    path = tmp_path / "t.parquet"
    bad = small_designs[2]
    _frame(small_designs[:3], drop_last_epoch_of=bad, diverged=bad).to_parquet(path)
    result = replay_trial(bad, ReplayTable.load(path), epochs=4)
    assert result.status == "diverged" and result.epochs == 3


def test_simulated_clock_starts_each_trial_when_a_worker_is_free():
    clock = SimulatedClock(concurrency=2)
    spans = [clock.add(s) for s in (10, 4, 3, 5)]
    assert spans == [(0, 10), (0, 4), (4, 7), (7, 12)]
    assert clock.elapsed == 12 and clock.compute == 22
    with pytest.raises(ValueError, match="concurrency=0"):
        SimulatedClock(0)


def _run(table, designs, seed, concurrency=2, scheduler=True):
    rng = random.Random(seed)
    core = MOASHA(max_t=EPOCHS)
    decide = None
    if scheduler:
        def decide(trial, epoch, top1):
            gflops = float(sum(trial.arch.depths) * trial.arch.kernel)  # any fixed cost
            return core.goes_on(str(trial.number), epoch, top1, gflops)
    return simulate_run(table, lambda n: rng.choice(designs), trials=12, epochs=EPOCHS,
                        concurrency=concurrency, decide=decide)


def test_same_seed_replays_the_same_run(table_file, small_designs):
    table = ReplayTable.load(table_file)
    designs = small_designs[1:]

    def summary(trials):
        return [(t.arch.key(), t.start, t.end, t.epochs, t.stopped) for t in trials]

    first = _run(table, designs, seed=3)
    assert summary(first) == summary(_run(table, designs, seed=3))
    assert summary(first) != summary(_run(table, designs, seed=4))
    assert any(t.stopped for t in first)                    # the scheduler did stop some
    # a stopped trial cost its curve up to the epoch it stopped at, and freed its worker then
    for t in first:
        assert t.end - t.start == pytest.approx(_curve(t.arch)[t.epochs - 1][2])
    assert compute_used(first) < compute_used(_run(table, designs, seed=3, scheduler=False))


def test_simulated_run_hands_workers_on_in_time_order(table_file, small_designs):
    table = ReplayTable.load(table_file)
    order = [small_designs[1], small_designs[2], small_designs[9]]
    trials = simulate_run(table, lambda n: order[n] if n < len(order) else None, trials=10,
                          epochs=2, concurrency=2)
    costs = [_curve(a)[1][2] for a in order]
    assert [t.start for t in trials] == [0.0, 0.0, min(costs[0], costs[1])]
    assert trials[2].end == min(costs[0], costs[1]) + costs[2]
    assert all(not t.stopped and t.epochs == 2 for t in trials)


def test_cached_table_reads_a_file_once_per_version(tmp_path, small_designs):
    from nas_convnext.search.replay import cached_table

    path = tmp_path / "t.parquet"
    _frame(small_designs[:2]).to_parquet(path)
    first = cached_table(path)
    assert cached_table(path) is first and len(first) == 2
    _frame(small_designs[:3]).to_parquet(path)      # a new version of the file
    assert len(cached_table(path)) == 3


def test_the_builders_table_is_encoded_as_trials_parquet_and_replays(tmp_path, small_designs):
    from bench.build_table import write_table
    from nas_convnext.design.arch import FIELD_NAMES
    from nas_convnext.results import rows_to_frame

    archs = [small_designs[0], presets()["resnet50"]]
    records = [{"key": a.key(), "design": a.to_dict(), "status": "completed",
                "history": [{"epoch": e, "top1": t, "seconds": s} for e, t, s in _curve(a)]}
               for a in archs]
    records.append({"key": "x", "design": small_designs[1].to_dict(), "status": "error",
                    "history": []})                 # a design that failed is left out
    path = tmp_path / "built.parquet"
    written = write_table(records, path)
    trials = rows_to_frame([a.to_row() for a in archs])
    for col in FIELD_NAMES:
        assert written[col].dtype == trials[col].dtype, col
    table = ReplayTable.load(path)
    assert len(table) == 2 and small_designs[1] not in table
    assert table.lookup(presets()["resnet50"]) == _curve(presets()["resnet50"])
