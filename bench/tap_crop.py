"""Time a proxy's training step with and without skipping the kernel taps that see only padding.

    .venv/bin/python bench/tap_crop.py [--steps 1,9,11,16] [--repeats 10] [--threads 1]
                                       [--write docs/BENCHMARKS.md]

Why: at the `cpu` proxy's 32 px the last two stages' maps are 2x2 and 1x1, where most of a 7x7
or 11x11 depthwise kernel multiplies zero padding. `design.build.SameConv2d` computes the same
outputs and gradients from the central taps only. Roadmap steps are timed at the `cpu`
profile's width, resolution and batch in channels-last (as a trial trains), one optimizer step
at a time, both ways in one run, alternating, so the ratio holds on any machine; the ratio is
written to docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._doc import write_section  # noqa: E402
from bench.channels_last import step_ms  # noqa: E402
from nas_convnext.design.build import whole_kernels  # noqa: E402
from nas_convnext.design.roadmap import roadmap_steps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="1,9,11,16",
                    help="roadmap steps to time (default 1,9,11,16: ResNet-50, kernels 7 and 11, "
                         "ConvNeXt-T)")
    ap.add_argument("--repeats", type=int, default=10, help="timed steps of each (default 10)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternations of the two ways (default 2; the median of all steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a trial)")
    ap.add_argument("--write", type=Path, default=None, help="docs/BENCHMARKS.md to update")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",")]
    names = {s.index: s.name for s in roadmap_steps()}
    rows = []
    for s in steps:
        whole: list[float] = []
        crop: list[float] = []
        for _ in range(args.rounds):
            with whole_kernels():
                whole += step_ms(s, True, args.repeats)
            crop += step_ms(s, True, args.repeats)
        w, c = statistics.median(whole), statistics.median(crop)
        rows.append(f"| {names[s]} | {w:.1f} | {c:.1f} | {w / c:.2f}x |")
    cmd = " ".join(["python bench/tap_crop.py"] + sys.argv[1:])
    cpu = platform.processor() or platform.machine()
    body = (f"Command: `{cmd}`\nMachine: {cpu}, {args.threads} thread(s), torch "
            f"{torch.__version__}, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}.\n\nOne training step of the `cpu` proxy "
            "(width x0.25, 32x32, batch 64, AdamW, channels-last), median of "
            f"{args.rounds} x {args.repeats} after 3 warm-up steps each, the two ways "
            "alternating in one run:\n\n| roadmap step | whole kernels, ms | taps that see "
            "only padding skipped, ms | speed-up |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(body)
    if args.write:
        write_section(args.write, "Skipping the kernel taps that see only padding", body)


if __name__ == "__main__":
    main()
