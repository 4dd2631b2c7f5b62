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
    one_line,
    package_versions,
    read_run_json,
    read_table,
    unknown_columns_note,
    write_failure,
    write_run_json,
    write_table,
)
from ..training.proxy import Proxy, get_proxy
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


def default_run_name(space: DesignSpace, budget: float | None) -> str:
    """The start time, the space and the budget: `20250131-120000-convnext-4.5G`."""
    limit = f"-{budget / 1e9:g}G" if budget is not None else ""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{space.name}{limit}"


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished (or stopped) run left: its folder, its table and how it ended."""

    run_dir: Path
    table: Any                 # pandas DataFrame
    interrupted: bool          # stopped by a signal (Ctrl-C, SIGTERM)
    resume_command: str
    stopped_by: str | None = None   # "SIGINT", "SIGTERM" or "time budget"; None: all done
    cut_short: int = 0              # trials recorded as cut short by the stop
    notes: tuple[str, ...] = ()     # what the user should know (a grid that ran out)
    kind: str = "search"            # "search", "roadmap", "calibration" or "ablation"
    seeds: tuple[int, ...] = ()     # a calibration's or an ablation's seeds


#: What a run trains: "search" (the two references and Optuna's proposals under a FLOP
#: budget), "roadmap" (exactly the paper's 17 steps, no budget, no proposals) or
#: "calibration" (the 17 steps under each of several seeds: a fixed list of (design, seed)
#: trials, recorded in run.json so that a resume rebuilds it) or "ablation" (a base design
#: and its one-change variants under each of several seeds, the plan recorded in run.json).
KINDS = ("search", "roadmap", "calibration", "ablation")


def roadmap_candidates() -> list[Candidate]:
    """The paper's roadmap steps as the designs a roadmap replay trains, in order."""
    from ..design.roadmap import roadmap_steps

    out = []
    for step in roadmap_steps():
        c = complexity(step.arch)
        out.append(Candidate(step.arch, c.flops, c.params, False, step.name, step.recipe))
    return out


def calibration_candidates(seeds: tuple[int, ...] | list[int]) -> list[Candidate]:
    """The roadmap's steps under each seed, seed by seed: a run stopped half way has whole
    seeds to show (each seed's ranking is a figure of the calibration on its own)."""
    steps = roadmap_candidates()
    return [dataclasses.replace(c, seed=int(seed)) for seed in seeds for c in steps]


