"""Build the benchmark table: every design of a space trained once, the top-1 of every epoch.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python bench/build_table.py \
        --out /work/exp/table.jsonl [--space search_spaces/bench.yaml] \
        [--data /usr/share/datasets/fashion-mnist] [--table bench/tables/fmnist-cpu.parquet] \
        [--finish] [--limit N]

Why: a search's sampler or scheduler can only be compared with another over many seeds, and
every real search costs hours. With each design's learning curve recorded once, a search can
be replayed (`search --replay TABLE`, see nas_convnext/replay.py) in seconds, with the recorded
seconds as its simulated cost.

What: every valid design of `--space` plus the two references of every search (convnext_t,
resnet50), trained under the `cpu` proxy profile with train_size 1024, val_size 512 and 4
epochs on Fashion-MNIST (Debian's copy), seed 0, one thread. The references go first, then the
space's designs in a seeded shuffle, so a table cut short is a uniform sample of the space.

Resumable: each finished design is appended as one JSON line to `--out` (flushed and synced),
and a restart skips the designs already there; a line cut by a crash is dropped. When every
design is done (or with `--finish`, from whatever is done) the table is written: one row per
(design, epoch) with the design's fields as columns, named and encoded as in trials.parquet
(`Arch.to_row`), then `epoch` (from 1), `top1` (a fraction), `seconds` (the trial's cumulative
CPU seconds at the end of that epoch: with one thread this is its wall time on an idle core,
and it does not grow when other jobs share the machine) and `status` (completed or diverged,
the same on every row of a design). zstd-compressed parquet.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from nas_convnext.design.arch import Arch, presets  # noqa: E402
from nas_convnext.design.complexity import complexity, parse_flops  # noqa: E402
from nas_convnext.design.space import load_space  # noqa: E402
from nas_convnext.results import atomic_write_bytes  # noqa: E402
from nas_convnext.training.data import load_dataset  # noqa: E402
from nas_convnext.training.proxy import get_proxy  # noqa: E402
from nas_convnext.training.trial import train_trial  # noqa: E402

REFERENCES = ("convnext_t", "resnet50")
PROXY = {"profile": "cpu", "train_size": 1024, "val_size": 512, "epochs": 4}
SEED = 0
DEFAULT_SPACE = ROOT / "search_spaces" / "bench.yaml"
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
DEFAULT_TABLE = ROOT / "bench" / "tables" / "fmnist-cpu.parquet"
# trials.parquet's encoding of the design fields (see results.rows_to_frame)
INT_FIELDS = ("width", "kernel")
FLOAT_FIELDS = ("expansion", "layer_scale")


def the_proxy():
    """The table's proxy: the `cpu` profile on a smaller subset, one more epoch."""
    extra = {k: v for k, v in PROXY.items() if k != "profile"}
    return get_proxy(PROXY["profile"], **extra)


def designs_to_train(space_path: str | Path, first_budget: float | None = None
                     ) -> list[tuple[str, Arch]]:
    """(reference name or "", design) in training order: references, then the space's
    designs shuffled with seed 0; each design once. With `first_budget` (FLOPs), the designs
    within it go before those over it (each group keeps the shuffled order): a search replayed
    at that budget never trains a design over it (it is told infeasible), so the table is
    complete for that budget first."""
    space = load_space(str(space_path))
    out = [(name, presets()[name]) for name in REFERENCES]
    rest = list(space.enumerate())
    random.Random(SEED).shuffle(rest)
    if first_budget is not None:
        rest = ([a for a in rest if complexity(a).flops <= first_budget]
                + [a for a in rest if complexity(a).flops > first_budget])
    out += [("", a) for a in rest]
    seen: set[str] = set()
    unique = []
    for name, arch in out:
        if arch.key() not in seen:
            seen.add(arch.key())
            unique.append((name, arch))
    return unique


