"""The commands that run trials (search, calibrate, ablate, roadmap --train): from their parsed
arguments to a run of the search machinery, then to the run's end (`run_end`); and `speed`,
which measures designs (training) and ranks them against FLOPs (analysis), so it sits above
both. `cli` parses; these start the work."""
from __future__ import annotations

import time
from typing import Any

from .design.complexity import parse_flops
from .run_end import (
    ABLATE_BUDGET,
    ABLATE_SEEDS,
    _finish_ablation,
    _finish_calibration,
    _finish_search,
    ablation_plan,
)


def _roadmap_train(args: Any) -> int:
    """`roadmap --train`: a calibration with one seed (`--seed`), no interval."""
    args.seeds, args.resume = 1, None
    return cmd_calibrate(args)


# ----- calibrate -----
def cmd_calibrate(args: Any) -> int:
    """Train the 17 roadmap steps under `--seeds` seeds and compare with the paper's ranking.

    Runs through the search's machinery (Ray, resume, --address) as kind "calibration", then
    writes calibration.json and its report (md, html, csv, png) into the run folder.
    """

    from .search.config import SearchConfig
    from .search.run import run_search
    from .training.proxy import get_proxy

    started = time.time()
    if args.resume is not None:
        from pathlib import Path

        from .results import read_run_json

        kind = read_run_json(Path(args.resume)).get("kind", "search")
        if kind != "calibration":
            raise ValueError(f"--resume {args.resume}: not a calibration run (kind {kind!r}); "
                             "resume it with nas-convnext search --resume")
        cfg = SearchConfig(budget=None, address=args.address)
        out = run_search(cfg, resume_dir=args.resume)
    else:
        from .training.trial import DATASET_CHOICES

        get_proxy(args.proxy, epochs=args.epochs)  # named in the run's name: check it first
        if args.dataset not in DATASET_CHOICES:  # so is the dataset
            raise ValueError(f"--dataset {args.dataset!r}: expected one of "
                             f"{', '.join(DATASET_CHOICES)}")
        name = (args.name if args.name is not None  # an empty --name is refused, as by search
                else f"{time.strftime('%Y%m%d-%H%M%S')}-calibration-{args.proxy}-{args.dataset}")
        cfg = SearchConfig(budget=None, trials=0, scheduler="none", proxy=args.proxy,
                           epochs=args.epochs, dataset=args.dataset, data_dir=args.data_dir,
                           concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
                           gpus_per_trial=args.gpus_per_trial, seed=args.seed, name=name,
                           address=args.address, results_dir=args.results_dir,
                           storage_path=getattr(args, "storage_path", None))
        out = run_search(cfg, kind="calibration", seeds=args.seeds)
    return _finish_calibration(out, args.json, (time.time() - started) / 60)


def cmd_ablate(args: Any) -> int:
    """Train a design and its one-change variants with the same seeds; paired verdicts."""
    import time

    from .search.config import SearchConfig
    from .search.run import run_search

    if args.resume is not None:
        given = [o for o, v in (("DESIGN", args.design != "convnext_t" or args.overrides),
                                ("--space", args.space != "convnext"),
                                ("--budget", args.budget is not None),
                                ("--seeds", args.seeds is not None)) if v]
        if given:
            raise ValueError(f"--resume {args.resume}: an ablation resumes with the settings "
                             f"of its run.json; drop {', '.join(given)}")
        from pathlib import Path

        from .results import read_run_json

        kind = read_run_json(Path(args.resume)).get("kind", "search")
        if kind != "ablation":
            command = "calibrate" if kind == "calibration" else "search"
            raise ValueError(f"--resume {args.resume}: this is a {kind} run, not an ablation; "
                             f"resume it with nas-convnext {command} --resume {args.resume}")
        cfg = SearchConfig(budget=None, trials=0, scheduler="none", address=args.address)
        return _finish_ablation(run_search(cfg, resume_dir=args.resume), args.json)
    budget = args.budget if args.budget is not None else parse_flops(ABLATE_BUDGET)
    seeds = ABLATE_SEEDS if args.seeds is None else args.seeds
    record = ablation_plan(args.design, args.overrides, args.space, budget, seeds, args.seed)
    from .training.proxy import get_proxy

    get_proxy(args.proxy, epochs=args.epochs)  # checked before the run's name is made
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in args.design.split("/")[-1])
    name = (args.name if args.name is not None
            else f"{time.strftime('%Y%m%d-%H%M%S')}-ablate-{slug[:40]}-{record['space']}")
    cfg = SearchConfig(budget=budget, space=args.space, trials=0, scheduler="none",
                       proxy=args.proxy, epochs=args.epochs, dataset=args.dataset,
                       data_dir=args.data_dir, concurrency=args.concurrency,
                       cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                       seed=args.seed, name=name, address=args.address,
                       results_dir=args.results_dir)
    return _finish_ablation(run_search(cfg, kind="ablation", ablation=record), args.json)


# ----- search -----
def cmd_search(args: Any) -> int:
    from .search.config import SearchConfig, parse_duration
    from .search.run import run_search

    if args.resume is None and args.budget is None:
        raise ValueError("--budget is required (e.g. --budget 4.5GFLOPs), unless you --resume a run")
    cfg = SearchConfig(
        budget=args.budget, space=args.space,
        trials=args.trials, sampler=args.sampler, scheduler=args.scheduler,
        time_budget_s=parse_duration(args.time_budget) if args.time_budget else None,
        proxy=args.proxy, epochs=args.epochs, dataset=args.dataset, data_dir=args.data_dir,
        concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, seed=args.seed, name=args.name,
        address=args.address, storage_path=args.storage_path, results_dir=args.results_dir,
        fit_width=(args.replay is None) if args.fit_width is None else args.fit_width,
        replay=args.replay, objective=args.objective, latency_budget_ms=args.latency_budget,
        throughput_min=args.throughput_min, speed_batch=args.speed_batch,
        measure_speed=args.measure_speed)
    if args.calibration is not None:  # a folder that is not a calibration: refused before Ray
        from .report.calibration_report import load_calibration

        load_calibration(args.calibration)
    out = run_search(cfg, resume_dir=args.resume)
    return _finish_search(out, args.calibration)


# ----- speed -----
def cmd_speed(args: Any) -> int:
    """`nas-convnext speed`: one design's full-size speed beside its FLOPs, or the roadmap's
    with the rank agreement between FLOPs and measured time over its distinct designs."""
    from .analysis.speed import rank_agreement_flops_time
    from .training.speed_command import measure_designs, speed_output

    designs, rows = measure_designs(
        args.design, args.overrides, roadmap=args.roadmap, larger=args.larger,
        batch=args.batch, threads=args.threads, resolution=args.resolution, device=args.device,
        seconds=args.seconds, refresh=args.refresh, quiet=args.json)
    agreement = {}
    if args.roadmap:  # over distinct designs: a network listed under two names is one point
        distinct = [r for r in rows if not r["same_as"]]
        for by in ("latency",) + (() if args.batch is None else ("throughput",)):
            agreement[by] = rank_agreement_flops_time(distinct, by=by, seed=0)
    print(speed_output(args.design, designs, rows, roadmap=args.roadmap, batch=args.batch,
                       agreement=agreement, as_json=args.json))
    return 0
