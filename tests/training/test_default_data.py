"""Real images by default: `--dataset` names, the driver's one resolution, where data came from."""
from __future__ import annotations

import json
import shutil

import pytest

from nas_convnext.cli import main
from nas_convnext.search.config import SearchConfig
from nas_convnext.training.data.named import EMBEDDED_DIR
from nas_convnext.training.trial import DATASET_CHOICES, DEFAULT_DATASET, resolve_data


@pytest.fixture
def cached_fashion(tmp_path, monkeypatch):
    """A cache holding Fashion-MNIST (the shipped subset's files): found before Debian's copy,
    a download or the embedded files, so the test needs no network and knows the source."""
    cache = tmp_path / "cache"
    shutil.copytree(EMBEDDED_DIR, cache / "fashion-mnist")
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(cache))
    return cache / "fashion-mnist"


def test_the_default_is_real_images_for_every_command():
    assert DEFAULT_DATASET == "fashion-mnist" == SearchConfig(budget=1e9).dataset
    from nas_convnext.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for command in ("search", "train", "roadmap"):
        dataset = next(a for a in commands[command]._actions if a.dest == "dataset")
        assert dataset.default == "fashion-mnist", command


def test_resolve_data_says_where_the_images_come_from(cached_fashion, tmp_path):
    src = resolve_data("fashion-mnist", None)
    assert (src.dataset, src.kind, src.path) == ("fashion-mnist", "idx", str(cached_fashion))
    assert src.source == f"cache {cached_fashion}"
    synthetic = resolve_data("synthetic", None)
    assert (synthetic.kind, synthetic.path) == ("synthetic", None)
    assert "generated" in synthetic.source
    folder = resolve_data("idx", str(tmp_path))
    assert (folder.kind, folder.path, folder.source) == ("idx", str(tmp_path), f"--data-dir {tmp_path}")


@pytest.mark.parametrize("dataset,data_dir,needle", [
    ("fashion_mnist", None, "--dataset 'fashion_mnist': expected one of " + ", ".join(DATASET_CHOICES)),
    ("imagefolder", None, "--data-dir is required for dataset 'imagefolder'"),
    ("fashion-mnist", "/", "--data-dir '/' does not hold dataset 'fashion-mnist'"),
])
def test_resolve_data_refuses_in_one_line(dataset, data_dir, needle):
    with pytest.raises(ValueError) as err:
        resolve_data(dataset, data_dir)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_search_config_refuses_an_unknown_dataset():
    with pytest.raises(ValueError, match="--dataset 'svhn': expected one of fashion-mnist"):
        SearchConfig(budget=1e9, dataset="svhn")


def test_train_without_dataset_trains_on_fashion_mnist(cached_fashion, capsys):
    code = main(["train", "resnet50", "--proxy", "cpu-tiny", "--threads", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["dataset"] == "fashion-mnist"
    assert data["dataset_source"] == f"cache {cached_fashion}"
    assert f"of fashion-mnist (cache {cached_fashion})" in err
