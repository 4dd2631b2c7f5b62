"""Resources a search asks for that are not there: refused before the search starts, in one line."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from nas_convnext.cli import main


@pytest.mark.parametrize("option,value,message", [
    ("--gpus-per-trial", "2", "--gpus-per-trial 2 is more than the cluster's 0 GPUs"),
    ("--cpus-per-trial", "64", "--cpus-per-trial 64 is more than the cluster's 2 CPUs"),
])
def test_more_than_the_cluster_has_is_refused_first(ray_session, tmp_path, capsys, option, value,
                                                   message):
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G",
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
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G",
                 "--name", "far", "--results-dir", str(tmp_path), "--address", address])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("nas-convnext: error: --address ")
    assert address in lines[0] and message in lines[0]
    assert not (tmp_path / "far").exists()


# ----- values Ray cannot use: refused before Ray starts and before the run folder exists -----
# The message names the number as typed: the CLI checks it before it is a float.
@pytest.mark.parametrize("option,value,message", [
    ("--cpus-per-trial", "0.00001", "--cpus-per-trial: '0.00001': Ray counts resources in steps "
                                    "of 0.0001"),
    ("--cpus-per-trial", "0.00015", "--cpus-per-trial: '0.00015': Ray counts resources in steps"),
    ("--gpus-per-trial", "0.00001", "--gpus-per-trial: '0.00001': Ray counts resources in steps"),
    ("--gpus-per-trial", "1.5", "--gpus-per-trial: '1.5': a trial takes a fraction of one GPU or "
                                "whole GPUs"),
    # found by the bad-input sweep: Ray's step count of this was infinite (OverflowError)
    ("--cpus-per-trial", "1.797693134862316e+304", "--cpus-per-trial: '1.797693134862316e+304': "
                                                  "expected at most 1,000,000"),
    ("--gpus-per-trial", "1e300", "--gpus-per-trial: '1e300': expected at most 1,000,000"),
    # found by the sweep too: as a float this reads 1.0000000000000002e+16, not as typed
    ("--cpus-per-trial", "10000000000000002", "--cpus-per-trial: '10000000000000002': expected "
                                              "at most 1,000,000"),
])
def test_resources_ray_cannot_count_are_refused_first(tmp_path, capsys, monkeypatch, option,
                                                      value, message):
    import nas_convnext.search.raytune as raytune_module

    def no_ray(cfg):
        raise AssertionError("Ray was started for a value Ray cannot use")

    monkeypatch.setattr(raytune_module, "init_ray", no_ray)
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G",
                 "--name", "tiny", "--results-dir", str(tmp_path), option, value])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert os.listdir(tmp_path) == []


def test_ray_address_in_the_environment_is_checked_like_address(tmp_path):
    """RAY_ADDRESS where nothing answers: one line naming the variable, at once (Ray alone
    would wait for minutes). Run in its own process: the suite's Ray must not be joined."""
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "NAS_CONVNEXT_FAULT"},
           "RAY_ADDRESS": f"127.0.0.1:{port}"}
    p = subprocess.run([sys.executable, "-m", "nas_convnext.cli", "search", "--space", "small",
                        "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G", "--name", "env",
                        "--results-dir", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert lines == [f"nas-convnext: error: RAY_ADDRESS=127.0.0.1:{port} (from the environment): "
                     f"nothing answers at 127.0.0.1:{port} (Connection refused); start the "
                     f"cluster (`ray start --head`), or unset RAY_ADDRESS to run on this machine "
                     f"alone"], p.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_storage_path_that_is_not_a_folder_is_refused_first(tmp_path, capsys, monkeypatch, where):
    import nas_convnext.search.raytune as raytune_module

    def no_ray(cfg):
        raise AssertionError("Ray was started with a --storage-path it cannot use")

    monkeypatch.setattr(raytune_module, "init_ray", no_ray)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    storage = a_file if where == "file" else a_file / "ray-runs"
    results = tmp_path / "results"
    code = main(["search", "--space", "small", "--proxy", "cpu-tiny", "--dataset", "synthetic", "--budget", "4.5G",
                 "--name", "st", "--results-dir", str(results), "--storage-path", str(storage)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"nas-convnext: error: --storage-path {storage}: ")
    said = "is a file, not a folder" if where == "file" else f"{a_file} is a file, not a folder"
    assert lines[0].startswith(f"nas-convnext: error: --storage-path {storage}: {said}"), lines
    assert not results.exists() and a_file.read_text() == "mine\n"


@pytest.mark.parametrize("field,value,message", [
    ("cpus_per_trial", 1e-05, "--cpus-per-trial 1e-05: Ray counts resources in steps of 0.0001"),
    ("cpus_per_trial", 0.0, "--cpus-per-trial 0.0: expected a positive number"),
    ("gpus_per_trial", 1.5, "--gpus-per-trial 1.5: a trial takes a fraction of one GPU"),
    ("gpus_per_trial", 2e6, "--gpus-per-trial 2000000.0: expected at most 1,000,000"),
])
def test_settings_made_in_code_or_read_from_run_json_follow_the_same_rules(field, value,
                                                                            message):
    from nas_convnext.search.config import SearchConfig

    with pytest.raises(ValueError) as exc:
        SearchConfig(budget=4.5e9, **{field: value})
    assert str(exc.value).startswith(message), exc.value
    SearchConfig(budget=4.5e9, **{field: 0.25})   # a quarter is one Ray can count
