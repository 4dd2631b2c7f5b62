"""The one codec of a design's values: every encoding decodes back to the same design, and
equal values read the same whatever their type."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from nas_convnext import presets
from nas_convnext.design import codec
from nas_convnext.design.arch import FIELD_NAMES, Arch
from nas_convnext.design.space import load_space
from nas_convnext.results import read_table, write_table


def _designs() -> list[Arch]:
    rng = random.Random(3)
    space = load_space("convnext")
    return list(presets().values()) + [space.sample(rng) for _ in range(40)]


@pytest.mark.parametrize("arch", _designs(), ids=lambda a: a.key()[:40])
def test_every_encoding_decodes_to_the_same_design(arch):
    assert codec.from_cells(codec.cells(arch)) == arch
    assert codec.from_cells(json.loads(json.dumps(arch.to_dict()))) == arch
    for field in FIELD_NAMES:
        value = getattr(arch, field)
        assert codec.decode(field, codec.text(value)) == value, field
        assert codec.decode(field, codec.param(value)) == value, field
        assert codec.decode(field, codec.cells(arch)[field]) == value, field


def test_a_table_round_trip_keeps_every_design(tmp_path):
    designs = _designs()
    rows = [{**a.to_row(), "trial_id": f"t{i}", "order": i, "status": "completed"}
            for i, a in enumerate(designs)]
    write_table(tmp_path, rows)
    df = read_table(tmp_path)
    assert [Arch.from_row(r) for r in df.to_dict("records")] == designs
    # The CSV the same table is written as decodes too (every cell read back as text).
    csv = pd.read_csv(tmp_path / "trials.csv", dtype=str, keep_default_na=False)
    assert [Arch.from_row(r) for r in csv.to_dict("records")] == designs


@pytest.mark.parametrize("values,expected", [
    ((4, 4.0, np.float64(4.0), np.int64(4), "4"), "4"),
    ((None, math.nan, np.float64("nan"), pd.NA), "none"),
    ((1e-6, np.float64(1e-6)), "1e-06"),
    (((3, 3, 9, 3), [3, 3, 9, 3], "3,3,9,3"), "3,3,9,3"),
    ((0.25, np.float32(0.25)), "0.25"),
    (("depthwise",), "depthwise"),
    ((True, np.bool_(True)), "True"),
])
def test_equal_values_have_one_text(values, expected):
    assert {codec.text(v) for v in values} == {expected}


def test_params_keep_numbers_and_spell_the_rest():
    # Optuna studies of earlier runs hold numbers for numeric choices: a resume must match them.
    assert codec.param(4.0) == 4.0 and isinstance(codec.param(4.0), float)
    assert codec.param(96) == 96 and codec.param((3, 3, 9, 3)) == "3,3,9,3"
    assert codec.param(None) == "none" and codec.param("depthwise") == "depthwise"


def test_none_decodes_from_every_form_it_takes():
    for form in (None, math.nan, "none", "None", pd.NA):
        assert codec.decode("layer_scale", form) is None
    for form in (None, -1, "-1", "none", math.nan):
        assert codec.decode("stem_width", form) is None
    with pytest.raises(ValueError, match="invalid kernel"):
        codec.decode("kernel", "4")
    with pytest.raises(ValueError, match="unknown design field"):
        codec.decode("colour", "red")


def test_the_dimensions_are_the_design_fields_but_stem_width():
    assert codec.DIMENSIONS == tuple(f for f in FIELD_NAMES if f != "stem_width")
    assert codec.DIMENSIONS[0] == "stem" and codec.DIMENSIONS[-1] == "layer_scale"
