"""`nas-convnext speed`: the measuring and the words it prints (the parser is cli.py's).

One design's full-size speed beside its FLOPs, or the roadmap's (17 steps, ConvNeXt-T,
ResNet-50) with the rank agreement between FLOPs and measured time over the distinct designs.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence

from ..design.arch import load_design
from ..design.complexity import FLOP_CONVENTION
from .speed import DEFAULT_BATCH, DEFAULT_RESOLUTION, SPREAD, rank_agreement_flops_time
from .speed_table import roadmap_designs, speed_rows


def _convention() -> str:
    return FLOP_CONVENTION.format(res=224, classes=1000)


def _table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for j, r in enumerate(cells):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# long: one command's checks, measurement and both renderings (text and JSON), in order
def speed_command(design: str | None, overrides: Sequence[str] = (), *, roadmap: bool = False,
                  larger: bool = False, batch: int | None = DEFAULT_BATCH,
                  threads: int | None = None, resolution: int = DEFAULT_RESOLUTION,
                  device: str | None = None, seconds: float = 2.0, refresh: bool = False,
                  as_json: bool = False) -> str:
    """What `nas-convnext speed` prints: one design's measured speed beside its FLOPs, or
    (roadmap) the roadmap's table and the FLOPs-to-time rank agreement; JSON with as_json.

    design, overrides: a preset or design file and `key=value` changes (as `flops` takes).
    larger: with roadmap, ConvNeXt-S and -B too. batch: the throughput batch (None: latency
    only). threads, resolution, device, refresh: as `cached_speed`; seconds: its budget_s.
    A mistake (both or neither of design and roadmap, ...) is a ValueError of one line.
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
        designs = [(design, load_design(design, overrides))]
    options = {"batch": batch, "resolution": resolution, "device": device,
               "threads": threads, "refresh": refresh, "budget_s": seconds}

    def shown(name: str, s) -> None:
        if len(designs) > 1 and not as_json:
            sys.stderr.write(f"  {name}: {_speed_text(s)}\n")
            sys.stderr.flush()

    rows = speed_rows(designs, progress=shown, **options)
    agreement = {}
    if roadmap:
        for by in ("latency", "throughput"):
            if by == "throughput" and batch is None:
                continue
            # over distinct designs: a network listed under two names is one data point
            distinct = [r for r in rows if not r["same_as"]]
            agreement[by] = rank_agreement_flops_time(distinct, by=by, seed=0)
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
    lines: list[str] = []
    r0 = rows[0]
    what = (f"batch-1 latency and throughput at batch {batch}" if batch is not None
            else "batch-1 latency only")
    lines.append(f"device  {r0['speed_device']}, {r0['dtype']}, {r0['resolution']}x{r0['resolution']}, "
          f"{what}; median ± {SPREAD} (n timed calls)")
    if not roadmap:
        lines.append(f"design  {design}: {r0['gflops']:.3f} GFLOPs, {r0['params'] / 1e6:.2f}M "
              f"params")
        lines.append(f"latency {r0['latency_ms']:.2f} ± {r0['latency_ms_spread']:.2f} ms "
              f"(n={r0['repeats']})")
        if batch is not None:
            lines.append(f"speed   {r0['throughput']:.4g} ± {r0['throughput_spread']:.2g} images/s at "
                  f"batch {batch} (n={r0['throughput_repeats']})")
        lines.append(_convention() + ".")
        return "\n".join(lines)
    table = []
    for r in rows:
        thr = ("-" if batch is None else
               f"{r['throughput']:.3g} ± {r['throughput_spread']:.2g}")
        table.append([r["name"], f"{r['gflops']:.3f}",
                      f"{r['latency_ms']:.1f} ± {r['latency_ms_spread']:.1f}", thr,
                      f"{r['latency_ms'] / r['gflops']:.2f}"])
    lines.append(_table(table, ["design", "GFLOPs", "latency ms", "images/s", "ms/GFLOP"]))
    for by, a in agreement.items():
        g = a.agreement
        lines.append(f"\nFLOPs vs {'batch-1 latency' if by == 'latency' else 'time per image at batch ' + str(batch)} "
              f"over {g.n} distinct designs: Kendall tau {g.tau:+.3f} "
              f"[{a.tau_ci[0]:+.2f}, {a.tau_ci[1]:+.2f}] (p={g.tau_p:.3g}), Spearman rho "
              f"{g.rho:+.3f} [{a.rho_ci[0]:+.2f}, {a.rho_ci[1]:+.2f}] (p={g.rho_p:.3g}); "
              f"{a.level:.0%} paired bootstrap intervals")
    lines.append(f"\n{_convention()}. Steps 0, 1 (a recipe change) and ResNet-50 are one network, "
          "step 16 and ConvNeXt-T another: each is measured once.")
    return "\n".join(lines)


def _speed_text(s) -> str:
    thr = ("" if s.throughput is None else
           f", {s.throughput:.4g} ± {s.throughput_spread:.2g} images/s at batch {s.batch}")
    return f"{s.latency_ms:.1f} ± {s.latency_ms_spread:.1f} ms{thr}"
