"""The design (`Arch`): one point of the ConvNeXt design space, and the named presets.

A design is plain data. Its field names are the product's vocabulary: YAML keys in
`search_spaces/`, columns in results tables, words on the command line. Validation happens
once, here, so that the builder and the complexity count can trust every design they see.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..userfile import load_file, shown

STEMS = ("resnet", "patchify")
GROUPS_DEPTHWISE = "depthwise"
SPATIAL_CONVS = ("middle", "first")
ACTS = ("relu", "gelu", "silu")
HOW_MANY = ("every", "single")
NORMS = ("bn", "ln")
DOWNSAMPLES = ("block", "separate")
NUM_STAGES = 4
WIDTH_ROUND = 8

# What each field accepts, in words, for error messages.
ALLOWED: dict[str, str] = {
    "stem": " or ".join(STEMS),
    "depths": f"{NUM_STAGES} positive integers, e.g. 3,3,9,3",
    "width": "a positive integer (stage-1 narrow width C)",
    "expansion": "a positive number (hidden width / stream width, e.g. 0.25 or 4)",
    "groups": f"a positive integer or '{GROUPS_DEPTHWISE}'",
    "kernel": "an odd positive integer",
    "spatial_conv": " or ".join(SPATIAL_CONVS),
    "act": " or ".join(ACTS),
    "activations": " or ".join(HOW_MANY),
    "norm": " or ".join(NORMS),
    "norms": " or ".join(HOW_MANY),
    "downsample": " or ".join(DOWNSAMPLES),
    "layer_scale": "a positive number or none",
    "stem_width": "a positive integer or none (none: the stem outputs `width` channels)",
}


def _bad(field: str, value: Any, why: str = "") -> ValueError:
    extra = f" ({why})" if why else ""
    return ValueError(f"invalid {field}={shown(value)}{extra}: expected {ALLOWED[field]}")


@dataclass(frozen=True)
class Arch:
    """One network design; ConvNeXt-T's values are the defaults.

    `width` is C, the narrower of a block's two widths in stage 1, and stage i uses C*2^i.
    With expansion e <= 1 the block's stream is C/e wide and its hidden layer C; with e >= 1
    the stream is C and the hidden layer C*e. So ResNet-50 is (width 64, e 0.25) and ConvNeXt-T
    (width 96, e 4), as in the paper's Figure 3.
    """

    stem: str = "patchify"
    depths: tuple[int, ...] = (3, 3, 9, 3)
    width: int = 96
    expansion: float = 4.0
    groups: int | str = GROUPS_DEPTHWISE
    kernel: int = 7
    spatial_conv: str = "first"
    act: str = "gelu"
    activations: str = "single"
    norm: str = "ln"
    norms: str = "single"
    downsample: str = "separate"
    layer_scale: float | None = 1e-6
    stem_width: int | None = None

    def __post_init__(self) -> None:
        # Normalise types first (YAML and CLI give lists, strings, ints for floats), then check.
        for name in FIELD_NAMES:
            object.__setattr__(self, name, check_field(name, getattr(self, name)))
        # Every channel count the network uses must be a whole number, and every grouped
        # conv's channels must split evenly into its groups.
        why = channel_problem(self.width, self.expansion)
        if why:
            raise _bad("expansion", self.expansion, why)
        if isinstance(self.groups, int):
            for ch in self.spatial_channels():
                if ch % self.groups:
                    raise _bad("groups", self.groups,
                               f"a spatial conv has {ch} channels, not divisible into "
                               f"{self.groups} groups; change width, expansion or groups")

    # ----- derived widths: the one place that turns fields into channel counts -----
    def stage_widths(self, stage: int) -> tuple[int, int]:
        """(stream, hidden) channel counts of the blocks of `stage` (0-based)."""
        return stage_widths(self.width, self.expansion, stage)

    @property
    def stem_channels(self) -> int:
        return self.width if self.stem_width is None else self.stem_width

    def spatial_channels(self) -> Iterator[int]:
        """Channel counts of every spatial conv; the group rule is checked on these."""
        return spatial_channels(self.width, self.expansion, self.spatial_conv, self.downsample,
                                self.depths, self.stem_width)

    # ----- conversions -----
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["depths"] = list(self.depths)
        return d

    def to_row(self) -> dict[str, Any]:
        """The design as one row of the trials table (see `codec.cells`)."""
        from .codec import cells

        return cells(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Arch":
        """Inverse of `to_row`; also takes `to_dict`'s mapping (see `codec.from_cells`)."""
        from .codec import from_cells

        return from_cells(row)

    def key(self) -> str:
        """A stable string identifying the design (for de-duplication and resume)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def with_width(self, width: int) -> "Arch":
        """The same design at another width; an explicit stem width scales in proportion."""
        stem = None
        if self.stem_width is not None:
            stem = max(WIDTH_ROUND, round_to(self.stem_width * width / self.width, WIDTH_ROUND))
        return dataclasses.replace(self, width=width, stem_width=stem)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Arch))

# ----- the cross-field rules, as functions of plain values -----
# Arch checks every design with these; DesignSpace uses them to know which combinations of a
# space's values are valid without trying every combination (see space.ValidDesigns).
CHANNEL_RULE_FIELDS = ("width", "expansion")
GROUP_RULE_FIELDS = ("width", "expansion", "spatial_conv", "downsample", "depths", "stem_width")


def channel_problem(width: int, expansion: float) -> str | None:
    """Why this width and expansion give a channel count that is not a whole number (or an
    absurd one), or None when they are fine."""
    if expansion < 1 and width / expansion > 1_000_000:
        return (f"too small: width {width} / expansion would be more than 1,000,000 "
                "channels")
    if expansion < 1 and not _is_whole(width / expansion):
        return f"width {width} / expansion is not a whole number of channels"
    if expansion > 1 and not _is_whole(width * expansion):
        return f"width {width} * expansion is not a whole number of channels"
    return None


def stage_widths(width: int, expansion: float, stage: int) -> tuple[int, int]:
    """(stream, hidden) channel counts of the blocks of `stage` (0-based)."""
    c = width * 2**stage
    if expansion <= 1:
        return round(c / expansion), c
    return c, round(c * expansion)


def spatial_channels(width: int, expansion: float, spatial_conv: str, downsample: str,
                     depths: tuple[int, ...], stem_width: int | None) -> Iterator[int]:
    """Channel counts of every spatial conv of a design with these values."""
    prev = width if stem_width is None else stem_width
    for i, depth in enumerate(depths):
        stream, hidden = stage_widths(width, expansion, i)
        if spatial_conv == "middle":
            yield hidden
        else:
            # 'first' convolves the block input; with separate downsampling the stage
            # input is already `stream` wide.
            yield stream if (downsample == "separate" and i > 0) else prev
            if depth > 1:
                yield stream
        prev = stream


def group_divisor(width: int, expansion: float, spatial_conv: str, downsample: str,
                  depths: tuple[int, ...], stem_width: int | None) -> int:
    """The number every integer `groups` must divide: the gcd of the spatial convs' channels."""
    return math.gcd(*spatial_channels(width, expansion, spatial_conv, downsample, depths,
                                      stem_width))


