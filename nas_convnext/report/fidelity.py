"""Fidelity beside every verdict: the calibration of a run's proxy on its dataset.

A verdict ("ConvNeXt's choice is supported") rests on the proxy's ranking of designs. A
search report therefore opens with how well that proxy ranked the paper's roadmap on the same
dataset (a calibration run's calibration.json, found in the results folder or named with
`--calibration`), and when the proxy's tau interval reaches down to the FLOPs-only tau
(`analysis.calibration.proxy_can_tell` is False) the verdict table says the proxy cannot tell
these choices apart instead of supported / not supported. Without a calibration the report
says, above the verdicts, that the proxy is uncalibrated and how to calibrate it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.calibration import Calibration, can_tell_reason
from ..analysis.departures import departures
from .calibration_report import (
    calibrate_command,
    calibrate_cost,
    departure_parts,
    find_calibration,
    load_calibration,
)

#: What the verdict table says where the proxy cannot tell the choices apart.
CANNOT_TELL = "cannot tell apart"
#: The verdicts a proxy that cannot tell choices apart does not get to give.
_CLAIMS = ("supported", "not supported")


@dataclass(frozen=True)
class Fidelity:
    """The calibration that goes with a run's verdicts (None: the proxy is uncalibrated).

    `proxy`, `dataset`: the run's. `can_tell`: `proxy_can_tell` of the calibration (None when
    uncalibrated); `reason`: why, in one sentence. `mismatch`: set when a calibration named
    with --calibration was measured with another proxy or dataset than the run's.
    """

    record: dict[str, Any] | None
    proxy: str | None
    dataset: str | None
    can_tell: bool | None
    reason: str
    mismatch: str = ""

    def shown(self, verdict: str) -> str:
        """The verdict as the report shows it: a claim the proxy cannot back is withheld."""
        return CANNOT_TELL if self.can_tell is False and verdict in _CLAIMS else verdict

    def warning(self) -> str:
        """The line above the verdicts: uncalibrated, or unable to tell the choices apart."""
        if self.record is None and self.proxy is None:
            return ("Warning: the run's proxy and dataset are unknown (no readable run.json), so "
                    "no calibration applies: the verdicts below rest on an uncalibrated proxy.")
        if self.record is None:
            return (f"Warning: proxy {self.proxy} is uncalibrated on {self.dataset}: nothing "
                    "shows that it ranks designs as full training would, so the verdicts below "
                    "may say more than the proxy knows. Calibrate it with "
                    f"`{calibrate_command(self.proxy, self.dataset)}`"
                    f"{calibrate_cost(self.proxy)}, then analyze this run "
                    "again.")
        if self.can_tell is False:
            return (f"The proxy cannot tell these choices apart: {self.reason}. The verdict "
                    f"table says '{CANNOT_TELL}' instead of supported / not supported.")
        return ""

    def lines(self) -> list[str]:
        """The calibration in a few lines (the report opens with them)."""
        if self.record is None:
            return [self.warning()]
        r = self.record
        lo, hi = r.get("kendall_tau_ci") or (math.nan, math.nan)
        machine = r.get("machine") if isinstance(r.get("machine"), dict) else {}
        out = [
            f"proxy {r.get('proxy')} on {r.get('dataset')}: Kendall tau {_f(r.get('kendall_tau'))} "
            f"[{_f(lo)}, {_f(hi)}] against the paper's roadmap (Table 10), "
            f"{r.get('n_seeds')} seed(s), {r.get('n_steps')} steps",
            f"seed ceiling (tau between seeds): {_f(r.get('seed_kendall_tau'))}; FLOPs-only "
            f"baseline: tau {_f(r.get('flops_kendall_tau'))}",
            f"measured {r.get('when')} on {machine.get('hostname', 'an unknown machine')} "
            f"({machine.get('cpus', '?')} CPUs), {_f(r.get('minutes'), '.1f')} minutes, data "
            f"{r.get('dataset_source')}; run {r.get('run')} ({r.get('_path')})",
            f"verdicts: {self.reason}",
        ]
        # The record passed Calibration.from_json when it was loaded (load_calibration).
        cal = Calibration.from_json(r)
        parts = departure_parts(departures(cal, cal.level))
        if parts:
            out.insert(2, "where it parts most from the paper (its top-1 off a straight line "
                          "through the paper's; verdicts on these steps' choices deserve the "
                          "least trust): " + "; ".join(parts))
        if self.mismatch:
            out.append(self.mismatch)
        return out

    def to_json(self) -> dict[str, Any]:
        rec = {k: v for k, v in (self.record or {}).items() if k != "steps"}
        return {"calibrated": self.record is not None, "can_tell": self.can_tell,
                "reason": self.reason, "mismatch": self.mismatch, "proxy": self.proxy,
                "dataset": self.dataset, "calibration": rec or None}


def _f(v: Any, spec: str = "+.2f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def run_proxy_dataset(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """The proxy profile's name and the dataset of a run, from its run.json."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    proxy = meta.get("proxy")
    name = proxy.get("name") if isinstance(proxy, dict) else None
    return name or cfg.get("proxy"), meta.get("dataset") or cfg.get("dataset")


def fidelity_for(meta: dict[str, Any], results_dir: str | Path,
                 calibration: str | Path | None = None) -> Fidelity:
    """The calibration for a run's verdicts: the one named (`--calibration`: a calibration
    run's folder or its calibration.json; a ValueError in one line when it is not one), else
    the newest in `results_dir` with the run's proxy and dataset, else none."""
    proxy, dataset = run_proxy_dataset(meta)
    mismatch = ""
    if calibration is not None:
        record = load_calibration(calibration)
        if (record.get("proxy"), record.get("dataset")) != (proxy, dataset):
            mismatch = (f"note: this calibration was measured with proxy {record.get('proxy')} on "
                        f"{record.get('dataset')}, this run used proxy {proxy} on {dataset}")
    else:
        record = find_calibration(results_dir, proxy, dataset)
    if record is None:
        return Fidelity(None, proxy, dataset, None,
                        f"proxy {proxy} is uncalibrated on {dataset}")
    can, reason = can_tell_reason(record)
    return Fidelity(record, proxy, dataset, can, reason, mismatch)
