"""Design spaces read from YAML: the dimensions a search may vary and their allowed values.

A space file maps every design field to one value (fixed) or a list of values (a dimension).
It is validated when loaded, naming the file and the key, so a typo never surfaces halfway
through a search.

Not every combination of a space's values is a valid design: `groups` must divide the channels
of every spatial conv, and `width` with `expansion` must give whole channel counts. Which
combinations are valid is worked out per rule (`ValidDesigns`), so sampling, enumeration and
the cheapest design only ever see valid designs, however few there are, and a space without
any says which dimension is to blame.
"""
from __future__ import annotations

import bisect
import itertools
import math
import random
from array import array
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from ..userfile import load_file, shown
from .arch import (
    FIELD_NAMES,
    GROUP_RULE_FIELDS,
    GROUPS_DEPTHWISE,
    Arch,
    channel_problem,
    check_field,
    group_divisor,
)
from .codec import param, text
from .complexity import FLOP_FREE_FIELDS, complexity, parse_flops

EXHAUSTIVE_LIMIT = 10**6
SAMPLE_ESTIMATE = 20_000
TIED_LIMIT = 200_000  # combinations of the fields the group rule reads (GROUP_RULE_FIELDS)
_TOP_KEYS = {"name", "description", "dimensions"}
NAME_MAX = 100


