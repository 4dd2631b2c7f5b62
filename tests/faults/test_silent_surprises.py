"""Input that used to be taken silently for something else: stray IDX labels, empty paths.

An IDX label file holds bare bytes, so one label of 255 in a 10-class set used to train a
256-class head without a word; and an empty path is `.`, so `analyze RUN --out ""` wrote the
report into whatever folder the command was started from. Both are refused in one line.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from nas_convnext.cli import main
from nas_convnext.training.data import load_dataset
from tests.report.test_report import make_run, small_rows
from tests.training.test_data import write_idx


def idx_dir(root, train_labels, val_labels):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    train_labels, val_labels = np.array(train_labels), np.array(val_labels)
    write_idx(root / "train-images-idx3-ubyte", rng.integers(0, 256, (len(train_labels), 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte", train_labels)
    write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (len(val_labels), 28, 28)))
    write_idx(root / "t10k-labels-idx1-ubyte", val_labels)
    return root


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_one_stray_idx_label_is_refused_naming_the_file(tmp_path, capsys):
    labels = [i % 10 for i in range(40)]
    labels[17] = 255
    root = idx_dir(tmp_path / "digits", labels, list(range(10)))
    code = main(["train", "resnet50", "--proxy", "cpu-tiny", "--dataset", "idx",
                 "--data-dir", str(root)])
    line = _one_line(capsys)
    assert code == 2
    assert line == (f"nas-convnext: error: '{root / 'train-labels-idx1-ubyte'}' has labels "
                    "0-9, 255: they skip 10-254, so a 256-class network would be trained with "
                    "245 class(es) that have no image (label 255 is on 1 image(s)); IDX labels "
                    "must be 0..K-1 with every class present: relabel the classes or remove the "
                    "stray images")


def test_labels_that_skip_values_are_refused(tmp_path):
    root = idx_dir(tmp_path / "d", [0, 1, 2, 7, 0, 1, 2, 7], [0, 7])
    with pytest.raises(ValueError) as err:
        load_dataset("idx", root)
    msg = str(err.value)
    assert msg.startswith(f"'{root / 'train-labels-idx1-ubyte'}' has labels 0-2, 7: they skip 3-6,"
                          " so a 8-class network"), msg


def test_a_validation_label_never_trained_on_is_refused(tmp_path):
    root = idx_dir(tmp_path / "d", [0, 1, 2, 0, 1, 2], [0, 1, 9])
    with pytest.raises(ValueError) as err:
        load_dataset("idx", root)
    assert str(err.value).startswith(
        f"'{root / 't10k-labels-idx1-ubyte'}' has label(s) 9 that no training image in "
        f"'{root / 'train-labels-idx1-ubyte'}' has (training labels: 0-2)"), str(err.value)


def test_contiguous_labels_give_their_class_count(tmp_path):
    root = idx_dir(tmp_path / "d", [3, 0, 1, 2, 3, 0], [2, 3])
    ds = load_dataset("idx", root)
    assert ds.num_classes == 4 and ds.train_y.tolist() == [3, 0, 1, 2, 3, 0]


def test_analyze_out_empty_writes_nothing_in_the_current_folder(tmp_path, capsys, monkeypatch):
    run, _ = make_run(tmp_path, small_rows())
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    code = main(["analyze", str(run), "--format", "csv", "--out", ""])
    line = _one_line(capsys)
    assert code == 2 and line.startswith("nas-convnext analyze: argument --out: the path '' is "
                                         "empty"), line
    assert os.listdir(here) == []


@pytest.mark.parametrize("argv,label", [
    (["train", "resnet50", "--out", ""], "--out"),
    (["train", "resnet50", "--dataset", "idx", "--data-dir", ""], "--data-dir"),
    (["search", "--budget", "4G", "--storage-path", ""], "--storage-path"),
    (["search", "--resume", ""], "--resume"),
    (["search", "--budget", "4G", "--results-dir", " "], "--results-dir"),
    (["roadmap", "--train", "--data-dir", ""], "--data-dir"),
    (["analyze", ""], "RUN_DIR"),
])
def test_every_empty_path_option_is_refused(tmp_path, capsys, monkeypatch, argv, label):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    line = _one_line(capsys)
    assert code == 2 and f": argument {label}: the path " in line and "is empty" in line, line
    assert os.listdir(tmp_path) == []
