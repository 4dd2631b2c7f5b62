"""The `nas-convnext` command.

Every user mistake surfaces as a ValueError somewhere below; `main` prints it as one line and
exits 2, so nobody sees a traceback for a typo.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from . import __version__
from .design.arch import FIELD_NAMES, load_design, presets
from .design.complexity import FLOP_CONVENTION, complexity, fvcore_count, parse_flops
from .results import one_line

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143    # 128 + SIGTERM


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(f"{self.prog}: {message}")


class UsageError(Exception):
    pass


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                               for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(s: str) -> bool:
    try:
        float(s.replace(",", "").replace("%", ""))
        return True
    except ValueError:
        return False


def _convention(res: int = 224, classes: int = 1000) -> str:
    return FLOP_CONVENTION.format(res=res, classes=classes)


# ----- presets -----
def cmd_presets(args: argparse.Namespace) -> int:
    rows = []
    for name, arch in presets().items():
        c = complexity(arch)
        rows.append({"name": name, "params": c.params, "flops": c.flops,
                     "gflops": round(c.gflops, 3), **arch.to_dict()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_table([[r["name"], f"{r['params'] / 1e6:.2f}M", f"{r['gflops']:.3f}"] for r in rows],
                 ["design", "params", "GFLOPs"]))
    print(f"\n{_convention()}.")
    return 0


# ----- flops -----
def cmd_flops(args: argparse.Namespace) -> int:
    arch = load_design(args.design, args.overrides)
    c = complexity(arch, args.resolution, args.num_classes)
    out: dict[str, Any] = {"design": args.design, "params": c.params, "flops": c.flops,
                           "gflops": c.gflops, "acts": c.acts, "matmul_flops": c.matmul_flops,
                           "resolution": args.resolution, "num_classes": args.num_classes,
                           "convention": _convention(args.resolution, args.num_classes),
                           **arch.to_dict()}
    if args.check:
        from .design.build import build_model

        model = build_model(arch, num_classes=args.num_classes)
        f = fvcore_count(model, args.resolution)
        out["fvcore"] = {"flops": f.flops, "params": f.params, "acts": f.acts}
        out["match"] = (f.flops, f.params, f.acts) == (c.flops, c.params, c.acts)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        fields = ", ".join(f"{k}={_show(v)}" for k, v in arch.to_dict().items())
        print(f"design  {args.design}: {fields}")
        print(f"params  {c.params:,} ({c.params / 1e6:.2f}M)")
        print(f"FLOPs   {c.flops:,} ({c.gflops:.3f} GFLOPs; conv+linear only "
              f"{c.matmul_flops / 1e9:.3f})")
        print(f"acts    {c.acts:,} ({c.acts / 1e6:.2f}M conv/linear output elements)")
        print(_convention(args.resolution, args.num_classes) + ".")
        if args.check:
            f = out["fvcore"]
            status = "equal" if out["match"] else "DIFFERENT"
            print(f"fvcore  FLOPs {f['flops']:,}, params {f['params']:,}, acts {f['acts']:,}: "
                  f"{status} to the analytic count")
    return 0 if out.get("match", True) else 1


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


# ----- roadmap -----
def cmd_roadmap(args: argparse.Namespace) -> int:
    from .design.roadmap import roadmap_rows

    if args.train:
        return _roadmap_train(args)
    rows = roadmap_rows()
    if not args.flops_only:
        raise ValueError("say what to show: --flops-only (the FLOP table) or --train (train "
                         "every step under the proxy and compare with the paper's top-1)")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [[r["step"], r["name"].split("/", 1)[1], f"{r['params'] / 1e6:.2f}M",
              f"{r['gflops']:.3f}", f"{r['matmul_gflops']:.3f}", f"{r['paper_gflops']:.2f}",
              f"{r['matmul_gflops'] - r['paper_gflops']:+.3f}" + (" *" if r["note"] else ""),
              r["change"]] for r in rows]
    print(_table(table, ["#", "step", "params", "GFLOPs", "conv+lin", "paper", "diff",
                         "what changed"]))
    print(f"\n{_convention()}.\nGFLOPs is fvcore's total (norms and pooling included); "
          "conv+lin counts conv and linear layers only, which is how the paper's Table 10 "
          "counts; diff = conv+lin - paper.")
    for r in rows:
        if r["note"]:
            print(f"* {r['name']}: {r['note']}")
    return 0


def _roadmap_train(args: argparse.Namespace) -> int:
    import time

    from .search.config import SearchConfig
    from .search.run import run_search
    from .training.proxy import get_proxy

    get_proxy(args.proxy, epochs=args.epochs)  # named in the run's name: check it first
    name = (args.name if args.name is not None  # an empty --name is refused, as by search
            else f"{time.strftime('%Y%m%d-%H%M%S')}-roadmap-{args.proxy}")
    cfg = SearchConfig(budget=None, trials=0, scheduler="none", proxy=args.proxy,
                       epochs=args.epochs, dataset=args.dataset, data_dir=args.data_dir,
                       concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
                       gpus_per_trial=args.gpus_per_trial, seed=args.seed, name=name,
                       address=args.address, results_dir=args.results_dir)
    return _finish_roadmap(run_search(cfg, kind="roadmap"), args.json)


def _finish_roadmap(out, as_json: bool) -> int:
    """The end of a roadmap replay (new or resumed): its report, steps, agreement and notes."""
    import math

    from .analysis.roadmap import replay_frame
    from .report.roadmap_report import roadmap_report

    steps = replay_frame(out.table)
    try:
        info = roadmap_report(steps, out.run_dir)
    except ValueError as exc:
        info = None
        print(f"(no comparison: {exc})")
    if as_json:
        print(steps[["step", "name", "paper_top1", "top1", "status"]].to_json(orient="records"))
    else:
        print(_table([[r.step, r.name.split("/", 1)[1], f"{r.paper_top1:.2f}",
                       "-" if not math.isfinite(r.top1) else f"{100 * r.top1:.2f}", r.status]
                      for r in steps.itertuples()],
                     ["#", "step", "paper top-1", "proxy top-1", "status"]))
        if info is not None and info.agreement is not None:
            a = info.agreement
            print(f"\nagreement with the paper's ranking over {a.n} completed steps: "
                  f"Kendall tau {a.tau:+.3f} (p={a.tau_p:.3f}), "
                  f"Spearman rho {a.rho:+.3f} (p={a.rho_p:.3f})")
        for note in (info.notes if info is not None else ()):
            print(f"note: {note}")
        print(f"\nresults: {out.run_dir}/")
    for note in out.notes:
        print(f"note: {note}")
    if out.stopped_by is not None:
        print(_stopped_line(out))
    if out.interrupted:
        return _signal_exit(out.stopped_by)
    return 0


def _stopped_line(out) -> str:
    """What stopped the run, what it left, and how to finish it."""
    cut = (f"; {out.cut_short} trial(s) in flight kept as stopped_early with their last "
           f"epoch's metrics" if out.cut_short else "")
    why = {"SIGINT": "stopped (Ctrl-C)", "SIGTERM": "stopped (SIGTERM)",
           "time budget": "time budget reached"}.get(out.stopped_by, "stopped")
    return f"{why}{cut}; to finish the run: {out.resume_command}"


def _signal_exit(stopped_by: str | None) -> int:
    return EXIT_TERMINATED if stopped_by == "SIGTERM" else EXIT_INTERRUPTED


# ----- space -----
def cmd_space(args: argparse.Namespace) -> int:
    from .design.space import load_space

    space = load_space(args.space)
    info = space.describe(args.budget, seed=args.seed)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"space {info['name']} ({info['source']}): {info['description']}")
    print(_table([[k, ", ".join(map(str, v))] for k, v in info["dimensions"].items()],
                 ["dimension", "values"]))
    if info["fixed"]:
        print("fixed: " + ", ".join(f"{k}={v}" for k, v in info["fixed"].items()))
    print(f"size: {info['size']:,} designs"
          + (f" ({info['valid']:,} valid)" if info["valid"] is not None else ""))
    print(f"FLOP range: {info['flops_min'] / 1e9:.3f} to {info['flops_max'] / 1e9:.3f} GFLOPs "
          f"({info['method']})")
    if "budget" in info:
        print(f"within {info['budget'] / 1e9:.3f} GFLOPs: {info['within_budget']:,} designs "
              f"({info['within_budget_share']:.1%}; {info['method']})")
    print(_convention() + ".")
    return 0


# ----- train -----
def cmd_train(args: argparse.Namespace) -> int:
    """Train one design's proxy, as a search trial would, and report its metrics.

    Everything that can be wrong with the command line (design, profile, resolution, dataset,
    data folder, output folder) is checked before the data is loaded and long before training
    starts, so a typo costs a second, not a trial.
    """
    import math
    from pathlib import Path

    from .results import atomic_write_text, check_replaceable, plain
    from .training.proxy import get_proxy
    from .training.trial import (
        check_memory,
        check_resolution,
        load_proxy_data,
        train_trial,
    )

    arch = load_design(args.design, args.overrides)
    proxy = get_proxy(args.proxy, epochs=args.epochs)
    check_resolution(arch, proxy.resolution)
    # Before the data is loaded, with the fewest classes and channels: a design that cannot
    # fit even so is refused in a second; train_trial checks again with the real figures.
    check_memory(arch, proxy, name=" ".join([args.design, *args.overrides]))
    out_path = Path(args.out) if args.out else None
    if out_path is not None:
        folder = out_path.parent
        if not folder.is_dir():
            raise ValueError(f"--out {args.out}: folder {str(folder)!r} does not exist; "
                             "create it or choose another path")
        if out_path.is_dir() and not out_path.is_symlink():
            raise ValueError(f"--out {args.out} is a folder; give a file name, e.g. "
                             f"{out_path / 'metrics.json'}")
        try:  # a device, a FIFO or a link is refused now, not after the training
            check_replaceable(out_path)
        except OSError as exc:
            raise ValueError(f"--out {args.out}: {exc.strerror}") from None
    data_dir = args.data_dir
    if args.dataset == "synthetic" and data_dir:
        print("nas-convnext: note: dataset 'synthetic' is generated; --data-dir is ignored",
              file=sys.stderr)
        data_dir = None
    data = load_proxy_data(args.dataset, data_dir, proxy)
    c = complexity(arch)

    print(f"training {args.design} ({c.gflops:.2f} GFLOPs, {c.params / 1e6:.1f}M params full "
          f"size) under proxy {proxy.name}: {proxy.resolution}px, width x{proxy.width_mult:g}, "
          f"{proxy.epochs} epoch(s), {min(proxy.train_size, len(data.train_y))} training images "
          f"of {data.name}, seed {args.seed}", file=sys.stderr)
    result = _train_with_progress(train_trial, arch, proxy, data, args.seed, args.threads)

    out: dict[str, Any] = {"design": args.design, **arch.to_dict(), "flops": c.flops,
                           "params": c.params, "gflops": c.gflops, "proxy": proxy.to_dict(),
                           "dataset": data.name, "data_dir": data_dir, "seed": args.seed,
                           "threads": args.threads, **result.to_dict(),
                           "history": result.history}
    # NaN (a diverged trial's metrics) is not JSON; null is.
    out = plain(out)
    if out_path is not None:
        try:
            atomic_write_text(out_path, json.dumps(out, indent=2) + "\n")
        except OSError as exc:
            raise ValueError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None

    def num(v: float, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"

    summary = "\n".join([
        f"status    {result.status}",
        f"top1      {num(result.top1, '.4f')}  (top5 {num(result.top5, '.4f')})",
        f"loss      {num(result.loss, '.4f')} train, {num(result.val_loss, '.4f')} validation",
        f"epochs    {result.epochs}/{proxy.epochs}",
        f"images/s  {num(result.images_per_s, '.1f')}",
        f"elapsed   {result.elapsed_s:.1f} s (forward/backward/step {result.compute_s:.1f} s, "
        f"evaluation {result.eval_s:.1f} s)",
    ] + ([f"metrics   {out_path}"] if out_path is not None else []))
    if args.json:
        print(json.dumps(out, indent=2))
        print(summary, file=sys.stderr)
    else:
        print(summary)
    if result.status == "diverged":
        kept = (f"the metrics are those of epoch {result.epochs}, the last good one"
                if result.epochs else "no epoch finished, so there are no metrics")
        print(f"nas-convnext: the trial diverged ({result.message}); {kept}. A lower learning "
              "rate or another design may train.", file=sys.stderr)
        return 1
    return 0


def _train_with_progress(train_trial, arch, proxy, data, seed: int, threads: int | None):
    """Run the trial with a live display on stderr: a bar on a terminal, else a line an epoch."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        def report(m: dict[str, Any]) -> None:
            print(f"epoch {m['epoch']}/{proxy.epochs}  loss {m['loss']:.4f}  "
                  f"top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  "
                  f"{m['images_per_s']:.0f} img/s  {m['elapsed_s']:.1f} s",
                  file=sys.stderr, flush=True)

        return train_trial(arch, proxy, data, seed, report=report, threads=threads)

    with Progress(TextColumn("epochs"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("train", total=proxy.epochs, metrics="first epoch running")

        def report(m: dict[str, Any]) -> None:
            bar.update(task, completed=m["epoch"],
                       metrics=f"loss {m['loss']:.4f}  top1 {m['top1']:.4f}  "
                               f"top5 {m['top5']:.4f}  {m['images_per_s']:.0f} img/s")

        return train_trial(arch, proxy, data, seed, report=report, threads=threads)


# ----- speed -----
def cmd_speed(args: argparse.Namespace) -> int:
    """Measure one design's full-size speed (or the roadmap's) on this machine."""
    from .training.speed_command import speed_command

    print(speed_command(args.design, args.overrides, roadmap=args.roadmap, larger=args.larger,
                        batch=args.batch, threads=args.threads, resolution=args.resolution,
                        device=args.device, seconds=args.seconds, refresh=args.refresh,
                        as_json=args.json))
    return 0


# ----- analyze -----
def cmd_analyze(args: argparse.Namespace) -> int:
    """Write a run's report (figures, tables, verdict) and print a short summary."""
    from pathlib import Path

    from .report.document import FORMATS
    from .report.run_report import summary_text, write_report

    formats = tuple(args.format) if args.format else FORMATS
    info = write_report(args.run_dir, formats=formats, out_dir=args.out, seed=args.seed)
    import pyarrow.parquet as pq

    from .results import TABLE, unknown_columns_note

    note = unknown_columns_note(args.run_dir, pq.read_schema(Path(args.run_dir) / TABLE).names)
    if note:
        print(note, file=sys.stderr)
    print(summary_text(info))
    return 0


# ----- search -----
def cmd_search(args: argparse.Namespace) -> int:
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
        fit_width=args.fit_width, objective=args.objective,
        latency_budget_ms=args.latency_budget, throughput_min=args.throughput_min,
        speed_batch=args.speed_batch, measure_speed=args.measure_speed)
    out = run_search(cfg, resume_dir=args.resume)
    return _finish_search(out)


def _finish_search(out) -> int:
    import math

    if out.kind == "roadmap":  # a roadmap replay resumed with `search --resume`
        return _finish_roadmap(out, as_json=False)
    df = out.table
    print(f"\nresults: {out.run_dir}/ (trials.parquet, trials.csv, run.json, study.db)")
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print("trials: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "none"))
    ok = df[(df["status"] == "completed") & df["top1"].map(lambda v: math.isfinite(v))]
    if len(ok):
        print("best designs by proxy top-1 (completed trials):")
        best = ok.sort_values(["top1", "flops"], ascending=[False, True]).head(5)
        for _, r in best.iterrows():
            ref = f" [{r['reference']}]" if r["reference"] else ""
            print(f"  top1 {r['top1']:.3f}  {r['flops'] / 1e9:.2f} GFLOPs{ref}  "
                  f"{r['stem']} depths={r['depths']} width={r['width']} "
                  f"expansion={r['expansion']:g} groups={r['groups']} kernel={r['kernel']} "
                  f"{r['spatial_conv']} {r['act']} activations={r['activations']} "
                  f"norm={r['norm']} norms={r['norms']} downsample={r['downsample']}")
    for note in out.notes:
        print(f"note: {note}")
    if out.stopped_by is not None:
        print("\n" + _stopped_line(out))
    if out.interrupted:
        return _signal_exit(out.stopped_by)
    if len(df) and (df["status"] == "completed").any():
        from .report.run_report import summary_text, write_report

        try:
            print("\n" + summary_text(write_report(out.run_dir)))
        except ValueError as exc:
            print(f"(no report: {one_line(exc)})")
    if len(df) and (df["status"] == "infeasible").all():
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nas-convnext", description="Search the ConvNeXt design space under a "
                "FLOP budget, and ask whether ConvNeXt's choices pay off.")
    p.add_argument("--version", action="version", version=f"nas-convnext {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("presets", help="list the named designs with params and GFLOPs")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table (default: a table)")
    s.set_defaults(func=cmd_presets)

    s = sub.add_parser("flops", help="FLOPs, params and activations of one design")
    _design_arguments(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of text (default: text)")
    s.add_argument("--check", action="store_true", help="also build the model and count it with fvcore; exit 1 if the counts differ (default: analytic count only)")
    s.add_argument("--resolution", type=_positive_int, default=224, help="input image side in pixels (default: %(default)s)")
    s.add_argument("--num-classes", type=_positive_int, default=1000, help="classes of the classifier head (default: %(default)s)")
    s.set_defaults(func=cmd_flops)

    s = sub.add_parser("roadmap", help="the paper's roadmap, ResNet-50 to ConvNeXt-T")
    s.add_argument("--flops-only", action="store_true", help="print each step's FLOPs beside the paper's Table 10 (one of --flops-only, --train is needed)")
    s.add_argument("--train", action="store_true",
                   help="train every step under the proxy and compare with the paper's top-1 (a run under results/)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table (default: a table)")
    _training_options(s)
    s.set_defaults(func=cmd_roadmap)

    s = sub.add_parser("space", help="describe a design space: size, budget fit, FLOP range")
    s.add_argument("space", help="a shipped space name (convnext, small) or a YAML file")
    s.add_argument("--budget", type=_budget, default=None, help="also count the designs within this FLOP budget, e.g. 4.5GFLOPs (default: no budget)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the sampled estimate for spaces too large to count (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print JSON instead of text (default: text)")
    s.set_defaults(func=cmd_space)

    s = sub.add_parser("train", help="train one design's proxy and report its accuracy")
    _design_arguments(s)
    s.add_argument("--dataset", default="synthetic",
                   help="the data: synthetic (built in, needs no files), idx, cifar10, cifar100, imagefolder (default: %(default)s)")
    s.add_argument("--data-dir", default=None, help="the dataset's folder, needed by all but synthetic (default: none)")
    s.add_argument("--proxy", default="cpu", help="proxy profile: cpu-tiny, cpu, gpu (default: %(default)s)")
    s.add_argument("--epochs", type=_positive_int, default=None, help="epochs to train (default: the proxy profile's)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of initialisation, data order and augmentation (default: %(default)s)")
    s.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (default: torch's choice)")
    s.add_argument("--out", default=None, metavar="FILE", help="also write the metrics as JSON to FILE (default: not written)")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout (default: a text summary)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("search", help="search a design space under a FLOP budget (the main job)")
    s.add_argument("--budget", type=_budget, default=None, help="FLOP ceiling of the full-size design, e.g. 4.5GFLOPs (required unless --resume)")
    s.add_argument("--space", default="convnext", help="a shipped space name (convnext, small) or a YAML file (default: %(default)s)")
    s.add_argument("--trials", type=_nonneg_int, default=22,
                   help="designs to search, besides ConvNeXt-T and ResNet-50 (default: %(default)s)")
    s.add_argument("--time-budget", default=None, help="stop after this long, e.g. 30m, 90s, 1.5h; trials still running are stopped early (default: no limit)")
    s.add_argument("--sampler", choices=("tpe", "nsga2", "random", "grid"), default="tpe", help="Optuna's sampler; grid only for spaces of at most 10,000 designs (default: %(default)s)")
    s.add_argument("--scheduler", choices=("asha", "none"), default="asha", help="asha stops the weakest trials after their first epochs; none trains every trial to the end (default: %(default)s)")
    _training_options(s)
    s.add_argument("--storage-path", default=None, help="where Ray keeps its experiment folder, e.g. shared storage on a cluster (default: the run folder)")
    s.add_argument("--fit-width", action=argparse.BooleanOptionalAction, default=True,
                   help="narrow designs over the budget until they fit; otherwise they are not trained and count as infeasible (default: on)")
    s.add_argument("--objective", choices=("flops", "latency", "throughput"), default="flops",
                   help="the second objective beside proxy top-1: the full-size design's FLOPs, or its batch-1 latency or throughput measured where its trial runs (default: %(default)s)")
    s.add_argument("--latency-budget", type=_latency, default=None, metavar="TIME",
                   help="the most a batch-1 forward of the full-size design may take, e.g. 30ms or 0.03s: slower designs are measured but not trained, and count as infeasible (default: no limit)")
    s.add_argument("--throughput-min", type=_throughput, default=None, metavar="RATE",
                   help="the fewest images per second the full-size design must process, e.g. 200/s: slower designs are not trained, and count as infeasible (default: no floor)")
    s.add_argument("--speed-batch", type=_positive_int, default=None, metavar="N",
                   help="images per call for the throughput figure (default: 64 on a GPU; on a CPU 8 when throughput is the objective or a limit, else latency only)")
    s.add_argument("--measure-speed", action="store_true",
                   help="measure every design's speed even when the objective is FLOPs and no speed limit is set, so the report shows the time front (default: off)")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="finish an interrupted run, e.g. results/NAME (default: start a new run)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("speed", help="measure a full-size design's latency and throughput on this "
                       "machine, beside its FLOPs (or the roadmap's, with --roadmap)")
    s.add_argument("design", nargs="?", default=None, help="a preset name (see presets) or a YAML/JSON file of design fields (or --roadmap)")
    s.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"override fields ({', '.join(FIELD_NAMES)}) (default: none)")
    s.add_argument("--roadmap", action="store_true", help="measure the paper's 17 roadmap steps, ConvNeXt-T and ResNet-50, and the rank agreement between FLOPs and time")
    s.add_argument("--larger", action="store_true", help="with --roadmap: also ConvNeXt-S and -B (default: not)")
    s.add_argument("--batch", type=_batch, default=64, help="images per call for the throughput figure, or none for batch-1 latency only (default: %(default)s)")
    s.add_argument("--threads", type=_positive_int, default=None, help="CPU threads while measuring (default: torch's choice); part of the device key")
    s.add_argument("--resolution", type=_positive_int, default=224, help="input image side in pixels (default: %(default)s)")
    s.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available, else the CPU)")
    s.add_argument("--seconds", type=_positive_float, default=2.0, help="time each figure for at least this long, after one warm-up call and at least 3 timed calls (default: %(default)s)")
    s.add_argument("--refresh", action="store_true", help="measure again even if this machine's figures are cached (default: use the cache)")
    s.add_argument("--json", action="store_true", help="print JSON instead of text (default: text)")
    s.set_defaults(func=cmd_speed)

    s = sub.add_parser("analyze", help="report on a run: Pareto front, ConvNeXt verdict, EDFs, "
                       "trade-offs (Markdown, HTML, CSV, JSON, PNG)")
    s.add_argument("run_dir", metavar="RUN_DIR", help="a run folder holding trials.parquet, e.g. results/NAME")
    s.add_argument("--format", action="append", choices=("md", "html", "csv", "json", "png"),
                   default=None, help="write only these formats; repeat for several "
                   "(default: all of md, html, csv, json, png; PNGs come with md and html)")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="write the report here instead of the run folder (default: the run folder)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the bootstrap intervals (default: %(default)s)")
    s.set_defaults(func=cmd_analyze)
    return p


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            rule = "positive" if low == 1 else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)
SEED_MAX = 2**32 - 1  # what numpy's and Optuna's generators take


