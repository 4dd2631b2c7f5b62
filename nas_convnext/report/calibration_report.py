"""A calibration run's report: how faithfully its proxy ranks the paper's roadmap.

The statistics are `analysis.calibration`'s; this module turns a finished calibration run
(kind "calibration": the 17 roadmap steps under several seeds) into calibration.json (the
figures a search report quotes beside its verdicts, see `find_calibration`) and
calibration.md / .html / .csv / .png.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.calibration import (
    Calibration,
    calibrate,
    calibration_runs,
    can_tell_reason,
    roadmap_reference,
)
from ..analysis.departures import departures, largest_departures
from ..results import RUN_JSON, plain, read_run_json, read_table
from ..userfile import FileRefused, load_file
from .document import _Fig, _render_html, _render_md, _Table, _Writer
from .figures import _new_figure, _png

CALIBRATION_JSON = "calibration.json"
#: What a calibration with two seeds takes on 2 cores, least and most, for the uncalibrated
#: warning's command: the cpu proxy took 8.7 minutes on a machine with AVX-512 (stop 25) and
#: 13.4 on one with AVX2 only (stop 27), whose convolutions are slower (docs/CALIBRATION.md).
EXPECTED_MINUTES: dict[str, tuple[int, int]] = {"cpu": (9, 14), "cpu-tiny": (1, 1)}


@dataclass(frozen=True)
class CalibrationInfo:
    """A written calibration: the statistics, calibration.json's content and the files."""

    calibration: Calibration
    record: dict[str, Any]
    files: tuple[Path, ...]


def write_calibration(run_dir: str | Path, minutes: float | None = None,
                      boot_seed: int = 0) -> CalibrationInfo:
    """Calibrate a calibration run from its table and write calibration.json and its report.

    `run_dir`: the run folder (run.json of kind "calibration", trials.parquet). `minutes`:
    the wall time the run took (None: the span from run.json's start to its end). `boot_seed`:
    the bootstrap's seed. Raises ValueError (one line) when the folder is not a calibration
    run or too few steps finished.
    """
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    if meta.get("kind") not in ("calibration", "roadmap"):
        raise ValueError(f"{run_dir} is not a calibration run (its run.json has kind "
                         f"{meta.get('kind', 'search')!r}): run nas-convnext calibrate")
    table = read_table(run_dir)
    cal = calibrate(calibration_runs(table), roadmap_reference(), seed=boot_seed)
    if minutes is None:
        minutes = _span_minutes(meta)
    wall = pd.to_numeric(table.get("wall_s", pd.Series(dtype=float)), errors="coerce")
    proxy = meta.get("proxy") or {}
    config = meta.get("config") or {}
    record = {**cal.to_json(),
              "minutes": None if minutes is None else round(float(minutes), 2),
              "trial_minutes": round(float(np.nansum(wall)) / 60, 2),
              "proxy": proxy.get("name", config.get("proxy")),
              "proxy_settings": proxy,
              "dataset": meta.get("dataset", config.get("dataset")),
              "dataset_source": meta.get("dataset_source"),
              "when": meta.get("finished") or time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": meta.get("machine"),
              "run": run_dir.name,
              "command": meta.get("command"),
              "concurrency": config.get("concurrency"),
              "can_tell_reason": can_tell_reason(cal)[1]}
    write = _Writer(run_dir)
    write(CALIBRATION_JSON, json.dumps(plain(record), indent=2, allow_nan=False) + "\n")
    steps = _steps_frame(cal)
    write("calibration.csv", steps.to_csv(index=False))
    png = _png(_scatter(cal, steps))
    write("calibration.png", png)
    blocks = _blocks(cal, record, steps, png)
    write("calibration.md", _render_md(blocks))
    write("calibration.html", _render_html("nas-convnext calibration", blocks))
    return CalibrationInfo(cal, record, tuple(write.files))


def _span_minutes(meta: dict[str, Any]) -> float | None:
    try:
        start = time.mktime(time.strptime(meta["started"], "%Y-%m-%dT%H:%M:%S"))
        end = time.mktime(time.strptime(meta["finished"], "%Y-%m-%dT%H:%M:%S"))
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, end - start) / 60


def _steps_frame(cal: Calibration) -> pd.DataFrame:
    names = roadmap_reference().set_index("step")["name"]
    df = cal.table()
    df.insert(1, "name", [names.get(s, "") for s in df["step"]])
    df["mean_pct"] = 100 * df["mean"]
    df["sd_pp"] = 100 * df["sd"]
    dep = departures(cal, cal.level)
    for col in ("departure_pp", "departure_lo", "departure_hi"):
        df[col] = dep[col].to_numpy()
    return df


