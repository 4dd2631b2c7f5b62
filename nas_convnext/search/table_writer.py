"""`TableWriter`: the trials table written after every finished trial, and the time budget
(a plain class: `raytune` makes it a Ray Tune callback, so a crash loses at most the trials
in flight)."""
from __future__ import annotations

import errno
import logging
import math
import os
import stat
import time
from pathlib import Path
from typing import Any

from ..results import (
    cut_short_note,
    write_table,
)
from . import faults
from .outcome import TrialOutcome, trial_row
from .progress import Progress


class TableWriter:
    """Writes the trials table after every finished trial, and owns the time budget.

    It also remembers each running trial's last reported result, so that when the whole
    run stops (time budget, Ctrl-C, SIGTERM) the trials in flight that reported an epoch
    can be recorded as cut short (`cut_short`), with the metrics of their last epoch.
    """

    def __init__(self, run_dir: Path, rows: list[dict[str, Any]], planned_epochs: int,
                 progress: "Progress", deadline: float = math.inf, clock=None,
                 time_budget_s: float | None = None):
        self.run_dir, self.rows, self.planned = run_dir, rows, planned_epochs
        self.clock, self.time_budget_s = clock, time_budget_s  # a replayed run's clock
        self.progress = progress
        self.deadline = deadline  # time.time() at which the time budget is spent
        self.started: dict[str, float] = {}
        self.running: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
        self.write_error: OSError | None = None  # a full disk or a read-only folder
        self.folder = _identity(run_dir)
        self.gone = False  # the run folder was removed or replaced while the search ran
        self.quieted: dict[str, int] = {}

    def on_step_begin(self, iteration, trials, **info):
        if not self.gone and _identity(self.run_dir) != self.folder:
            self.gone = True
            self.write_error = self.write_error or OSError(
                errno.ENOTDIR, "Not a directory", str(self.run_dir / "trials.parquet"))
            # Tune's own writes into the folder (ray/) now fail and log tracebacks until
            # the stop: the one line the search prints says what happened instead.
            for name in ("ray.tune", "ray.train", "ray.air"):
                logger = logging.getLogger(name)
                self.quieted.setdefault(name, logger.level)
                logger.setLevel(logging.CRITICAL + 1)

    def restore_logging(self) -> None:
        for name, level in self.quieted.items():
            logging.getLogger(name).setLevel(level)
        self.quieted.clear()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()
        self.running[trial.trial_id] = (trial.config, None)
        self.progress.update(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.running[trial.trial_id] = (trial.config, dict(result))
        self.progress.update(trials)
        if faults.in_driver(trial.config, result, self.run_dir) == "expire":
            self.deadline = -math.inf

    def _record(self, row: dict[str, Any], trials) -> None:
        self.running.pop(row["trial_id"], None)
        self.rows.append(row)
        if self.write_error is None:
            try:
                write_table(self.run_dir, self.rows)
            except OSError as exc:  # the last good table stays; the search stops
                self.write_error = exc
        self.progress.finished(row, trials)

    def _finish(self, trial, error_text: str, error: bool, trials) -> None:
        outcome = TrialOutcome.of(trial.last_result, error, self.planned, error_text)
        wall = self._wall(trial.trial_id, trial.last_result)
        if self.clock is not None:
            self.clock.add(wall)
        self._record(trial_row(trial.config, outcome, wall, trial.trial_id), trials)

    def _wall(self, trial_id: str, result: dict[str, Any] | None) -> float:
        """The trial's seconds: measured, or the recorded ones of a replayed trial."""
        if self.clock is not None:
            value = float((result or {}).get("elapsed_s", 0.0) or 0.0)
            return value if math.isfinite(value) and value >= 0 else 0.0
        return time.time() - self.started.get(trial_id, time.time())

    def expired(self) -> bool:
        if self.deadline == -math.inf:
            return True
        if self.clock is not None:
            return self.time_budget_s is not None and self.clock.elapsed >= self.time_budget_s
        return time.time() >= self.deadline

    def stop_all(self) -> bool:  # asked by the stopper after every step
        return self.write_error is not None or self.expired()

    def unfinished(self) -> int:
        """Trials started and not finished (with or without a reported epoch)."""
        return len(self.running)

    def cut_short(self, reason: str) -> int:
        """Record the trials in flight that reported an epoch as cut short by `reason`;
        returns how many. Those without an epoch have nothing to record: a resume trains
        them (their Optuna trials are still RUNNING)."""
        n = 0
        for trial_id, (config, result) in sorted(self.running.items(),
                                                 key=lambda kv: kv[1][0]["order"]):
            epochs = int((result or {}).get("epoch", 0) or 0)
            if epochs < 1 or result.get("status") == "diverged":
                continue
            wall = self._wall(trial_id, result)
            note = cut_short_note(reason, epochs, self.planned)
            outcome = TrialOutcome.of(result, False, self.planned).cut_short(note)
            self._record(trial_row(config, outcome, wall, trial_id), [])
            n += 1
        return n

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, "", False, trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, _error_text(trial), True, trials)


def _error_text(trial) -> str:
    text = ""
    try:  # the local error file is written before callbacks run; storage may lag behind
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace")
        if not text:
            text = trial.get_error() or ""
    except Exception:  # noqa: BLE001 - a missing message must not stop the search
        pass
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return "the trial failed (its worker process died or was killed)"
    # The last line of a traceback names the exception; worker deaths say so in their text.
    for ln in reversed(lines):
        if "Error" in ln or "died" in ln or "killed" in ln.lower():
            return ln[:500]
    return lines[-1][:500]


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None if it is not one: a folder removed and made again
    (Tune makes its own subfolder again) is not the same folder."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