def _batch(text: str) -> int | None:
    """A throughput batch: a positive integer, or none (latency only)."""
    if text.strip().lower() == "none":
        return None
    return _positive_int(text)


def _seed(text: str) -> int:
    v = _nonneg_int(text)
    if v > SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {SEED_MAX}")
    return v


def _design_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("design", help="a preset name (see presets) or a YAML/JSON file of design fields")
    s.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"override fields ({', '.join(FIELD_NAMES)}) (default: none)")


def _training_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--proxy", default="cpu", help="proxy profile: cpu-tiny, cpu, gpu (default: %(default)s)")
    s.add_argument("--epochs", type=_positive_int, default=None, help="epochs per trial (default: the proxy profile's)")
    s.add_argument("--dataset", default="synthetic",
                   help="the data: synthetic (built in, needs no files), idx, cifar10, cifar100, imagefolder (default: %(default)s)")
    s.add_argument("--data-dir", default=None, help="the dataset's folder, needed by all but synthetic (default: none)")
    s.add_argument("--concurrency", type=_positive_int, default=None, help="trials trained at once (default: as many as the CPUs and GPUs allow)")
    s.add_argument("--cpus-per-trial", type=_positive_float, default=1.0, help="CPUs Ray gives each trial (default: %(default)s)")
    s.add_argument("--gpus-per-trial", type=_nonneg_float, default=0.0, help="GPUs Ray gives each trial, fractions allowed, e.g. 0.5 (default: %(default)s)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of every trial's training and of the search's sampler (default: %(default)s)")
    s.add_argument("--name", default=None, help="run folder name under results/ (default: the start time and settings, e.g. 20250131-120000-convnext-4.5G)")
    s.add_argument("--address", default=None, help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray on this machine)")
    s.add_argument("--results-dir", default="results", help=argparse.SUPPRESS)




