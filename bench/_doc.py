"""Benchmarks write their measurements into one section of docs/BENCHMARKS.md each."""
from __future__ import annotations

import os
import re
from pathlib import Path

HEADER = ("# Benchmarks\n\nMeasured by the scripts in `bench/`; each section names the command "
          "that produced it. Tests never time anything.\n")


def write_section(path: Path, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) \
        else text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
