"""Recorded trials as a trial backend: learning curves looked up in a table, not trained.

Why: comparing samplers and schedulers needs many whole searches, and each real one costs
hours. A replay table (bench/build_table.py makes one) holds every design of a space trained
once, with its top-1 and its cumulative training seconds after every epoch; a replayed trial
reports those figures epoch by epoch, as `train.train_trial` reports what it measures, and
takes no time. Its cost is the recorded seconds, counted on a simulated clock.

The table: a parquet file with one row per (design, epoch): the design's fields as columns,
named and encoded as in trials.parquet (`Arch.to_row`), plus `epoch` (from 1), `top1` (a
fraction) and `seconds` (the trial's cumulative training seconds at the end of that epoch);
an optional `status` column says `diverged` for a design whose training ended early. Other
columns are ignored; FLOPs and parameters come from the design, never from the table.

Two clocks: `SimulatedClock` places finished trials on `concurrency` workers (each trial
starts when a worker is free), for a run whose trials were replayed in any real order; and
`simulate_run`, an event loop that replays a whole asynchronous run in simulated time, giving
a scheduler each epoch's result in the order a real run would see them.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from ..design.arch import FIELD_NAMES, Arch
from ..training.trial import Report, TrialResult
from ..userfile import shown

CURVE_COLUMNS = ("epoch", "top1", "seconds")
TABLE_MAX_BYTES = 256 * 2**20   # a table of a few thousand designs is a few MB
STATUSES = ("completed", "diverged")


@dataclass(frozen=True)
class Curve:
    """One design's recorded training: per epoch (epoch, top1, cumulative seconds)."""

    epochs: tuple[tuple[int, float, float], ...]
    status: str = "completed"


def design_name(arch: Arch) -> str:
    """A design in one line, as key=value pairs of its table cells."""
    return " ".join(f"{k}={_cell_text(v)}" for k, v in arch.to_row().items())


def _cell_text(v: Any) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "none"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _plain(v: Any) -> Any:
    """A parquet cell as a plain Python value (numpy scalars, pandas NA)."""
    if v is pd.NA or v is None:
        return math.nan
    return v.item() if hasattr(v, "item") else v


