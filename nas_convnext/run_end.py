"""The end of a run (a search, a roadmap replay, a calibration, an ablation), new or resumed:
what it prints, the report it writes, and the exit status (130 after Ctrl-C, 143 after
SIGTERM). The command line's parsing stays in `cli`; this is what every command that runs
trials shares once they stop."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence

from .design.arch import load_design
from .design.complexity import complexity
from .results import one_line

# ----- ablate -----
#: Seeds every design of an ablation is trained with, unless --seeds says otherwise.
ABLATE_SEEDS = 3
#: The FLOP budget of an ablation unless --budget says otherwise (the search's usual one).
ABLATE_BUDGET = "4.5GFLOPs"
#: The most seeds an ablation or a calibration takes: past it, "seeds needed" is not reported
#: either (analysis.paired.MAX_SEEDS).
MAX_SEEDS = 1000
SEED_MAX = 2**32 - 1  # what numpy's and Optuna's generators take

EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143    # 128 + SIGTERM


def _finish_calibration(out, as_json: bool, minutes: float | None = None) -> int:
    """The end of a calibration (new or resumed): calibration.json, its report, the figures."""
    from .report.calibration_report import summary_lines, write_calibration

    info = None
    if out.stopped_by is None:
        try:
            info = write_calibration(out.run_dir, minutes)
        except ValueError as exc:
            print(f"(no calibration: {one_line(exc)})", file=sys.stderr)
    if as_json:
        print(json.dumps(info.record if info is not None else None, allow_nan=False))
    elif info is not None:
        print("\n".join(["calibration against the paper's roadmap (Table 10):"]
                        + [f"  {line}" for line in summary_lines(info.calibration, info.record)]))
    if not as_json:
        print(f"\nresults: {out.run_dir}/ (calibration.json, calibration.md, calibration.html, "
              "calibration.csv, calibration.png, trials.parquet)")
    for note in out.notes:
        print(f"note: {note}")
    if out.stopped_by is not None:
        print(_stopped_line(out))
    if out.interrupted:
        return _signal_exit(out.stopped_by)
    return 0 if info is not None else 1


def _finish_roadmap(out, as_json: bool) -> int:
    """The end of a roadmap replay (new or resumed): its report, steps, agreement and notes."""
    from .analysis.roadmap import replay_frame
    from .report.roadmap_report import replay_lines, roadmap_report

    steps = replay_frame(out.table)
    try:
        info = roadmap_report(steps, out.run_dir)
    except ValueError as exc:
        info = None
        print(f"(no comparison: {exc})")
    if as_json:
        print(steps[["step", "name", "paper_top1", "top1", "status"]].to_json(orient="records"))
    else:
        print("\n".join(replay_lines(steps, info, out.run_dir)))
    return _end_of_run(out)


def _end_of_run(out) -> int:
    """Notes, what stopped the run, and the exit status of a run that a signal stopped."""
    for note in out.notes:
        print(f"note: {note}")
    if out.stopped_by is not None:
        print(_stopped_line(out))
    return _signal_exit(out.stopped_by) if out.interrupted else 0


def _stopped_line(out) -> str:
    """What stopped the run, what it left, and how to finish it."""
    cut = (f"; {out.cut_short} trial(s) in flight kept as stopped_early with their last "
           f"epoch's metrics" if out.cut_short else "")
    why = {"SIGINT": "stopped (Ctrl-C)", "SIGTERM": "stopped (SIGTERM)",
           "time budget": "time budget reached"}.get(out.stopped_by, "stopped")
    return f"{why}{cut}; to finish the run: {out.resume_command}"


def _signal_exit(stopped_by: str | None) -> int:
    return EXIT_TERMINATED if stopped_by == "SIGTERM" else EXIT_INTERRUPTED


def _interrupted_exit(exc: KeyboardInterrupt, command: str | None) -> int:
    """A command stopped by Ctrl-C or SIGTERM that had no run to end: one line, its status."""
    from .search.signals import Terminated

    terminated = isinstance(exc, Terminated)
    # A search that got as far as its run.json returns normally (with the resume command);
    # one that ends here had made no run folder (or removed the empty one it made).
    nothing = ("; no run was saved, start it again"
               if command in ("search", "roadmap", "calibrate")
               else "")
    print(f"nas-convnext: {'terminated (SIGTERM)' if terminated else 'interrupted'}{nothing}",
          file=sys.stderr)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def ablation_plan(design: str, overrides: Sequence[str], space_name: str,
                  budget: float | None, seeds: int, seed: int) -> dict[str, Any]:
    """Check an ablation's settings and plan it: the base, its one-change variants and the
    seeds, as run.json's ``ablation`` block (`analysis.ablation.plan_record`).

    Every mistake is a ValueError of one line, before anything runs: an unknown design, a
    space without the design's values, fewer than 2 seeds (no interval), seeds past the
    largest seed.
    """
    from .analysis.ablation import plan_record
    from .design.space import load_space
    from .design.variants import plan_variants

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"--seeds {seeds}: a paired interval needs at least 2 seeds (one "
                         "seed has no spread); the default is 3")
    if seeds > MAX_SEEDS:
        raise ValueError(f"--seeds {seeds}: at most {MAX_SEEDS} (every design is trained "
                         f"with each seed)")
    if seed + seeds - 1 > SEED_MAX:
        raise ValueError(f"--seed {seed} with --seeds {seeds}: the last seed would pass "
                         f"{SEED_MAX}; choose a smaller --seed")
    base = load_design(design, list(overrides))
    space = load_space(space_name)
    if budget is not None and complexity(base).flops > budget:
        from .design.complexity import fit_width

        try:  # a base over the budget is narrowed; one that cannot be is the budget's fault
            fit_width(base, budget)
        except ValueError as exc:
            raise ValueError(f"--budget {budget:g} FLOPs ({budget / 1e9:.3f} GFLOPs): "
                             f"{exc}") from None
    plan = plan_variants(base, space, budget)
    if len(plan.variants) < 2:
        raise ValueError(f"space {space.name!r} gives no variant of {design} to compare: "
                         "every change was skipped ("
                         + "; ".join(f"{s.dimension}={s.value}: {s.why}" for s in plan.skipped)
                         + ")")
    name = " ".join([design, *overrides])
    return plan_record(plan, name, space.name, range(seed, seed + seeds))


def _finish_ablation(out, as_json: bool) -> int:
    """The end of an ablation (new or resumed): its analysis, report, verdicts and notes."""
    from .analysis.ablation import analyse_ablation
    from .report.ablation_report import ablation_summary, write_ablation_report
    from .results import plain, read_run_json

    meta = read_run_json(out.run_dir)
    minutes = meta.get("elapsed_s")
    minutes = float(minutes) / 60 if isinstance(minutes, (int, float)) else None
    an = None
    try:
        an = analyse_ablation(out.table, meta["ablation"], minutes=minutes)
        info = write_ablation_report(an, out.run_dir, run_dir=out.run_dir,
                                     fidelity=_ablation_fidelity(out.run_dir, meta))
    except (ValueError, KeyError) as exc:
        info = None
        print(f"(no analysis: {one_line(exc)})", file=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(plain(an.to_json() if an is not None else {}), indent=2,
                         allow_nan=False))
    elif an is not None:
        print(ablation_summary(an))
        if info is not None:
            html = [p for p in info.files if p.suffix == ".html"]
            print(f"report: {html[0] if html else out.run_dir} ({len(info.files)} files)")
        for note in an.notes:
            print(f"note: {note}")
    if not as_json:
        print(f"results: {out.run_dir}/")
    for note in out.notes:
        print(f"note: {note}", file=sys.stderr if as_json else sys.stdout)
    if out.stopped_by is not None:
        print(_stopped_line(out), file=sys.stderr if as_json else sys.stdout)
    if out.interrupted:
        return _signal_exit(out.stopped_by)
    return 0


def _ablation_fidelity(run_dir, meta: dict[str, Any], calibration: str | None = None):
    """The proxy's calibration on the ablation's dataset, as the search report finds it."""
    from pathlib import Path

    from .report.fidelity import fidelity_for

    return fidelity_for(meta, Path(run_dir).resolve().parent, calibration)


def _analyze_ablation(args: Any, meta: dict[str, Any], formats) -> int:
    """`analyze` of an ablation's run folder: the ablation report, written again."""
    from pathlib import Path

    from .analysis.ablation import analyse_ablation
    from .report.ablation_report import ablation_summary, write_ablation_report
    from .results import read_table

    minutes = meta.get("elapsed_s")
    an = analyse_ablation(read_table(Path(args.run_dir)), meta["ablation"],
                          minutes=float(minutes) / 60 if isinstance(minutes, (int, float))
                          else None)
    if isinstance(args.out, str) and not args.out.strip():
        raise ValueError(f"--out {args.out!r} is empty: give the folder to write the report in")
    info = write_ablation_report(an, args.out or args.run_dir, formats=formats,
                                 run_dir=args.run_dir,
                                 fidelity=_ablation_fidelity(Path(args.run_dir), meta,
                                                             args.calibration))
    print(ablation_summary(an))
    print(f"report: {len(info.files)} files in {info.out_dir}")
    return 0


