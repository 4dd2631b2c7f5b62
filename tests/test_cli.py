"""The command line: outputs people read and JSON that scripts parse; one-line errors, exit 2."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nas_convnext import complexity, presets
from nas_convnext.cli import build_parser, main
from nas_convnext.design.roadmap import roadmap_steps

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_every_name_with_gflops(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    for name in ["resnet50", "resnext50_32x4d", "convnext_t", "convnext_s", "convnext_b",
                 "roadmap/00-resnet50", "roadmap/16-separate-downsampling"]:
        assert name in out
    assert f"{complexity(presets()['convnext_s']).gflops:.3f}" in out
    assert "one multiply-add = one FLOP" in out


def test_flops_json_with_overrides(capsys):
    code, out, _ = run(capsys, "flops", "convnext_t", "kernel=5", "depths=2,2,6,2", "--json")
    assert code == 0
    data = json.loads(out)
    import dataclasses
    want = complexity(dataclasses.replace(presets()["convnext_t"], kernel=5, depths=(2, 2, 6, 2)))
    assert (data["flops"], data["params"], data["acts"]) == (want.flops, want.params, want.acts)
    assert data["kernel"] == 5 and data["depths"] == [2, 2, 6, 2]
    assert "multiply-add" in data["convention"]


def test_flops_check_runs_fvcore(capsys):
    code, out, _ = run(capsys, "flops", "roadmap/07-move-up-dwconv", "--check", "--json",
                       "--resolution", "64")
    data = json.loads(out)
    assert code == 0 and data["match"] is True
    assert data["fvcore"]["flops"] == data["flops"]


def test_roadmap_flops_only_json(capsys):
    code, out, _ = run(capsys, "roadmap", "--flops-only", "--json")
    rows = json.loads(out)
    steps = roadmap_steps()
    assert code == 0 and len(rows) == 17
    assert [r["name"] for r in rows] == [s.name for s in steps]
    assert rows[4]["paper_gflops"] == 2.35
    assert rows[16]["flops"] == complexity(presets()["convnext_t"]).flops
    code, text, _ = run(capsys, "roadmap", "--flops-only")
    assert "06-inverted-bottleneck" in text and "misprint" in text


def test_space_json(capsys):
    code, out, _ = run(capsys, "space", "small", "--budget", "2G", "--json")
    info = json.loads(out)
    assert code == 0 and info["size"] == 16 and info["method"] == "exhaustive"
    assert 0 < info["within_budget"] < 16


@pytest.mark.parametrize("argv,needle", [
    (["flops", "convnext_t", "kernel=4"], "kernel=4"),
    (["flops", "convnext_t", "groups=5"], "groups=5"),
    (["flops", "nonsense"], "'nonsense'"),
    (["flops", "convnext_t", "colour=red"], "'colour'"),
    (["space", "small", "--budget", "4.5 parsecs"], "'4.5 parsecs'"),
    (["space", "small", "--budget", ""], "''"),
    (["space", "missing.yaml"], "missing.yaml"),
    (["flops", "convnext_t", "--resolution", "8"], "resolution 8"),
    (["frobnicate"], "frobnicate"),
])
def test_user_errors_are_one_line_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_console_script_runs_without_traceback(tmp_path):
    # The installed `nas-convnext` script, never a `python -m` stand-in: a broken or missing
    # entry point must fail here.
    exe = Path(sys.executable).with_name("nas-convnext")
    assert exe.is_file() and os.access(exe, os.X_OK), (
        f"no console script {exe} next to {sys.executable}: is the package installed "
        f"(pip install -e .)?")
    scripts = importlib.metadata.entry_points(group="console_scripts", name="nas-convnext")
    assert [ep.value for ep in scripts] == ["nas_convnext.cli:main"]
    cmd = [str(exe)]
    ok = subprocess.run(cmd + ["flops", "resnet50", "--json"], capture_output=True, text=True,
                        cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert ok.returncode == 0 and json.loads(ok.stdout)["params"] == 25_557_032
    bad = subprocess.run(cmd + ["space", "small", "--budget", "abc"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def _parsers(parser, path=("nas-convnext",)):
    """Every (command path, parser) of the CLI, the top level included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _default_words(default):
    """How a help text may spell a default: its value, or on/off for a switch."""
    if isinstance(default, bool):
        return {str(default), "on" if default else "off"}
    if isinstance(default, (list, tuple)):
        return {", ".join(map(str, default)), " ".join(map(str, default))}
    return {str(default)}


