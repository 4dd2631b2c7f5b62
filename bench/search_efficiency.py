"""Search efficiency: hypervolume gained per unit of compute, per sampler and scheduler.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/search_efficiency.py \
        [--table bench/tables/fmnist-cpu.parquet] [--space search_spaces/bench.yaml] \
        [--samplers random,tpe,nsga2,gp] [--schedulers none,asha,mo-asha] [--seeds 20] \
        [--budget 4.5GFLOPs] [--trials 22] [--horizon 2] [--concurrency 2] \
        [--csv docs/search_efficiency.csv] [--plot docs/search_efficiency.png] \
        [--write docs/BENCHMARKS.md]

Why: whether a sampler or an early-stopping rule pays off can only be said over many whole
searches, and a real one costs hours. On a replay table (every design of the `bench` space
trained once, its top-1 and cumulative seconds after every epoch; see bench/build_table.py and
nas_convnext/search/replay.py) a whole search is simulated in a fraction of a second, so each
(sampler, scheduler) pair runs over many seeds.

What one simulated search does, as `nas-convnext search` does it: the two references first
(never stopped), then the Optuna sampler's proposals (one sampler per search, seeded by the
seed; see `make_search_sampler`) over the space, with the FLOP budget as an Optuna constraint: a design over the
budget is told infeasible without training; one trained already is told its outcome again; a
trial stopped early is told PRUNED. Trials run asynchronously on `--concurrency` simulated
workers (`replay.simulate_run`), each costing its recorded seconds up to the epoch it reached;
the scheduler is `none`, `asha` (Ray Tune's ASHA rule on top-1, rungs at epochs 1 and 3,
eta 3) or `mo-asha` (`search.mo_asha.MOASHA`, the same rungs). While the table is incomplete,
a proposed design that it lacks is told to Optuna as infeasible at no cost (the output says
how many designs the table holds); with the full table that never happens.

What is measured: the dominated hypervolume of the (top-1 up, GFLOPs down) points of the
trials that finished every epoch (the front a search reports) under the budget, against the
reference point (top-1 0.1, GFLOPs = the budget), as a function of the compute spent (the
worker seconds of all trials, stopped ones up to their stop). Every search gets the same
compute: `--horizon` times C, where C is the cost of a default search without early stopping
(both references and `--trials` searched designs at the table's mean cost of a design under
the budget). Per (sampler, scheduler), over the seeds:

* compute to reach the target, as a fraction of C: the target is random search's (scheduler
  none) mean hypervolume at compute C, "random's final hypervolume". Median over seeds with a
  95% percentile-bootstrap interval; a search that has not reached it by the horizon counts
  as never (infinite), so a median of inf means most seeds never reached it;
* hypervolume at equal compute C (and at C/2): mean with a 95% percentile-bootstrap interval;
* the paired difference (same seeds) tpe + mo-asha minus tpe + asha at compute C.

Samplers: random, tpe, nsga2 as the search makes them (`searcher.make_sampler`), and `gp`,
Optuna's GPSampler, which takes constraints (logCEHVI) in Optuna >= 4.5; it is slow (a GP fit
per proposal), so its cost is printed.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench._doc import write_section  # noqa: E402
from nas_convnext.design.arch import REFERENCES, Arch, presets  # noqa: E402
from nas_convnext.design.complexity import complexity, parse_flops  # noqa: E402
from nas_convnext.design.space import DesignSpace, load_space  # noqa: E402
from nas_convnext.search.mo_asha import MOASHA, rung_milestones  # noqa: E402
from nas_convnext.search.replay import ReplayedTrial, ReplayTable, simulate_run  # noqa: E402
from nas_convnext.search.searcher import make_sampler  # noqa: E402

DEFAULT_TABLE = ROOT / "bench" / "tables" / "fmnist-cpu.parquet"
DEFAULT_SPACE = ROOT / "search_spaces" / "bench.yaml"
REF_TOP1 = 0.1          # the hypervolume's reference point: top-1 0.1 (chance on 10 classes)
ETA, GRACE = 3, 1       # the search's ASHA and MO-ASHA settings (raytune._asha)
MAX_ASKS = 100          # proposals in a row that train nothing before a search counts the
                        # space as exhausted (the searcher's limit is 500; lower here, where an
                        # incomplete table leaves most proposals unanswerable)


# ----- the measure -----
def hypervolume(points: list[tuple[float, float]], ref_top1: float, ref_gflops: float) -> float:
    """Area dominated by (top-1 up, GFLOPs down) points and bounded by the reference point,
    in top-1 (fraction) x GFLOPs: sorted by GFLOPs, each slice up to the next point counts the
    best top-1 of the points at or below it."""
    pts = sorted((g, t) for t, g in points if t > ref_top1 and g < ref_gflops)
    area, best = 0.0, ref_top1
    for (g, t), nxt in zip(pts, [p[0] for p in pts[1:]] + [ref_gflops]):
        best = max(best, t)
        area += (nxt - g) * (best - ref_top1)
    return area


# ----- the schedulers, as decide(trial, epoch, top1) -> goes on -----
class AshaRule:
    """Ray Tune's ASHA rule (`AsyncHyperBandScheduler`, one bracket): at a rung, a trial stops
    when its top-1 is below the (1 - 1/eta) percentile of the results recorded there before
    it; references are recorded but never stopped (the search's ReferenceSafeASHA)."""

    def __init__(self, max_t: int, refs: set[int]):
        self.rungs = {m: {} for m in rung_milestones(max_t, GRACE, ETA)}
        self.refs = refs

    def __call__(self, trial: ReplayedTrial, epoch: int, top1: float) -> bool:
        for m in sorted(self.rungs, reverse=True):
            rung = self.rungs[m]
            if epoch < m or trial.number in rung:
                continue
            cutoff = np.nanpercentile(list(rung.values()), (1 - 1 / ETA) * 100) if rung else None
            rung[trial.number] = top1
            return trial.number in self.refs or cutoff is None or not top1 < cutoff
        return True


class MoAshaRule:
    """`MOASHA`'s decisions, with each design's GFLOPs and the references marked."""

    def __init__(self, max_t: int, refs: set[int], gflops: Callable[[Arch], float]):
        self.core = MOASHA(max_t, GRACE, ETA)
        self.refs, self.gflops = refs, gflops

    def __call__(self, trial: ReplayedTrial, epoch: int, top1: float) -> bool:
        return self.core.goes_on(str(trial.number), epoch, top1, self.gflops(trial.arch),
                                 reference=trial.number in self.refs)


# ----- one simulated search -----
@dataclass
class SearchTrace:
    """What one simulated search did: its HV against compute, and counts."""
    compute: np.ndarray      # compute (seconds) at which the HV changed, ascending
    hv: np.ndarray           # the HV from that compute on
    trained: int             # trials started (references included)
    stopped: int             # of them stopped early
    missing: int             # proposals the table lacked (told infeasible)
    over_budget: int         # proposals over the budget (told infeasible)
    asks: int                # proposals in all

    def hv_at(self, c: float) -> float:
        i = np.searchsorted(self.compute, c, side="right") - 1
        return float(self.hv[i]) if i >= 0 else 0.0

    def reaches(self, target: float) -> float:
        """The least compute at which the HV is at least `target` (inf: never)."""
        hit = np.nonzero(self.hv >= target - 1e-12)[0]
        return float(self.compute[hit[0]]) if len(hit) else math.inf


def make_search_sampler(name: str, seed: int, space: DesignSpace):
    """The search's sampler (`searcher.make_sampler`), or Optuna's GPSampler for `gp`.

    One sampler per simulated search, seeded by the search's seed: `nas-convnext search`
    makes a new sampler per proposal (seeded by `proposal_seed`, so a resumed run proposes
    what the uninterrupted one would), which draws from the same distributions but makes TPE
    recompute its search space over every past trial at each proposal, a hundred times slower
    here. No resume happens in a simulation, so nothing is lost."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
        return make_sampler(name, seed, space)


def simulate_search(table: ReplayTable, space: DesignSpace, sampler: str, scheduler: str,
                    seed: int, budget: float, epochs: int, horizon_s: float,
                    concurrency: int, gflops: Callable[[Arch], float]) -> SearchTrace:
    """One search on the table until `horizon_s` seconds of compute (see the module doc)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=make_search_sampler(sampler, seed, space))
    refs = [presets()[n] for n in REFERENCES]
    live: dict[int, object] = {}          # simulated trial number -> Optuna trial
    done: dict[str, tuple[str, float, float]] = {}   # design key -> outcome told
    in_flight: set[str] = set()
    counts = {"missing": 0, "over": 0, "asks": 0, "exhausted": 0}
    spent = {"now": 0.0}
    trials_seen: dict[int, ReplayedTrial] = {}

    def compute_at(now: float) -> float:
        return sum(max(0.0, min(now, t.end if not math.isnan(t.end) else now) - t.start)
                   for t in trials_seen.values())

    def tell(t, outcome) -> None:
        status, top1, g = outcome
        if status == "stopped":
            study.tell(t, state=TrialState.PRUNED)
        else:
            study.tell(t, [top1, g])

    def propose(number: int) -> Arch | None:
        if number < len(refs):
            return refs[number]
        if counts["exhausted"] or compute_at(spent["now"]) >= horizon_s:
            return None
        for _ in range(MAX_ASKS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = study.ask()
                counts["asks"] += 1
                try:
                    arch = space.suggest(t)
                except ValueError:
                    study.tell(t, state=TrialState.FAIL)
                    continue
                flops = complexity(arch).flops
                g = flops / 1e9
                t.set_constraint("flops_over_budget", (flops - budget) / 1e9)
                lacking = arch not in table
                t.set_constraint("not_in_table", 1.0 if lacking else 0.0)
                if flops > budget or lacking:
                    counts["over" if flops > budget else "missing"] += 1
                    study.tell(t, [0.0, g])
                    continue
                key = arch.key()
                if key in done:
                    tell(t, done[key])
                    continue
                if key in in_flight:
                    study.tell(t, state=TrialState.FAIL)
                    continue
            in_flight.add(key)
            live[number] = t
            return arch
        counts["exhausted"] = 1   # the searcher's rule: the space has no new design left
        return None

    def finished(trial: ReplayedTrial) -> None:
        spent["now"] = trial.end
        trials_seen[trial.number] = trial
        key = trial.arch.key()
        in_flight.discard(key)
        outcome = ("stopped" if trial.stopped else "completed", trial.top1,
                   gflops(trial.arch))
        done[key] = outcome
        t = live.pop(trial.number, None)
        if t is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tell(t, outcome)

    ref_numbers = set(range(len(refs)))
    rule = None
    if scheduler == "asha":
        rule = AshaRule(epochs, ref_numbers)
    elif scheduler == "mo-asha":
        rule = MoAshaRule(epochs, ref_numbers, gflops)

    def decide(trial: ReplayedTrial, epoch: int, top1: float) -> bool:
        trials_seen[trial.number] = trial
        return True if rule is None else rule(trial, epoch, top1)

    out = simulate_run(table, propose, trials=10**6, epochs=epochs, concurrency=concurrency,
                       decide=decide, finished=finished)
    # the HV after each trial that finished every epoch, against the compute spent by then
    completions = sorted((t.end, t.number) for t in out if not t.stopped)
    comp, hv, points = [0.0], [0.0], []
    for end, number in completions:
        t = out[number]
        points.append((t.top1, gflops(t.arch)))
        c = sum(max(0.0, min(end, u.end) - u.start) for u in out if u.start <= end)
        comp.append(c)
        hv.append(hypervolume(points, REF_TOP1, budget / 1e9))
    return SearchTrace(np.array(comp), np.array(hv), len(out), sum(t.stopped for t in out),
                       counts["missing"], counts["over"], counts["asks"])


_WORKER: dict[str, object] = {}


def _one_search(job: tuple) -> tuple[SearchTrace, float]:
    """One simulated search from plain arguments (a worker process loads the table once)."""
    sampler, scheduler, seed, table_path, space_path, budget, epochs, horizon, conc = job
    if _WORKER.get("key") != (table_path, space_path):
        _WORKER.update(key=(table_path, space_path), table=ReplayTable.load(table_path),
                       space=load_space(space_path), gflops={})
    cache = _WORKER["gflops"]

    def gflops(arch: Arch) -> float:
        k = arch.key()
        if k not in cache:
            cache[k] = complexity(arch).flops / 1e9
        return cache[k]

    t0 = time.perf_counter()
    trace = simulate_search(_WORKER["table"], _WORKER["space"], sampler, scheduler, seed,
                            budget, epochs, horizon, conc, gflops)
    return trace, time.perf_counter() - t0


# ----- statistics -----
def bootstrap_ci(values: np.ndarray, stat: Callable[[np.ndarray], float], seed: int = 0,
                 n: int = 4000) -> tuple[float, float, float]:
    """(statistic, 2.5th, 97.5th percentile of the statistic over `n` resamples of the seeds).

    scipy.stats.bootstrap would do it too, but refuses infinite values, which the compute to
    reach the target is for a search that never reached it; a percentile bootstrap is plain
    resampling, done here with numpy."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    stats = np.array([stat(values[i]) for i in idx])
    # "lower"/"higher": no interpolation, which would make inf - inf = NaN between two nevers
    lo = np.percentile(stats, 2.5, method="lower")
    hi = np.percentile(stats, 97.5, method="higher")
    return float(stat(values)), float(lo), float(hi)


def fmt_ci(c: tuple[float, float, float], digits: int = 2) -> str:
    def f(x: float) -> str:
        return "never" if math.isinf(x) else f"{x:.{digits}f}"
    return f"{f(c[0])} [{f(c[1])}, {f(c[2])}]"


# ----- main -----
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=str(DEFAULT_TABLE), help="replay table (parquet)")
    ap.add_argument("--space", default=str(DEFAULT_SPACE))
    ap.add_argument("--samplers", default="random,tpe,nsga2",
                    help="of random, tpe, nsga2, gp (Optuna's GPSampler: constrained, but a GP "
                         "fit per proposal makes it far slower)")
    ap.add_argument("--schedulers", default="none,asha,mo-asha")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--gp-seeds", type=int, default=None,
                    help="seeds for the gp sampler (default: --seeds); it is the slow one")
    ap.add_argument("--budget", default="4.5GFLOPs")
    ap.add_argument("--trials", type=int, default=22,
                    help="searched designs of the search that fixes the compute C")
    ap.add_argument("--jobs", type=int, default=1, help="processes (searches run in parallel)")
    ap.add_argument("--horizon", type=float, default=1.5,
                    help="every search runs to this many times C")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="default: the table's epochs")
    ap.add_argument("--csv", default=str(ROOT / "docs" / "search_efficiency.csv"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "search_efficiency.png"))
    ap.add_argument("--write", default=None, help="docs/BENCHMARKS.md: write its section")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    try:
        table = ReplayTable.load(args.table)
        space = load_space(args.space)
        budget = float(parse_flops(args.budget))
    except ValueError as exc:
        print(f"search_efficiency: {exc}", file=sys.stderr)
        return 2
    gcache: dict[str, float] = {}

    def gflops(arch: Arch) -> float:
        k = arch.key()
        if k not in gcache:
            gcache[k] = complexity(arch).flops / 1e9
        return gcache[k]

    epochs = args.epochs or min(len(c.epochs) for c in table.curves.values()
                                if c.status == "completed")
    in_space = [a for a in space.enumerate()]
    feasible = [a for a in in_space if gflops(a) * 1e9 <= budget]
    have = [a for a in feasible if a in table]
    mean_cost = float(np.mean([table.lookup(a)[epochs - 1][2] for a in have]))
    ref_cost = sum(table.lookup(presets()[n])[epochs - 1][2] for n in REFERENCES)
    c_full = ref_cost + args.trials * mean_cost
    horizon = args.horizon * c_full
    samplers = args.samplers.split(",")
    schedulers = args.schedulers.split(",")
    print(f"table {args.table}: {len(table)} designs; space {space.name}: {len(in_space)} "
          f"designs, {len(feasible)} within {budget / 1e9:g} GFLOPs, {len(have)} of them in the "
          f"table; {epochs} epochs; C = {c_full:.0f} s (references {ref_cost:.0f} s + "
          f"{args.trials} x {mean_cost:.1f} s); horizon {args.horizon:g} C", flush=True)

    traces: dict[tuple[str, str], list[SearchTrace]] = {}
    timing: dict[str, float] = {}
    jobs = [(sampler, scheduler, seed) for sampler in samplers for scheduler in schedulers
            for seed in range(args.gp_seeds if (sampler == "gp" and args.gp_seeds)
                              else args.seeds)]
    common = (args.table, args.space, budget, epochs, horizon, args.concurrency)
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_one_search, [(*j, *common) for j in jobs], chunksize=1))
    else:
        results = [_one_search((*j, *common)) for j in jobs]
    for (sampler, scheduler, _seed), (trace, seconds) in zip(jobs, results):
        traces.setdefault((sampler, scheduler), []).append(trace)
        timing[sampler] = timing.get(sampler, 0.0) + seconds
    for (sampler, scheduler), tr in traces.items():
        print(f"  {sampler:6s} {scheduler:8s} {len(tr)} seeds: HV at C "
              f"{np.mean([x.hv_at(c_full) for x in tr]):.4f}, trials "
              f"{np.mean([x.trained for x in tr]):.1f} (stopped "
              f"{np.mean([x.stopped for x in tr]):.1f}), proposals lacking in the table "
              f"{np.mean([x.missing for x in tr]):.1f}, over budget "
              f"{np.mean([x.over_budget for x in tr]):.1f}", flush=True)

    base = traces.get(("random", "none"))
    if base is None:
        print("search_efficiency: random with scheduler none is the baseline; include both",
              file=sys.stderr)
        return 2
    target = float(np.mean([x.hv_at(c_full) for x in base]))
    rows = []
    for (sampler, scheduler), tr in traces.items():
        reach = np.array([x.reaches(target) / c_full for x in tr])
        hv_c = np.array([x.hv_at(c_full) for x in tr])
        hv_half = np.array([x.hv_at(c_full / 2) for x in tr])
        rows.append({
            "sampler": sampler, "scheduler": scheduler, "seeds": len(tr),
            "reach_median": bootstrap_ci(reach, np.median)[0],
            "reach_lo": bootstrap_ci(reach, np.median)[1],
            "reach_hi": bootstrap_ci(reach, np.median)[2],
            "reached": int(np.isfinite(reach).sum()),
            "hv_C": hv_c.mean(), "hv_C_lo": bootstrap_ci(hv_c, np.mean)[1],
            "hv_C_hi": bootstrap_ci(hv_c, np.mean)[2],
            "hv_halfC": hv_half.mean(), "hv_halfC_lo": bootstrap_ci(hv_half, np.mean)[1],
            "hv_halfC_hi": bootstrap_ci(hv_half, np.mean)[2],
            "trials": np.mean([x.trained for x in tr]),
            "stopped": np.mean([x.stopped for x in tr]),
            "missing": np.mean([x.missing for x in tr])})
    df = pd.DataFrame(rows)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    df.round(5).to_csv(args.csv, index=False)

    verdict = []
    if ("tpe", "mo-asha") in traces and ("tpe", "asha") in traces:
        mo = traces["tpe", "mo-asha"]
        asha = traces["tpe", "asha"]
        n = min(len(mo), len(asha))
        diff = np.array([mo[i].hv_at(c_full) - asha[i].hv_at(c_full) for i in range(n)])
        d = bootstrap_ci(diff, np.mean)
        r = df[(df.sampler == "tpe") & (df.scheduler == "mo-asha")].iloc[0]
        half = r.reach_hi <= 0.5
        verdict.append(
            f"tpe + mo-asha reaches random's final hypervolume with median compute "
            f"{fmt_ci((r.reach_median, r.reach_lo, r.reach_hi))} x C "
            f"({int(r.reached)}/{int(r.seeds)} seeds reached it): "
            f"{'at most half, interval included' if half else 'NOT shown to need at most half'}.")
        verdict.append(
            f"At equal compute C, tpe + mo-asha minus tpe + asha: {fmt_ci(d, 4)} (mean paired "
            f"difference over {n} seeds): "
            f"{'mo-asha beats asha' if d[1] > 0 else ('asha beats mo-asha' if d[2] < 0 else 'no difference shown')}.")
    for line in verdict:
        print(line)

    md = ["| sampler | scheduler | compute to reach target (x C), median [95% CI] | reached "
          "| HV at C, mean [95% CI] | HV at C/2, mean [95% CI] | trials | stopped early |",
          "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        md.append(f"| {r.sampler} | {r.scheduler} | "
                  f"{fmt_ci((r.reach_median, r.reach_lo, r.reach_hi))} | {r.reached}/{r.seeds} | "
                  f"{fmt_ci((r.hv_C, r.hv_C_lo, r.hv_C_hi), 4)} | "
                  f"{fmt_ci((r.hv_halfC, r.hv_halfC_lo, r.hv_halfC_hi), 4)} | "
                  f"{r.trials:.1f} | {r.stopped:.1f} |")
    print("\n".join(md))
    _plot(traces, c_full, args.horizon, target, args.plot)
    elapsed = time.perf_counter() - t_start
    timing_text = ", ".join(f"{k} {v:.0f} s" for k, v in timing.items()) + " of search time"
    print(f"run time {elapsed:.0f} s ({timing_text})")

    if args.write:
        lacking = len(feasible) - len(have)
        body = [
            "```",
            "PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/search_efficiency.py "
            + " ".join(a for a in (argv if argv is not None else sys.argv[1:])),
            "```", "",
            f"Replay table `{args.table}`: {len(table)} designs, {epochs} epochs each; space "
            f"`{space.name}`: {len(in_space)} designs, {len(feasible)} within the budget "
            f"{budget / 1e9:g} GFLOPs, {len(have)} of them in the table."
            + (f" **The table was incomplete: {lacking} designs within the budget were not "
               "trained yet, and a search proposing one was told it is infeasible at no "
               "cost; the final table holds every design.**" if lacking else ""), "",
            f"Each search: both references, then the sampler's proposals, on "
            f"{args.concurrency} simulated workers, until {args.horizon:g} C of compute; "
            f"C = {c_full:.0f} s is a default search without early stopping (references "
            f"{ref_cost:.0f} s + {args.trials} designs x the table's mean {mean_cost:.1f} s). "
            f"Hypervolume of (top-1 up, GFLOPs down) of the trials that finished every epoch, "
            f"reference point (top-1 {REF_TOP1}, {budget / 1e9:g} GFLOPs), in top-1 x GFLOPs. "
            f"Target: random search's (scheduler none) mean hypervolume at C, {target:.4f}. "
            f"Intervals: 95% percentile bootstrap over the seeds (4000 resamples); "
            f"`never` counts a seed that did not reach the target within the horizon.", "",
            *md, "", *verdict, "",
            "![hypervolume against compute](search_efficiency.png)", "",
            f"Run time {elapsed:.0f} s with {args.jobs} process(es) ({timing_text}); "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        ]
        write_section(Path(args.write), "Search efficiency", "\n".join(body))
    return 0


def _plot(traces, c_full: float, horizon: float, target: float, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samplers = sorted({s for s, _ in traces}, key=lambda s: list(dict.fromkeys(
        s2 for s2, _ in traces)).index(s))
    grid = np.linspace(0, horizon * c_full, 200)
    fig, axes = plt.subplots(1, len(samplers), figsize=(4 * len(samplers), 3.4), sharey=True,
                             squeeze=False)
    for ax, sampler in zip(axes[0], samplers):
        for (s, scheduler), tr in traces.items():
            if s != sampler:
                continue
            curves = np.array([[x.hv_at(c) for c in grid] for x in tr])
            mean = curves.mean(axis=0)
            sem = curves.std(axis=0, ddof=1) / math.sqrt(len(tr)) if len(tr) > 1 else 0 * mean
            line, = ax.plot(grid / c_full, mean, label=scheduler)
            ax.fill_between(grid / c_full, mean - 1.96 * sem, mean + 1.96 * sem,
                            color=line.get_color(), alpha=0.2)
        ax.axhline(target, color="gray", ls="--", lw=0.8)
        ax.axvline(1.0, color="gray", ls=":", lw=0.8)
        ax.set_title(sampler)
        ax.set_xlabel("compute (x C)")
    axes[0][0].set_ylabel("hypervolume (mean, 95% band)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
