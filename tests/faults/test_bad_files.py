"""Generated bad space and design files: each class of trouble a file can carry.

Aliases (up to bombs), nesting, wrong types for every field and for `base`, duplicate keys,
keys that are not names, bytes that are not UTF-8, huge integers and special files are made
up at random, in YAML and (for designs) JSON. Whatever the file, the command either works or
exits 2 with one short line naming the file, and each class that must be refused is refused
for its own reason. A file that is accepted must give the values it holds.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from nas_convnext.cli import main
from nas_convnext.design import space as space_module
from nas_convnext.design.arch import FIELD_NAMES, check_field
from nas_convnext.design.codec import param
from nas_convnext.userfile import MAX_BYTES, MAX_DEPTH, MAX_EXPANDED, MAX_INT_DIGITS

from .test_bad_input import SWEEP, _garbage

ROOT = Path(__file__).resolve().parents[2]
SMALL = yaml.safe_load((ROOT / "search_spaces" / "small.yaml").read_text())
MESSAGE_MAX = 400
CLASSES = ["alias", "deep", "wrong-type", "duplicate", "key-type", "not-utf8", "huge-int",
           "special"]


# ----- a file as lines of `key: value`, so that a value can be any YAML text -----
def _flow(value) -> str:
    """A value as one line of YAML flow text (JSON is YAML, except for NaN and infinities)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _space_lines() -> list[tuple[int, str, str]]:
    """(indent, key, value text) of small.yaml."""
    lines = [(0, "name", "sparse"), (0, "description", "four choices"), (0, "dimensions", "")]
    lines += [(2, f, _flow(v)) for f, v in SMALL["dimensions"].items()]
    return lines


def _design_lines() -> list[tuple[int, str, str]]:
    return [(0, "base", "convnext_t"), (0, "kernel", "5"), (0, "act", "relu")]


def _render(lines: list[tuple[int, str, str]]) -> str:
    return "".join(f"{' ' * i}{k}:{' ' + v if v else ''}\n" for i, k, v in lines)


def _bomb(levels: int, fanout: int) -> str:
    parts = [f"x0: &a0 [{', '.join(['lol'] * fanout)}]"]
    parts += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return "{" + ", ".join(parts) + "}"


def _nested(depth: int, kind: str, json_keys: bool = False) -> str:
    if kind == "[":
        return "[" * depth + "]" * depth
    key = '"a"' if json_keys else "a"
    return f"{{{key}: " * depth + "1" + "}" * depth


NOT_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xc0\xaf", b"\xe2\x82"]


@st.composite
def bad_file(draw, kind: str):
    """(suffix, content bytes or a special-file kind, class, what the refusal must say or None
    when the file may also be accepted)."""
    how = draw(st.sampled_from(CLASSES))
    lines = _space_lines() if kind == "space" else _design_lines()
    suffix = ".yaml"
    if kind == "design" and how in ("deep", "wrong-type", "duplicate", "not-utf8", "huge-int"):
        suffix = draw(st.sampled_from([".yaml", ".json"]))
    keys = [i for i, (_, _, v) in enumerate(lines) if v]  # lines that hold a value
    at = draw(st.sampled_from(keys))
    indent, key, _ = lines[at]
    must: tuple[str, ...] | None = None

    if how == "alias":
        levels, fanout = draw(st.integers(1, 9)), draw(st.integers(1, 10))
        lines[at] = (indent, key, _bomb(levels, fanout))
        strings = sum(fanout ** (i + 1) for i in range(levels))
        if 4 * strings > 2 * MAX_EXPANDED:  # 'lol' and the node: 4 units each
            must = ("alias",)
    elif how == "deep":
        depth = draw(st.integers(1, 600))
        lines[at] = (indent, key, _nested(depth, draw(st.sampled_from(["[", "{"])),
                                          suffix == ".json"))
        if depth > MAX_DEPTH:  # the value's own levels alone are too many
            must = ("nested",)
    elif how == "wrong-type":
        lines[at] = (indent, key, _flow(draw(_garbage)))
    elif how == "duplicate":
        value = draw(st.sampled_from([lines[at][2], _flow(draw(_garbage))]))
        if kind == "space" and indent == 0:  # stay a top-level key: before or after the dims
            where = draw(st.sampled_from([2, len(lines)]))
        else:
            where = draw(st.integers(at + 1, len(lines)))
        lines.insert(where, (indent, key, value))
        must = (repr(key), "line" if suffix == ".yaml" else "twice")
    elif how == "key-type":
        odd = draw(st.sampled_from(["1", "~", "true", "3.5", "2001-01-01", "[a, b]", "null",
                                    "0x1F", "no"]))
        lines.insert(draw(st.integers(0, len(lines))) if kind == "design" else at + 1,
                     (indent, odd if not odd.startswith("[") else f"? {odd}\n{' ' * indent}",
                      "1"))
        must = ("key",)
    elif how == "huge-int":
        digits = draw(st.integers(1, 6000))
        sign = draw(st.sampled_from(["", "-", "+"]))
        lines[at] = (indent, key, sign + "7" * digits)
        if digits > MAX_INT_DIGITS:
            must = ("digits",)
    elif how == "special":
        return ".yaml", draw(st.sampled_from(["fifo", "folder", "dev-zero", "dev-null",
                                              "too-large"])), how, ("",)

    if suffix == ".json":
        content = _render_json(lines).encode()
    else:
        content = _render(lines).encode()
    if how == "not-utf8":
        bad = draw(st.sampled_from(NOT_UTF8))
        pos = draw(st.integers(0, len(content)))
        content = content[:pos] + bad + content[pos:]
        line = content[:pos].count(b"\n") + 1
        must = ("UTF-8", f"line {line}")
    return suffix, content, how, must