def round_to(x: float, m: int) -> int:
    return int(m * max(1, round(x / m)))


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9


def _as_int(name: str, value: Any, positive: bool = True) -> int:
    if isinstance(value, bool):
        raise _bad(name, value)
    if isinstance(value, str):
        value = value.strip()
        try:
            value = int(value)
        except ValueError:
            raise _bad(name, value) from None
    if isinstance(value, float):
        if not value.is_integer():
            raise _bad(name, value)
        value = int(value)
    if not isinstance(value, int):
        raise _bad(name, value)
    if positive and value <= 0:
        raise _bad(name, value, "must be positive")
    if value > 1_000_000:
        raise _bad(name, value, "too large")
    return value


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(name, value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _bad(name, value) from None
    if not math.isfinite(out) or out <= 0:
        raise _bad(name, value, "must be a finite positive number")
    if out > 1e6:
        raise _bad(name, value, "too large")
    return out


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", ""))


_CHOICES = {"stem": STEMS, "spatial_conv": SPATIAL_CONVS, "act": ACTS, "activations": HOW_MANY,
            "norm": NORMS, "norms": HOW_MANY, "downsample": DOWNSAMPLES}


def check_field(name: str, value: Any) -> Any:
    """One field's value, normalised (YAML and CLI give lists, strings, ints for floats).

    Rules that involve several fields (the group rule, whole channel counts) are Arch's.
    """
    if name not in ALLOWED:
        raise ValueError(f"unknown design field {shown(name)}: expected one of "
                         f"{', '.join(FIELD_NAMES)}")
    value = _coerce(name, value)
    if name in _CHOICES and value not in _CHOICES[name]:
        raise _bad(name, value)
    if name == "kernel" and value % 2 == 0:
        raise _bad("kernel", value, "even kernels cannot keep the feature map centred")
    return value


def _coerce(name: str, value: Any) -> Any:
    if name == "depths":
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v != ""]
        if not isinstance(value, (list, tuple)) or len(value) != NUM_STAGES:
            raise _bad("depths", tuple(value) if isinstance(value, list) else value,
                       f"need exactly {NUM_STAGES} stages")
        try:
            return tuple(_as_int("depths", v) for v in value)
        except ValueError:
            raise _bad("depths", tuple(value), "every stage needs a positive whole number "
                       "of blocks") from None
    if name in ("width", "kernel"):
        return _as_int(name, value)
    if name == "expansion":
        return _as_float(name, value)
    if name == "groups":
        if isinstance(value, str) and value.strip().lower() in (GROUPS_DEPTHWISE, "dw"):
            return GROUPS_DEPTHWISE
        return _as_int("groups", value)
    if name == "layer_scale":
        return None if _is_none(value) else _as_float(name, value)
    if name == "stem_width":
        if _is_none(value) or value in (-1, "-1"):
            return None
        return _as_int(name, value)
    if not isinstance(value, str):
        raise _bad(name, value)
    return value.strip().lower()


