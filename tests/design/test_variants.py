"""One-change variants around a base design on the shipped spaces."""
from __future__ import annotations

import dataclasses
import math

import pytest

from nas_convnext.design.arch import FIELD_NAMES, Arch, presets
from nas_convnext.design.codec import text as label
from nas_convnext.design.complexity import complexity
from nas_convnext.design.space import DesignSpace, load_space
from nas_convnext.design.variants import BASE, one_change_variants, plan_variants

CONVNEXT_T = presets()["convnext_t"]
SMALL_BASE = dataclasses.replace(CONVNEXT_T, depths=(2, 2, 6, 2))   # a design of `small`


def neighbour_widths(arch: Arch) -> tuple[int | None, int | None]:
    """The valid widths just below and above the variant's, found by trying each multiple of 8."""
    def valid(w: int) -> bool:
        try:
            arch.with_width(w)
        except ValueError:
            return False
        return True

    below = next((w for w in range(arch.width - 8, 7, -8) if valid(w)), None)
    above = next((w for w in range(arch.width + 8, 2049, 8) if valid(w)), None)
    return below, above


def check_plan(base: Arch, space: DesignSpace, variants) -> None:
    assert variants[0].dimension == BASE and variants[0].arch == base
    assert sum(v.is_base for v in variants) == 1
    ids = [v.id for v in variants]
    assert len(ids) == len(set(ids))
    assert len({v.arch.key() for v in variants}) == len(variants)      # no design twice
    expected = {(f, label(x)) for f, values in space.dimensions.items() for x in values
                if label(x) != label(getattr(base, f))}
    got = {(v.dimension, label(getattr(v.arch, v.dimension))) for v in variants[1:]}
    assert got == expected
    base_flops = complexity(base).flops
    for v in variants[1:]:
        changed = {f for f in FIELD_NAMES if getattr(v.arch, f) != getattr(base, f)}
        if v.dimension == "width":
            assert changed == {"width"}, (v.id, changed)
        else:
            assert changed - {"width"} == {v.dimension}, (v.id, changed)
        assert v.flops == complexity(v.arch).flops
        if v.dimension == "width":
            assert not v.matched and "own FLOPs" in v.why
            continue
        assert v.matched, v.id
        below, above = neighbour_widths(v.arch)
        # the base's FLOPs lie within one valid width step of the variant's
        lo = complexity(v.arch.with_width(below)).flops if below else 0
        hi = complexity(v.arch.with_width(above)).flops if above else math.inf
        assert lo <= base_flops <= hi, (v.id, lo, base_flops, hi)
        # and no neighbouring width is nearer (in ratio)
        gap = abs(math.log(v.flops / base_flops))
        for f in (lo, hi):
            if 0 < f < math.inf:
                assert gap <= abs(math.log(f / base_flops)) + 1e-12, v.id


def test_small_space_around_a_design_it_contains():
    space = load_space("small")
    variants = one_change_variants(SMALL_BASE, space)
    check_plan(SMALL_BASE, space, variants)
    assert len(variants) == 1 + 4                       # four dimensions, two values each
    shrunk = next(v for v in variants if v.id == "depths=1,1,3,1")
    assert shrunk.arch.width > SMALL_BASE.width        # fewer blocks: wider to match FLOPs


def test_convnext_space_around_convnext_t():
    space = load_space("convnext")
    plan = plan_variants(CONVNEXT_T, space)
    check_plan(CONVNEXT_T, space, list(plan.variants))
    assert len(plan.variants) == 1 + sum(len(v) - 1 for v in space.dimensions.values())
    assert plan.skipped == ()
    dense = next(v for v in plan.variants if v.id == "groups=1")
    assert dense.arch.width < CONVNEXT_T.width          # a dense 7x7 conv costs far more
    wide = next(v for v in plan.variants if v.id == "width=128")
    assert wide.flops == complexity(CONVNEXT_T.with_width(128)).flops
    free = next(v for v in plan.variants if v.id == "act=relu")
    assert free.arch.width == CONVNEXT_T.width and "kept" in free.why   # costs nothing
    assert {v.value for v in plan.variants if v.dimension == "layer_scale"} == {"none"}
    assert {v.value for v in plan.variants if v.dimension == "depths"} == {
        "3,4,6,3", "2,2,6,2", "2,2,8,2", "3,3,27,3"}


def test_budget_narrows_the_base_and_skips_what_cannot_fit():
    space = load_space("convnext")
    plan = plan_variants(CONVNEXT_T, space, budget_flops="4.5GFLOPs")
    assert all(v.flops <= 4.5e9 for v in plan.variants)
    assert [(s.dimension, s.value) for s in plan.skipped] == [("width", "128")]
    assert "over the budget" in plan.skipped[0].why
    tight = plan_variants(CONVNEXT_T, space, budget_flops=3e9)
    assert tight.base.arch.width < CONVNEXT_T.width
    assert "narrowed" in tight.base.why
    assert all(v.flops <= 3e9 for v in tight.variants)
    # ConvNeXt-T's own width 96 is now a change, and like 128 over the budget; 64 fits
    assert "width=64" in [v.id for v in tight.variants]
    assert [s.value for s in tight.skipped if s.dimension == "width"] == ["96", "128"]


def test_a_change_no_width_can_make_valid_is_skipped_with_a_reason():
    data = {"name": "odd", "dimensions": {
        **{f: label(getattr(CONVNEXT_T, f)) for f in FIELD_NAMES if f != "stem_width"},
        "depths": list(CONVNEXT_T.depths), "groups": ["depthwise", 4096]}}
    plan = plan_variants(CONVNEXT_T, DesignSpace.from_dict(data))
    assert [v.id for v in plan.variants] == [BASE]
    assert plan.skipped[0].dimension == "groups" and "no width" in plan.skipped[0].why


@pytest.mark.parametrize("base, field", [
    (CONVNEXT_T, "depths"),                                  # small has no 3,3,9,3
    (dataclasses.replace(SMALL_BASE, act="relu"), "act"),    # nor a fixed field's other value
])
def test_a_space_without_the_bases_value_is_refused_naming_it(base, field):
    with pytest.raises(ValueError, match=rf"no {field}=.*base design"):
        one_change_variants(base, load_space("small"))
