"""The `train` command's work: one design's proxy trained exactly as a search trial is.

Everything that can be wrong with the command line (design, profile, resolution, dataset,
data folder, output file) is checked before the data is loaded and long before training
starts, so a typo costs a second, not a trial. Progress goes to stderr: a bar on a terminal,
else a line an epoch.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..design.arch import load_design
from ..design.complexity import complexity
from ..results import atomic_write_text, check_replaceable, plain
from .trial import TrialResult


@dataclass(frozen=True)
class TrainRun:
    """A finished `train` command: the trial's result, its metrics as JSON and a summary."""

    result: TrialResult
    metrics: dict[str, Any]     # what --out and --json write (NaN as null)
    summary: str                # the lines printed at the end


def train_command(design: str, overrides: Sequence[str], proxy_name: str, epochs: int | None,
                  dataset: str, data_dir: str | None, seed: int, threads: int | None,
                  out: str | None) -> TrainRun:
    """Train `design` (a preset or a YAML/JSON file, with `key=value` `overrides`) under the
    proxy profile `proxy_name` (with `epochs` if given) on `dataset` (`data_dir` for all but
    synthetic), seeded by `seed`, on `threads` CPU threads; write the metrics to `out` (a
    JSON file) when given. ValueError, in one line, for a mistake in any of them."""
    from .proxy import get_proxy
    from .trial import check_memory, check_resolution, load_proxy_data, resolve_data, train_trial

    arch = load_design(design, overrides)
    proxy = get_proxy(proxy_name, epochs=epochs)
    check_resolution(arch, proxy.resolution)
    # Before the data is loaded, with the fewest classes and channels: a design that cannot
    # fit even so is refused in a second; train_trial checks again with the real figures.
    check_memory(arch, proxy, name=" ".join([design, *overrides]))
    out_path = _out_path(out)
    if dataset == "synthetic" and data_dir:
        print("nas-convnext: note: dataset 'synthetic' is generated; --data-dir is ignored",
              file=sys.stderr)
        data_dir = None
    source = resolve_data(dataset, data_dir)
    data = load_proxy_data(source, None, proxy)
    c = complexity(arch)
    print(f"training {design} ({c.gflops:.2f} GFLOPs, {c.params / 1e6:.1f}M params full "
          f"size) under proxy {proxy.name}: {proxy.resolution}px, width x{proxy.width_mult:g}, "
          f"{proxy.epochs} epoch(s), {min(proxy.train_size, len(data.train_y))} training images "
          f"of {data.name} ({source.source}), seed {seed}", file=sys.stderr)
    result = _train_with_progress(train_trial, arch, proxy, data, seed, threads)
    # NaN (a diverged trial's metrics) is not JSON; null is.
    metrics = plain({"design": design, **arch.to_dict(), "flops": c.flops, "params": c.params,
                     "gflops": c.gflops, "proxy": proxy.to_dict(), "dataset": data.name,
                     "data_dir": data_dir,
                     "dataset_source": source.source, "seed": seed, "threads": threads,
                     **result.to_dict(), "history": result.history})
    if out_path is not None:
        try:
            atomic_write_text(out_path, json.dumps(metrics, indent=2) + "\n")
        except OSError as exc:
            raise ValueError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    return TrainRun(result, metrics, _summary(result, proxy.epochs, out_path))


def _out_path(out: str | None) -> Path | None:
    """--out as a path that can be written, checked now rather than after the training."""
    if not out:
        return None
    path = Path(out)
    if not path.parent.is_dir():
        raise ValueError(f"--out {out}: folder {str(path.parent)!r} does not exist; "
                         "create it or choose another path")
    if path.is_dir() and not path.is_symlink():
        raise ValueError(f"--out {out} is a folder; give a file name, e.g. "
                         f"{path / 'metrics.json'}")
    try:  # a device, a FIFO or a link is refused now, not after the training
        check_replaceable(path)
    except OSError as exc:
        raise ValueError(f"--out {out}: {exc.strerror}") from None
    return path


def _summary(result: TrialResult, planned: int, out_path: Path | None) -> str:
    def num(v: float, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"

    return "\n".join([
        f"status    {result.status}",
        f"top1      {num(result.top1, '.4f')}  (top5 {num(result.top5, '.4f')})",
        f"loss      {num(result.loss, '.4f')} train, {num(result.val_loss, '.4f')} validation",
        f"epochs    {result.epochs}/{planned}",
        f"images/s  {num(result.images_per_s, '.1f')}",
        f"elapsed   {result.elapsed_s:.1f} s (forward/backward/step {result.compute_s:.1f} s, "
        f"evaluation {result.eval_s:.1f} s)",
    ] + ([f"metrics   {out_path}"] if out_path is not None else []))


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
