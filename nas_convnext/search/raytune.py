"""The Ray side of a search: every import of Ray in the package is here, made lazily.

Ray Tune owns the execution (resources, concurrency, ASHA, clusters). `run_trials` trains the
pending designs, then the searcher's proposals, as Tune trials; `trainable` runs one trial
(`train_trial`) in a Ray worker; `TableWriter`, a Tune callback in the driver, writes the
trials table after every finished trial, so a crash loses at most the trials in flight, and
owns the time budget. `init_ray` starts Ray (loopback only, no dashboard) or joins a cluster.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..design.arch import Arch
from ..design.space import DesignSpace
from ..results import (
    write_failure,
)
from ..training.proxy import Proxy, proxy_from_dict
from . import faults
from .config import SearchConfig, cluster_endpoint
from .mo_asha import mo_asha_scheduler
from .objective import Objective, measure_for_trial
from .progress import Progress
from .searcher import Queued, StudySearcher, proposal_sampler
from .signals import StopSignals, signal_name
from .table_writer import TableWriter, _error_text, _identity  # noqa: F401


def tune_searcher(searcher: StudySearcher):
    """`searcher` as a Ray Tune Searcher: Tune asks it for configs and tells it outcomes."""
    from ray.tune.search import Searcher

    class TuneSearcher(Searcher):
        def __init__(self) -> None:
            super().__init__(metric="top1", mode="max")
            # Not `self.searcher`: Tune takes any Searcher with that attribute for a wrapper
            # (ConcurrencyLimiter, Repeater) and asks the inner object for its state.
            self.proposals = searcher

        def suggest(self, trial_id: str):
            config = self.proposals.suggest(trial_id)
            return Searcher.FINISHED if config is None else config

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
            self.proposals.on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path: str) -> None:
            pass  # the study (sqlite) and the trials table are the state; see run_search

        def restore(self, checkpoint_path: str) -> None:
            pass

    return TuneSearcher()


# ----- the trainable (runs in Ray workers) -----
def trainable(config: dict[str, Any], data=None) -> None:
    import ray
    from ray import tune

    from ..training.trial import train_trial

    arch = Arch.from_row(config["arch"])
    proxy = proxy_from_dict(config["proxy"])
    node = ray.get_runtime_context().get_node_id()
    threads = max(1, int(config["cpus_per_trial"]))
    objective = Objective(**(config.get("objective") or {}))
    speed: dict[str, Any] = {}
    if objective.measures_speed:  # before training: a design over a speed limit is not trained
        speed = measure_for_trial(arch, objective, threads, faults.speed_stand_in(config))
        refused = objective.refusal(speed)
        if refused:
            tune.report({"epoch": 0, "top1": 0.0, **speed, "node_id": node,
                         "status": "infeasible", "message": refused})
            return
    poisoned = faults.PoisonedLoss() if faults.kind(config) == "nan" else None

    def report(metrics: dict[str, Any]) -> None:
        if faults.inject(config, metrics["epoch"]) == "nan" and poisoned is not None:
            poisoned.on = True
        tune.report({**metrics, **speed, "node_id": node, "status": "running"})

    if config.get("replay"):  # recorded trials: looked up and reported at once, not trained
        from .replay import cached_table, replay_trial

        result = replay_trial(arch, cached_table(config["replay"]), report=report,
                              epochs=proxy.epochs)
    else:
        result = train_trial(arch, proxy, data, seed=int(config["seed"]), report=report,
                             threads=threads, loss_hook=poisoned)
    if result.status == "diverged":
        last = result.history[-1] if result.history else {}
        tune.report({"epoch": result.epochs, "top1": last.get("top1", 0.0),
                     "top5": last.get("top5", math.nan), "loss": last.get("loss", math.nan),
                     "images_per_s": result.images_per_s, "elapsed_s": result.elapsed_s,
                     **speed, "node_id": node, "status": "diverged",
                     "message": result.message})


def _check_reachable(address: str, source: str | None = None) -> None:
    """Fail in seconds, and in one line, when nothing listens at the cluster's address.

    `ray.init` would wait for minutes on an address where nothing answers, and end with a
    traceback; a plain TCP connection says at once whether anything is there.
    """
    import socket

    endpoint = cluster_endpoint(address, source)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=10):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        fix = ("start the cluster (`ray start --head`), or unset RAY_ADDRESS to run on this "
               "machine alone" if source else
               "start the cluster (`ray start --head`) or check the address")
        raise ValueError(f"{source or f'--address {address}'}: nothing answers at "
                         f"{endpoint[0]}:{endpoint[1]} ({reason}); {fix}") from None


def _environment_address() -> str | None:
    """RAY_ADDRESS, which `ray.init` joins when no --address is given ("local": none)."""
    value = os.environ.get("RAY_ADDRESS", "").strip()
    return value if value and value != "local" else None


def init_ray(cfg: SearchConfig) -> bool:
    """Start (or join) Ray; returns whether we started it and so must shut it down.

    A Ray started here (no `--address`, no RAY_ADDRESS, no `ray start` cluster that Ray would
    join by itself) has no dashboard and listens on loopback only. Ray's servers bind to
    loopback exactly when the node's IP is 127.0.0.1 (GCS, raylet, object manager, workers,
    dashboard and runtime-env agents), but `ray.init(_node_ip_address="127.0.0.1")` (Ray 2.60)
    first rewrites a localhost address into the machine's network address
    (`services.resolve_ip_for_localhost`), after which every service listens on the network.
    That rewrite is switched off for the duration of the call.
    """

    import ray

    env_address = None if cfg.address else _environment_address()
    source = f"RAY_ADDRESS={env_address} (from the environment)" if env_address else None
    if cfg.address:
        _check_reachable(cfg.address)
    elif env_address:
        _check_reachable(env_address, source)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "log_to_driver": False, "configure_logging": True}
    if cfg.address:
        try:
            with _keeping_sigterm_handler():
                ray.init(address=cfg.address, **kwargs)
        except (ConnectionError, TimeoutError) as exc:  # "auto" with no cluster, a client timeout
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"--address {cfg.address}: could not join the Ray cluster: "
                             f"{first}") from None
        return True
    from ray._private import services

    try:  # RAY_ADDRESS, or the cluster of the last `ray start`: Ray joins it, as it would
        joining = services.canonicalize_bootstrap_address(None) is not None
    except Exception:  # noqa: BLE001 - let ray.init decide (and report) as it would
        joining = True
    if joining:
        try:
            with _keeping_sigterm_handler():
                ray.init(**kwargs)
        except (ConnectionError, TimeoutError) as exc:  # RAY_ADDRESS=auto with no cluster
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{source or 'Ray'}: could not join the Ray cluster: {first}"
                             ) from None
        return True
    rewrite = getattr(services, "resolve_ip_for_localhost", None)
    if rewrite is not None:
        services.resolve_ip_for_localhost = lambda host: host
    try:
        with _keeping_sigterm_handler():
            ray.init(_node_ip_address="127.0.0.1", **kwargs)
    finally:
        if rewrite is not None:
            services.resolve_ip_for_localhost = rewrite
    return True


def shutdown_ray() -> None:
    """Stop the Ray that `init_ray` started."""
    import ray

    ray.shutdown()


@contextmanager
def _keeping_sigterm_handler():
    """Keep the search's SIGTERM handler while `ray.init` runs (see `StopSignals`).

    `ray.init` replaces the process's SIGTERM handler twice (`ray._private.utils.
    set_sigterm_handler`) with handlers that exit at once, killing Ray's processes under the
    driver; the search then dies mid-start (or later aborts in Ray's C++ code). Its setter is
    made a no-op for the call; Ray's atexit hook and `ray.shutdown` still stop its processes.
    """
    try:
        from ray._private import utils as ray_utils
    except ImportError:  # another Ray layout: the handler is re-installed after the call
        yield
        return
    setter = getattr(ray_utils, "set_sigterm_handler", None)
    if setter is not None:
        ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        if setter is not None:
            ray_utils.set_sigterm_handler = setter


def check_resources(cfg: SearchConfig) -> None:
    """Refuse, before anything runs, a trial that asks for more than the cluster has."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cfg.cpus_per_trial > cpus:
        raise ValueError(f"--cpus-per-trial {cfg.cpus_per_trial:g} is more than the cluster's "
                         f"{cpus:g} CPUs")
    if cfg.gpus_per_trial > gpus:
        raise ValueError(f"--gpus-per-trial {cfg.gpus_per_trial:g} is more than the cluster's "
                         f"{gpus:g} GPUs")


def _callback_class():
    """`TableWriter` as the Ray Tune callback it is (Ray is imported only when a search runs)."""
    from ray.tune import Callback

    class TuneTableWriter(TableWriter, Callback):
        pass

    return TuneTableWriter


@dataclass(frozen=True)
class TuneEnd:
    """How the trials ended: all done, or stopped (by which), and what that left."""
    stopped_by: str | None = None   # "SIGINT", "SIGTERM", "time budget"
    cut: int = 0                    # trials recorded as cut short
    exhausted: bool = False         # the space (the grid) had no more designs to propose
    simulated_s: float | None = None  # a replayed run: its duration on the simulated clock


# long: one Tune run read top to bottom: clock, callback, scheduler, searcher, stopper, fit,
# and what stopped it; split, the objects would be threaded through several functions.
def run_trials(cfg: SearchConfig, proxy: Proxy, space: DesignSpace, study, data, run_dir: Path,
          rows: list[dict[str, Any]], pending: list[Queued], done: dict[str, dict],
          proposed: int, fault: str, signals: StopSignals | None = None) -> TuneEnd:
    """Train the pending designs, then Optuna's proposals until `cfg.trials` searched designs
    (counting the `proposed` ones of earlier runs) have been trained, the space runs out, the
    time budget is spent or a signal comes.

    Trials that reported an epoch and were still training when the run stopped are added to
    `rows` as cut short (see `results.cut_short_note`); their Optuna trials stay RUNNING, so a
    resume trains them again under the same numbers.
    """
    from ray import tune

    planned = proxy.epochs
    objective = cfg.speed_objective()
    base = {"proxy": proxy.to_dict(), "seed": cfg.seed, "cpus_per_trial": cfg.cpus_per_trial,
            "order_start": max([int(r["order"]) for r in rows], default=0), "fault": fault,
            "objective": objective.to_dict()}
    sampler = functools.partial(proposal_sampler, cfg.sampler, cfg.seed, space)
    grid = space.size if cfg.sampler == "grid" else None
    searcher = StudySearcher(study, space, cfg.budget, cfg.fit_width, cfg.trials, pending, done,
                             base, planned, proposed, sampler, grid_size=grid,
                             objective=objective)
    total = len(pending) + max(0, cfg.trials - proposed)
    if grid is not None:  # at most the grid's points not proposed yet
        total = min(total, len(pending) + max(0, grid - len(searcher.points)))
    start = time.time()
    progress = Progress(max(1, total), start, cfg.time_budget_s)
    deadline = start + cfg.time_budget_s if cfg.time_budget_s is not None else math.inf
    clock = None
    if cfg.replay:
        # Replayed trials take no time: the recorded seconds are their cost, placed on a
        # simulated clock with as many workers as run at once, and the time budget and the
        # trials' wall_s are on that clock.
        import ray

        from .replay import SimulatedClock

        slots = int(ray.cluster_resources().get("CPU", 1) // max(cfg.cpus_per_trial, 1e-4))
        clock = SimulatedClock(max(1, min(cfg.concurrency or slots, slots)))
        deadline = math.inf
        base["replay"] = str(Path(cfg.replay).resolve())
    writer = _callback_class()(run_dir, rows, planned, progress, deadline, clock,
                               cfg.time_budget_s)
    scheduler = None
    if cfg.scheduler == "asha" and planned > 1:
        scheduler = _asha(planned)
    elif cfg.scheduler == "mo-asha" and planned > 1:
        # rungs and eta as ASHA's; reads config["flops"] (or, with a time objective, the
        # measured time each trial reports) and config["reference"]. A resumed run starts
        # with empty rungs: Tune's scheduler state is not part of the run folder.
        scheduler = mo_asha_scheduler(max_t=planned, grace_period=1, reduction_factor=3,
                                      cost=objective.name)
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    trainable_fn = tune.with_resources(tune.with_parameters(trainable, data=data), resources)
    storage = Path(cfg.storage_path).resolve() if cfg.storage_path else run_dir.resolve()
    # The time budget is the stopper's (`RunStopper`), not Tune's `time_budget_s`: Tune's
    # ends the trials in flight without a callback, so their rows would be lost.
    tune_config = tune.TuneConfig(search_alg=tune_searcher(searcher), scheduler=scheduler,
                                  num_samples=max(1, total),
                                  max_concurrent_trials=cfg.concurrency, reuse_actors=True)
    run_config = tune.RunConfig(name="ray", storage_path=str(storage), verbose=0,
                                callbacks=[writer], log_to_file=True,
                                stop=_stopper_class()(writer),
                                failure_config=tune.FailureConfig(max_failures=0),
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=1))
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(1, cfg.concurrency or 2)))
    tuner = tune.Tuner(trainable_fn, tune_config=tune_config, run_config=run_config)
    stopped_by = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
    except KeyboardInterrupt as exc:
        stopped_by = signal_name(exc)
    except Exception:  # Tune fails at its end when its folder went with the run folder
        if writer.write_error is None:
            raise
    finally:
        writer.restore_logging()
    with signals.deferred() if signals is not None else contextlib.nullcontext():
        if progress.tty:
            sys.stderr.write("\n")
        if writer.write_error is not None:
            raise write_failure(run_dir, writer.write_error, gone=writer.gone)
        if stopped_by is None and writer.expired() and (writer.unfinished()
                                                        or searcher.work_left()):
            stopped_by = "time budget"
        cut = writer.cut_short(stopped_by) if stopped_by else 0
    return TuneEnd(stopped_by, cut, searcher.ran_out(),
                   clock.elapsed if clock is not None else None)


def _stopper_class():
    from ray.tune import Stopper

    class RunStopper(Stopper):
        """Stops the whole experiment when the time budget is spent or the table can no
        longer be written (both decided by the TableWriter)."""

        def __init__(self, writer):
            self.writer = writer

        def __call__(self, trial_id, result) -> bool:
            return self.writer.write_error is not None

        def stop_all(self) -> bool:
            return self.writer.stop_all()

    return RunStopper


def _asha(max_t: int):
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class ReferenceSafeASHA(ASHAScheduler):
        """ASHA that never stops a reference point: every run must place ConvNeXt-T."""

        def on_trial_result(self, tune_controller, trial, result):
            decision = super().on_trial_result(tune_controller, trial, result)
            if trial.config.get("reference"):
                return TrialScheduler.CONTINUE
            return decision

    return ReferenceSafeASHA(time_attr="epoch", metric="top1", mode="max", max_t=max_t,
                             grace_period=1, reduction_factor=3)
