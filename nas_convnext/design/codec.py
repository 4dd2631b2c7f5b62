"""The encodings of a design's values: Optuna parameters, table cells, labels.

(Phase 1 gathers the existing encodings here; they become one codec next.)
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd


def label(value: Any) -> Any:
    """A value as Optuna and tables can hold it: lists and unions become strings."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return value if not isinstance(value, bool) else str(value)


#: The design dimensions of the search space, in roadmap order. Every function takes ``dims=``
#: so a caller analysing a narrower or wider space can pass its own list.
DIMENSIONS: tuple[str, ...] = (
    "stem",
    "depths",
    "width",
    "expansion",
    "groups",
    "kernel",
    "spatial_conv",
    "act",
    "activations",
    "norm",
    "norms",
    "downsample",
    "layer_scale",
)

_NONE_LABEL = "none"


def choice_label(value: Any) -> str:
    """One label per design choice, equal for equal choices whatever the column dtype.

    96, 96.0 and np.int64(96) all become "96", so a ConvNeXt row read as an object Series
    labels the same as the column it came from; NaN/None become "none" (no layer scale).
    """
    if value is None:
        return _NONE_LABEL
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return _NONE_LABEL
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    try:
        if pd.isna(value):
            return _NONE_LABEL
    except (TypeError, ValueError):
        pass
    return str(value)


def choice_labels(values: pd.Series | Sequence[Any]) -> pd.Series:
    s = values if isinstance(values, pd.Series) else pd.Series(list(values))
    return s.map(choice_label).astype(object)

