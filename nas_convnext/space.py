"""Design spaces read from YAML: the dimensions a search may vary and their allowed values.

A space file maps every design field to one value (fixed) or a list of values (a dimension).
It is validated when loaded, naming the file and the key, so a typo never surfaces halfway
through a search.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from .arch import FIELD_NAMES, Arch, check_field
from .complexity import complexity, parse_flops

EXHAUSTIVE_LIMIT = 10**6
SAMPLE_ESTIMATE = 20_000
_TOP_KEYS = {"name", "description", "dimensions"}


def label(value: Any) -> Any:
    """A value as Optuna and tables can hold it: lists and unions become strings."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return value if not isinstance(value, bool) else str(value)


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
        if not path.is_file():
            raise ValueError(f"design space file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"{path}: not valid YAML ({first})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a text file") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "DesignSpace":
        where = source
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a design space must be a mapping with a 'dimensions' key")
        unknown = sorted(map(str, set(data) - _TOP_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}: expected {sorted(_TOP_KEYS)}")
        dims_raw = data.get("dimensions")
        if not isinstance(dims_raw, dict) or not dims_raw:
            raise ValueError(f"{where}: 'dimensions' must be a non-empty mapping of field: values")
        unknown = sorted(map(str, set(dims_raw) - set(FIELD_NAMES)))
        if unknown:
            raise ValueError(f"{where}: unknown dimension(s) {unknown}: expected some of "
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
            labels = [label(v) for v in checked]
            if len(set(labels)) != len(labels):
                dup = sorted({str(x) for x in labels if labels.count(x) > 1})
                raise ValueError(f"{where}: dimension {field!r} repeats value(s) {dup}")
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

    def choices(self, field: str) -> tuple[Any, ...]:
        return dict(self.dims)[field]

    def contains(self, arch: Arch) -> bool:
        return all(label(getattr(arch, k)) in {label(v) for v in vs} for k, vs in self.dims)

    # ----- designs -----
    def make(self, values: dict[str, Any]) -> Arch:
        """The design with these values (labels or values) for the varying fields."""
        full = dict(self.fixed)
        for field, chosen in values.items():
            options = dict(self.dims).get(field)
            if options is None:
                raise ValueError(f"{field!r} is not a dimension of space {self.name!r}")
            by_label = {label(v): v for v in options}
            key = label(chosen)
            if key not in by_label:
                raise ValueError(f"{field}={chosen!r} is not in space {self.name!r}: "
                                 f"expected one of {list(by_label)}")
            full[field] = by_label[key]
        return Arch(**full)

    def enumerate(self) -> Iterator[Arch]:
        """Every valid design, in a fixed order (invalid combinations are skipped)."""
        names = [k for k, _ in self.dims]
        for combo in itertools.product(*(v for _, v in self.dims)):
            try:
                yield Arch(**dict(zip(names, combo)))
            except ValueError:
                continue

    def sample(self, rng: random.Random, max_tries: int = 1000) -> Arch:
        """A uniformly drawn valid design."""
        for _ in range(max_tries):
            try:
                return Arch(**{k: rng.choice(v) for k, v in self.dims})
            except ValueError:
                continue
        raise ValueError(f"space {self.name!r}: no valid design found in {max_tries} draws")

    def suggest(self, trial: Any) -> Arch:
        """The design an Optuna trial proposes; categorical labels keep the storage portable.

        Raises ValueError when the proposed combination breaks a cross-field rule (the caller
        reports such a trial as infeasible).
        """
        values = {}
        for field, options in self.dimensions.items():
            values[field] = trial.suggest_categorical(field, [label(v) for v in options])
        return self.make(values)

    # ----- complexity -----
    def describe(self, budget: float | str | None = None, seed: int = 0,
                 resolution: int = 224) -> dict[str, Any]:
        """Size, designs within the budget and FLOP range: exhaustive or sampled, and says which."""
        limit = parse_flops(budget) if budget is not None else None
        if self.size <= EXHAUSTIVE_LIMIT:
            method, designs = "exhaustive", list(self.enumerate())
            valid = len(designs)
        else:
            rng = random.Random(seed)
            method = f"estimated from {SAMPLE_ESTIMATE} random designs"
            designs = [self.sample(rng) for _ in range(SAMPLE_ESTIMATE)]
            valid = None
        if not designs:
            self._no_valid_design()
        flops = [complexity(a, resolution).flops for a in designs]
        info: dict[str, Any] = {
            "name": self.name, "source": self.source, "description": self.description,
            "dimensions": {k: [label(x) for x in v] for k, v in self.dimensions.items()},
            "fixed": {k: label(v) for k, v in self.fixed.items()},
            "size": self.size, "valid": valid, "method": method,
            "flops_min": min(flops) if flops else None, "flops_max": max(flops) if flops else None,
        }
        if limit is not None:
            within = sum(f <= limit for f in flops)
            info["budget"] = limit
            if method == "exhaustive":
                info["within_budget"] = within
            else:
                info["within_budget"] = round(within / len(flops) * self.size)
            info["within_budget_share"] = within / len(flops) if flops else 0.0
        return info

    def cheapest(self, resolution: int = 224) -> Arch:
        """The design with the fewest FLOPs (exhaustive, or the cheapest of many samples)."""
        if self.size <= EXHAUSTIVE_LIMIT:
            designs = self.enumerate()
        else:
            rng = random.Random(0)
            designs = (self.sample(rng) for _ in range(SAMPLE_ESTIMATE))
        best = min(designs, key=lambda a: complexity(a, resolution).flops, default=None)
        if best is None:
            self._no_valid_design()
        return best

    def _no_valid_design(self) -> None:
        """Raise: no combination of the space's values is a valid design; say why for one."""
        why = ""
        try:
            Arch(**{k: v[0] for k, v in self.dims})
        except ValueError as exc:
            why = f" (the first, for one: {exc})"
        raise ValueError(f"{self.source or self.name}: none of the space's {self.size:,} "
                         f"combinations is a valid design{why}; change its values")


def shipped_spaces() -> dict[str, Path]:
    from .roadmap import SPACES_DIR

    return {p.stem: p for p in sorted(SPACES_DIR.glob("*.yaml")) if p.stem != "roadmap"}


def load_space(spec: str | Path) -> DesignSpace:
    """A shipped space by name (`convnext`, `small`) or a path to a YAML file."""
    table = shipped_spaces()
    if isinstance(spec, str) and spec in table:
        return DesignSpace.from_yaml(table[spec])
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"space {str(spec)!r} is neither a shipped space "
                         f"({', '.join(table)}) nor a .yaml file")
    return DesignSpace.from_yaml(path)
