"""Proxy settings: how a design is trained cheaply to be judged (see proxies.yaml)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..userfile import load_file, shown

PROFILES_FILE = Path(__file__).with_name("proxies.yaml")
RECIPES = ("modern", "original")


@dataclass(frozen=True)
class Proxy:
    name: str = "custom"
    description: str = ""
    resolution: int = 32
    width_mult: float = 0.25
    epochs: int = 3
    batch_size: int = 128
    train_size: int = 5000
    val_size: int = 2000
    # Images that score the epochs before the last, where only ASHA's rungs read the figure:
    # a class-balanced part of the validation images. The last epoch, a completed trial's
    # result, is always scored on all of them. None, or at least as many as there are: all
    # (so a smaller `val_size` override needs no second change).
    early_val_size: int | None = None
    lr: float = 2e-3            # per 256 images; scaled linearly with batch_size
    weight_decay: float = 0.05
    warmup_frac: float = 0.1    # share of all steps spent warming up linearly
    label_smoothing: float = 0.1
    drop_path: float = 0.0
    mixup: float = 0.0          # mixup alpha (0: off)
    cutmix: float = 0.0         # cutmix alpha (0: off)
    augment: bool = True        # random crop (4 px padding) and flip, drawn per image
    optimizer: str = "adamw"    # "adamw" (the modern recipe) or "sgd" (ResNet's original)

    def __post_init__(self) -> None:
        ints = {"resolution": 8, "epochs": 1, "batch_size": 2, "train_size": 2, "val_size": 1}
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low or v > 10**8:
                raise ValueError(f"proxy {shown(self.name)}: {name}={shown(v)} must be an "
                                 f"integer >= {low}")
        for name in ("width_mult", "lr"):
            v = getattr(self, name)
            if not _finite(v) or v <= 0:
                raise ValueError(f"proxy {shown(self.name)}: {name}={shown(v)} must be a "
                                 "positive number")
        for name in ("weight_decay", "warmup_frac", "label_smoothing", "drop_path", "mixup",
                     "cutmix"):
            v = getattr(self, name)
            if not _finite(v) or v < 0 or (name in ("warmup_frac", "label_smoothing",
                                                    "drop_path") and v >= 1):
                raise ValueError(f"proxy {shown(self.name)}: {name}={shown(v)} is out of range")
        if not isinstance(self.augment, bool):
            raise ValueError(f"proxy {shown(self.name)}: augment={shown(self.augment)} must be "
                             "true or false")
        e = self.early_val_size
        if e is not None and (isinstance(e, bool) or not isinstance(e, int) or e < 1):
            raise ValueError(f"proxy {shown(self.name)}: early_val_size={shown(e)} must be a "
                             "positive integer, or none for all the validation images")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"proxy {shown(self.name)}: optimizer={shown(self.optimizer)}: "
                             "expected adamw or sgd")

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / 256

    def with_recipe(self, recipe: str) -> "Proxy":
        """ResNet's original recipe (roadmap step 0): SGD, no label smoothing, mixup or drop path."""
        if recipe not in RECIPES:
            raise ValueError(f"recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
        if recipe == "modern":
            return self
        return dataclasses.replace(self, optimizer="sgd", lr=0.1, weight_decay=1e-4,
                                   label_smoothing=0.0, drop_path=0.0, mixup=0.0, cutmix=0.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


PROXY_FIELDS = tuple(f.name for f in fields(Proxy))


@lru_cache(maxsize=1)
def _profiles() -> dict[str, Proxy]:
    data = load_file(PROFILES_FILE, "yaml")  # the package's file, read like a user's
    if not isinstance(data, dict):
        raise ValueError(f"{PROFILES_FILE}: expected a mapping of profile name: settings")
    out = {}
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ValueError(f"{PROFILES_FILE}: profile {shown(name)} must be a mapping of "
                             "setting: value")
        out[name] = proxy_from_dict({**values, "name": name}, where=str(PROFILES_FILE))
    return out


def proxy_from_dict(values: dict[str, Any], where: str = "<dict>") -> Proxy:
    unknown = sorted(set(values) - set(PROXY_FIELDS), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown proxy field(s) {', '.join(map(shown, unknown))}: "
                         "expected some of "
                         f"{', '.join(PROXY_FIELDS)}")
    return Proxy(**values)


def profiles() -> dict[str, Proxy]:
    return dict(_profiles())


def get_proxy(name: str, **overrides: Any) -> Proxy:
    """A named profile, with fields overridden (e.g. epochs from the command line)."""
    table = _profiles()
    if name not in table:
        raise ValueError(f"unknown proxy profile {name!r}: expected one of {', '.join(table)}")
    extra = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(table[name], **extra) if extra else table[name]
