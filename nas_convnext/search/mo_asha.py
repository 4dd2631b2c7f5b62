"""Multi-objective ASHA: early stopping that keeps the designs a Pareto front needs.

ASHA stops a trial at a rung when its top-1 is below the best 1/eta of the trials that reached
the rung before it. With two objectives (proxy top-1 up, GFLOPs down) that stops the cheap
designs first, since they are the least accurate at every rung, and the front a run returns
leans toward expensive designs. Multi-objective ASHA (Schmucker et al. 2021, "Multi-objective
Asynchronous Successive Halving") keeps ASHA's rungs and replaces "the best 1/eta by top-1"
with "the best 1/eta by non-dominated sorting".

The rule (`promotes`): at a rung with n records (the trial's own included), rank every record
by (front, crowding): its non-dominated front under (top-1 up, GFLOPs down), 0 the best, as in
NSGA-II's sorting; then, within a front, its crowding distance (larger first; a front's two
extremes, the most accurate and the cheapest, have an infinite distance). The trial goes on
when fewer than ceil(n / eta) records rank strictly ahead of it; a tie goes on, as ASHA lets a
trial equal to its cutoff go on. Records with a NaN top-1 (a diverged trial) rank last. Trials
marked as references are recorded but never stopped.

The decision is a pure function of hand-made rung records (`promotes`, `rank_records`), so it
is tested without Ray; `MOASHA` keeps a run's rungs (also usable without Ray, e.g. by a
replayed run, see replay.simulate_run); `mo_asha_scheduler` makes the Ray Tune
`TrialScheduler` around it (Ray imported only then), which reads a trial's FLOPs and reference
flag from its config (`flops`, `reference`, as the search's searcher puts them there).

With a time objective (`search --objective latency|throughput`) the cost is the trial's
measured time instead of its GFLOPs: the batch-1 latency in ms, or the time per image at the
throughput batch in ms (1000 / throughput, so that smaller is better here too), read from the
results the trial reports (it measures its speed before its first epoch and reports it with
every epoch). A trial without that figure has a NaN cost and ranks in the last front.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class RungRecord:
    """One trial's result at a rung: what the rung's decision compares.

    `top1` is a fraction (higher is better; NaN for a trial without a usable result) and
    `gflops` the cost (lower is better): the design's full-size GFLOPs, or with a time
    objective its measured milliseconds (see `measured_cost`).
    """

    trial_id: str
    top1: float
    gflops: float


def _objectives(r: RungRecord) -> tuple[float, float]:
    """Both objectives as "smaller is better"; a NaN top-1 becomes the worst possible."""
    top1 = r.top1 if isinstance(r.top1, (int, float)) and not math.isnan(r.top1) else -math.inf
    return (-top1, float(r.gflops))


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def front_ranks(records: Sequence[RungRecord]) -> list[int]:
    """Each record's non-dominated front (0: dominated by none); records without a top-1 or
    FLOPs (NaN) form one last front.

    The fronts of repeated peeling, found in one pass (the "efficient non-dominated sort" of
    Zhang et al. 2015): taken in lexicographic order of their objectives, each record joins
    the first front none of whose members dominates it. With two objectives a front is
    summarised by its least GFLOPs-objective and the first member reaching it, so a rung of
    hundreds of records takes well under a millisecond per front.
    """
    points = [_objectives(r) for r in records]
    ranks = [-1] * len(points)
    usable = [i for i, p in enumerate(points) if all(math.isfinite(x) for x in p)]
    # per front: (least second objective, first objective of the member that reached it)
    fronts: list[tuple[float, float]] = []
    for i in sorted(usable, key=lambda i: points[i]):
        a, b = points[i]
        k = 0
        # members come earlier in the order, so each has a first objective <= a: one
        # dominates (a, b) when its second is lower, or equal with a lower first
        while k < len(fronts) and (fronts[k][0] < b or (fronts[k][0] == b
                                                         and fronts[k][1] < a)):
            k += 1
        if k == len(fronts):
            fronts.append((b, a))
        elif b < fronts[k][0]:
            fronts[k] = (b, a)
        ranks[i] = k
    last = len(fronts)
    for i, _p in enumerate(points):   # no top-1 (or no FLOPs): behind every front
        if ranks[i] < 0:
            ranks[i] = last
    return ranks


def _front_ranks_by_peeling(records: Sequence[RungRecord]) -> list[int]:
    """The definition `front_ranks` computes faster: peel the non-dominated records off,
    front by front (kept for the tests, which compare the two)."""
    points = [_objectives(r) for r in records]
    ranks = [-1] * len(points)
    unusable = {i for i, p in enumerate(points) if not all(math.isfinite(x) for x in p)}
    left = set(range(len(points))) - unusable
    front = 0
    while left:
        current = {i for i in left
                   if not any(_dominates(points[j], points[i]) for j in left if j != i)}
        for i in current:
            ranks[i] = front
        left -= current
        front += 1
    for i in unusable:
        ranks[i] = front
    return ranks


def crowding_distances(records: Sequence[RungRecord], ranks: Sequence[int]) -> list[float]:
    """NSGA-II's crowding distance of each record within its own front.

    Per objective, the front is sorted; its two ends get infinity and every other record the
    gap between its neighbours divided by the front's range. A front of one or two records is
    all ends. Identical points share the distance of the first of them in the sort.
    """
    points = [_objectives(r) for r in records]
    dist = [0.0] * len(points)
    by_front: dict[int, list[int]] = {}
    for i, f in enumerate(ranks):
        by_front.setdefault(f, []).append(i)
    for members in by_front.values():
        for k in range(2):
            order = sorted(members, key=lambda i: (points[i][k], records[i].trial_id))
            lo, hi = points[order[0]][k], points[order[-1]][k]
            dist[order[0]] = dist[order[-1]] = math.inf
            span = hi - lo
            if not math.isfinite(span) or span <= 0:
                continue
            for a, i, b in zip(order, order[1:], order[2:]):
                dist[i] += (points[b][k] - points[a][k]) / span
    return dist


def rank_records(records: Sequence[RungRecord]) -> list[tuple[int, float]]:
    """Each record's sort key (front, -crowding distance): smaller ranks ahead."""
    ranks = front_ranks(records)
    crowd = crowding_distances(records, ranks)
    return [(f, -c) for f, c in zip(ranks, crowd)]


