"""Time the bootstrap that every verdict and choice effect draws, against a plain loop.

    .venv/bin/python bench/bootstrap_speed.py [--n 1000] [--resamples 10000] [--repeats 5]

Why: `analyze` bootstraps the mean and the best top-1 of every choice of every dimension
(13 dimensions, 2 to 5 choices each, 10,000 resamples by default); drawn one resample at a
time that is seconds per report. The blocked, vectorised draw in `analysis.stats` is timed here
against the plain loop it replaced, both in one run, and the result written as a ratio to
docs/BENCHMARKS.md (tests do not time anything).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._doc import write_section  # noqa: E402
from nas_convnext.analysis.stats import bootstrap_mean_max  # noqa: E402


def plain_loop(x: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """One resample per iteration: the obvious code, the baseline."""
    rng = np.random.default_rng(seed)
    means, maxes = np.empty(n_boot), np.empty(n_boot)
    for i in range(n_boot):
        s = x[rng.integers(0, x.size, size=x.size)]
        means[i], maxes[i] = s.mean(), s.max()
    return float(np.quantile(means, 0.025)), float(np.quantile(maxes, 0.025))


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="sample size (default 1000)")
    ap.add_argument("--resamples", type=int, default=10_000, help="resamples (default 10000)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    ap.add_argument("--write", type=Path, default=None, help="docs/BENCHMARKS.md to update")
    args = ap.parse_args()
    x = np.random.default_rng(0).normal(0.7, 0.05, args.n)
    ours = timed(lambda: bootstrap_mean_max(x, args.resamples, seed=0), args.repeats)
    loop = timed(lambda: plain_loop(x, args.resamples, 0), args.repeats)
    mo, ml = statistics.median(ours), statistics.median(loop)
    cmd = " ".join(["python bench/bootstrap_speed.py"] + sys.argv[1:])
    body = (f"Command: `{cmd}`\nMachine: {platform.machine()}, Python {platform.python_version()}."
            f"\n\nMean and max intervals of {args.n} values, {args.resamples:,} resamples, "
            f"median of {args.repeats} runs each, in one run:\n\n"
            "| code | median s | every run, s |\n|---|---|---|\n"
            f"| analysis.stats.bootstrap_mean_max | {mo:.3f} | "
            f"{', '.join(f'{t:.3f}' for t in ours)} |\n"
            f"| one resample per loop | {ml:.3f} | {', '.join(f'{t:.3f}' for t in loop)} |\n\n"
            f"ours / loop: {mo / ml:.2f} of the time.\n")
    print(body)
    if args.write:
        write_section(args.write, "Bootstrap", body)


if __name__ == "__main__":
    main()