class ReplayTable:
    """A loaded replay table: each design's curve, indexed by the design.

    Build it with `ReplayTable.load(path)` (a file) or `ReplayTable.from_frame(df)`.
    """

    def __init__(self, curves: Mapping[str, Curve], designs: Mapping[str, Arch],
                 source: str = "<table>"):
        self.curves = dict(curves)
        self._designs = dict(designs)
        self.source = source

    # ----- loading -----
    @classmethod
    def load(cls, path: str | Path) -> "ReplayTable":
        """Read and check a replay table; a ValueError in one line naming the file and what
        is wrong with it."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ValueError(f"replay table {path}: cannot be read ({exc.strerror or exc})"
                             ) from None
        if size > TABLE_MAX_BYTES:
            raise ValueError(f"replay table {path}: {size:,} bytes, more than "
                             f"{TABLE_MAX_BYTES:,}: is it a replay table?")
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise ValueError(f"replay table {path}: not a parquet file it can read "
                             f"({type(exc).__name__})") from None
        return cls.from_frame(df, str(path))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str = "<table>") -> "ReplayTable":
        """Check a table's columns and values and index its curves by design."""
        where = f"replay table {source}"
        missing = [c for c in (*FIELD_NAMES, *CURVE_COLUMNS) if c not in df.columns]
        if missing:
            raise ValueError(f"{where} lacks column(s) {missing}: a replay table has the design "
                             f"fields ({', '.join(FIELD_NAMES)}) and {', '.join(CURVE_COLUMNS)}")
        if not len(df):
            raise ValueError(f"{where} has no rows")
        for col in CURVE_COLUMNS:
            values = pd.to_numeric(df[col], errors="coerce")
            if values.isna().any():
                row = int(values.isna().to_numpy().nonzero()[0][0])
                raise ValueError(f"{where}: row {row + 1}: {col}={shown(_plain(df[col].iloc[row]))}"
                                 " is not a number")
        status = df["status"].astype(str) if "status" in df.columns else None
        curves: dict[str, list[tuple[int, float, float]]] = {}
        designs: dict[str, Arch] = {}
        statuses: dict[str, str] = {}
        arch_of_cells: dict[tuple, Arch] = {}
        fields = df[list(FIELD_NAMES)].to_dict("records")
        epochs = df["epoch"].tolist()
        top1s = df["top1"].astype(float).tolist()
        seconds = df["seconds"].astype(float).tolist()
        for i, cells in enumerate(fields):
            cells = {k: _plain(v) for k, v in cells.items()}
            ident = tuple(_cell_text(cells[k]) for k in FIELD_NAMES)
            arch = arch_of_cells.get(ident)
            if arch is None:
                try:
                    arch = arch_of_cells[ident] = Arch.from_row(cells)
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{where}: row {i + 1}: {exc}") from None
            epoch, top1, secs = epochs[i], top1s[i], seconds[i]
            if float(epoch) != int(epoch) or int(epoch) < 1:
                raise ValueError(f"{where}: row {i + 1}: epoch={shown(epoch)} must be a whole "
                                 "number from 1")
            if not 0.0 <= top1 <= 1.0:
                raise ValueError(f"{where}: row {i + 1}: top1={top1!r} must be a fraction "
                                 "from 0 to 1")
            if not (math.isfinite(secs) and secs >= 0):
                raise ValueError(f"{where}: row {i + 1}: seconds={secs!r} must be a finite "
                                 "number of seconds, 0 or more")
            key = arch.key()
            designs[key] = arch
            curves.setdefault(key, []).append((int(epoch), float(top1), float(secs)))
            if status is not None:
                s = status.iloc[i]
                if s not in STATUSES:
                    raise ValueError(f"{where}: row {i + 1}: status={shown(s)}: expected one of "
                                     f"{', '.join(STATUSES)}")
                if statuses.setdefault(key, s) != s:
                    raise ValueError(f"{where}: row {i + 1}: design {design_name(arch)} has "
                                     "rows of two statuses")
        out = {}
        for key, rows in curves.items():
            rows.sort()
            if [e for e, _, _ in rows] != list(range(1, len(rows) + 1)):
                raise ValueError(f"{where}: design {design_name(designs[key])} has epochs "
                                 f"{[e for e, _, _ in rows][:12]}: expected 1, 2, ... once each")
            if any(b[2] < a[2] for a, b in zip(rows, rows[1:])):
                raise ValueError(f"{where}: design {design_name(designs[key])}: seconds fall "
                                 "from one epoch to the next; they must be cumulative")
            out[key] = Curve(tuple(rows), statuses.get(key, "completed"))
        return cls(out, designs, source)

    # ----- lookup -----
    def __len__(self) -> int:
        return len(self.curves)

    def __contains__(self, arch: Arch) -> bool:
        return arch.key() in self.curves

    def designs(self) -> list[Arch]:
        """Every design of the table, in the table's order."""
        return list(self._designs.values())

    def curve(self, arch: Arch) -> Curve:
        """The design's curve; a one-line ValueError naming a design the table lacks."""
        found = self.curves.get(arch.key())
        if found is None:
            raise ValueError(f"design {design_name(arch)} is not in replay table "
                             f"{self.source}: a replayed search can only propose the table's "
                             f"{len(self)} designs (use its space, without --fit-width)")
        return found

    def lookup(self, arch: Arch) -> list[tuple[int, float, float]]:
        """[(epoch, top1, cumulative seconds)] of the design, epoch 1 first."""
        return list(self.curve(arch).epochs)

    def check(self, archs: Iterable[Arch]) -> None:
        """Refuse, in one line, the first of these designs that the table lacks."""
        for arch in archs:
            self.curve(arch)


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> ReplayTable:
    return ReplayTable.load(path)


