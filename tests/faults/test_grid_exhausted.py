"""A grid search that asks for more designs than its grid holds: it ends cleanly when the grid
is done, and says so.

Optuna's GridSampler calls `study.stop()` once its grid is exhausted, which raises outside
`Study.optimize`; the search asks and tells, so before the fix the last `tell` ended the search
in a traceback. And with its seed drawn per trial, the grid's points came from different
orders: some were proposed twice and some never.
"""
from __future__ import annotations

import functools
import itertools
import warnings

import optuna
import pytest
import yaml

from nas_convnext.design.arch import Arch
from nas_convnext.cli import main
from nas_convnext.training.proxy import get_proxy
from nas_convnext.results import read_table
from nas_convnext.search.resume import work_left
from nas_convnext.search.searcher import StudySearcher, make_sampler, proposal_sampler
from nas_convnext.design.space import load_space

from .conftest import SMALL


def _space_file(tmp_path, dims: dict) -> str:
    """small.yaml with only `dims` left open (every other field fixed at its first value)."""
    data = yaml.safe_load(open(load_space("small").source))
    fixed = {k: (v[0] if isinstance(v, list) else v) for k, v in data["dimensions"].items()}
    data["dimensions"] = {**fixed, **dims}
    data["name"] = "tiny-grid"
    path = tmp_path / "tiny-grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _drive(space_file: str, storage: str, trials: int, seed: int) -> tuple[list[str], object]:
    """Drive the searcher as Ray Tune would, one trial at a time; returns the trained designs
    and the searcher."""
    space = load_space(space_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(study_name="search", storage=storage,
                                    sampler=make_sampler("grid", seed, space),
                                    directions=["maximize", "minimize"], load_if_exists=True)
    pending, done, proposed = work_left(study, [], [])
    sampler = functools.partial(proposal_sampler, "grid", seed, space)
    searcher = StudySearcher(study, space, 4.5e9, True, trials, pending, done,
                                 {"proxy": get_proxy("cpu-tiny").to_dict(), "seed": seed,
                                  "order_start": 0}, 1, proposed, sampler,
                                 grid_size=space.size)
    trained = []
    for n in itertools.count():
        cfg = searcher.suggest(f"t{n}")
        if cfg is None:  # finished
            break
        trained.append(Arch.from_row(cfg["arch"]).key())
        searcher.on_trial_complete(f"t{n}", {"top1": 0.5, "epoch": 1})
    return trained, searcher


@pytest.mark.parametrize("seed", [0, 7])
def test_the_grid_is_proposed_once_each_then_the_search_ends(tmp_path, seed):
    space_file = _space_file(tmp_path, {"kernel": [3, 5, 7], "norm": ["bn", "ln"],
                                        "spatial_conv": ["middle", "first"]})
    space = load_space(space_file)
    trained, searcher = _drive(space_file, f"sqlite:///{tmp_path / 's.db'}", trials=20,
                               seed=seed)
    # Every point of the 12-point grid exactly once, then no more proposals, no traceback.
    assert sorted(trained) == sorted(a.key() for a in space.enumerate())
    assert searcher.ran_out() and not searcher.work_left()
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert len(study.trials) == space.size  # nothing asked beyond the grid
    assert {t.state.name for t in study.trials} == {"COMPLETE"}


def test_a_grid_smaller_than_the_trials_asked_ends_cleanly(ray_session, tmp_path, capsys):
    space_file = _space_file(tmp_path, {"kernel": [3, 7]})  # a grid of 2 designs
    code = main(["search", "--space", space_file, "--sampler", "grid", "--trials", "3",
                 "--proxy", SMALL["proxy"], "--dataset", "synthetic", "--scheduler", "none", "--budget", "4.5G",
                 "--name", "grid", "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    df = read_table(tmp_path / "grid")
    assert len(df) == 4 and (df["status"] == "completed").all()  # 2 references + the grid
    searched = df[df["reference"] == ""]
    assert sorted(searched["kernel"]) == [3, 7]
    assert ("note: the grid of space 'tiny-grid' (2 points) is done: 2 searched design(s) "
            "trained, fewer than the 3 asked (--trials)") in out
