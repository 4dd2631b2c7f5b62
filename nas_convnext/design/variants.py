"""One change at a time around a base design: the designs `nas-convnext ablate` trains.

The paper answered "does this choice pay off?" by changing one thing and comparing. For a base
design (ConvNeXt-T) and a design space, :func:`one_change_variants` lists, for every dimension
of the space and every other value the space allows there, the base with that one field
changed. Why each variant is **FLOP-matched** to the base by refitting its width: most choices
change the cost (a 3x3 kernel is cheaper than 7x7, a dense conv far dearer than a depthwise
one), and at a different cost a variant would be judged on its FLOPs as much as on the choice;
the paper, too, compares at (nearly) equal FLOPs. The exception is the width itself: matching
a width change to the base's FLOPs would undo it, so width variants are compared at their own
FLOPs, and say so.

Matching picks, among the widths that make the changed design valid (multiples of 8 that keep
the group rule), the one whose FLOPs are nearest the base's (in ratio), never above the budget
when there is one; so the base's FLOPs lie within one valid width step of the variant's. An
explicit stem width follows the width in proportion, as `Arch.with_width` does.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..userfile import shown
from .arch import WIDTH_ROUND, Arch, round_to
from .codec import text
from .complexity import complexity, fit_width, parse_flops
from .space import DesignSpace

__all__ = ["BASE", "Variant", "Skipped", "VariantPlan", "plan_variants", "one_change_variants",
           "encode_value"]

#: The ``dimension`` (and ``id``) of the base design in a plan.
BASE = "base"
MAX_WIDTH = 2048


@dataclass(frozen=True)
class Variant:
    """One design to train: the base, or the base with ``dimension`` set to ``value``.

    ``value`` is encoded as the trials table and its analysis label it (``"3,3,9,3"``,
    ``"depthwise"``, ``"none"``, ``"7"``). ``flops`` is the full-size count. ``matched`` says
    whether its width was refitted to the base's FLOPs (False for the base, for width
    variants and for a variant no width brings near the base); ``why`` says what was done, in
    words for the report.
    """

    dimension: str
    value: str
    arch: Arch
    flops: int
    matched: bool
    why: str

    @property
    def id(self) -> str:
        """"base", or "dimension=value" (unique within a plan)."""
        return BASE if self.dimension == BASE else f"{self.dimension}={self.value}"

    @property
    def is_base(self) -> bool:
        return self.dimension == BASE


@dataclass(frozen=True)
class Skipped:
    """A change that gives no design to train, and why (no valid width, over the budget,
    the same design as another variant)."""

    dimension: str
    value: str
    why: str


@dataclass(frozen=True)
class VariantPlan:
    """The base (first in ``variants``), every one-change variant, and the changes skipped."""

    variants: tuple[Variant, ...]
    skipped: tuple[Skipped, ...]
    budget: float | None

    @property
    def base(self) -> Variant:
        return self.variants[0]


def encode_value(field: str, value: Any) -> str:
    """A field's value as the trials table (``Arch.to_row``) stores it and the analysis labels
    it: ``"3,3,9,3"``, ``"depthwise"``, ``"32"``, ``"none"`` (no layer scale), ``"1e-06"``.
    One place, for the lead to swap for the shared codec."""
    if field == "depths":
        value = ",".join(str(x) for x in value)
    elif field == "groups":
        value = str(value)
    elif field == "layer_scale":
        value = math.nan if value is None else float(value)
    elif field == "stem_width":
        value = -1 if value is None else value
    return text(value)


def one_change_variants(base: Arch, space: DesignSpace, budget_flops: float | str | None = None,
                        resolution: int = 224) -> list[Variant]:
    """The base first, then the base with one field changed, for every dimension of ``space``
    and every other value it allows, each FLOP-matched to the base (see the module doc).

    Parameters
    ----------
    base:
        The design to ablate around (e.g. ConvNeXt-T). Every field's value must be one the
        space allows (fixed fields included), else ValueError naming the field.
    space:
        The design space whose dimensions (fields with two or more values) are varied.
    budget_flops:
        Optional FLOP budget ("4.5GFLOPs" or a number): a base above it is narrowed to the
        widest width that fits, and no variant may exceed it (a width variant that does is
        skipped).
    resolution:
        Input resolution of the FLOP count (224, the paper's).

    Changes that give no design (see :func:`plan_variants`'s ``skipped``) are left out.
    """
    return list(plan_variants(base, space, budget_flops, resolution).variants)


def plan_variants(base: Arch, space: DesignSpace, budget_flops: float | str | None = None,
                  resolution: int = 224) -> VariantPlan:
    """:func:`one_change_variants` with the skipped changes and their reasons (for the
    report's "every variant and why" list). Same parameters."""
    if not isinstance(base, Arch):
        raise ValueError(f"base must be a design (Arch); got {type(base).__name__}")
    if not isinstance(space, DesignSpace):
        raise ValueError(f"space must be a DesignSpace; got {type(space).__name__}")
    for field, values in space.dims:
        allowed = [text(v) for v in values]
        if text(getattr(base, field)) not in allowed:
            raise ValueError(f"space {space.name!r} has no {field}={text(getattr(base, field))} "
                             f"(the base design's value): its {field} values are {allowed}; "
                             "choose a space that contains the base design")
    limit = parse_flops(budget_flops) if budget_flops is not None else None

    base_flops = complexity(base, resolution).flops
    base_why = "the base design"
    if limit is not None and base_flops > limit:
        fitted = fit_width(base, limit, resolution)
        base_why = (f"the base design, narrowed from width {base.width} to {fitted.width} to fit "
                    f"the budget of {limit / 1e9:.3g} GFLOPs")
        base, base_flops = fitted, complexity(fitted, resolution).flops
    out = [Variant(BASE, "", base, base_flops, False, base_why)]
    seen = {base.key(): BASE}
    skipped: list[Skipped] = []

    for field, values in space.dimensions.items():
        for value in values:
            if text(value) == text(getattr(base, field)):
                continue
            shown_value = encode_value(field, value)
            got = (_width_variant(base, value, base_flops, limit, resolution) if field == "width"
                   else _matched_variant(base, field, value, base_flops, limit, resolution))
            if isinstance(got, str):
                skipped.append(Skipped(field, shown_value, got))
                continue
            arch, flops, matched, why = got
            v = Variant(field, shown_value, arch, flops, matched, why)
            if arch.key() in seen:
                skipped.append(Skipped(field, shown_value, f"the same design as {seen[arch.key()]}"))
                continue
            seen[arch.key()] = v.id
            out.append(v)
    return VariantPlan(variants=tuple(out), skipped=tuple(skipped), budget=limit)


# --------------------------------------------------------------------------------------------


def _gf(flops: float) -> str:
    return f"{flops / 1e9:.3f} GFLOPs"


def _width_variant(base: Arch, width: int, base_flops: int, limit: float | None,
                   resolution: int) -> tuple[Arch, int, bool, str] | str:
    try:
        arch = base.with_width(width)
    except ValueError as exc:
        return f"width {width} does not make a valid design with the base's other fields: {exc}"
    flops = complexity(arch, resolution).flops
    if limit is not None and flops > limit:
        return (f"over the budget at its own FLOPs ({_gf(flops)} > {_gf(limit)}); width "
                "variants are not refitted, as that would undo the change")
    return (arch, flops, False, f"width is the field that changed: compared at its own FLOPs "
                                f"({_gf(flops)}, the base {_gf(base_flops)})")


def _at_width(base: Arch, field: str, value: Any, width: int) -> Arch:
    """The base with ``field`` = ``value`` at ``width`` (ValueError when invalid); an explicit
    stem width scales with the width, as in Arch.with_width."""
    stem = value if field == "stem_width" else base.stem_width
    if stem is not None and width != base.width:
        stem = max(WIDTH_ROUND, round_to(stem * width / base.width, WIDTH_ROUND))
    return dataclasses.replace(base, **{field: value, "width": width, "stem_width": stem})


def _matched_variant(base: Arch, field: str, value: Any, base_flops: int, limit: float | None,
                     resolution: int) -> tuple[Arch, int, bool, str] | str:
    designs: list[Arch] = []
    first_error = ""
    for w in range(WIDTH_ROUND, MAX_WIDTH + 1, WIDTH_ROUND):
        try:
            designs.append(_at_width(base, field, value, w))
        except ValueError as exc:
            first_error = first_error or str(exc)
    if not designs:
        return (f"no width up to {MAX_WIDTH} makes {field}={shown(text(value))} a valid design "
                f"with the base's other fields ({first_error})")
    cache: dict[int, int] = {}

    def flops(i: int) -> int:
        if i not in cache:
            cache[i] = complexity(designs[i], resolution).flops
        return cache[i]

    # FLOPs grow with width: the first index at or above the base's FLOPs, by bisection
    lo, hi = 0, len(designs)
    while lo < hi:
        mid = (lo + hi) // 2
        if flops(mid) < base_flops:
            lo = mid + 1
        else:
            hi = mid
    near = [i for i in (lo - 1, lo) if 0 <= i < len(designs)]
    if limit is not None:
        near = [i for i in near if flops(i) <= limit]
        if not near:
            return (f"over the budget even at its narrowest valid width ({designs[0].width}: "
                    f"{_gf(flops(0))} > {_gf(limit)})")
    best = min(near, key=lambda i: (abs(math.log(flops(i) / base_flops)), i))
    arch, f = designs[best], flops(best)
    if not (flops(0) <= base_flops <= flops(len(designs) - 1)):
        edge = "narrowest" if base_flops < flops(0) else "widest"
        return (arch, f, False, f"cannot be matched: at its {edge} valid width ({arch.width}) "
                                f"it has {_gf(f)}, the base {_gf(base_flops)}")
    if arch.width == base.width:
        why = f"width kept at {arch.width}: already the nearest to the base's FLOPs"
    else:
        why = f"width {base.width} -> {arch.width} to match the base's FLOPs"
    return arch, f, True, f"{why} ({_gf(f)}, the base {_gf(base_flops)})"
