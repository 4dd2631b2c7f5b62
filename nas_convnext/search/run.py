"""The search: Optuna proposes designs, Ray Tune trains them as proxy trials, the table records all.

Optuna owns the proposals (a seeded sampler, two objectives: proxy top-1 up, GFLOPs down, the
budget as a constraint set with `trial.set_constraint`); Ray Tune owns the execution (resources,
concurrency, ASHA, clusters). The bridge is `StudySearcher`, a Ray Tune Searcher that asks the
study for designs and tells it the outcomes itself, so that trials stopped early are reported
to Optuna as pruned, not as finished results. `TableWriter`, a Tune callback in the driver,
writes the trials table after every finished trial, so a crash loses at most the trials in
flight. A resumed run keeps every row, trains the designs that were in flight under their own
Optuna trials (`unfinished_proposals`), and, since each proposal's sampler is seeded by the run's
seed and the trial's number (`proposal_seed`), goes on proposing what the uninterrupted run would.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import math
import os
import random
import stat
import sys
import time
import typing
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import faults
from .arch import Arch, presets
from .complexity import complexity, fit_width, scale_width
from .proxy import Proxy, get_proxy, proxy_from_dict
from .results import (RESULTS_DIR, RUN_JSON, RunLock, check_run_name, command_line,
                      cut_short_note, folder_holds_a_run, is_cut_short, machine_info,
                      package_versions, read_run_json, read_table, short_repr,
                      unknown_columns_note, write_run_json, write_table)
from .space import DesignSpace, label, load_space

SAMPLERS = ("tpe", "nsga2", "random", "grid")
SCHEDULERS = ("asha", "none")
REFERENCES = ("convnext_t", "resnet50")
GRID_LIMIT = 10_000
STUDY_FILE = "study.db"


@dataclass(frozen=True)
class SearchConfig:
    budget: float
    space: str = "convnext"
    trials: int = 22                   # searched designs, besides the reference points
    time_budget_s: float | None = None
    sampler: str = "tpe"
    scheduler: str = "asha"
    proxy: str = "cpu"
    epochs: int | None = None          # overrides the proxy's epochs
    dataset: str = "synthetic"
    data_dir: str | None = None
    concurrency: int | None = None     # None: as many as the resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    seed: int = 0
    name: str | None = None
    address: str | None = None
    storage_path: str | None = None
    results_dir: str = str(RESULTS_DIR)
    fit_width: bool = True

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            check(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Ray counts resources in steps of 0.0001 (`ray_constants.MIN_RESOURCE_GRANULARITY`): a
# request below one step is refused by Ray deep inside Tune ("Tracked actor is not managed by
# this event manager"), and a finer one is silently rounded. A GPU request above 1 must be
# whole (Ray's unit-instance resources), as Ray's documentation on fractional resources says.
RESOURCE_STEP = 1e-4


def _resource_steps(value: float) -> float:
    return value / RESOURCE_STEP


def _check_resource(option: str, value: float, zero_ok: bool) -> None:
    expected = "a number >= 0" if zero_ok else "a positive number"
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        raise ValueError(f"{option} {value!r}: expected {expected}")
    if value == 0:
        return
    steps = _resource_steps(value)
    if steps < 1 - 1e-9 or abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise ValueError(f"{option} {value!r}: Ray counts resources in steps of 0.0001, so "
                         f"expected a multiple of 0.0001 (at least 0.0001), e.g. 0.25 or 1")


def _check_gpus(value: float) -> None:
    _check_resource("--gpus-per-trial", value, zero_ok=True)
    if value > 1 and value != int(value):
        raise ValueError(f"--gpus-per-trial {value!r}: a trial takes a fraction of one GPU or "
                         "whole GPUs (Ray's rule), e.g. 0.5, 1 or 2")


def _check_in(option: str, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"{option} {value!r}: expected one of {', '.join(allowed)}")
    return check


def _check_trials(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
        raise ValueError(f"--trials {value!r}: expected an integer from 0 to 100000")


def _check_optional_positive_int(option: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{option} {value!r}: expected a positive integer")
    return check


def _check_budget(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (math.isfinite(value) and value > 0):
        raise ValueError(f"--budget {value!r}: expected a positive number of FLOPs, e.g. 4.5e9")


def _check_time_budget(value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"--time-budget {value!r}: expected a positive duration")


def _check_seed(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"--seed {value!r}: expected an integer from 0 to {2**32 - 1}")


def _check_name(value: str | None) -> None:
    if value is not None:
        check_run_name(value)


def _check_address(value: str | None) -> None:
    if value:
        cluster_endpoint(value)


def _no_check(value: Any) -> None:
    pass


# Each setting's own rule, by field: SearchConfig applies them all, and a resume names the
# field of run.json that breaks one.
_CHECKS: dict[str, Callable[[Any], None]] = {
    "budget": _check_budget,
    "sampler": _check_in("--sampler", SAMPLERS),
    "scheduler": _check_in("--scheduler", SCHEDULERS),
    "trials": _check_trials,
    "epochs": _check_optional_positive_int("--epochs"),
    "concurrency": _check_optional_positive_int("--concurrency"),
    "cpus_per_trial": lambda v: _check_resource("--cpus-per-trial", v, zero_ok=False),
    "gpus_per_trial": _check_gpus,
    "time_budget_s": _check_time_budget,
    "seed": _check_seed,
    "name": _check_name,
    "address": _check_address,
    "space": _no_check, "proxy": _no_check, "dataset": _no_check, "data_dir": _no_check,
    "storage_path": _no_check, "results_dir": _no_check, "fit_width": _no_check,
}


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON has a field's declared type (bool is not a number)."""
    for t in typing.get_args(hint) or (hint,):
        if (t is type(None) and value is None) or (t is bool and type(value) is bool) \
                or (t is int and type(value) is int) or (t is str and isinstance(value, str)) \
                or (t is float and type(value) in (int, float)):
            return True
    return False


