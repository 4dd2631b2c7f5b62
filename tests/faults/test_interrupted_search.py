"""A search interrupted at three moments, then resumed: the same designs as without interruption.

The interrupted runs are real `nas-convnext search` processes that receive SIGINT (as from
Ctrl-C) through the test hook NAS_CONVNEXT_FAULT=interrupt:K, sent when trial K has reported
the first of its two epochs, so the moment is exact on any machine; the resumption is
`run_search(resume_dir=...)`, what `--resume` calls, in the suite's Ray. A searcher-level test
without Ray goes past TPE's ten random start-up trials, where each proposal depends on every
outcome told before it.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import sys
import warnings

import optuna
import pandas as pd
import pytest

from nas_convnext.design.arch import Arch
from nas_convnext.design.space import load_space
from nas_convnext.results import read_table
from nas_convnext.search import SearchConfig, run_search
from nas_convnext.search.resume import work_left
from nas_convnext.search.searcher import StudySearcher, make_sampler, proposal_sampler
from nas_convnext.training.proxy import get_proxy

TRIALS = 4                # searched designs; with the two reference points, 6 trials in all
TOTAL = TRIALS + 2
CLI_ARGS = ["--space", "small", "--trials", str(TRIALS), "--proxy", "cpu-tiny", "--dataset", "synthetic", "--epochs", "2",
            "--scheduler", "none", "--concurrency", "1", "--seed", "3", "--budget", "4.5G"]


def _keys(df: pd.DataFrame) -> list[str]:
    return [Arch.from_row(r).key() for r in df.to_dict("records")]


def _study_trials(run_dir) -> list[tuple]:
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{run_dir / 'study.db'}")
    return [(t.number, t.state.name, sorted(t.params.items()), t.values) for t in study.trials]


@pytest.fixture(scope="module")
def uninterrupted(ray_session, tmp_path_factory):
    cfg = SearchConfig(space="small", trials=TRIALS, proxy="cpu-tiny", epochs=2, dataset="synthetic",
                       scheduler="none", concurrency=1, seed=3, budget=4.5e9,
                       results_dir=str(tmp_path_factory.mktemp("runs")), name="whole")
    out = run_search(cfg)
    assert not out.interrupted and len(out.table) == TOTAL
    assert (out.table["status"] == "completed").all()
    return out


def _cli(args: list[str], fault: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "NAS_CONVNEXT_FAULT")}
    env["NAS_CONVNEXT_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "nas_convnext.cli", "search", *args],
                          capture_output=True, text=True, env=env, timeout=300)


# The middle and last moments take 45 s each and fail only where the first one does (the same
# resume code, a later trial): they run with `-m slow`, keeping the default suite short.
@pytest.mark.parametrize("moment", [1, pytest.param(TOTAL // 2 + 1, marks=pytest.mark.slow),
                                    pytest.param(TOTAL, marks=pytest.mark.slow)],
                         ids=["before-the-first-trial-ends", "middle", "while-the-last-runs"])
def test_interrupted_then_resumed_matches_the_uninterrupted_run(uninterrupted, tmp_path, moment,
                                                                capsys):
    run_dir = tmp_path / "cut"
    p = _cli([*CLI_ARGS, "--results-dir", str(tmp_path), "--name", "cut"], f"interrupt:{moment}")
    assert p.returncode == 130, p.stderr
    assert f"--resume {run_dir}" in p.stdout
    assert not (run_dir / ".lock").exists()
    table = read_table(run_dir)
    # One trial at a time: exactly the trials started before trial `moment` are finished, and
    # trial `moment`, which had reported epoch 1 of 2, is kept as cut short.
    cut = table["error"].str.startswith("cut short:")
    before, cut = table[~cut], table[cut]
    assert len(before) == moment - 1 and (before["status"] == "completed").all()
    assert cut["status"].tolist() == ["stopped_early"] and cut["epochs"].tolist() == [1]
    assert cut["order"].tolist() == [moment]

    capsys.readouterr()
    out = run_search(SearchConfig(budget=4.5e9), resume_dir=run_dir)  # as `--resume` does
    assert not out.interrupted
    progress = capsys.readouterr().err
    after = read_table(run_dir)
    whole = uninterrupted.table

    assert len(after) == TOTAL and after["trial_id"].is_unique
    assert len(set(_keys(after))) == TOTAL  # no design twice
    assert sorted(_keys(after)) == sorted(_keys(whole))
    # The same designs reached the same top-1 (same proxy, same seed).
    top1 = dict(zip(_keys(whole), whole["top1"]))
    assert [top1[k] for k in _keys(after)] == after["top1"].tolist()
    # Completed trials were kept as they were, and the resumed run trained only the rest:
    # one progress line per trained trial.
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    assert kept["wall_s"].tolist() == before["wall_s"].tolist()
    assert not set(cut["trial_id"]) & set(after["trial_id"])  # the cut trial trained again
    trained = re.findall(r"^\[(\d+)/(\d+)\]", progress, flags=re.M)
    assert len(trained) == TOTAL - len(before)
    assert {int(n) for _, n in trained} == {TOTAL - len(before)}
    # The study holds the same trials, numbered as in the uninterrupted run, none failed.
    assert _study_trials(run_dir) == _study_trials(uninterrupted.run_dir)


# ----- past TPE's start-up trials, without Ray -----
BUDGET = 4.5e9
SEARCHED = 14             # TPE proposes at random for its first 10 trials, from the model after
SEED = 11


def _fake_top1(arch: Arch) -> float:
    """A deterministic stand-in for training: a different value for every design."""
    return int(hashlib.sha256(arch.key().encode()).hexdigest()[:8], 16) / 2**32


def _simulate(storage: str, cut: int | None = None, lost_row: bool = False,
              sampler_name: str = "tpe", space_name: str = "convnext",
              searched: int = SEARCHED) -> tuple[list[str], list[tuple]]:
    """Drive the searcher as Ray Tune would, one trial at a time.

    Returns the trained designs, in order, and the study's trials (number, state, params).

    `cut`: the process dies while the cut-th searched trial (0-based) trains (or, with
    `lost_row`, after its outcome reached the study but before its row reached the table);
    a new searcher then resumes from the table (`rows`) and the study, as `run_search` does.
    """
    space = load_space(space_name)
    base = {"proxy": get_proxy("cpu-tiny").to_dict(), "seed": SEED, "order_start": 0}
    rows: list[dict] = []

    def searcher():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(study_name="search", storage=storage,
                                        sampler=make_sampler(sampler_name, SEED, space),
                                        directions=["maximize", "minimize"], load_if_exists=True)
        pending, done, proposed = work_left(study, rows, [])
        sampler = functools.partial(proposal_sampler, sampler_name, SEED, space)
        return StudySearcher(study, space, BUDGET, True, searched, pending, done, base, 1,
                                 proposed, sampler)

    s = searcher()
    n = 0
    while True:
        cfg = s.suggest(f"t{n}")
        if cfg is None:  # finished
            break
        arch = Arch.from_row(cfg["arch"])
        if n == cut and not lost_row:
            s, cut = searcher(), None    # the trial in flight dies with the process
            continue
        s.on_trial_complete(f"t{n}", {"top1": _fake_top1(arch), "epoch": 1})
        if n == cut:
            s, cut = searcher(), None    # told to the study, but its row never written
            continue
        rows.append({**arch.to_row(), "reference": "", "status": "completed",
                     "top1": _fake_top1(arch), "flops": cfg["flops"]})
        n += 1
    study = optuna.load_study(study_name="search", storage=storage)
    trials = [(t.number, t.state.name, sorted(t.params.items())) for t in study.trials]
    return [Arch.from_row(r).key() for r in rows], trials


@pytest.mark.parametrize("cut,lost_row", [(0, False), (6, False), (12, False), (12, True)],
                         ids=["first", "random-phase", "model-phase", "row-lost"])
def test_resumed_proposals_past_the_startup_trials(tmp_path, cut, lost_row):
    whole, whole_study = _simulate(f"sqlite:///{tmp_path / 'whole.db'}")
    assert len(whole) == SEARCHED and len(set(whole)) == SEARCHED
    resumed, resumed_study = _simulate(f"sqlite:///{tmp_path / 'cut.db'}", cut=cut,
                                       lost_row=lost_row)
    assert resumed == whole  # the same designs, in the same order
    assert resumed_study == whole_study  # and no extra trial in the study


@pytest.mark.parametrize("sampler_name,space_name,searched", [
    ("nsga2", "convnext", 12),   # past its first generation of 8, children of earlier trials
    ("random", "convnext", 6),
    ("grid", "small", 10),       # the grid sampler needs a small space
])
def test_resumed_proposals_with_every_sampler(tmp_path, sampler_name, space_name, searched):
    kw = dict(sampler_name=sampler_name, space_name=space_name, searched=searched)
    whole, whole_study = _simulate(f"sqlite:///{tmp_path / 'whole.db'}", **kw)
    assert len(whole) == searched and len(set(whole)) == searched
    resumed, resumed_study = _simulate(f"sqlite:///{tmp_path / 'cut.db'}", cut=searched - 2,
                                       **kw)
    assert resumed == whole
    assert resumed_study == whole_study
