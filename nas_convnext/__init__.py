"""nas-convnext: search the design space between ResNet-50 and ConvNeXt under a FLOP budget."""
from __future__ import annotations

from .arch import Arch, presets
from .complexity import Complexity, complexity, fit_width, parse_flops
from .roadmap import roadmap

__version__ = "0.1.0"


def __getattr__(name: str):
    # torch-heavy or YAML-reading parts load on first use so `nas-convnext --help` stays quick.
    if name == "build_model":
        from .build import build_model
        return build_model
    if name == "DesignSpace":
        from .space import DesignSpace
        return DesignSpace
    raise AttributeError(f"module 'nas_convnext' has no attribute {name!r}")


__all__ = ["Arch", "DesignSpace", "build_model", "complexity", "presets", "roadmap",
           "parse_flops", "fit_width", "Complexity"]
