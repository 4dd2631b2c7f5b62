"""Designs: validation names the field, value and what is allowed; presets and conversions."""
from __future__ import annotations

import dataclasses
import json

import pytest

from nas_convnext import Arch, presets, roadmap
from nas_convnext.design.arch import FIELD_NAMES, from_fields, load_design


def test_replace_gives_a_valid_design():
    a = dataclasses.replace(presets()["convnext_t"], kernel=5)
    assert a.kernel == 5 and a.width == 96
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.kernel = 3  # type: ignore[misc]


@pytest.mark.parametrize("field,value,needle", [
    ("stem", "conv", "resnet or patchify"),
    ("kernel", 4, "odd"),
    ("kernel", 0, "positive"),
    ("width", -8, "positive"),
    ("depths", (3, 3, 9), "4 stages"),
    ("depths", (3, 0, 9, 3), "positive whole"),
    ("groups", 7, "not divisible"),
    ("groups", "sideways", "depthwise"),
    ("expansion", 0, "positive"),
    ("expansion", 0.35, "whole number"),
    ("norm", "gn", "bn or ln"),
    ("layer_scale", -1.0, "positive"),
    ("act", "tanh", "relu or gelu"),
])
def test_bad_values_name_field_value_and_allowed(field, value, needle):
    with pytest.raises(ValueError) as exc:
        dataclasses.replace(presets()["convnext_t"], **{field: value})
    msg = str(exc.value)
    assert field in msg and repr(value) in msg and needle in msg


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="'kernal'"):
        from_fields({"kernal": 3}, base=Arch())


def test_values_are_coerced_from_yaml_and_cli_forms():
    a = Arch(depths="2,2,6,2", groups="32", width="64", expansion="4", layer_scale="none",
             kernel=3.0, spatial_conv="middle")
    assert a.depths == (2, 2, 6, 2) and a.groups == 32 and a.width == 64
    assert a.expansion == 4.0 and a.layer_scale is None and a.kernel == 3


def test_stream_and_hidden_widths_follow_the_design_doc():
    r50, cnx = presets()["resnet50"], presets()["convnext_t"]
    assert r50.stage_widths(0) == (256, 64) and r50.stage_widths(3) == (2048, 512)
    assert cnx.stage_widths(0) == (96, 384) and cnx.stage_widths(3) == (768, 3072)


def test_row_round_trip_for_every_preset():
    for name, arch in presets().items():
        row = arch.to_row()
        assert set(FIELD_NAMES) <= set(row)
        assert isinstance(row["depths"], str) and isinstance(row["groups"], str)
        assert Arch.from_row(row) == arch, name
        assert Arch.from_row(json.loads(json.dumps(arch.to_dict()))) == arch


def test_preset_names_and_roadmap_order():
    names = list(presets())
    assert names[:5] == ["resnet50", "resnext50_32x4d", "convnext_t", "convnext_s", "convnext_b"]
    steps = [n for n in names if n.startswith("roadmap/")]
    assert len(steps) == 17
    assert [s[:11] for s in steps] == [f"roadmap/{i:02d}-" for i in range(17)]
    assert [n for n, _ in roadmap()] == steps


def test_load_design_from_files(tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text("base: convnext_t\nkernel: 5\n")
    assert load_design(str(f), ["depths=2,2,6,2"]) == dataclasses.replace(
        presets()["convnext_t"], kernel=5, depths=(2, 2, 6, 2))
    j = tmp_path / "d.json"
    j.write_text(json.dumps(presets()["resnet50"].to_dict()))
    assert load_design(str(j)) == presets()["resnet50"]
    partial = tmp_path / "p.yaml"
    partial.write_text("kernel: 5\n")
    with pytest.raises(ValueError, match="missing field"):
        load_design(str(partial))
    bad = tmp_path / "b.yaml"
    bad.write_text("base: convnext_t\nkernel: 6\n")
    with pytest.raises(ValueError, match=r"b\.yaml.*kernel=6"):
        load_design(str(bad))


def test_load_design_unknown_names():
    with pytest.raises(ValueError, match="neither a preset"):
        load_design("convnext_xl")
    with pytest.raises(ValueError, match="unknown design field 'colour'"):
        load_design("convnext_t", ["colour=red"])
    with pytest.raises(ValueError, match="not key=value"):
        load_design("convnext_t", ["kernel5"])
