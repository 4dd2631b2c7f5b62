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
from .design.codec import text
from .design.complexity import FLOP_CONVENTION, complexity, fvcore_count, parse_flops
from .results import one_line, text_table
from .run_end import (  # noqa: F401
    ABLATE_BUDGET,
    ABLATE_SEEDS,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    MAX_SEEDS,
    SEED_MAX,
    _ablation_fidelity,
    _analyze_ablation,
    _end_of_run,
    _finish_ablation,
    _finish_calibration,
    _finish_roadmap,
    _finish_search,
    _interrupted_exit,
    _signal_exit,
    _stopped_line,
    ablation_plan,
)
from .runs import _roadmap_train, cmd_ablate, cmd_calibrate, cmd_search, cmd_speed  # noqa: F401

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(f"{self.prog}: {message}")


class UsageError(Exception):
    pass


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
    print(text_table([[r["name"], f"{r['params'] / 1e6:.2f}M", f"{r['gflops']:.3f}"] for r in rows],
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
        fields = " ".join(f"{k}={text(v)}" for k, v in arch.to_dict().items())
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
    print(text_table(table, ["#", "step", "params", "GFLOPs", "conv+lin", "paper", "diff",
                         "what changed"]))
    print(f"\n{_convention()}.\nGFLOPs is fvcore's total (norms and pooling included); "
          "conv+lin counts conv and linear layers only, which is how the paper's Table 10 "
          "counts; diff = conv+lin - paper.")
    for r in rows:
        if r["note"]:
            print(f"* {r['name']}: {r['note']}")
    return 0


# ----- space -----
def cmd_space(args: argparse.Namespace) -> int:
    from .design.space import load_space

    space = load_space(args.space)
    info = space.describe(args.budget, seed=args.seed)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"space {info['name']} ({info['source']}): {info['description']}")
    print(text_table([[k, ", ".join(map(text, v))] for k, v in info["dimensions"].items()],
                 ["dimension", "values"]))
    if info["fixed"]:
        print("fixed: " + ", ".join(f"{k}={text(v)}" for k, v in info["fixed"].items()))
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
    """Train one design's proxy, as a search trial would, and report its metrics."""
    from .training.command import train_command

    run = train_command(args.design, args.overrides, args.proxy, args.epochs, args.dataset,
                        args.data_dir, args.seed, args.threads, args.out)
    if args.json:
        print(json.dumps(run.metrics, indent=2))
        print(run.summary, file=sys.stderr)
    else:
        print(run.summary)
    if run.result.status == "diverged":
        result = run.result
        kept = (f"the metrics are those of epoch {result.epochs}, the last good one"
                if result.epochs else "no epoch finished, so there are no metrics")
        print(f"nas-convnext: the trial diverged ({result.message}); {kept}. A lower learning "
              "rate or another design may train.", file=sys.stderr)
        return 1
    return 0


# ----- analyze -----
def cmd_analyze(args: argparse.Namespace) -> int:
    """Write a run's report (figures, tables, verdict) and print a short summary."""
    from pathlib import Path

    from .report.document import FORMATS
    from .report.run_report import summary_text, write_report

    formats = tuple(args.format) if args.format else FORMATS
    if (Path(args.run_dir) / "run.json").is_file():
        from .results import read_run_json

        try:
            meta = read_run_json(Path(args.run_dir))
        except ValueError:  # a damaged run.json: the table can still be analysed
            meta = {}
        if meta.get("kind") == "ablation":  # its own report: paired verdicts, not a front
            return _analyze_ablation(args, meta, formats)
    info = write_report(args.run_dir, formats=formats, out_dir=args.out, seed=args.seed,
                        calibration=args.calibration)
    import pyarrow.parquet as pq

    from .results import TABLE, unknown_columns_note

    note = unknown_columns_note(args.run_dir, pq.read_schema(Path(args.run_dir) / TABLE).names)
    if note:
        print(note, file=sys.stderr)
    print(summary_text(info))
    return 0


# long: every command's options in one place, in the order `--help` shows them.
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
                   help="train every step under the proxy with one seed and compare with the paper's top-1 (a calibration run under results/; nas-convnext calibrate trains several seeds)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table (default: a table)")
    _training_options(s)
    s.set_defaults(func=cmd_roadmap)

    s = sub.add_parser("calibrate", help="how faithfully the proxy ranks the paper's 17 roadmap "
                       "steps: Kendall tau with intervals, seed ceiling, FLOPs-only baseline")
    s.add_argument("--seeds", type=_int_at_least(1, MAX_SEEDS), default=2,
                   help="seeds each step is trained with, --seed to --seed + N - 1, at most 1000; 2 or "
                   "more give an interval (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print calibration.json's object on stdout (default: a summary)")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="finish an interrupted calibration (default: start a new one)")
    _training_options(s)
    s.add_argument("--storage-path", default=None, help="where Ray keeps its experiment folder (default: the run folder)")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("space", help="describe a design space: size, budget fit, FLOP range")
    s.add_argument("space", help="a shipped space name (convnext, small) or a YAML file")
    s.add_argument("--budget", type=_budget, default=None, help="also count the designs within this FLOP budget, e.g. 4.5GFLOPs (default: no budget)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the sampled estimate for spaces too large to count (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print JSON instead of text (default: text)")
    s.set_defaults(func=cmd_space)

    s = sub.add_parser("train", help="train one design's proxy and report its accuracy")
    _design_arguments(s)
    _dataset_options(s)
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
    s.add_argument("--scheduler", choices=("mo-asha", "asha", "none"), default="mo-asha", help="mo-asha stops, at epochs 1, 3, 9, ..., the trials that most others dominate in (top-1, the --objective's cost); asha stops the least accurate; none trains every trial to the end; references are never stopped (default: %(default)s)")
    _training_options(s)
    s.add_argument("--storage-path", default=None, help="where Ray keeps its experiment folder, e.g. shared storage on a cluster (default: the run folder)")
    s.add_argument("--fit-width", action=argparse.BooleanOptionalAction, default=None,
                   help="narrow designs over the budget until they fit; otherwise they are not trained and count as infeasible (default: on, off with --replay)")
    s.add_argument("--replay", default=None, metavar="TABLE", help="look every trial's per-epoch top-1 up in a replay table (parquet, e.g. bench/tables/fmnist-cpu.parquet with --space bench --epochs 4) instead of training; the recorded seconds are its cost on a simulated clock (default: train)")
    s.add_argument("--objective", choices=("flops", "latency", "throughput"), default="flops", help="the second objective beside proxy top-1: the full-size design's FLOPs, or its batch-1 latency or throughput measured where its trial runs (default: %(default)s)")
    s.add_argument("--latency-budget", type=_latency, default=None, metavar="TIME", help="the most a batch-1 forward of the full-size design may take, e.g. 30ms or 0.03s: slower designs are measured but not trained, and count as infeasible (default: no limit)")
    s.add_argument("--throughput-min", type=_throughput, default=None, metavar="RATE", help="the fewest images per second the full-size design must process, e.g. 200/s: slower designs are not trained, and count as infeasible (default: no floor)")
    s.add_argument("--speed-batch", type=_positive_int, default=None, metavar="N", help="images per call for the throughput figure (default: 64 on a GPU; on a CPU 8 when throughput is the objective or a limit, else latency only)")
    s.add_argument("--measure-speed", action="store_true", help="measure every design's speed even when the objective is FLOPs and no speed limit is set, so the report shows the time front (default: off)")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="finish an interrupted run, e.g. results/NAME (default: start a new run)")
    s.add_argument("--calibration", default=None, metavar="RUN", help="the calibration run (of nas-convnext calibrate) whose figures go beside the verdicts (default: the newest in the results folder with the run's proxy and dataset)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("ablate", help="one change at a time around a design (ConvNeXt-T): "
                       "FLOP-matched variants, paired seeds, a verdict per choice")
    s.add_argument("design", nargs="?", default="convnext_t",
                   help="the base design: a preset name or a YAML/JSON file (default: %(default)s)")
    s.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"override fields of the base ({', '.join(FIELD_NAMES)}) (default: none)")
    s.add_argument("--space", default="convnext", help="the space whose dimensions are varied, one at a time: a shipped space name (convnext, small) or a YAML file; it must hold the base's values (default: %(default)s)")
    s.add_argument("--budget", type=_budget, default=None, help=f"FLOP ceiling: a base above it is narrowed, a variant above it skipped, e.g. 4.5GFLOPs (default: {ABLATE_BUDGET})")
    s.add_argument("--seeds", type=_int_at_least(2, MAX_SEEDS, "a paired interval needs at least 2 seeds (one seed has no spread); the default is 3"), default=None,
                   help=f"seeds every design is trained with, 2 to 1000: --seed, --seed + 1, ... (default: {ABLATE_SEEDS})")
    _training_options(s)
    for action in s._actions:
        if action.dest == "seed":
            action.help = "the first seed (default: %(default)s)"
    s.add_argument("--json", action="store_true", help="print one JSON object (base, seeds, minutes, variants, verdicts) instead of text (default: text)")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="finish an interrupted ablation, e.g. results/NAME; nothing is trained twice (default: start a new run)")
    s.set_defaults(func=cmd_ablate)

    s = sub.add_parser("speed", help="measure a full-size design's latency and throughput on this machine, beside its FLOPs (or the roadmap's, with --roadmap)")
    _design_arguments(s, optional=True)
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
    s.add_argument("--calibration", default=None, metavar="RUN", help="the calibration run (of nas-convnext calibrate) whose figures go beside the verdicts (default: the newest in the results folder with the run's proxy and dataset)")
    s.set_defaults(func=cmd_analyze)
    return p


