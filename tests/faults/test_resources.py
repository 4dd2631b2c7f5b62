"""A trial asking for more CPUs or GPUs than the cluster has is refused before the search starts."""
from __future__ import annotations

import pytest

from nas_convnext.cli import main


@pytest.mark.parametrize("option,value,message", [
    ("--gpus-per-trial", "2", "--gpus-per-trial 2 is more than the cluster's 0 GPUs"),
    ("--cpus-per-trial", "64", "--cpus-per-trial 64 is more than the cluster's 2 CPUs"),
])
def test_more_than_the_cluster_has_is_refused_first(ray_session, tmp_path, capsys, option, value,
                                                   message):
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--budget", "4.5G",
                 "--name", "big", "--results-dir", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip() == f"nas-convnext: error: {message}"
    assert not (tmp_path / "big").exists()
