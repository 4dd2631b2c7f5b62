"""A valid space in which almost every combination is invalid: sampling, the cheapest design,
`space`, `search` and the searcher's proposals find its valid designs, and a space without any
says which dimension is to blame.

The space: 1,000 `groups` values of which only 1 divides the channel counts (all of the form
2^a * 3; the others are odd numbers above 1,000), so 0.1 % of its combinations are valid.
Drawing combinations and keeping the valid ones with a cap (1,000 draws in `sample`, 500
proposals in the searcher) fails most of the time here.
"""
from __future__ import annotations

import functools
import itertools
import random
from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import nas_convnext.search.raytune as raytune_module
import nas_convnext.search.searcher as searcher_module
from nas_convnext.design import space as space_module
from nas_convnext.design.arch import FIELD_NAMES, GROUP_RULE_FIELDS, Arch, group_divisor
from nas_convnext.cli import main
from nas_convnext.training.proxy import get_proxy
from nas_convnext.design.space import DesignSpace

ROOT = Path(__file__).resolve().parents[2]
SMALL = yaml.safe_load((ROOT / "search_spaces" / "small.yaml").read_text())
RARE = [1] + list(range(1001, 2999, 2))  # 1,000 values; only 1 divides 2^a * 3


def sparse_dims(groups=RARE) -> dict:
    dims = dict(SMALL["dimensions"])
    dims.update(depths=[2, 2, 6, 2], spatial_conv="first", groups=list(groups))
    return dims  # kernel x norm x groups = 2 x 2 x 1,000: 4 valid designs


def write_space(tmp_path, dims, name="sparse") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "dimensions": dims}))
    return path


def brute_force(space: DesignSpace) -> set[str]:
    names = [f for f, _ in space.dims]
    out = set()
    for combo in itertools.product(*(v for _, v in space.dims)):
        try:
            out.add(Arch(**dict(zip(names, combo))).key())
        except ValueError:
            continue
    return out


@pytest.fixture
def sparse(tmp_path) -> DesignSpace:
    return DesignSpace.from_yaml(write_space(tmp_path, sparse_dims()))


def test_every_draw_is_one_of_the_few_valid_designs(sparse):
    valid = brute_force(sparse)
    for seed in range(20):
        arch = sparse.sample(random.Random(seed))
        assert arch.groups == 1 and arch.key() in valid
    assert {a.key() for a in sparse.enumerate()} == valid
    assert sparse.size == 4000 and sparse.valid_count == len(valid) == 4


def test_describe_and_cheapest_by_sampling_find_them(sparse, monkeypatch):
    # The sampled path (a space too large to enumerate), as in the space of millions.
    monkeypatch.setattr(space_module, "EXHAUSTIVE_LIMIT", 1)
    monkeypatch.setattr(space_module, "SAMPLE_ESTIMATE", 40)
    info = sparse.describe("100G", seed=0)
    assert info["valid"] == 4 and info["within_budget"] == 4 and "estimated" in info["method"]
    assert sparse.cheapest().groups == 1


def test_draws_are_uniform_over_the_valid_designs(tmp_path):
    # Mixed validity: some widths and expansions give fractional channels, some groups fit
    # some designs only. Every valid design must be drawn about equally often.
    dims = dict(SMALL["dimensions"], width=[64, 96, 100], expansion=[0.25, 0.3, 4],
                groups=[1, 3, 32, "depthwise", 7], depths=[[1, 1, 3, 1], [2, 2, 6, 2]],
                kernel=3, norm="ln")
    space = DesignSpace.from_yaml(write_space(tmp_path, dims, "mixed"))
    valid = brute_force(space)
    assert 4 < len(valid) < space.size
    rng = random.Random(0)
    counts: dict[Arch, int] = {}
    for _ in range(200 * len(valid)):
        arch = space.sample(rng)
        counts[arch] = counts.get(arch, 0) + 1
    assert {a.key() for a in counts} == valid
    # 200 expected draws each (sd 14): a wrong weighting (say by tied combination, not by
    # design) moves some counts by a factor of 2 or more; 200 +- 40 % holds by 5 sd.
    assert all(120 < c < 280 for c in counts.values()), sorted(counts.values())