def calibration_seeds(first: int, count: int) -> tuple[int, ...]:
    """Seeds `first` .. `first + count - 1`; a ValueError naming `--seeds` when count < 1."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--seeds {count!r}: expected a positive integer (how many seeds each "
                         "roadmap step is trained with)")
    if first + count - 1 > 2**32 - 1:
        raise ValueError(f"--seed {first} with --seeds {count}: the last seed would pass "
                         f"{2**32 - 1}")
    return tuple(range(first, first + count))


def ablation_candidates(record: dict[str, Any]) -> list[Candidate]:
    """An ablation's trials from its plan (run.json's ``ablation`` block, see
    `analysis.ablation.plan_record`): every design under each seed, seed by seed, so a run
    stopped half way has whole seeds of pairs. Each is named ``ablation/<variant id>`` (its
    identity with its seed, as for a calibration's steps). The designs are the recorded
    ones, not planned again: a resume trains exactly the list the run started with."""
    from ..design.arch import Arch

    try:
        designs = [(str(v["id"]), Arch.from_row(v["design"])) for v in record["variants"]]
        seeds = [int(x) for x in record["seeds"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the ablation's plan is damaged ({one_line(exc)})") from None
    if len({i for i, _ in designs}) != len(designs) or len(set(seeds)) != len(seeds):
        raise ValueError("the ablation's plan names a variant or a seed twice")
    out = []
    for arch_id, arch in designs:
        c = complexity(arch)
        out.append(Candidate(arch, c.flops, c.params, False, f"{ABLATION_TAG}{arch_id}"))
    return [dataclasses.replace(c, seed=s) for s in seeds for c in out]


#: The command that resumes a run of each kind (`search --resume` takes any).
_RESUME_COMMANDS = {"calibration": "calibrate", "ablation": "ablate"}

#: How the trials table names an ablation's designs (the `reference` column).
ABLATION_TAG = "ablation/"


def run_search(cfg: SearchConfig, resume_dir: str | Path | None = None,
               on_start: Callable[[Path], None] | None = None,
               kind: str = "search", seeds: int | None = None,
               ablation: dict[str, Any] | None = None) -> SearchOutcome:
    """Run (or resume) a search; returns the run folder, its table and how it ended.

    `cfg`: the settings (`SearchConfig`); on a resume only its `address` is used, the rest
    comes from the run's run.json. `resume_dir`: the folder of an interrupted run to finish,
    or None for a new run in `cfg.results_dir / cfg.name`. `on_start`: called with the run
    folder once it, its lock, run.json and the study exist (tests use it). `kind`: "search"
    (Optuna's proposals and the two reference points, under `cfg.budget`), "roadmap" (the
    paper's 17 steps and nothing else; `cfg.budget` None) or "calibration" (the 17 steps under
    `seeds` seeds, `cfg.seed` to `cfg.seed + seeds - 1`, default 2; `cfg.budget` None) or
    "ablation" (the designs of `ablation`, run.json's plan made by `analysis.ablation.
    plan_record`, each under each of its seeds; `cfg.trials` 0 and `cfg.scheduler` "none":
    every trial runs all its epochs); a resume takes the kind, and a calibration its seeds
    and an ablation its plan, from the run's run.json.

    Everything a user can get wrong is checked before the run folder exists, and raises
    ValueError with one line. SIGINT and SIGTERM stop the run cleanly (see `StopSignals`):
    once run.json exists, the outcome says which signal stopped it and the table holds every
    trial that reported an epoch; before that, the KeyboardInterrupt (or `Terminated`)
    propagates and nothing is left behind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    if seeds is not None and kind != "calibration":
        raise ValueError(f"seeds are a calibration's, not a {kind}'s")
    if kind == "ablation" and resume_dir is None and ablation is None:
        raise ValueError("an ablation needs its plan (ablation=analysis.ablation.plan_record(...))")
    if ablation is not None and kind != "ablation":
        raise ValueError(f"an ablation's plan was given to a {kind}")
    signals = StopSignals().install()
    try:
        plan = _prepare(cfg, resume_dir, kind, 2 if seeds is None else seeds, ablation)
        return _execute(plan, on_start, signals)
    finally:
        signals.restore()


@dataclass(frozen=True)
class _Plan:
    """A run checked and ready to start: everything decided before Ray or the folder."""

    cfg: SearchConfig
    kind: str
    run_dir: Path
    resuming: bool
    meta: dict[str, Any] | None      # run.json of the run being resumed
    prior: Any                       # its trials table (pandas), or None
    space: DesignSpace
    proxy: Proxy
    sampler: Any
    data: Any
    data_source: Any                 # training.trial.DataSource: where the images came from
    fixed: tuple[Candidate, ...]     # trained before any proposal: references, or the steps
    fault: str
    seeds: tuple[int, ...] = ()      # a calibration's or an ablation's seeds
    ablation: dict[str, Any] | None = None   # an ablation's plan (run.json's "ablation")


def _prepare(cfg: SearchConfig, resume_dir: str | Path | None, kind: str,
             n_seeds: int = 2, ablation: dict[str, Any] | None = None) -> _Plan:
    """Read and check everything a run needs, in the order a user's mistakes are cheapest to
    report: settings, space, proxy, budget, sampler, storage, name, data, resolution."""
    meta = prior = None
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        meta = read_run_json(run_dir)
        cfg = config_from_run_json(run_dir / RUN_JSON, meta["config"], resume_overrides(cfg))
        prior = read_table(run_dir) if (run_dir / "trials.parquet").exists() else None
        check_study_file(run_dir / STUDY_FILE)
        note = unknown_columns_note(run_dir, prior.columns) if prior is not None else None
        if note:
            print(note, file=sys.stderr)
        kind = meta.get("kind", "search")
    # On a resume every setting comes from run.json: an error about one names the file.
    named = functools.partial(naming_run_json, run_dir if resume_dir is not None else None)
    with named("space"):
        space = load_space(cfg.space)
    with named("proxy"):
        proxy = get_proxy(cfg.proxy, epochs=cfg.epochs)
    seeds: tuple[int, ...] = ()
    if kind == "calibration":
        seeds = _recorded_seeds(run_dir, meta) if meta is not None else \
            calibration_seeds(cfg.seed, n_seeds)
    if kind == "ablation":
        if meta is not None:
            ablation = meta.get("ablation")
            if not isinstance(ablation, dict):
                raise ValueError(f"{run_dir / RUN_JSON} is an ablation's but lacks field "
                                 "'ablation' (its plan): restore the file from a copy or start "
                                 "a new run")
        if ablation is None:  # pragma: no cover - run_search refuses it first
            raise ValueError("an ablation needs its plan")
        if cfg.scheduler != "none" or cfg.trials != 0:
            raise ValueError("an ablation trains its plan to the end: scheduler 'none', 0 "
                             "searched trials")
        fixed_ablation = ablation_candidates(ablation)
        seeds = tuple(int(x) for x in ablation["seeds"])
    if kind == "search":  # a roadmap replay and a calibration have no budget
        with named("budget"):
            if cfg.budget is None:
                raise ValueError("a search needs a FLOP budget (--budget, e.g. 4.5GFLOPs)")
            check_budget(space, cfg.budget, cfg.fit_width)
    with named("sampler"):
        sampler = make_sampler(cfg.sampler, cfg.seed, space)
    with named("storage_path"):
        check_storage_path(cfg.storage_path)
    from ..training.trial import check_resolution, load_proxy_data, resolve_data

    if resume_dir is None:
        name = cfg.name or default_run_name(space, cfg.budget)
        check_run_name(name)
        run_dir = Path(cfg.results_dir) / name
        _check_free(run_dir)
    fixed = (roadmap_candidates() if kind == "roadmap" else calibration_candidates(seeds)
             if kind == "calibration" else fixed_ablation if kind == "ablation"
             else reference_candidates(cfg.budget))
    source = None
    if cfg.replay is not None:  # recorded trials: no data, and every design in the table
        with named("replay"):
            check_replay(cfg, kind, space, proxy, fixed)
        data = None
    else:
        with named("dataset"):
            # Resolved once, here: the trials get the images, never a name to look up again.
            source = resolve_data(cfg.dataset, cfg.data_dir)
            data = load_proxy_data(source, None, proxy)
        if meta is not None and meta.get("dataset_source") not in (None, source.source):
            print(f"note: {run_dir}: the run's data came from {meta['dataset_source']}, this "
                  f"resume's from {source.source}", file=sys.stderr)
    with named("proxy"):
        for arch in {cand.arch.key(): cand.arch for cand in fixed}.values():  # once a design
            check_resolution(arch, proxy.resolution)
    return _Plan(cfg, kind, run_dir, resume_dir is not None, meta, prior, space, proxy, sampler,
                 data, source, tuple(fixed), faults.from_environment(), seeds, ablation)


def _recorded_seeds(run_dir: Path, meta: dict[str, Any]) -> tuple[int, ...]:
    """A calibration's seeds as its run.json records them (checked by `read_run_json`): a
    resume trains the same list."""
    if "seeds" not in meta:
        raise ValueError(f"{run_dir / RUN_JSON} is a calibration's but lacks field 'seeds': "
                         "restore the file from a copy or start a new run")
    return tuple(meta["seeds"])


def check_replay(cfg: SearchConfig, kind: str, space: DesignSpace, proxy: Proxy,
                 fixed: list[Candidate]) -> None:
    """Refuse, in one line, a replayed run whose table cannot answer every trial: a design it
    may propose (any of the space's designs within the budget) or a reference the table
    lacks, a table with fewer epochs than the proxy plans, --fit-width (narrowed designs
    are not in a table), or a speed objective or limit (a table records no measured speed)."""
    from .replay import ReplayTable

    if kind != "search":
        raise ValueError("--replay replays a search; the roadmap trains its own steps")
    try:
        is_file = bool(cfg.replay.strip()) and Path(cfg.replay).is_file()
    except (OSError, ValueError):   # a name the system refuses (a NUL byte, too long)
        is_file = False
    if not is_file:
        raise ValueError(f"--replay {cfg.replay!r}: not a file: give a replay table (parquet), "
                         "e.g. bench/tables/fmnist-cpu.parquet")
    if cfg.fit_width:
        raise ValueError("--replay cannot fit widths (narrowed designs are not in a replay "
                         "table): leave out --fit-width")
    if cfg.speed_objective().measures_speed:
        raise ValueError("--replay looks trials up in a table that records no measured speed: "
                         "search it with --objective flops and without --latency-budget, "
                         "--throughput-min or --measure-speed")
    table = ReplayTable.load(cfg.replay)
    table.check(c.arch for c in fixed)
    for arch in space.enumerate():
        if arch not in table and complexity(arch).flops <= cfg.budget:
            table.check([arch])   # raises, naming the design
    short = min((len(c.epochs) for c in table.curves.values() if c.status == "completed"),
                default=proxy.epochs)
    if short < proxy.epochs:
        raise ValueError(f"replay table {cfg.replay} holds {short} epoch(s) of some designs; "
                         f"the run plans {proxy.epochs}: give --epochs {short} or fewer")


def _run_info(plan: _Plan) -> dict[str, Any]:
    """run.json as the run starts (how it ended is added at the end)."""
    cfg, meta = plan.cfg, plan.meta or {}
    return {"kind": plan.kind, "command": command_line(), "config": cfg.to_dict(),
            "space": {"name": plan.space.name, "source": plan.space.source,
                      "dimensions": {k: [str(v) for v in vals]
                                     for k, vals in plan.space.dimensions.items()}},
            "budget_flops": cfg.budget, "proxy": plan.proxy.to_dict(), "seed": cfg.seed,
            "dataset": plan.cfg.dataset, "dataset_source": (plan.data_source.source if plan.data_source is not None
                               else f"replay of {plan.cfg.replay}"),
            "versions": package_versions(), "machine": machine_info(),
            "references": list(dict.fromkeys(c.reference for c in plan.fixed)),
            **({"seeds": list(plan.seeds)} if plan.kind in ("calibration", "ablation")
               else {}),
            **({"ablation": plan.ablation} if plan.kind == "ablation" else {}),
            "optuna_storage": STUDY_FILE,
            "started": meta.get("started", time.strftime("%Y-%m-%dT%H:%M:%S")),
            "resumed": (meta.get("resumed", 0) + 1) if plan.meta else 0}


def _execute(plan: _Plan, on_start: Callable[[Path], None] | None,
             signals: StopSignals) -> SearchOutcome:
    """Start Ray, make the run folder (with its lock and run.json), train, write the end."""
    cfg, run_dir = plan.cfg, plan.run_dir
    faults.at(plan.fault, "ray-init")
    started_ray, lock, created = False, None, False
    try:
        with signals.deferred():
            started_ray = raytune.init_ray(cfg)
        signals.install()  # again: Ray may have put its own SIGTERM handler in place
        raytune.check_resources(cfg)
        rows: list[dict[str, Any]] = []
        if plan.prior is not None:  # errors and trials cut short are trained again
            kept = plan.prior[plan.prior["status"] != "error"]
            rows = [r for r in map(restore_row, kept.to_dict("records")) if not is_cut_short(r)]
        run_info = _run_info(plan)
        end = raytune.TuneEnd()
        # Training time over every session of the run (a resume adds its own): the time an
        # ablation or a search took, without the hours a stopped run lay idle.
        earlier = (plan.meta or {}).get("elapsed_s")
        earlier = float(earlier) if isinstance(earlier, (int, float)) else 0.0
        session_start = time.time()
        try:
            # The folder, its lock and run.json come into being together: a run folder is
            # either absent or holds run.json, whatever moment a signal comes.
            with signals.deferred():
                created = not run_dir.exists()
                lock = _take_folder(run_dir, plan.resuming)
                faults.at(plan.fault, "run-folder")
                _write_start(run_dir, run_info, rows if plan.prior is not None else None)
            end = _train(plan, rows, on_start, signals)
        except KeyboardInterrupt as exc:  # before or after the trials ran: none was cut
            end = dataclasses.replace(end, stopped_by=signal_name(exc))
        with signals.deferred():
            run_info["elapsed_s"] = round(earlier + time.time() - session_start, 1)
            table = _write_end(run_dir, run_info, rows, end)
    finally:
        if lock is not None:
            lock.release()
        if created and not (run_dir / RUN_JSON).exists():
            _remove_if_empty(run_dir)
        if started_ray:
            raytune.shutdown_ray()
    notes = (_exhausted_note(cfg, plan.space, table),) if end.exhausted else ()
    return SearchOutcome(run_dir, table, end.stopped_by in ("SIGINT", "SIGTERM"),
                         f"nas-convnext {_RESUME_COMMANDS.get(plan.kind, 'search')} "
                         f"--resume {run_dir}", end.stopped_by, end.cut,
                         notes, plan.kind, plan.seeds)


def _write_start(run_dir: Path, run_info: dict[str, Any],
                 rows: list[dict[str, Any]] | None) -> None:
    """run.json as the run starts, then the table a resume keeps (when `rows` is given)."""
    try:
        write_run_json(run_dir, run_info)
        if rows is not None:
            write_table(run_dir, rows)
    except OSError as exc:
        raise write_failure(run_dir, exc) from None


def _write_end(run_dir: Path, run_info: dict[str, Any], rows: list[dict[str, Any]],
               end: "raytune.TuneEnd"):
    """The final table (returned), then run.json with how the run ended."""
    try:
        table = write_table(run_dir, rows)
        run_info.update({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                         "interrupted": end.stopped_by in ("SIGINT", "SIGTERM"),
                         "stopped_by": end.stopped_by, "cut_short": end.cut})
        if end.exhausted:
            run_info["space_exhausted"] = True
        if end.simulated_s is not None:  # a replayed run: its duration on the simulated clock
            run_info["simulated_s"] = round(end.simulated_s, 3)
        write_run_json(run_dir, run_info)
        return table
    except OSError as exc:
        raise write_failure(run_dir, exc) from None


def _train(plan: _Plan, rows: list[dict[str, Any]], on_start: Callable[[Path], None] | None,
           signals: StopSignals):
    """Open the study, work out what is left to train and hand it to Ray Tune."""
    faults.at(plan.fault, "study")
    with signals.deferred():
        objective = plan.cfg.speed_objective()
        study = open_study(plan.run_dir, plan.sampler, objective)
    pending, done, proposed = work_left(study, rows, list(plan.fixed), plan.cfg.seed,
                                        objective)
    if on_start is not None:
        on_start(plan.run_dir)
    if len(pending) + max(0, plan.cfg.trials - proposed) <= 0:
        return raytune.TuneEnd()
    return raytune.run_trials(plan.cfg, plan.proxy, plan.space, study, plan.data, plan.run_dir,
                              rows, pending, done, proposed, plan.fault, signals)


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
