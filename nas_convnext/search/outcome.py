"""How a trial ended: one record, its status decided once, for the table and for Optuna.

The searcher tells Optuna each outcome and the table writer records it; both build the same
`TrialOutcome` from what the trial reported, so a trial cannot be `completed` in the table
and an error for Optuna.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..design.arch import Arch
from ..design.complexity import scale_width
from ..userfile import as_number


@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial: its status and the metrics of its last good epoch.

    `completed`: every planned epoch ran, with a finite top-1. `stopped_early`: fewer epochs
    (ASHA stopped it, or the run stopped; see `results.CUT_SHORT`). `diverged`: its loss
    became NaN or infinite; top-1 is the last good epoch's, or NaN when no epoch finished.
    `error`: it raised, its worker died, or it reported a top-1 that is not a number; its
    metrics are NaN and `message` says why. `infeasible`: its measured speed broke a limit
    of the search (`--latency-budget`, `--throughput-min`), so it was not trained; `message`
    says which. The speed figures are those the trial measured (NaN when it measured none).
    """

    status: str
    epochs: int = 0
    top1: float = math.nan
    top5: float = math.nan
    loss: float = math.nan
    images_per_s: float = math.nan
    node_id: str = ""
    message: str = ""
    latency_ms: float = math.nan        # the full-size design's measured speed (NaN: none)
    latency_ms_spread: float = math.nan
    throughput: float = math.nan
    throughput_spread: float = math.nan
    speed_device: str = ""

    @classmethod
    def of(cls, result: dict[str, Any] | None, error: bool, planned_epochs: int,
           error_text: str = "") -> "TrialOutcome":
        """The outcome of a trial that reported `result` last (its metrics at its last epoch)
        and raised (`error`, with `error_text`) or not, out of `planned_epochs`."""
        result = result or {}
        epochs = int(result.get("epoch", 0) or 0)
        metrics = {"epochs": epochs, "top1": as_number(result.get("top1")),
                   "top5": as_number(result.get("top5")), "loss": as_number(result.get("loss")),
                   "images_per_s": as_number(result.get("images_per_s")),
                   "node_id": str(result.get("node_id", "") or ""),
                   "message": error_text or str(result.get("message", "") or ""),
                   **{k: as_number(result.get(k)) for k in SPEED_FIGURES},
                   "speed_device": str(result.get("speed_device", "") or "")}
        if error:
            return cls("error", **{**metrics, "top1": math.nan, "top5": math.nan})
        if result.get("status") == "infeasible":  # measured, over a speed limit, not trained
            return cls("infeasible", **{**metrics, "epochs": 0, "top1": math.nan,
                                        "top5": math.nan, "loss": math.nan,
                                        "images_per_s": math.nan})
        if result.get("status") == "diverged":
            return cls("diverged", **(metrics if epochs else {**metrics, "top1": math.nan}))
        if epochs < planned_epochs:
            return cls("stopped_early", **metrics)
        if not math.isfinite(metrics["top1"]):
            return cls("error", **{**metrics, "top5": math.nan, "message": (
                metrics["message"] or f"its top-1 after epoch {epochs} is not a number")})
        return cls("completed", **metrics)

    def cut_short(self, note: str) -> "TrialOutcome":
        """The same metrics, as a trial the whole run stopped (`note` says when and why)."""
        return dataclasses.replace(self, status="stopped_early", message=note)

    def told(self, flops: float) -> dict[str, Any]:
        """What the searcher keeps of it, and tells Optuna (see `searcher.tell_outcome`)."""
        return {"status": self.status, "top1": self.top1, "flops": flops,
                **{k: getattr(self, k) for k in (*SPEED_FIGURES, "speed_device")}}


#: The measured speed figures a trial reports (see `training.speed.COLUMNS`).
SPEED_FIGURES = ("latency_ms", "latency_ms_spread", "throughput", "throughput_spread")


def told_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """What the searcher keeps of a trial recorded in the table (see `TrialOutcome.told`);
    a table written before speed was measured has no speed columns: NaN."""
    out = {"status": row["status"], "top1": row["top1"], "flops": row["flops"]}
    for k in SPEED_FIGURES:
        out[k] = as_number(row.get(k))
    device = row.get("speed_device")
    out["speed_device"] = device if isinstance(device, str) else ""
    return out


def trial_row(config: dict[str, Any], outcome: TrialOutcome, wall_s: float,
              trial_id: str) -> dict[str, Any]:
    """The trials table's row of a trial run with `config` (see `results.COLUMNS`)."""
    arch = Arch.from_row(config["arch"])
    return {**arch.to_row(), "trial_id": trial_id, "order": config["order"],
            "reference": config["reference"], "fitted": config["fitted"],
            "flops": config["flops"], "params": config["params"], "status": outcome.status,
            "epochs": outcome.epochs, "top1": outcome.top1, "top5": outcome.top5,
            "loss": outcome.loss, "wall_s": wall_s, "images_per_s": outcome.images_per_s,
            "node_id": outcome.node_id, "optuna_number": config["optuna_number"],
            "proxy_width": scale_width(arch, config["proxy"]["width_mult"]).width,
            "seed": config["seed"], "error": outcome.message,
            **{k: getattr(outcome, k) for k in (*SPEED_FIGURES, "speed_device")}}