def _type_name(hint: Any) -> str:
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
             str: "text"}
    return " or ".join(names.get(t, str(t)) for t in typing.get_args(hint) or (hint,))


def config_from_run_json(path: Path, raw: dict[str, Any],
                         overrides: dict[str, Any]) -> SearchConfig:
    """The settings of a run to resume, from its run.json; a ValueError naming the file and the
    field when one is missing, unknown, of the wrong type or against its rule."""
    hints = typing.get_type_hints(SearchConfig)
    fix = "restore the file from a copy or start a new run"
    unknown = sorted(str(k) for k in raw if k not in hints)
    if unknown:
        raise ValueError(f"{path}: field 'config' has key(s) {unknown} that are not settings "
                         f"of nas-convnext search: {fix}")
    missing = [k for k in hints if k not in raw]
    if missing:
        raise ValueError(f"{path}: field 'config' lacks {missing}: {fix}")
    for name, hint in hints.items():
        value = raw[name]
        if not _has_type(value, hint):
            raise ValueError(f"{path}: field 'config.{name}' is {short_repr(value)}, expected "
                             f"{_type_name(hint)}: {fix}")
        try:
            _CHECKS[name](value)
        except ValueError as exc:
            raise ValueError(f"{path}: field 'config.{name}': {exc}; {fix}") from None
    return SearchConfig(**{**raw, **overrides})
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_duration(text: str) -> float:
    """'30m', '90s', '1.5h', '2h30m' or plain seconds, in seconds."""
    import re

    s = str(text).strip().lower()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", s):
        value = float(s)
    else:
        parts = re.findall(r"([0-9]*\.?[0-9]+)\s*([hms])", s)
        if not parts or re.sub(r"([0-9]*\.?[0-9]+)\s*([hms])", "", s).strip():
            raise ValueError(f"duration {text!r} is not understood: expected e.g. 30m, 90s, "
                             "1.5h or 2h30m")
        value = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"duration {text!r} must be positive")
    return value


# ----- planning: what will be trained -----
@dataclass(frozen=True)
class Candidate:
    arch: Arch
    flops: int
    params: int
    fitted: bool
    reference: str = ""        # the preset's name for reference points and roadmap steps
    recipe: str = "modern"     # roadmap step 0 trains with ResNet's original recipe


@dataclass(frozen=True)
class Queued:
    """A design waiting to be trained ahead of any new proposal."""
    cand: Candidate
    number: int | None = None  # its Optuna trial (None for reference points and roadmap steps)
    tell: bool = False         # whether that trial still waits for its outcome


def within_budget(arch: Arch, budget: float, fit: bool) -> Candidate | None:
    """The design as it will be trained, or None when it cannot meet the budget."""
    c = complexity(arch)
    if c.flops <= budget:
        return Candidate(arch, c.flops, c.params, False)
    if not fit:
        return None
    try:
        narrowed = fit_width(arch, budget)
    except ValueError:
        return None
    c = complexity(narrowed)
    return Candidate(narrowed, c.flops, c.params, True)


def reference_candidates(budget: float) -> list[Candidate]:
    out = []
    for name in REFERENCES:
        cand = within_budget(presets()[name], budget, fit=True)
        if cand is not None:
            out.append(dataclasses.replace(cand, reference=name))
    return out