def _int_at_least(low: int, high: int | None = None, why_low: str | None = None):
    """An integer option's parser: at least `low` (`why_low` says why, if given) and at most
    `high` (a --seeds count is bounded: every design is trained with each seed, and an
    unbounded count would plan millions of trials before anything starts)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            rule = "positive" if low == 1 else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{text!r}: {why_low}" if why_low else f"{text!r} must be {rule}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"{text!r} must be at most {high}")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _batch(text: str) -> int | None:
    """A throughput batch: a positive integer, or none (latency only)."""
    return None if text.strip().lower() == "none" else _positive_int(text)


def _seed(text: str) -> int:
    v = _nonneg_int(text)
    if v > SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {SEED_MAX}")
    return v


def _design_arguments(s: argparse.ArgumentParser, optional: bool = False) -> None:
    """DESIGN and its key=value overrides; `optional`: DESIGN may be left out (speed --roadmap)."""
    s.add_argument("design", help="a preset name (see presets) or a YAML/JSON file of design fields"
                   + (" (or --roadmap)" if optional else ""), **({"nargs": "?"} if optional else {}))
    s.add_argument("overrides", nargs="*", metavar="key=value",
                   help=f"override fields ({', '.join(FIELD_NAMES)}) (default: none)")


def _dataset_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--dataset", default="fashion-mnist",
                   help="the images: fashion-mnist, mnist, cifar10, cifar100 (found in --data-dir, "
                   "the cache, /usr/share/datasets, a download, and for fashion-mnist the subset "
                   "shipped in the package), idx or imagefolder (a --data-dir in that format), or "
                   "synthetic (generated; for tests and smoke runs only) (default: %(default)s)")
    s.add_argument("--data-dir", default=None, help="the dataset's folder: the only place looked at "
                   "when given; needed by idx and imagefolder (default: look it up by name)")


def _training_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--proxy", default="cpu", help="proxy profile: cpu-tiny, cpu, gpu (default: %(default)s)")
    s.add_argument("--epochs", type=_positive_int, default=None, help="epochs per trial (default: the proxy profile's)")
    _dataset_options(s)
    s.add_argument("--concurrency", type=_positive_int, default=None, help="trials trained at once (default: as many as the CPUs and GPUs allow)")
    s.add_argument("--cpus-per-trial", type=_resource(gpu=False), default=1.0, help="CPUs Ray gives each trial (default: %(default)s)")
    s.add_argument("--gpus-per-trial", type=_resource(gpu=True), default=0.0, help="GPUs Ray gives each trial, fractions allowed, e.g. 0.5 (default: %(default)s)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of every trial's training and of the search's sampler (default: %(default)s)")
    s.add_argument("--name", default=None, help="run folder name under results/ (default: the start time and settings, e.g. 20250131-120000-convnext-4.5G)")
    s.add_argument("--address", default=None, help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray on this machine)")
    s.add_argument("--results-dir", default="results", help=argparse.SUPPRESS)


def _positive_float(text: str) -> float:
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def _resource(gpu: bool):
    """--cpus-per-trial, --gpus-per-trial: Ray's rules, checked while the number is as typed
    (a float can read otherwise: 10000000000000002 is 1.0000000000000002e+16)."""
    def parse(text: str) -> float:
        from .search.config import resource_problem

        v = _float(text)
        problem = resource_problem(v, gpu)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
        return v
    return parse


def _float(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def _speed_figure(parser_name: str):
    """A speed limit's type ('30ms', '200/s'): training.speed's parser (torch: imported late)."""
    def parse(text: str) -> float:
        from .training import speed

        try:
            return getattr(speed, parser_name)(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


_latency = _speed_figure("parse_latency_ms")
_throughput = _speed_figure("parse_throughput")


def _budget(text: str) -> float:
    try:
        return parse_flops(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Options and arguments that name a file or folder, by argparse dest.
_PATH_ARGUMENTS = {"out": "--out", "calibration": "--calibration", "data_dir": "--data-dir", "storage_path": "--storage-path",
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
        return _interrupted_exit(exc, command)
    except BrokenPipeError:  # `nas-convnext presets | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
