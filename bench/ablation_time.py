"""How long the default `nas-convnext ablate` takes: one trial of each design it trains.

    .venv/bin/python bench/ablation_time.py [--designs base,groups=1,...] [--proxy cpu]
        [--dataset idx --data-dir nas_convnext/training/data/embedded/fashion-mnist]
        [--seeds 3] [--workers 2] [--out docs/BENCHMARKS.md]

Plans the default ablation (ConvNeXt-T over `convnext.yaml` at 4.5 GFLOPs, the plan
`nas-convnext ablate` makes), trains each chosen design once (seed 0, one thread, as a Ray
worker with --cpus-per-trial 1 does) and estimates the whole run as

    sum over the plan's designs of the per-trial seconds x seeds / workers

where a design not timed counts at the mean of those timed, and a trial's seconds are its CPU
seconds (see below). The training time of a trial
does not depend on its seed (the same number of images and steps), so one seed is timed.
Ray's start and per-trial overhead (a few seconds per trial) are not included: the estimate
is a lower bound of the wall time. Writes (replaces) the "Ablation time" section of
docs/BENCHMARKS.md; the load average is printed beside it, because other work on the
machine slows every trial down.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._doc import write_section  # noqa: E402
from nas_convnext.cli import ABLATE_BUDGET, ABLATE_SEEDS  # noqa: E402
from nas_convnext.design.arch import presets  # noqa: E402
from nas_convnext.design.complexity import parse_flops  # noqa: E402
from nas_convnext.design.space import load_space  # noqa: E402
from nas_convnext.design.variants import plan_variants  # noqa: E402
from nas_convnext.training.proxy import get_proxy  # noqa: E402
from nas_convnext.training.trial import load_proxy_data, train_trial  # noqa: E402

EMBEDDED = "nas_convnext/training/data/embedded/fashion-mnist"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--designs", default=None,
                   help="variant ids to time, separated by semicolons (ids hold commas: depths=3,3,9,3) (default: every design of the plan)")
    p.add_argument("--proxy", default="cpu")
    p.add_argument("--dataset", default="idx")
    p.add_argument("--data-dir", default=str(ROOT / EMBEDDED))
    p.add_argument("--seeds", type=int, default=ABLATE_SEEDS)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = p.parse_args()

    plan = plan_variants(presets()["convnext_t"], load_space("convnext"), parse_flops(ABLATE_BUDGET))
    ids = [v.id for v in plan.variants]
    chosen = ids if args.designs is None else args.designs.split(";")
    unknown = [c for c in chosen if c not in ids]
    if unknown:
        print(f"unknown variant(s) {unknown}; the plan has {ids}", file=sys.stderr)
        return 2
    proxy = get_proxy(args.proxy)
    data = load_proxy_data(args.dataset, args.data_dir, proxy)
    load_before = os.getloadavg()[0]
    secs: dict[str, float] = {}    # CPU seconds of the trial (one thread)
    walls: dict[str, float] = {}   # its wall seconds, inflated by other work on the machine
    for v in plan.variants:
        if v.id not in chosen:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        r = train_trial(v.arch, proxy, data, seed=0, threads=1)
        secs[v.id] = time.process_time() - c0
        walls[v.id] = time.perf_counter() - t0
        print(f"{v.id:<22} {v.flops / 1e9:6.3f} GFLOPs  {secs[v.id]:6.1f} s CPU  "
              f"{walls[v.id]:6.1f} s wall  top-1 {r.top1:.3f}", flush=True)
    load_after = os.getloadavg()[0]
    mean = sum(secs.values()) / len(secs)
    per_seed = sum(secs.get(i, mean) for i in ids)
    trials = len(ids) * args.seeds
    est_min = per_seed * args.seeds / args.workers / 60
    rows = "\n".join(f"| {i} | {secs[i]:.1f} | {walls[i]:.1f} |" for i in ids if i in secs)
    cmd = "python bench/ablation_time.py " + shlex.join(sys.argv[1:])
    body = f"""Command: `{cmd.strip()}`

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average
{load_before:.1f} before and {load_after:.1f} after (other work on the machine slows each trial).
The default ablation (`nas-convnext ablate`: ConvNeXt-T over `convnext.yaml`, budget
{ABLATE_BUDGET}) trains {len(ids)} designs (the base and {len(ids) - 1} one-change variants;
skipped: {', '.join(f'{s.dimension}={s.value}' for s in plan.skipped) or 'none'}) x
{args.seeds} seeds = {trials} trials. Proxy `{args.proxy}`, data `{args.dataset}`
({data.name}), one thread per trial; {len(secs)} of the {len(ids)} designs timed, once each
(seed 0), the others counted at the mean of those timed ({mean:.1f} s). The estimate uses
each trial's CPU time (`time.process_time`, one thread): on a machine shared with other work
the wall time is longer by the share of the cores the trial did not get, and on an idle
2-core machine with 2 workers the two are about equal.

| design | CPU seconds per trial | wall seconds (this machine, loaded) |
|---|---|---|
{rows}

Estimate: {per_seed:.0f} s per seed for all designs x {args.seeds} seeds / {args.workers}
workers = **{est_min:.1f} minutes** of training (without Ray's start and per-trial overhead).
"""
    print(body)
    write_section(Path(args.out), "Ablation time", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