def _render_json(lines: list[tuple[int, str, str]]) -> str:
    # Designs only (no nesting): YAML flow values are JSON, but for NaN and infinities.
    items = ", ".join(f"{json.dumps(k)}: {_json_value(v)}" for _, k, v in lines)
    return "{" + items + "}"


def _json_value(text: str) -> str:
    if text in (".nan", ".inf", "-.inf"):
        return {".nan": "NaN", ".inf": "Infinity", "-.inf": "-Infinity"}[text]
    if text.startswith("+"):
        text = text[1:]
    if text.lstrip("-").isdigit():  # an integer, however long (json.loads caps the digits)
        return text
    try:
        json.loads(text)
        return text
    except ValueError:
        return json.dumps(text)


def _make_special(path: Path, what: str) -> None:
    if what == "fifo":
        os.mkfifo(path)
    elif what == "folder":
        path.mkdir()
    elif what == "dev-zero":
        path.symlink_to("/dev/zero")
    elif what == "dev-null":
        path.symlink_to("/dev/null")
    else:
        with open(path, "wb") as fh:
            fh.truncate(MAX_BYTES + 1)


def _check(code: int, out: str, err: str, path: Path, how: str, must) -> None:
    if code == 0:
        assert must is None, (how, must, out[:500])
        return
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, (how, err[-3000:])
    assert len(lines) == 1 and str(path) in lines[0], (how, err[-3000:])
    assert len(lines[0]) < MESSAGE_MAX, (how, lines[0][:1000])
    for word in must or ():
        assert word in lines[0], (how, word, lines[0])


@pytest.fixture
def quick_space(monkeypatch):
    monkeypatch.setattr(space_module, "EXHAUSTIVE_LIMIT", 64)
    monkeypatch.setattr(space_module, "SAMPLE_ESTIMATE", 20)


@SWEEP
@given(case=bad_file("space"))
def test_bad_space_files(quick_space, capsys, case):
    suffix, content, how, must = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"space{suffix}"
        if how == "special":
            _make_special(path, content)
        else:
            path.write_bytes(content)
        code = main(["space", str(path), "--json"])
    out, err = capsys.readouterr()
    _check(code, out, err, path, how, must)
    if code == 0:  # accepted: every dimension of the file is there, with its values
        info = json.loads(out)
        data = yaml.safe_load(content)
        for field, raw in data["dimensions"].items():
            shown = info["dimensions"].get(field) or [info["fixed"][field]]
            values = raw if isinstance(raw, list) and (
                field != "depths" or all(isinstance(v, (list, str)) for v in raw)) else [raw]
            assert shown == [param(check_field(field, v)) for v in values], (field, raw, shown)


@SWEEP
@given(case=bad_file("design"))
def test_bad_design_files(capsys, case):
    suffix, content, how, must = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"design{suffix}"
        if how == "special":
            _make_special(path, content)
        else:
            path.write_bytes(content)
        code = main(["flops", str(path), "--json"])
    out, err = capsys.readouterr()
    if how == "special" and content in ("fifo", "folder", "dev-zero", "dev-null"):
        must = None  # not an existing file: named as neither a preset nor a file
    _check(code, out, err, path, how, must)
    if code == 0:  # accepted: the file's values, not the base preset's
        design = json.loads(out)
        data = json.loads(content) if suffix == ".json" else yaml.safe_load(content)
        for field, raw in data.items():
            if field in FIELD_NAMES:
                assert param(design[field]) == param(check_field(field, raw)), (field, raw)
