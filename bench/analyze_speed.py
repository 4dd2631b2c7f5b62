"""`analyze` before and after the restructuring (issue 12): same report, less time.

    .venv/bin/python bench/analyze_speed.py --old ../r-old [--rows 200] [--repeats 5]
        [--fixture DIR] [--out docs/BENCHMARKS.md]

`--old` is a checkout of the code before the change (`git worktree add --detach ../r-old
3e00a87`). A fixed trials table of `--rows` trials (seeded: designs drawn from convnext.yaml
within 4.5 GFLOPs, top-1 from a formula plus seeded noise, a share stopped early, diverged and
errored, ConvNeXt-T and ResNet-50 among them) is written with the old code's results API,
unless `--fixture` names a run folder to use. Then `nas-convnext analyze` runs on it as a whole
command in a fresh process, old and new code taking turns, `--repeats` times each, and the md,
csv and json files of the two reports are compared (timestamps aside; the PNGs pixel by
pixel). Writes (replaces) the "Analyze: before and after issue 12" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._doc import write_section  # noqa: E402

COMPARED = ("report.md", "front.csv", "effects.csv", "verdict.csv", "excluded.csv",
            "analysis.json")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")

# Runs under either code base (only the API both share): the fixed table of the benchmark.
FIXTURE = r'''
import math, random, sys
from pathlib import Path
import numpy as np
from nas_convnext import complexity, presets
from nas_convnext.results import write_run_json, write_table
try:
    from nas_convnext.design.space import load_space
except ImportError:  # the code before issue 12
    from nas_convnext.space import load_space

out, n = Path(sys.argv[1]), int(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
rng, nrng = random.Random(12), np.random.default_rng(12)
space = load_space("convnext")
designs = [("convnext_t", presets()["convnext_t"]), ("resnet50", presets()["resnet50"])]
while len(designs) < n:
    a = space.sample(rng)
    if complexity(a).flops <= 4.5e9:
        designs.append(("", a))
rows = []
for i, (ref, a) in enumerate(designs):
    c = complexity(a)
    top1 = float(min(max(0.45 + 0.05 * (a.kernel > 3) + 0.04 * (a.norm == "ln")
                         + 0.03 * (a.act == "gelu") - 0.02 * (a.stem == "resnet")
                         + 0.03 * math.log(c.flops / 1e9) + nrng.normal(0, 0.03), 0.05), 0.95))
    u = rng.random()
    status = ("completed" if u < 0.8 else "stopped_early" if u < 0.9 else "diverged"
              if u < 0.95 else "error")
    epochs, error = 3, ""
    if status == "stopped_early":
        epochs, top1 = 1, top1 - 0.1
    elif status == "diverged":
        epochs, error = 1, "loss became nan in epoch 2, step 1"
    elif status == "error":
        epochs, top1, error = 0, math.nan, "RuntimeError: boom"
    rows.append({**a.to_row(), "trial_id": f"t{i:04d}", "order": i, "reference": ref,
                 "fitted": False, "flops": c.flops, "params": c.params, "status": status,
                 "epochs": epochs, "top1": top1,
                 "top5": math.nan if math.isnan(top1) else min(1.0, top1 + 0.2), "loss": 1.0,
                 "wall_s": 10.0 + i, "images_per_s": 500.0, "node_id": "n1",
                 "optuna_number": i, "proxy_width": max(8, a.width // 4), "seed": 0,
                 "error": error})
write_table(out, rows)
write_run_json(out, {"kind": "search", "resumed": 0, "started": "2025-01-01T00:00:00",
                     "config": {"budget": 4.5e9, "space": "convnext", "trials": n - 2,
                                "proxy": "cpu", "seed": 0}})
'''


def _env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}


def _analyze(code: Path, fixture: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nas_convnext.cli", "analyze", str(fixture), "--out",
                    str(out)], env=_env(code), cwd=out.parent, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _same(a: Path, b: Path) -> tuple[list[str], list[str], int]:
    """(identical files, differing files, PNGs compared pixel by pixel and equal)."""
    same, differ = [], []
    for name in COMPARED:
        x, y = (_STAMP.sub("<time>", (d / name).read_text()) for d in (a, b))
        (same if x == y else differ).append(name)
    pngs = 0
    try:
        import numpy as np
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return same, differ, pngs
    for png in sorted(a.glob("*.png")):
        if np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(b / png.name))):
            pngs += 1
        else:
            differ.append(png.name)
    return same, differ, pngs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="a checkout of the code before the change")
    ap.add_argument("--fixture", default=None, help="a run folder (default: made here)")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = ap.parse_args()
    old, new = Path(args.old).resolve(), ROOT
    with tempfile.TemporaryDirectory(prefix="analyze-speed.") as tmp:
        work = Path(tmp)
        fixture = Path(args.fixture) if args.fixture else work / "run"
        if not args.fixture:
            subprocess.run([sys.executable, "-c", FIXTURE, str(fixture), str(args.rows)],
                           env=_env(old), check=True)
        load = os.getloadavg()[0]
        times: dict[str, list[float]] = {"before": [], "after": []}
        for i in range(args.repeats):  # taking turns, so a busy spell hits both alike
            for label, code in (("before", old), ("after", new)):
                times[label].append(_analyze(code, fixture, work / f"{label}-{i}"))
        load_end = os.getloadavg()[0]
        same, differ, pngs = _same(work / "before-0", work / "after-0")
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    rows = "\n".join(
        f"| {k} | {len(v)} | {low[k]:.2f} | {med[k]:.2f} | {max(v):.2f} | "
        f"{', '.join(f'{t:.2f}' for t in v)} |" for k, v in times.items())
    fixture_text = (f"the run folder {args.fixture}" if args.fixture else
                    f"a fixed table of {args.rows} trials written by the old code (seeded; "
                    "see the script)")
    body = f"""Command: `.venv/bin/python bench/analyze_speed.py --old {args.old} --rows {args.rows} --repeats {args.repeats}`
Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores; 1-minute load average {load:.1f} at the start and {load_end:.1f} at the end (above 2 on this 2-core machine means other jobs shared it; the two columns take turns, so they share the noise).
What: `nas-convnext analyze RUN --out DIR` as a whole command in a fresh process (imports, analysis, 15 figures, every format), on {fixture_text}; "before" is the code before the restructuring (`{old.name}`), "after" this checkout.

| code | runs | fastest s | median s | slowest s | every run, s |
|---|---|---|---|---|---|
{rows}

after / before: {med['after'] / med['before']:.2f} of the median time, {low['after'] / low['before']:.2f} of the fastest.
Same report: {', '.join(same) or 'none'} identical (timestamps aside){'; DIFFERENT: ' + ', '.join(differ) if differ else ''}; {pngs} PNG figures identical pixel for pixel.
Where the time went: the analysis is computed once (one filter, one front, one bootstrap shared by the verdict and the effects), and each figure is drawn once, to save it, instead of three times (its legends are placed from the axes' measured layout, without drawing the figure).
"""
    write_section(Path(args.out), "Analyze: before and after issue 12", body)
    print(body)
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