def read_progress(path: Path) -> dict[str, dict[str, Any]]:
    """The designs recorded so far, by `Arch.key()`; a last line cut by a crash is removed
    from the file so the next append starts on a line of its own."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(keep)
        data = data[:keep]
    out = {}
    for number, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise SystemExit(f"build_table: {path} line {number} is not JSON; remove it") from None
        out[rec["key"]] = rec
    return out


def train_one(name: str, arch: Arch, proxy, data) -> dict[str, Any]:
    """Train one design; its per-epoch record, with CPU and wall seconds at every epoch."""
    history: list[dict[str, Any]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def report(metrics: dict[str, Any]) -> None:
        history.append({"epoch": int(metrics["epoch"]), "top1": float(metrics["top1"]),
                        "top5": float(metrics["top5"]), "loss": float(metrics["loss"]),
                        "val_loss": float(metrics["val_loss"]),
                        "seconds": time.process_time() - cpu0,
                        "wall_s": time.perf_counter() - wall0})

    status, message = "completed", ""
    try:
        result = train_trial(arch, proxy, data, seed=SEED, report=report, threads=1,
                             device="cpu")
        status, message = result.status, result.message
    except (ValueError, RuntimeError) as exc:  # memory refusals, allocator errors
        status, message = "error", f"{type(exc).__name__}: {exc}"[:500]
    return {"key": arch.key(), "reference": name, "design": arch.to_dict(), "status": status,
            "message": message, "history": history, "threads": 1, "seed": SEED,
            "proxy": proxy.to_dict(), "torch": torch.__version__}


def append_record(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def table_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (design, epoch): design fields encoded as trials.parquet, then epoch,
    top1, seconds, status; sorted by design fields and epoch."""
    rows = []
    for rec in records:
        if rec["status"] == "error":
            continue
        fields = Arch(**{k: (tuple(v) if k == "depths" else v)
                         for k, v in rec["design"].items()}).to_row()
        for h in rec["history"]:
            rows.append({**fields, "epoch": h["epoch"], "top1": h["top1"],
                         "seconds": round(h["seconds"], 3), "status": rec["status"]})
    df = pd.DataFrame(rows)
    for col in INT_FIELDS:
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    for col in FLOAT_FIELDS:
        df[col] = pd.to_numeric(df[col]).astype("float64")
    df["epoch"] = df["epoch"].astype("int64")
    keys = [c for c in df.columns if c not in ("top1", "seconds", "status")]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def write_table(records: list[dict[str, Any]], table: Path) -> pd.DataFrame:
    df = table_frame(records)
    table.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(table, df.to_parquet(index=False, compression="zstd"))
    return df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="progress file (JSON lines), kept across runs")
    ap.add_argument("--space", default=str(DEFAULT_SPACE))
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder of the Fashion-MNIST IDX files")
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--finish", action="store_true",
                    help="write the table from the designs done so far; train nothing")
    ap.add_argument("--limit", type=int, default=None, help="train at most N designs this run")
    ap.add_argument("--reverse", action="store_true",
                    help="go through the designs from the end: a second process on the same "
                         "progress file then meets the first in the middle")
    ap.add_argument("--first-budget", default="4.5GFLOPs",
                    help="train the designs within this budget first (the budget the search "
                         "benchmark replays at); 'none': the plain shuffled order")
    args = ap.parse_args(argv)
    first = None if args.first_budget == "none" else parse_flops(args.first_budget)
    torch.set_num_threads(1)
    progress = Path(args.out)
    progress.parent.mkdir(parents=True, exist_ok=True)
    todo = designs_to_train(args.space, first)
    done = read_progress(progress)
    if not args.finish:
        proxy = the_proxy()
        data = load_dataset("idx", args.data)
        trained = 0
        order = todo
        if args.reverse:  # from the end of each group, so both processes do the first group first
            n_first = len(REFERENCES) + sum(1 for _, a in todo[len(REFERENCES):]
                                            if first is not None and complexity(a).flops <= first)
            order = todo[:n_first][::-1] + todo[n_first:][::-1]
        for name, arch in order:
            done = read_progress(progress)  # another process may share the file
            if arch.key() in done or (args.limit is not None and trained >= args.limit):
                continue
            t0 = time.perf_counter()
            rec = train_one(name, arch, proxy, data)
            append_record(progress, rec)
            done[rec["key"]] = rec
            trained += 1
            last = rec["history"][-1] if rec["history"] else {"top1": float("nan"),
                                                              "seconds": 0.0}
            print(f"[{len(done)}/{len(todo)}] {name or 'design'} {rec['status']} "
                  f"top1 {last['top1']:.3f} cpu {last['seconds']:.1f}s "
                  f"wall {time.perf_counter() - t0:.1f}s", flush=True)
    wanted = [done[a.key()] for _, a in todo if a.key() in done]
    missing = len(todo) - len(wanted)
    if missing and not args.finish:
        print(f"{missing} design(s) still to train; run again to go on", flush=True)
        return 0
    df = write_table(wanted, Path(args.table))
    errors = sum(r["status"] == "error" for r in wanted)
    print(f"wrote {args.table}: {len(wanted)} designs ({missing} not trained, {errors} "
          f"errors), {len(df)} rows, {Path(args.table).stat().st_size:,} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