def _positive_float(text: str) -> float:
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def _nonneg_float(text: str) -> float:
    v = _float(text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return v


def _float(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def _latency(text: str) -> float:
    from .training.speed import parse_latency_ms

    try:
        return parse_latency_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _throughput(text: str) -> float:
    from .training.speed import parse_throughput

    try:
        return parse_throughput(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _budget(text: str) -> float:
    try:
        return parse_flops(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Options and arguments that name a file or folder, by argparse dest.
_PATH_ARGUMENTS = {"out": "--out", "data_dir": "--data-dir", "storage_path": "--storage-path",
                   "resume": "--resume", "results_dir": "--results-dir", "run_dir": "RUN_DIR"}


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    """An empty path names nothing: refuse it rather than let it mean the current folder.

    `Path("")` is `.`, so `analyze RUN --out ""` would write the report wherever the command
    was started; an unset shell variable gives exactly this, and deserves a word, not a guess.
    """
    for dest, label in _PATH_ARGUMENTS.items():
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"nas-convnext {args.command}: argument {label}: the path {value!r} is "
                             f"empty; give a file or folder name (an empty one is not "
                             "taken to mean the current folder)")


def main(argv: Sequence[str] | None = None) -> int:
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        _refuse_empty_paths(args)
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(one_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"nas-convnext: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        from .search.signals import Terminated

        terminated = isinstance(exc, Terminated)
        # A search that got as far as its run.json returns normally (with the resume command);
        # one that ends here had made no run folder (or removed the empty one it made).
        nothing = ("; no run was saved, start it again" if command in ("search", "roadmap")
                   else "")
        print(f"nas-convnext: {'terminated (SIGTERM)' if terminated else 'interrupted'}{nothing}",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:  # `nas-convnext presets | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