def check_budget(space: DesignSpace, budget: float, fit: bool) -> None:
    """Refuse, before anything starts, a budget that no design of the space can meet."""
    cheapest = space.cheapest()
    smallest = complexity(cheapest).flops
    if smallest <= budget:
        return
    if fit and within_budget(cheapest, budget, fit=True) is not None:
        return
    shown = f"{budget / 1e9:.3f} GFLOPs" if budget >= 1e6 else f"{budget:g} FLOPs"
    hint = (f" (a bare number counts FLOPs: for giga-FLOPs write {budget:g}GFLOPs)"
            if budget < 1e6 else "")
    raise ValueError(f"budget {shown} is below the smallest design of space {space.name!r} "
                     f"({smallest / 1e9:.3f} GFLOPs"
                     f"{', even with its width narrowed' if fit else ''}): raise the budget{hint}")


def proposal_seed(seed: int, number: int) -> int:
    """The sampler's seed for the study's trial `number`.

    Each proposal draws from a sampler seeded by the run's seed and the trial's number, not
    from one generator that runs through the whole search: a resumed run then proposes what
    the uninterrupted run would have proposed at the same trial, although its sampler is new.
    """
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def make_sampler(name: str, seed: int, space: DesignSpace):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          n_startup_trials=10)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if space.size > GRID_LIMIT:
        raise ValueError(f"--sampler grid needs a small space: {space.name!r} has "
                         f"{space.size:,} designs (at most {GRID_LIMIT:,}); use tpe, nsga2 or random")

    grid = {k: [label(v) for v in vals] for k, vals in space.dimensions.items()}
    return _grid_sampler_class()(grid, seed=seed)


@functools.cache
def _grid_sampler_class():
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler, minus the `study.stop()` it calls once the grid is done.

        `Study.stop` only works inside `Study.optimize`; the search asks and tells (Ray Tune
        runs the trials), where it raises RuntimeError from `study.tell`. The searcher ends the
        search itself once every point of the grid has been proposed.
        """

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return AskTellGridSampler


def proposal_sampler(name: str, seed: int, space: DesignSpace, number: int):
    """The sampler that proposes the study's trial `number` (see `proposal_seed`).

    The grid sampler is the exception: its seed fixes one order of the grid's points and trial
    number n takes the n-th point, so every trial's sampler must share the run's seed: seeded
    per trial, the points would come from different orders, some twice and some never.
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return make_sampler(name, seed if name == "grid" else proposal_seed(seed, number),
                            space)


def tell_outcome(study, trial, outcome: dict[str, Any]) -> None:
    """Tell Optuna a trained design's outcome; `trial` is a Trial or a trial number.

    Stopped-early trials are PRUNED (their top-1 is not a finished result); diverged ones
    count as top-1 0 at their FLOPs, so the sampler learns to avoid them; errors are FAIL.
    """
    from optuna.trial import TrialState

    status = outcome["status"]
    if status == "completed":
        study.tell(trial, [float(outcome["top1"]), outcome["flops"] / 1e9])
    elif status == "diverged":
        study.tell(trial, [0.0, outcome["flops"] / 1e9])
    elif status == "stopped_early":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def unfinished_proposals(study, done: dict[str, dict]) -> list[Queued]:
    """The designs an interrupted run chose for training but has no row of: to train first.

    Each keeps its Optuna trial, and so its number: together with `proposal_seed`, the resumed
    run then proposes trial for trial what the uninterrupted run would have. A trial still
    RUNNING is told its outcome once its design is trained; one the study was told of whose row
    was never written (the run stopped between the two) is trained for its row only; a RUNNING
    trial whose row exists is told from the row. A trial interrupted while it was being
    proposed (no design chosen yet) is marked failed.
    """
    from optuna.trial import TrialState

    out: list[Queued] = []
    seen: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        design = t.user_attrs.get("design")
        running = t.state == TrialState.RUNNING
        if design is None:
            if running:
                study.tell(t.number, state=TrialState.FAIL)
            continue
        if t.state not in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED):
            continue
        arch = Arch.from_row(design)
        key = arch.key()
        if key in done:
            if running:
                tell_outcome(study, t.number, done[key])
            continue
        if key in seen:  # cannot happen with one searcher; never train a design twice
            if running:
                study.tell(t.number, state=TrialState.FAIL)
            continue
        seen.add(key)
        c = complexity(arch)
        cand = Candidate(arch, c.flops, c.params, bool(t.user_attrs.get("fitted", False)))
        out.append(Queued(cand, t.number, tell=running))
    return out


