"""What a search optimises besides proxy top-1, and the speed limits a design must meet.

The second objective is the full-size design's FLOPs (the default), its measured batch-1
latency (minimised) or its measured throughput (maximised). A latency budget and a throughput
floor are hard constraints like the FLOP budget: a design that breaks one is measured but not
trained, its row says `infeasible`, and Optuna is told it as infeasible through
`trial.set_constraint`, as for FLOPs. Speed is measured in the trial, where the design would
train (`training.speed.cached_speed`: the full-size network, cached per kind of machine), so a
figure always comes with the device key of the machine that took it.

Measuring costs time: on a CPU a batch-1 latency takes a few percent of a `cpu` proxy trial
(docs/BENCHMARKS.md), a batch-64 throughput more than the trial itself. So on a CPU only the
latency is measured unless throughput is the objective or a constraint, and then at a small
batch (8); on a GPU at batch 64, where it is cheap.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..training.speed import parse_latency_ms, parse_throughput
from .outcome import as_number

OBJECTIVES = ("flops", "latency", "throughput")
CPU_THROUGHPUT_BATCH = 8
GPU_BATCH = 64
#: The second objective's column in the trials table, its direction and Optuna's metric name.
SECOND = {"flops": ("flops", "minimize", "gflops"),
          "latency": ("latency_ms", "minimize", "latency_ms"),
          "throughput": ("throughput", "maximize", "throughput")}


@dataclass(frozen=True)
class Objective:
    """A search's second objective and speed constraints.

    name: 'flops', 'latency' or 'throughput'. latency_budget_ms: the most milliseconds a
    batch-1 forward may take (None: no limit). throughput_min: the fewest images per second
    (None: no floor). speed_batch: the throughput batch (None: 8 on a CPU when throughput is
    needed, else latency only; 64 on a GPU). measure: measure speed even when nothing needs it
    (so the report can show the time front of a FLOPs search).
    """

    name: str = "flops"
    latency_budget_ms: float | None = None
    throughput_min: float | None = None
    speed_batch: int | None = None
    measure: bool = False

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"--objective {self.name!r}: expected one of {', '.join(OBJECTIVES)}")
        for option, value in (("--latency-budget", self.latency_budget_ms),
                              ("--throughput-min", self.throughput_min)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{option} {value!r}: expected a positive number")
        if self.speed_batch is not None and (isinstance(self.speed_batch, bool)
                                             or not isinstance(self.speed_batch, int)
                                             or self.speed_batch < 1):
            raise ValueError(f"--speed-batch {self.speed_batch!r}: expected a positive integer")

    @classmethod
    def parse(cls, name: str = "flops", latency_budget: str | None = None,
              throughput_min: str | None = None, speed_batch: int | None = None,
              measure: bool = False) -> "Objective":
        """From the command line's words ('30ms', '200/s'); a ValueError names a bad one."""
        return cls(name, None if latency_budget is None else parse_latency_ms(latency_budget),
                   None if throughput_min is None else parse_throughput(throughput_min),
                   speed_batch, measure)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def needs_throughput(self) -> bool:
        return self.name == "throughput" or self.throughput_min is not None

    @property
    def measures_speed(self) -> bool:
        """Whether trials measure their design's speed at all."""
        return (self.measure or self.name != "flops" or self.latency_budget_ms is not None
                or self.needs_throughput)

    def batch_for(self, device_type: str) -> int | None:
        """The throughput batch on a device of this type ('cpu', 'cuda'); None: latency only."""
        if self.speed_batch is not None:
            return self.speed_batch
        if device_type == "cuda":
            return GPU_BATCH
        return CPU_THROUGHPUT_BATCH if self.needs_throughput else None

    def directions(self) -> list[str]:
        return ["maximize", SECOND[self.name][1]]

    def metric_names(self) -> list[str]:
        return ["top1", SECOND[self.name][2]]

    def second_value(self, outcome: dict[str, Any]) -> float:
        """The second objective's value Optuna is told (GFLOPs, ms or images/s); NaN when the
        trial has no such figure (its speed was not measured)."""
        if self.name == "flops":
            return float(outcome["flops"]) / 1e9
        value = outcome.get(SECOND[self.name][0])
        try:
            value = float(value)
        except (TypeError, ValueError):
            return math.nan
        return value if math.isfinite(value) else math.nan

    def worst(self) -> float:
        """The worst second value (for a design that was never measured: over the FLOP
        budget): infinite time, or no throughput."""
        return 0.0 if SECOND[self.name][1] == "maximize" else math.inf

    def constraints(self, speed: dict[str, Any]) -> dict[str, float]:
        """Optuna's constraint values for a measured speed (feasible when <= 0): the latency
        over its budget in ms, the throughput under its floor in images/s."""
        out = {}
        lat, thr = as_number(speed.get("latency_ms")), as_number(speed.get("throughput"))
        if self.latency_budget_ms is not None and math.isfinite(lat):
            out["latency_over_budget"] = lat - self.latency_budget_ms
        if self.throughput_min is not None and math.isfinite(thr):
            out["throughput_under_min"] = self.throughput_min - thr
        return out

    def refusal(self, speed: dict[str, Any]) -> str:
        """Why a design with this measured speed is not trained ('' when it may be)."""
        why = []
        lat, thr = as_number(speed.get("latency_ms")), as_number(speed.get("throughput"))
        if self.latency_budget_ms is not None and lat > self.latency_budget_ms:
            why.append(f"latency {lat:.3g} ms is over the budget {self.latency_budget_ms:g} ms")
        if self.throughput_min is not None and thr < self.throughput_min:
            why.append(f"throughput {thr:.4g} images/s is under the floor "
                       f"{self.throughput_min:g} images/s")
        if not why:
            return ""
        return "infeasible: " + "; ".join(why) + f" (on {speed.get('speed_device', '?')})"


#: How long a trial spends on each figure (after one warm-up call, at least 3 timed calls):
#: on a CPU a ConvNeXt-T batch-1 latency then costs a few percent of a `cpu` trial.
TRIAL_SECONDS = 1.0


def measure_for_trial(arch, objective: Objective, threads: int | None,
                      stand_in_ms_per_gflop: float | None = None) -> dict[str, Any]:
    """The speed columns of a trial's row: its full-size design measured where the trial
    runs (CUDA when the worker has a GPU, else the CPU with the trial's threads), cached per
    kind of machine. `stand_in_ms_per_gflop` (the `speed` test fault) replaces the
    measurement by latency = that many ms per full-size GFLOP, without building anything."""
    from ..design.complexity import complexity
    from ..training.speed import Speed, cached_speed, device_key
    from ..training.trial import pick_device

    dev = pick_device(None)
    batch = objective.batch_for(dev.type)
    if stand_in_ms_per_gflop is not None:
        lat = stand_in_ms_per_gflop * complexity(arch).flops / 1e9
        speed = Speed(latency_ms=lat, latency_ms_spread=0.0,
                      throughput=None if batch is None else 1000.0 / lat,
                      throughput_spread=None if batch is None else 0.0,
                      speed_device=f"stand-in: {device_key(dev, threads)}", batch=batch,
                      resolution=224, dtype="float32", threads=threads or 1, repeats=1,
                      throughput_repeats=0 if batch is None else 1, seconds=0.0,
                      torch_version="stand-in")
    else:
        speed = cached_speed(arch, batch=batch, device=dev,
                             threads=threads if dev.type == "cpu" else None,
                             budget_s=TRIAL_SECONDS)
    return speed.to_row()
