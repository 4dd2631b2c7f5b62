"""Analysis of a run's trials table: which trials count, the Pareto front, error EDFs,
bootstrapped per-choice effects, a verdict on ConvNeXt's choices, the roadmap comparison.

`stats` (bootstrap, EDF, rank agreement: plain functions of arrays), `front` (usable and
excluded trials, the Pareto front), `effects` (per-choice statistics), `verdict` (ConvNeXt-T
on the front or not, and dimension by dimension), `roadmap` (the proxy's replay of the paper's
roadmap against Table 10) and `run` (`analyse`: a run's whole analysis, computed once into a
`RunAnalysis`, which the report only renders). Every function takes a DataFrame (one row per
trial) or arrays and returns a DataFrame or a frozen info object that carries every number a
reader needs, including how many trials it rests on. It builds on `design` only; `report`
builds on it.
"""
from __future__ import annotations

from ..design.codec import DIMENSIONS
from ..results import STATUSES
from .effects import ChoiceStat, choice_effects, edf_by_choice
from .front import excluded, pareto_front, status_counts, usable
from .stats import (
                    LEVEL,
                    EdfByChoice,
                    EdfCurve,
                    Interval,
                    RankAgreement,
                    bootstrap_mean_max,
                    complexity_weights,
                    edf_at,
                    error_edf,
                    rank_agreement,
)
from .verdict import (
                    CONVNEXT_TAG,
                    MIN_TRIALS,
                    DimVerdict,
                    Dominator,
                    Verdict,
                    convnext_verdict,
                    summarize,
                    verdict_rule,
)

__all__ = [
    "DIMENSIONS", "STATUSES", "CONVNEXT_TAG", "MIN_TRIALS", "LEVEL", "Interval",
    "EdfCurve", "EdfByChoice", "ChoiceStat", "Dominator", "DimVerdict", "Verdict",
    "RankAgreement", "verdict_rule", "status_counts",
    "usable", "excluded", "pareto_front", "error_edf", "edf_at", "complexity_weights",
    "edf_by_choice", "bootstrap_mean_max",
    "choice_effects", "convnext_verdict", "summarize", "rank_agreement",
]
