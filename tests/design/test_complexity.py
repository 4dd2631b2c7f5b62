"""Analytic complexity equals fvcore on the built model, matches the paper, parses budgets."""
from __future__ import annotations

import dataclasses
import random

import pytest

from nas_convnext import build_model, complexity, fit_width, parse_flops, presets
from nas_convnext.design.complexity import fvcore_count, scale_width
from nas_convnext.design.roadmap import roadmap_steps
from nas_convnext.design.space import load_space, shipped_spaces


@pytest.mark.parametrize("name", list(presets()))
def test_analytic_equals_fvcore_on_presets(name):
    arch = presets()[name]
    want = fvcore_count(build_model(arch))
    assert complexity(arch) == want


def _random_designs(space_name: str, n: int, seed: int, max_flops: float = 10e9):
    space = load_space(space_name)
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < min(n, space.size):
        arch = space.sample(rng)
        # Designs far beyond any budget (e.g. dense 11x11 convs 4096 wide) would need GBs of
        # weights to build; the search never trains them, so the check skips them too.
        if arch.key() in seen or complexity(arch).flops > max_flops:
            continue
        seen.add(arch.key())
        out.append(arch)
    return out


def _check_random(space_name: str, n: int, seed: int):
    for arch in _random_designs(space_name, n, seed):
        got, want = complexity(arch), fvcore_count(build_model(arch))
        assert got == want, arch


@pytest.mark.parametrize("space_name", sorted(shipped_spaces()))
def test_analytic_equals_fvcore_on_random_designs(space_name):
    _check_random(space_name, n=6, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("space_name", sorted(shipped_spaces()))
def test_analytic_equals_fvcore_on_100_random_designs(space_name):
    _check_random(space_name, n=100, seed=2)


def test_analytic_equals_fvcore_at_other_resolutions_and_classes():
    arch = dataclasses.replace(presets()["resnet50"], stem="patchify", kernel=5)
    for res, classes in ((64, 10), (97, 3)):
        got = complexity(arch, resolution=res, num_classes=classes)
        assert got == fvcore_count(build_model(arch, num_classes=classes), resolution=res)


def test_fvcore_counts_whole_kernels_where_training_skips_taps():
    """At 32 px an 11x11 depthwise kernel meets 2x2 and 1x1 maps, where training computes with
    its central taps only (`build.SameConv2d`); the count is still the design's whole kernel."""
    arch = dataclasses.replace(presets()["convnext_t"], kernel=11)
    got = complexity(arch, resolution=32, num_classes=10)
    assert got == fvcore_count(build_model(arch, num_classes=10), resolution=32)


def test_roadmap_flops_match_the_paper_as_the_readme_says():
    """README, "How the roadmap compares with the paper": Table 10 counts conv and linear
    multiply-adds; our conv+linear count matches it within 0.005 GFLOPs on steps 0 to 14, and
    fvcore's total (norms and pooling added) is at most 0.05 higher. Steps 15 and 16 differ,
    with the figures the README quotes."""
    steps = roadmap_steps()
    assert [s.index for s in steps] == list(range(17))
    for step in steps[:15]:
        c = complexity(step.arch)
        assert not step.paper_note, step.name
        conv_linear = c.matmul_flops / 1e9
        assert abs(conv_linear - step.paper_gflops) <= 0.005, (step.name, conv_linear)
        assert c.matmul_flops < c.flops
        assert 0 < c.gflops - step.paper_gflops < 0.055, (step.name, c.gflops)
    quoted = {15: (4.46, 4.146, 4.159), 16: (4.49, 4.456, 4.470)}  # paper, conv+linear, total
    for index, (paper, conv_linear, total) in quoted.items():
        c = complexity(steps[index].arch)
        assert steps[index].paper_gflops == paper
        assert round(c.matmul_flops / 1e9, 3) == conv_linear
        assert round(c.gflops, 3) == total
    assert steps[15].paper_note and not steps[16].paper_note  # the misprint is flagged
    assert complexity(steps[16].arch).flops == 4_470_437_376  # timm's convnext_tiny, fvcore


def test_roadmap_ends_at_convnext_t():
    steps = roadmap_steps()
    assert steps[0].arch == presets()["resnet50"]
    assert steps[-1].arch == presets()["convnext_t"]
    assert len(steps) == 17 and [s.index for s in steps] == list(range(17))
    assert steps[12].arch.kernel == 7  # GELU is applied to the kernel-7 model, not kernel-11


@pytest.mark.parametrize("text", ["4.5GFLOPs", "4.5G", "4.5 GFLOPs", "4500MFLOPs", "4.5e9",
                                  "4.5gflops", " 4.5 G "])
def test_budget_forms(text):
    assert parse_flops(text) == pytest.approx(4.5e9)


@pytest.mark.parametrize("text", ["abc", "-1G", "0", "4.5 parsecs", "", "inf", "nan", "1e400"])
def test_bad_budgets_name_the_string(text):
    with pytest.raises(ValueError) as exc:
        parse_flops(text)
    assert repr(text) in str(exc.value)
    assert "4.5GFLOPs" in str(exc.value)  # the accepted forms are shown


def test_fit_width_is_widest_within_budget():
    arch = presets()["convnext_t"]
    fitted = fit_width(arch, "2GFLOPs")
    assert fitted.width % 8 == 0
    assert complexity(fitted).flops <= 2e9
    assert complexity(dataclasses.replace(fitted, width=fitted.width + 8)).flops > 2e9
    assert dataclasses.replace(arch, width=fitted.width) == fitted
    # A budget above the design keeps growing the width.
    assert fit_width(arch, "10G").width > arch.width


def test_fit_width_keeps_group_rules():
    rx = presets()["resnext50_32x4d"]
    fitted = fit_width(rx, "2G")
    assert fitted.width % 32 == 0 and complexity(fitted).flops <= 2e9
    assert complexity(fitted.with_width(fitted.width + 32)).flops > 2e9


def test_fit_width_refuses_impossible_budget():
    with pytest.raises(ValueError, match="narrowest width"):
        fit_width(presets()["resnet50"], "1MFLOPs")


def test_scale_width_rounds_to_multiples_of_8():
    arch = presets()["convnext_t"]
    assert scale_width(arch, 0.25).width == 24
    assert scale_width(arch, 0.3).width == 32  # 28.8 -> 32
    assert scale_width(arch, 1.0) is arch
