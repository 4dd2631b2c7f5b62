"""Several designs measured on this machine, as one table: the `speed` command's figures.

`speed_rows` measures named designs (cached, as a search does) and gives one row each with
its full-size FLOPs and parameters beside the measured figures, so that
`speed.rank_agreement_flops_time` can say how well FLOPs order them by time on this machine.
`roadmap_designs` names the designs of `nas-convnext speed --roadmap`: the paper's 17 steps
and the two reference networks (step 0 and step 16 have the same fields as ResNet-50 and
ConvNeXt-T, so the cache measures them once), plus ConvNeXt-S and -B on request (the paper's
Table 1 gives their GPU throughput beside ConvNeXt-T's).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..design.arch import Arch, presets
from ..design.complexity import complexity
from .speed import Speed, cached_speed


def roadmap_designs(larger: bool = False) -> list[tuple[str, Arch]]:
    """(name, design) of the roadmap's 17 steps, ConvNeXt-T and ResNet-50 (and with `larger`,
    ConvNeXt-S and -B)."""
    from ..design.roadmap import roadmap

    table = presets()
    names = ["convnext_t", "resnet50"] + (["convnext_s", "convnext_b"] if larger else [])
    return list(roadmap()) + [(n, table[n]) for n in names]


def speed_rows(designs: Iterable[tuple[str, Arch]], *,
               progress: Callable[[str, Speed], None] | None = None,
               measure: Callable[..., Speed] | None = None,
               **options: Any) -> list[dict[str, Any]]:
    """One row per design: name, flops, params, gflops, the speed columns, `seconds`, and
    `same_as`: the name of an earlier row with the same design ('' for the first).

    options go to `cached_speed` (batch, resolution, device, dtype, threads, cache_dir,
    refresh, budget_s, ...); `measure` replaces it (tests). `progress` is called with each
    design's name and Speed as soon as it is measured (a long table shows its rows as it goes).
    Designs with the same fields under two names (roadmap step 0 and `resnet50`) share one
    measurement.
    """
    rows = []
    seen: dict[str, tuple[str, Speed]] = {}  # one design under two names: measured once
    for name, arch in designs:
        first, speed = seen.get(arch.key()) or ("", None)
        if speed is None:
            speed = (measure or cached_speed)(arch, **options)
            seen[arch.key()] = (name, speed)
        c = complexity(arch)
        rows.append({"name": name, "flops": c.flops, "params": c.params,
                     "gflops": c.flops / 1e9, **speed.to_row(), "batch": speed.batch,
                     "resolution": speed.resolution, "dtype": speed.dtype,
                     "threads": speed.threads, "repeats": speed.repeats,
                     "throughput_repeats": speed.throughput_repeats,
                     "seconds": speed.seconds, "same_as": first})
        if progress is not None:
            progress(name, speed)
    return rows
