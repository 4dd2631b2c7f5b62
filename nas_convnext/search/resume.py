"""Resuming a run: its settings from run.json, its rows and study read back, what is left.

A resumed run keeps every row, trains the designs that were in flight under their own Optuna
trials (`searcher.unfinished_proposals`), and refuses, before Ray starts, a damaged study.db
or run.json with one line naming the file and the field.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..results import (
    RUN_JSON,
)
from .config import SearchConfig
from .objective import Objective
from .outcome import told_from_row
from .searcher import Candidate, Queued, TrialKey, row_key, unfinished_proposals


@contextmanager
def naming_run_json(run_dir: Path | None, field: str):
    """On a resume, errors about a setting read from run.json name the file and the field."""
    try:
        yield
    except ValueError as exc:
        if run_dir is None:
            raise
        raise ValueError(f"{run_dir / RUN_JSON}: field 'config.{field}': {exc}") from None


def check_study_file(path: Path) -> None:
    """Refuse, before Ray starts, a study.db that is not a whole Optuna study.

    Opened read-only with sqlite3 itself: Optuna's storage would write to it (create tables,
    stamp versions) before failing, and would fail only once Ray had started.
    """
    import sqlite3

    if not path.exists():
        return  # a run stopped before its study was made: a resume makes it
    fix = "restore it from a copy, or start a new run"
    if not path.is_file():
        raise ValueError(f"{path} is not a file: {fix}")
    try:
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            check = con.execute("PRAGMA quick_check").fetchone()
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            names = ({r[0] for r in con.execute("SELECT study_name FROM studies")}
                     if "studies" in tables else set())
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ValueError(f"{path} is damaged and cannot be read ({exc}): {fix}") from None
    if not check or check[0] != "ok":
        raise ValueError(f"{path} is damaged ({check[0] if check else 'no answer'}): {fix}")
    if not tables and path.stat().st_size == 0:
        return  # made but never written: the study is created in it
    if "search" not in names:
        raise ValueError(f"{path} holds no Optuna study named 'search': it was not written by "
                         f"nas-convnext search; {fix}")


def resume_overrides(cfg: SearchConfig) -> dict[str, Any]:
    # Where the cluster is may change between the run and its resumption; the design of the
    # experiment may not.
    out: dict[str, Any] = {}
    if cfg.address:
        out["address"] = cfg.address
    return out


def restore_row(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    for k, v in out.items():
        if hasattr(v, "item"):
            out[k] = v.item()
    return out


def work_left(study, rows: list[dict[str, Any]], refs: list[Candidate], seed: int = 0,
              objective: Objective | None = None
              ) -> tuple[list[Queued], dict[TrialKey, dict], int]:
    """A run's state, read from its table and its study (both empty for a new run).

    `refs`: the run's fixed trials (reference points, roadmap steps, a calibration's steps x
    seeds); `seed`: the run's seed (`--seed`), that of every trial without its own;
    `objective`: the run's second objective, in which a trial left RUNNING is told its row.
    Returns what to train before any new proposal (fixed trials without a row, then the
    designs an interrupted run had chosen but not finished), the outcome of every trial with
    a row, by its identity (design key, seed), and how many searched designs count as
    proposed already. A fixed trial is known by its name and seed (two roadmap steps may be
    one design under two recipes), so none is trained twice.
    """
    done = {row_key(r, seed): told_from_row(r) for r in rows}
    done_refs = {(r["reference"], row_key(r, seed)[1]) for r in rows if r["reference"]}
    pending = [Queued(c) for c in refs if (c.reference, c.trial_seed(seed)) not in done_refs]
    unfinished = unfinished_proposals(study, done, seed, objective)
    proposed = sum(1 for r in rows if not r["reference"]) + len(unfinished)
    return pending + unfinished, done, proposed
