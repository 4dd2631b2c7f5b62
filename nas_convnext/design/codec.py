"""The one encoding of a design's values, and its inverse.

A design's field values travel through four media, and each takes one form defined here:

* `text(value)`: the words a person reads and the analysis groups by: `key=value` on the
  command line, report tables, the terminal. Equal values give equal text whatever their
  type: 4, 4.0 and numpy's 4.0 are "4"; None and NaN are "none"; depths are "3,3,9,3".
* `param(value)`: a choice as Optuna stores it in a categorical distribution: text for
  lists, unions and none, numbers as numbers (Optuna's choices must be None, bool, int,
  float or str, and the studies of earlier runs, which a resume reopens, hold numbers).
* `cells(arch)` / `from_cells(row)`: one row of the trials table: typed columns (integers,
  floats, text), `layer_scale` NaN for none and `stem_width` -1 for none, so every column
  has one type in Parquet.
* `decode(field, value)`: any of these forms (or a value from YAML, JSON or the command
  line) back to the field's value, through `arch.check_field`.

Tables written by earlier versions decode the same way, so old runs stay readable.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .arch import FIELD_NAMES, check_field

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .arch import Arch

NONE = "none"

#: The fields the analysis compares choices of, in roadmap order: every design field but
#: `stem_width`, which exists only so that the ResNeXt preset keeps ResNet's 64-channel stem
#: (a detail of `width`, never a choice of a shipped space). Every analysis function takes
#: `dims=` for a caller who analyses other fields.
DIMENSIONS: tuple[str, ...] = tuple(f for f in FIELD_NAMES if f != "stem_width")


def _missing(value: Any) -> bool:
    """None, NaN (float or numpy) or pandas' NA: a design's "none"."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if type(value).__module__.startswith(("numpy", "pandas")):
        import pandas as pd

        try:
            return bool(pd.isna(value))
        except (TypeError, ValueError):  # an array: not one value
            return False
    return False


def text(value: Any) -> str:
    """A field value as words, one text per value: "4" for 4, 4.0 or numpy's 4.0; "none" for
    None and NaN; "3,3,9,3" for depths; 1e-06 as "1e-06" (its shortest exact repr)."""
    if _missing(value):
        return NONE
    if isinstance(value, (tuple, list)):
        return ",".join(text(v) for v in value)
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def texts(values: "pd.Series | Sequence[Any]") -> "pd.Series":
    """`text` of every value, as an object Series (on the same index for a Series)."""
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(list(values))
    return s.map(text).astype(object)


def param(value: Any) -> Any:
    """A field value as an Optuna categorical choice: numbers stay numbers, the rest is text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return text(value)


def decode(field: str, value: Any) -> Any:
    """The value of `field` given in any form of this module (or from YAML, JSON, argv)."""
    if field == "layer_scale" and _missing(value):
        return None
    if field == "stem_width" and (_missing(value) or value in (-1, "-1")):
        return None
    if field == "depths" and isinstance(value, str):
        return check_field(field, value)
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    return check_field(field, value)


def cells(arch: "Arch") -> dict[str, Any]:
    """The design as one row of the trials table: one typed column per field."""
    return {
        **{f: getattr(arch, f) for f in FIELD_NAMES},
        "depths": text(arch.depths),
        "groups": text(arch.groups),
        "expansion": float(arch.expansion),
        "layer_scale": math.nan if arch.layer_scale is None else float(arch.layer_scale),
        "stem_width": -1 if arch.stem_width is None else arch.stem_width,
    }


def from_cells(row: Mapping[str, Any]) -> "Arch":
    """The design of a table row (or of `Arch.to_dict`'s mapping); fields absent from the
    row are refused by `arch.from_fields`, which names them."""
    from .arch import from_fields

    return from_fields({f: decode(f, row[f]) for f in FIELD_NAMES if f in row})
