"""Resources a search asks for that are not there: refused before the search starts, in one line."""
from __future__ import annotations

import socket

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address,message", [
    ("foo", "expected auto, HOST:PORT or ray://HOST:PORT"),
    ("127.0.0.1:99999", "expected auto, HOST:PORT or ray://HOST:PORT"),
    ("127.0.0.1:{port}", "nothing answers at 127.0.0.1:{port} (Connection refused)"),
    ("ray://127.0.0.1:{port}", "nothing answers at 127.0.0.1:{port} (Connection refused)"),
])
def test_a_cluster_that_is_not_there_is_one_line_at_once(tmp_path, capsys, address, message):
    port = _free_port()
    address, message = address.format(port=port), message.format(port=port)
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--budget", "4.5G",
                 "--name", "far", "--results-dir", str(tmp_path), "--address", address])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("nas-convnext: error: --address ")
    assert address in lines[0] and message in lines[0]
    assert not (tmp_path / "far").exists()