@dataclass(frozen=True)
class ValidDesigns:
    """The valid designs of a space, known without trying every combination.

    Only the fields in GROUP_RULE_FIELDS decide whether a design is valid (with `groups`):
    the others ("free" fields) combine with anything. So every combination of the tied
    fields is visited once: if its width and expansion give whole channel counts, the `groups`
    values it allows are those dividing its spatial convs' gcd. `bucket_of[i]` names the set
    of allowed groups (in `buckets`) of tied combination i (mixed radix, last field fastest;
    -1 when none), and `cumulative[i]` counts the valid (tied combination, groups) pairs up to
    and including i, so a uniform draw is one `randrange` and one bisection.
    """

    tied: tuple[tuple[str, tuple[Any, ...]], ...]
    groups: tuple[Any, ...]
    free: tuple[tuple[str, tuple[Any, ...]], ...]
    buckets: tuple[tuple[int, ...], ...]      # indices into `groups`
    bucket_of: array
    cumulative: array

    @classmethod
    def of(cls, dims: tuple[tuple[str, tuple[Any, ...]], ...], where: str) -> "ValidDesigns":
        values = dict(dims)
        tied = tuple((f, values[f]) for f in GROUP_RULE_FIELDS)
        n = math.prod(len(v) for _, v in tied)
        if n > TIED_LIMIT:
            sizes = " x ".join(f"{len(v)} {f}" for f, v in tied)
            raise ValueError(f"{where}: {sizes} = {n:,} combinations of the fields that decide "
                             f"which groups are valid; at most {TIED_LIMIT:,}: give fewer "
                             "values of width, expansion, depths or stem_width")
        groups = values["groups"]
        ints = [(i, g) for i, g in enumerate(groups) if g != GROUPS_DEPTHWISE]
        always = [i for i, g in enumerate(groups) if g == GROUPS_DEPTHWISE]
        by_divisor: dict[int, int] = {}
        buckets: list[tuple[int, ...]] = []
        bucket_of, cumulative, total = array("i"), array("q"), 0
        for combo in itertools.product(*(v for _, v in tied)):
            # combo follows GROUP_RULE_FIELDS, the order of group_divisor's arguments
            b = -1
            if channel_problem(combo[0], combo[1]) is None:
                divisor = group_divisor(*combo)
                b = by_divisor.get(divisor, -1)
                if b < 0:
                    allowed = sorted(always + [i for i, g in ints if divisor % g == 0])
                    b = by_divisor[divisor] = len(buckets)
                    buckets.append(tuple(allowed))
                total += len(buckets[b])
            bucket_of.append(b)
            cumulative.append(total)
        free = tuple((f, v) for f, v in dims if f not in GROUP_RULE_FIELDS and f != "groups")
        return cls(tied, groups, free, tuple(buckets), bucket_of, cumulative)

    @property
    def pairs(self) -> int:
        """Valid (tied combination, groups) pairs."""
        return self.cumulative[-1] if len(self.cumulative) else 0

    @property
    def count(self) -> int:
        return self.pairs * math.prod(len(v) for _, v in self.free)

    def _decode(self, index: int) -> dict[str, Any]:
        out = {}
        for field, values in reversed(self.tied):
            index, k = divmod(index, len(values))
            out[field] = values[k]
        return out

    def _encode(self, chosen: dict[str, Any]) -> int:
        index = 0
        for field, values in self.tied:
            index = index * len(values) + values.index(chosen[field])
        return index

    def _allowed(self, index: int) -> tuple[int, ...]:
        b = self.bucket_of[index]
        return self.buckets[b] if b >= 0 else ()

    def _draw_tied(self, rng: random.Random) -> dict[str, Any]:
        r = rng.randrange(self.pairs)
        index = bisect.bisect_right(self.cumulative, r)
        allowed = self._allowed(index)
        start = self.cumulative[index] - len(allowed)
        return {**self._decode(index), "groups": self.groups[allowed[r - start]]}

    def sample(self, rng: random.Random) -> Arch:
        """A design drawn uniformly from the valid ones (the space must have some)."""
        values = self._draw_tied(rng)
        values.update({f: rng.choice(v) for f, v in self.free})
        return Arch(**values)

    def nearest(self, chosen: dict[str, Any], rng: random.Random) -> Arch:
        """A valid design as close to `chosen` (a value for every field) as the rules allow:
        `chosen` itself if valid; else its tied fields with a `groups` they allow, drawn
        uniformly; else a valid tied combination and groups drawn uniformly. The free fields
        are always kept."""
        index = self._encode(chosen)
        allowed = self._allowed(index)
        values = dict(chosen)
        if allowed:
            if self.groups.index(chosen["groups"]) not in allowed:
                values["groups"] = self.groups[rng.choice(allowed)]
        else:
            values.update(self._draw_tied(rng))
        return Arch(**values)

    def holding(self, fields: tuple[str, ...]) -> "ValidDesigns":
        """The same valid designs with each free field named in `fields` held at its first
        value (the tied fields and `groups` are untouched, so every design is still valid)."""
        return replace(self, free=tuple((f, v[:1]) if f in fields else (f, v)
                                        for f, v in self.free))

    def designs(self) -> Iterator[Arch]:
        """Every valid design, in a fixed order."""
        for index in range(len(self.bucket_of)):
            allowed = self._allowed(index)
            if not allowed:
                continue
            tied = self._decode(index)
            for gi in allowed:
                for rest in itertools.product(*(v for _, v in self.free)):
                    yield Arch(**tied, groups=self.groups[gi],
                               **dict(zip((f for f, _ in self.free), rest)))

    def why_none(self) -> str:
        """Which dimension leaves the space without a valid design (only when it has none)."""
        values = dict(self.tied)
        problems = [channel_problem(w, e) for w in values["width"] for e in values["expansion"]]
        if all(problems):
            pairs = len(problems)
            return (f"no width with any expansion gives whole channel counts (of {pairs} "
                    f"pair(s), for one: {problems[0]}); change width or expansion")
        divisors = sorted({group_divisor(**self._decode(i))
                           for i in range(len(self.bucket_of)) if self.bucket_of[i] >= 0})
        shown_div = ", ".join(map(str, divisors[:8])) + (", ..." if len(divisors) > 8 else "")
        return (f"no value of groups ({', '.join(shown(g) for g in self.groups[:8])}"
                f"{', ...' if len(self.groups) > 8 else ''}) divides the channels of every "
                f"spatial conv of any design (the designs' channel counts have greatest "
                f"common divisor {shown_div}); add a divisor of one of these, or depthwise, "
                "to groups")


