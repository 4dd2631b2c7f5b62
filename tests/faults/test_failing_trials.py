"""A trial that raises is an error, one whose loss turns NaN is diverged; the rest go on."""
from __future__ import annotations

import math

from nas_convnext.search import run_search

from .conftest import small_config


def test_a_diverging_trial_is_recorded_and_the_search_goes_on(ray_session, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_FAULT", "nan:2")
    df = run_search(small_config(tmp_path, "nan", trials=1, epochs=2,
                                 scheduler="none")).table
    assert len(df) == 3 and df["trial_id"].is_unique
    bad = df[df["order"] == 2].iloc[0]
    assert bad["status"] == "diverged"
    assert bad["epochs"] == 1
    assert "loss became nan in epoch 2" in bad["error"]
    assert math.isfinite(bad["top1"]) and 0 <= bad["top1"] <= 1  # epoch 1's top-1
    others = df[df["order"] != 2]
    assert (others["status"] == "completed").all() and (others["epochs"] == 2).all()


def test_a_raising_trial_is_recorded_and_the_search_goes_on(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_FAULT", "raise:3")
    df = run_search(small_config(tmp_path, "fault", trials=3)).table
    assert len(df) == 5 and df["trial_id"].is_unique
    bad = df[df["order"] == 3]
    assert bad["status"].tolist() == ["error"]
    assert "injected failure in trial 3" in bad["error"].iloc[0]
    assert (df[df["order"] != 3]["status"] == "completed").all()
