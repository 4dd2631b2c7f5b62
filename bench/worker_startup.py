"""What a trial worker pays before its first training step: as shipped, with timm imported, and
with torch's own optimizer classes (which import torch._dynamo on their first step).

    .venv/bin/python bench/worker_startup.py [--repeats 5] [--write docs/BENCHMARKS.md]

Each measurement is a fresh Python process doing what a Ray trial worker does before it trains:
import the search's Ray module (the trainable lives there), build ConvNeXt-T at the `cpu`
proxy's width, make the optimizer and take one step. The `timm` variant first imports
`timm.layers` and `timm.optim`, as every worker did while the init, the optimizer and DropPath
came from timm (timm loads torchvision and all its models). The `torch.optim` variant builds
torch's AdamW instead of ours (`training.optim.AdamW`, which skips torch.compile's wrappers),
as every worker did until stop 28. The variants alternate, `--repeats` times each, so all
see the same machine; the ratio of their medians is what to compare, not
the seconds (this machine's speed moves by a third from hour to hour).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._doc import write_section  # noqa: E402

WORKER = """
import sys, warnings
warnings.simplefilter("ignore")
{pre}
import torch
import nas_convnext.search.raytune
from nas_convnext.design.arch import presets
from nas_convnext.design.build import build_model
from nas_convnext.training.proxy import get_proxy
from nas_convnext.training.trial import make_optimizer
{swap}
proxy = get_proxy("cpu")
model = build_model(presets()["convnext_t"], num_classes=10, width_mult=proxy.width_mult,
                    in_chans=1)
opt = make_optimizer(model, proxy)
model(torch.zeros(2, 1, proxy.resolution, proxy.resolution)).sum().backward()
opt.step()
print("timm" in sys.modules, "torchvision" in sys.modules, "torch._dynamo" in sys.modules)
"""
#: name: (code run before the imports, code run after them)
VARIANTS = {
    "as shipped": ("", ""),
    "timm": ("import timm.layers, timm.optim", ""),
    "torch.optim": ("", "import nas_convnext.training.trial as T; T.AdamW = torch.optim.AdamW"),
}


def _once(pre: str, swap: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WORKER.format(pre=pre, swap=swap)], cwd=ROOT,
                         text=True, capture_output=True, check=True)
    return time.perf_counter() - t, out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", type=Path, default=None, help="update this BENCHMARKS.md section")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {k: [] for k in VARIANTS}
    imported: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, (pre, swap) in VARIANTS.items():
            s, imported[name] = _once(pre, swap)
            seconds[name].append(s)
    load1 = os.getloadavg()[0]
    med = {k: statistics.median(v) for k, v in seconds.items()}
    rows = [f"| {k} | {' / '.join(imported[k].split())} | "
            f"{min(v):.2f}-{max(v):.2f} | {med[k]:.2f} |" for k, v in seconds.items()]
    body = (
        "Command: `.venv/bin/python bench/worker_startup.py --repeats "
        f"{args.repeats} --write docs/BENCHMARKS.md` (load average {load0:.1f} at the start, "
        f"{load1:.1f} at the end). A fresh process does what a trial worker does before it "
        "trains (import the search's Ray module, build ConvNeXt-T at the `cpu` width, make the "
        "optimizer, one step); the three variants alternate, "
        f"{args.repeats} times each.\n\n"
        "| variant | timm / torchvision / torch._dynamo imported | seconds (range) | median |\n"
        "|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Importing timm (which imports torch._dynamo too) costs each worker "
        f"**{med['timm'] - med['as shipped']:.2f} s** "
        f"({med['timm'] / med['as shipped']:.2f}x the shipped start-up); torch's own optimizer "
        f"classes cost it **{med['torch.optim'] - med['as shipped']:.2f} s** "
        f"({med['torch.optim'] / med['as shipped']:.2f}x).")
    print(body)
    if args.write:
        write_section(args.write, "Trial worker start-up", body)


if __name__ == "__main__":
    main()