def promotes(candidate: RungRecord, others: Sequence[RungRecord],
             reduction_factor: float) -> bool:
    """Whether `candidate` goes on from a rung where `others` were recorded before it.

    It goes on when fewer than ceil(n / reduction_factor) of the n records (others and the
    candidate) rank strictly ahead of it by (non-dominated front, crowding distance); see the
    module's docstring. The first trial at a rung always goes on.

    Parameters: `candidate`, the trial deciding now; `others`, the records already at the
    rung (a record with the candidate's trial_id is replaced by the candidate);
    `reduction_factor`, eta > 1, the share 1/eta of a rung that goes on.
    """
    if not reduction_factor > 1:
        raise ValueError(f"reduction_factor={reduction_factor!r} must be a number above 1")
    records = [r for r in others if r.trial_id != candidate.trial_id] + [candidate]
    keys = rank_records(records)
    mine = keys[-1]
    ahead = sum(1 for k in keys[:-1] if k < mine)
    return ahead < math.ceil(len(records) / reduction_factor)


def rung_milestones(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The epochs at which trials are judged: grace_period * eta^k, below max_t (ASHA's)."""
    if grace_period < 1 or max_t < grace_period:
        raise ValueError(f"grace_period={grace_period!r} must be at least 1 and at most "
                         f"max_t={max_t!r}")
    out, m = [], float(grace_period)
    while m < max_t:
        out.append(math.ceil(m))
        m *= reduction_factor
    return sorted(set(out))


class MOASHA:
    """The rungs of one run and their decisions, without Ray (the scheduler wraps this).

    Parameters: `max_t`, the planned epochs; `grace_period`, the first rung's epoch;
    `reduction_factor`, eta: rungs at grace_period * eta^k below max_t, and 1/eta of each
    rung goes on.
    """

    def __init__(self, max_t: int, grace_period: int = 1, reduction_factor: float = 3):
        if not reduction_factor > 1:
            raise ValueError(f"reduction_factor={reduction_factor!r} must be a number above 1")
        self.max_t, self.grace_period = max_t, grace_period
        self.reduction_factor = reduction_factor
        self.milestones = rung_milestones(max_t, grace_period, reduction_factor)
        # milestone -> trial_id -> (top1, gflops), in the order trials reached the rung
        self.rungs: dict[int, dict[str, tuple[float, float]]] = {m: {} for m in self.milestones}
        self.num_stopped = 0

    def record(self, trial_id: str, epoch: float, top1: float,
               gflops: float) -> tuple[RungRecord, list[RungRecord]] | None:
        """Record a result at the highest rung `epoch` reached, unless the trial is already
        there: (its record, the records before it) for a new record, else None."""
        reached = [m for m in self.milestones if epoch >= m]
        if not reached or trial_id in self.rungs[reached[-1]]:
            return None
        rung = self.rungs[reached[-1]]
        others = [RungRecord(t, v[0], v[1]) for t, v in rung.items()]
        rec = RungRecord(trial_id, float(top1), float(gflops))
        rung[trial_id] = (rec.top1, rec.gflops)
        return rec, others

    def goes_on(self, trial_id: str, epoch: float, top1: float, gflops: float,
                reference: bool = False) -> bool:
        """Record a trial's result after `epoch`; whether it trains on. A trial that reached
        max_t has nothing left to train (False, as ASHA stops it); a reference always goes
        on before max_t; between rungs every trial goes on."""
        if epoch >= self.max_t:
            return False
        new = self.record(trial_id, epoch, top1, gflops)
        if new is None or reference:
            return True
        if promotes(new[0], new[1], self.reduction_factor):
            return True
        self.num_stopped += 1
        return False

    def to_state(self) -> dict[str, Any]:
        return {"milestones": self.milestones, "num_stopped": self.num_stopped,
                "rungs": {str(m): [[t, v[0], v[1]] for t, v in r.items()]
                          for m, r in self.rungs.items()}}

    def load_state(self, state: Any, where: str = "MO-ASHA state") -> None:
        """Take the rungs of `to_state` (read from JSON), refusing a state of other rungs."""
        try:
            milestones = [int(m) for m in state["milestones"]]
            rungs = {int(m): {str(t): (float(a), float(g)) for t, a, g in r}
                     for m, r in state["rungs"].items()}
            stopped = int(state["num_stopped"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where} is not a saved MO-ASHA state") from None
        if milestones != self.milestones:
            raise ValueError(f"{where} has rungs at epochs {milestones}; this run's are at "
                             f"{self.milestones}")
        self.rungs = {m: rungs.get(m, {}) for m in self.milestones}
        self.num_stopped = stopped


def scheduler_class():
    """The Ray Tune scheduler class (Ray imported only here, on first use)."""
    global _SCHEDULER
    if _SCHEDULER is None:
        _SCHEDULER = _make_scheduler_class()
    return _SCHEDULER


_SCHEDULER = None


#: The costs MO-ASHA can compare besides FLOPs: the search's objective -> the reported
#: figure and whether it is a rate (images/s, turned into ms per image).
TIME_COSTS = {"latency": ("latency_ms", False), "throughput": ("throughput", True)}


def measured_cost(cost: str, result: dict[str, Any]) -> float:
    """The measured time a trial reported, as a cost (smaller is better): its batch-1 latency
    in ms (`cost` 'latency'), or 1000 / its throughput, ms per image ('throughput'); NaN
    when the trial reported none."""
    key, rate = TIME_COSTS[cost]
    try:
        value = float(result.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(value) or value <= 0:
        return math.nan
    return 1000.0 / value if rate else value


def mo_asha_scheduler(max_t: int, grace_period: int = 1, reduction_factor: float = 3,
                      time_attr: str = "epoch", metric: str = "top1", cost_key: str = "flops",
                      reference_key: str = "reference", cost: str = "flops"):
    """A Ray Tune scheduler running multi-objective ASHA (see the module's docstring).

    Parameters: `max_t`, the planned epochs; `grace_period`, `reduction_factor`: ASHA's rung
    spacing and promoted share 1/eta (the search uses 1 and 3, as for ASHA); `time_attr`, the
    reported epoch counter; `metric`, the reported top-1 (maximised); `cost_key`, the config
    key holding the design's FLOPs (minimised, compared in GFLOPs); `reference_key`, a config
    key that, when truthy, marks a trial that is never stopped; `cost`, the search's second
    objective: 'flops' (the config's `cost_key`), or 'latency' / 'throughput' (the trial's
    reported figure, see `measured_cost`).
    """
    if cost != "flops" and cost not in TIME_COSTS:
        raise ValueError(f"MO-ASHA cost {cost!r}: expected flops, {', '.join(TIME_COSTS)}")
    return scheduler_class()(max_t, grace_period, reduction_factor, time_attr, metric,
                             cost_key, reference_key, cost)


def _make_scheduler_class():
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class MOASHAScheduler(FIFOScheduler):
        """Multi-objective ASHA for Ray Tune: `MOASHA`'s decisions on reported results."""

        def __init__(self, max_t: int, grace_period: int = 1, reduction_factor: float = 3,
                     time_attr: str = "epoch", metric: str = "top1", cost_key: str = "flops",
                     reference_key: str = "reference", cost: str = "flops"):
            super().__init__()
            self.core = MOASHA(max_t, grace_period, reduction_factor)
            self.time_attr, self._metric = time_attr, metric
            self.cost_key, self.reference_key, self.cost = cost_key, reference_key, cost

        def set_search_properties(self, metric: str | None, mode: str | None,
                                  **spec: Any) -> bool:
            # The direction is fixed (top-1 up, cost down): refuse what would invert it.
            return mode in (None, "max") and metric in (None, self._metric)

        def _gflops(self, trial: Any, result: dict) -> float:
            """The trial's cost: GFLOPs from its config, or its reported measured time."""
            if self.cost != "flops":
                return measured_cost(self.cost, result)
            return float(trial.config.get(self.cost_key, math.nan)) / 1e9

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if self.time_attr not in result or self._metric not in result:
                return TrialScheduler.CONTINUE
            on = self.core.goes_on(trial.trial_id, result[self.time_attr],
                                   result[self._metric], self._gflops(trial, result),
                                   bool(trial.config.get(self.reference_key)))
            return TrialScheduler.CONTINUE if on else TrialScheduler.STOP

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            # A trial that ended on its own still counts at the rung it reached last.
            if result and self.time_attr in result and self._metric in result:
                self.core.record(trial.trial_id, result[self.time_attr], result[self._metric],
                                 self._gflops(trial, result))

        def debug_string(self) -> str:
            sizes = ", ".join(f"epoch {m}: {len(r)}" for m, r in self.core.rungs.items())
            return f"MO-ASHA: stopped {self.core.num_stopped}; trials per rung: {sizes}"

        # resume: plain JSON, never a pickle
        def save(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "w") as fh:
                json.dump(self.core.to_state(), fh)

        def restore(self, checkpoint_path: str) -> None:
            from ..userfile import FileRefused, load_file

            try:  # the one bounded reader of JSON files
                state = load_file(checkpoint_path, "json")
            except (FileRefused, ValueError):
                raise ValueError(f"{checkpoint_path} is not a saved MO-ASHA state") from None
            self.core.load_state(state, checkpoint_path)

    return MOASHAScheduler
