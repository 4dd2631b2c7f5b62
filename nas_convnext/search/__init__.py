"""The search: Optuna proposes designs, Ray Tune trains them as proxy trials, the table records all.

`config` (the settings and their rules), `searcher` (Optuna: what is trained and what the
study is told), `raytune` (every Ray import of the package, made lazily: the trials, the
table writer, Ray's start), `progress`, `signals` (clean stops), `resume`, `faults` (test
hooks) and `run` (`run_search`, from settings to table). It builds on `design` and
`training`; nothing below it imports it.
"""
from __future__ import annotations

from .config import SearchConfig, parse_duration
from .run import SearchOutcome, run_search
from .signals import Terminated

__all__ = ["SearchConfig", "SearchOutcome", "Terminated", "parse_duration", "run_search"]
