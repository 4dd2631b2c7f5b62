"""An ablation run's analysis: from its trials table and its plan to paired verdicts.

`nas-convnext ablate` trains a base design and its one-change variants
(`design.variants.plan_variants`), each with the same seeds; run.json keeps the plan (every
variant's id, dimension, value, design, FLOPs and why it is compared at those FLOPs) and the
seeds. Here that plan meets the trials table: each row is matched to its variant by its
design (`Arch.key`) and carries its seed, so the base's and the variants' results become the
two tables `analysis.paired.paired_analysis` pairs seed by seed. Only completed trials count:
a diverged, stopped or failed trial has no top-1 to pair, and its seed is listed unpaired.

Beside each verdict stands the paper's own direction for the base's choice, derived from the
roadmap (`design.roadmap`): every step that changed the dimension (against the step it starts
from) compares two values of it, with the paper's ImageNet top-1 of both. Nothing about the
base's identity is special-cased: any base gets the roadmap's comparisons of its own values.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..design.arch import Arch
from ..design.codec import text
from ..design.variants import BASE, VariantPlan
from .paired import LEVEL, POWER, PairedAnalysis, paired_analysis

__all__ = ["PaperChange", "PaperDirection", "AblationAnalysis", "plan_record",
           "ablation_tables", "paper_directions", "analyse_ablation", "PAPER_DIRECTIONS",
           "same_experiment", "latest_ablation"]

#: The paper's direction for a base's choice: higher ImageNet top-1 than every value the
#: roadmap compared it with, lower than some, or equal to some and lower than none.
PAPER_DIRECTIONS = ("better", "worse", "equal")


# --------------------------------------------------------------------------------------------
# The plan, as run.json keeps it
# --------------------------------------------------------------------------------------------


def plan_record(plan: VariantPlan, base_name: str, space: str, seeds: Sequence[int]
                ) -> dict[str, Any]:
    """The ``ablation`` block of run.json: everything a resume needs to rebuild the list of
    (design, seed) pairs, and the report to say what each variant is and why.

    ``base_name`` is how the user named the base (a preset or a file, with overrides);
    ``seeds`` the seeds every design is trained with.
    """
    return {
        "base_name": str(base_name), "space": str(space), "budget": plan.budget,
        "seeds": [int(s) for s in seeds],
        "base": plan.base.arch.to_dict(),
        "variants": [{"id": v.id, "dimension": v.dimension, "value": v.value,
                      "design": v.arch.to_dict(), "flops": int(v.flops), "matched": v.matched,
                      "why": v.why} for v in plan.variants],
        "skipped": [{"dimension": s.dimension, "value": s.value, "why": s.why}
                    for s in plan.skipped],
    }


def _variants(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    variants = record.get("variants")
    if not isinstance(variants, list) or not variants:
        raise ValueError("the ablation plan has no variants (run.json field 'ablation.variants')")
    out = []
    for i, v in enumerate(variants):
        if not isinstance(v, Mapping) or not {"id", "dimension", "value", "design"} <= set(v):
            raise ValueError(f"the ablation plan's variant {i} lacks id, dimension, value or "
                             "design (run.json field 'ablation.variants')")
        out.append(dict(v))
    if sum(v["id"] == BASE for v in out) != 1:
        raise ValueError("the ablation plan must hold the base design exactly once "
                         "(run.json field 'ablation.variants')")
    return out


# --------------------------------------------------------------------------------------------
# The trials table as the paired tables
# --------------------------------------------------------------------------------------------


def ablation_tables(trials: pd.DataFrame, record: Mapping[str, Any]
                    ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(variants, base, unmatched): the trials table split as `paired_analysis` takes it.

    ``variants`` has one row per (variant, seed) with variant, dimension, value, seed, top1
    and flops (the plan's FLOPs); ``base`` the base design's seed and top1. A trial that did
    not complete has top1 NaN (paired_analysis leaves it out). ``unmatched`` counts rows whose
    design is none of the plan's (a table from another run, or a plan edited since).
    Seeds the plan names but no row has are simply absent. A (design, seed) with two rows
    (never written by one ablation) keeps the completed one, else the last.
    """
    plan = _variants(record)
    by_key = {Arch.from_row(v["design"]).key(): v for v in plan}
    need = ("seed", "status", "top1")
    missing = [c for c in need if c not in trials.columns]
    if missing:
        raise ValueError(f"the trials table lacks column(s) {missing}: not an ablation's table")
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    unmatched = 0
    for r in trials.to_dict("records"):
        v = by_key.get(Arch.from_row(r).key())
        if v is None:
            unmatched += 1
            continue
        seed = r["seed"].item() if hasattr(r["seed"], "item") else r["seed"]
        top1 = float(r["top1"]) if r["status"] == "completed" else math.nan
        key = (v["id"], seed)
        if key in rows and math.isfinite(rows[key]["top1"]) and not math.isfinite(top1):
            continue
        rows[key] = {"variant": v["id"], "dimension": v["dimension"], "value": v["value"],
                     "seed": seed, "top1": top1, "flops": float(v.get("flops", math.nan))}
    cols = ["variant", "dimension", "value", "seed", "top1", "flops"]
    df = pd.DataFrame(list(rows.values()), columns=cols)
    base = df[df["variant"] == BASE][["seed", "top1"]].reset_index(drop=True)
    variants = df[df["variant"] != BASE].reset_index(drop=True)
    return variants, base, unmatched