# ----- status of a finished trial -----
def trial_status(result: dict[str, Any] | None, error: bool, planned_epochs: int) -> str:
    if error:
        return "error"
    result = result or {}
    if result.get("status") == "diverged":
        return "diverged"
    if int(result.get("epoch", 0) or 0) < planned_epochs:
        return "stopped_early"
    return "completed"


def _searcher_class():
    """`StudySearcher`: a Ray Tune Searcher over an Optuna study (built lazily: Ray is heavy)."""
    from optuna.trial import TrialState
    from ray.tune.search import Searcher

    class _StudySearcher(Searcher):
        def __init__(self, study, space: DesignSpace, budget: float, fit: bool,
                     trials: int, pending: list[Queued], done: dict[str, dict],
                     base_config: dict[str, Any], planned_epochs: int, already: int,
                     sampler: Callable[[int], Any], grid_size: int | None = None):
            super().__init__(metric="top1", mode="max")
            self.study, self.space, self.budget, self.fit = study, space, budget, fit
            self.sampler = sampler              # trial number -> the sampler that proposes it
            self.trials, self.pending, self.done = trials, list(pending), dict(done)
            self.base, self.planned_epochs = base_config, planned_epochs
            self.asked = already            # searched designs proposed so far (incl. resumed)
            self.live: dict[str, Any] = {}  # tune trial id -> optuna trial (or its number)
            self.configs: dict[str, dict[str, Any]] = {}
            self.in_flight: set[str] = set()
            self.order = base_config.get("order_start", 0)
            self.exhausted = False
            # With the grid sampler: the grid's size and the points proposed so far. Once
            # every point has been proposed, the grid is done (the sampler would repeat).
            self.grid_size = grid_size
            self.points = {self._point(t) for t in study.get_trials(deepcopy=False) if t.params}

        def save(self, checkpoint_path: str) -> None:
            pass  # the study (sqlite) and the trials table are the state; see run_search

        def restore(self, checkpoint_path: str) -> None:
            pass

        def _config(self, trial_id: str, cand: Candidate, number: int | None) -> dict[str, Any]:
            self.order += 1
            self.in_flight.add(cand.arch.key())
            proxy = proxy_from_dict(self.base["proxy"]).with_recipe(cand.recipe)
            cfg = {**self.base, "proxy": proxy.to_dict(), "arch": cand.arch.to_dict(),
                   "flops": cand.flops,
                   "params": cand.params, "fitted": cand.fitted, "reference": cand.reference,
                   "optuna_number": number, "order": self.order}
            self.configs[trial_id] = cfg
            return cfg

        @staticmethod
        def _point(t) -> tuple:
            return tuple(sorted(t.params.items()))

        def _ask(self):
            self.study.sampler = self.sampler(len(self.study.get_trials(deepcopy=False)))
            return self.study.ask()

        def _grid_done(self) -> bool:
            return self.grid_size is not None and len(self.points) >= self.grid_size

        def suggest(self, trial_id: str):
            if self.pending:
                q = self.pending.pop(0)
                if q.tell:
                    self.live[trial_id] = q.number
                return self._config(trial_id, q.cand, q.number)
            if self.asked >= self.trials or self.exhausted:
                return Searcher.FINISHED
            for _ in range(500):
                if self._grid_done():
                    break
                t = self._ask()
                try:
                    arch = self.space.suggest(t)
                except ValueError as exc:          # a combination that breaks a group rule
                    self.points.add(self._point(t))
                    t.set_user_attr("invalid", str(exc))
                    self.study.tell(t, state=TrialState.FAIL)
                    self._propose_nearest(t)
                    continue
                self.points.add(self._point(t))
                cand = within_budget(arch, self.budget, self.fit)
                if cand is None:
                    flops = complexity(arch).flops
                    t.set_constraint("flops_over_budget", (flops - self.budget) / 1e9)
                    self.study.tell(t, [0.0, flops / 1e9])
                    continue
                key = cand.arch.key()
                t.set_constraint("flops_over_budget", (cand.flops - self.budget) / 1e9)
                t.set_user_attr("fitted", cand.fitted)
                t.set_user_attr("width", cand.arch.width)
                if key in self.done:               # already trained: tell its outcome again
                    self._tell(t, self.done[key])
                    continue
                if key in self.in_flight:          # being trained now: nothing to learn yet
                    t.set_user_attr("duplicate", True)
                    self.study.tell(t, state=TrialState.FAIL)
                    continue
                # Chosen for training: a resumed run finds it by this (unfinished_proposals).
                t.set_user_attr("design", cand.arch.to_dict())
                self.live[trial_id] = t
                self.asked += 1
                return self._config(trial_id, cand, t.number)
            # Every point of the grid has been proposed, or the sampler keeps proposing designs
            # that exist already: the space is exhausted.
            self.exhausted = True
            return Searcher.FINISHED

        def _propose_nearest(self, t) -> None:
            """Queue the valid design nearest to an invalid proposal, as the next trial.

            Optuna draws each dimension on its own and cannot know the cross-field rules, so in
            a space where most combinations are invalid it would rarely hit a valid one. The
            next trial instead keeps what it can of this proposal (see DesignSpace.nearest),
            drawn with a generator seeded by the run's seed and this trial's number, so a
            resumed run queues the same design.
            """
            rng = random.Random(proposal_seed(self.base["seed"], t.number))
            arch = self.space.nearest(t.params, rng)
            self.study.enqueue_trial({f: label(getattr(arch, f)) for f in self.space.dimensions})

        def ran_out(self) -> bool:
            """Whether the space had fewer new designs than the trials asked for."""
            return self.asked < self.trials and (self.exhausted or self._grid_done())

        def work_left(self) -> bool:
            """Whether designs are left to train (none when the run has done its work)."""
            return bool(self.pending) or (self.asked < self.trials and not self.ran_out())

        def _tell(self, t, outcome: dict[str, Any]) -> None:
            tell_outcome(self.study, t, outcome)

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            t = self.live.pop(trial_id, None)
            cfg = self.configs.pop(trial_id, {})
            arch_row = cfg.get("arch")
            status = trial_status(result, error, self.planned_epochs)
            outcome = {"status": status, "top1": (result or {}).get("top1", math.nan),
                       "flops": cfg.get("flops", 0)}
            if arch_row is not None:
                key = Arch.from_row(arch_row).key()
                self.in_flight.discard(key)
                if status != "error":
                    self.done[key] = outcome
            if t is not None:
                if status == "completed" and not math.isfinite(float(outcome["top1"])):
                    status = outcome["status"] = "error"
                self._tell(t, outcome)

    return _StudySearcher


