"""Analytic complexity vs fvcore: time per design on the same designs, and whole-space enumeration.

    .venv/bin/python bench/complexity.py [--designs 20] [--out docs/BENCHMARKS.md]

Writes (replaces) the "Complexity" section of docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._doc import write_section  # noqa: E402
from nas_convnext import build_model, complexity  # noqa: E402
from nas_convnext.design.complexity import _complexity, fvcore_count  # noqa: E402
from nas_convnext.design.space import load_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = ap.parse_args()

    space = load_space("convnext")
    rng = random.Random(0)
    designs = []
    while len(designs) < args.designs:
        a = space.sample(rng)
        if complexity(a).flops <= 10e9:
            designs.append(a)
    _complexity.cache_clear()
    t0 = time.perf_counter()
    for a in designs:
        _complexity.cache_clear()  # time the count itself, not the cache
        complexity(a)
    analytic = (time.perf_counter() - t0) / len(designs)
    t0 = time.perf_counter()
    mismatches = 0
    for a in designs:
        mismatches += complexity(a) != fvcore_count(build_model(a))
    fv = (time.perf_counter() - t0) / len(designs)
    _complexity.cache_clear()
    t0 = time.perf_counter()
    info = space.describe("4.5GFLOPs")
    enum_s = time.perf_counter() - t0
    text = f"""Command: `.venv/bin/python bench/complexity.py --designs {args.designs}`
Machine: {platform.processor() or platform.machine()}, {platform.python_version()}, 2 cores.

| what | value |
|---|---|
| designs (random from convnext.yaml, <= 10 GFLOPs) | {len(designs)} |
| analytic count per design (uncached) | {analytic * 1e6:.0f} us |
| fvcore count per design (build + FlopCount + ActivationCount) | {fv * 1e3:.0f} ms |
| ratio fvcore / analytic | {fv / analytic:,.0f}x |
| designs where the two differ | {mismatches} |
| enumerate convnext.yaml ({info['size']:,} designs) with the 4.5 GFLOPs filter | {enum_s:.1f} s ({info['within_budget']:,} within budget) |
"""
    write_section(Path(args.out), "Complexity", text)
    print(text)


if __name__ == "__main__":
    main()
