"""Time a proxy's training step in channels-last against the default layout, on the CPU.

    .venv/bin/python bench/channels_last.py [--steps 1,9,16] [--repeats 10] [--threads 1]
                                            [--write docs/BENCHMARKS.md]

Why: `training.trial` trains every design in channels-last on every device. On a GPU that is
for the tensor cores; on a CPU it was measured here, because oneDNN's depthwise and large-kernel
convolutions are much faster in that layout while dense ones barely change, and the calibration
time of the `cpu` proxy (docs/CALIBRATION.md) depends on it. Roadmap steps are timed at the
`cpu` profile's width, resolution and batch, one optimizer step (forward, loss, backward,
AdamW) at a time, both layouts in one run; the ratio is written to docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench._doc import write_section  # noqa: E402
from nas_convnext.design.build import build_model  # noqa: E402
from nas_convnext.design.roadmap import roadmap_steps  # noqa: E402
from nas_convnext.training.proxy import get_proxy  # noqa: E402


def step_ms(step: int, channels_last: bool, repeats: int, warmup: int = 3) -> list[float]:
    """Milliseconds of each timed training step of roadmap `step`'s `cpu` proxy."""
    proxy = get_proxy("cpu")
    torch.manual_seed(0)
    model = build_model(roadmap_steps()[step].arch, num_classes=10, in_chans=1,
                        width_mult=proxy.width_mult)
    x = torch.randn(proxy.batch_size, 1, proxy.resolution, proxy.resolution)
    y = torch.randint(0, 10, (proxy.batch_size,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out = []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            out.append(1000 * (time.perf_counter() - t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="1,9,16",
                    help="roadmap steps to time (default 1,9,16: ResNet-50, kernel 7, ConvNeXt-T)")
    ap.add_argument("--repeats", type=int, default=10, help="timed steps of each (default 10)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a trial)")
    ap.add_argument("--write", type=Path, default=None, help="docs/BENCHMARKS.md to update")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",")]
    names = {s.index: s.name for s in roadmap_steps()}
    rows = []
    for s in steps:
        plain = statistics.median(step_ms(s, False, args.repeats))
        last = statistics.median(step_ms(s, True, args.repeats))
        rows.append(f"| {names[s]} | {plain:.1f} | {last:.1f} | {plain / last:.2f}x |")
    cmd = " ".join(["python bench/channels_last.py"] + sys.argv[1:])
    body = (f"Command: `{cmd}`\nMachine: {platform.machine()}, {args.threads} thread(s), "
            f"torch {torch.__version__}.\n\nOne training step of the `cpu` proxy (width x0.25, "
            f"32x32, batch 64, AdamW), median of {args.repeats} after 3 warm-up steps, both "
            "layouts in one run:\n\n| roadmap step | default layout, ms | channels-last, ms | "
            "speed-up |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(body)
    if args.write:
        write_section(args.write, "Channels-last on the CPU", body)


if __name__ == "__main__":
    main()
