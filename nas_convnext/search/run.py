"""`run_search`: one search (or its resumption), from its settings to its table.

It checks everything a user can get wrong before the run folder exists, makes the folder,
its lock and run.json together, opens the Optuna study, hands the trials to Ray Tune
(`raytune.run_trials`) and writes the final table and run.json, whatever stopped it.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..design.complexity import complexity
from ..design.space import DesignSpace, load_space
from ..results import (
    RUN_JSON,
    STUDY_FILE,
    RunLock,
    check_run_name,
    command_line,
    folder_holds_a_run,
    is_cut_short,
    machine_info,
    package_versions,
    read_run_json,
    read_table,
    unknown_columns_note,
    write_failure,
    write_run_json,
    write_table,
)
from ..training.proxy import get_proxy
from . import faults, raytune
from .config import SearchConfig, check_storage_path, config_from_run_json
from .resume import (
    check_study_file,
    naming_run_json,
    restore_row,
    resume_overrides,
    work_left,
)
from .searcher import (
    Candidate,
    check_budget,
    make_sampler,
    open_study,
    reference_candidates,
)
from .signals import StopSignals, signal_name


def default_run_name(space: DesignSpace, budget: float) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{space.name}-{budget / 1e9:g}G"


@dataclass
class SearchOutcome:
    run_dir: Path
    table: Any                 # pandas DataFrame
    interrupted: bool          # stopped by a signal (Ctrl-C, SIGTERM)
    resume_command: str
    stopped_by: str | None = None   # "SIGINT", "SIGTERM" or "time budget"; None: all done
    cut_short: int = 0              # trials recorded as cut short by the stop
    notes: tuple[str, ...] = ()     # what the user should know (a grid that ran out)


def roadmap_candidates() -> list[Candidate]:
    from ..design.roadmap import roadmap_steps

    out = []
    for step in roadmap_steps():
        c = complexity(step.arch)
        out.append(Candidate(step.arch, c.flops, c.params, False, step.name, step.recipe))
    return out


def run_search(cfg: SearchConfig, resume_dir: str | Path | None = None,
               on_start: Callable[[Path], None] | None = None,
               fixed: list[Candidate] | None = None) -> SearchOutcome:
    """Run (or resume) a search; returns the run folder and its table.

    With `fixed`, the run trains exactly those designs (the roadmap replay) and no others:
    no reference points, no Optuna proposals.

    SIGINT and SIGTERM stop it cleanly (see `StopSignals`): once run.json exists, the outcome
    says which signal stopped the run and the table holds every trial that reported an epoch;
    before that, the KeyboardInterrupt (or `Terminated`) propagates and nothing is left behind.
    """
    signals = StopSignals().install()
    try:
        return _run_search(cfg, resume_dir, on_start, fixed, signals)
    finally:
        signals.restore()


def _run_search(cfg: SearchConfig, resume_dir: str | Path | None,
                on_start: Callable[[Path], None] | None, fixed: list[Candidate] | None,
                signals: StopSignals) -> SearchOutcome:

    fault = faults.from_environment()
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        meta = read_run_json(run_dir)
        cfg = config_from_run_json(run_dir / RUN_JSON, meta["config"], resume_overrides(cfg))
        prior = read_table(run_dir) if (run_dir / "trials.parquet").exists() else None
        check_study_file(run_dir / STUDY_FILE)
        note = unknown_columns_note(run_dir, prior.columns) if prior is not None else None
        if note:
            print(note, file=sys.stderr)
    else:
        meta, prior = None, None
    # On a resume every setting comes from run.json: an error about one names the file.
    named = functools.partial(naming_run_json, run_dir if resume_dir is not None else None)
    with named("space"):
        space = load_space(cfg.space)
    with named("proxy"):
        proxy = get_proxy(cfg.proxy, epochs=cfg.epochs)
    if fixed is None and (meta or {}).get("kind") == "roadmap":
        fixed = roadmap_candidates()
    if fixed is None:  # a roadmap replay has no budget
        with named("budget"):
            check_budget(space, cfg.budget, cfg.fit_width)
    with named("sampler"):
        sampler = make_sampler(cfg.sampler, cfg.seed, space)
    with named("storage_path"):
        check_storage_path(cfg.storage_path)
    from ..training.trial import check_resolution, load_proxy_data

    if resume_dir is None:
        name = cfg.name or default_run_name(space, cfg.budget)
        check_run_name(name)
        run_dir = Path(cfg.results_dir) / name
        _check_free(run_dir)
    # Everything a user can get wrong is checked before the run folder exists.
    with named("dataset"):
        data = load_proxy_data(cfg.dataset, cfg.data_dir, proxy)
    refs = reference_candidates(cfg.budget) if fixed is None else list(fixed)
    with named("proxy"):
        for cand in refs:
            check_resolution(cand.arch, proxy.resolution)
    faults.at(fault, "ray-init")
    started_ray, lock, created = False, None, False
    try:
        with signals.deferred():
            started_ray = raytune.init_ray(cfg)
        signals.install()  # again: Ray may have put its own SIGTERM handler in place
        raytune.check_resources(cfg)
        rows: list[dict[str, Any]] = []
        if prior is not None:  # errors and trials cut short are trained again
            kept = prior[prior["status"] != "error"]
            rows = [r for r in map(restore_row, kept.to_dict("records")) if not is_cut_short(r)]
        run_info = {"kind": "search" if fixed is None else "roadmap",
                    "command": command_line(), "config": cfg.to_dict(),
                    "space": {"name": space.name, "source": space.source,
                              "dimensions": {k: [str(v) for v in vals]
                                             for k, vals in space.dimensions.items()}},
                    "budget_flops": cfg.budget, "proxy": proxy.to_dict(), "seed": cfg.seed,
                    "versions": package_versions(), "machine": machine_info(),
                    "references": [c.reference for c in refs],
                    "optuna_storage": STUDY_FILE,
                    "started": (meta or {}).get("started", time.strftime("%Y-%m-%dT%H:%M:%S")),
                    "resumed": ((meta or {}).get("resumed", 0) + 1) if meta else 0}
        end = raytune.TuneEnd()
        try:
            # The folder, its lock and run.json come into being together: a run folder is
            # either absent or holds run.json, whatever moment a signal comes.
            with signals.deferred():
                created = not run_dir.exists()
                lock = _take_folder(run_dir, resume_dir is not None)
                faults.at(fault, "run-folder")
                try:
                    write_run_json(run_dir, run_info)
                    if prior is not None:
                        write_table(run_dir, rows)
                except OSError as exc:
                    raise write_failure(run_dir, exc) from None
            faults.at(fault, "study")
            with signals.deferred():
                study = open_study(run_dir, sampler)
            pending, done, proposed = work_left(study, rows, refs)
            if on_start is not None:
                on_start(run_dir)
            remaining = len(pending) + max(0, cfg.trials - proposed)
            if remaining > 0:
                end = raytune.run_trials(cfg, proxy, space, study, data, run_dir, rows, pending, done,
                            proposed, fault, signals)
        except KeyboardInterrupt as exc:  # before or after the trials ran: none was cut
            end = dataclasses.replace(end, stopped_by=signal_name(exc))
        with signals.deferred():
            try:
                table = write_table(run_dir, rows)
                run_info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                run_info["interrupted"] = end.stopped_by in ("SIGINT", "SIGTERM")
                run_info["stopped_by"] = end.stopped_by
                run_info["cut_short"] = end.cut
                if end.exhausted:
                    run_info["space_exhausted"] = True
                write_run_json(run_dir, run_info)
            except OSError as exc:
                raise write_failure(run_dir, exc) from None
    finally:
        if lock is not None:
            lock.release()
        if created and not (run_dir / RUN_JSON).exists():
            _remove_if_empty(run_dir)
        if started_ray:
            import ray

            ray.shutdown()
    resume = f"nas-convnext search --resume {run_dir}"
    notes = ()
    if end.exhausted:
        notes = (_exhausted_note(cfg, space, table),)
    return SearchOutcome(run_dir, table, end.stopped_by in ("SIGINT", "SIGTERM"), resume,
                         end.stopped_by, end.cut, notes)


def _exhausted_note(cfg: SearchConfig, space: DesignSpace, table) -> str:
    searched = int((table["reference"] == "").sum()) if len(table) else 0
    what = (f"the grid of space {space.name!r} ({space.size} points) is done"
            if cfg.sampler == "grid" else
            f"the sampler found no new design in space {space.name!r}")
    return (f"{what}: {searched} searched design(s) trained, fewer than the {cfg.trials} "
            "asked (--trials)")


def _check_free(run_dir: Path) -> None:
    """Refuse a new run's name when its folder holds anything of a run (or anything else)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} exists and is not a folder: choose another --name")
    if not folder_holds_a_run(run_dir):
        return
    if not (run_dir / RUN_JSON).exists() and not (run_dir / "trials.parquet").exists():
        raise ValueError(f"{run_dir} already exists and holds no run (no run.json, no trials "
                         "table): remove it, or choose another --name")
    raise ValueError(f"{run_dir} already exists: choose another --name, or resume it "
                     f"with --resume {run_dir}")


def _take_folder(run_dir: Path, resuming: bool) -> RunLock:
    """Make the run folder (if new) and lock it; a ValueError when it cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return RunLock(run_dir).acquire()
    except OSError as exc:  # a read-only folder, or one that is not ours
        fix = ("make it writable, or copy the run somewhere writable and resume the copy"
               if resuming else "choose a writable --results-dir")
        raise ValueError(f"cannot write in {run_dir}: {exc.strerror or exc}; {fix}") from None


def _remove_if_empty(run_dir: Path) -> None:
    """A run folder this search made and left empty (it stopped before run.json): removed."""
    try:
        run_dir.rmdir()
    except OSError:
        pass
