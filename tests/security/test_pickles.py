"""CIFAR batches are pickles: a crafted one is refused, naming the file, and runs nothing."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from nas_convnext.cli import main
from nas_convnext.training.data import load_dataset
from tests.training.test_data import make_cifar10


class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('os').system('touch {self.marker}')",))


def payload(kind: str, marker: Path):
    if kind == "os.system":
        return _System(marker)
    if kind == "builtins.eval":
        return _Eval(marker)
    # A well-formed batch with the call hidden inside the labels.
    return {b"batch_label": b"x", b"data": np.zeros((2, 3072), np.uint8),
            b"labels": [0, _System(marker)]}


KINDS = ["os.system", "builtins.eval", "nested"]


def crafted_cifar(tmp_path: Path, kind: str, batch: str = "data_batch_3"):
    """A CIFAR-10 folder whose `batch` is a crafted pickle: (folder, that file, marker)."""
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    marker = tmp_path / "pwned"
    bad = folder / batch
    with open(bad, "wb") as fh:
        pickle.dump(payload(kind, marker), fh, protocol=3)
    return folder, bad, marker


@pytest.mark.parametrize("kind", KINDS)
def test_the_payload_is_real(tmp_path, kind):
    # A plain pickle.load of the same file would run the command.
    folder, bad, _ = crafted_cifar(tmp_path, kind)
    other = tmp_path / "plain-pickle-ran-it"
    with open(bad, "wb") as fh:
        pickle.dump(payload(kind, other), fh, protocol=3)
    with open(bad, "rb") as fh:
        pickle.load(fh)
    assert other.exists()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["folder", "parent"])
def test_load_dataset_refuses_a_crafted_batch(tmp_path, kind, where):
    folder, bad, marker = crafted_cifar(tmp_path, kind)
    with pytest.raises(ValueError, match="refusing to load") as err:
        load_dataset("cifar10", folder if where == "folder" else tmp_path)
    assert str(bad) in str(err.value)
    assert kind.split(".")[-1].replace("nested", "system") in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_cli_train_refuses_a_crafted_batch(tmp_path, kind, capsys, monkeypatch):
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(tmp_path / "cache"))
    folder, bad, marker = crafted_cifar(tmp_path, kind, batch="test_batch")
    code = main(["train", "convnext_t", "--proxy", "cpu-tiny", "--dataset", "cifar10",
                 "--data-dir", str(folder)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], captured.err
    assert not marker.exists()
    assert "top1" not in captured.out  # nothing was trained
