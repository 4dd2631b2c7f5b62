"""Run names stay inside the results folder; image folders do not follow symlinks out."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas_convnext.cli import main
from nas_convnext.results import check_run_name
from tests.training.test_data import make_split_folder, save_png, solid

BAD_NAMES = ["../x", "{abs}", "a/b", "..", "", ".hidden", "a\x00b", "a\nb", "x/../../y",
             "..x", "-x"]


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("bad", BAD_NAMES + [
    "x\n"])
def test_bad_run_names_are_refused_and_nothing_is_written(tmp_path, capsys, bad):
    box = tmp_path / "box"
    results = box / "results"
    results.mkdir(parents=True)
    name = bad.format(abs=box / "abs" / "x")
    before = _tree(box)
    # If the name were accepted, the search would stop at the missing data folder, before
    # Ray or any file: the message tells which check refused it.
    code = main(["search", "--space", "small", "--budget", "4.5G", "--trials", "1",
                 "--proxy", "cpu-tiny", "--dataset", "idx", "--data-dir", str(tmp_path / "none"),
                 f"--name={name}", "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "run name" in err and "not allowed" in err, err
    assert _tree(box) == before
    assert not (box / "abs").exists()


def test_check_run_name_accepts_plain_names():
    for ok in ("x", "run-1", "2024.05_small", "A" * 128):
        assert check_run_name(ok) == ok
    with pytest.raises(ValueError):
        check_run_name("A" * 129)


@pytest.mark.parametrize("layout", ["class-of-outside-links", "split-dir-outside"])
def test_cli_train_does_not_follow_symlinks_out_of_the_data_folder(tmp_path, capsys,
                                                                   monkeypatch, layout):
    monkeypatch.setenv("NAS_CONVNEXT_CACHE", str(tmp_path / "cache"))
    secret = save_png(tmp_path / "secret" / "outside.png", solid((1, 2, 3)))
    if layout == "class-of-outside-links":
        root = tmp_path / "imgs"
        make_split_folder(root)
        (root / "train" / "yak").mkdir()
        (root / "train" / "yak" / "l.png").symlink_to(secret)
        named = root / "train" / "yak"
    else:
        make_split_folder(tmp_path / "real")
        root = tmp_path / "imgs"
        root.mkdir()
        (root / "train").symlink_to(tmp_path / "real" / "train", target_is_directory=True)
        (root / "val").symlink_to(tmp_path / "real" / "val", target_is_directory=True)
        named = root / "train"
    code = main(["train", "convnext_t", "--proxy", "cpu-tiny", "--dataset", "imagefolder",
                 "--data-dir", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "outside" in lines[0] and str(named) in lines[0], err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
