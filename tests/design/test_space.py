"""Design spaces: loading and validation, enumeration, sampling, budget counts, Optuna."""
from __future__ import annotations

import random

import optuna
import pytest

from nas_convnext import DesignSpace, complexity, presets
from nas_convnext.design.codec import param
from nas_convnext.design.roadmap import roadmap_steps
from nas_convnext.design.space import load_space, shipped_spaces

SMALL = """
name: tiny
dimensions:
  stem: patchify
  depths: [[1, 1, 3, 1], [2, 2, 6, 2]]
  width: [64, 96]
  expansion: 4
  groups: depthwise
  kernel: [3, 7]
  spatial_conv: first
  act: gelu
  activations: single
  norm: ln
  norms: single
  downsample: separate
  layer_scale: none
"""


def _write(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_spaces_load_and_hold_the_papers_values():
    spaces = shipped_spaces()
    assert {"convnext", "small"} <= set(spaces)
    full = load_space("convnext")
    dims = full.dimensions
    for depths in [(3, 4, 6, 3), (3, 3, 9, 3), (2, 2, 6, 2)]:
        assert depths in dims["depths"]
    assert set(dims["width"]) >= {64, 96, 128}
    assert set(dims["expansion"]) >= {0.25, 4.0}
    assert set(dims["groups"]) >= {1, 32, "depthwise"}
    assert set(dims["kernel"]) >= {3, 5, 7, 9, 11}
    for f in ("stem", "spatial_conv", "act", "activations", "norm", "norms", "downsample",
              "layer_scale"):
        assert len(dims[f]) >= 2, f
    # Every roadmap step but the resnext corner lies in the full space.
    for step in roadmap_steps():
        assert full.contains(step.arch), step.name
    assert full.contains(presets()["convnext_t"]) and full.contains(presets()["resnet50"])


def test_describe_counts_exhaustively_and_matches_brute_force(tmp_path):
    space = DesignSpace.from_yaml(_write(tmp_path, SMALL))
    assert space.size == 8
    designs = list(space.enumerate())
    assert len(designs) == 8 and len({d.key() for d in designs}) == 8
    flops = sorted(complexity(d).flops for d in designs)
    budget = (flops[3] + flops[4]) / 2
    info = space.describe(budget)
    assert info["method"] == "exhaustive"
    assert info["within_budget"] == 4
    assert info["flops_min"] == flops[0] and info["flops_max"] == flops[-1]
    assert set(info["dimensions"]) == {"depths", "width", "kernel"}


MIXED = """
name: mixed
dimensions:
  stem: [patchify, resnet]
  depths: [[2, 2, 6, 2], [1, 1, 3, 1]]
  width: [96, 64]
  expansion: [4, 0.25]
  groups: [depthwise, 1]
  kernel: [7, 3]
  spatial_conv: [first, middle]
  act: [gelu, relu]
  activations: [single, every]
  norm: [ln, bn]
  norms: [single, every]
  downsample: [separate, block]
  layer_scale: [1.0e-6, none]
"""


def test_cheapest_is_the_brute_force_minimum_with_the_flop_free_fields_held(tmp_path):
    # Every dimension lists its costlier or non-default value first, so holding the wrong
    # field at its first value would miss the minimum.
    space = DesignSpace.from_yaml(_write(tmp_path, MIXED))
    every = list(space.enumerate())
    best = min(complexity(d).flops for d in every)
    cheapest = space.cheapest()
    assert complexity(cheapest).flops == best
    assert space.contains(cheapest)
    # ...as holding a field that costs FLOPs does: the kernel held at 7 misses it.
    assert min(complexity(d).flops for d in space.valid.holding(("kernel",)).designs()) > best
    # Held fields keep one value, the rest all of theirs; every design is still valid.
    cut = list(space.valid.holding(("act", "activations", "layer_scale")).designs())
    assert len(cut) * 8 == len(every)
    assert {(d.act, d.activations, d.layer_scale) for d in cut} == {("gelu", "single", 1e-6)}
    assert {d.key() for d in cut} <= {d.key() for d in every}
    assert {d.norm for d in cut} == {"ln", "bn"} and {d.kernel for d in cut} == {7, 3}


def test_large_space_is_estimated_by_sampling(tmp_path, monkeypatch):
    import nas_convnext.design.space as space_mod

    monkeypatch.setattr(space_mod, "EXHAUSTIVE_LIMIT", 4)
    monkeypatch.setattr(space_mod, "SAMPLE_ESTIMATE", 200)
    space = DesignSpace.from_yaml(_write(tmp_path, SMALL))
    info = space.describe("100G")
    assert "estimated" in info["method"] and info["within_budget"] == 8


def test_sampling_is_seeded():
    space = load_space("convnext")
    a = [space.sample(random.Random(3)).key() for _ in range(1)]
    b = [space.sample(random.Random(3)).key() for _ in range(1)]
    rng1, rng2 = random.Random(5), random.Random(5)
    seq1 = [space.sample(rng1).key() for _ in range(20)]
    seq2 = [space.sample(rng2).key() for _ in range(20)]
    assert a == b and seq1 == seq2 and len(set(seq1)) > 15


@pytest.mark.parametrize("text,needle", [
    ("dimensions: {colour: [red]}", "unknown dimension(s) ['colour']"),
    ("dimensoins: {}", "unknown key(s) ['dimensoins']"),
    (SMALL.replace("kernel: [3, 7]", "kernel: [3, 4]"), "'kernel'"),
    (SMALL.replace("kernel: [3, 7]", "kernel: []"), "'kernel' has no values"),
    (SMALL.replace("kernel: [3, 7]", "kernel: [3, 3]"), "repeats value(s) ['3']"),
    (SMALL.replace("width: [64, 96]", "width: [64, fat]"), "'width'"),
    (SMALL.replace("width: [64, 96]", "width: [1e30]"), "'width'"),
    (SMALL.replace("  norm: ln\n", ""), "missing dimension(s) ['norm']"),
    ("- a\n- b\n", "must be a mapping"),
    ("dimensions: [", "not valid YAML"),
])
def test_bad_space_files_name_the_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, text, "bad_space.yaml")
    with pytest.raises(ValueError) as exc:
        DesignSpace.from_yaml(path)
    assert "bad_space.yaml" in str(exc.value) and needle in str(exc.value)


def test_missing_space_file():
    with pytest.raises(ValueError, match="does not exist"):
        load_space("nowhere.yaml")
    with pytest.raises(ValueError, match="neither a shipped space"):
        load_space("bogus")


def test_optuna_suggest_proposes_designs_of_the_space(tmp_path):
    space = DesignSpace.from_yaml(_write(tmp_path, SMALL))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen = set()
    for _ in range(20):
        trial = study.ask()
        arch = space.suggest(trial)
        assert space.contains(arch)
        assert trial.params["depths"] == param(arch.depths)
        seen.add(arch.key())
        study.tell(trial, 0.0)
    assert len(seen) > 4


def test_make_refuses_values_outside_the_space(tmp_path):
    space = DesignSpace.from_yaml(_write(tmp_path, SMALL))
    with pytest.raises(ValueError, match="kernel=5 is not in space"):
        space.make({"kernel": 5})