def from_fields(values: Mapping[str, Any], base: Arch | None = None) -> Arch:
    """An Arch from a mapping of field values, refusing unknown fields by name.

    Without `base`, every field must be given: a design file that silently inherits
    ConvNeXt-T's values for forgotten fields would measure the wrong network.
    """
    unknown = sorted(set(values) - set(FIELD_NAMES), key=str)  # keys may be of any type
    if unknown:
        raise ValueError(f"unknown design field(s) {', '.join(map(shown, unknown))}: "
                         f"expected some of {', '.join(FIELD_NAMES)}")
    if base is None:
        missing = [n for n in FIELD_NAMES if n not in values and n != "stem_width"]
        if missing:
            raise ValueError(f"design is missing field(s) {', '.join(missing)} "
                             "(give every field, or a 'base' preset to start from)")
        return Arch(**values)
    return dataclasses.replace(base, **values)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`key=value` words from the command line, kept as strings for Arch to coerce."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {shown(item)} is not key=value (e.g. kernel=5 "
                         "depths=2,2,6,2)")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in FIELD_NAMES:
            raise ValueError(f"unknown design field {shown(key)} in override {shown(item)}: "
                             f"expected one of {', '.join(FIELD_NAMES)}")
        out[key] = value
    return out


# ----- presets -----
#: The two corners every search trains besides its proposals (its `reference` column).
REFERENCES = ("convnext_t", "resnet50")
RESNET50 = Arch(stem="resnet", depths=(3, 4, 6, 3), width=64, expansion=0.25, groups=1,
                kernel=3, spatial_conv="middle", act="relu", activations="every", norm="bn",
                norms="every", downsample="block", layer_scale=None)


@lru_cache(maxsize=1)
def _presets() -> dict[str, Arch]:
    out = {
        "resnet50": RESNET50,
        # ResNeXt-50 32x4d: 32 groups of 4 channels, so the narrow width is 128 and the
        # stream 256 (expansion 0.5); its stem keeps ResNet's 64 channels.
        "resnext50_32x4d": dataclasses.replace(RESNET50, width=128, expansion=0.5, groups=32,
                                               stem_width=64),
        "convnext_t": Arch(),
        "convnext_s": Arch(depths=(3, 3, 27, 3)),
        "convnext_b": Arch(depths=(3, 3, 27, 3), width=128),
    }
    from .roadmap import roadmap

    out.update(roadmap())
    return out


def presets() -> dict[str, Arch]:
    """Named designs: the real networks, then the paper's roadmap steps in order."""
    return dict(_presets())


def load_design(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> Arch:
    """A preset name or a YAML/JSON file of fields, with `key=value` overrides on top."""
    table = _presets()
    if spec in table:
        arch = table[spec]
    else:
        path = Path(spec)
        if path.suffix.lower() not in (".yaml", ".yml", ".json") or not path.is_file():
            names = ", ".join(n for n in table if not n.startswith("roadmap/"))
            raise ValueError(f"design {shown(spec)} is neither a preset ({names}, roadmap/NN-...) "
                             "nor an existing .yaml/.yml/.json file")
        arch = design_from_file(path)
    extra = parse_overrides(overrides)
    return dataclasses.replace(arch, **extra) if extra else arch


def design_from_file(path: Path) -> Arch:
    """The design in a YAML or JSON file: every field, or a `base` preset and the changes."""
    data = load_file(path)  # bounded and checked: see userfile
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a design file must be a mapping of field: value")
    data = dict(data)
    base_name = data.pop("base", None)
    base = None
    if base_name is not None:
        if not isinstance(base_name, str) or base_name not in _presets():
            names = ", ".join(n for n in _presets() if not n.startswith("roadmap/"))
            raise ValueError(f"{path}: base {shown(base_name)} is not a preset: expected one "
                             f"of {names} or roadmap/NN-...")
        base = _presets()[base_name]
    try:
        return from_fields(data, base=base)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