def _finish_search(out, calibration: str | None = None) -> int:
    """The end of a search (new or resumed): its results, the report, and the exit status."""
    from .search.progress import end_lines

    if out.kind == "roadmap":  # a roadmap replay resumed with `search --resume`
        return _finish_roadmap(out, as_json=False)
    if out.kind == "ablation":  # an ablation resumed with `search --resume`
        return _finish_ablation(out, as_json=False)
    if out.kind == "calibration":  # a calibration resumed with `search --resume`
        return _finish_calibration(out, as_json=False)
    df = out.table
    print("\n".join(end_lines(out.run_dir, df)))
    for note in out.notes:
        print(f"note: {note}")
    if out.stopped_by is not None:
        print("\n" + _stopped_line(out))
    if out.interrupted:
        return _signal_exit(out.stopped_by)
    if len(df) and (df["status"] == "completed").any():
        from .report.run_report import summary_text, write_report

        try:
            print("\n" + summary_text(write_report(out.run_dir, calibration=calibration)))
        except ValueError as exc:
            print(f"(no report: {one_line(exc)})")
    if len(df) and (df["status"] == "infeasible").all():  # measured, none within the limits
        fastest = df["latency_ms"].min()
        shown = f"; the fastest design measured {fastest:.1f} ms" if fastest == fastest else ""
        print(f"nas-convnext: error: every design broke the speed limit(s){shown} on "
              f"{df['speed_device'].iloc[0]}: raise --latency-budget or lower --throughput-min",
              file=sys.stderr)
        return 1
    if len(df) and (df["status"] == "error").all():
        errors = df["error"].value_counts().head(3)
        summary = "; ".join(f"{n}x {msg}" for msg, n in errors.items())
        print(f"nas-convnext: error: every trial failed: {summary}", file=sys.stderr)
        return 1
    return 0
