"""The one reader of YAML and JSON files that may come from users, and the one shortener of
values for error messages (and the one reader of a recorded figure, `as_number`).

Design spaces, design files, proxy profiles, the roadmap and `run.json` are all read by
`load_file`. `yaml.safe_load` already runs no code, but a file can still hurt: nine levels of
ten aliases make a 700-byte file expand to a billion list items the moment anything prints it,
a thousand nested brackets overflow Python's stack, a duplicate key silently drops a dimension,
and a 5,000-digit integer cannot even be printed. So the file is read with bounds checked
before any value is built: its size, its nesting, what its aliases expand to, the length of
its integers; every key must be a unique string. A refusal is a ValueError naming the file
(and the line, where the parser knows it), so the command line prints it as one line.
"""
from __future__ import annotations

import json
import math
import os
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20      # space and design files are a few hundred bytes; refuse 1 MiB and more
MAX_DEPTH = 32           # a space file nests 4 levels; the package's own files at most 6
MAX_EXPANDED = 200_000   # nodes plus scalar characters, with every alias expanded
MAX_INT_DIGITS = 100     # no field takes a number anywhere near this long


class FileRefused(ValueError):
    """A user's file that cannot be read as data; the message names the file."""


class _Refusal(ValueError):
    """Raised inside the parser; `load_file` prefixes the file's name."""


# ----- values in messages -----
class _Short(reprlib.Repr):
    """reprlib, but never builds a huge integer's decimal form (Python refuses past 4,300
    digits) and never walks a value deeper or wider than a message can show."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 60
        self.maxlong = 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 4
        self.maxlevel = 2

    def repr_str(self, x: str, level: int) -> str:
        # Whole when short (escapes may lengthen it, but never past 10 x maxstring); else the
        # start and the length, so the message still says what the value was.
        if len(x) <= self.maxstring:
            return repr(x)
        return f"{repr(x[:self.maxstring // 2])}... ({len(x):,} characters)"

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            digits = int(x.bit_length() * math.log10(2)) + 1
            return f"{'-' if x < 0 else ''}<an integer of about {digits:,} digits>"
        return super().repr_int(x, level)


_SHORT = _Short()


SHOWN_MAX = 120


def shown(value: Any) -> str:
    """`repr(value)` for an error message, cut short: a user's value may be megabytes long."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    try:
        text = _SHORT.repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail because of its value
        return f"<a {type(value).__name__}>"
    # Escapes and containers of long items can still add up: cut what is left.
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 3] + "..."