# ----- the trainable (runs in Ray workers) -----
def trainable(config: dict[str, Any], data=None) -> None:
    import ray
    from ray import tune

    from .train import train_trial

    from . import train as train_module

    arch = Arch.from_row(config["arch"])
    proxy = proxy_from_dict(config["proxy"])
    node = ray.get_runtime_context().get_node_id()
    poisoned = faults.PoisonedLoss(train_module.F) if faults.kind(config) == "nan" else None

    def report(metrics: dict[str, Any]) -> None:
        if faults.inject(config, metrics["epoch"]) == "nan" and poisoned is not None:
            poisoned.on = True
        tune.report({**metrics, "node_id": node, "status": "running"})

    if poisoned is not None:  # only this trial, in this worker; restored: actors are reused
        train_module.F = poisoned
    try:
        result = train_trial(arch, proxy, data, seed=int(config["seed"]), report=report,
                             threads=max(1, int(config["cpus_per_trial"])))
    finally:
        if poisoned is not None:
            train_module.F = poisoned.real
    if result.status == "diverged":
        last = result.history[-1] if result.history else {}
        tune.report({"epoch": result.epochs, "top1": last.get("top1", 0.0),
                     "top5": last.get("top5", math.nan), "loss": last.get("loss", math.nan),
                     "images_per_s": result.images_per_s, "elapsed_s": result.elapsed_s,
                     "node_id": node, "status": "diverged", "message": result.message})


# ----- the driver -----
def cluster_endpoint(address: str, source: str | None = None) -> tuple[str, int] | None:
    """(host, port) of a `--address`, None for "auto"; a ValueError for anything else.

    `source` names where the address came from in messages (default: `--address 'X'`).
    """
    if address == "auto":
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 \
            or any(c.isspace() or c in "/@?#" for c in host):
        raise ValueError(f"{source or f'--address {address!r}'}: expected auto, HOST:PORT or "
                         f"ray://HOST:PORT (the head node's address, e.g. 10.0.0.5:6379)")
    return host, int(port)


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


def default_run_name(space: DesignSpace, budget: float) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{space.name}-{budget / 1e9:g}G"


def _init_ray(cfg: SearchConfig) -> bool:
    """Start (or join) Ray; returns whether we started it and so must shut it down.

    A Ray started here (no `--address`, no RAY_ADDRESS, no `ray start` cluster that Ray would
    join by itself) has no dashboard and listens on loopback only. Ray's servers bind to
    loopback exactly when the node's IP is 127.0.0.1 (GCS, raylet, object manager, workers,
    dashboard and runtime-env agents), but `ray.init(_node_ip_address="127.0.0.1")` (Ray 2.60)
    first rewrites a localhost address into the machine's network address
    (`services.resolve_ip_for_localhost`), after which every service listens on the network.
    That rewrite is switched off for the duration of the call.
    """
    import logging

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