def departure_parts(table: pd.DataFrame, k: int = 3) -> list[str]:
    """The `k` steps that depart most from the paper's line, each as "step N (name) +x.x pp
    [lo, hi]", largest first; empty when none departs measurably. `table`: the departures of
    `analysis.departures` (or the per-step frame that carries them)."""
    names = roadmap_reference().set_index("step")["name"]
    parts = []
    for r in largest_departures(table, k).itertuples():
        ci = (f" [{_fmt(r.departure_lo, '+.1f')}, {_fmt(r.departure_hi, '+.1f')}]"
              if math.isfinite(r.departure_lo) else "")
        parts.append(f"step {r.step} ({names.get(r.step, '')}) "
                     f"{_fmt(r.departure_pp, '+.1f')} pp{ci}")
    return parts


def departure_line(cal: Calibration, steps: pd.DataFrame, k: int = 3) -> str:
    """One sentence naming the steps the proxy favours or undervalues most (see
    `analysis.departures`), for the report under its per-step table (`steps`: `_steps_frame`,
    whose departures are read, not computed again)."""
    parts = departure_parts(steps, k)
    level = int(cal.level * 100)
    if not parts:
        return (f"No step departs measurably from a straight line through the paper's top-1 "
                f"(every {level}% interval includes 0).")
    tail = ("" if np.isfinite(steps["departure_lo"]).any() else
            " With one seed these may be noise: nothing tells noise from bias.")
    return ("Where the proxy parts most from the paper (proxy top-1 above (+) or below (-) a "
            f"straight line fitted through the paper's top-1, {level}% interval over seeds): "
            + "; ".join(parts) + ". Verdicts on these steps' choices deserve the least trust."
            + tail)


