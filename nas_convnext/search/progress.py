"""The search's live status: one line per finished trial, and a status line on a terminal.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any


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
        lat = row.get("latency_ms")
        timed = (f"{lat:.1f} ms  " if isinstance(lat, float) and math.isfinite(lat) else "")
        msg = (f"[{self.done}/{self.total}] {row['status']:<13} top1 {shown:>5}  "
               f"{row['flops'] / 1e9:.2f} GFLOPs  {timed}{row['wall_s']:.0f}s  {_short(row)}")
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


def end_lines(run_dir: Path, df) -> list[str]:
    """What a finished search prints first: where its results are, its trials by status and
    its best completed designs."""
    lines = [f"\nresults: {run_dir}/ (trials.parquet, trials.csv, run.json, study.db)"]
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    lines.append("trials: " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "none"))
    ok = df[(df["status"] == "completed") & df["top1"].map(lambda v: math.isfinite(v))]
    if len(ok):
        lines.append("best designs by proxy top-1 (completed trials):")
        best = ok.sort_values(["top1", "flops"], ascending=[False, True]).head(5)
        for _, r in best.iterrows():
            ref = f" [{r['reference']}]" if r["reference"] else ""
            lines.append(f"  top1 {r['top1']:.3f}  {r['flops'] / 1e9:.2f} GFLOPs{ref}  "
                         f"{r['stem']} depths={r['depths']} width={r['width']} "
                         f"expansion={r['expansion']:g} groups={r['groups']} "
                         f"kernel={r['kernel']} {r['spatial_conv']} {r['act']} "
                         f"activations={r['activations']} norm={r['norm']} norms={r['norms']} "
                         f"downsample={r['downsample']}")
    return lines
