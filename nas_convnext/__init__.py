"""nas-convnext: search the design space between ResNet-50 and ConvNeXt under a FLOP budget.

The package's parts, each in its folder, used in one direction: `design` (what a network is)
<- `training` (how one design is judged) <- `search` (Optuna proposes, Ray Tune trains);
`design` <- `analysis` (a run's table, analysed once) <- `report` (documents, figures,
tables). `results` (the run folder) and `userfile` (bounded YAML/JSON reading) serve them all;
only `cli` knows the command line, and only `search.raytune` imports Ray.
"""
from __future__ import annotations

from .design.arch import Arch, presets
from .design.complexity import Complexity, complexity, fit_width, parse_flops
from .design.roadmap import roadmap

__version__ = "0.1.0"


def __getattr__(name: str):
    # torch-heavy or YAML-reading parts load on first use so `nas-convnext --help` stays quick.
    if name == "build_model":
        from .design.build import build_model
        return build_model
    if name == "DesignSpace":
        from .design.space import DesignSpace
        return DesignSpace
    raise AttributeError(f"module 'nas_convnext' has no attribute {name!r}")


__all__ = ["Arch", "DesignSpace", "build_model", "complexity", "presets", "roadmap",
           "parse_flops", "fit_width", "Complexity"]