# --------------------------------------------------------------------------------------------
# The paper's direction, from the roadmap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperChange:
    """One roadmap step that changed ``dimension`` between the base's value and ``other``.

    ``delta`` is the paper's ImageNet top-1 with the base's value minus that with ``other``,
    in percentage points (positive: the paper found the base's choice better). ``also`` names
    the other fields the same step changed (the comparison is then not of this field alone);
    the steps' GFLOPs are the paper's (its comparisons are not FLOP-matched).
    """

    dimension: str
    base_value: str
    other: str
    delta: float
    step_from: str
    step_to: str
    also: tuple[str, ...]
    gflops_base: float
    gflops_other: float

    def text(self) -> str:
        also = f", together with {', '.join(self.also)}" if self.also else ""
        return (f"{self.base_value} vs {self.other}: {self.delta:+.2f} pp "
                f"({self.step_from} -> {self.step_to}{also}; {self.gflops_base:g} vs "
                f"{self.gflops_other:g} GFLOPs)")


@dataclass(frozen=True)
class PaperDirection:
    """The paper's direction for the base's value of one dimension: ``better``, ``worse`` or
    ``equal`` (see PAPER_DIRECTIONS), or None when no roadmap step changed this dimension
    to or from the base's value."""

    dimension: str
    base_value: str
    direction: str | None
    changes: tuple[PaperChange, ...]

    def text(self) -> str:
        if self.direction is None:
            return "not compared on the roadmap"
        return f"{self.direction}: " + "; ".join(c.text() for c in self.changes)


def paper_directions(base: Arch, dimensions: Iterable[str], steps: Sequence[Any] | None = None,
                     alternatives: Mapping[str, Iterable[str]] | None = None
                     ) -> dict[str, PaperDirection]:
    """For each dimension, the roadmap's comparisons of the base's value with another value.

    Every step is compared with the step it starts from (`Step.parent`), under the same
    training recipe; where the two designs differ in a dimension and one of them has the
    base's value, that step is a comparison of the base's choice, with the paper's top-1
    difference. ``steps`` defaults to the shipped roadmap. ``alternatives`` (dimension ->
    value labels) keeps only the comparisons with values the ablation tried: the paper's
    7x7 against 5x5 says nothing about an ablation that tried only 3x3.
    """
    if steps is None:
        from ..design.roadmap import roadmap_steps

        steps = roadmap_steps()
    by_index = {s.index: s for s in steps}
    out: dict[str, PaperDirection] = {}
    for dim in dimensions:
        mine = text(getattr(base, dim))
        changes = []
        for s in steps:
            p = by_index.get(s.parent) if s.parent is not None else None
            if p is None or p.recipe != s.recipe:
                continue
            before, after = text(getattr(p.arch, dim)), text(getattr(s.arch, dim))
            if before == after or mine not in (before, after):
                continue
            other = before if after == mine else after
            if alternatives is not None and other not in {text(a) for a in
                                                          alternatives.get(dim, ())}:
                continue
            also = tuple(f for f in Arch.__dataclass_fields__ if f != dim
                         and text(getattr(p.arch, f)) != text(getattr(s.arch, f)))
            mine_is_after = after == mine
            hi, lo = (s, p) if mine_is_after else (p, s)
            changes.append(PaperChange(
                dim, mine, before if mine_is_after else after,
                round(hi.paper_top1 - lo.paper_top1, 4), _short(p.name), _short(s.name), also,
                hi.paper_gflops, lo.paper_gflops))
        direction = None
        if changes:
            deltas = [c.delta for c in changes]
            direction = ("worse" if min(deltas) < 0 else "better" if min(deltas) > 0
                         else "equal")
        out[dim] = PaperDirection(dim, mine, direction, tuple(changes))
    return out


def _short(name: str) -> str:
    return str(name).split("/", 1)[-1]