@dataclass(frozen=True)
class DesignSpace:
    name: str
    dims: tuple[tuple[str, tuple[Any, ...]], ...]   # (field, allowed values), every field
    source: str = ""
    description: str = ""

    # ----- loading -----
    @classmethod
    def from_yaml(cls, path: str | Path) -> "DesignSpace":
        path = Path(path)
        data = load_file(path, "yaml")  # bounded and checked: see userfile
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "DesignSpace":
        where = source
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a design space must be a mapping with a 'dimensions' key")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {_names(unknown)}: expected "
                             f"{sorted(_TOP_KEYS)}")
        for key in ("name", "description"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"{where}: {key} must be text, not {shown(data[key])}")
        if len(data.get("name") or "") > NAME_MAX:
            raise ValueError(f"{where}: name {shown(data['name'])} is longer than {NAME_MAX} "
                             "characters")
        dims_raw = data.get("dimensions")
        if not isinstance(dims_raw, dict) or not dims_raw:
            raise ValueError(f"{where}: 'dimensions' must be a non-empty mapping of field: values")
        unknown = set(dims_raw) - set(FIELD_NAMES)
        if unknown:
            raise ValueError(f"{where}: unknown dimension(s) {_names(unknown)}: expected some of "
                             f"{', '.join(FIELD_NAMES)}")
        missing = [f for f in FIELD_NAMES if f not in dims_raw and f != "stem_width"]
        if missing:
            raise ValueError(f"{where}: missing dimension(s) {missing}: give every design field "
                             "a value or a list of values")
        dims = []
        for field in FIELD_NAMES:
            raw = dims_raw.get(field, None)
            # depths is itself a list: a list of lists is a dimension, a flat list one value.
            is_list = isinstance(raw, list) and (
                field != "depths" or (raw and all(isinstance(v, (list, str)) for v in raw)))
            values = raw if is_list else [raw]
            if not values:
                raise ValueError(f"{where}: dimension {field!r} has no values")
            checked = []
            for v in values:
                try:
                    checked.append(check_field(field, v))
                except ValueError as exc:
                    raise ValueError(f"{where}: dimension {field!r}: {exc}") from None
            labels = [text(v) for v in checked]
            if len(set(labels)) != len(labels):
                dup = sorted({str(x) for x in labels if labels.count(x) > 1})
                raise ValueError(f"{where}: dimension {field!r} repeats value(s) "
                                 f"{_names(dup)}")
            dims.append((field, tuple(checked)))
        name = str(data.get("name") or Path(source).stem)
        return cls(name=name, dims=tuple(dims), source=source,
                   description=str(data.get("description") or ""))

    # ----- shape -----
    @property
    def dimensions(self) -> dict[str, tuple[Any, ...]]:
        """Only the fields that vary."""
        return {k: v for k, v in self.dims if len(v) > 1}

    @property
    def fixed(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self.dims if len(v) == 1}

    @property
    def size(self) -> int:
        return math.prod(len(v) for _, v in self.dims)

    def contains(self, arch: Arch) -> bool:
        return all(text(getattr(arch, k)) in {text(v) for v in vs} for k, vs in self.dims)

    # ----- designs -----
    def make(self, values: dict[str, Any]) -> Arch:
        """The design with these values (labels or values) for the varying fields."""
        full = dict(self.fixed)
        for field, chosen in values.items():
            full[field] = self._value(field, chosen)
        return Arch(**full)

    def _value(self, field: str, chosen: Any) -> Any:
        """The space's value of `field` given as a label or a value."""
        options = dict(self.dims).get(field)
        if options is None:
            raise ValueError(f"{shown(field)} is not a dimension of space {self.name!r}")
        by_label = {text(v): v for v in options}
        key = text(chosen)
        if key not in by_label:
            raise ValueError(f"{field}={shown(chosen)} is not in space {self.name!r}: "
                             f"expected one of {list(by_label)}")
        return by_label[key]

    @cached_property
    def valid(self) -> ValidDesigns:
        """Which combinations are valid designs (worked out once, on first use)."""
        return ValidDesigns.of(self.dims, self.source or self.name)

    @property
    def valid_count(self) -> int:
        return self.valid.count

    def enumerate(self) -> Iterator[Arch]:
        """Every valid design, in a fixed order (invalid combinations are never built)."""
        return self.valid.designs()

    def sample(self, rng: random.Random) -> Arch:
        """A design drawn uniformly from the valid ones, however few they are."""
        if not self.valid.pairs:
            self._no_valid_design()
        return self.valid.sample(rng)

    def nearest(self, values: dict[str, Any], rng: random.Random) -> Arch:
        """The valid design closest to these values (labels or values; missing fields take
        the fixed ones): the searcher's answer when Optuna, which draws each dimension on its
        own, proposes a combination that breaks a cross-field rule."""
        if not self.valid.pairs:
            self._no_valid_design()
        full = {**self.fixed, **{f: self._value(f, v) for f, v in values.items()}}
        return self.valid.nearest(full, rng)

    def suggest(self, trial: Any) -> Arch:
        """The design an Optuna trial proposes; categorical labels keep the storage portable.

        Raises ValueError when the proposed combination breaks a cross-field rule (the caller
        reports such a trial as infeasible).
        """
        values = {}
        for field, options in self.dimensions.items():
            values[field] = trial.suggest_categorical(field, [param(v) for v in options])
        return self.make(values)

    # ----- complexity -----
    def describe(self, budget: float | str | None = None, seed: int = 0,
                 resolution: int = 224) -> dict[str, Any]:
        """Size, valid designs, designs within the budget and FLOP range: the FLOPs are
        counted on every valid design or on a uniform sample of them, and it says which."""
        limit = parse_flops(budget) if budget is not None else None
        valid = self.valid_count
        if not valid:
            self._no_valid_design()
        if valid <= EXHAUSTIVE_LIMIT:
            method, designs = "exhaustive", list(self.enumerate())
        else:
            rng = random.Random(seed)
            method = f"estimated from {SAMPLE_ESTIMATE} random valid designs"
            designs = [self.sample(rng) for _ in range(SAMPLE_ESTIMATE)]
        flops = [complexity(a, resolution).flops for a in designs]
        info: dict[str, Any] = {
            "name": self.name, "source": self.source, "description": self.description,
            "dimensions": {k: [param(x) for x in v] for k, v in self.dimensions.items()},
            "fixed": {k: param(v) for k, v in self.fixed.items()},
            "size": self.size, "valid": valid, "method": method,
            "flops_min": min(flops), "flops_max": max(flops),
        }
        if limit is not None:
            within = sum(f <= limit for f in flops)
            info["budget"] = limit
            if method == "exhaustive":
                info["within_budget"] = within
            else:
                info["within_budget"] = round(within / len(flops) * valid)
            info["within_budget_share"] = within / len(flops)
        return info

    def cheapest(self, resolution: int = 224) -> Arch:
        """The design with the fewest FLOPs (exhaustive, or the cheapest of many samples).

        The fields that change no FLOPs are held at one value while searching: the shipped
        space has 8x fewer designs to count that way, and every search checks its budget with
        this before it starts (10 s of the README's main job otherwise)."""
        if not self.valid.pairs:
            self._no_valid_design()
        cut = self.valid.holding(FLOP_FREE_FIELDS)
        if cut.count <= EXHAUSTIVE_LIMIT:
            designs = cut.designs()
        else:
            rng = random.Random(0)
            designs = (self.sample(rng) for _ in range(SAMPLE_ESTIMATE))
        return min(designs, key=lambda a: complexity(a, resolution).flops)

    def _no_valid_design(self) -> None:
        """Raise: no combination of the space's values is a valid design; say which
        dimension is to blame."""
        raise ValueError(f"{self.source or self.name}: none of the space's {self.size:,} "
                         f"combinations is a valid design: {self.valid.why_none()}")


def _names(keys: Any) -> str:
    """Keys (of any type, any length) for a message: sorted, each shortened."""
    return "[" + ", ".join(shown(k) for k in sorted(keys, key=str)) + "]"


def shipped_spaces() -> dict[str, Path]:
    from .roadmap import spaces_dir

    return {p.stem: p for p in sorted(spaces_dir().glob("*.yaml")) if p.stem != "roadmap"}


def load_space(spec: str | Path) -> DesignSpace:
    """A shipped space by name (`convnext`, `small`) or a path to a YAML file."""
    table = shipped_spaces()
    if isinstance(spec, str) and spec in table:
        return DesignSpace.from_yaml(table[spec])
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"space {shown(str(spec))} is neither a shipped space "
                         f"({', '.join(table)}) nor a .yaml file")
    return DesignSpace.from_yaml(path)
