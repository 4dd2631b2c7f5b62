"""Shared for the fault tests: one small finished run to damage copies of."""
from __future__ import annotations

import pytest

from nas_convnext.search import SearchConfig, run_search

SMALL = dict(space="small", proxy="cpu-tiny", budget=4.5e9, dataset="synthetic")


def small_config(tmp_path, name, **kw):
    return SearchConfig(**{**SMALL, "trials": 1, "concurrency": 2, "results_dir": str(tmp_path),
                           "name": name, **kw})


@pytest.fixture(scope="package")
def finished_run(ray_session, tmp_path_factory):
    """A finished run: both references and one searched design (three rows)."""
    out = run_search(small_config(tmp_path_factory.mktemp("runs"), "base"))
    assert (out.table["status"] == "completed").all() and len(out.table) == 3
    return out.run_dir