# --------------------------------------------------------------------------------------------
# The whole analysis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationAnalysis:
    """Everything the ablation's report and `--json` show, computed once.

    ``record`` is run.json's ``ablation`` block (see `plan_record`); ``paired`` the paired
    differences and verdicts; ``paper`` the paper's direction per dimension; ``counts`` the
    trials by status; ``minutes`` the run's training time (None when unknown).
    """

    record: Mapping[str, Any]
    paired: PairedAnalysis
    paper: Mapping[str, PaperDirection]
    counts: Mapping[str, int]
    minutes: float | None
    notes: tuple[str, ...]

    @property
    def base_name(self) -> str:
        return str(self.record.get("base_name", "base"))

    @property
    def base(self) -> Arch:
        return Arch.from_row(self.record["base"])

    @property
    def variants(self) -> list[dict[str, Any]]:
        return _variants(self.record)

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.record.get("skipped", []) or []]

    def to_json(self) -> dict[str, Any]:
        """`--json`'s object: base, seeds, minutes, variants (dimension, value, flops,
        mean_diff, ci, ...), verdicts (dimension -> better / worse / undecided), and beside
        them the plan (space, budget, what each variant is and why), the paper's directions,
        the trials by status and the notes."""
        out = self.paired.to_json()
        plan = {v["id"]: v for v in self.variants}
        for v in out["variants"]:
            p = plan.get(v["variant"], {})
            v["matched"] = p.get("matched")
            v["why"] = p.get("why")
        base = plan[BASE]
        return {
            "base": {"name": self.base_name, "design": dict(self.record["base"]),
                     "flops": base.get("flops"), "why": base.get("why")},
            "space": self.record.get("space"), "budget": self.record.get("budget"),
            "seeds": [int(s) for s in self.record.get("seeds", out["seeds"])],
            "paired_seeds": out.pop("seeds"),
            "minutes": None if self.minutes is None else round(float(self.minutes), 2),
            **out,
            "paper": {d: {"base_value": p.base_value, "direction": p.direction,
                          "changes": [{"other": c.other, "delta_pp": c.delta,
                                       "from": c.step_from, "to": c.step_to,
                                       "also_changed": list(c.also)} for c in p.changes]}
                      for d, p in self.paper.items()},
            "skipped": self.skipped,
            "trials": dict(self.counts),
            "notes": list(self.notes),
        }


def analyse_ablation(trials: pd.DataFrame, record: Mapping[str, Any],
                     minutes: float | None = None, level: float = LEVEL,
                     power: float = POWER) -> AblationAnalysis:
    """The paired analysis of an ablation's trials table (see the module doc).

    Parameters
    ----------
    trials:
        The run's trials table (one row per trained (design, seed)).
    record:
        run.json's ``ablation`` block (`plan_record`).
    minutes:
        How long the run trained, for the report (None: not known).
    level, power:
        Of the t intervals and of the detectable difference (see `paired_analysis`).

    A variant with fewer than 2 completed seeds paired with the base gets no interval and
    leaves its dimension undecided (noted); a base without any completed seed is a
    ValueError: nothing can be paired.
    """
    variants, base, unmatched = ablation_tables(trials, record)
    base_arch = Arch.from_row(record["base"])
    if not np.isfinite(base["top1"].to_numpy(dtype=float)).any():
        raise ValueError("the base design has no completed trial yet: nothing to pair the "
                         "variants with (resume the run to train it)")
    dims = list(dict.fromkeys(variants["dimension"]))
    paired = paired_analysis(variants, base,
                             base_values={d: getattr(base_arch, d) for d in dims},
                             level=level, power=power, on_short="undecided")
    notes = []
    short = [d.variant for d in paired.diffs if d.n < 2]
    if short:
        notes.append(f"{len(short)} variant(s) with fewer than 2 completed seeds paired with "
                     f"the base have no interval and leave their dimension undecided: "
                     f"{', '.join(short)}")
    if unmatched:
        notes.append(f"{unmatched} trial(s) whose design is not in the ablation's plan were "
                     "left out")
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    tried = {d: list(variants.loc[variants["dimension"] == d, "value"].unique()) for d in dims}
    return AblationAnalysis(record=record, paired=paired,
                            paper=paper_directions(base_arch, dims, alternatives=tried),
                            counts={str(k): int(v) for k, v in counts.items()},
                            minutes=minutes, notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# The latest ablation beside a search (local and global evidence together)
# --------------------------------------------------------------------------------------------


def same_experiment(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two runs' run.json describe the same proxy on the same data: the same proxy
    profile (every setting, epochs included) and the same dataset, data folder and, where
    both recorded it, the same source of the images."""
    ca, cb = a.get("config") or {}, b.get("config") or {}
    if not isinstance(ca, Mapping) or not isinstance(cb, Mapping):
        return False
    if a.get("proxy") is None or a.get("proxy") != b.get("proxy"):
        return False
    if ca.get("dataset") != cb.get("dataset") or ca.get("data_dir") != cb.get("data_dir"):
        return False
    sa, sb = a.get("dataset_source"), b.get("dataset_source")
    return sa is None or sb is None or sa == sb


def latest_ablation(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The most recently finished ablation beside ``run_dir`` (in the same results folder)
    with the same proxy and data (`same_experiment`), as (its folder, its run.json); None
    when there is none. Folders that are not readable runs are passed over."""
    from ..results import read_run_json

    run_dir = Path(run_dir)
    try:
        mine = read_run_json(run_dir)
        siblings = [p for p in run_dir.resolve().parent.iterdir() if p.is_dir()]
    except (ValueError, OSError):
        return None
    found = []
    for p in siblings:
        if p == run_dir.resolve() or not (p / "run.json").is_file():
            continue
        try:
            meta = read_run_json(p)
        except (ValueError, OSError):
            continue
        if meta.get("kind") == "ablation" and meta.get("finished") and \
                isinstance(meta.get("ablation"), dict) and same_experiment(mine, meta):
            found.append((str(meta["finished"]), p.name, p, meta))
    if not found:
        return None
    _, _, path, meta = max(found)
    return path, meta