def _fmt(v: Any, spec: str = ".3f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def _ci(ci: tuple[float, float]) -> str:
    lo, hi = ci
    return f"[{_fmt(lo, '+.2f')}, {_fmt(hi, '+.2f')}]" if math.isfinite(lo) else "(no interval)"


def summary_lines(cal: Calibration, record: dict[str, Any]) -> list[str]:
    """The calibration in a few lines of text (the CLI prints them; the report opens with them)."""
    per_seed = ", ".join(f"seed {s}: {_fmt(t, '+.3f')}" for s, t in cal.per_seed_kendall_tau)
    minutes = record.get("minutes")
    return [
        f"Kendall tau {_fmt(cal.kendall_tau, '+.3f')} {_ci(cal.kendall_tau_ci)} of the mean "
        f"top-1 of {cal.n_seeds} seed(s) against the paper's Table 10 over {cal.n_steps} steps "
        f"({int(cal.level * 100)}% interval over seeds); Spearman rho "
        f"{_fmt(cal.spearman_rho, '+.3f')} {_ci(cal.spearman_rho_ci)}",
        f"each seed: {per_seed} (mean {_fmt(cal.mean_per_seed_kendall_tau, '+.3f')})",
        f"seed ceiling (tau between seeds): {_fmt(cal.seed_kendall_tau, '+.3f')}"
        + (f" ({cal.seed_note})" if cal.seed_note else ""),
        f"FLOPs-only baseline: tau {_fmt(cal.flops_kendall_tau, '+.3f')}, rho "
        f"{_fmt(cal.flops_spearman_rho, '+.3f')}",
        f"sign agreement of consecutive steps: {cal.sign_agree} of {cal.sign_pairs}",
        f"proxy {record.get('proxy')} on {record.get('dataset')} ({record.get('dataset_source')}), "
        f"{_fmt(minutes, '.1f') if minutes is not None else 'n/a'} minutes",
        f"verdict fidelity: {can_tell_reason(cal)[1]}",
    ]


def _blocks(cal: Calibration, record: dict[str, Any], steps: pd.DataFrame, png: bytes):
    rows = [[str(r.step), str(r.name), str(r.n), _fmt(r.mean_pct, ".2f"), _fmt(r.sd_pp, ".2f"),
             _fmt(r.paper_top1, ".2f"), _departure_cell(r), _fmt(r.flops / 1e9, ".2f")]
            for r in steps.itertuples()]
    table = _Table("calibration-steps", "Each roadmap step: the proxy's mean top-1 over its "
                   "seeds and their standard deviation, beside the paper's ImageNet-1K top-1 "
                   "(Table 10), the step's departure from a straight line fitted through the "
                   "paper's top-1 (proxy points, with its interval over seeds) and the "
                   "full-size design's GFLOPs.",
                   ["step", "name", "seeds", "proxy top-1 (%)", "sd (pp)", "paper top-1 (%)",
                    "off the paper's line (pp)", "GFLOPs"], rows)
    caption = (f"Proxy top-1 (mean over {cal.n_seeds} seed(s), bars: one standard deviation) "
               f"against the paper's top-1, one point per step (its number). Kendall tau "
               f"{_fmt(cal.kendall_tau, '+.2f')} {_ci(cal.kendall_tau_ci)}; FLOPs alone "
               f"{_fmt(cal.flops_kendall_tau, '+.2f')}.")
    notes = [n for n in (cal.interval_note, *cal.notes) if n]
    where = record.get("machine") or {}
    return [
        ("h1", f"nas-convnext: calibration of proxy {record.get('proxy')} on "
               f"{record.get('dataset')}"),
        ("ul", summary_lines(cal, record)),
        ("p", f"Measured {record.get('when')} on {where.get('hostname', 'an unknown machine')} "
              f"({where.get('cpus', '?')} CPUs{', CUDA' if where.get('cuda') else ''}); run "
              f"{record.get('run')}; data: {record.get('dataset_source')}."),
        ("fig", _Fig("calibration.png", png, "proxy top-1 against the paper's top-1", caption)),
        ("table", table),
        ("p", departure_line(cal, steps)),
        ("ul", notes),
    ]


def _departure_cell(r) -> str:
    if not math.isfinite(r.departure_pp):
        return "n/a"
    if not math.isfinite(r.departure_lo):
        return _fmt(r.departure_pp, "+.2f")
    return (f"{_fmt(r.departure_pp, '+.2f')} [{_fmt(r.departure_lo, '+.2f')}, "
            f"{_fmt(r.departure_hi, '+.2f')}]")


def _scatter(cal: Calibration, steps: pd.DataFrame):
    fig = _new_figure((7.5, 6.0))
    ax = fig.add_axes((0.12, 0.12, 0.83, 0.78))
    sd = steps["sd_pp"].fillna(0).to_numpy()
    ax.errorbar(steps["paper_top1"], steps["mean_pct"], yerr=sd, fmt="o", color="#1f77b4",
                ecolor="#9ecae1", capsize=3)
    for r in steps.itertuples():
        ax.annotate(str(r.step), (r.paper_top1, r.mean_pct), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("paper: ImageNet-1K top-1 (%), Table 10")
    ax.set_ylabel(f"proxy top-1 (%), mean of {cal.n_seeds} seed(s)")
    ax.set_title(f"Roadmap under the proxy: Kendall tau {_fmt(cal.kendall_tau, '+.2f')} "
                 f"{_ci(cal.kendall_tau_ci)}", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


# ----- finding the calibration that goes beside a search's verdicts -----
def load_calibration(path: str | Path) -> dict[str, Any]:
    """A calibration.json (or a calibration run's folder), read as untrusted and checked.

    Returns its record (with `_path` added); a one-line ValueError when the folder holds no
    calibration or the file is not one.
    """
    p = Path(path)
    file = p / CALIBRATION_JSON if p.is_dir() else p
    if p.is_dir() and not file.is_file():
        raise ValueError(f"--calibration {p}: not a calibration run (no {CALIBRATION_JSON}; "
                         "make one with nas-convnext calibrate)")
    if not file.is_file():
        raise ValueError(f"--calibration {p}: no such calibration run folder")
    try:
        data = load_file(file, "json")
    except FileRefused as exc:
        raise ValueError(f"--calibration {p}: {exc}") from None
    try:
        Calibration.from_json(data)
    except ValueError as exc:
        raise ValueError(f"--calibration {p}: {file} is not a calibration ({exc})") from None
    return {**data, "_path": str(file)}


def find_calibration(results_dir: str | Path, proxy: str | None,
                     dataset: str | None) -> dict[str, Any] | None:
    """The newest calibration.json under `results_dir` (one level of run folders) measured
    with `proxy` on `dataset`; None when there is none. Damaged files are skipped."""
    root = Path(results_dir)
    if not root.is_dir():
        return None
    best: tuple[str, dict[str, Any]] | None = None
    for file in root.glob(f"*/{CALIBRATION_JSON}"):
        try:
            record = load_calibration(file)
        except ValueError:
            continue
        if record.get("proxy") != proxy or record.get("dataset") != dataset:
            continue
        when = str(record.get("when") or "")
        if best is None or when > best[0]:
            best = (when, record)
    return best[1] if best else None


def calibrate_command(proxy: str | None, dataset: str | None) -> str:
    """The command that calibrates `proxy` on `dataset`, for a warning to quote as code."""
    return f"nas-convnext calibrate --proxy {proxy} --dataset {dataset} --seeds 2"


def calibrate_cost(proxy: str | None) -> str:
    """What that command costs, " (about 9 to 14 minutes on 2 cores, depending on the CPU)",
    or "" when not measured."""
    span = EXPECTED_MINUTES.get(str(proxy))
    if not span:
        return ""
    least, most = span
    minutes = f"{least}" if least == most else f"{least} to {most}"
    unit = "minute" if most == 1 else "minutes"
    cpu = "" if least == most else ", depending on the CPU"
    return f" (about {minutes} {unit} on 2 cores{cpu})"


def run_json_of(run_dir: Path) -> dict[str, Any]:
    """run.json of a run folder, or {} when it cannot be read (a report still renders)."""
    try:
        return read_run_json(run_dir)
    except ValueError:
        return {}


__all__ = ["CALIBRATION_JSON", "CalibrationInfo", "calibrate_command", "calibrate_cost",
           "find_calibration", "load_calibration", "run_json_of", "summary_lines", "write_calibration", "RUN_JSON"]