# ----- reading -----
def read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most MAX_BYTES.

    The file is opened without blocking and checked after opening, so a FIFO, a device such
    as /dev/zero, or a file swapped in after a check is never read forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefused(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FileRefused(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise FileRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileRefused(f"{path} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path} is not a regular file (a device, pipe or socket)")
        if info.st_size > MAX_BYTES:
            raise FileRefused(f"{path} is {info.st_size:,} bytes; a file of settings is at "
                              f"most {MAX_BYTES:,}")
        chunks, total = [], 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_BYTES:  # it grew while being read
            raise FileRefused(f"{path} is more than {MAX_BYTES:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise FileRefused(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                          f"{line}); save it as UTF-8") from None


def load_file(path: str | Path, kind: str | None = None) -> Any:
    """The data in a YAML or JSON file (JSON when `kind` or the suffix says so).

    Refuses, naming the file: anything that is not a regular UTF-8 file of at most MAX_BYTES,
    invalid syntax, nesting deeper than MAX_DEPTH, aliases that expand to more than
    MAX_EXPANDED nodes and characters (or refer to themselves), integers longer than
    MAX_INT_DIGITS digits, keys that are not strings, and a key given twice in one mapping.
    """
    path = Path(path)
    kind = kind or ("json" if path.suffix.lower() == ".json" else "yaml")
    text = _text(path, read_bytes(path))
    try:
        return _load_json(text) if kind == "json" else _load_yaml(text)
    except _Refusal as exc:
        raise FileRefused(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        what = exc.problem or exc.context or type(exc).__name__
        raise FileRefused(f"{path}: not valid YAML ({where}{what})") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileRefused(f"{path}: not valid YAML ({first})") from None
    except json.JSONDecodeError as exc:
        raise FileRefused(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg})") from None
    except RecursionError:
        raise FileRefused(f"{path}: nested more than {MAX_DEPTH} levels deep") from None


# ----- YAML -----
class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds nesting while composing, and refuses duplicate or non-string
    keys and overlong integers while constructing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refusal(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merges keys that the mapping's own keys override
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if not isinstance(key, str):
                    raise _Refusal(f"line {line}: key {shown(key)} is not a name (keys are "
                                   "names such as kernel or dimensions; quote it if it is one)")
                if key in seen:
                    raise _Refusal(f"line {line}: key {shown(key)} is given twice (first on "
                                   f"line {seen[key]}); the second would silently replace the "
                                   "first: keep one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):  # noqa: ANN001
        digits = node.value.replace("_", "").lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise _Refusal(f"line {node.start_mark.line + 1}: an integer of {len(digits):,} "
                           f"digits ({shown(node.value)}); no setting takes a number that large")
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _load_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _measure(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand past MAX_EXPANDED or MAX_DEPTH, or loop.

    Aliased nodes are shared, so each distinct node is measured once (its expanded size and
    height are remembered): the cost is that of the file, not of its expansion.
    """
    memo: dict[int, tuple[int, int]] = {}   # id(node) -> (expanded size, height)
    active: set[int] = set()

    def visit(node: yaml.Node, level: int) -> tuple[int, int]:
        key = id(node)
        if key in memo:
            size, height = memo[key]
        else:
            if key in active:
                raise _Refusal(f"line {node.start_mark.line + 1}: an alias refers to a value "
                               "that contains it (a value without end)")
            if level > MAX_DEPTH:
                raise _Refusal(f"line {node.start_mark.line + 1}: nested more than "
                               f"{MAX_DEPTH} levels deep once aliases are expanded")
            active.add(key)
            if isinstance(node, yaml.ScalarNode):
                size, height = 1 + len(node.value), 1
            else:
                children = (node.value if isinstance(node, yaml.SequenceNode)
                            else [n for pair in node.value for n in pair])
                size, height = 1, 1
                for child in children:
                    s, h = visit(child, level + 1)
                    size, height = size + s, max(height, h + 1)
                    if size > MAX_EXPANDED:
                        break
            active.discard(key)
            memo[key] = (size, height)
        if size > MAX_EXPANDED:
            raise _Refusal(f"line {node.start_mark.line + 1}: its aliases expand to more than "
                           f"{MAX_EXPANDED:,} values and characters; write the values out, or "
                           "use fewer aliases")
        if level + height - 1 > MAX_DEPTH:
            raise _Refusal(f"line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} "
                           "levels deep once aliases are expanded")
        return size, height

    visit(root, 1)


# ----- JSON -----
def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refusal(f"key {shown(key)} is given twice in one object; the second would "
                           "silently replace the first: keep one")
        out[key] = value
    return out


def _json_int(text: str) -> int:
    digits = text.lstrip("+-")
    if len(digits) > MAX_INT_DIGITS:
        raise _Refusal(f"an integer of {len(digits):,} digits ({shown(text)}); no setting "
                       "takes a number that large")
    return int(text)


def _load_json(text: str) -> Any:
    data = json.loads(text, object_pairs_hook=_json_pairs, parse_int=_json_int)
    # No aliases in JSON, so its size is the file's; only its depth needs a check.
    stack = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if level > MAX_DEPTH:
            raise _Refusal(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return data


def as_number(value: Any) -> float:
    """A recorded figure as a float; NaN for one that is missing or not a number (a worker's
    result and a table's cell are read as they came, and one bad figure must not crash the
    driver, the analysis or the report)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