def test_every_option_of_every_command_says_what_it_does_and_its_default():
    missing = []
    for path, parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            where = f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
            if action.help == argparse.SUPPRESS:
                continue  # hidden on purpose (e.g. --results-dir, for tests)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    if not (choice.help or "").strip():
                        missing.append(f"{' '.join(path)} {choice.dest}: no help")
                continue
            text = formatter._expand_help(action) if action.help else ""
            if not text.strip():
                missing.append(f"{where}: no help")
                continue
            default = action.default
            plain_flag = isinstance(action, (argparse._StoreTrueAction,
                                             argparse._StoreFalseAction))
            if default is None or default == argparse.SUPPRESS or plain_flag:
                continue
            if "default" not in text or not any(w in text for w in _default_words(default)):
                missing.append(f"{where}: default {default!r} not in {text!r}")
    assert not missing, "\n".join(missing)


def test_search_help_shows_the_options_the_issue_names():
    search = build_parser()._subparsers._group_actions[0].choices["search"]
    options = search.format_help().split("\noptions:\n", 1)[1]
    # one entry per option: its line "  --name ..." and the indented lines below it
    entries = {block.split()[0].rstrip(","): " ".join(block.split())
               for block in re.split(r"\n(?=  -)", options) if block.strip()}
    for option, words in (("--sampler", "(default: tpe)"), ("--scheduler", "(default: mo-asha)"),
                          ("--concurrency", "trials trained at once"),
                          ("--cpus-per-trial", "(default: 1.0)"),
                          ("--gpus-per-trial", "(default: 0.0)"), ("--seed", "(default: 0)"),
                          ("--dataset", "(default: fashion-mnist)"),
                          ("--data-dir", "(default: look it up by name)")):
        assert words in entries.get(option, ""), (option, entries.get(option))


def test_analyze_needs_no_posix_only_module(tmp_path):
    """`fcntl` exists on POSIX only: the lock of a search needs it, `analyze` must not (so it
    runs on Windows). A process without it imports the command and writes a report."""
    from tests.report.test_report import make_run, small_rows

    run, _ = make_run(tmp_path, small_rows())
    code = ("import sys\n"
            "sys.modules['fcntl'] = None  # as on Windows: importing it fails\n"
            "from nas_convnext.cli import main\n"
            f"sys.exit(main(['analyze', {str(run)!r}, '--format', 'md', '--format', 'json']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (run / "report.md").is_file() and (run / "analysis.json").is_file()
    assert "fcntl" not in proc.stderr


def test_a_resumed_roadmap_run_gets_the_roadmap_report(tmp_path, monkeypatch, capsys):
    """The run's kind chooses its report, also when `search --resume` finishes the run."""
    import nas_convnext.search.run as search_run
    from nas_convnext.results import write_table
    from nas_convnext.search.run import SearchOutcome, roadmap_candidates

    run = tmp_path / "rm"
    run.mkdir()
    rows = [{**c.arch.to_row(), "reference": c.reference, "status": "completed",
             "top1": 0.3 + 0.01 * i, "flops": c.flops, "order": i, "trial_id": f"t{i}"}
            for i, c in enumerate(roadmap_candidates())]
    table = write_table(run, rows)

    def resumed(cfg, resume_dir=None, **kw):
        assert resume_dir == str(run)
        return SearchOutcome(run, table, False, f"nas-convnext search --resume {run}",
                             kind="roadmap")

    monkeypatch.setattr(search_run, "run_search", resumed)
    assert main(["search", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert (run / "roadmap.md").is_file() and (run / "roadmap.csv").is_file()
    assert not (run / "report.md").exists()
    assert "agreement with the paper's ranking over 17 completed steps" in out
    steps = [line.split()[1] for line in out.splitlines()[2:19]]
    assert steps == [s.name.split("/", 1)[1] for s in roadmap_steps()]
