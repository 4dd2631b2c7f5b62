"""The Optuna side of a search: what will be trained, the samplers, and the searcher.

Optuna owns the proposals (a seeded sampler, two objectives: proxy top-1 up, and GFLOPs, the
measured latency down or the measured throughput up (`objective.Objective`); the FLOP budget
and any speed limits as constraints set with `trial.set_constraint`). `StudySearcher` asks the study for
designs and tells it the outcomes itself, so that trials stopped early are reported to Optuna
as pruned, not as finished results. It knows nothing of Ray: `raytune` wraps it in a Tune
Searcher. Each proposal's sampler is seeded by the run's seed and the trial's number
(`proposal_seed`), so a resumed run goes on proposing what the uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..design.arch import REFERENCES, Arch, presets
from ..design.codec import param
from ..design.complexity import complexity, fit_width
from ..design.space import DesignSpace
from ..results import STUDY_FILE
from ..training.proxy import proxy_from_dict
from .objective import Objective
from .outcome import TrialOutcome

GRID_LIMIT = 10_000


# ----- planning: what will be trained -----
@dataclass(frozen=True)
class Candidate:
    """A design as it will be trained. `seed`: the trial's own seed (a calibration trains each
    roadmap step under several); None: the run's seed (`--seed`)."""

    arch: Arch
    flops: int
    params: int
    fitted: bool
    reference: str = ""        # the preset's name for reference points and roadmap steps
    recipe: str = "modern"     # roadmap step 0 trains with ResNet's original recipe
    seed: int | None = None

    def trial_seed(self, run_seed: int) -> int:
        return run_seed if self.seed is None else self.seed


#: A trial's identity: the design (`Arch.key`) and the seed it is trained with. The same
#: design under two seeds is two trials (a calibration); under one seed, one trial, never two.
TrialKey = tuple[str, int]


def trial_key(arch: Arch, seed: int) -> TrialKey:
    return (arch.key(), int(seed))


def row_key(row: dict[str, Any], run_seed: int) -> TrialKey:
    """The identity of a table row; rows of tables written before the seed column carry the
    run's seed."""
    seed = row.get("seed")
    if seed is None or math.isnan(float(seed)):  # missing, or NaN in an older table
        seed = run_seed
    return trial_key(Arch.from_row(row), int(seed))


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
    # Under 1 GFLOPs the GFLOPs figure rounds away what was typed: name the FLOPs as well.
    shown = (f"{budget / 1e9:.3f} GFLOPs" if budget >= 1e9 else
             f"{budget / 1e9:.3f} GFLOPs ({budget:g} FLOPs)" if budget >= 1e6 else
             f"{budget:g} FLOPs")
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

    grid = {k: [param(v) for v in vals] for k, vals in space.dimensions.items()}
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


def tell_outcome(study, trial, outcome: dict[str, Any], objective: Objective | None = None
                 ) -> None:
    """Tell Optuna a trained design's outcome; `trial` is a Trial or a trial number.

    The second value is the objective's (GFLOPs by default, else the measured latency or
    throughput). Stopped-early trials are PRUNED (their top-1 is not a finished result);
    diverged ones count as top-1 0 at their cost, so the sampler learns to avoid them;
    errors are FAIL. A measured speed sets the speed constraints (`Objective.constraints`)
    first, so a design over a latency budget (status `infeasible`, top-1 0) is infeasible to
    Optuna, as a design over the FLOP budget is. A trial whose second value was not measured
    cannot be placed, and is FAIL.
    """
    from optuna.trial import TrialState

    objective = objective or Objective()
    status = outcome["status"]
    second = objective.second_value(outcome)
    constraints = objective.constraints(outcome)
    if constraints:
        handle = _trial_handle(study, trial)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constraint set before (a re-tell) stays
            for key, value in constraints.items():
                handle.set_constraint(key, value)
    if status in ("completed", "diverged", "infeasible") and not second == second:  # NaN
        study.tell(trial, state=TrialState.FAIL)
    elif status == "completed":
        study.tell(trial, [float(outcome["top1"]), second])
    elif status in ("diverged", "infeasible"):
        study.tell(trial, [0.0, second])
    elif status == "stopped_early":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _trial_handle(study, trial):
    """A Trial to set constraints on, for a Trial or a trial number (a resumed trial)."""
    if not isinstance(trial, int):
        return trial
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial)
    return optuna.trial.Trial(study, trial_id)