_small_values = {
    "width": st.lists(st.sampled_from([8, 24, 64, 96, 100, 13]), min_size=1, max_size=3,
                      unique=True),
    "expansion": st.lists(st.sampled_from([0.25, 0.3, 0.5, 1, 1.5, 4]), min_size=1,
                          max_size=3, unique=True),
    "groups": st.lists(st.sampled_from([1, 2, 3, 5, 8, 32, 96, "depthwise"]), min_size=1,
                       max_size=4, unique=True),
    "spatial_conv": st.lists(st.sampled_from(["middle", "first"]), min_size=1, unique=True),
    "downsample": st.lists(st.sampled_from(["block", "separate"]), min_size=1, unique=True),
    "depths": st.lists(st.sampled_from([[1, 1, 1, 1], [2, 1, 1, 1], [1, 2, 3, 1]]),
                       min_size=1, max_size=2, unique_by=tuple),
    "stem_width": st.lists(st.sampled_from([None, 8, 12, 48]), min_size=1, max_size=2,
                           unique=True),
}


@settings(max_examples=40, deadline=None)
@given(values=st.fixed_dictionaries(_small_values))
def test_valid_designs_equal_trying_every_combination(values):
    # ValidDesigns knows the rules per field; Arch checks each design. They must agree on
    # every space, or sampling would draw designs Arch refuses (or miss some it accepts).
    dims = dict(SMALL["dimensions"], kernel=3, norm="ln", **values)
    dims["depths"] = [list(d) for d in values["depths"]]
    dims["stem_width"] = ["none" if v is None else v for v in values["stem_width"]]
    space = DesignSpace.from_dict({"dimensions": dims})
    valid = brute_force(space)
    assert {a.key() for a in space.enumerate()} == valid
    assert space.valid_count == len(valid)
    if valid:
        rng = random.Random(1)
        assert all(space.sample(rng).key() in valid for _ in range(10))


def test_the_rule_fields_are_group_divisors_arguments():
    # ValidDesigns passes a combination of GROUP_RULE_FIELDS to group_divisor by position.
    assert GROUP_RULE_FIELDS == group_divisor.__code__.co_varnames[:6]
    assert set(GROUP_RULE_FIELDS) < set(FIELD_NAMES)


def test_cli_space_and_search_accept_it(sparse, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(space_module, "EXHAUSTIVE_LIMIT", 1)
    monkeypatch.setattr(space_module, "SAMPLE_ESTIMATE", 40)
    path = Path(sparse.source)
    assert main(["space", str(path), "--json"]) == 0
    assert '"valid": 4' in capsys.readouterr().out

    class Reached(Exception):
        pass

    def stop(cfg):  # Ray's start: every check of the space and the budget is behind us
        raise Reached

    monkeypatch.setattr(raytune_module, "init_ray", stop)
    with pytest.raises(Reached):
        main(["search", "--space", str(path), "--budget", "4.5G", "--proxy", "cpu-tiny", "--dataset", "synthetic",
              "--results-dir", str(tmp_path / "results"), "--name", "x"])


def _searcher(space: DesignSpace, trials: int):
    study = optuna.create_study(directions=["maximize", "minimize"])
    base = {"proxy": get_proxy("cpu-tiny").to_dict(), "seed": 0, "cpus_per_trial": 1.0,
            "order_start": 0, "fault": ""}
    sampler = functools.partial(searcher_module.proposal_sampler, "tpe", 0, space)
    return searcher_module.StudySearcher(study, space, 1e12, True, trials, [], {}, base, 1, 0,
                                           sampler)


def test_the_searcher_proposes_every_valid_design_then_stops(sparse):

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _searcher(sparse, trials=10)
    proposed = []
    for i in range(5):
        cfg = searcher.suggest(f"t{i}")
        if cfg is None:  # finished
            break
        proposed.append(Arch.from_row(cfg["arch"]).key())
    # All four valid designs, each once; then the space is exhausted, not the patience.
    assert sorted(proposed) == sorted(brute_force(sparse)) and len(proposed) == 4
    assert searcher.suggest("t5") is None  # finished


def test_a_space_without_valid_designs_names_the_dimension(tmp_path, capsys):
    # Width and expansion are fine for some pairs; no groups value fits any design.
    dims = dict(sparse_dims(RARE[1:]), width=[64, 100], expansion=[0.3, 4])
    path = write_space(tmp_path, dims, "nogroups")
    assert main(["space", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "no value of groups" in err and "divisor 64" in err, err
    assert "expansion=0.3" not in err  # the first combination's problem is not the reason

    dims = dict(sparse_dims([1]), width=[100, 13], expansion=[0.3, 0.7])
    path = write_space(tmp_path, dims, "nochannels")
    assert main(["space", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "no width with any expansion" in err, err


def test_too_many_tied_combinations_are_refused_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(space_module, "TIED_LIMIT", 10)
    dims = dict(sparse_dims([1]), width=[64, 96, 128], expansion=[0.25, 0.5, 4, 2])
    path = write_space(tmp_path, dims, "wide")
    assert main(["space", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "3 width x 4 expansion" in err and "12 combinations" in err
