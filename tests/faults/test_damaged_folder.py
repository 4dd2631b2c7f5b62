"""A damaged run folder: one line naming the file and what to do, exit 2, nothing rewritten."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from nas_convnext.cli import main
from nas_convnext.results import COLUMNS, read_table
from nas_convnext.search import run_search

from .conftest import small_config


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _truncate(run):
    data = (run / "trials.parquet").read_bytes()
    (run / "trials.parquet").write_bytes(data[: len(data) // 2])


def _drop_run_json(run):
    (run / "run.json").unlink()


def _drop_column(run):
    df = pd.read_parquet(run / "trials.parquet").drop(columns=["top1", "status"])
    df.to_parquet(run / "trials.parquet", index=False)


def _garble_run_json(run):
    (run / "run.json").write_text('{"config": {"budget": 4.5e9,')


DAMAGE = {
    # name: (damage, the file named, words of the message, does analyze refuse too?)
    "truncated-table": (_truncate, "trials.parquet", "damaged", True),
    "missing-run-json": (_drop_run_json, "run.json", "missing", False),
    "missing-column": (_drop_column, "trials.parquet", "['status', 'top1']", True),
    "run-json-not-json": (_garble_run_json, "run.json", "damaged", False),
}


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_folder_is_refused_in_one_line_and_left_alone(finished_run, tmp_path, capsys,
                                                              case):
    damage, named, words, analyze_refuses = DAMAGE[case]
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "ray", ignore_errors=True)
    damage(run)
    before = _snapshot(run)

    code, _, err = _cli(capsys, "search", "--resume", str(run))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(run / named) in lines[0] and words in lines[0], lines[0]
    # ... and says what to do about it.
    assert any(w in lines[0] for w in ("restore", "start a new run", "use the version")), lines[0]
    assert _snapshot(run) == before
    assert not (run / ".lock").exists()

    code, out, err = _cli(capsys, "analyze", str(run), "--format", "json")
    after = _snapshot(run)
    assert {k: v for k, v in after.items() if k in before} == before  # never overwritten
    if analyze_refuses:
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert str(run / named) in lines[0] and words in lines[0]
        assert set(after) == set(before)  # no report written either
    else:
        # The table is whole: the report is written, saying the run's settings are unknown.
        assert code == 0, err
        report = json.loads((run / "analysis.json").read_text())
        assert "run settings unknown" in json.dumps(report)


def test_missing_column_error_names_file_and_columns(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _drop_column(run)
    with pytest.raises(ValueError) as exc:
        read_table(run)
    msg = str(exc.value)
    assert str(run / "trials.parquet") in msg and "'status'" in msg and "'top1'" in msg


def test_an_unknown_column_is_named_and_kept(finished_run, tmp_path, capsys):
    """Unknown columns (perhaps a user's notes, perhaps another tool's table) are named in one
    note by analyze and by a resume, which keep them as they are."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "ray", ignore_errors=True)
    df = pd.read_parquet(run / "trials.parquet")
    df["my_note"] = [f"note {i}" for i in range(len(df))]
    df.to_parquet(run / "trials.parquet", index=False)
    table_bytes = (run / "trials.parquet").read_bytes()
    note = (f"nas-convnext: note: {run / 'trials.parquet'} has column(s) nas-convnext does not "
            f"know: ['my_note']; they are kept as they are")

    code, out, err = _cli(capsys, "analyze", str(run), "--format", "csv")
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.startswith("nas-convnext")] == \
        [ln for ln in err.splitlines() if ln.startswith(note)] and note in err
    assert (run / "trials.parquet").read_bytes() == table_bytes  # analyze never rewrites it

    cfg = json.loads((run / "run.json").read_text())["config"]
    out = run_search(small_config(tmp_path, "unused", trials=cfg["trials"]), resume_dir=run)
    assert note in capsys.readouterr().err
    after = read_table(run)
    assert list(after.columns[: len(COLUMNS)]) == COLUMNS and "my_note" in after.columns
    assert after.set_index("trial_id")["my_note"].to_dict() == \
        df.set_index("trial_id")["my_note"].to_dict()
    assert len(out.table) == len(df) and out.table["trial_id"].is_unique