def cached_table(path: str | Path) -> ReplayTable:
    """`ReplayTable.load`, once per file and version in a process: a Ray worker that runs
    many replayed trials reads the table once."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return ReplayTable.load(path)   # raises the one-line refusal
    return _cached(str(path), st.st_mtime_ns, st.st_size)


def replay_trial(arch: Arch, table: ReplayTable, report: Report | None = None,
                 epochs: int | None = None) -> TrialResult:
    """Replay a design's recorded training: `report` gets each epoch's metrics, as
    `train.train_trial` gives them, at once (no sleeping), and may raise to stop the trial.

    Parameters: `arch`, the design (refused in one line when the table lacks it); `table`,
    the loaded replay table; `report`, called with {epoch, top1, top5, loss, val_loss,
    images_per_s, elapsed_s, compute_s, eval_s} after every epoch (top5, the losses and
    images/s are NaN: the table does not hold them; elapsed_s and compute_s are the recorded
    cumulative seconds); `epochs`, the epochs the run plans (default: all the table has). A
    design recorded as diverged ends as `diverged` after its last recorded epoch; a
    completed one with fewer epochs than planned is refused.
    """
    curve = table.curve(arch)
    want = len(curve.epochs) if epochs is None else int(epochs)
    if want < 1:
        raise ValueError(f"epochs={epochs!r} must be at least 1")
    if want > len(curve.epochs) and curve.status == "completed":
        raise ValueError(f"replay table {table.source} has {len(curve.epochs)} epoch(s) of "
                         f"design {design_name(arch)}; the run plans {want}: replay with the "
                         "table's proxy")
    result = TrialResult(status="completed", epochs=0)
    for epoch, top1, secs in curve.epochs[:want]:
        metrics = {"epoch": epoch, "top1": top1, "top5": math.nan, "loss": math.nan,
                   "val_loss": math.nan, "images_per_s": math.nan, "elapsed_s": secs,
                   "compute_s": secs, "eval_s": 0.0}
        result.history.append(metrics)
        result.epochs, result.top1, result.elapsed_s, result.compute_s = epoch, top1, secs, secs
        if report is not None:
            report(dict(metrics))
    if curve.status == "diverged" and want > len(curve.epochs):
        result.status = "diverged"
        result.message = f"diverged after epoch {len(curve.epochs)} (recorded)"
    return result


class SimulatedClock:
    """Simulated time for a run of replayed trials on `concurrency` workers.

    `add(seconds)` places a trial that costs `seconds` on the worker free first (a trial starts
    when a worker is free, in the order trials are added) and returns its (start, end);
    `elapsed` is the simulated wall time of the run so far, `compute` the seconds of all
    trials together (what the run cost in worker time).
    """

    def __init__(self, concurrency: int = 1):
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency={concurrency!r} must be a whole number from 1")
        self.free = [0.0] * concurrency   # a heap of the times workers become free
        self.elapsed = 0.0
        self.compute = 0.0

    def add(self, seconds: float) -> tuple[float, float]:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds={seconds!r} must be a finite number, 0 or more")
        start = heapq.heappop(self.free)
        end = start + seconds
        heapq.heappush(self.free, end)
        self.elapsed = max(self.elapsed, end)
        self.compute += seconds
        return start, end


@dataclass
class ReplayedTrial:
    """One trial of `simulate_run`: its design, the epochs it ran, and when (simulated)."""

    number: int
    arch: Arch
    start: float
    end: float = math.nan
    epochs: int = 0
    top1: float = math.nan
    stopped: bool = False          # stopped by the scheduler before its last epoch
    history: list[tuple[int, float, float]] = field(default_factory=list)


def simulate_run(table: ReplayTable, propose: Callable[[int], Arch | None], trials: int,
                 epochs: int, concurrency: int = 1,
                 decide: Callable[[ReplayedTrial, int, float], bool] | None = None,
                 finished: Callable[[ReplayedTrial], None] | None = None) -> list[ReplayedTrial]:
    """Replay an asynchronous run in simulated time, deterministically.

    Each of `concurrency` workers takes the next proposal when it is free; every epoch's
    result is an event at the trial's start plus its recorded seconds, and events are handled
    in time order (ties by trial number), so a scheduler sees results in the order a real run
    with these costs would. Parameters: `propose(number)`, the next design (None: no more);
    `trials`, how many to propose at most; `epochs`, the planned epochs per trial;
    `decide(trial, epoch, top1)`, whether the trial trains on after `epoch` (None: always);
    `finished(trial)`, called when a trial ends (an Optuna `tell`, say) before the freed
    worker takes the next proposal. Returns the trials in proposal order.
    """
    if concurrency < 1 or trials < 0 or epochs < 1:
        raise ValueError(f"concurrency={concurrency!r}, trials={trials!r}, epochs={epochs!r}: "
                         "concurrency and epochs must be at least 1, trials at least 0")
    out: list[ReplayedTrial] = []
    events: list[tuple[float, int, int]] = []   # (time, trial number, index into its curve)
    curves: dict[int, list[tuple[int, float, float]]] = {}

    def start(now: float) -> bool:
        if len(out) >= trials:
            return False
        arch = propose(len(out))
        if arch is None:
            return False
        curve = table.lookup(arch)
        if len(curve) < epochs and table.curve(arch).status == "completed":
            replay_trial(arch, table, epochs=epochs)   # raises: too few epochs recorded
        trial = ReplayedTrial(len(out), arch, now)
        out.append(trial)
        curves[trial.number] = curve[:epochs]
        heapq.heappush(events, (now + curve[0][2], trial.number, 0))
        return True

    for _ in range(concurrency):
        if not start(0.0):
            break
    while events:
        now, number, i = heapq.heappop(events)
        trial, curve = out[number], curves[number]
        epoch, top1, secs = curve[i]
        trial.epochs, trial.top1 = epoch, top1
        trial.history.append((epoch, top1, secs))
        last = i + 1 >= len(curve)
        go_on = not last and (decide is None or decide(trial, epoch, top1))
        if go_on:
            heapq.heappush(events, (trial.start + curve[i + 1][2], number, i + 1))
            continue
        trial.stopped = not last
        trial.end = now
        if finished is not None:
            finished(trial)
        start(now)
    return out


def compute_used(trials: Sequence[ReplayedTrial]) -> float:
    """Worker seconds spent by these trials (each up to the epoch it stopped at)."""
    return sum(t.history[-1][2] for t in trials if t.history)
