"""`nas-convnext speed`: the measuring and the words it prints (the parser is cli.py's, the
command runs.py's `cmd_speed`).

One design's full-size speed beside its FLOPs, or the roadmap's (17 steps, ConvNeXt-T,
ResNet-50) with the rank agreement between FLOPs and measured time over the distinct designs
(computed by `analysis.speed.rank_agreement_flops_time`, which this part may not import: the
caller hands it in, so the agreement here is any object with its fields).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence

from ..design.arch import Arch, load_design
from ..design.complexity import FLOP_CONVENTION
from ..results import text_table
from .speed import DEFAULT_BATCH, DEFAULT_RESOLUTION, SPREAD
from .speed_table import roadmap_designs, speed_rows


def _convention() -> str:
    return FLOP_CONVENTION.format(res=224, classes=1000)


def measure_designs(design: str | None, overrides: Sequence[str] = (), *, roadmap: bool = False,
                    larger: bool = False, batch: int | None = DEFAULT_BATCH,
                    threads: int | None = None, resolution: int = DEFAULT_RESOLUTION,
                    device: str | None = None, seconds: float = 2.0, refresh: bool = False,
                    quiet: bool = False) -> tuple[list[tuple[str, Arch]], list[dict[str, Any]]]:
    """The designs `nas-convnext speed` measures, and their rows (`speed_table.speed_rows`).

    design, overrides: a preset or design file and `key=value` changes (as `flops` takes).
    roadmap: the roadmap's designs instead (larger: ConvNeXt-S and -B too). batch: the
    throughput batch (None: latency only). threads, resolution, device, refresh: as
    `cached_speed`; seconds: its budget_s. Several designs show a line each on stderr as they
    are measured, unless `quiet`. A mistake (both or neither of design and roadmap, ...) is a
    ValueError of one line.
    """
    if roadmap == bool(design):
        raise ValueError("say what to measure: a DESIGN (a preset or a design file, with "
                         "key=value overrides) or --roadmap, not both")
    if larger and not roadmap:
        raise ValueError("--larger adds ConvNeXt-S and -B to --roadmap; give --roadmap too")
    if roadmap:
        if overrides:
            raise ValueError(f"--roadmap measures the paper's designs as they are; drop the "
                             f"overrides {' '.join(overrides)}")
        designs = roadmap_designs(larger=larger)
    else:
        designs = [(str(design), load_design(str(design), list(overrides)))]

    def shown(name: str, s) -> None:
        if len(designs) > 1 and not quiet:
            sys.stderr.write(f"  {name}: {_speed_text(s)}\n")
            sys.stderr.flush()

    rows = speed_rows(designs, progress=shown, batch=batch, resolution=resolution,
                      device=device, threads=threads, refresh=refresh, budget_s=seconds)
    return designs, rows


def speed_output(design: str | None, designs: list[tuple[str, Arch]], rows: list[dict[str, Any]],
                 *, roadmap: bool, batch: int | None, agreement: dict[str, Any],
                 as_json: bool = False) -> str:
    """What `nas-convnext speed` prints for `measure_designs`'s result: text, or JSON with
    as_json. agreement: by 'latency' (and 'throughput'), the roadmap's FLOPs-to-time rank
    agreement (`analysis.speed.FlopsTimeAgreement`); empty for one design."""
    if as_json:
        from ..results import plain

        if roadmap:
            out: Any = {"rows": rows, "agreement": {
                by: {"time": a.time, "device": a.device, "n": a.agreement.n,
                     "tau": a.agreement.tau, "tau_p": a.agreement.tau_p, "tau_ci": a.tau_ci,
                     "rho": a.agreement.rho, "rho_p": a.agreement.rho_p, "rho_ci": a.rho_ci,
                     "level": a.level} for by, a in agreement.items()}}
        else:
            out = {"design": design, **designs[0][1].to_dict(), **rows[0]}
        return json.dumps(plain(out), indent=2)
    r0 = rows[0]
    what = (f"batch-1 latency and throughput at batch {batch}" if batch is not None
            else "batch-1 latency only")
    lines = [f"device  {r0['speed_device']}, {r0['dtype']}, {r0['resolution']}x"
             f"{r0['resolution']}, {what}; median ± {SPREAD} (n timed calls)"]
    if not roadmap:
        lines.append(f"design  {design}: {r0['gflops']:.3f} GFLOPs, {r0['params'] / 1e6:.2f}M "
                     f"params")
        lines.append(f"latency {r0['latency_ms']:.2f} ± {r0['latency_ms_spread']:.2f} ms "
                     f"(n={r0['repeats']})")
        if batch is not None:
            lines.append(f"speed   {r0['throughput']:.4g} ± {r0['throughput_spread']:.2g} "
                         f"images/s at batch {batch} (n={r0['throughput_repeats']})")
        lines.append(_convention() + ".")
        return "\n".join(lines)
    return "\n".join(lines + _roadmap_lines(rows, batch, agreement))


def _roadmap_lines(rows: list[dict[str, Any]], batch: int | None,
                   agreement: dict[str, Any]) -> list[str]:
    table = []
    for r in rows:
        thr = ("-" if batch is None else
               f"{r['throughput']:.3g} ± {r['throughput_spread']:.2g}")
        table.append([r["name"], f"{r['gflops']:.3f}",
                      f"{r['latency_ms']:.1f} ± {r['latency_ms_spread']:.1f}", thr,
                      f"{r['latency_ms'] / r['gflops']:.2f}"])
    lines = [text_table(table, ["design", "GFLOPs", "latency ms", "images/s", "ms/GFLOP"])]
    for by, a in agreement.items():
        g = a.agreement
        time = ("batch-1 latency" if by == "latency"
                else f"time per image at batch {batch}")
        lines.append(f"\nFLOPs vs {time} over {g.n} distinct designs: Kendall tau {g.tau:+.3f} "
                     f"[{a.tau_ci[0]:+.2f}, {a.tau_ci[1]:+.2f}] (p={g.tau_p:.3g}), Spearman rho "
                     f"{g.rho:+.3f} [{a.rho_ci[0]:+.2f}, {a.rho_ci[1]:+.2f}] (p={g.rho_p:.3g}); "
                     f"{a.level:.0%} paired bootstrap intervals")
    lines.append(f"\n{_convention()}. Steps 0, 1 (a recipe change) and ResNet-50 are one "
                 "network, step 16 and ConvNeXt-T another: each is measured once.")
    return lines


def _speed_text(s) -> str:
    thr = ("" if s.throughput is None else
           f", {s.throughput:.4g} ± {s.throughput_spread:.2g} images/s at batch {s.batch}")
    return f"{s.latency_ms:.1f} ± {s.latency_ms_spread:.1f} ms{thr}"
