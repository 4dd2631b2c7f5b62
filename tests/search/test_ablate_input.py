"""`nas-convnext ablate`: bad input exits 2 with one line, before anything is made."""
from __future__ import annotations

import pytest

from nas_convnext.cli import ablation_plan, main


@pytest.fixture
def widths_space(tmp_path_factory):
    """A space whose only dimension is the width, 96 (the base's) or 128 (over 3.1 GFLOPs)."""
    path = tmp_path_factory.mktemp("space") / "widths.yaml"
    path.write_text("name: widths\ndescription: width only\ndimensions:\n"
                    "  stem: patchify\n  depths: [[2, 2, 6, 2]]\n  width: [96, 128]\n"
                    "  expansion: 4\n  groups: depthwise\n  kernel: 7\n  spatial_conv: first\n"
                    "  act: gelu\n  activations: single\n  norm: ln\n  norms: single\n"
                    "  downsample: separate\n  layer_scale: 1.0e-6\n")
    return str(path)


@pytest.mark.parametrize("argv, words", [
    (["nope"], "design 'nope' is neither a preset"),
    (["--space", "small"], "space 'small' has no depths=3,3,9,3"),
    (["resnet50", "--space", "small"], "space 'small' has no stem=resnet"),
    (["--seeds", "1"], "--seeds: '1': a paired interval needs at least 2 seeds"),
    (["convnext_t", "depths=2,2,6,2", "--space", "small", "--seeds", "0"], "--seeds: '0'"),
    (["--seeds", "-0"], "--seeds: '-0'"),
    (["--seeds", "two"], "'two' is not an integer"),
    (["--seeds", str(10**30)], "at most 1000"),
    (["--budget", "1"], "--budget 1 FLOPs (0.000 GFLOPs): even the narrowest width"),
    (["--seed", str(2**32 - 2), "--seeds", "3"], "the last seed would pass"),
    (["--budget", "3.1GFLOPs", "--space", "{widths}", "convnext_t", "depths=2,2,6,2"],
     "gives no variant of convnext_t to compare: every change was skipped (width=128: over"),
    (["--resume", "results/x", "--seeds", "4"], "drop --seeds"),
])
def test_bad_input_exits_2_with_one_line(argv, words, capsys, tmp_path, widths_space):
    argv = [a.format(widths=widths_space) for a in argv]
    rc = main(["ablate", *argv, "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []          # no run folder was made


def test_the_plan_names_every_seed_and_variant():
    rec = ablation_plan("convnext_t", ["depths=2,2,6,2"], "small", None, 4, 10)
    assert rec["seeds"] == [10, 11, 12, 13]
    assert rec["space"] == "small" and rec["budget"] is None
    ids = [v["id"] for v in rec["variants"]]
    assert ids[0] == "base" and len(ids) == len(set(ids)) == 5
    assert {v["dimension"] for v in rec["variants"][1:]} == {"depths", "kernel",
                                                              "spatial_conv", "norm"}


def test_resuming_a_run_that_is_not_an_ablation_says_how(capsys, tmp_path):
    from nas_convnext.results import write_run_json

    run = tmp_path / "a-search"
    run.mkdir()
    write_run_json(run, {"kind": "search", "config": {"space": "small"}})
    before = (run / "run.json").read_bytes()
    assert main(["ablate", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"this is a search run, not an ablation; resume it with nas-convnext search " \
           f"--resume {run}" in err and len(err.strip().splitlines()) == 1
    assert (run / "run.json").read_bytes() == before and sorted(p.name for p in run.iterdir()) \
        == ["run.json"]


def test_the_plan_refuses_one_seed_from_python_too():
    with pytest.raises(ValueError, match="--seeds 1: a paired interval needs at least 2"):
        ablation_plan("convnext_t", [], "convnext", None, 1, 0)
