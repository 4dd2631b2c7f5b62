"""The report's document model: one list of blocks, rendered to Markdown and to HTML.

A block is a heading, a paragraph, a list, a table or a figure; `render_md` and `render_html`
turn the same list into `report.md` and a self-contained `report.html` (figures embedded as
base64 PNGs), so the two never disagree. User data is escaped in both (no raw HTML, no
accidental emphasis). In the HTML, wide tables scroll inside their own box and images shrink
to the page, so the page never scrolls sideways. Also here: the small formatting helpers every
table and caption uses, and the writer that puts a report's files in place atomically, never
over the run's own files.
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .. import analysis as A
from ..analysis.run import STUDY_FILE
from ..design.codec import text
from ..results import (
    RUN_JSON,
    TABLE,
    TABLE_CSV,
    NotReplaceable,
    atomic_write_bytes,
    atomic_write_text,
    plain,
)
from ..userfile import as_number

#: What ``formats`` may name. PNGs are written whenever "md" or "html" is asked for.
FORMATS: tuple[str, ...] = ("md", "html", "csv", "json", "png")


FLOP_NOTE = "1 multiply-add = 1 FLOP, full-size design at 224x224 input, 1000 classes"


#: The reference tags a search writes, and how the report names them.
REFERENCE_NAMES = {"convnext_t": "ConvNeXt-T", "resnet50": "ResNet-50"}


_PROTECTED = {TABLE, TABLE_CSV, RUN_JSON, STUDY_FILE}


# --------------------------------------------------------------------------------------------
# Document model: one list of blocks, rendered to Markdown and to HTML
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    id: str
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class _Fig:
    name: str           # file name of the PNG
    png: bytes
    alt: str
    caption: str
    dim: str | None = None


# A block is (kind, payload): ("h1"|"h2"|"h3"|"p"|"pre", str), ("ul", list[str]),
# ("table", _Table), ("fig", _Fig).
_Block = tuple[str, Any]


def _md_cell(text: str) -> str:
    # "<" and "&" are what could open raw HTML or an entity; a ">" inside a cell is plain text
    # (so "01 -> 02" reads as written in the raw file).
    t = str(text).replace("&", "&amp;").replace("<", "&lt;")
    t = t.replace("|", "\\|").replace("\r", "")
    return "<br>".join(t.split("\n"))


def _md_text(text: str) -> str:
    """Plain text in Markdown: no raw HTML from user data, no accidental emphasis."""
    t = str(text).replace("&", "&amp;").replace("<", "&lt;")
    t = re.sub(r"(?m)^(\s*)>", r"\1&gt;", t)   # only a line's first ">" makes a quote
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", t)


def _render_md(blocks: list[_Block]) -> str:
    out: list[str] = []
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md_text(x))
        elif kind == "p":
            out.append(_md_text(x))
        elif kind == "pre":
            out.append("```\n" + str(x).replace("```", "'''") + "\n```")
        elif kind == "ul":
            out.append("\n".join("- " + _md_text(i) for i in x))
        elif kind == "table":
            t: _Table = x
            lines = [f"**Table ({t.id}).** {_md_text(t.caption)}", ""]
            lines.append("| " + " | ".join(_md_cell(h) for h in t.header) + " |")
            lines.append("|" + "|".join("---" for _ in t.header) + "|")
            for r in t.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            if not t.rows:
                lines.append("| " + " | ".join("" for _ in t.header) + " |")
            out.append("\n".join(lines))
        elif kind == "fig":
            f: _Fig = x
            alt = f.alt.replace("[", "(").replace("]", ")")
            out.append(f"![{alt}]({f.name})\n\n*Figure ({f.name}).* {_md_text(f.caption)}")
        else:  # pragma: no cover - programming error
            raise AssertionError(kind)
    return "\n\n".join(out) + "\n"


#: Nothing may be wider than the page: a table wider than the text scrolls inside its own
#: ``div.table-scroll`` (reachable by keyboard: tabindex 0), images shrink to the page's width,
#: long words (paths, trial ids) wrap in running text, code blocks scroll.
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45;overflow-wrap:break-word}
.table-scroll{overflow-x:auto;max-width:100%;margin:0 0 1.6em}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left;overflow-wrap:normal}
th{background:#f1f3f6}
p.table-caption{font-size:13px;color:#444;margin:.9em 0 4px}
figure{margin:1em 0 2em}
img{max-width:100%;height:auto;box-sizing:border-box}
figure img{border:1px solid #ddd}
figcaption{font-size:13px;color:#444;max-width:1000px}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto}
td.supported{background:#e3f4e1}td.not-supported{background:#fbe3e1}td.inconclusive{background:#f4f4f4}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(text: str) -> str:
    return "<br>".join(_h(line) for line in str(text).split("\n"))


def _render_html(title: str, blocks: list[_Block]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{_h(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_h(x)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_html_cell(x)}</p>")
        elif kind == "pre":
            out.append(f"<pre>{_h(x)}</pre>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_h(i)}</li>" for i in x) + "</ul>")
        elif kind == "table":
            t: _Table = x
            rows = []
            verdict_col = t.header.index("verdict") if "verdict" in t.header else -1
            for r in t.rows:
                cells = []
                for j, c in enumerate(r):
                    cls = ""
                    if j == verdict_col:
                        cls = f' class="{_h(str(c).replace(" ", "-"))}"'
                    cells.append(f"<td{cls}>{_html_cell(c)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            # The caption sits above the scrolling box, so it wraps to the page's width
            # however wide the table is; aria-labelledby keeps it the table's name.
            cap = f"{t.id}-caption"
            out.append(
                f'<p class="table-caption" id="{_h(cap)}">{_h(t.caption)}</p>'
                f'<div class="table-scroll" role="region" tabindex="0" '
                f'aria-labelledby="{_h(cap)}">'
                f'<table id="{_h(t.id)}" aria-labelledby="{_h(cap)}"><thead><tr>'
                + "".join(f"<th>{_html_cell(hd)}</th>" for hd in t.header)
                + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
            )
        elif kind == "fig":
            f: _Fig = x
            data = base64.b64encode(f.png).decode("ascii")
            dim = f' data-dim="{_h(f.dim)}"' if f.dim else ""
            fid = "fig-" + re.sub(r"[^A-Za-z0-9_-]", "-", f.name.rsplit(".", 1)[0])
            out.append(
                f'<figure id="{_h(fid)}"><img src="data:image/png;base64,{data}" '
                f'alt="{_h(f.alt)}" title="{_h(f.alt)}"{dim}>'
                f"<figcaption>{_h(f.caption)}</figcaption></figure>"
            )
        else:  # pragma: no cover
            raise AssertionError(kind)
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Small formatting helpers
# --------------------------------------------------------------------------------------------


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _pct(v: Any, digits: int = 2) -> str:
    x = as_number(v)
    return f"{100 * x:.{digits}f}" if math.isfinite(x) else "n/a"


def _pp(v: Any) -> str:
    x = as_number(v)
    return f"{100 * x:+.2f}" if math.isfinite(x) else "n/a"


def _gf(v: Any) -> str:
    x = as_number(v)
    return f"{x / 1e9:.3f}" if math.isfinite(x) else "n/a"


def _mp(v: Any) -> str:
    x = as_number(v)
    return f"{x / 1e6:.2f}" if math.isfinite(x) else "n/a"


def _ci(iv: A.Interval) -> str:
    return f"{_pct(iv.estimate)} [{_pct(iv.lo)}, {_pct(iv.hi)}]"


def _trials(n: int, what: str = "completed trials") -> str:
    return f"n = {n} {what}" if n != 1 else f"n = 1 {what.replace('trials', 'trial')}"


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    try:
        if pd.isna(v):
            return True
    except (TypeError, ValueError):
        pass
    return str(v) == ""


def _trial_label(row: pd.Series) -> str:
    tid = row.get("trial_id") if hasattr(row, "get") else None
    return str(tid) if not _blank(tid) else f"row {row.name}"


def _ref_name(tag: Any) -> str:
    if _blank(tag):
        return ""
    return REFERENCE_NAMES.get(str(tag), str(tag))


def _row_dict(row: pd.Series, dims: Sequence[str]) -> dict[str, Any]:
    d: dict[str, Any] = {"index": plain(row.name), "trial_id": plain(row.get("trial_id")),
                         "reference": "" if _blank(row.get("reference")) else str(row.get("reference")),
                         "top1": as_number(row.get("top1")), "flops": as_number(row.get("flops")),
                         "gflops": as_number(row.get("flops")) / 1e9, "params": as_number(row.get("params"))}
    for dim in dims:
        if dim in row.index:
            d[dim] = text(row[dim])
    return d


def _check_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    fm = tuple(dict.fromkeys(str(f).lower() for f in formats))
    bad = [f for f in fm if f not in FORMATS]
    if bad or not fm:
        raise ValueError(f"report format(s) {bad or '(none)'} not understood: expected some of "
                         f"{', '.join(FORMATS)}")
    return fm


def _prepare_out(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the report folder {out_dir}: {exc.strerror or exc}") from None
    return out_dir


class _Writer:
    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.files: list[Path] = []

    def __call__(self, name: str, data: bytes | str) -> None:
        if name in _PROTECTED:  # pragma: no cover - our names never collide; belt and braces
            raise AssertionError(f"refusing to overwrite {name}")
        path = self.out_dir / name
        try:
            if isinstance(data, str):
                atomic_write_text(path, data)
            else:
                atomic_write_bytes(path, data)
        except NotReplaceable as exc:  # a link or a device where a report file goes
            raise ValueError(f"cannot write {path}: {exc.strerror}") from None
        except OSError as exc:
            raise ValueError(f"cannot write {path}: {exc.strerror or exc}; make the folder "
                             f"writable, or write the report elsewhere with --out DIR") from None
        self.files.append(path)
