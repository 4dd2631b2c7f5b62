"""Reports: a run's analysis rendered as Markdown, HTML, PNG figures, CSV and JSON.

`document` (blocks rendered to Markdown and HTML, formatting helpers, the atomic writer),
`figures`, `tables`, `run_report` (`write_report`, `summary_text`: the report of a run) and
`roadmap_report` (the proxy replay of the roadmap beside the paper). It only renders what
`analysis` computed; it builds on `analysis` and `design`.
"""
from __future__ import annotations

from .document import FORMATS
from .roadmap_report import RoadmapInfo, roadmap_report
from .run_report import ReportInfo, summary_text, write_report

__all__ = ["FORMATS", "ReportInfo", "RoadmapInfo", "roadmap_report", "summary_text",
           "write_report"]
