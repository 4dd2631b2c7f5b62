"""Space and design files that are not what they claim: deep nesting, a `base` that is not a
name, keys of several types, a key given twice, bytes that are not UTF-8, a 5,000-digit
integer, a special file or a huge one. Each is refused with exit 2 and one short line naming the
file (and the key and line, for a duplicate key); none ends in a traceback or loads silently.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from nas_convnext.cli import main
from nas_convnext.userfile import MAX_BYTES, shown

ROOT = Path(__file__).resolve().parents[2]
SMALL_TEXT = (ROOT / "search_spaces" / "small.yaml").read_text()
MESSAGE_MAX = 400  # a message names the value, shortened; never the whole value


def _refused(capsys, argv: list[str], path: Path, *words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert len(lines) == 1, err[-3000:]
    assert str(path) in lines[0], lines[0]
    assert len(lines[0]) < MESSAGE_MAX, lines[0][:1000]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


DEEP = 500


def _design_files() -> dict[str, tuple[str, bytes, tuple[str, ...]]]:
    """name: (suffix, content, words the message must hold)."""
    deep_json = '{"base": "convnext_t", "kernel": ' + "[" * DEEP + "]" * DEEP + "}"
    return {
        "deep-yaml": (".yaml", ("kernel: " + "[" * DEEP + "]" * DEEP).encode(), ("nested",)),
        "deep-yaml-block": (".yaml", "".join(f"{' ' * i}k{i}:\n" for i in range(DEEP)).encode(),
                            ("nested",)),
        "deep-json": (".json", deep_json.encode(), ("nested",)),
        "deep-json-top": (".json", ("[" * DEEP + "]" * DEEP).encode(), ("nested",)),
        "base-list": (".yaml", b"base: [convnext_t]\n", ("base",)),
        "base-mapping": (".yaml", b"base: {name: convnext_t}\n", ("base",)),
        "base-json-list": (".json", b'{"base": ["convnext_t"]}', ("base",)),
        "base-number": (".yaml", b"base: 5\n", ("base",)),
        "mixed-keys": (".yaml", b"base: convnext_t\n1: 2\nfoo: 3\n", ("line 2", "key 1")),
        "null-key": (".yaml", b"base: convnext_t\n~: 2\n", ("line 2", "key None")),
        "list-key": (".yaml", b"base: convnext_t\n? [a, b]\n: 2\n", ("line 2",)),
        "duplicate-yaml": (".yaml", b"base: convnext_t\nkernel: 5\nkernel: 9\n",
                           ("'kernel'", "line 3", "line 2")),
        "duplicate-json": (".json", b'{"base": "convnext_t", "kernel": 5, "kernel": 9}',
                           ("'kernel'", "twice")),
        "not-utf8-yaml": (".yaml", b"base: convnext_t\nkernel: 5\n# caf\xe9\n",
                          ("UTF-8", "line 3")),
        "not-utf8-json": (".json", b'{"base": "convnext_t", "act": "g\xffelu"}', ("UTF-8",)),
        "huge-int-yaml": (".yaml", b"base: convnext_t\nkernel: " + b"7" * 5000 + b"\n",
                          ("5,000 digits", "line 2")),
        "huge-int-json": (".json", b'{"base": "convnext_t", "kernel": ' + b"7" * 5000 + b"}",
                          ("5,000 digits",)),
        "huge-float-text": (".yaml", b"base: convnext_t\nwidth: '" + b"9" * 5000 + b"'\n",
                            ("width",)),
        "self-alias": (".yaml", b"base: convnext_t\nkernel: &k [1, *k]\n", ("alias",)),
        "too-large": (".yaml", b"base: convnext_t\n" + b"# padding\n" * (MAX_BYTES // 10 + 1),
                      ("bytes",)),
    }


DESIGN_FILES = _design_files()


@pytest.mark.parametrize("case", list(DESIGN_FILES))
def test_bad_design_file_is_one_line_naming_it(tmp_path, capsys, case):
    suffix, content, words = DESIGN_FILES[case]
    path = tmp_path / f"design{suffix}"
    path.write_bytes(content)
    _refused(capsys, ["flops", str(path)], path, *words)


def _space_with(replace: str, by: str) -> str:
    assert replace in SMALL_TEXT
    return SMALL_TEXT.replace(replace, by, 1)


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text[:at].count("\n") + 1


_DUP = _space_with("  act: gelu\n", "  act: gelu\n  kernel: 5\n")

SPACE_FILES = {
    # A duplicate dimension: the first list of kernels would silently vanish.
    "duplicate-dimension": (_DUP.encode(), ("'kernel'", f"line {_line_of(_DUP, 'kernel:', 2)}",
                                            f"first on line {_line_of(_DUP, 'kernel:')}")),
    "duplicate-top": ((SMALL_TEXT + "name: other\n").encode(), ("'name'", "twice")),
    "not-utf8": (_space_with("four ConvNeXt", "four \udcff").encode("utf-8", "surrogateescape"),
                 ("UTF-8", f"line {_line_of(SMALL_TEXT, 'four ConvNeXt')}")),
    "huge-int": (_space_with("  width: 96\n", "  width: " + "9" * 5000 + "\n").encode(),
                 ("5,000 digits",)),
    "deep": (_space_with("  width: 96\n", "  width: " + "[" * DEEP + "]" * DEEP + "\n").encode(),
             ("nested",)),
    "name-mapping": (_space_with("name: small\n", "name: {a: 1}\n").encode(), ("name",)),
    "description-list": (_space_with("description: four ConvNeXt choices, two values each\n",
                                     "description: [a, b]\n").encode(), ("description",)),
    "long-name": (_space_with("name: small\n", f"name: {'n' * 5000}\n").encode(), ("name",)),
}


@pytest.mark.parametrize("case", list(SPACE_FILES))
def test_bad_space_file_is_one_line_naming_it(tmp_path, capsys, case):
    content, words = SPACE_FILES[case]
    path = tmp_path / "space.yaml"
    path.write_bytes(content)
    _refused(capsys, ["space", str(path)], path, *words)


def test_a_special_file_is_never_read(tmp_path, capsys):
    # A FIFO would block a plain read forever; a device would never end. Both are refused.
    fifo = tmp_path / "space.yaml"
    os.mkfifo(fifo)
    _refused(capsys, ["space", str(fifo)], fifo, "not a regular file")
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    _refused(capsys, ["space", str(link)], link, "not a regular file")


def test_aliases_that_stay_small_are_fine(tmp_path, capsys):
    # Anchors are a normal YAML feature: a space may share a value between fields.
    text = _space_with("  depths: [[2, 2, 6, 2], [1, 1, 3, 1]]\n",
                       "  depths: [&d [2, 2, 6, 2], [1, 1, 3, 1]]\n")
    text = text.replace("name: small\n", "name: &n shared\n")
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert main(["space", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "shared" and info["dimensions"]["depths"] == ["2,2,6,2", "1,1,3,1"]


def test_merge_keys_may_override_what_they_merge(tmp_path, capsys):
    # `<<:` merges a mapping whose keys the mapping's own keys override: not a duplicate.
    path = tmp_path / "design.yaml"
    path.write_text("base: convnext_t\n<<: {kernel: 5, act: relu}\nkernel: 3\n")
    assert main(["flops", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kernel"] == 3 and out["act"] == "relu"


def test_shown_shortens_without_building_the_whole_value():
    assert shown("x" * 10_000).startswith("'xxx") and len(shown("x" * 10_000)) < 80
    assert "5,001 digits" in shown(10**5000)  # repr() itself refuses past 4,300 digits
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    assert len(shown(nested)) < 80  # no RecursionError either
    assert shown(list(range(10**6))).endswith("...]")
    assert shown("kernel") == "'kernel'" and shown(3) == "3" and shown(None) == "None"


def test_overrides_with_huge_values_are_shortened(capsys):
    line = _refused_override(capsys, "kernel=" + "7" * 5000)
    assert "kernel" in line
    line = _refused_override(capsys, "k" * 5000 + "=3")
    assert "kkk" in line


def _refused_override(capsys, item: str) -> str:
    code = main(["flops", "convnext_t", item])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and len(lines[0]) < MESSAGE_MAX, err[:1000]
    return lines[0]


def test_the_yaml_checks_use_pyyaml_as_the_files_do():
    # The duplicate-key and key-type cases really load silently with plain safe_load.
    assert yaml.safe_load("kernel: 5\nkernel: 9\n") == {"kernel": 9}
    assert yaml.safe_load("1: 2\nfoo: 3\n") == {1: 2, "foo": 3}