def unfinished_proposals(study, done: dict[TrialKey, dict], seed: int = 0,
                         objective: Objective | None = None) -> list[Queued]:
    """The designs an interrupted run chose for training but has no row of: to train first.

    Each keeps its Optuna trial, and so its number: together with `proposal_seed`, the resumed
    run then proposes trial for trial what the uninterrupted run would have. A trial still
    RUNNING is told its outcome once its design is trained; one the study was told of whose row
    was never written (the run stopped between the two) is trained for its row only; a RUNNING
    trial whose row exists is told from the row (in the run's `objective`, as the searcher
    tells it). A trial interrupted while it was being proposed (no design chosen yet) is
    marked failed.
    """
    from optuna.trial import TrialState

    out: list[Queued] = []
    seen: set[TrialKey] = set()
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
        key = trial_key(arch, seed)
        if key in done:
            if running:
                tell_outcome(study, t.number, done[key], objective)
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


class StudySearcher:
    """The designs to train, one per call of `suggest`, and what Optuna is told of each.

    First the queued designs (reference points, designs an interrupted run had in flight),
    then Optuna's proposals until `trials` searched designs have been proposed or the space
    has no new one. Ray Tune drives it through `raytune.tune_searcher`; the tests drive it
    directly, one trial at a time.
    """

    def __init__(self, study, space: DesignSpace, budget: float, fit: bool,
                 trials: int, pending: list[Queued], done: dict[TrialKey, dict],
                 base_config: dict[str, Any], planned_epochs: int, already: int,
                 sampler: Callable[[int], Any], grid_size: int | None = None,
                 objective: Objective | None = None):
        self.study, self.space, self.budget, self.fit = study, space, budget, fit
        self.objective = objective or Objective()
        self.sampler = sampler              # trial number -> the sampler that proposes it
        self.trials, self.pending, self.done = trials, list(pending), dict(done)
        self.base, self.planned_epochs = base_config, planned_epochs
        self.asked = already            # searched designs proposed so far (incl. resumed)
        self.live: dict[str, Any] = {}  # tune trial id -> optuna trial (or its number)
        self.configs: dict[str, dict[str, Any]] = {}
        self.in_flight: set[TrialKey] = set()  # (design, seed) of the trials training now
        self.order = base_config.get("order_start", 0)
        self.exhausted = False
        # With the grid sampler: the grid's size and the points proposed so far. Once
        # every point has been proposed, the grid is done (the sampler would repeat).
        self.grid_size = grid_size
        self.points = {self._point(t) for t in study.get_trials(deepcopy=False) if t.params}

    def _config(self, trial_id: str, cand: Candidate, number: int | None) -> dict[str, Any]:
        self.order += 1
        seed = cand.trial_seed(int(self.base["seed"]))
        self.in_flight.add(trial_key(cand.arch, seed))
        proxy = proxy_from_dict(self.base["proxy"]).with_recipe(cand.recipe)
        cfg = {**self.base, "seed": seed, "proxy": proxy.to_dict(), "arch": cand.arch.to_dict(),
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

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The config of the next trial to train, None when there is none left."""
        from optuna.trial import TrialState

        if self.pending:
            q = self.pending.pop(0)
            if q.tell:
                self.live[trial_id] = q.number
            return self._config(trial_id, q.cand, q.number)
        if self.asked >= self.trials or self.exhausted:
            return None  # finished
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
                # Never measured, so over a time objective it is told the worst time.
                self.study.tell(t, [0.0, self.objective.second_value({"flops": flops})
                                    if self.objective.name == "flops"
                                    else self.objective.worst()])
                continue
            key = trial_key(cand.arch, int(self.base["seed"]))  # proposals: the run's seed
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
        return None  # finished

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
        self.study.enqueue_trial({f: param(getattr(arch, f)) for f in self.space.dimensions})

    def ran_out(self) -> bool:
        """Whether the space had fewer new designs than the trials asked for."""
        return self.asked < self.trials and (self.exhausted or self._grid_done())

    def work_left(self) -> bool:
        """Whether designs are left to train (none when the run has done its work)."""
        return bool(self.pending) or (self.asked < self.trials and not self.ran_out())

    def _tell(self, t, outcome: dict[str, Any]) -> None:
        tell_outcome(self.study, t, outcome, self.objective)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        t = self.live.pop(trial_id, None)
        cfg = self.configs.pop(trial_id, {})
        arch_row = cfg.get("arch")
        outcome = TrialOutcome.of(result, error, self.planned_epochs).told(cfg.get("flops", 0))
        if arch_row is not None:
            key = trial_key(Arch.from_row(arch_row), int(cfg["seed"]))
            self.in_flight.discard(key)
            if outcome["status"] != "error":
                self.done[key] = outcome
        if t is not None:
            self._tell(t, outcome)



def open_study(run_dir: Path, sampler, objective: Objective | None = None):
    """The run's Optuna study: proxy top-1 up, and the objective's cost (GFLOPs, latency)
    down or throughput up."""
    import optuna

    objective = objective or Objective()
    storage = f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(study_name="search", storage=storage, sampler=sampler,
                                    directions=objective.directions(), load_if_exists=True)
        study.set_metric_names(objective.metric_names())
    return study