def _row(config: dict[str, Any], result: dict[str, Any] | None, status: str, error: str,
         wall_s: float, trial_id: str) -> dict[str, Any]:
    result = result or {}
    top1 = result.get("top1", math.nan) if status != "error" else math.nan
    if status == "diverged" and not result.get("epoch"):
        top1 = math.nan
    arch = Arch.from_row(config["arch"])
    return {**arch.to_row(), "trial_id": trial_id, "order": config["order"],
            "reference": config["reference"], "fitted": config["fitted"],
            "flops": config["flops"], "params": config["params"], "status": status,
            "epochs": int(result.get("epoch", 0) or 0), "top1": top1,
            "top5": result.get("top5", math.nan) if status != "error" else math.nan,
            "loss": result.get("loss", math.nan), "wall_s": wall_s,
            "images_per_s": result.get("images_per_s", math.nan),
            "node_id": result.get("node_id", ""), "optuna_number": config["optuna_number"],
            "proxy_width": scale_width(arch, config["proxy"]["width_mult"]).width,
            "seed": config["seed"], "error": error or result.get("message", "")}


def _callback_class():
    from ray.tune import Callback

    class TableWriter(Callback):
        """Writes the trials table after every finished trial, and owns the time budget.

        It also remembers each running trial's last reported result, so that when the whole
        run stops (time budget, Ctrl-C, SIGTERM) the trials in flight that reported an epoch
        can be recorded as cut short (`cut_short`), with the metrics of their last epoch.
        """

        def __init__(self, run_dir: Path, rows: list[dict[str, Any]], planned_epochs: int,
                     progress: "Progress", deadline: float = math.inf):
            self.run_dir, self.rows, self.planned = run_dir, rows, planned_epochs
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
            result = trial.last_result or {}
            status = trial_status(result, error, self.planned)
            wall = time.time() - self.started.get(trial.trial_id, time.time())
            self._record(_row(trial.config, result, status, error_text, wall, trial.trial_id),
                         trials)

        def expired(self) -> bool:
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
                wall = time.time() - self.started.get(trial_id, time.time())
                note = cut_short_note(reason, epochs, self.planned)
                self._record(_row(config, result, "stopped_early", note, wall, trial_id), [])
                n += 1
            return n

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._finish(trial, "", False, trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._finish(trial, _error_text(trial), True, trials)

    return TableWriter


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


class Progress:
    """A live status line (or one line per finished trial when not on a terminal)."""

    def __init__(self, total: int, start: float, time_budget: float | None):
        self.total, self.start, self.time_budget = total, start, time_budget
        self.tty = self.stream.isatty()
        self.done = 0
        self.running = 0
        self.best: tuple[float, str] | None = None
        self.durations: list[float] = []
        self.concurrency = 1

    @property
    def stream(self):
        # Looked up on use, not stored: Tune pickles its callbacks, and a stream cannot be.
        return sys.stderr

    def update(self, trials) -> None:
        self.running = sum(1 for t in trials if t.status == "RUNNING")
        self.concurrency = max(self.concurrency, self.running)
        if self.tty:
            self._line(end="\r")

    def finished(self, row: dict[str, Any], trials) -> None:
        self.done += 1
        self.durations.append(row["wall_s"])
        top1 = row["top1"]
        if row["status"] == "completed" and isinstance(top1, float) and math.isfinite(top1):
            if self.best is None or top1 > self.best[0]:
                self.best = (top1, _short(row))
        self.running = sum(1 for t in trials if t.status == "RUNNING")
        shown = f"{top1:.3f}" if isinstance(top1, float) and math.isfinite(top1) else "-"
        msg = (f"[{self.done}/{self.total}] {row['status']:<13} top1 {shown:>5}  "
               f"{row['flops'] / 1e9:.2f} GFLOPs  {row['wall_s']:.0f}s  {_short(row)}")
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(msg + "\n")
        if self.tty:
            self._line(end="\r")
        self.stream.flush()

    def eta(self) -> float | None:
        if not self.durations:
            return None
        left = max(0, self.total - self.done)
        avg = sum(self.durations) / len(self.durations)
        est = left * avg / max(1, self.concurrency)
        if self.time_budget is not None:
            est = min(est, max(0.0, self.time_budget - (time.time() - self.start)))
        return est

    def _line(self, end: str) -> None:
        elapsed = time.time() - self.start
        best = f"best {self.best[0]:.3f} ({self.best[1]})" if self.best else "best -"
        eta = self.eta()
        left = f"~{eta / 60:.1f} min left" if eta is not None else "time left: estimating"
        self.stream.write(f"\033[K{self.done}/{self.total} done, {self.running} running, "
                          f"{elapsed / 60:.1f} min, {left}, {best}"[:200] + end)
        self.stream.flush()


def _short(row: dict[str, Any]) -> str:
    ref = f"[{row['reference']}] " if row.get("reference") else ""
    return (f"{ref}{row['stem']} d{row['depths']} w{row['width']} e{row['expansion']:g} "
            f"g{row['groups']} k{row['kernel']} {row['spatial_conv']} {row['act']} "
            f"{row['activations']}-act {row['norm']}/{row['norms']} {row['downsample']}-ds")


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
    from .roadmap import roadmap_steps

    out = []
    for step in roadmap_steps():
        c = complexity(step.arch)
        out.append(Candidate(step.arch, c.flops, c.params, False, step.name, step.recipe))
    return out


# ----- stopping: signals and the time budget -----
class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C's KeyboardInterrupt is, so that one clean stop serves both."""


class StopSignals:
    """SIGINT and SIGTERM during a search, as exceptions (KeyboardInterrupt, Terminated).

    Without this, SIGTERM reaches the handler that `ray.init` installs, which kills Ray's own
    processes under the driver and exits: the driver then aborts in Ray's C++ code (status
    134), with no resume command and no table of the trials in flight. Here SIGTERM takes
    Ctrl-C's path instead. Only the first SIGTERM is raised: the ones after it would cut the
    clean stop itself short. Inside `deferred()` sections (Ray's start, making the run folder,
    creating the study, the final write) both signals wait until the section ends, so no
    signal leaves half of one behind.
    """

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.depth = 0
        self.waiting: BaseException | None = None
        self.terminated = False

    def install(self) -> "StopSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(sig)
                if current != self._handle:
                    self.previous.setdefault(sig, current)
                signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self.previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        if signum == signal.SIGTERM:
            if self.terminated:
                return
            self.terminated = True
            exc: BaseException = Terminated()
        else:
            exc = KeyboardInterrupt()
        if self.depth:
            self.waiting = self.waiting or exc
            return
        raise exc

    @contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0 and self.waiting is not None:
            exc, self.waiting = self.waiting, None
            raise exc


def signal_name(exc: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


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
    import optuna

    fault = faults.from_environment()
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        meta = read_run_json(run_dir)
        cfg = config_from_run_json(run_dir / RUN_JSON, meta["config"], _resume_overrides(cfg))
        prior = read_table(run_dir) if (run_dir / "trials.parquet").exists() else None
        check_study_file(run_dir / STUDY_FILE)
        note = unknown_columns_note(run_dir, prior.columns) if prior is not None else None
        if note:
            print(note, file=sys.stderr)
    else:
        meta, prior = None, None
    # On a resume every setting comes from run.json: an error about one names the file.
    named = functools.partial(_naming_run_json, run_dir if resume_dir is not None else None)
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
    from .train import check_resolution, load_proxy_data

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
            started_ray = _init_ray(cfg)
        signals.install()  # again: Ray may have put its own SIGTERM handler in place
        check_resources(cfg)
        rows: list[dict[str, Any]] = []
        if prior is not None:  # errors and trials cut short are trained again
            kept = prior[prior["status"] != "error"]
            rows = [r for r in map(_restore_row, kept.to_dict("records")) if not is_cut_short(r)]
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
        end = TuneEnd()
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
                    raise _write_failure(run_dir, exc) from None
            faults.at(fault, "study")
            with signals.deferred():
                study = _open_study(run_dir, sampler)
            pending, done, proposed = work_left(study, rows, refs)
            if on_start is not None:
                on_start(run_dir)
            remaining = len(pending) + max(0, cfg.trials - proposed)
            if remaining > 0:
                end = _tune(cfg, proxy, space, study, data, run_dir, rows, pending, done,
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
                raise _write_failure(run_dir, exc) from None
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


@contextmanager
def _naming_run_json(run_dir: Path | None, field: str):
    """On a resume, errors about a setting read from run.json name the file and the field."""
    try:
        yield
    except ValueError as exc:
        if run_dir is None:
            raise
        raise ValueError(f"{run_dir / RUN_JSON}: field 'config.{field}': {exc}") from None


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


def _open_study(run_dir: Path, sampler):
    import optuna

    storage = f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(study_name="search", storage=storage, sampler=sampler,
                                    directions=["maximize", "minimize"], load_if_exists=True)
        study.set_metric_names(["top1", "gflops"])
    return study


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


def check_storage_path(path: str | None) -> None:
    """Refuse, before anything is made, a --storage-path that cannot be Ray's folder: a file,
    a path through a file, or a folder that cannot be written."""
    if not path:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--storage-path {path}: is a file, not a folder: give a folder (it is "
                         "made if missing)")
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"--storage-path {path}: {existing} is a file, not a folder")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--storage-path {path}: cannot write in {existing}; give a folder you "
                         "can write")


def _resume_overrides(cfg: SearchConfig) -> dict[str, Any]:
    # Where the cluster is may change between the run and its resumption; the design of the
    # experiment may not.
    out: dict[str, Any] = {}
    if cfg.address:
        out["address"] = cfg.address
    return out


def _restore_row(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    for k, v in out.items():
        if hasattr(v, "item"):
            out[k] = v.item()
    return out


def work_left(study, rows: list[dict[str, Any]], refs: list[Candidate]
              ) -> tuple[list[Queued], dict[str, dict], int]:
    """A run's state, read from its table and its study (both empty for a new run).

    Returns what to train before any new proposal (reference points without a row, then the
    designs an interrupted run had chosen but not finished), the outcome of every design with
    a row, by `Arch.key`, and how many searched designs count as proposed already.
    """
    done = {Arch.from_row(r).key(): {"status": r["status"], "top1": r["top1"],
                                     "flops": r["flops"]} for r in rows}
    done_refs = {r["reference"] for r in rows if r["reference"]}
    pending = [Queued(c) for c in refs if c.reference not in done_refs]
    unfinished = unfinished_proposals(study, done)
    proposed = sum(1 for r in rows if not r["reference"]) + len(unfinished)
    return pending + unfinished, done, proposed


@dataclass(frozen=True)
class TuneEnd:
    """How the trials ended: all done, or stopped (by which), and what that left."""
    stopped_by: str | None = None   # "SIGINT", "SIGTERM", "time budget"
    cut: int = 0                    # trials recorded as cut short
    exhausted: bool = False         # the space (the grid) had no more designs to propose


def _tune(cfg: SearchConfig, proxy: Proxy, space: DesignSpace, study, data, run_dir: Path,
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
    base = {"proxy": proxy.to_dict(), "seed": cfg.seed, "cpus_per_trial": cfg.cpus_per_trial,
            "order_start": max([int(r["order"]) for r in rows], default=0), "fault": fault}
    sampler = functools.partial(proposal_sampler, cfg.sampler, cfg.seed, space)
    grid = space.size if cfg.sampler == "grid" else None
    searcher = _searcher_class()(study, space, cfg.budget, cfg.fit_width, cfg.trials, pending,
                                 done, base, planned, proposed, sampler, grid_size=grid)
    total = len(pending) + max(0, cfg.trials - proposed)
    if grid is not None:  # at most the grid's points not proposed yet
        total = min(total, len(pending) + max(0, grid - len(searcher.points)))
    start = time.time()
    progress = Progress(max(1, total), start, cfg.time_budget_s)
    deadline = start + cfg.time_budget_s if cfg.time_budget_s is not None else math.inf
    writer = _callback_class()(run_dir, rows, planned, progress, deadline)
    scheduler = None
    if cfg.scheduler == "asha" and planned > 1:
        scheduler = _asha(planned)
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    trainable_fn = tune.with_resources(tune.with_parameters(trainable, data=data), resources)
    storage = Path(cfg.storage_path).resolve() if cfg.storage_path else run_dir.resolve()
    # The time budget is the stopper's (`RunStopper`), not Tune's `time_budget_s`: Tune's
    # ends the trials in flight without a callback, so their rows would be lost.
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
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
            raise _write_failure(run_dir, writer.write_error, gone=writer.gone)
        if stopped_by is None and writer.expired() and (writer.unfinished()
                                                        or searcher.work_left()):
            stopped_by = "time budget"
        cut = writer.cut_short(stopped_by) if stopped_by else 0
    return TuneEnd(stopped_by, cut, searcher.ran_out())


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None if it is not one: a folder removed and made again
    (Tune makes its own subfolder again) is not the same folder."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _write_failure(run_dir: Path, exc: OSError, gone: bool = False) -> ValueError:
    name = Path(exc.filename).name if getattr(exc, "filename", None) else "trials.parquet"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if gone or not run_dir.is_dir():  # removed, or replaced by a file, while the search ran
        return ValueError(f"could not write {run_dir / name}: {reason}: {run_dir} is no longer "
                          "a folder (it was removed or replaced while the search ran), so the "
                          "trials of this run are lost; start a new run")
    return ValueError(f"could not write {run_dir / name}: {reason}; the last good table is "
                      f"kept: free some space (or make the folder writable) and resume with "
                      f"--resume {run_dir}")


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
