"""The paper's roadmap from ResNet-50 to ConvNeXt-T, read from `search_spaces/roadmap.yaml`.

The steps are data, not code, so the presets, the FLOP table and the proxy replay of the
roadmap all read the same file. The shipped YAML files have one source, the repository's
top-level `search_spaces/`; the wheel carries them as `nas_convnext.search_spaces` (see
pyproject.toml), and `spaces_dir` finds them in either place.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..userfile import load_file
from .arch import Arch, from_fields

SPACES_PACKAGE = "nas_convnext.search_spaces"


def spaces_dir() -> Path:
    """The folder of the shipped YAML files: the installed package's data (a wheel), else the
    top-level `search_spaces/` of a source checkout (the package run from the repository, or
    an editable install)."""
    from importlib import resources

    try:  # a wheel is always unpacked, so its data files are plain files
        shipped = resources.files(SPACES_PACKAGE).joinpath("roadmap.yaml")
    except ModuleNotFoundError:
        shipped = None
    if isinstance(shipped, Path) and shipped.is_file():
        return shipped.parent
    return Path(__file__).resolve().parents[2] / "search_spaces"


@dataclass(frozen=True)
class Step:
    index: int
    name: str          # "roadmap/NN-slug", the preset name
    change: str
    arch: Arch
    recipe: str        # "original" or "modern"
    paper_top1: float
    paper_gflops: float
    paper_note: str = ""
    parent: int | None = None   # the step it starts from (the previous one, or its `from`)


@lru_cache(maxsize=4)
def load_roadmap(path: Path | None = None) -> tuple[Step, ...]:
    """The steps of `path` (default: the shipped roadmap.yaml), checked and in order."""
    from .arch import RESNET50

    path = spaces_dir() / "roadmap.yaml" if path is None else path
    data = load_file(path, "yaml")
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValueError(f"{path}: expected a mapping with a 'steps' list")
    if data.get("base", "resnet50") != "resnet50":
        raise ValueError(f"{path}: base must be resnet50, got {data.get('base')!r}")
    by_slug: dict[str, Arch] = {}
    by_index: dict[str, int] = {}
    prev = RESNET50
    steps = []
    allowed = {"name", "change", "recipe", "set", "from", "paper_top1", "paper_gflops", "paper_note"}
    for i, raw in enumerate(data["steps"]):
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"{path}: step {i}: unknown key(s) {sorted(unknown)}; allowed {sorted(allowed)}")
        slug = raw["name"]
        start = prev
        if "from" in raw:
            if raw["from"] not in by_slug:
                raise ValueError(f"{path}: step {slug}: 'from' names unknown step {raw['from']!r}")
            start = by_slug[raw["from"]]
        try:
            arch = from_fields(raw.get("set") or {}, base=start)
        except ValueError as exc:
            raise ValueError(f"{path}: step {slug}: {exc}") from None
        parent = (by_index[raw["from"]] if "from" in raw else i - 1) if i else None
        by_slug[slug] = arch
        by_index[slug] = i
        prev = arch
        steps.append(Step(index=i, name=f"roadmap/{slug}", change=raw["change"], arch=arch,
                          recipe=raw.get("recipe", "modern"), paper_top1=float(raw["paper_top1"]),
                          paper_gflops=float(raw["paper_gflops"]),
                          paper_note=raw.get("paper_note", ""), parent=parent))
    return tuple(steps)


def roadmap_steps() -> list[Step]:
    """The ordered roadmap steps with what changed and the paper's figures."""
    return list(load_roadmap())


def roadmap() -> list[tuple[str, Arch]]:
    """The ordered roadmap as (preset name, design) pairs."""
    return [(s.name, s.arch) for s in load_roadmap()]


def roadmap_rows() -> list[dict[str, Any]]:
    """Each step with its full-size complexity beside the paper's figures: the FLOP table
    (`roadmap --flops-only`) and the left half of the proxy replay's table."""
    from .complexity import complexity

    rows = []
    for s in load_roadmap():
        c = complexity(s.arch)
        rows.append({"step": s.index, "name": s.name, "change": s.change, "params": c.params,
                     "flops": c.flops, "gflops": round(c.gflops, 3),
                     "matmul_gflops": round(c.matmul_flops / 1e9, 3),
                     "paper_gflops": s.paper_gflops,
                     "diff": round(c.gflops - s.paper_gflops, 3),
                     "paper_top1": s.paper_top1, "note": s.paper_note})
    return rows
