"""Plain values and checked reading of calibration.json's fields (`Calibration.from_json`
trusts nothing in the file: every field is type-checked, with the key named in the error)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


def _num_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _ci_or_none(ci: tuple[float, float]) -> list[float] | None:
    lo, hi = ci
    return [float(lo), float(hi)] if math.isfinite(lo) and math.isfinite(hi) else None


def _num(v: Any, key: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"calibration key {key!r} must be a number or null; got {type(v).__name__}")
    return float(v)


def _get_num(d: Mapping[str, Any], key: str, where: str = "") -> float:
    return _num(d.get(key), where + key)


def _get_int(d: Mapping[str, Any], key: str, where: str = "") -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"calibration key {where + key!r} must be a non-negative integer; got {v!r:.40}")
    return v


def _get_str(d: Mapping[str, Any], key: str) -> str:
    return _text(d.get(key, ""), key)


def _text(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"calibration key {key!r} must be text; got {type(v).__name__}")
    return v


def _scalar(v: Any, key: str) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"calibration key {key!r} must hold numbers or text; got {type(v).__name__}")
    return v


def _get_list(d: Mapping[str, Any], key: str, each) -> list[Any]:
    v = d.get(key)
    if not isinstance(v, list):
        raise ValueError(f"calibration key {key!r} must be a list; got {type(v).__name__}")
    return [each(x, key) for x in v]


def _get_map(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d.get(key)
    if not isinstance(v, Mapping):
        raise ValueError(f"calibration key {key!r} must be an object of seed: value")
    return v


def _get_ci(d: Mapping[str, Any], key: str) -> tuple[float, float]:
    v = d.get(key)
    if v is None:
        return (math.nan, math.nan)
    if not isinstance(v, list) or len(v) != 2:
        raise ValueError(f"calibration key {key!r} must be [lo, hi] or null")
    lo, hi = _num(v[0], key), _num(v[1], key)
    if lo > hi:
        raise ValueError(f"calibration key {key!r} has lo {lo} above hi {hi}")
    return (lo, hi)
